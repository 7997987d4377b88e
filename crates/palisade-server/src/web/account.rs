//! Accounts in the browser: `/account/login/` (password, then a TOTP or recovery code),
//! `/account/logout/`, and `/manage/account/` (the account, two-factor enrolment with a QR code,
//! security keys and passkeys (see `webauthn`), API tokens, sessions). Each form calls the account API's own handler with the visitor's
//! session (`Visitor::caller`), so the pages apply exactly the API's rules, rate limits, events
//! and mail; this module only turns forms into those calls and answers into pages.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use minijinja::Value;
use serde_json::{Value as Json, json};

use super::session::{self, CSRF, LOGIN, SESSION, Visitor};
use super::templates::{self, ser};
use super::{error_page, html};
use crate::AppState;
use crate::accounts;
use crate::http::error::ApiError;

pub(super) type FormData = HashMap<String, String>;

pub(super) fn field<'a>(form: &'a FormData, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("")
}

/// `/manage/...` pages are only for the signed-in: others go to the login page, and back after.
pub(super) fn to_login(next: &str) -> Response {
    see_other(&format!("/account/login/?next={}", percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)))
}

/// `303 See Other`: where a form's answer sends the browser.
pub(super) fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A `next` that stays on this site: a path, never `//host` or a scheme.
pub(super) fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control))
        .unwrap_or("/manage/account/")
}

pub(super) fn render(state: &AppState, status: StatusCode, template: &str, ctx: Value) -> Response {
    match templates::render(template, ctx) {
        Ok(body) => {
            let mut r = html(status, body);
            // Pages with a user's data are never kept by caches.
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => super::from_api_error(state, crate::http::error::internal(e)),
    }
}

/// The JSON body of an API handler's answer.
pub(super) async fn json_of(response: Response) -> Json {
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Json::Null)
}

pub(super) fn body(value: Json) -> Bytes {
    Bytes::from(value.to_string())
}

// ---- login ----------------------------------------------------------------------------------

pub async fn login_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    login_form(&state, &visitor, q.get("next").map(String::as_str), None, StatusCode::OK)
}

/// The password form.
fn login_form(state: &AppState, visitor: &Visitor, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    anonymous_form(state, visitor, "login.html", next, error, status)
}

/// A form shown before login, with a fresh double-submit token when the visitor has none.
fn anonymous_form(
    state: &AppState,
    visitor: &Visitor,
    template: &str,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    anonymous_page(state, visitor, template, status, minijinja::context! { next => safe_next(next), error })
}

/// A page shown before login with forms on it (`ctx` adds to the site and the CSRF token).
pub(super) fn anonymous_page(state: &AppState, visitor: &Visitor, template: &str, status: StatusCode, ctx: Value) -> Response {
    let (csrf, fresh) = match visitor.cookie(CSRF) {
        Some(c) => (c.to_string(), false),
        None => (session::new_csrf(), true),
    };
    let registration = state.config.accounts.registration;
    let ctx = minijinja::context! { site => ser(templates::site(state)), csrf => csrf.clone(), registration, ..ctx };
    let mut r = render(state, status, template, ctx);
    if fresh {
        r.headers_mut().append(header::SET_COOKIE, session::set_cookie(CSRF, &csrf, 3600));
    }
    r
}

pub async fn login(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    let next = safe_next(form.get("next").map(String::as_str)).to_string();
    if let Err(e) = visitor.check_anonymous_form(form.get("csrf").map(String::as_str)) {
        return login_form(&state, &visitor, Some(&next), Some(&e.message), e.status);
    }
    let request = json!({ "login": field(&form, "username"), "password": field(&form, "password") });
    match accounts::login(State(state.clone()), visitor.client.clone(), body(request)).await {
        Ok(axum::Json(answer)) if answer["second_factor_required"] == true => {
            let ticket = answer["ticket"].as_str().unwrap_or_default();
            let mut r = see_other(&format!(
                "/account/login/second-factor/?next={}",
                percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
            ));
            r.headers_mut().append(header::SET_COOKIE, session::set_cookie(LOGIN, ticket, 300));
            r
        }
        Ok(axum::Json(answer)) => signed_in(&answer, &next),
        Err(e) => login_form(&state, &visitor, Some(&next), Some(&e.message), e.status),
    }
}

