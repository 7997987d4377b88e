//! Project management in the browser: `/manage/projects/` (the visitor's projects) and
//! `/manage/project/<name>/` (releases with yank and un-yank, roles, trusted publishers). Like
//! the account pages, every form calls the project API's own handler with the visitor's session,
//! so authorization (maintainers yank; owners manage roles and publishers, with a login session)
//! and the rules (a project keeps an owner) are the API's.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use minijinja::Value;
use serde_json::{Value as Json, json};

use super::account::{FormData, body, field, reauth_first, render, to_login};
use super::error_page;
use super::session::Visitor;
use super::templates::{self, ser};
use crate::AppState;
use crate::http::auth::Action;
use crate::http::error::ApiError;
use crate::projects;
use crate::pypi::render::public_releases;

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
    let (roles, publishers, history) = if owner {
        let roles = projects::roles(State(state.clone()), visitor.caller(), Path(normalized.clone())).await.map(|j| j.0["roles"].clone());
        let list = state.db.publishers(Some(&normalized)).await.unwrap_or_default();
        let publishers: Vec<Json> =
            list.iter().map(|p| json!({ "id": p.id, "pending": p.pending, "what": palisade_core::publishers::describe(p) })).collect();
        let events =
            projects::events(State(state.clone()), visitor.caller(), Path(normalized.clone())).await.map(|j| j.0["events"].clone());
        let mut history = events.unwrap_or(Json::Null);
        if let Some(list) = history.as_array_mut() {
            list.truncate(50);
        }
        (roles.unwrap_or(Json::Null), publishers, history)
    } else {
        (Json::Null, Vec::new(), Json::Null)
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
        history => ser(history),
        require_attestations => project.require_attestations,
        critical => project.critical,
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
    let outcome = match publisher_of(&form) {
        Ok(request) => projects::create_publisher(State(state.clone()), visitor.caller(), Path(name.clone()), body(request))
            .await
            .map(|_| "Trusted publisher added: that workflow may now publish without a stored token.".to_string()),
        Err(e) => Err(e),
    };
    after(&state, &visitor, &name, outcome).await
}

/// The publisher a form describes, as the API takes it: a GitHub workflow, a GitLab CI
/// configuration, or another OIDC issuer with the claims its tokens must carry (`name=value`
/// lines).
fn publisher_of(form: &FormData) -> Result<Json, ApiError> {
    let environment = field(form, "environment").trim();
    let with_environment = |mut v: Json| {
        if !environment.is_empty() {
            v["environment"] = json!(environment);
        }
        v
    };
    match field(form, "kind") {
        "" | "github" => Ok(json!({ "github": with_environment(json!({
            "repository": field(form, "repository").trim(),
            "workflow": field(form, "workflow").trim(),
        })) })),
        "gitlab" => Ok(json!({ "gitlab": with_environment(json!({
            "project": field(form, "gitlab_project").trim(),
            "ci_config_path": field(form, "ci_config_path").trim(),
        })) })),
        "issuer" => {
            let mut claims = serde_json::Map::new();
            for line in field(form, "claims").lines().map(str::trim).filter(|l| !l.is_empty()) {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(crate::http::error::bad_request(format!("claim line {line:?} is not name=value")));
                };
                claims.insert(k.trim().to_string(), json!(v.trim()));
            }
            Ok(json!({ "issuer": field(form, "issuer").trim(), "claims": claims }))
        }
        other => Err(crate::http::error::bad_request(format!("unknown publisher kind {other:?}"))),
    }
}

/// The project's settings: whether uploads must carry a PEP 740 attestation.
pub async fn settings(State(state): State<AppState>, visitor: Visitor, Path(name): Path<String>, Form(form): Form<FormData>) -> Response {
    if let Some(r) = checked(&state, &visitor, &name, &form).await {
        return r;
    }
    let on = field(&form, "require_attestations") == "on";
    let outcome =
        projects::set_settings(State(state.clone()), visitor.caller(), Path(name.clone()), body(json!({ "require_attestations": on })))
            .await
            .map(|_| {
                if on {
                    "Uploads now need a valid attestation from one of the project's trusted publishers.".to_string()
                } else {
                    "Uploads no longer need an attestation.".to_string()
                }
            });
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
