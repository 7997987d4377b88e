//! The account API: registration, email verification, password reset, login with a second
//! factor, sessions, TOTP enrolment and recovery codes, API tokens and the account's security
//! history. Every route answers JSON; errors use the server's plain-text envelope. Security keys
//! and passkeys (WebAuthn) are in [`webauthn`].
//!
//! Passwords and one-time codes are checked in constant time (argon2's verifier, `ct_eq`), an
//! unknown user costs the same as a wrong password, and wrong guesses are rate limited per
//! (account, address), per account, per address and globally, with short lockouts that grow
//! (see [`Limits`]). Secrets (passwords, codes, session and email tokens)
//! are never logged and never echoed in errors.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use palisade_auth::GuessLimiter;
use palisade_store::{EmailVerification, Session, User, now_micros};
use serde::Deserialize;
use serde_json::{Value, json};

use axum::Router;
use axum::routing::{delete, get, post};
use palisade_core::admin::tokens::TokenRequest;
use palisade_core::admin::users::{check_strength, hash_password, validate_email};
use palisade_core::admin::{self, Actor};
use palisade_core::events::record;
use palisade_core::mail::notify;

use crate::AppState;
use crate::http::auth::{
    Action, Caller, Client, SESSION_PREFIX, check_policy, require_phishing_resistant_for_critical, require_recent_login, require_session,
};
use crate::http::body::json_body;
use crate::http::error::{ApiError, ApiResult, bad_request, forbidden, internal, not_found, too_many, unauthorized};
use crate::http::throttle::{Limits, addr_key, check_limit, fail_limit, invalid_secret};

pub mod webauthn;

pub fn routes() -> Router<AppState> {
    webauthn::routes()
        .route("/api/register", post(register))
        .route("/api/verify-email", get(verify_email).post(verify_email))
        .route("/api/password/forgot", post(forgot_password))
        .route("/api/password/reset", post(reset_password))
        .route("/api/login", post(login))
        .route("/api/login/second-factor", post(second_factor))
        .route("/api/logout", post(logout))
        .route("/api/account", get(account))
        .route("/api/account/password", post(change_password))
        .route("/api/account/reauth", post(reauth))
        .route("/api/account/email", post(change_email))
        .route("/api/account/email/verify", post(resend_verification))
        .route("/api/account/2fa/totp", post(totp_begin))
        .route("/api/account/2fa/totp/{id}/confirm", post(totp_confirm))
        .route("/api/account/2fa/{id}", delete(remove_factor))
        .route("/api/account/recovery-codes", post(new_recovery_codes))
        .route("/api/account/sessions", get(sessions))
        .route("/api/account/sessions/{id}", delete(end_session))
        .route("/api/account/tokens", get(list_tokens).post(create_token))
        .route("/api/account/tokens/{id}", delete(revoke_token))
        .route("/api/account/events", get(events))
}

/// A guess of a password or code, counted against its (account, address) pair until it turns
/// out right or wrong.
pub(crate) struct Guess<'a> {
    limits: &'a Limits,
    limiter: &'a GuessLimiter,
    account: String,
    addr: String,
}

impl Guess<'_> {
    fn name(&self) -> &'static str {
        if std::ptr::eq(self.limiter, &self.limits.password) { "password" } else { "second_factor" }
    }

    pub(crate) fn wrong(&self) {
        self.limiter.fail(&self.account, &self.addr, Instant::now());
        self.limits.publish(self.name(), "fail", &self.account, &self.addr);
    }

    pub(crate) fn right(&self) {
        self.limiter.succeed(&self.account, &self.addr);
        self.limits.publish(self.name(), "succeed", &self.account, &self.addr);
    }
}