/// The answer to a completed login: the new session's cookie (a new id: it rotates at every
/// login), the login ticket forgotten, and on to `next`.
fn signed_in(answer: &Json, next: &str) -> Response {
    let mut r = see_other(next);
    for cookie in session_cookies(answer) {
        r.headers_mut().append(header::SET_COOKIE, cookie);
    }
    r
}

/// The cookies of a completed login: the session (as long as it lasts), the ticket forgotten.
pub(super) fn session_cookies(answer: &Json) -> [HeaderValue; 2] {
    let secret = answer["session"].as_str().unwrap_or_default();
    let expires = answer["expires"].as_str().and_then(|e| e.parse::<jiff::Timestamp>().ok());
    let max_age = expires.map(|t| (t.as_second() - jiff::Timestamp::now().as_second()).max(0) as u64).unwrap_or(3600);
    [session::set_cookie(SESSION, secret, max_age), session::set_cookie(LOGIN, "", 0)]
}

pub async fn second_factor_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    if visitor.cookie(LOGIN).is_none() {
        return see_other("/account/login/");
    }
    second_factor_form(&state, &visitor, q.get("next").map(String::as_str), None, StatusCode::OK)
}

fn second_factor_form(state: &AppState, visitor: &Visitor, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    anonymous_form(state, visitor, "second_factor.html", next, error, status)
}

pub async fn second_factor(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    let next = safe_next(form.get("next").map(String::as_str)).to_string();
    if let Err(e) = visitor.check_anonymous_form(form.get("csrf").map(String::as_str)) {
        return second_factor_form(&state, &visitor, Some(&next), Some(&e.message), e.status);
    }
    let Some(ticket) = visitor.cookie(LOGIN) else { return see_other("/account/login/") };
    let code = field(&form, "code").trim();
    let request = if form.get("method").map(String::as_str) == Some("recovery") {
        json!({ "ticket": ticket, "recovery_code": code })
    } else {
        json!({ "ticket": ticket, "code": code })
    };
    match accounts::second_factor(State(state.clone()), visitor.client.clone(), body(request)).await {
        Ok(axum::Json(answer)) => signed_in(&answer, &next),
        Err(e) => second_factor_form(&state, &visitor, Some(&next), Some(&e.message), e.status),
    }
}

pub async fn logout(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if let Err(e) = visitor.check_form(form.get("csrf").map(String::as_str)) {
        return error_page(&state, e.status, &e.message);
    }
    // Ending the session may fail (already ended): the cookie goes either way.
    let _ = accounts::logout(State(state.clone()), visitor.caller()).await;
    let mut r = see_other("/");
    r.headers_mut().append(header::SET_COOKIE, session::set_cookie(SESSION, "", 0));
    r
}

// ---- the account ----------------------------------------------------------------------------

/// `/manage/account/`: the account, its second factors, tokens and sessions; `notice` and
/// `error` report the last form, `extra` carries what is shown once (a token, recovery codes,
/// a TOTP enrolment).
async fn account_page(state: &AppState, visitor: &Visitor, status: StatusCode, extra: Value) -> Response {
    let Some((_, user)) = visitor.user(state).await else { return to_login("/manage/account/") };
    let caller = || visitor.caller();
    let account = match accounts::account(State(state.clone()), caller()).await {
        Ok(axum::Json(a)) => a,
        Err(e) => return error_page(state, e.status, &e.message),
    };
    let tokens = accounts::list_tokens(State(state.clone()), caller()).await.map(|j| j.0).unwrap_or(Json::Null);
    let sessions = accounts::sessions(State(state.clone()), caller()).await.map(|j| j.0).unwrap_or(Json::Null);
    let ctx = minijinja::context! {
        site => ser(templates::site(state)),
        user => user.name,
        csrf => visitor.csrf_token(),
        account => ser(account),
        tokens => ser(tokens["tokens"].clone()),
        sessions => ser(sessions["sessions"].clone()),
        extra,
    };
    render(state, status, "account.html", ctx)
}

