//! Rate limits on guessing: passwords and second-factor codes per account and address, invalid
//! unguessable secrets (tokens, ID tokens, mailed links) per address, mail and token creation
//! per account. What each limit allows comes from `[accounts]`.
//!
//! Each node counts in memory. With several nodes (PostgreSQL), every count is also written to
//! the database's `limiter_events`, and each node applies the others' every half second
//! ([`share`]), so an attacker spreading guesses over the nodes gets one budget, not one per node.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use palisade_auth::{GuessLimiter, GuessPolicy, RateLimiter};
use palisade_store::{Db, LimiterEvent};
use tokio::sync::mpsc;

use crate::AppState;
use crate::http::client::Client;
use crate::http::error::{ApiError, ApiResult, too_many};

/// A budget per account (or login name) and per client address for requests counted whether or
/// not they succeed: creating accounts and tokens, sending mail on request.
pub struct Limit {
    name: &'static str,
    account: RateLimiter,
    addr: RateLimiter,
}

impl Limit {
    fn new(name: &'static str, account_max: u32, addr_max: u32, window: Duration, lockout: Duration) -> Self {
        Self { name, account: RateLimiter::new(account_max, window, lockout), addr: RateLimiter::new(addr_max, window, lockout) }
    }

    fn of(&self, key: &str) -> &RateLimiter {
        if key.starts_with("addr:") { &self.addr } else { &self.account }
    }
}

/// The rate limits of the account endpoints and of every place a secret is presented.
///
/// Guessable secrets (passwords, TOTP codes) are limited per (account, address), per account,
/// per address and globally ([`GuessLimiter`]); an account's recent login address is exempt from
/// the three shared levels. Unguessable secrets (API tokens, OIDC ID tokens, login tickets,
/// mailed links) are never refused when valid: only invalid ones are counted, per address, and
/// answered 429 beyond the budget.
pub struct Limits {
    /// Wrong passwords: login, and the re-check before a sensitive change.
    pub password: GuessLimiter,
    /// Wrong second-factor codes: login and enrolment.
    pub second_factor: GuessLimiter,
    /// Invalid unguessable secrets, per client address.
    pub secrets: RateLimiter,
    /// Mail sent on request (password reset, verification links), per login and per address.
    pub mail: Limit,
    /// Token creation and registration.
    pub tokens: Limit,
    /// How far back a login makes an address "known" for its account.
    pub known_address: Duration,
    /// Where counts go to be shared with other nodes, once [`share`] started.
    outbox: OnceLock<mpsc::UnboundedSender<LimiterEvent>>,
    /// How long a count can matter: the longest window or lockout.
    memory: Duration,
}

impl Limits {
    pub fn new(a: &palisade_core::config::AccountPolicy) -> Self {
        let n = |v: u64| v.min(u32::MAX as u64) as u32;
        let window = Duration::from_secs(a.lockout_secs);
        let first = Duration::from_secs(a.first_lockout_secs);
        let guesses = GuessPolicy {
            per_pair: n(a.max_failures),
            per_account: n(a.account_max_failures),
            per_address: n(a.address_max_failures),
            global: n(a.global_max_failures),
            window,
            first_lockout: first,
            max_lockout: window,
        };
        Self {
            password: GuessLimiter::new(guesses),
            // Whoever reaches the second factor knows the password: guesses spread over many
            // addresses get the pair's tight budget for the whole account. The account's known
            // addresses are exempt from that level, so its owner is not locked out.
            second_factor: GuessLimiter::new(GuessPolicy { per_account: n(a.max_failures), ..guesses }),
            secrets: RateLimiter::growing(n(a.token_max_failures), window, first, window),
            mail: Limit::new("mail", n(a.max_failures), n(a.address_max_failures), window, window),
            tokens: Limit::new("tokens", 30, 30, Duration::from_secs(3600), Duration::from_secs(600)),
            known_address: Duration::from_secs(a.known_address_days.saturating_mul(86_400)),
            outbox: OnceLock::new(),
            memory: window.max(first).max(Duration::from_secs(3600)),
        }
    }

    /// Tells the other nodes what this one counted (when sharing is on).
    pub fn publish(&self, limiter: &str, op: &str, key1: &str, key2: &str) {
        if let Some(out) = self.outbox.get() {
            let _ = out.send(LimiterEvent { limiter: limiter.into(), op: op.into(), key1: key1.into(), key2: key2.into(), at: 0 });
        }
    }

