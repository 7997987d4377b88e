//! Security keys and passkeys (WebAuthn) on the account API.
//!
//! Registration (a signed-in user, password re-checked):
//! `POST /api/account/webauthn` `{"password", "kind": "security_key"|"passkey", "name"?}` answers
//! `{"ceremony", "options"}`; the browser passes `options.publicKey` to
//! `navigator.credentials.create` and the result goes to
//! `POST /api/account/webauthn/finish` `{"ceremony", "credential"}`.
//!
//! Login with a security key as the second factor: `POST /api/login/webauthn` `{"ticket"}`, then
//! `POST /api/login/webauthn/finish` `{"ticket", "ceremony", "credential"}`. Login with a passkey
//! alone: `POST /api/login/passkey` `{}`, then `POST /api/login/passkey/finish`
//! `{"ceremony", "credential"}`.
//!
//! The server's half of each ceremony is kept in the database (any node may get the answer)
//! under the hash of the `ceremony` handle, bound to the user and the session or login ticket
//! that began it, for five minutes, and is taken on first use: a replayed answer finds nothing.
//! Failed assertions count as wrong second-factor guesses, with the TOTP's rate limits.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use palisade_auth::{KeyKind, RelyingParty, WebauthnError};
use palisade_core::events::record;
use palisade_core::mail::notify;
use palisade_store::{User, now_micros};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{begin_guess, complete_login, confirm_password, issue_recovery_codes, login_ticket, use_ticket};
use crate::AppState;
use crate::http::auth::{Caller, Client, Credential, require_phishing_resistant_for_critical};
use crate::http::body::json_body;
use crate::http::error::{ApiError, ApiResult, bad_request, internal, unauthorized};
use crate::http::throttle::{addr_key, check_limit, fail_limit, invalid_secret};

/// How long a ceremony may take (the browser's own timeout is five minutes too).
const CEREMONY_MICROS: i64 = 300 * 1_000_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/account/webauthn", post(register_begin))
        .route("/api/account/webauthn/finish", post(register_finish))
        .route("/api/login/webauthn", post(second_factor_begin))
        .route("/api/login/webauthn/finish", post(second_factor_finish))
        .route("/api/login/passkey", post(passkey_begin))
        .route("/api/login/passkey/finish", post(passkey_finish))
}

/// The instance as a relying party; WebAuthn needs a fixed origin, so `public_url` must be set.
fn relying_party(state: &AppState) -> ApiResult<RelyingParty> {
    let Some(url) = state.config.public_url.as_deref() else {
        return Err(bad_request(
            "security keys and passkeys need this instance's public_url to be set (the origin browsers sign for); ask an administrator",
        ));
    };
    RelyingParty::new(url, "Palisade").map_err(refused)
}

/// A ceremony that cannot go on: the instance's configuration, or the browser's answer.
fn refused(e: WebauthnError) -> ApiError {
    bad_request(e.to_string())
}

/// Keeps a ceremony's state; answers its handle.
async fn keep(state: &AppState, user: Option<i64>, purpose: &str, bound: Option<String>, st: &str) -> ApiResult<String> {
    let handle = palisade_auth::random_token("", 32);
    let expires = now_micros() + CEREMONY_MICROS;
    state.db.put_ceremony(&palisade_auth::hash_secret(&handle), user, purpose, bound.as_deref(), st, expires).await.map_err(internal)?;
    Ok(handle)
}

/// Takes a ceremony begun for `purpose` and bound to `bound`; an unknown, expired, used or
/// foreign one counts as an invalid secret.
async fn take(state: &AppState, client: &Client, handle: &str, purpose: &str, bound: Option<&str>) -> ApiResult<palisade_store::Ceremony> {
    let found = state.db.take_ceremony(&palisade_auth::hash_secret(handle.trim()), purpose).await.map_err(internal)?;
    match found {
        Some(c) if c.bound.as_deref() == bound => Ok(c),
        _ => Err(invalid_secret(
            state,
            client,
            bad_request("this security-key request is unknown, expired or already answered; start again"),
        )),
    }
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::SecurityKey => "security_key",
        KeyKind::Passkey => "passkey",
    }
}

fn session_bound(credential: &Credential) -> Option<String> {
    match credential {
        Credential::Session { id } => Some(format!("session:{id}")),
        _ => None,
    }
}