pub async fn manage_account(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    // After a redirect (a new session cookie): say what was done.
    let extra = match q.get("changed").map(String::as_str) {
        Some("password") => {
            minijinja::context! { notice => "Your password is changed. Every other session was ended and every API token revoked." }
        }
        _ if q.get("added").map(String::as_str) == Some("passkey") => {
            minijinja::context! { notice => "Passkey added: it logs you in without your password." }
        }
        _ if q.get("added").map(String::as_str) == Some("security_key") => {
            minijinja::context! { notice => "Security key added: logins ask for it after your password." }
        }
        _ => Value::UNDEFINED,
    };
    account_page(&state, &visitor, StatusCode::OK, extra).await
}

/// The account page again, reporting a refused form.
async fn refused(state: &AppState, visitor: &Visitor, e: ApiError) -> Response {
    account_page(state, visitor, e.status, minijinja::context! { error => e.message }).await
}

/// Checks the form of a signed-in visitor; `None` when it may go on.
async fn checked(state: &AppState, visitor: &Visitor, form: &FormData) -> Option<Response> {
    if visitor.user(state).await.is_none() {
        return Some(to_login("/manage/account/"));
    }
    match visitor.check_form(form.get("csrf").map(String::as_str)) {
        Ok(()) => None,
        Err(e) => Some(error_page(state, e.status, &e.message)),
    }
}

