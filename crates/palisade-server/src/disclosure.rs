//! `POST /_/secrets/disclose-token`: leaked-token reports from secret-scanning partners (GitHub's
//! format, as PyPI accepts it). The raw body is a JSON array `[{"token", "type", "url",
//! "source"}]`, signed with the partner's ECDSA P-256 key: the key id and the base64 DER signature
//! arrive in the partner's headers, and the public keys come from the configuration or from the
//! partner's key URL (cached for the partner's `keys_ttl_secs`, fetched again for an unknown key
//! id or after a failure at most once a minute, one fetch at a time: see [`PartnerKeys`]).
//!
//! Every Palisade token in a verified report is revoked at once, recorded, and its owner is
//! told by mail. The answer is `204` whatever the outcome per token (it reveals nothing about
//! which tokens existed); an unsigned, badly signed or malformed report is a `400`, and a report
//! whose partner's keys cannot be fetched a `503` (the partner should send it again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::auth::Client;
use crate::http::error::{ApiError, ApiResult, bad_request, forbidden};
use palisade_core::config::DisclosurePartner;
use palisade_core::events::record;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_/secrets/disclose-token", post(disclose))
}

/// How long a fetch of a partner's key URL is trusted to answer "no such key": after an unknown
/// key id, or a failed fetch, the URL is asked again no sooner than this (or than the partner's
/// `keys_ttl_secs`, when that is shorter).
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// The largest key document read from a partner (GitHub's is a few KiB).
const MAX_KEYS_DOCUMENT: usize = 256 * 1024;
/// The longest a fetch of a key document may take, from connecting to the body's last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What is known of one partner's keys: the last good key set (key id → PEM) and when it was
/// fetched, and when the key URL was last asked and whether that failed.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, String>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    failed: bool,
}

impl KeySet {
    /// The answer for `key_id` from what is known. A key from an expired set is only here because
    /// the refetch failed: it still verifies, rather than refusing every report while the
    /// partner's URL is down.
    fn answer(&self, key_id: &str) -> KeyLookup {
        match self.keys.get(key_id) {
            Some(pem) => KeyLookup::Found(pem.clone()),
            None if self.failed => KeyLookup::Unavailable,
            None => KeyLookup::Unknown,
        }
    }
}

/// What a partner's keys say about a key id.
#[derive(Debug, PartialEq)]
enum KeyLookup {
    /// The PEM of the key.
    Found(String),
    /// The partner has no such key.
    Unknown,
    /// The partner's keys could not be fetched, and none known has this id.
    Unavailable,
}

/// Partner keys fetched from their key URLs, per partner name.
///
/// A fetched key set is trusted for the partner's `keys_ttl_secs`, so that a key the partner
/// withdrew stops verifying reports; then the next report that needs it fetches it again. A
/// failed fetch keeps the last good keys (and is logged).
///
/// Anonymous reports choose the key id, so they must not be able to make the server fetch at
/// will: a key id missing from the cached set, or a fetch that failed, is answered from the
/// cache for [`REFETCH_AFTER`] (a negative cache), and concurrent reports for one partner share
/// a single fetch. Entries are per configured partner, so the cache is bounded by the
/// configuration.
#[derive(Default)]
pub struct PartnerKeys {
    cache: Mutex<HashMap<String, KeySet>>,
    /// One fetch at a time per partner (single flight).
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PartnerKeys {
    /// `Some(answer)` when the cache can answer for `key_id`, `None` when the key URL should be asked.
    fn cached(&self, partner: &str, key_id: &str, ttl: Duration) -> Option<KeyLookup> {
        let cache = self.cache.lock();
        let set = cache.get(partner)?;
        let fresh = set.fetched.is_some_and(|at| at.elapsed() < ttl);
        if fresh && let Some(pem) = set.keys.get(key_id) {
            return Some(KeyLookup::Found(pem.clone()));
        }
        // Expired keys, or a key id they lack: ask again, but not at every report.
        let asked_lately = set.attempted.is_some_and(|at| at.elapsed() < REFETCH_AFTER.min(ttl));
        asked_lately.then(|| set.answer(key_id))
    }

    async fn key(&self, http: &reqwest::Client, partner: &DisclosurePartner, key_id: &str) -> KeyLookup {
        if let Some(k) = partner.public_keys.iter().find(|k| k.key_identifier == key_id) {
            return KeyLookup::Found(k.key.clone());
        }
        let Some(url) = partner.keys_url.as_deref() else { return KeyLookup::Unknown };
        let ttl = Duration::from_secs(partner.keys_ttl_secs);
        if let Some(answer) = self.cached(&partner.name, key_id, ttl) {
            return answer;
        }
        let gate = self.fetching.lock().entry(partner.name.clone()).or_default().clone();
        let _one_at_a_time = gate.lock().await;
        // Whoever held the gate may have fetched what this report needs.
        if let Some(answer) = self.cached(&partner.name, key_id, ttl) {
            return answer;
        }
        let fetched = fetch_keys(http, url).await;
        let mut cache = self.cache.lock();
        let set = cache.entry(partner.name.clone()).or_default();
        let now = Instant::now();
        set.attempted = Some(now);
        match fetched {
            Ok(keys) => {
                tracing::info!(partner = %partner.name, keys = keys.len(), "fetched the partner's public keys");
                set.keys = keys;
                set.fetched = Some(now);
                set.failed = false;
            }
            Err(e) => {
                set.failed = true;
                tracing::warn!(
                    partner = %partner.name,
                    error = %e,
                    keys_kept = set.keys.len(),
                    "could not fetch the partner's public keys; keeping those fetched before, and not asking again for a minute"
                );
            }
        }
        set.answer(key_id)
    }
}

/// Reads `{"public_keys": [{"key_identifier", "key"}, ...]}` from a partner's key URL: a 2xx
/// answer, at most [`MAX_KEYS_DOCUMENT`] bytes (counted as they arrive, whatever the
/// `Content-Length` says), within [`FETCH_TIMEOUT`].
async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<HashMap<String, String>, String> {
    let mut resp = http.get(url).header("accept", "application/json").timeout(FETCH_TIMEOUT).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let too_large = || format!("the key document is too large (more than {MAX_KEYS_DOCUMENT} bytes)");
    if resp.content_length().is_some_and(|n| n > MAX_KEYS_DOCUMENT as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_KEYS_DOCUMENT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    let mut keys = HashMap::new();
    for k in doc.get("public_keys").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(id), Some(pem)) = (k.get("key_identifier").and_then(Value::as_str), k.get("key").and_then(Value::as_str)) {
            keys.insert(id.to_string(), pem.to_string());
        }
    }
    Ok(keys)
}

