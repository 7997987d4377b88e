//! Project management in the browser: `/manage/projects/` (the visitor's projects) and
//! `/manage/project/<name>/` (releases with yank and un-yank, roles, trusted publishers). Like
//! the account pages, every form calls the project API's own handler with the visitor's session,
//! so authorization (maintainers yank; owners manage roles and publishers, with a login session)
//! and the rules (a project keeps an owner) are the API's.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use minijinja::Value;
use serde_json::{Value as Json, json};

use super::account::{reauth_first, render, to_login};
use super::error_page;
use super::session::Visitor;
use super::templates::{self, ser};
use crate::AppState;
use crate::http::auth::Action;
use crate::http::error::ApiError;
use crate::projects;
use crate::pypi::render::public_releases;

type FormData = HashMap<String, String>;

fn field<'a>(form: &'a FormData, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or("")
}

fn body(value: Json) -> Bytes {
    Bytes::from(value.to_string())
}

pub async fn projects_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    let Some((_, user)) = visitor.user(&state).await else { return to_login("/manage/projects/") };
    let roles = match state.db.user_roles(user.id).await {
        Ok(r) => r,
        Err(e) => return super::from_api_error(&state, crate::http::error::internal(e)),
    };
    let projects: Vec<Json> = roles.iter().map(|r| json!({ "name": r.project, "role": r.role })).collect();
    let ctx = minijinja::context! {
        site => ser(templates::site(&state)),
        user => user.name,
        csrf => visitor.csrf_token(),
        projects => ser(projects),
    };
    render(&state, StatusCode::OK, "projects.html", ctx)
}

/// `/manage/project/<name>/`: what the visitor may do there, with `extra` reporting the last
/// form (`notice`, `error`).
async fn project_page(state: &AppState, visitor: &Visitor, name: &str, status: StatusCode, extra: Value) -> Response {
    let normalized = palisade_dist::normalize(name);
    let here = format!("/manage/project/{normalized}/");
    let Some((_, user)) = visitor.user(state).await else { return to_login(&here) };
    let caller = visitor.caller();
    // Maintainers may yank; only owners see and change roles and publishers.
    let project = match caller.on_project(state, &normalized, Action::Yank).await {
        Ok((_, project)) => project,
        Err(e) => return error_page(state, e.status, &e.message),
    };
    let owner = caller.on_project(state, &normalized, Action::Manage).await.is_ok();
    let releases = state.db.releases(project.id).await.unwrap_or_default();
    let files = state.db.project_files(project.id).await.unwrap_or_default();
    let public = public_releases(&project, &releases, &files);
    let mut listed: Vec<Json> = releases
        .iter()
        .map(|r| {
            let of: Vec<_> = files.iter().filter(|f| f.release_id == r.id).collect();
            let yanked = !of.is_empty() && of.iter().all(|f| f.yanked);
            json!({
                "version": r.version,
                "files": of.len(),
                "held": of.iter().filter(|f| !f.is_published()).count(),
                "public": public.iter().any(|p| p.release.id == r.id),
                "yanked": yanked,
                "yanked_reason": if yanked { of.iter().find_map(|f| f.yanked_reason.clone()) } else { None },
                "created": palisade_core::timestamp(r.created_at),
            })
        })
        .collect();
    listed.reverse();
    let (roles, publishers) = if owner {
        let roles = projects::roles(State(state.clone()), visitor.caller(), Path(normalized.clone())).await.map(|j| j.0["roles"].clone());
        let list = state.db.publishers(Some(&normalized)).await.unwrap_or_default();
        let publishers: Vec<Json> =
            list.iter().map(|p| json!({ "id": p.id, "pending": p.pending, "what": palisade_core::publishers::describe(p) })).collect();
        (roles.unwrap_or(Json::Null), publishers)
    } else {
        (Json::Null, Vec::new())
    };
    let ctx = minijinja::context! {
        site => ser(templates::site(state)),
        user => user.name,
        csrf => visitor.csrf_token(),
        project => normalized,
        owner,
        releases => ser(listed),
        roles => ser(roles),
        publishers => ser(publishers),
        extra,
    };
    render(state, status, "manage_project.html", ctx)
}