pub async fn create_token(State(state): State<AppState>, visitor: Visitor, Form(form): Form<Vec<(String, String)>>) -> Response {
    let single: FormData = form.iter().cloned().collect();
    if let Some(r) = checked(&state, &visitor, &single).await {
        return r;
    }
    if let Some(r) = reauth_first(&state, &visitor, "/manage/account/").await {
        return r;
    }
    let projects: Vec<&str> = field(&single, "projects").split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()).collect();
    let actions: Vec<&str> = form.iter().filter(|(k, _)| k == "action").map(|(_, v)| v.as_str()).collect();
    let mut request = json!({ "description": field(&single, "description"), "projects": projects, "actions": actions });
    if !field(&single, "expires_in").is_empty() {
        request["expires_in"] = json!(field(&single, "expires_in"));
    }
    match accounts::create_token(State(state.clone()), visitor.caller(), body(request)).await {
        Ok(response) => {
            let created = json_of(response).await;
            let extra =
                minijinja::context! { notice => "Token created. Copy it now: it is shown only this once.", new_token => ser(created) };
            account_page(&state, &visitor, StatusCode::OK, extra).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn revoke_token(State(state): State<AppState>, visitor: Visitor, Path(id): Path<i64>, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    match accounts::revoke_token(State(state.clone()), visitor.caller(), Path(id)).await {
        Ok(_) => account_page(&state, &visitor, StatusCode::OK, minijinja::context! { notice => format!("Token {id} revoked.") }).await,
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn totp_begin(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    let request = json!({ "password": field(&form, "password"), "name": field(&form, "name").trim() });
    let request = if field(&form, "name").trim().is_empty() { json!({ "password": field(&form, "password") }) } else { request };
    match accounts::totp_begin(State(state.clone()), visitor.caller(), body(request)).await {
        Ok(axum::Json(begun)) => {
            let uri = begun["otpauth_uri"].as_str().unwrap_or_default();
            let qr = qr_svg_data_uri(uri);
            let extra = minijinja::context! { enrol => ser(json!({ "id": begun["id"], "secret": begun["secret"], "uri": uri, "qr": qr })) };
            account_page(&state, &visitor, StatusCode::OK, extra).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn totp_confirm(State(state): State<AppState>, visitor: Visitor, Path(id): Path<i64>, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    let request = json!({ "code": field(&form, "code").trim() });
    match accounts::totp_confirm(State(state.clone()), visitor.caller(), Path(id), body(request)).await {
        Ok(axum::Json(done)) => {
            let extra = minijinja::context! {
                notice => "The authenticator is confirmed: logins now ask for its code.",
                recovery_codes => ser(done["recovery_codes"].clone()),
            };
            account_page(&state, &visitor, StatusCode::OK, extra).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

/// A new password: every session ends (this one is replaced by a new one) and every API token
/// is revoked, as through the API.
pub async fn change_password(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    let request = json!({ "current_password": field(&form, "current_password"), "new_password": field(&form, "new_password") });
    match accounts::change_password(State(state.clone()), visitor.caller(), body(request)).await {
        Ok(axum::Json(done)) => {
            let mut r = see_other("/manage/account/?changed=password");
            for cookie in session_cookies(&done) {
                r.headers_mut().append(header::SET_COOKIE, cookie);
            }
            r
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn change_email(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    let request = json!({ "email": field(&form, "email").trim(), "password": field(&form, "password") });
    match accounts::change_email(State(state.clone()), visitor.caller(), body(request)).await {
        Ok(axum::Json(done)) => {
            let notice = if done["verification_sent"] == true {
                format!("The address is now {}; open the link we mailed there to verify it.", done["email"].as_str().unwrap_or_default())
            } else {
                format!(
                    "The address is now {}; an administrator verifies it (this instance sends no mail).",
                    done["email"].as_str().unwrap_or_default()
                )
            };
            account_page(&state, &visitor, StatusCode::OK, minijinja::context! { notice }).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn resend_verification(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    match accounts::resend_verification(State(state.clone()), visitor.caller()).await {
        Ok(_) => {
            account_page(&state, &visitor, StatusCode::OK, minijinja::context! { notice => "A new verification link is on its way." }).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

pub async fn remove_factor(State(state): State<AppState>, visitor: Visitor, Path(id): Path<i64>, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &form).await {
        return r;
    }
    let request = json!({ "password": field(&form, "password") });
    match accounts::remove_factor(State(state.clone()), visitor.caller(), Path(id), body(request)).await {
        Ok(axum::Json(done)) => {
            let notice = if done["two_factor"] == true {
                "The second factor was removed.".to_string()
            } else {
                "The second factor was removed. The account has none left: logins ask only for the password.".to_string()
            };
            account_page(&state, &visitor, StatusCode::OK, minijinja::context! { notice }).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

/// Before a sensitive change (adding an owner or a publisher, creating a token): when the
/// session's login is older than the API allows, the re-authentication page, and back to `back`.
pub(super) async fn reauth_first(state: &AppState, visitor: &Visitor, back: &str) -> Option<Response> {
    let (p, _) = visitor.user(state).await?;
    crate::http::auth::needs_reauth(state, &p).then(|| {
        see_other(&format!("/account/reauth/?next={}", percent_encoding::utf8_percent_encode(back, percent_encoding::NON_ALPHANUMERIC)))
    })
}

pub async fn reauth_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    let next = safe_next(q.get("next").map(String::as_str)).to_string();
    let Some((_, user)) = visitor.user(&state).await else { return to_login(&next) };
    reauth_form(&state, &visitor, &user.name, &next, None, StatusCode::OK)
}

fn reauth_form(state: &AppState, visitor: &Visitor, user: &str, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let ctx = minijinja::context! { site => ser(templates::site(state)), user, csrf => visitor.csrf_token(), next, error };
    render(state, status, "reauth.html", ctx)
}

pub async fn reauth(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    let next = safe_next(form.get("next").map(String::as_str)).to_string();
    let Some((_, user)) = visitor.user(&state).await else { return to_login(&next) };
    if let Err(e) = visitor.check_form(form.get("csrf").map(String::as_str)) {
        return reauth_form(&state, &visitor, &user.name, &next, Some(&e.message), e.status);
    }
    match accounts::reauth(State(state.clone()), visitor.caller(), body(json!({ "password": field(&form, "password") }))).await {
        Ok(axum::Json(answer)) => signed_in(&answer, &next),
        Err(e) => reauth_form(&state, &visitor, &user.name, &next, Some(&e.message), e.status),
    }
}

/// The `otpauth://` URI as a QR code, an SVG image in a `data:` URI (the page's policy admits
/// `data:` images, and the secret never leaves the page for an image service).
fn qr_svg_data_uri(uri: &str) -> Option<String> {
    use base64::Engine;
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(220, 220).quiet_zone(true).build();
    Some(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/project/x/")), "/project/x/");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "", "javascript:x"] {
            assert_eq!(safe_next(Some(bad)), "/manage/account/", "{bad}");
        }
        let qr = qr_svg_data_uri("otpauth://totp/Palisade:alice?secret=JBSWY3DPEHPK3PXP&issuer=Palisade").unwrap();
        assert!(qr.starts_with("data:image/svg+xml;base64,"));
    }
}
