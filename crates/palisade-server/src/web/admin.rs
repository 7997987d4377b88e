//! The administrators' pages: `/admin/` (the instance's status, the review queue of quarantined
//! files with the scanner's verdict and users' malware reports, recent rejections, critical
//! projects, users), its forms (release or confirm a held file with a note; disable, enable or
//! reset the second factors of a user; mark a project critical), and `/manage/scan/<filename>/`,
//! a file's scan reports with file, line and excerpt, for administrators and the project's
//! owners. The forms call the review API's handlers and the core's administration operations,
//! as the API and CLI do; only a signed-in administrator gets past [`admin`].

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;
use serde_json::{Value as Json, json};

use super::account::{FormData, body, field, reauth_first, render, to_login};
use super::session::Visitor;
use super::templates::{self, ser};
use super::{error_page, from_api_error};
use crate::AppState;
use crate::http::auth::Principal;
use crate::http::error::{ApiError, internal};
use crate::pypi::render::upload_time;
use crate::review;
use palisade_core::admin::{self, Actor};

/// The signed-in administrator, or the page to show instead (login, or 403).
async fn admin_visitor(state: &AppState, visitor: &Visitor, here: &str) -> Result<(Principal, String), Response> {
    let Some((p, user)) = visitor.user(state).await else { return Err(to_login(here)) };
    if !p.is_admin {
        return Err(error_page(state, StatusCode::FORBIDDEN, "Only administrators may open this page."));
    }
    Ok((p, user.name))
}

/// A signed-in administrator's form, with its CSRF token checked and the instance policy
/// applied as the API applies it (`Caller::admin`: a second factor, a verified address).
async fn admin_form(state: &AppState, visitor: &Visitor, form: &FormData) -> Result<Principal, Response> {
    admin_visitor(state, visitor, "/admin/").await?;
    visitor.check_form(form.get("csrf").map(String::as_str)).map_err(|e| error_page(state, e.status, &e.message))?;
    visitor.caller().admin(state).await.map_err(|e| error_page(state, e.status, &e.message))
}

async fn page(state: &AppState, visitor: &Visitor, status: StatusCode, extra: Value) -> Response {
    let (_, name) = match admin_visitor(state, visitor, "/admin/").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let gather = async {
        let queue = review::list(axum::extract::State(state.clone()), visitor.caller(), axum::extract::Query(Default::default())).await?.0;
        let rejections: Vec<Json> = state
            .db
            .rejections(20)
            .await
            .map_err(internal)?
            .iter()
            .map(|r| json!({ "filename": r.filename, "project": r.project, "verdict": r.verdict, "score": r.score, "at": upload_time(r.created_at) }))
            .collect();
        let users: Vec<Json> = state
            .db
            .list_users()
            .await
            .map_err(internal)?
            .iter()
            .map(|u| {
                json!({ "name": u.name, "email": u.email, "admin": u.is_admin, "two_factor": u.has_2fa, "webauthn": u.has_webauthn, "disabled": u.disabled_at.is_some() })
            })
            .collect();
        let critical: Vec<String> = state.db.critical_projects().await.map_err(internal)?.into_iter().map(|p| p.normalized).collect();
        let projects = state.db.list_projects().await.map_err(internal)?.len();
        let status = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "database": match state.db.engine() { palisade_store::Engine::Postgres => "PostgreSQL", palisade_store::Engine::Sqlite => "SQLite" },
            "storage": if state.config.storage.url.as_deref().is_some_and(|u| u.starts_with("s3://")) { "bucket" } else { "local folder" },
            "projects": projects,
            "users": users.len(),
            "quarantined": queue["files"].as_array().map_or(0, Vec::len),
            "scanning": state.config.scan.enabled,
            "critical_require_webauthn": state.config.accounts.critical_require_webauthn,
        });
        Ok::<_, ApiError>((queue, rejections, users, critical, status))
    };
    let (queue, rejections, users, critical, instance) = match gather.await {
        Ok(v) => v,
        Err(e) => return from_api_error(state, e),
    };
    let ctx = minijinja::context! {
        site => ser(templates::site(state)),
        user => name,
        csrf => visitor.csrf_token(),
        queue => ser(queue["files"].clone()),
        rejections => ser(rejections),
        users => ser(users),
        critical => ser(critical),
        instance => ser(instance),
        extra,
    };
    render(state, status, "admin.html", ctx)
}

