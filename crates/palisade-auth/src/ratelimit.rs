//! In-memory failure counters that lock a key (an account, an IP address, an account from one
//! address) out after too many failed attempts, and [`GuessLimiter`], which combines four of them
//! for guessable secrets (passwords, TOTP codes) the way PyPI does: per account *and* address,
//! per account, per address and instance-wide.
//!
//! Lockouts are proportionate: the first one is short (`first_lockout`) and each further lockout
//! of the same key doubles it, up to `max_lockout`. A key's lockouts are forgotten once it has
//! had no failure for twice the longer of the window and the longest lockout.
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
    /// Failures counted in the current window (since the last lockout, if any).
    failures: u32,
    /// When the current window started.
    window_start: Instant,
    /// When the latest failure happened.
    last_failure: Instant,
    /// The end of the current (or last) lockout.
    locked_until: Option<Instant>,
    /// Lockouts so far; the next one lasts `first_lockout * 2^strikes`, capped.
    strikes: u32,
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
/// The first lockout lasts `first_lockout`, each further one twice the last, up to
/// `max_lockout`; a lockout starts a new window. Durations are computed with saturating
/// arithmetic, so no combination of `Instant`s and durations can overflow.
#[derive(Debug)]
pub struct RateLimiter {
    max_failures: u32,
    window: Duration,
    first_lockout: Duration,
    max_lockout: Duration,
    prune_threshold: usize,
    max_keys: usize,
    inner: Mutex<Inner>,
}