pub async fn manage_project(State(state): State<AppState>, visitor: Visitor, Path(name): Path<String>) -> Response {
    project_page(&state, &visitor, &name, StatusCode::OK, Value::UNDEFINED).await
}

/// The project page again, reporting what the form did or why it was refused.
async fn after(state: &AppState, visitor: &Visitor, name: &str, outcome: Result<String, ApiError>) -> Response {
    match outcome {
        Ok(notice) => project_page(state, visitor, name, StatusCode::OK, minijinja::context! { notice }).await,
        Err(e) => project_page(state, visitor, name, e.status, minijinja::context! { error => e.message }).await,
    }
}

/// The form's session and token, before anything is done.
async fn checked(state: &AppState, visitor: &Visitor, name: &str, form: &FormData) -> Option<Response> {
    if visitor.user(state).await.is_none() {
        return Some(to_login(&format!("/manage/project/{}/", palisade_dist::normalize(name))));
    }
    visitor.check_form(form.get("csrf").map(String::as_str)).err().map(|e| error_page(state, e.status, &e.message))
}

pub async fn yank(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, version)): Path<(String, String)>,
    Form(form): Form<FormData>,
) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let reason = field(&form, "reason").trim();
    let request = if reason.is_empty() { json!({}) } else { json!({ "reason": reason }) };
    let outcome = projects::yank(State(state.clone()), visitor.caller(), Path((name.clone(), version.clone())), body(request))
        .await
        .map(|_| format!("Release {version} yanked: installers skip it unless it is pinned exactly."));
    after(&state, &visitor, &name, outcome).await
}

pub async fn unyank(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, version)): Path<(String, String)>,
    Form(form): Form<FormData>,
) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let outcome = projects::unyank(State(state.clone()), visitor.caller(), Path((name.clone(), version.clone())), Bytes::new())
        .await
        .map(|_| format!("Release {version} is no longer yanked."));
    after(&state, &visitor, &name, outcome).await
}

pub async fn set_role(State(state): State<AppState>, visitor: Visitor, Path(name): Path<String>, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let who = field(&form, "user").trim().to_string();
    let role = field(&form, "role").to_string();
    if role == "owner"
        && let Some(r) = reauth_first(&state, &visitor, &format!("/manage/project/{}/", palisade_dist::normalize(&name))).await
    {
        return r;
    }
    let outcome =
        projects::set_role(State(state.clone()), visitor.caller(), Path((name.clone(), who.clone())), body(json!({ "role": role })))
            .await
            .map(|_| format!("{who} is now {role} of the project."));
    after(&state, &visitor, &name, outcome).await
}

pub async fn remove_role(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, who)): Path<(String, String)>,
    Form(form): Form<FormData>,
) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let outcome = projects::remove_role(State(state.clone()), visitor.caller(), Path((name.clone(), who.clone())))
        .await
        .map(|_| format!("{who} no longer has a role on the project."));
    after(&state, &visitor, &name, outcome).await
}

pub async fn add_publisher(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    Form(form): Form<FormData>,
) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    if let Some(r) = reauth_first(&state, &visitor, &format!("/manage/project/{}/", palisade_dist::normalize(&name))).await {
        return r;
    }
    let environment = field(&form, "environment").trim();
    let mut github = json!({ "repository": field(&form, "repository").trim(), "workflow": field(&form, "workflow").trim() });
    if !environment.is_empty() {
        github["environment"] = json!(environment);
    }
    let outcome = projects::create_publisher(State(state.clone()), visitor.caller(), Path(name.clone()), body(json!({ "github": github })))
        .await
        .map(|_| "Trusted publisher added: that workflow may now publish without a stored token.".to_string());
    after(&state, &visitor, &name, outcome).await
}

pub async fn remove_publisher(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, id)): Path<(String, i64)>,
    Form(form): Form<FormData>,
) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let outcome = projects::delete_publisher(State(state.clone()), visitor.caller(), Path((name.clone(), id)))
        .await
        .map(|_| format!("Trusted publisher {id} removed."));
    after(&state, &visitor, &name, outcome).await
}
