//! Project management API: roles, trusted publishers (also pending ones), yanking, file removal
//! and the project's security history. Every route goes through [`authorize`].
//!
//! - `GET /api/projects/{p}/roles`, `PUT|DELETE /api/projects/{p}/roles/{user}` (owners)
//! - `GET|POST /api/projects/{p}/publishers`, `DELETE /api/projects/{p}/publishers/{id}` (owners)
//! - `POST /api/projects/{p}/releases/{v}/yank|unyank` (maintainers and owners)
//! - `DELETE /api/projects/{p}/files/{filename}` (owners)
//! - `GET /api/projects/{p}/events` (owners)
//! - `GET|PUT /api/projects/{p}/settings` (owners; `PUT` with a login session): `{"require_attestations": bool}`
//! - `GET|POST /api/account/pending-publishers`, `DELETE /api/account/pending-publishers/{id}`
//!   (publishers that may create a new project, until they expire; a session of their registrant)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use palisade_core::admin::{self, Actor, PublisherTarget};
use palisade_core::publishers::PublisherInput;
use palisade_store::{Project, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::auth::{Action, Caller, Principal, check_policy, require_recent_login, require_session};
use crate::http::body::json_body;
use crate::http::error::{ApiResult, bad_request, internal, not_found};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/account/pending-publishers", get(list_pending).post(create_pending))
        .route("/api/account/pending-publishers/{id}", delete(delete_pending))
        .route("/api/projects/{project}/roles", get(roles))
        .route("/api/projects/{project}/roles/{user}", put(set_role).delete(remove_role))
        .route("/api/projects/{project}/publishers", get(publishers).post(create_publisher))
        .route("/api/projects/{project}/publishers/{id}", delete(delete_publisher))
        .route("/api/projects/{project}/releases/{version}/yank", post(yank))
        .route("/api/projects/{project}/releases/{version}/unyank", post(unyank))
        .route("/api/projects/{project}/files/{filename}", delete(remove_file))
        .route("/api/projects/{project}/events", get(events))
        .route("/api/projects/{project}/settings", get(settings).put(set_settings))
}

/// A project's owner changing who may publish it (roles, trusted publishers): this needs a login
/// session, so a leaked API token cannot grant itself lasting access.
async fn trust_change(caller: &Caller, state: &AppState, name: &str) -> ApiResult<(Principal, Project)> {
    let (p, project) = caller.on_project(state, name, Action::Manage).await?;
    require_session(&p)?;
    Ok((p, project))
}

fn settings_json(project: &Project) -> Value {
    json!({ "project": project.normalized, "require_attestations": project.require_attestations })
}