pub async fn disclose(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    if !state.config.disclosure.enabled {
        return Err(forbidden("token disclosure is disabled on this instance"));
    }
    // The body is at most limits::DISCLOSURE_BODY_LIMIT: the middleware refused anything larger.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some((partner, key_id, signature)) =
        state.config.disclosure.partners.iter().find_map(|p| Some((p, header(&p.key_id_header)?, header(&p.signature_header)?)))
    else {
        return Err(bad_request("the report is not signed: expected a partner's key-identifier and signature headers"));
    };
    let pem = match state.disclosure_keys.key(&state.http, partner, &key_id).await {
        KeyLookup::Found(pem) => pem,
        KeyLookup::Unknown => return Err(bad_request(format!("unknown key identifier for partner {:?}", partner.name))),
        // Not the report's fault: a 5xx tells the partner to send it again later.
        KeyLookup::Unavailable => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the public keys of partner {:?} could not be fetched; send the report again later", partner.name),
            ));
        }
    };
    palisade_auth::verify_report_signature(&body, &signature, &pem)
        .map_err(|e| bad_request(format!("the report's signature does not verify: {e}")))?;
    let reports = palisade_auth::parse_report(&body).map_err(|e| bad_request(format!("malformed report: {e}")))?;
    let mut revoked = 0;
    for r in &reports {
        let secret = r.token.expose().trim();
        if !palisade_core::tokens::well_formed(secret) {
            continue;
        }
        let reason = format!("reported as leaked by {} ({})", partner.name, r.url.as_deref().unwrap_or("no url"));
        let Ok(Some(token)) = state.db.revoke_token_by_hash(&palisade_core::tokens::hash(secret), &reason).await else { continue };
        revoked += 1;
        let details = json!({ "token_id": token.id, "hint": token.hint, "partner": partner.name, "url": r.url, "source": r.source });
        let actor = format!("disclosure:{}", partner.name);
        record(&state, "token_revoked_leaked", &actor, token.user_id, None, &client, details).await;
        if let Some(uid) = token.user_id
            && let Ok(user) = state.db.user_by_id(uid).await
        {
            let what = format!(
                "Your API token {}… was found in public by {} ({}) and has been revoked. Create a new one and remove the old one from where it leaked.",
                token.hint,
                partner.name,
                r.url.as_deref().unwrap_or("no location given")
            );
            palisade_core::mail::notify(&state.mailer, &user, "An API token of yours leaked and was revoked", &what).await;
        }
    }
    tracing::info!(partner = %partner.name, reported = reports.len(), revoked, "token disclosure processed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
