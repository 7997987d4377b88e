//! An in-memory failure counter that locks a key (a user, an IP address) out after too many
//! failed attempts.
//!
//! Time is passed in as an [`Instant`] so that tests are deterministic. Memory is bounded: once
//! the map holds more than [`PRUNE_AT`] keys, entries that have expired are dropped (once per
//! thousand new keys, so that the scan stays cheap), and beyond
//! [`MAX_KEYS`] the entries with the oldest failures go first. An attacker who floods the map
//! with fresh keys can therefore end someone's lockout early, but never grow the process.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Map size at which expired entries are pruned.
pub const PRUNE_AT: usize = 10_000;
/// Hard cap on the number of keys kept.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures counted in the current window.
    failures: u32,
    /// When the first failure of the current window happened.
    window_start: Instant,
    /// When the latest failure happened; a lockout runs from here.
    last_failure: Instant,
    /// Whether `failures` reached the limit; the lockout lasts until `last_failure + lockout`.
    locked: bool,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// New keys since the last prune. Pruning scans the whole map, so it runs once per
    /// `prune_threshold / 10` new keys rather than on each, even when every entry is live.
    inserts_since_prune: usize,
}

/// Counts failures per key and locks the key out after `max_failures` failures within `window`.
///
/// The lockout lasts `lockout` from the last failure. Durations are measured with saturating
/// arithmetic, so no combination of `Instant`s and durations can overflow.
#[derive(Debug)]
pub struct RateLimiter {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    prune_threshold: usize,
    max_keys: usize,
    inner: Mutex<Inner>,
}

