//! The pages of an account's beginning and of getting back in: `/account/register/` (when the
//! instance lets anyone register), `/account/verify-email/` (the link the server mails), and
//! `/account/reset-password/` (ask for a link; set a new password with it). Each calls the
//! account API's own handler, so rules, rate limits, events and mail are the API's.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::account::{FormData, anonymous_page, body, field, render};
use super::session::Visitor;
use super::templates::{self, ser};
use crate::AppState;
use crate::accounts;

/// A page that reports how something went, with a link onwards.
fn message(state: &AppState, status: StatusCode, heading: &str, message: &str, link: Option<(&str, &str)>) -> Response {
    let link = link.map(|(href, text)| minijinja::context! { href, text });
    let ctx = minijinja::context! {
        site => ser(templates::site(state)),
        heading, message, link,
        error => !status.is_success(),
    };
    render(state, status, "message.html", ctx)
}

fn registration_closed(state: &AppState) -> Response {
    message(
        state,
        StatusCode::NOT_FOUND,
        "Registration is closed",
        "This instance does not let anyone register; ask an administrator for an account.",
        Some(("/account/login/", "Log in")),
    )
}

pub async fn register_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    if !state.config.accounts.registration {
        return registration_closed(&state);
    }
    anonymous_page(&state, &visitor, "register.html", StatusCode::OK, minijinja::Value::UNDEFINED)
}

pub async fn register(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    if !state.config.accounts.registration {
        return registration_closed(&state);
    }
    let again = |status: StatusCode, error: &str| {
        let kept = minijinja::context! { name => field(&form, "name"), email => field(&form, "email") };
        anonymous_page(&state, &visitor, "register.html", status, minijinja::context! { error, form => kept })
    };
    if let Err(e) = visitor.check_anonymous_form(form.get("csrf").map(String::as_str)) {
        return again(e.status, &e.message);
    }
    let request =
        json!({ "name": field(&form, "name").trim(), "email": field(&form, "email").trim(), "password": field(&form, "password") });
    match accounts::register(State(state.clone()), visitor.client.clone(), body(request)).await {
        Ok(_) => {
            let sent = if state.mailer.enabled() {
                format!("We sent a link to {} to verify the address. You can log in now.", field(&form, "email").trim())
            } else {
                "This instance sends no mail: an administrator verifies addresses. You can log in now.".to_string()
            };
            message(&state, StatusCode::CREATED, "Account created", &sent, Some(("/account/login/", "Log in")))
        }
        Err(e) => again(e.status, &e.message),
    }
}

/// `GET /account/verify-email/?token=...`: the link in the verification mail.
pub async fn verify_email(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    let token = q.get("token").cloned();
    let answer =
        accounts::verify_email(State(state.clone()), visitor.client.clone(), Query(accounts::TokenQuery { token }), Bytes::new()).await;
    match answer {
        Ok(axum::Json(done)) => {
            let text = format!("{} is verified.", done["email"].as_str().unwrap_or("The address"));
            message(&state, StatusCode::OK, "Email address verified", &text, Some(("/manage/account/", "Your account")))
        }
        Err(e) => message(&state, e.status, "The address could not be verified", &e.message, Some(("/manage/account/", "Your account"))),
    }
}

pub async fn reset_page(State(state): State<AppState>, visitor: Visitor, Query(q): Query<FormData>) -> Response {
    let token = q.get("token").map(|t| t.trim()).filter(|t| !t.is_empty() && t.len() <= 128);
    anonymous_page(&state, &visitor, "reset_password.html", StatusCode::OK, minijinja::context! { token })
}

/// Asks for a reset link (a `login` field) or sets the new password (`token`, `new_password`).
pub async fn reset(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    let token = form.get("token").map(|t| t.trim()).filter(|t| !t.is_empty());
    let again = |status: StatusCode, error: &str| {
        anonymous_page(&state, &visitor, "reset_password.html", status, minijinja::context! { error, token })
    };
    if let Err(e) = visitor.check_anonymous_form(form.get("csrf").map(String::as_str)) {
        return again(e.status, &e.message);
    }
    match token {
        None => {
            let request = json!({ "login": field(&form, "login").trim() });
            match accounts::forgot_password(State(state.clone()), visitor.client.clone(), body(request)).await {
                Ok(_) => message(
                    &state,
                    StatusCode::OK,
                    "Check your mail",
                    "If the account exists and has a verified address, a reset link is on its way; it works for an hour.",
                    Some(("/account/login/", "Log in")),
                ),
                Err(e) => again(e.status, &e.message),
            }
        }
        Some(token) => {
            let request = json!({ "token": token, "new_password": field(&form, "new_password") });
            match accounts::reset_password(State(state.clone()), visitor.client.clone(), body(request)).await {
                Ok(_) => message(
                    &state,
                    StatusCode::OK,
                    "Password changed",
                    "Your password is reset. Every session was ended and every API token revoked: log in with the new password.",
                    Some(("/account/login/", "Log in")),
                ),
                Err(e) => again(e.status, &e.message),
            }
        }
    }
}