pub async fn admin_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    page(&state, &visitor, StatusCode::OK, Value::UNDEFINED).await
}

/// The admin page again, saying how the last form went.
async fn answered(state: &AppState, visitor: &Visitor, done: Result<String, ApiError>) -> Response {
    match done {
        Ok(notice) => page(state, visitor, StatusCode::OK, minijinja::context! { notice }).await,
        Err(e) => page(state, visitor, e.status, minijinja::context! { error => e.message }).await,
    }
}

pub async fn decide(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((filename, decision)): Path<(String, String)>,
    Form(form): Form<FormData>,
) -> Response {
    if let Err(r) = admin_form(&state, &visitor, &form).await {
        return r;
    }
    let note = field(&form, "note").trim();
    let request = if note.is_empty() { json!({}) } else { json!({ "note": note }) };
    let done = match decision.as_str() {
        "release" => review::release(State(state.clone()), visitor.caller(), Path(filename.clone()), body(request))
            .await
            .map(|_| format!("{filename} is released: it is installable again.")),
        "confirm" => review::confirm(State(state.clone()), visitor.caller(), Path(filename.clone()), body(request))
            .await
            .map(|j| format!("{filename} is confirmed malicious and removed; OSV record {}.", j.0["record"].as_str().unwrap_or("written"))),
        _ => return error_page(&state, StatusCode::NOT_FOUND, "no such decision"),
    };
    answered(&state, &visitor, done).await
}

pub async fn user_action(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<FormData>,
) -> Response {
    let p = match admin_form(&state, &visitor, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Locking a user out or removing their second factors is a sensitive change.
    if let Some(r) = reauth_first(&state, &visitor, "/admin/").await {
        return r;
    }
    let actor = Actor::of(&p, &visitor.client);
    let done = match action.as_str() {
        "disable" if p.user_name == name => Err(palisade_core::Error::Invalid("you cannot disable your own account".into())),
        "disable" => admin::set_disabled(&state, &actor, &name, true)
            .await
            .map(|_| format!("{name} is disabled: their sessions and tokens no longer work.")),
        "enable" => admin::set_disabled(&state, &actor, &name, false).await.map(|_| format!("{name} is enabled again.")),
        "reset-2fa" => admin::reset_second_factors(&state, &actor, &name)
            .await
            .map(|n| format!("{n} second factor(s) of {name} removed, with their recovery codes and sessions.")),
        _ => return error_page(&state, StatusCode::NOT_FOUND, "no such action"),
    };
    answered(&state, &visitor, done.map_err(ApiError::from)).await
}

pub async fn critical(State(state): State<AppState>, visitor: Visitor, Form(form): Form<FormData>) -> Response {
    let p = match admin_form(&state, &visitor, &form).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let on = field(&form, "critical") != "off";
    if !on && let Some(r) = reauth_first(&state, &visitor, "/admin/").await {
        return r;
    }
    let normalized = palisade_dist::normalize(field(&form, "project").trim());
    let done = async {
        let project = state.db.project(&normalized).await.map_err(internal)?;
        let project = project.ok_or_else(|| crate::http::error::not_found(format!("no project named {normalized:?}")))?;
        admin::set_critical(&state, &Actor::of(&p, &visitor.client), &project, on).await?;
        Ok(if on { format!("{normalized} is critical.") } else { format!("{normalized} is no longer critical.") })
    };
    answered(&state, &visitor, done.await).await
}

/// `/manage/scan/<filename>/`: the file's scan reports (administrators and the project's owners).
pub async fn scan_report(State(state): State<AppState>, visitor: Visitor, Path(filename): Path<String>) -> Response {
    let here = format!("/manage/scan/{}/", percent_encoding::utf8_percent_encode(&filename, percent_encoding::NON_ALPHANUMERIC));
    let Some((p, user)) = visitor.user(&state).await else { return to_login(&here) };
    match review::show(State(state.clone()), visitor.caller(), Path(filename.clone())).await {
        Ok(axum::Json(shown)) => {
            let ctx = minijinja::context! {
                site => ser(templates::site(&state)),
                user => user.name,
                csrf => visitor.csrf_token(),
                is_admin => p.is_admin,
                filename,
                reports => ser(shown["reports"].clone()),
            };
            render(&state, StatusCode::OK, "scan_report.html", ctx)
        }
        Err(e) => from_api_error(&state, e),
    }
}