impl RateLimiter {
    /// A limiter allowing `max_failures` failures per `window`, then locking out for `lockout`.
    /// A `max_failures` of zero is treated as one.
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self::with_limits(max_failures, window, lockout, PRUNE_AT, MAX_KEYS)
    }

    fn with_limits(max_failures: u32, window: Duration, lockout: Duration, prune_threshold: usize, max_keys: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            lockout,
            prune_threshold,
            max_keys,
            inner: Mutex::new(Inner { entries: HashMap::new(), inserts_since_prune: 0 }),
        }
    }

    /// `Ok` if `key` may try now, or `Err(retry_after)` while it is locked out.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let inner = self.inner.lock();
        match inner.entries.get(key) {
            Some(entry) if entry.locked => {
                let elapsed = now.saturating_duration_since(entry.last_failure);
                if elapsed < self.lockout { Err(self.lockout - elapsed) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt for `key` at `now`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.entries.get_mut(key) {
            if self.is_expired(entry, now) {
                *entry = Entry { failures: 0, window_start: now, last_failure: now, locked: false };
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.locked |= entry.failures >= self.max_failures;
            return;
        }
        let len = inner.entries.len();
        if len >= self.max_keys || (len >= self.prune_threshold && inner.inserts_since_prune >= self.prune_threshold / 10) {
            self.prune(&mut inner, now);
        }
        inner.inserts_since_prune += 1;
        let entry = Entry { failures: 1, window_start: now, last_failure: now, locked: self.max_failures <= 1 };
        inner.entries.insert(key.to_owned(), entry);
    }

    /// Forgets `key`, after a successful attempt.
    pub fn succeed(&self, key: &str) {
        self.inner.lock().entries.remove(key);
    }

    /// The number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An entry is expired when it is not locked out (any more) and its window has passed, so
    /// forgetting it changes nothing for the next attempt.
    fn is_expired(&self, entry: &Entry, now: Instant) -> bool {
        let lockout_over = !entry.locked || now.saturating_duration_since(entry.last_failure) >= self.lockout;
        let window_over = now.saturating_duration_since(entry.window_start) >= self.window;
        lockout_over && (entry.locked || window_over)
    }

    fn prune(&self, inner: &mut Inner, now: Instant) {
        inner.entries.retain(|_, entry| !self.is_expired(entry, now));
        // Leave room for one insert below the cap, and drop a tenth more so that the sort below
        // runs once per many inserts rather than on each.
        if inner.entries.len() >= self.max_keys {
            let keep = (self.max_keys - self.max_keys / 10).min(self.max_keys.saturating_sub(1));
            let mut by_age: Vec<(Instant, String)> = inner.entries.iter().map(|(k, e)| (e.last_failure, k.clone())).collect();
            by_age.sort_unstable();
            for (_, key) in by_age.into_iter().take(inner.entries.len() - keep) {
                inner.entries.remove(&key);
            }
        }
        inner.inserts_since_prune = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn limiter() -> RateLimiter {
        RateLimiter::new(3, 10 * MIN, 15 * MIN)
    }

    #[test]
    fn locks_out_after_max_failures() {
        let rl = limiter();
        let t0 = Instant::now();
        assert_eq!(rl.check("alice", t0), Ok(()));
        rl.fail("alice", t0);
        rl.fail("alice", t0 + MIN);
        assert_eq!(rl.check("alice", t0 + MIN), Ok(()));
        rl.fail("alice", t0 + 2 * MIN);
        // Locked for 15 minutes from the last failure.
        assert_eq!(rl.check("alice", t0 + 2 * MIN), Err(15 * MIN));
        assert_eq!(rl.check("alice", t0 + 10 * MIN), Err(7 * MIN));
        assert_eq!(rl.check("alice", t0 + 17 * MIN), Ok(()));
        // Other keys are unaffected.
        assert_eq!(rl.check("bob", t0 + 2 * MIN), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let rl = limiter();
        let t0 = Instant::now();
        rl.fail("alice", t0);
        rl.fail("alice", t0 + MIN);
        // The window has passed: this failure starts a new count.
        rl.fail("alice", t0 + 11 * MIN);
        assert_eq!(rl.check("alice", t0 + 11 * MIN), Ok(()));
        rl.fail("alice", t0 + 12 * MIN);
        assert_eq!(rl.check("alice", t0 + 12 * MIN), Ok(()));
        rl.fail("alice", t0 + 13 * MIN);
        assert_eq!(rl.check("alice", t0 + 13 * MIN), Err(15 * MIN));
    }

    #[test]
    fn a_failure_during_lockout_extends_it() {
        let rl = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.fail("alice", t0);
        }
        rl.fail("alice", t0 + 5 * MIN);
        assert_eq!(rl.check("alice", t0 + 16 * MIN), Err(4 * MIN));
    }

    #[test]
    fn after_lockout_the_count_starts_over() {
        let rl = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.fail("alice", t0);
        }
        let later = t0 + 16 * MIN;
        assert_eq!(rl.check("alice", later), Ok(()));
        rl.fail("alice", later);
        assert_eq!(rl.check("alice", later), Ok(()));
    }

    #[test]
    fn success_clears_the_key() {
        let rl = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.fail("alice", t0);
        }
        assert!(rl.check("alice", t0).is_err());
        rl.succeed("alice");
        assert_eq!(rl.check("alice", t0), Ok(()));
        assert!(rl.is_empty());
    }

    #[test]
    fn one_failure_allowed_locks_at_once() {
        let rl = RateLimiter::new(0, MIN, MIN);
        let t0 = Instant::now();
        rl.fail("k", t0);
        assert_eq!(rl.check("k", t0), Err(MIN));
    }

    #[test]
    fn expired_entries_are_pruned() {
        let rl = RateLimiter::with_limits(3, MIN, MIN, 100, 1000);
        let t0 = Instant::now();
        for i in 0..100 {
            rl.fail(&format!("old{i}"), t0);
        }
        assert_eq!(rl.len(), 100);
        rl.fail("new", t0 + 2 * MIN);
        assert_eq!(rl.len(), 1);
        // Live entries survive a prune.
        for i in 0..200 {
            rl.fail(&format!("live{i}"), t0 + 2 * MIN);
        }
        assert_eq!(rl.len(), 201);
    }

    #[test]
    fn memory_is_capped_by_dropping_the_oldest() {
        let rl = RateLimiter::with_limits(3, 10 * MIN, MIN, 100, 1000);
        let t0 = Instant::now();
        // A flood of fresh keys never grows the map past the cap.
        for i in 0..5000u32 {
            rl.fail(&format!("k{i}"), t0 + Duration::from_millis(u64::from(i)));
            assert!(rl.len() <= 1000);
        }
        // A key locked after the flood survives the next evictions: its failures are the newest.
        let newest = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            rl.fail("attacker", newest);
        }
        assert!(rl.check("attacker", newest).is_err());
        assert!(rl.len() <= 1000);
        // The most recent flood keys are still there; the first ones are gone.
        assert!(rl.inner.lock().entries.contains_key("k4999"));
        assert!(!rl.inner.lock().entries.contains_key("k0"));
    }

    #[test]
    fn default_limits_are_bounded() {
        let rl = limiter();
        let t0 = Instant::now();
        for i in 0..(PRUNE_AT + 10) {
            rl.fail(&format!("k{i}"), t0);
        }
        assert_eq!(rl.len(), PRUNE_AT + 10);
        // Past the window, the next prune drops every old key.
        for i in 0..PRUNE_AT / 10 {
            rl.fail(&format!("late{i}"), t0 + 11 * MIN);
        }
        assert_eq!(rl.len(), PRUNE_AT / 10);
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RateLimiter>();
    }
}