/// The project's settings: for now, whether uploads must carry a PEP 740 attestation.
pub async fn settings(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = caller.on_project(&state, &name, Action::Manage).await?;
    Ok(Json(settings_json(&project)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    require_attestations: bool,
}

/// Changing them takes a login session, as roles and publishers do: a leaked token must not be
/// able to lift the attestation requirement that stops it from publishing.
pub async fn set_settings(State(state): State<AppState>, caller: Caller, Path(name): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let (p, project) = caller.on_project(&state, &name, Action::Manage).await?;
    require_session(&p)?;
    let body: SettingsBody = json_body(&body)?;
    admin::set_require_attestations(&state, &Actor::of(&p, &caller.client), &project, body.require_attestations).await?;
    let project = state.db.project(&project.normalized).await.map_err(internal)?.ok_or_else(|| not_found("project"))?;
    Ok(Json(settings_json(&project)))
}

pub async fn roles(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = caller.on_project(&state, &name, Action::Manage).await?;
    let roles = state.db.roles(Some(&project.normalized)).await.map_err(internal)?;
    Ok(Json(
        json!({ "project": project.normalized, "roles": roles.iter().map(|r| json!({ "user": r.user_name, "role": r.role })).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (p, project) = trust_change(&caller, &state, &name).await?;
    let b: RoleBody = json_body(&body)?;
    let role = Role::parse(&b.role).ok_or_else(|| bad_request(format!("unknown role {:?}: expected owner or maintainer", b.role)))?;
    if role == Role::Owner {
        require_recent_login(&state, &p, "adding an owner")?;
    }
    let target = admin::set_role(&state, &Actor::of(&p, &caller.client), &project, &user, role).await?;
    Ok(Json(json!({ "project": project.normalized, "user": target.name, "role": role.as_str() })))
}

pub async fn remove_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = trust_change(&caller, &state, &name).await?;
    let target = admin::remove_role(&state, &Actor::of(&p, &caller.client), &project, &user).await?;
    Ok(Json(json!({ "project": project.normalized, "user": target.name, "role": Value::Null })))
}

pub async fn publishers(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = caller.on_project(&state, &name, Action::Manage).await?;
    let list = state.db.publishers(Some(&project.normalized)).await.map_err(internal)?;
    Ok(Json(
        json!({ "project": project.normalized, "publishers": list.iter().map(palisade_core::publishers::to_json).collect::<Vec<_>>() }),
    ))
}

pub async fn create_publisher(State(state): State<AppState>, caller: Caller, Path(name): Path<String>, body: Bytes) -> ApiResult<Response> {
    let (p, project) = trust_change(&caller, &state, &name).await?;
    require_recent_login(&state, &p, "adding a trusted publisher")?;
    let input: PublisherInput = json_body(&body)?;
    let publisher = admin::add_publisher(&state, &Actor::of(&p, &caller.client), PublisherTarget::Project(&project), input).await?;
    Ok((StatusCode::CREATED, Json(palisade_core::publishers::to_json(&publisher))).into_response())
}

pub async fn delete_publisher(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = trust_change(&caller, &state, &name).await?;
    let publisher = state.db.publisher(id).await?.filter(|pb| pb.project_id == Some(project.id));
    let Some(publisher) = publisher else { return Err(not_found(format!("publisher {id} of {:?} not found", project.normalized))) };
    admin::remove_publisher(&state, &Actor::of(&p, &caller.client), &publisher).await?;
    Ok(Json(json!({ "removed": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingBody {
    project: String,
    #[serde(flatten)]
    publisher: PendingPublisher,
}

#[derive(Deserialize)]
struct PendingPublisher {
    #[serde(default)]
    github: Option<palisade_core::publishers::GithubInput>,
    #[serde(default)]
    gitlab: Option<palisade_core::publishers::GitlabInput>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    claims: std::collections::BTreeMap<String, String>,
}

pub async fn create_pending(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    let p = caller.principal(&state).await?;
    let uid = require_session(&p)?;
    check_policy(&state, &p, "register trusted publishers")?;
    require_recent_login(&state, &p, "adding a trusted publisher")?;
    let b: PendingBody = json_body(&body)?;
    let owner = state.db.user_by_id(uid).await?;
    let input =
        PublisherInput { github: b.publisher.github, gitlab: b.publisher.gitlab, issuer: b.publisher.issuer, claims: b.publisher.claims };
    let target = PublisherTarget::Pending { name: &b.project, owner: &owner, limit: Some(state.config.oidc.max_pending_publishers) };
    let publisher = admin::add_publisher(&state, &Actor::of(&p, &caller.client), target, input).await?;
    Ok((StatusCode::CREATED, Json(palisade_core::publishers::to_json(&publisher))).into_response())
}

/// `GET /api/account/pending-publishers`: the caller's live pending publishers.
pub async fn list_pending(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
    let uid = require_session(&p)?;
    let list = state.db.pending_publishers_of(uid).await.map_err(internal)?;
    Ok(Json(json!({ "publishers": list.iter().map(palisade_core::publishers::to_json).collect::<Vec<_>>() })))
}

pub async fn delete_pending(State(state): State<AppState>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
    let uid = require_session(&p)?;
    let publisher = state.db.publisher(id).await?.filter(|pb| pb.pending && pb.created_by == Some(uid));
    let Some(publisher) = publisher else { return Err(not_found(format!("pending publisher {id} not found"))) };
    admin::remove_publisher(&state, &Actor::of(&p, &caller.client), &publisher).await?;
    Ok(Json(json!({ "removed": id })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct YankBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn yank_common(state: &AppState, caller: &Caller, name: &str, version: &str, body: &[u8], yank: bool) -> ApiResult<Json<Value>> {
    let (p, project) = caller.on_project(state, name, Action::Yank).await?;
    let b: YankBody = if body.is_empty() { YankBody::default() } else { json_body(body)? };
    let n = admin::set_yanked(state, &Actor::of(&p, &caller.client), &project, version, None, yank, b.reason.as_deref()).await?;
    Ok(Json(json!({ "project": project.normalized, "version": version, "yanked": yank, "files": n })))
}

pub async fn yank(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    yank_common(&state, &caller, &name, &version, &body, true).await
}

pub async fn unyank(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    yank_common(&state, &caller, &name, &version, &body, false).await
}

pub async fn remove_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, filename)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = caller.on_project(&state, &name, Action::Manage).await?;
    admin::remove_file(&state, &Actor::of(&p, &caller.client), Some(&project), &filename).await?;
    Ok(Json(json!({ "removed": filename, "note": "the filename stays reserved and can never be uploaded again" })))
}

pub async fn events(State(state): State<AppState>, caller: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = caller.on_project(&state, &name, Action::Manage).await?;
    let list = state.db.events(None, Some(project.id), 500).await.map_err(internal)?;
    Ok(Json(json!({ "project": project.normalized, "events": list.iter().map(palisade_core::events::to_json).collect::<Vec<_>>() })))
}