impl RateLimiter {
    /// A limiter allowing `max_failures` failures per `window`, then locking out for `lockout`
    /// every time. A `max_failures` of zero is treated as one.
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self::growing(max_failures, window, lockout, lockout)
    }

    /// A limiter whose first lockout lasts `first_lockout` and each further one twice as long as
    /// the last, up to `max_lockout`.
    pub fn growing(max_failures: u32, window: Duration, first_lockout: Duration, max_lockout: Duration) -> Self {
        Self::with_limits(max_failures, window, first_lockout, max_lockout, PRUNE_AT, MAX_KEYS)
    }

    fn with_limits(
        max_failures: u32,
        window: Duration,
        first_lockout: Duration,
        max_lockout: Duration,
        prune_threshold: usize,
        max_keys: usize,
    ) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            first_lockout: first_lockout.min(max_lockout),
            max_lockout,
            prune_threshold,
            max_keys,
            inner: Mutex::new(Inner { entries: HashMap::new(), inserts_since_prune: 0 }),
        }
    }

    /// `Ok` if `key` may try now, or `Err(retry_after)` while it is locked out.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let inner = self.inner.lock();
        match inner.entries.get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until.saturating_duration_since(now)),
            _ => Ok(()),
        }
    }

    /// Checks and counts an attempt in one step: `Err(retry_after)` (nothing counted) while the
    /// key is locked out. Callers count an attempt *before* checking a slow secret, so that
    /// parallel attempts cannot all slip under the limit, and [`succeed`](Self::succeed) after.
    pub fn reserve(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock();
        if let Some(until) = inner.entries.get(key).and_then(|e| e.locked_until)
            && until > now
        {
            return Err(until.saturating_duration_since(now));
        }
        self.fail_locked(&mut inner, key, now);
        Ok(())
    }

    /// Records a failed attempt for `key` at `now`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut inner = self.inner.lock();
        self.fail_locked(&mut inner, key, now);
    }

    fn fail_locked(&self, inner: &mut Inner, key: &str, now: Instant) {
        if let Some(entry) = inner.entries.get_mut(key) {
            if now.saturating_duration_since(entry.last_failure) >= self.memory() {
                entry.strikes = 0;
            }
            let locked = entry.locked_until.is_some_and(|u| u > now);
            if !locked && now.saturating_duration_since(entry.window_start) >= self.window {
                entry.failures = 0;
                entry.window_start = now;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            self.maybe_lock(entry, now);
            return;
        }
        let len = inner.entries.len();
        if len >= self.max_keys || (len >= self.prune_threshold && inner.inserts_since_prune >= self.prune_threshold / 10) {
            self.prune(inner, now);
        }
        inner.inserts_since_prune += 1;
        let mut entry = Entry { failures: 1, window_start: now, last_failure: now, locked_until: None, strikes: 0 };
        self.maybe_lock(&mut entry, now);
        inner.entries.insert(key.to_owned(), entry);
    }

    fn maybe_lock(&self, entry: &mut Entry, now: Instant) {
        if entry.failures < self.max_failures {
            return;
        }
        let lockout = self.lockout_for(entry.strikes);
        entry.strikes = entry.strikes.saturating_add(1);
        let until = now.checked_add(lockout).unwrap_or(now);
        entry.locked_until = Some(entry.locked_until.map_or(until, |u| u.max(until)));
        entry.failures = 0;
        entry.window_start = now;
    }

    /// The lockout that follows `strikes` earlier ones.
    fn lockout_for(&self, strikes: u32) -> Duration {
        let factor = 1u32.checked_shl(strikes.min(31)).unwrap_or(u32::MAX);
        self.first_lockout.saturating_mul(factor).min(self.max_lockout)
    }

    /// How long a key's lockouts are remembered after its last failure.
    fn memory(&self) -> Duration {
        self.window.max(self.max_lockout).saturating_mul(2)
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

    /// An entry is expired when it is not locked out, its window has passed and its lockouts
    /// are forgotten, so dropping it changes nothing for the next attempt.
    fn is_expired(&self, entry: &Entry, now: Instant) -> bool {
        let lockout_over = entry.locked_until.is_none_or(|u| u <= now);
        let window_over = now.saturating_duration_since(entry.window_start) >= self.window;
        let strikes_forgotten = entry.strikes == 0 || now.saturating_duration_since(entry.last_failure) >= self.memory();
        lockout_over && window_over && strikes_forgotten
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

/// The budgets of a [`GuessLimiter`]: wrong guesses allowed per `window` at each level before a
/// lockout, and how long lockouts last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessPolicy {
    /// One account from one address: the tight limit an ordinary mistyping user meets.
    pub per_pair: u32,
    /// One account from every address together (guessing spread over many addresses).
    pub per_account: u32,
    /// One address against every account together (password spraying).
    pub per_address: u32,
    /// Every guess on the instance (a distributed attack on many accounts).
    pub global: u32,
    pub window: Duration,
    pub first_lockout: Duration,
    pub max_lockout: Duration,
}

/// Limits wrong guesses of a guessable secret (a password, a TOTP code) at four levels, as PyPI
/// does: per (account, address), per account, per address and globally.
///
/// The account, address and global levels are *shared*: other people's guesses fill them. A
/// caller that knows the account recently logged in from this address (`known` below) lets that
/// pair past them, so an attacker guessing from elsewhere, or spraying from a shared address (a
/// company's NAT), does not lock a user out of where they usually log in; the pair's own tight
/// limit still bounds guesses there.
#[derive(Debug)]
pub struct GuessLimiter {
    pair: RateLimiter,
    account: RateLimiter,
    address: RateLimiter,
    global: RateLimiter,
}

const GLOBAL_KEY: &str = "*";

impl GuessLimiter {
    pub fn new(p: GuessPolicy) -> Self {
        let limiter = |max| RateLimiter::growing(max, p.window, p.first_lockout, p.max_lockout);
        Self { pair: limiter(p.per_pair), account: limiter(p.per_account), address: limiter(p.per_address), global: limiter(p.global) }
    }

    /// An unambiguous key for an (account, address) pair, whatever characters either holds.
    fn pair_key(account: &str, address: &str) -> String {
        format!("{}:{account}{address}", account.len())
    }

    /// `Err(retry_after)` while the account, the address or the instance is locked out: the
    /// shared levels, which a known (account, address) pair may pass.
    pub fn check_shared(&self, account: &str, address: &str, now: Instant) -> Result<(), Duration> {
        let waits = [self.account.check(account, now), self.address.check(address, now), self.global.check(GLOBAL_KEY, now)];
        match waits.into_iter().filter_map(Result::err).max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a guess against the (account, address) pair before the secret is checked, or
    /// `Err(retry_after)` while the pair is locked out.
    pub fn reserve(&self, account: &str, address: &str, now: Instant) -> Result<(), Duration> {
        self.pair.reserve(&Self::pair_key(account, address), now)
    }

    /// Records a wrong guess at the shared levels (the pair counted it in [`reserve`](Self::reserve)).
    pub fn fail(&self, account: &str, address: &str, now: Instant) {
        self.account.fail(account, now);
        self.address.fail(address, now);
        self.global.fail(GLOBAL_KEY, now);
    }

    /// A right guess clears the pair's count. The shared levels keep theirs: a success says
    /// nothing about the guesses other people made.
    pub fn succeed(&self, account: &str, address: &str) {
        self.pair.succeed(&Self::pair_key(account, address));
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
    fn failures_during_a_lockout_count_toward_the_next_one() {
        let rl = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.fail("alice", t0);
        }
        // One more failure does not extend the lockout; a full budget of them does.
        rl.fail("alice", t0 + 5 * MIN);
        assert_eq!(rl.check("alice", t0 + 5 * MIN), Err(10 * MIN));
        rl.fail("alice", t0 + 6 * MIN);
        rl.fail("alice", t0 + 6 * MIN);
        assert_eq!(rl.check("alice", t0 + 6 * MIN), Err(15 * MIN));
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
        let rl = RateLimiter::with_limits(3, MIN, MIN, MIN, 100, 1000);
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
        let rl = RateLimiter::with_limits(3, 10 * MIN, MIN, MIN, 100, 1000);
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
    fn lockouts_start_short_and_double_up_to_the_maximum() {
        let rl = RateLimiter::growing(3, 15 * MIN, MIN, 15 * MIN);
        let mut t = Instant::now();
        for expected in [1, 2, 4, 8, 15, 15] {
            for _ in 0..3 {
                assert_eq!(rl.check("k", t), Ok(()));
                rl.fail("k", t);
            }
            assert_eq!(rl.check("k", t), Err(expected * MIN), "lockout after {expected} minutes expected");
            t += expected * MIN;
            assert_eq!(rl.check("k", t), Ok(()));
        }
    }

    #[test]
    fn lockouts_are_forgotten_after_a_quiet_period() {
        let rl = RateLimiter::growing(2, 15 * MIN, MIN, 15 * MIN);
        let t0 = Instant::now();
        for _ in 0..2 {
            rl.fail("k", t0);
        }
        rl.fail("k", t0 + MIN);
        rl.fail("k", t0 + MIN);
        assert_eq!(rl.check("k", t0 + MIN), Err(2 * MIN));
        // Quiet for twice the longest lockout: the next lockout is a first one again, and the
        // entry itself may be pruned.
        let later = t0 + MIN + 30 * MIN;
        assert!(rl.is_expired(&rl.inner.lock().entries["k"], later));
        rl.fail("k", later);
        rl.fail("k", later);
        assert_eq!(rl.check("k", later), Err(MIN));
    }

    #[test]
    fn reserve_counts_before_the_check_and_refuses_while_locked() {
        let rl = RateLimiter::growing(2, 15 * MIN, MIN, 15 * MIN);
        let t0 = Instant::now();
        assert_eq!(rl.reserve("k", t0), Ok(()));
        // The second parallel attempt is counted too, and locks the key for the third.
        assert_eq!(rl.reserve("k", t0), Ok(()));
        assert_eq!(rl.reserve("k", t0), Err(MIN));
        // Refused attempts are not counted: the lockout does not grow while it runs.
        assert_eq!(rl.check("k", t0 + MIN - Duration::from_secs(1)), Err(Duration::from_secs(1)));
        // One of the two was right after all: the key is cleared.
        rl.succeed("k");
        assert_eq!(rl.reserve("k", t0), Ok(()));
    }

    fn guess() -> GuessLimiter {
        GuessLimiter::new(GuessPolicy {
            per_pair: 5,
            per_account: 10,
            per_address: 20,
            global: 40,
            window: 15 * MIN,
            first_lockout: MIN,
            max_lockout: 15 * MIN,
        })
    }

    /// One guess as a server makes it: shared levels (unless known), pair, then the outcome.
    fn attempt(g: &GuessLimiter, account: &str, address: &str, known: bool, right: bool, now: Instant) -> Result<(), Duration> {
        if !known {
            g.check_shared(account, address, now)?;
        }
        g.reserve(account, address, now)?;
        if right {
            g.succeed(account, address);
        } else {
            g.fail(account, address, now);
        }
        Ok(())
    }

    #[test]
    fn wrong_passwords_from_one_address_do_not_lock_the_account_elsewhere() {
        let g = guess();
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(attempt(&g, "alice", "10.0.0.66", false, false, t), Ok(()));
        }
        assert_eq!(attempt(&g, "alice", "10.0.0.66", false, true, t), Err(MIN));
        // Alice herself, from her own address, is not locked out.
        assert_eq!(attempt(&g, "alice", "192.0.2.7", false, true, t), Ok(()));
        // Nor is anyone else at the attacker's address.
        assert_eq!(attempt(&g, "bob", "10.0.0.66", false, true, t), Ok(()));
    }

    #[test]
    fn guessing_one_account_from_many_addresses_locks_it_except_where_it_logs_in() {
        let g = guess();
        let t = Instant::now();
        for i in 0..10 {
            assert_eq!(attempt(&g, "alice", &format!("198.51.100.{i}"), false, false, t), Ok(()));
        }
        // The account level is spent: a new address is refused even with the right password ...
        assert_eq!(attempt(&g, "alice", "203.0.113.9", false, true, t), Err(MIN));
        // ... but alice, from an address she logged in from recently, is not.
        assert_eq!(attempt(&g, "alice", "192.0.2.7", true, true, t), Ok(()));
    }

    #[test]
    fn spraying_from_a_shared_address_spares_its_known_users() {
        let g = guess();
        let t = Instant::now();
        for i in 0..20 {
            assert_eq!(attempt(&g, &format!("user{i}"), "10.0.0.1", false, false, t), Ok(()));
        }
        assert_eq!(attempt(&g, "carol", "10.0.0.1", false, true, t), Err(MIN));
        assert_eq!(attempt(&g, "bob", "10.0.0.1", true, true, t), Ok(()));
        // A known pair still has its own tight limit.
        for _ in 0..5 {
            assert_eq!(attempt(&g, "bob", "10.0.0.1", true, false, t), Ok(()));
        }
        assert_eq!(attempt(&g, "bob", "10.0.0.1", true, true, t), Err(MIN));
    }

    #[test]
    fn the_global_ceiling_stops_a_distributed_attack() {
        let g = guess();
        let t = Instant::now();
        for i in 0..40 {
            assert_eq!(attempt(&g, &format!("user{i}"), &format!("198.51.100.{i}"), false, false, t), Ok(()));
        }
        assert_eq!(attempt(&g, "dave", "203.0.113.1", false, true, t), Err(MIN));
        assert_eq!(attempt(&g, "erin", "192.0.2.8", true, true, t), Ok(()));
    }

    #[test]
    fn a_right_guess_clears_only_its_pair() {
        let g = guess();
        let t = Instant::now();
        for _ in 0..4 {
            attempt(&g, "alice", "192.0.2.7", false, false, t).unwrap();
        }
        attempt(&g, "alice", "192.0.2.7", false, true, t).unwrap();
        // The pair starts over ...
        for _ in 0..5 {
            assert_eq!(attempt(&g, "alice", "192.0.2.7", false, false, t), Ok(()));
        }
        // ... while the account level kept all nine failures: one more locks it.
        assert_eq!(attempt(&g, "alice", "198.51.100.1", false, false, t), Ok(()));
        assert_eq!(g.check_shared("alice", "198.51.100.2", t), Err(MIN));
    }

    #[test]
    fn pair_keys_cannot_collide() {
        assert_ne!(GuessLimiter::pair_key("login:a:1", "0.0.0.2"), GuessLimiter::pair_key("login:a", ":10.0.0.2"));
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RateLimiter>();
    }
}
