//! The web interface: server-rendered pages at PyPI's paths (`/`, `/search/`, `/project/<name>/`,
//! `/project/<name>/<version>/`, `/account/login/`, `/account/register/`, `/account/verify-email/`,
//! `/account/reset-password/`, `/manage/account/`, `/manage/projects/`,
//! `/manage/project/<name>/`), the stylesheet, the WebAuthn script, and
//! `/.well-known/security.txt`. `session` says who the visitor is (the session cookie) and
//! checks forms (CSRF); `account` is login and the account's pages, `recovery` registration,
//! email verification and password reset, all through the account API's
//! own handlers; `webauthn` the JSON endpoints of security keys and passkeys, through the
//! account API's; `manage` is project management, through the project API's.
//!
//! Pages are rendered from templates compiled into the binary (`templates`), every value
//! autoescaped; the only markup taken from users is a project's description, rendered from
//! Markdown and then sanitized (`markdown`). Every answer of this area carries the browser
//! security headers (`security_headers`): a Content-Security-Policy that allows no inline script
//! and no framing, `nosniff`, a referrer policy. Project pages are public, built from published
//! files only (the rules of the JSON API), and cached per change like the index pages.

mod account;
mod admin;
mod assets;
mod home;
mod manage;
mod markdown;
mod project;
mod recovery;
mod report;
mod security_txt;
mod session;
mod templates;
mod webauthn;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/search/", get(home::search))
        .route("/search", get(add_slash))
        .route("/project/{name}/", get(project::latest))
        .route("/project/{name}", get(add_slash))
        .route("/project/{name}/{version}/", get(project::release))
        .route("/project/{name}/{version}", get(add_slash))
        .route("/account/login/", get(account::login_page).post(account::login))
        .route("/account/login/second-factor/", get(account::second_factor_page).post(account::second_factor))
        .route("/account/logout/", post(account::logout))
        .route("/account/reauth/", get(account::reauth_page).post(account::reauth))
        .route("/account/register/", get(recovery::register_page).post(recovery::register))
        .route("/account/verify-email/", get(recovery::verify_email))
        .route("/account/reset-password/", get(recovery::reset_page).post(recovery::reset))
        .route("/manage/account/password/", post(account::change_password))
        .route("/manage/account/email/", post(account::change_email))
        .route("/manage/account/email/verify/", post(account::resend_verification))
        .route("/manage/account/", get(account::manage_account))
        .route("/manage/account/tokens/", post(account::create_token))
        .route("/manage/account/tokens/{id}/revoke/", post(account::revoke_token))
        .route("/manage/account/totp/", post(account::totp_begin))
        .route("/manage/account/totp/{id}/confirm/", post(account::totp_confirm))
        .route("/manage/account/2fa/{id}/remove/", post(account::remove_factor))
        .route("/manage/account/webauthn/options", post(webauthn::register_options))
        .route("/manage/account/webauthn/validate", post(webauthn::register_validate))
        .route("/account/login/webauthn/options", post(webauthn::second_factor_options))
        .route("/account/login/webauthn/validate", post(webauthn::second_factor_validate))
        .route("/account/login/passkey/options", post(webauthn::passkey_options))
        .route("/account/login/passkey/validate", post(webauthn::passkey_validate))
        .route("/manage/projects/", get(manage::projects_page))
        .route("/manage/project/{name}/", get(manage::manage_project))
        .route("/manage/project/{name}", get(add_slash))
        .route("/manage/project/{name}/releases/{version}/yank/", post(manage::yank))
        .route("/manage/project/{name}/releases/{version}/unyank/", post(manage::unyank))
        .route("/manage/project/{name}/roles/", post(manage::set_role))
        .route("/manage/project/{name}/roles/{user}/remove/", post(manage::remove_role))
        .route("/manage/project/{name}/publishers/", post(manage::add_publisher))
        .route("/manage/project/{name}/publishers/{id}/remove/", post(manage::remove_publisher))
        .route("/manage/project/{name}/settings/", post(manage::settings))
        .route("/admin/", get(admin::admin_page))
        .route("/admin", get(add_slash))
        .route("/admin/quarantine/{filename}/{decision}/", post(admin::decide))
        .route("/admin/users/{name}/{action}/", post(admin::user_action))
        .route("/admin/critical/", post(admin::critical))
        .route("/manage/scan/{filename}/", get(admin::scan_report))
        .route("/project/{name}/report/", get(report::report_page).post(report::report))
        .route(assets::STYLESHEET, get(assets::stylesheet))
        .route(assets::WEBAUTHN_JS, get(assets::webauthn_js))
        .route("/.well-known/security.txt", get(security_txt::serve))
        .layer(middleware::map_response(security_headers))
}

/// What the browser may do with a page of ours: run scripts and load styles from this origin
/// only (no inline script, no `eval`), show images from anywhere over HTTPS (descriptions embed
/// badges), submit forms only here, and never be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; font-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    response
}

/// `/project/demo` → `/project/demo/` (the query kept), as PyPI does.
async fn add_slash(OriginalUri(uri): OriginalUri) -> Response {
    let target = match uri.query() {
        Some(q) => format!("{}/?{q}", uri.path()),
        None => format!("{}/", uri.path()),
    };
    crate::moved(&target)
}

/// An HTML answer.
fn html(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// The error page: the status, a heading and what went wrong, in the site's layout.
fn error_page(state: &AppState, status: StatusCode, message: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Bad request",
        s if s.is_server_error() => "Something went wrong",
        s => s.canonical_reason().unwrap_or("Error"),
    };
    let ctx = minijinja::context! { site => templates::ser(templates::site(state)), status => status.as_u16(), heading, message };
    match templates::render("error.html", ctx) {
        Ok(body) => html(status, body),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

/// An API error turned into the error page (a 5xx says nothing of its cause: that is logged).
fn from_api_error(state: &AppState, e: crate::http::error::ApiError) -> Response {
    let message = if e.status.is_server_error() { "The server could not answer; try again later.".to_string() } else { e.message.clone() };
    error_page(state, e.status, &message)
}