// ---- registration ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    password: String,
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/account/webauthn` `{"password", "kind", "name"?}`.
pub async fn register_begin(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (p, user) = caller.session(&state).await?;
    let b: RegisterBody = json_body(&body)?;
    let kind = match b.kind.as_str() {
        "security_key" => KeyKind::SecurityKey,
        "passkey" => KeyKind::Passkey,
        other => return Err(bad_request(format!("unknown kind {other:?}: expected \"security_key\" or \"passkey\""))),
    };
    let rp = relying_party(&state)?;
    if user.has_webauthn {
        require_phishing_resistant_for_critical(&state, &p, user.id, "adding a security key or passkey").await?;
    }
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    let name: String = b.name.unwrap_or_default().chars().filter(|c| !c.is_control()).take(64).collect::<String>().trim().to_string();
    let name = if name.is_empty() { if kind == KeyKind::Passkey { "passkey" } else { "security key" }.to_string() } else { name };
    let handle = state.db.webauthn_handle(user.id, &palisade_auth::new_user_handle()).await.map_err(internal)?;
    let existing: Vec<String> = state.db.webauthn_credentials(user.id).await.map_err(internal)?.into_iter().map(|c| c.credential).collect();
    let begun = rp.begin_registration(kind, &handle, &user.name, &existing).map_err(refused)?;
    let st = json!({ "kind": kind_name(kind), "name": name, "state": begun.state }).to_string();
    let ceremony = keep(&state, Some(user.id), "register", session_bound(&p.credential), &st).await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": begun.options })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishBody {
    ceremony: String,
    credential: Value,
    #[serde(default)]
    ticket: Option<String>,
}

/// `POST /api/account/webauthn/finish` `{"ceremony", "credential"}`: the new credential; the
/// account's first second factor also yields recovery codes.
pub async fn register_finish(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    let (p, user) = caller.session(&state).await?;
    let b: FinishBody = json_body(&body)?;
    let rp = relying_party(&state)?;
    let c = take(&state, &caller.client, &b.ceremony, "register", session_bound(&p.credential).as_deref()).await?;
    if c.user_id != Some(user.id) {
        return Err(bad_request("this security-key request belongs to another account"));
    }
    let st: Value = serde_json::from_str(&c.state).map_err(internal)?;
    let kind = if st["kind"] == "passkey" { KeyKind::Passkey } else { KeyKind::SecurityKey };
    let name = st["name"].as_str().unwrap_or("security key");
    let reg = rp.finish_registration(kind, &b.credential, st["state"].as_str().unwrap_or_default()).map_err(refused)?;
    let had_2fa = user.has_2fa;
    let id = state.db.add_webauthn(user.id, name, &reg.credential_id, kind == KeyKind::Passkey, &reg.stored).await?;
    // As with a new TOTP: sessions opened before this factor existed must not carry its
    // assurance, so every other session ends.
    if let Credential::Session { id: current } = p.credential {
        state.db.revoke_sessions(user.id, Some(current)).await.map_err(internal)?;
    }
    let mut out = json!({ "id": id, "kind": kind_name(kind), "name": name });
    if !had_2fa || state.db.recovery_codes_left(user.id).await.map_err(internal)? == 0 {
        out["recovery_codes"] = json!(issue_recovery_codes(&state, user.id).await?);
    }
    record(
        &state,
        "2fa_added",
        &user.name,
        Some(user.id),
        None,
        &caller.client,
        json!({ "kind": kind_name(kind), "id": id, "name": name }),
    )
    .await;
    let what = match kind {
        KeyKind::Passkey => format!("A passkey ({name}) was added to your Palisade account; it can log in without your password."),
        KeyKind::SecurityKey => format!("A security key ({name}) was added to your Palisade account."),
    };
    notify(&state.mailer, &user, "Security key added", &what).await;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

// ---- second factor --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    ticket: String,
}

/// `POST /api/login/webauthn` `{"ticket"}`: the assertion options for the user's keys.
pub async fn second_factor_begin(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: TicketBody = json_body(&body)?;
    let rp = relying_party(&state)?;
    let (ticket, user) = login_ticket(&state, &client, &b.ticket).await?;
    // Each begun ceremony costs a row until it expires: a ticket may begin a few, not thousands.
    let keys = [format!("webauthn-ticket:{}", ticket.id)];
    check_limit(&state.limits.tokens, &keys)?;
    fail_limit(&state.limits, &state.limits.tokens, &keys);
    let creds: Vec<String> = state.db.webauthn_credentials(user.id).await.map_err(internal)?.into_iter().map(|c| c.credential).collect();
    if creds.is_empty() {
        return Err(bad_request("this account has no security key or passkey; use its authenticator app or a recovery code"));
    }
    let begun = rp.begin_authentication(&creds).map_err(refused)?;
    let ceremony = keep(&state, Some(user.id), "second_factor", Some(format!("ticket:{}", ticket.id)), &begun.state).await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": begun.options })))
}

/// `POST /api/login/webauthn/finish` `{"ticket", "ceremony", "credential"}`: a session.
pub async fn second_factor_finish(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: FinishBody = json_body(&body)?;
    let rp = relying_party(&state)?;
    let (ticket, user) = login_ticket(&state, &client, b.ticket.as_deref().unwrap_or_default()).await?;
    let c = take(&state, &client, &b.ceremony, "second_factor", Some(&format!("ticket:{}", ticket.id))).await?;
    let guess = begin_guess(&state, &state.limits.second_factor, Some(&user), format!("user:{}", user.id), &client).await?;
    let creds: Vec<(String, String)> =
        state.db.webauthn_credentials(user.id).await.map_err(internal)?.into_iter().map(|c| (c.credential_id, c.credential)).collect();
    let verified = match rp.finish_authentication(&b.credential, &c.state, &creds) {
        Ok(v) => v,
        Err(e) => {
            guess.wrong();
            record(&state, "login_failed", "anonymous", Some(user.id), None, &client, json!({ "reason": "webauthn" })).await;
            return Err(unauthorized(e.to_string()));
        }
    };
    guess.right();
    let method = used(&state, &verified).await?;
    use_ticket(&state, &ticket).await?;
    complete_login(&state, &user, &client, method).await
}

/// Records the use of a verified credential; answers the login method it makes.
async fn used(state: &AppState, v: &palisade_auth::Verified) -> ApiResult<&'static str> {
    let Some(cred) = state.db.webauthn_by_credential_id(&v.credential_id).await.map_err(internal)? else {
        return Err(unauthorized("this security key was removed from the account"));
    };
    state.db.use_webauthn(cred.id, v.updated.as_deref()).await.map_err(internal)?;
    Ok(if cred.passkey { "passkey" } else { "security_key" })
}

// ---- passkey login --------------------------------------------------------------------------

/// `POST /api/login/passkey`: options for a login with a discoverable passkey, no user named.
/// Each begun login is counted against the client's address (they cost a row until they expire).
pub async fn passkey_begin(State(state): State<AppState>, client: Client) -> ApiResult<Json<Value>> {
    let rp = relying_party(&state)?;
    let keys = [format!("passkey:{}", addr_key(&client))];
    check_limit(&state.limits.tokens, &keys)?;
    fail_limit(&state.limits, &state.limits.tokens, &keys);
    let begun = rp.begin_passkey_login().map_err(refused)?;
    let ceremony = keep(&state, None, "passkey_login", None, &begun.state).await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": begun.options })))
}

/// `POST /api/login/passkey/finish` `{"ceremony", "credential"}`: a session.
pub async fn passkey_finish(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: FinishBody = json_body(&body)?;
    let rp = relying_party(&state)?;
    let c = take(&state, &client, &b.ceremony, "passkey_login", None).await?;
    let (credential_id, handle) = rp.passkey_login_identity(&b.credential).map_err(refused)?;
    let found = state.db.webauthn_by_credential_id(&credential_id).await.map_err(internal)?;
    let no_such = || invalid_secret(&state, &client, unauthorized("this passkey is not registered here (it may have been removed)"));
    let Some(cred) = found.filter(|c| c.passkey) else { return Err(no_such()) };
    let user: User = state.db.user_by_id(cred.user_id).await?;
    // The authenticator's user handle must be the account's own.
    let own = state.db.webauthn_handle(user.id, &palisade_auth::new_user_handle()).await.map_err(internal)?;
    if own != handle {
        return Err(no_such());
    }
    let guess = begin_guess(&state, &state.limits.second_factor, Some(&user), format!("user:{}", user.id), &client).await?;
    let verified = match rp.finish_passkey_login(&b.credential, &c.state, &cred.credential) {
        Ok(v) => v,
        Err(e) => {
            guess.wrong();
            record(&state, "login_failed", "anonymous", Some(user.id), None, &client, json!({ "reason": "passkey" })).await;
            return Err(unauthorized(e.to_string()));
        }
    };
    guess.right();
    // Said only to the passkey's holder, as the password login says it after the password.
    if user.disabled_at.is_some() {
        return Err(crate::http::error::forbidden("this account is disabled"));
    }
    used(&state, &verified).await?;
    complete_login(&state, &user, &client, "passkey").await
}
