//! JSON request bodies: their size limit and their parsing into typed values.

use crate::http::error::{ApiResult, bad_request, too_large};

/// The body limit of every JSON endpoint (login, accounts, tokens, roles, publishers, yank,
/// quarantine decisions, the OIDC exchange). The largest legitimate body is the OIDC exchange's
/// `{"token": ...}`, whose ID token may be at most 16 KiB; the others are a few hundred bytes.
/// Also the limit of routes that take no body.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// Parses a JSON request body into `T`, with a 400 that says what is wrong. The body was already
/// bounded by `limits::bound_body`; the check here keeps the parser bounded wherever it is called.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.len() > JSON_BODY_LIMIT {
        return Err(too_large(format!("the JSON body is larger than {} KiB", JSON_BODY_LIMIT / 1024)));
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}
