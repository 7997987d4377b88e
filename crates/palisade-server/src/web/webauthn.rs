//! Security keys and passkeys in the browser: the JSON endpoints `webauthn.js` calls. Each pair
//! (`options`, then `validate`) wraps the account API's own WebAuthn handlers
//! (`accounts::webauthn`), so the ceremonies, rate limits, events and mail are the API's; this
//! module checks the page's CSRF token (sent in `X-CSRF-Token`), takes the login ticket from its
//! cookie, and turns a completed login into the session cookie.
//!
//! - `/manage/account/webauthn/options` and `/validate`: add a security key or passkey.
//! - `/account/login/webauthn/options` and `/validate`: a security key as the second factor.
//! - `/account/login/passkey/options` and `/validate`: log in with a passkey alone.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::account::{body, json_of, safe_next, session_cookies};
use super::session::{LOGIN, Visitor};
use crate::AppState;
use crate::accounts::webauthn as api;
use crate::http::error::{ApiError, bad_request, unauthorized};

/// A refusal as `webauthn.js` shows it: `{"error": message}` with the status.
fn refused(e: ApiError) -> Response {
    let message = if e.status.is_server_error() { "The server could not answer; try again later.".to_string() } else { e.message };
    (e.status, Json(json!({ "error": message }))).into_response()
}

fn csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

fn parse(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("malformed request: {e}")))
}

fn string(v: &Value, key: &str) -> Value {
    v.get(key).filter(|s| s.is_string()).cloned().unwrap_or(Value::Null)
}

// ---- adding a key ---------------------------------------------------------------------------

pub async fn register_options(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap, raw: Bytes) -> Response {
    let run = async {
        signed_in(&state, &visitor, &headers).await?;
        let b = parse(&raw)?;
        let mut request = json!({ "password": string(&b, "password"), "kind": string(&b, "kind") });
        if let Some(name) = b.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) {
            request["name"] = json!(name);
        }
        api::register_begin(State(state.clone()), visitor.caller(), body(request)).await
    };
    match run.await {
        Ok(answer) => answer.into_response(),
        Err(e) => refused(e),
    }
}

pub async fn register_validate(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap, raw: Bytes) -> Response {
    let run = async {
        signed_in(&state, &visitor, &headers).await?;
        let b = parse(&raw)?;
        let request = json!({ "ceremony": string(&b, "ceremony"), "credential": b.get("credential").cloned().unwrap_or(Value::Null) });
        let created = json_of(api::register_finish(State(state.clone()), visitor.caller(), body(request)).await?).await;
        let what = if created["kind"] == "passkey" { "Passkey" } else { "Security key" };
        let mut out = json!({
            "id": created["id"],
            "kind": created["kind"],
            "message": format!("{what} {:?} added.", created["name"].as_str().unwrap_or_default()),
            "redirect": if created["kind"] == "passkey" { "/manage/account/?added=passkey" } else { "/manage/account/?added=security_key" },
        });
        if let Some(codes) = created.get("recovery_codes") {
            out["recovery_codes"] = codes.clone();
            out["message"] = json!(format!(
                "{what} {:?} added. Keep the recovery codes below: they are shown only now.",
                created["name"].as_str().unwrap_or_default()
            ));
        }
        Ok::<_, ApiError>(out)
    };
    match run.await {
        Ok(out) => (StatusCode::CREATED, Json(out)).into_response(),
        Err(e) => refused(e),
    }
}

/// A signed-in visitor whose request carries the page's CSRF token.
async fn signed_in(state: &AppState, visitor: &Visitor, headers: &HeaderMap) -> Result<(), ApiError> {
    if visitor.user(state).await.is_none() {
        return Err(unauthorized("you are not logged in (or the session ended): reload the page"));
    }
    visitor.check_form(csrf(headers))
}

// ---- logging in -----------------------------------------------------------------------------

/// The JSON answer to a completed login: the session cookie, and where to go.
fn logged_in(answer: &Value, next: Option<&str>) -> Response {
    let mut r = Json(json!({ "redirect": safe_next(next) })).into_response();
    for cookie in session_cookies(answer) {
        r.headers_mut().append(header::SET_COOKIE, cookie);
    }
    r
}

fn next_of(b: &Value) -> Option<String> {
    b.get("next").and_then(Value::as_str).map(str::to_string)
}

pub async fn second_factor_options(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap) -> Response {
    let run = async {
        visitor.check_anonymous_form(csrf(&headers))?;
        let ticket = visitor.cookie(LOGIN).ok_or_else(|| unauthorized("the login has expired; log in again"))?;
        api::second_factor_begin(State(state.clone()), visitor.client.clone(), body(json!({ "ticket": ticket }))).await
    };
    match run.await {
        Ok(answer) => answer.into_response(),
        Err(e) => refused(e),
    }
}

pub async fn second_factor_validate(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap, raw: Bytes) -> Response {
    let run = async {
        visitor.check_anonymous_form(csrf(&headers))?;
        let ticket = visitor.cookie(LOGIN).ok_or_else(|| unauthorized("the login has expired; log in again"))?;
        let b = parse(&raw)?;
        let request = json!({ "ticket": ticket, "ceremony": string(&b, "ceremony"), "credential": b.get("credential").cloned().unwrap_or(Value::Null) });
        let Json(answer) = api::second_factor_finish(State(state.clone()), visitor.client.clone(), body(request)).await?;
        Ok::<_, ApiError>((answer, next_of(&b)))
    };
    match run.await {
        Ok((answer, next)) => logged_in(&answer, next.as_deref()),
        Err(e) => refused(e),
    }
}

pub async fn passkey_options(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap) -> Response {
    let run = async {
        visitor.check_anonymous_form(csrf(&headers))?;
        api::passkey_begin(State(state.clone()), visitor.client.clone()).await
    };
    match run.await {
        Ok(answer) => answer.into_response(),
        Err(e) => refused(e),
    }
}

pub async fn passkey_validate(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap, raw: Bytes) -> Response {
    let run = async {
        visitor.check_anonymous_form(csrf(&headers))?;
        let b = parse(&raw)?;
        let request = json!({ "ceremony": string(&b, "ceremony"), "credential": b.get("credential").cloned().unwrap_or(Value::Null) });
        let Json(answer) = api::passkey_finish(State(state.clone()), visitor.client.clone(), body(request)).await?;
        Ok::<_, ApiError>((answer, next_of(&b)))
    };
    match run.await {
        Ok((answer, next)) => logged_in(&answer, next.as_deref()),
        Err(e) => refused(e),
    }
}