/// Admits a guess for `account` (`user:<id>`, or `login:<name>` for a name that matches no user,
/// which is limited alike so that a lockout does not reveal whether an account exists) from the
/// client's address, or answers 429. The account, address and global limits are waived when
/// `user` completed a login from this address recently; the pair's own limit never is. The
/// guess is counted against the pair before the (slow) check, so parallel guesses cannot all
/// slip under its limit.
pub(crate) async fn begin_guess<'a>(
    state: &'a AppState,
    limiter: &'a GuessLimiter,
    user: Option<&User>,
    account: String,
    client: &Client,
) -> ApiResult<Guess<'a>> {
    let addr = client.addr.clone().unwrap_or_else(|| "unknown".into());
    let now = Instant::now();
    if let Err(retry) = limiter.check_shared(&account, &addr, now) {
        let known = match (user, client.addr.as_deref()) {
            (Some(u), Some(a)) => {
                let since = now_micros().saturating_sub(state.limits.known_address.as_micros().min(i64::MAX as u128) as i64);
                state.db.logged_in_from(u.id, a, since).await.map_err(internal)?
            }
            _ => false,
        };
        if !known {
            return Err(too_many(retry));
        }
    }
    limiter.reserve(&account, &addr, now).map_err(too_many)?;
    let guess = Guess { limits: &state.limits, limiter, account, addr };
    state.limits.publish(guess.name(), "reserve", &guess.account, &guess.addr);
    Ok(guess)
}

pub(crate) fn micros_to_rfc3339(us: i64) -> String {
    palisade_core::timestamp(us)
}

/// Verifies `password` for `user` (or burns the same time when there is no such user).
async fn password_ok(state: &AppState, user: Option<&User>, password: &str) -> ApiResult<bool> {
    let hash = match user {
        Some(u) => state.db.password_hash(u.id).await.map_err(internal)?,
        None => None,
    };
    let password = password.to_string();
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => palisade_auth::verify_password(&password, &h),
        None => {
            palisade_auth::verify_dummy(&password);
            false
        }
    })
    .await
    .map_err(internal)
}

// ---- email links --------------------------------------------------------------------------

/// Sends a verification link for `email` to `user`. Returns false if no mail can be sent.
pub async fn send_verification(state: &AppState, user: &User, email: &str) -> ApiResult<bool> {
    if !state.mailer.enabled() {
        return Ok(false);
    }
    let secret = palisade_auth::random_token("", 32);
    let expires = now_micros() + 48 * 3600 * 1_000_000;
    state.db.create_email_token(&palisade_auth::hash_secret(&secret), user.id, "verify", email, expires).await.map_err(internal)?;
    let base = state.base_url();
    let body = format!(
        "Hello {},\n\nconfirm that {email} is your address for Palisade by opening this link within 48 hours:\n\n\
         {base}/account/verify-email/?token={secret}\n\n(From a script: GET {base}/api/verify-email?token={secret} )\n\n\
         If you did not ask for this, ignore this message.\n",
        user.name
    );
    state.mailer.send_secret(email, "[Palisade] Verify your email address", body).await;
    Ok(true)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    pub token: Option<String>,
}

