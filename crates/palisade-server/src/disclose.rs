//! `POST /_/secrets/disclose-token`: leaked-token reports from secret-scanning partners (GitHub's
//! format, as PyPI accepts it). The raw body is a JSON array `[{"token", "type", "url",
//! "source"}]`, signed with the partner's ECDSA P-256 key: the key id and the base64 DER signature
//! arrive in the partner's headers, and the public keys come from the configuration or from the
//! partner's key URL (cached, fetched again for an unknown key id).
//!
//! Every Palisade token in a verified report is revoked at once, recorded, and its owner is
//! told by mail. The answer is `204` whatever the outcome per token (it reveals nothing about
//! which tokens existed); an unsigned, badly signed or malformed report is a `400`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Client;
use crate::config::DisclosurePartner;
use crate::error::{ApiResult, bad_request, forbidden};
use crate::events::record;

/// Key id → PEM, and when they were fetched.
type KeySet = (HashMap<String, String>, Instant);

/// Partner keys fetched from their key URLs, per partner name.
#[derive(Default)]
pub struct PartnerKeys {
    cache: Mutex<HashMap<String, KeySet>>,
}

impl PartnerKeys {
    async fn key(&self, http: &reqwest::Client, partner: &DisclosurePartner, key_id: &str) -> Option<String> {
        if let Some(k) = partner.public_keys.iter().find(|k| k.key_identifier == key_id) {
            return Some(k.key.clone());
        }
        let url = partner.keys_url.as_deref()?;
        if let Some((keys, at)) = self.cache.lock().get(&partner.name) {
            if let Some(k) = keys.get(key_id) {
                return Some(k.clone());
            }
            if at.elapsed() < Duration::from_secs(60) {
                return None;
            }
        }
        let resp = http.get(url).header("accept", "application/json").timeout(Duration::from_secs(10)).send().await.ok()?;
        let doc: Value = resp.json().await.ok()?;
        let mut keys = HashMap::new();
        for k in doc.get("public_keys").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(pem)) = (k.get("key_identifier").and_then(Value::as_str), k.get("key").and_then(Value::as_str)) {
                keys.insert(id.to_string(), pem.to_string());
            }
        }
        let found = keys.get(key_id).cloned();
        self.cache.lock().insert(partner.name.clone(), (keys, Instant::now()));
        found
    }
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
        if !crate::tokens::well_formed(secret) {
            continue;
        }
        let reason = format!("reported as leaked by {} ({})", partner.name, r.url.as_deref().unwrap_or("no url"));
        let Ok(Some(token)) = state.db.revoke_token_by_hash(&crate::tokens::hash(secret), &reason).await else { continue };
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
            crate::mail::notify(&state.mailer, &user, "An API token of yours leaked and was revoked", &what);
        }
    }
    tracing::info!(partner = %partner.name, reported = reports.len(), revoked, "token disclosure processed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
