//! `POST /_/secrets/disclose-token`: leaked-token reports from secret-scanning partners (GitHub's
//! format, as PyPI accepts it). The raw body is a JSON array `[{"token", "type", "url",
//! "source"}]`, signed with the partner's ECDSA P-256 key: the key id and the base64 DER signature
//! arrive in the partner's headers, and the public keys come from the configuration or from the
//! partner's key URL (cached, fetched again for an unknown key id or after a failure at most once
//! a minute, one fetch at a time: see [`PartnerKeys`]).
//!
//! Every Palisade token in a verified report is revoked at once, recorded, and its owner is
//! told by mail. The answer is `204` whatever the outcome per token (it reveals nothing about
//! which tokens existed); an unsigned, badly signed or malformed report is a `400`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::auth::Client;
use crate::http::error::{ApiResult, bad_request, forbidden};
use palisade_core::config::DisclosurePartner;
use palisade_core::events::record;

use axum::Router;
use axum::routing::post;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_/secrets/disclose-token", post(disclose))
}

/// How long a fetch of a partner's key URL is trusted to answer "no such key": an unknown key
/// id, or a failed fetch, waits this long before the URL is asked again.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// The largest key document read from a partner (GitHub's is a few KiB).
const MAX_KEYS_DOCUMENT: usize = 256 * 1024;

/// What is known of one partner's keys: the last good key set (key id → PEM), and when its key
/// URL was last asked, whatever the answer.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, String>,
    attempted: Option<Instant>,
}

/// Partner keys fetched from their key URLs, per partner name.
///
/// Anonymous reports choose the key id, so they must not be able to make the server fetch at
/// will: a key id missing from the cached set, or a fetch that failed, is answered from the
/// cache for [`REFETCH_AFTER`] (a negative cache), and concurrent reports for one partner share
/// a single fetch. Entries are per configured partner, so the cache is bounded by the
/// configuration; a failed fetch keeps the last good keys.
#[derive(Default)]
pub struct PartnerKeys {
    cache: Mutex<HashMap<String, KeySet>>,
    /// One fetch at a time per partner (single flight).
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PartnerKeys {
    /// `Some(answer)` when the cache can answer for `key_id`, `None` when the key URL should be asked.
    fn cached(&self, partner: &str, key_id: &str) -> Option<Option<String>> {
        let cache = self.cache.lock();
        let set = cache.get(partner)?;
        if let Some(k) = set.keys.get(key_id) {
            return Some(Some(k.clone()));
        }
        set.attempted.is_some_and(|at| at.elapsed() < REFETCH_AFTER).then_some(None)
    }

    async fn key(&self, http: &reqwest::Client, partner: &DisclosurePartner, key_id: &str) -> Option<String> {
        if let Some(k) = partner.public_keys.iter().find(|k| k.key_identifier == key_id) {
            return Some(k.key.clone());
        }
        let url = partner.keys_url.as_deref()?;
        if let Some(answer) = self.cached(&partner.name, key_id) {
            return answer;
        }
        let gate = self.fetching.lock().entry(partner.name.clone()).or_default().clone();
        let _one_at_a_time = gate.lock().await;
        // Whoever held the gate may have fetched what this report needs.
        if let Some(answer) = self.cached(&partner.name, key_id) {
            return answer;
        }
        let fetched = fetch_keys(http, url).await;
        let mut cache = self.cache.lock();
        let set = cache.entry(partner.name.clone()).or_default();
        set.attempted = Some(Instant::now());
        match fetched {
            Ok(keys) => set.keys = keys,
            Err(e) => {
                tracing::warn!(partner = %partner.name, error = %e, "could not fetch the partner's public keys; not asking again for a minute")
            }
        }
        set.keys.get(key_id).cloned()
    }
}

/// Reads `{"public_keys": [{"key_identifier", "key"}, ...]}` from a partner's key URL.
async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<HashMap<String, String>, String> {
    let resp =
        http.get(url).header("accept", "application/json").timeout(Duration::from_secs(10)).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|n| n > MAX_KEYS_DOCUMENT as u64) {
        return Err("the key document is too large".into());
    }
    let mut body = Vec::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_KEYS_DOCUMENT {
            return Err("the key document is too large".into());
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
    let Some(pem) = state.disclosure_keys.key(&state.http, partner, &key_id).await else {
        return Err(bad_request(format!("unknown key identifier for partner {:?}", partner.name)));
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
            palisade_core::mail::notify(&state.mailer, &user, "An API token of yours leaked and was revoked", &what);
        }
    }
    tracing::info!(partner = %partner.name, reported = reports.len(), revoked, "token disclosure processed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