/// `GET|POST /api/verify-email?token=...` (the link in the mail; POST also takes `{"token"}`).
pub async fn verify_email(
    State(state): State<AppState>,
    client: Client,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let token = match q.token {
        Some(t) => t,
        None if !body.is_empty() => json_body::<TokenQuery>(&body)?.token.unwrap_or_default(),
        None => String::new(),
    };
    let t = match state.db.verify_email_link(&palisade_auth::hash_secret(token.trim())).await.map_err(internal)? {
        EmailVerification::Verified(t) => t,
        EmailVerification::NoSuchLink => {
            return Err(invalid_secret(&state, &client, bad_request("this verification link is invalid, expired or already used")));
        }
        EmailVerification::AddressChanged(_) => return Err(bad_request("this address is no longer the account's address")),
        // The link holder reads this address's mail, so telling them it is taken reveals nothing.
        EmailVerification::TakenByAnother(t) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "{} is already the verified address of another account; this link stays valid until it expires, and works once that account uses another address",
                    t.email
                ),
            ));
        }
    };
    let user = state.db.user_by_id(t.user_id).await?;
    record(&state, "email_verified", &user.name, Some(user.id), None, &client, json!({ "email": t.email })).await;
    Ok(Json(json!({ "verified": true, "email": t.email })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    email: String,
    password: String,
}

/// `POST /api/register`, when `accounts.registration` is on.
pub async fn register(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Response> {
    if !state.config.accounts.registration {
        return Err(forbidden("self-registration is disabled on this instance; ask an administrator for an account"));
    }
    let b: RegisterBody = json_body(&body)?;
    check_limit(&state.limits.tokens, &[addr_key(&client)])?;
    palisade_core::admin::validate_user_name(&b.name).map_err(|e| bad_request(e.to_string()))?;
    validate_email(&b.email)?;
    check_strength(&b.password, &b.name, Some(&b.email))?;
    let hash = hash_password(&b.password).await?;
    fail_limit(&state.limits, &state.limits.tokens, &[addr_key(&client)]);
    let user = state.db.create_user(&b.name, false, Some(&b.email), false, Some(&hash)).await?;
    record(&state, "account_created", &user.name, Some(user.id), None, &client, json!({ "email": b.email })).await;
    let sent = send_verification(&state, &user, &b.email).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": user.name, "email": b.email, "verification_sent": sent }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgotBody {
    login: String,
}

/// `POST /api/password/forgot`: always 202, so it does not reveal whether an account exists.
pub async fn forgot_password(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Response> {
    let b: ForgotBody = json_body(&body)?;
    let keys = [addr_key(&client), format!("reset:{}", b.login.to_lowercase())];
    check_limit(&state.limits.mail, &keys)?;
    fail_limit(&state.limits, &state.limits.mail, &keys);
    if let Some(user) = state.db.user_by_login(b.login.trim()).await.map_err(internal)?
        && user.email_verified()
        && let Some(email) = &user.email
    {
        let secret = palisade_auth::random_token("", 32);
        let expires = now_micros() + 3600 * 1_000_000;
        state.db.create_email_token(&palisade_auth::hash_secret(&secret), user.id, "reset", email, expires).await.map_err(internal)?;
        let base = state.base_url();
        let body = format!(
            "Hello {},\n\nsomeone asked to reset your Palisade password. Use this token within an hour:\n\n{secret}\n\n\
             in the browser: {base}/account/reset-password/?token={secret}\n\n\
             or from a script: POST {base}/api/password/reset with {{\"token\": \"...\", \"new_password\": \"...\"}}\n\n\
             If it was not you, ignore this message; your password is unchanged.\n",
            user.name
        );
        state.mailer.send_secret(email, "[Palisade] Password reset", body).await;
        record(&state, "password_reset_requested", "anonymous", Some(user.id), None, &client, Value::Null).await;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": true, "message": "if the account exists and has a verified address, a reset token was sent" })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    new_password: String,
}

/// Stores a new (already strength-checked) password, which ends every session and revokes every
/// token, then records the event and tells the user. Returns (sessions ended, tokens revoked).
async fn apply_new_password(
    state: &AppState,
    user: &User,
    client: &Client,
    password: String,
    kind: &str,
    how: &str,
) -> ApiResult<(u64, u64)> {
    let phc = hash_password(&password).await?;
    let (sessions, tokens) = state.db.set_password(user.id, &phc).await.map_err(internal)?;
    record(state, kind, &user.name, Some(user.id), None, client, json!({ "sessions_ended": sessions, "tokens_revoked": tokens })).await;
    let what = format!("The password of your Palisade account was {how}. All sessions were ended and all API tokens revoked.");
    notify(&state.mailer, user, &format!("Your password was {}", if kind == "password_reset" { "reset" } else { "changed" }), &what).await;
    Ok((sessions, tokens))
}

/// `POST /api/password/reset`: sets a new password with a mailed token; ends every session and
/// revokes every API token.
pub async fn reset_password(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: ResetBody = json_body(&body)?;
    let hash = palisade_auth::hash_secret(b.token.trim());
    let Some(t) = state.db.use_email_token(&hash, "reset").await.map_err(internal)? else {
        return Err(invalid_secret(&state, &client, bad_request("this reset token is invalid, expired or already used")));
    };
    let user = state.db.user_by_id(t.user_id).await?;
    if let Err(e) = check_strength(&b.new_password, &user.name, user.email.as_deref()) {
        // Give the token back: the user did nothing wrong but choose a weak password.
        state.db.restore_email_token(&hash).await.map_err(internal)?;
        return Err(e.into());
    }
    let (sessions, tokens) =
        apply_new_password(&state, &user, &client, b.new_password, "password_reset", "reset with a mailed token").await?;
    Ok(Json(json!({ "reset": true, "sessions_ended": sessions, "tokens_revoked": tokens })))
}

// ---- login --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    login: String,
    password: String,
}

/// A new session (`stage` `active`, or `second_factor` for a login ticket) made by `method`.
async fn new_session(state: &AppState, user: &User, stage: &str, client: &Client, method: Option<&str>) -> ApiResult<(String, i64)> {
    let secret = palisade_auth::random_token(SESSION_PREFIX, 32);
    let ttl = if stage == "active" { state.config.accounts.session_micros() } else { 300 * 1_000_000 };
    let expires = now_micros().saturating_add(ttl);
    state
        .db
        .create_session(palisade_store::NewSession {
            user_id: user.id,
            hash: &palisade_auth::hash_secret(&secret),
            stage,
            expires_at: expires,
            addr: client.addr.as_deref(),
            user_agent: client.user_agent.as_deref(),
            method,
        })
        .await
        .map_err(internal)?;
    Ok((secret, expires))
}

/// Finishes a login: an active session, the event, and a mail when the client is new.
pub(crate) async fn complete_login(state: &AppState, user: &User, client: &Client, method: &str) -> ApiResult<Json<Value>> {
    let known = state.db.known_client(user.id, client.addr.as_deref(), client.user_agent.as_deref()).await.map_err(internal)?;
    let (secret, expires) = new_session(state, user, "active", client, Some(method)).await?;
    record(state, "login", &user.name, Some(user.id), None, client, json!({ "method": method })).await;
    if !known {
        let what = format!(
            "There was a login to your Palisade account from a client not seen before: address {}, user agent {}.",
            client.addr.as_deref().unwrap_or("unknown"),
            client.user_agent.as_deref().unwrap_or("unknown")
        );
        notify(&state.mailer, user, "New login to your account", &what).await;
    }
    Ok(Json(json!({
        "session": secret,
        "expires": micros_to_rfc3339(expires),
        "user": user.name,
        "two_factor": user.has_2fa,
    })))
}

/// `POST /api/login` `{"login", "password"}`: a session, or a ticket for the second factor.
pub async fn login(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: LoginBody = json_body(&body)?;
    let user = state.db.user_by_login(b.login.trim()).await.map_err(internal)?;
    let account = match &user {
        Some(u) => format!("user:{}", u.id),
        None => format!("login:{}", b.login.trim().to_lowercase()),
    };
    let guess = begin_guess(&state, &state.limits.password, user.as_ref(), account, &client).await?;
    if !password_ok(&state, user.as_ref(), &b.password).await? {
        guess.wrong();
        if let Some(u) = &user {
            record(&state, "login_failed", "anonymous", Some(u.id), None, &client, json!({ "reason": "password" })).await;
        }
        return Err(unauthorized("invalid login or password"));
    }
    let user = user.ok_or_else(|| unauthorized("invalid login or password"))?;
    if user.disabled_at.is_some() {
        return Err(forbidden("this account is disabled"));
    }
    guess.right();
    // A password that today's policy would refuse (common, short, guessable) still logs in,
    // but the client is told to have it changed.
    let weak = check_strength(&b.password, &user.name, user.email.as_deref()).is_err();
    if user.has_2fa {
        let (ticket, expires) = new_session(&state, &user, "second_factor", &client, None).await?;
        let mut methods = vec!["totp", "recovery_code"];
        if user.has_webauthn {
            methods.push("webauthn");
        }
        return Ok(Json(json!({
            "second_factor_required": true,
            "ticket": ticket,
            "expires": micros_to_rfc3339(expires),
            "methods": methods,
            "password_change_recommended": weak,
        })));
    }
    let Json(mut out) = complete_login(&state, &user, &client, "password").await?;
    out["password_change_recommended"] = json!(weak);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondFactorBody {
    ticket: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// The login ticket (the session between the password and the second factor) and its user.
pub(crate) async fn login_ticket(state: &AppState, client: &Client, ticket: &str) -> ApiResult<(Session, User)> {
    let Some(ticket) = state.db.session_by_hash(&palisade_auth::hash_secret(ticket.trim())).await.map_err(internal)? else {
        return Err(invalid_secret(state, client, unauthorized("the login ticket is invalid or expired; log in again")));
    };
    if ticket.stage != "second_factor" {
        return Err(bad_request("this is not a login ticket"));
    }
    let user = state.db.user_by_id(ticket.user_id).await?;
    Ok((ticket, user))
}

/// Ends a login ticket once its second factor is right. It is single-use: of two concurrent
/// completions only one gets a session.
pub(crate) async fn use_ticket(state: &AppState, ticket: &Session) -> ApiResult<()> {
    if !state.db.revoke_session(ticket.id, ticket.user_id).await.map_err(internal)? {
        return Err(unauthorized("the login ticket was already used; log in again"));
    }
    Ok(())
}

/// Checks a TOTP code against the user's confirmed factors and consumes its time step.
async fn totp_ok(state: &AppState, user_id: i64, code: &str, pending: Option<i64>) -> ApiResult<Option<i64>> {
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    for f in state.db.totp_factors(user_id, pending).await.map_err(internal)? {
        if pending.is_some() && Some(f.id) != pending {
            continue;
        }
        if let Some(step) = palisade_auth::verify_totp(&f.secret, code, now, f.last_used_step)
            && state.db.use_totp_step(f.id, step, pending.is_some()).await.map_err(internal)?
        {
            return Ok(Some(f.id));
        }
    }
    Ok(None)
}

/// `POST /api/login/second-factor` `{"ticket", "code"}` or `{"ticket", "recovery_code"}`.
pub async fn second_factor(State(state): State<AppState>, client: Client, body: Bytes) -> ApiResult<Json<Value>> {
    let b: SecondFactorBody = json_body(&body)?;
    if b.code.is_some() == b.recovery_code.is_some() {
        return Err(bad_request("send exactly one of \"code\" and \"recovery_code\""));
    }
    let (ticket, user) = login_ticket(&state, &client, &b.ticket).await?;
    let guess = begin_guess(&state, &state.limits.second_factor, Some(&user), format!("user:{}", user.id), &client).await?;
    let method = match (&b.code, &b.recovery_code) {
        (Some(code), _) => totp_ok(&state, user.id, code, None).await?.map(|_| "totp"),
        (None, rc) => {
            let hash = palisade_auth::hash_secret(&palisade_auth::normalize_recovery_code(rc.as_deref().unwrap_or_default()));
            state.db.use_recovery_code(user.id, &hash).await.map_err(internal)?.then_some("recovery_code")
        }
    };
    let Some(method) = method else {
        guess.wrong();
        record(&state, "login_failed", "anonymous", Some(user.id), None, &client, json!({ "reason": "second_factor" })).await;
        return Err(unauthorized("invalid or already used code"));
    };
    guess.right();
    use_ticket(&state, &ticket).await?;
    if method == "recovery_code" {
        let left = state.db.recovery_codes_left(user.id).await.map_err(internal)?;
        notify(
            &state.mailer,
            &user,
            "A recovery code was used",
            &format!("A recovery code was used to log in to your account; {left} remain."),
        )
        .await;
    }
    complete_login(&state, &user, &client, method).await
}

/// `POST /api/logout`: ends the calling session.
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
    let uid = require_session(&p)?;
    if let crate::http::auth::Credential::Session { id } = p.credential {
        state.db.revoke_session(id, uid).await.map_err(internal)?;
    }
    record(&state, "logout", &p.user_name, Some(uid), None, &caller.client, Value::Null).await;
    Ok(Json(json!({ "logged_out": true })))
}

// ---- the account ----------------------------------------------------------------------------

/// `GET /api/account`
pub async fn account(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (p, user) = caller.session(&state).await?;
    let factors = state.db.second_factors(user.id).await.map_err(internal)?;
    let left = state.db.recovery_codes_left(user.id).await.map_err(internal)?;
    Ok(Json(json!({
        "name": user.name,
        "email": user.email,
        "email_verified": user.email_verified(),
        "is_admin": user.is_admin,
        "second_factors": factors.iter().map(|f| json!({ "id": f.id, "kind": f.kind, "name": f.name, "created": micros_to_rfc3339(f.created_at), "last_used": f.last_used_at.map(micros_to_rfc3339) })).collect::<Vec<_>>(),
        "recovery_codes_left": left,
        "may_publish": check_policy(&state, &p, "publish").is_ok(),
        "policy": { "require_2fa": state.config.accounts.require_2fa, "require_verified_email": state.config.accounts.require_verified_email },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Re-checks the password for a sensitive change, rate limited like login.
pub(crate) async fn confirm_password(state: &AppState, user: &User, client: &Client, password: &str) -> ApiResult<()> {
    let guess = begin_guess(state, &state.limits.password, Some(user), format!("user:{}", user.id), client).await?;
    if password_ok(state, Some(user), password).await? {
        guess.right();
    } else {
        guess.wrong();
        record(state, "password_check_failed", &user.name, Some(user.id), None, client, Value::Null).await;
        return Err(forbidden("the password is wrong"));
    }
    Ok(())
}

/// `POST /api/account/reauth` `{"password"}`: confirms it is still the account's holder before a
/// sensitive change. The session is replaced by a new one (the id rotates), a password login,
/// whose login counts as recent.
pub async fn reauth(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (p, user) = caller.session(&state).await?;
    let b: PasswordBody = json_body(&body)?;
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    let crate::http::auth::Credential::Session { id } = p.credential else { return Err(bad_request("not a session")) };
    // It proved the password only: the new session counts as a password login (a passkey
    // session re-authenticated this way no longer meets the critical-project policy).
    let (secret, expires) = new_session(&state, &user, "active", &caller.client, Some("password")).await?;
    state.db.revoke_session(id, user.id).await.map_err(internal)?;
    record(&state, "reauthenticated", &user.name, Some(user.id), None, &caller.client, Value::Null).await;
    Ok(Json(json!({ "session": secret, "expires": micros_to_rfc3339(expires) })))
}

/// `POST /api/account/password`: ends every session and revokes every API token, then opens a
/// new session for the caller.
pub async fn change_password(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: PasswordChange = json_body(&body)?;
    confirm_password(&state, &user, &caller.client, &b.current_password).await?;
    check_strength(&b.new_password, &user.name, user.email.as_deref())?;
    let (sessions, tokens) = apply_new_password(&state, &user, &caller.client, b.new_password, "password_changed", "changed").await?;
    let (secret, expires) = new_session(&state, &user, "active", &caller.client, Some("password")).await?;
    Ok(Json(
        json!({ "changed": true, "sessions_ended": sessions, "tokens_revoked": tokens, "session": secret, "expires": micros_to_rfc3339(expires) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailChange {
    email: String,
    password: String,
}

/// `POST /api/account/email`: a new, unverified address; a verification link goes to it.
pub async fn change_email(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: EmailChange = json_body(&body)?;
    validate_email(&b.email)?;
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    state.db.set_email(user.id, &b.email).await?;
    record(&state, "email_changed", &user.name, Some(user.id), None, &caller.client, json!({ "old": user.email, "new": b.email })).await;
    notify(
        &state.mailer,
        &user,
        "Your email address was changed",
        &format!("The address of your Palisade account was changed to {}.", b.email),
    )
    .await;
    let user = state.db.user_by_id(user.id).await?;
    let sent = send_verification(&state, &user, &b.email).await?;
    Ok(Json(json!({ "email": b.email, "verification_sent": sent })))
}

/// `POST /api/account/email/verify`: sends the verification link again.
pub async fn resend_verification(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let Some(email) = user.email.clone() else { return Err(bad_request("the account has no email address")) };
    if user.email_verified() {
        return Ok(Json(json!({ "email": email, "verified": true })));
    }
    let keys = [format!("verify:{}", user.id)];
    check_limit(&state.limits.mail, &keys)?;
    fail_limit(&state.limits, &state.limits.mail, &keys);
    let sent = send_verification(&state, &user, &email).await?;
    if !sent {
        return Err(bad_request("this instance sends no mail (no SMTP server configured); ask an administrator to verify the address"));
    }
    record(&state, "email_verification_sent", &user.name, Some(user.id), None, &caller.client, Value::Null).await;
    Ok(Json(json!({ "email": email, "verification_sent": true })))
}

// ---- second factors -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    password: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/account/2fa/totp` `{"password", "name"?}`: a new TOTP secret and its
/// `otpauth://` URI; the factor counts once confirmed with a code.
pub async fn totp_begin(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: EnrolBody = json_body(&body)?;
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    let name: String = b.name.unwrap_or_else(|| "authenticator".into()).chars().filter(|c| !c.is_control()).take(64).collect();
    let secret = palisade_auth::new_totp_secret();
    let id = state.db.add_totp(user.id, &name, &secret).await.map_err(internal)?;
    let issuer = state
        .config
        .public_url
        .as_deref()
        .map(|u| format!("Palisade ({})", u.trim_start_matches("https://").trim_start_matches("http://")))
        .unwrap_or_else(|| "Palisade".into());
    Ok(Json(json!({
        "id": id,
        "secret": palisade_auth::secret_base32(&secret),
        "otpauth_uri": palisade_auth::otpauth_uri(&secret, &issuer, &user.name),
        "confirm": format!("/api/account/2fa/totp/{id}/confirm"),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

/// `POST /api/account/2fa/totp/{id}/confirm` `{"code"}`. The first factor also yields recovery codes.
pub async fn totp_confirm(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: CodeBody = json_body(&body)?;
    let guess = begin_guess(&state, &state.limits.second_factor, Some(&user), format!("user:{}", user.id), &caller.client).await?;
    if totp_ok(&state, user.id, &b.code, Some(id)).await?.is_none() {
        guess.wrong();
        return Err(bad_request("the code does not match this authenticator (check the device's clock), or was already used"));
    }
    guess.right();
    // Sessions opened with the password alone before this factor existed must not carry the
    // new assurance: end every session but this one.
    let (p, _) = caller.session(&state).await?;
    if let crate::http::auth::Credential::Session { id: current } = p.credential {
        state.db.revoke_sessions(user.id, Some(current)).await.map_err(internal)?;
    }
    let mut out = json!({ "id": id, "confirmed": true });
    if state.db.recovery_codes_left(user.id).await.map_err(internal)? == 0 {
        out["recovery_codes"] = json!(issue_recovery_codes(&state, user.id).await?);
    }
    record(&state, "2fa_added", &user.name, Some(user.id), None, &caller.client, json!({ "kind": "totp", "id": id })).await;
    notify(&state.mailer, &user, "Two-factor authentication added", "A TOTP authenticator was added to your Palisade account.").await;
    Ok(Json(out))
}

pub(crate) async fn issue_recovery_codes(state: &AppState, user_id: i64) -> ApiResult<Vec<String>> {
    let codes = palisade_auth::new_recovery_codes(10);
    let hashes: Vec<String> = codes.iter().map(|c| palisade_auth::hash_secret(&palisade_auth::normalize_recovery_code(c))).collect();
    state.db.replace_recovery_codes(user_id, &hashes).await.map_err(internal)?;
    Ok(codes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// `DELETE /api/account/2fa/{id}` `{"password"}`.
pub async fn remove_factor(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: PasswordBody = json_body(&body)?;
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    if !state.db.remove_second_factor(id, user.id).await.map_err(internal)? {
        return Err(not_found(format!("second factor {id} not found")));
    }
    record(&state, "2fa_removed", &user.name, Some(user.id), None, &caller.client, json!({ "id": id })).await;
    notify(&state.mailer, &user, "Two-factor authentication removed", "A second factor was removed from your Palisade account.").await;
    let user = state.db.user_by_id(user.id).await?;
    Ok(Json(json!({ "removed": id, "two_factor": user.has_2fa })))
}

/// `POST /api/account/recovery-codes` `{"password"}`: replaces the recovery codes.
pub async fn new_recovery_codes(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let b: PasswordBody = json_body(&body)?;
    confirm_password(&state, &user, &caller.client, &b.password).await?;
    if !user.has_2fa {
        return Err(bad_request("recovery codes need a second factor; enrol one first"));
    }
    let codes = issue_recovery_codes(&state, user.id).await?;
    record(&state, "recovery_codes_regenerated", &user.name, Some(user.id), None, &caller.client, Value::Null).await;
    notify(
        &state.mailer,
        &user,
        "New recovery codes",
        "New recovery codes were generated for your Palisade account; the old ones no longer work.",
    )
    .await;
    Ok(Json(json!({ "recovery_codes": codes })))
}

// ---- sessions -----------------------------------------------------------------------------

fn session_json(s: &Session, current: Option<i64>) -> Value {
    json!({
        "id": s.id,
        "created": micros_to_rfc3339(s.created_at),
        "last_seen": micros_to_rfc3339(s.last_seen_at),
        "expires": micros_to_rfc3339(s.expires_at),
        "addr": s.addr,
        "user_agent": s.user_agent,
        "current": Some(s.id) == current,
    })
}

/// `GET /api/account/sessions`
pub async fn sessions(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (p, user) = caller.session(&state).await?;
    let current = match p.credential {
        crate::http::auth::Credential::Session { id } => Some(id),
        _ => None,
    };
    let list = state.db.sessions(user.id).await.map_err(internal)?;
    Ok(Json(json!({ "sessions": list.iter().map(|s| session_json(s, current)).collect::<Vec<_>>() })))
}

/// `DELETE /api/account/sessions/{id}`
pub async fn end_session(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    if !state.db.revoke_session(id, user.id).await.map_err(internal)? {
        return Err(not_found(format!("session {id} not found")));
    }
    record(&state, "session_ended", &user.name, Some(user.id), None, &caller.client, json!({ "id": id })).await;
    Ok(Json(json!({ "ended": id })))
}

// ---- API tokens -----------------------------------------------------------------------------

pub fn token_json(t: &palisade_store::Token) -> Value {
    json!({
        "id": t.id,
        "hint": t.hint,
        "description": t.description,
        "projects": t.project_scope(),
        "actions": t.action_scope(),
        "created": micros_to_rfc3339(t.created_at),
        "expires": t.expires_at.map(micros_to_rfc3339),
        "revoked": t.revoked_at.map(micros_to_rfc3339),
        "revoked_reason": t.revoked_reason,
        "last_used": t.last_used_at.map(micros_to_rfc3339),
        "last_used_addr": t.last_used_addr,
    })
}

/// `GET /api/account/tokens`
pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let (_, user) = caller.session(&state).await?;
    let tokens = state.db.user_tokens(user.id).await.map_err(internal)?;
    Ok(Json(json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(), "regex": palisade_core::tokens::REGEX })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

/// `POST /api/account/tokens` `{"description", "projects": [...], "actions": [...], "expires_in": "30d"}`:
/// the secret is in this answer and nowhere else, ever.
pub async fn create_token(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    let (p, user) = caller.session(&state).await?;
    check_policy(&state, &p, "create API tokens")?;
    require_recent_login(&state, &p, "creating an API token")?;
    require_phishing_resistant_for_critical(&state, &p, user.id, "creating an API token").await?;
    let b: NewTokenBody = json_body(&body)?;
    let keys = [format!("user:{}", user.id)];
    check_limit(&state.limits.tokens, &keys)?;
    for a in &b.actions {
        if !Action::SCOPES.contains(&a.as_str()) {
            return Err(bad_request(format!("unknown action {a:?}: expected upload, yank or manage")));
        }
    }
    // A token may name only projects the user has a role on (or that do not exist yet).
    for name in &b.projects {
        let n = palisade_dist::ProjectName::new(name).map_err(|e| bad_request(e.to_string()))?;
        if let Some(project) = state.db.project(n.normalized()).await.map_err(internal)?
            && !user.is_admin
            && state.db.role(project.id, user.id).await.map_err(internal)?.is_none()
        {
            return Err(forbidden(format!("user {:?} has no role on project {:?}", user.name, n.normalized())));
        }
    }
    let expires = b.expires_in.as_deref().map(admin::parse_duration).transpose()?;
    fail_limit(&state.limits, &state.limits.tokens, &keys);
    let request = TokenRequest { projects: &b.projects, actions: &b.actions, expires_in: expires, description: b.description.as_deref() };
    let (id, secret) = admin::create_token_for(&state, &Actor::of(&p, &caller.client), &user, request).await?;
    let t = state.db.token_by_id(id).await?.ok_or_else(|| internal("token vanished"))?;
    let mut out = token_json(&t);
    out["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `DELETE /api/account/tokens/{id}`
pub async fn revoke_token(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (p, user) = caller.session(&state).await?;
    admin::revoke_token(&state, &Actor::of(&p, &caller.client), id, Some(user.id), "revoked by its owner").await?;
    Ok(Json(json!({ "revoked": id })))
}

/// `GET /api/account/events`: the account's security history, newest first.
pub async fn events(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
    let uid = require_session(&p)?;
    let list = state.db.events(Some(uid), None, 500).await.map_err(internal)?;
    Ok(Json(json!({ "events": list.iter().map(palisade_core::events::to_json).collect::<Vec<_>>() })))
}