    /// Applies what another node counted, as of when it counted it (a node that starts reads the
    /// last lockout-long stretch, and counts that old must not lock out as if fresh).
    fn apply(&self, e: &LimiterEvent) {
        let age = palisade_store::now_micros().saturating_sub(e.at).max(0);
        let now = Instant::now().checked_sub(Duration::from_micros(age.unsigned_abs())).unwrap_or_else(Instant::now);
        let guess = match e.limiter.as_str() {
            "password" => Some(&self.password),
            "second_factor" => Some(&self.second_factor),
            _ => None,
        };
        match (guess, e.limiter.as_str(), e.op.as_str()) {
            (Some(g), _, "reserve") => drop(g.reserve(&e.key1, &e.key2, now)),
            (Some(g), _, "fail") => g.fail(&e.key1, &e.key2, now),
            (Some(g), _, "succeed") => g.succeed(&e.key1, &e.key2),
            (None, "secrets", "fail") => self.secrets.fail(&e.key1, now),
            (None, "mail", "fail") => self.mail.of(&e.key1).fail(&e.key1, now),
            (None, "tokens", "fail") => self.tokens.of(&e.key1).fail(&e.key1, now),
            _ => tracing::debug!(limiter = %e.limiter, op = %e.op, "a limiter event this node does not know"),
        }
    }
}

/// Shares this node's counts with the other nodes through `db`, and applies theirs, until the
/// process ends: a writer that batches this node's events, and a reader that polls every half
/// second. Counts older than the longest lockout are pruned.
pub fn share(limits: std::sync::Arc<Limits>, db: Db, node: String) {
    let (tx, mut rx) = mpsc::unbounded_channel::<LimiterEvent>();
    if limits.outbox.set(tx).is_err() {
        return;
    }
    let (writer_db, writer_node) = (db.clone(), node.clone());
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 256).await > 0 {
            if let Err(e) = writer_db.record_limiter_events(&writer_node, &batch).await {
                tracing::warn!(error = %e, count = batch.len(), "could not share rate-limit counts with the other nodes");
            }
            batch.clear();
        }
    });
    tokio::spawn(async move {
        let memory = i64::try_from(limits.memory.as_micros()).unwrap_or(i64::MAX);
        let mut last = 0;
        let mut pruned = Instant::now();
        let mut every = tokio::time::interval(Duration::from_millis(500));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let since = palisade_store::now_micros().saturating_sub(memory);
            match db.limiter_events_after(&node, last, since).await {
                Ok((events, next)) => {
                    for e in &events {
                        limits.apply(e);
                    }
                    last = next;
                }
                Err(e) => tracing::warn!(error = %e, "could not read the other nodes' rate-limit counts"),
            }
            if pruned.elapsed() > Duration::from_secs(60) {
                pruned = Instant::now();
                if let Err(e) = db.prune_limiter_events(since).await {
                    tracing::warn!(error = %e, "could not prune old rate-limit counts");
                }
            }
        }
    });
}

/// Refuses when any of `keys` is locked out.
pub fn check_limit(limit: &Limit, keys: &[String]) -> ApiResult<()> {
    let now = Instant::now();
    for k in keys {
        limit.of(k).check(k, now).map_err(too_many)?;
    }
    Ok(())
}

pub fn fail_limit(limits: &Limits, limit: &Limit, keys: &[String]) {
    let now = Instant::now();
    for k in keys {
        limit.of(k).fail(k, now);
        limits.publish(limit.name, "fail", k, "");
    }
}

pub fn addr_key(client: &Client) -> String {
    format!("addr:{}", client.addr.as_deref().unwrap_or("unknown"))
}

/// What to answer for an invalid unguessable secret (an API token, an ID token, a login ticket,
/// a mailed link): `err`, counted against the client address, or a 429 once the address has
/// presented too many. The check comes after the secret was found invalid, so a valid one is
/// never refused, whatever others sharing the address did.
pub fn invalid_secret(state: &AppState, client: &Client, err: ApiError) -> ApiError {
    match count_invalid_secret(state, client) {
        Ok(()) => err,
        Err(retry) => too_many(retry),
    }
}

/// Counts an invalid unguessable secret against the client address, or `Err(retry_after)` (not
/// counted) once the address has presented too many.
pub fn count_invalid_secret(state: &AppState, client: &Client) -> Result<(), Duration> {
    let key = client.addr.as_deref().unwrap_or("unknown");
    let now = Instant::now();
    state.limits.secrets.check(key, now)?;
    state.limits.secrets.fail(key, now);
    state.limits.publish("secrets", "fail", key, "");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another node's counts apply as of when they were made: minutes-old guesses whose lockout
    /// has passed do not lock anyone out on a node that reads them now (one that just started),
    /// fresh ones do.
    #[test]
    fn counts_from_other_nodes_apply_as_of_when_they_were_made() {
        let policy =
            palisade_core::config::AccountPolicy { max_failures: 3, lockout_secs: 60, first_lockout_secs: 60, ..Default::default() };
        let limits = Limits::new(&policy);
        let event = |at| LimiterEvent { limiter: "password".into(), op: "reserve".into(), key1: "user:1".into(), key2: "addr".into(), at };
        let five_minutes_ago = palisade_store::now_micros() - 5 * 60 * 1_000_000;
        for _ in 0..5 {
            limits.apply(&event(five_minutes_ago));
        }
        assert!(limits.password.reserve("user:1", "addr", Instant::now()).is_ok(), "a lockout that ended minutes ago");
        for _ in 0..5 {
            limits.apply(&event(palisade_store::now_micros()));
        }
        assert!(limits.password.reserve("user:1", "addr", Instant::now()).is_err(), "fresh counts lock the pair");
    }
}
