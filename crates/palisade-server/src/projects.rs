//! Project management API: roles, trusted publishers (also pending ones), yanking, file removal
//! and the project's security history. Every route goes through [`authorize`].
//!
//! - `GET /api/projects/{p}/roles`, `PUT|DELETE /api/projects/{p}/roles/{user}` (owners)
//! - `GET|POST /api/projects/{p}/publishers`, `DELETE /api/projects/{p}/publishers/{id}` (owners)
//! - `POST /api/projects/{p}/releases/{v}/yank|unyank` (maintainers and owners)
//! - `DELETE /api/projects/{p}/files/{filename}` (owners)
//! - `GET /api/projects/{p}/events` (owners)
//! - `GET|POST /api/account/pending-publishers`, `DELETE /api/account/pending-publishers/{id}`
//!   (publishers that may create a new project, until they expire; a session of their registrant)

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use palisade_store::{Project, Role, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Action, Client, Principal, authenticate, authorize, check_policy, require_session};
use crate::error::{ApiError, ApiResult, bad_request, internal, json_body, not_found};
use crate::events::record;
use crate::mail::notify;
use crate::publishers::{PublisherInput, resolve};

/// Like [`project_for`], for changes of who may publish (roles, trusted publishers): these need
/// a login session, so a leaked API token cannot grant itself lasting access.
async fn project_for_trust_change(state: &AppState, headers: &HeaderMap, name: &str) -> ApiResult<(Principal, Project)> {
    let (p, project) = project_for(state, headers, name, Action::Manage).await?;
    require_session(&p)?;
    Ok((p, project))
}

/// Authenticates and authorizes `action` on an existing project.
async fn project_for(state: &AppState, headers: &HeaderMap, name: &str, action: Action) -> ApiResult<(Principal, Project)> {
    let p = authenticate(&state.db, headers).await?;
    let normalized = palisade_dist::normalize(name);
    let project = state.db.project(&normalized).await.map_err(internal)?;
    authorize(state, &p, action, project.as_ref(), &normalized).await?;
    let project = project.ok_or_else(|| not_found(format!("project {normalized:?} not found")))?;
    Ok((p, project))
}

pub async fn roles(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = project_for(&state, &headers, &name, Action::Manage).await?;
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

pub(crate) async fn owners(state: &AppState, project: &Project) -> ApiResult<Vec<palisade_store::User>> {
    let mut out = Vec::new();
    for r in state.db.roles(Some(&project.normalized)).await.map_err(internal)? {
        if r.role == "owner"
            && let Ok(u) = state.db.user_by_name(&r.user_name).await
        {
            out.push(u);
        }
    }
    Ok(out)
}

pub async fn set_role(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (p, project) = project_for_trust_change(&state, &headers, &name).await?;
    let b: RoleBody = json_body(&body)?;
    let role = Role::parse(&b.role).ok_or_else(|| bad_request(format!("unknown role {:?}: expected owner or maintainer", b.role)))?;
    let target = state.db.user_by_name(&user).await?;
    let before = state.db.role(project.id, target.id).await.map_err(internal)?;
    if before == Some(Role::Owner) && role != Role::Owner && owners(&state, &project).await?.len() <= 1 {
        return Err(bad_request("a project must keep at least one owner"));
    }
    state.db.set_role(&project.normalized, &target.name, role, &p.user_name).await?;
    let details = json!({ "user": target.name, "from": before.map(Role::as_str), "to": role.as_str() });
    record(&state, "role_changed", &p.user_name, Some(target.id), Some(project.id), &client, details).await;
    notify(
        &state.mailer,
        &target,
        "Your role changed",
        &format!("{} made you {} of project {}.", p.user_name, role.as_str(), project.normalized),
    );
    state.invalidate(&project.normalized);
    Ok(Json(json!({ "project": project.normalized, "user": target.name, "role": role.as_str() })))
}

pub async fn remove_role(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = project_for_trust_change(&state, &headers, &name).await?;
    let target = state.db.user_by_name(&user).await?;
    let before = state.db.role(project.id, target.id).await.map_err(internal)?;
    if before.is_none() {
        return Err(not_found(format!("user {:?} has no role on {:?}", target.name, project.normalized)));
    }
    if before == Some(Role::Owner) && owners(&state, &project).await?.len() <= 1 {
        return Err(bad_request("a project must keep at least one owner"));
    }
    state.db.remove_role(&project.normalized, &target.name, &p.user_name).await?;
    let details = json!({ "user": target.name, "from": before.map(Role::as_str), "to": Value::Null });
    record(&state, "role_changed", &p.user_name, Some(target.id), Some(project.id), &client, details).await;
    notify(
        &state.mailer,
        &target,
        "Your role was removed",
        &format!("{} removed your role on project {}.", p.user_name, project.normalized),
    );
    Ok(Json(json!({ "project": project.normalized, "user": target.name, "role": Value::Null })))
}

pub async fn publishers(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = project_for(&state, &headers, &name, Action::Manage).await?;
    let list = state.db.publishers(Some(&project.normalized)).await.map_err(internal)?;
    Ok(Json(json!({ "project": project.normalized, "publishers": list.iter().map(crate::publishers::to_json).collect::<Vec<_>>() })))
}

/// Stores a publisher, records it and tells the project's owners (or the creator of a pending one).
async fn add_publisher(
    state: &AppState,
    p: &Principal,
    client: &Client,
    project: Option<&Project>,
    pending: Option<&str>,
    input: PublisherInput,
) -> ApiResult<Response> {
    let (issuer, spec) = resolve(input, &state.config.oidc).map_err(bad_request)?;
    let spec_json = serde_json::to_string(&spec).map_err(internal)?;
    let now = palisade_store::now_micros();
    let name = project.map(|p| p.normalized.as_str()).or(pending).unwrap_or_default();
    let siblings: Vec<_> = state
        .db
        .publishers(Some(name))
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|pb| pb.project_id == project.map(|p| p.id) && !pb.expired(now))
        .collect();
    if let Some(id) = crate::publishers::duplicate_of(&siblings, &issuer, &spec) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("an identical trusted publisher (id {id}) is already registered for {name:?}"),
        ));
    }
    let expires = pending.map(|_| crate::publishers::pending_expiry(&state.config.oidc));
    let max = pending.map(|_| state.config.oidc.max_pending_publishers);
    let id = state.db.add_publisher(project.map(|p| p.id), pending, &issuer, &spec_json, p.user_id, expires, max).await?;
    let publisher = state.db.publisher(id).await?.ok_or_else(|| internal("publisher vanished"))?;
    let details = json!({ "publisher_id": id, "issuer": issuer, "spec": spec, "pending": pending.is_some() });
    record(state, "publisher_added", &p.user_name, p.user_id, project.map(|p| p.id), client, details).await;
    let what = format!("{} added a trusted publisher to {}: {}", p.user_name, publisher.project, crate::publishers::describe(&publisher));
    match project {
        Some(project) => {
            for owner in owners(state, project).await? {
                notify(&state.mailer, &owner, "Trusted publisher added", &what);
            }
        }
        None => {
            if let Some(uid) = p.user_id {
                notify(&state.mailer, &state.db.user_by_id(uid).await?, "Pending trusted publisher added", &what);
            }
        }
    }
    Ok((StatusCode::CREATED, Json(crate::publishers::to_json(&publisher))).into_response())
}

pub async fn create_publisher(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let (p, project) = project_for_trust_change(&state, &headers, &name).await?;
    let input: PublisherInput = json_body(&body)?;
    add_publisher(&state, &p, &client, Some(&project), None, input).await
}

pub async fn delete_publisher(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, id)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = project_for_trust_change(&state, &headers, &name).await?;
    let publisher = state.db.publisher(id).await.map_err(internal)?.filter(|pb| pb.project_id == Some(project.id));
    let Some(publisher) = publisher else { return Err(not_found(format!("publisher {id} of {:?} not found", project.normalized))) };
    state.db.remove_publisher(id).await.map_err(internal)?;
    record(
        &state,
        "publisher_removed",
        &p.user_name,
        p.user_id,
        Some(project.id),
        &client,
        json!({ "publisher_id": id, "issuer": publisher.issuer }),
    )
    .await;
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
    github: Option<crate::publishers::GithubInput>,
    #[serde(default)]
    gitlab: Option<crate::publishers::GitlabInput>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    claims: std::collections::BTreeMap<String, String>,
}

/// `POST /api/account/pending-publishers` `{"project": NAME, "github": {...}}`: a publisher that
/// may create NAME on its first upload; the caller becomes the owner. It expires after
/// `[oidc] pending_publisher_days`, and a user may have `max_pending_publishers` of them.
pub async fn create_pending(State(state): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let p = authenticate(&state.db, &headers).await?;
    let uid = require_session(&p)?;
    check_policy(&state, &p, "register trusted publishers")?;
    let b: PendingBody = json_body(&body)?;
    let name = palisade_dist::ProjectName::new(&b.project).map_err(|e| bad_request(e.to_string()))?;
    if state.db.project(name.normalized()).await.map_err(internal)?.is_some() {
        return Err(bad_request(format!("project {:?} exists; add the publisher to the project instead", name.normalized())));
    }
    crate::admin::sweep_expired_publishers(&state.db).await.map_err(internal)?;
    let mine = state.db.pending_publishers_of(uid).await.map_err(internal)?;
    let max = state.config.oidc.max_pending_publishers;
    if mine.len() as u64 >= max {
        return Err(bad_request(format!(
            "user {:?} already has {} pending publishers, the most this instance allows ([oidc] max_pending_publishers = {max}); \
             delete one (DELETE /api/account/pending-publishers/{{id}}) or let one create its project first",
            p.user_name,
            mine.len()
        )));
    }
    let taken =
        state.db.publishers(Some(name.normalized())).await.map_err(internal)?.iter().any(|pb| pb.pending && pb.created_by != p.user_id);
    if taken {
        return Err(bad_request(format!(
            "another user has a pending publisher for {:?}; the name is reserved for them until it expires or is used",
            name.normalized()
        )));
    }
    let input =
        PublisherInput { github: b.publisher.github, gitlab: b.publisher.gitlab, issuer: b.publisher.issuer, claims: b.publisher.claims };
    add_publisher(&state, &p, &client, None, Some(name.normalized()), input).await
}

/// `GET /api/account/pending-publishers`: the caller's live pending publishers.
pub async fn list_pending(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let p = authenticate(&state.db, &headers).await?;
    let uid = require_session(&p)?;
    let list = state.db.pending_publishers_of(uid).await.map_err(internal)?;
    Ok(Json(json!({ "publishers": list.iter().map(crate::publishers::to_json).collect::<Vec<_>>() })))
}

/// `DELETE /api/account/pending-publishers/{id}`: withdraws one of the caller's pending
/// publishers (and the upload tokens it minted). Another user's, an ordinary one or an unknown
/// id are all `404`: the answer does not say which publishers exist.
pub async fn delete_pending(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let p = authenticate(&state.db, &headers).await?;
    let uid = require_session(&p)?;
    let publisher = state.db.publisher(id).await.map_err(internal)?.filter(|pb| pb.pending && pb.created_by == Some(uid));
    let Some(publisher) = publisher else { return Err(not_found(format!("pending publisher {id} not found"))) };
    state.db.remove_publisher(id).await.map_err(internal)?;
    let details = json!({ "publisher_id": id, "issuer": publisher.issuer, "project": publisher.project, "pending": true });
    record(&state, "publisher_removed", &p.user_name, Some(uid), None, &client, details).await;
    Ok(Json(json!({ "removed": id })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct YankBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn yank_common(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    name: &str,
    version: &str,
    body: &[u8],
    yank: bool,
) -> ApiResult<Json<Value>> {
    let (p, project) = project_for(state, headers, name, Action::Yank).await?;
    let b: YankBody = if body.is_empty() { YankBody::default() } else { json_body(body)? };
    // Shown in every index page, to pip's users and in terminals: plain text on one line.
    let reason = b.reason.filter(|r| yank && !r.is_empty());
    if let Some(r) = &reason {
        palisade_dist::check_text("yank reason", r).map_err(|e| bad_request(e.to_string()))?;
    }
    let n = state.db.set_yanked(&project.normalized, version, None, yank, reason.as_deref(), &p.user_name).await?;
    state.invalidate(&project.normalized);
    let kind = if yank { "release_yanked" } else { "release_unyanked" };
    record(state, kind, &p.user_name, p.user_id, Some(project.id), client, json!({ "version": version, "reason": reason, "files": n }))
        .await;
    Ok(Json(json!({ "project": project.normalized, "version": version, "yanked": yank, "files": n })))
}

pub async fn yank(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    yank_common(&state, &client, &headers, &name, &version, &body, true).await
}

pub async fn unyank(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    yank_common(&state, &client, &headers, &name, &version, &body, false).await
}

pub async fn remove_file(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path((name, filename)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (p, project) = project_for(&state, &headers, &name, Action::Manage).await?;
    let file = state.db.file(&filename).await.map_err(internal)?.filter(|f| f.project_id == project.id);
    let Some(file) = file else { return Err(not_found(format!("no file {filename:?} in project {:?}", project.normalized))) };
    match state.db.remove_file(&state.blobs, &filename, &p.user_name).await {
        Ok(_) => {}
        Err(StoreError::NotFound(w)) => return Err(not_found(format!("{w} not found"))),
        Err(e) => return Err(internal(e)),
    }
    state.invalidate(&project.normalized);
    record(
        &state,
        "file_removed",
        &p.user_name,
        p.user_id,
        Some(project.id),
        &client,
        json!({ "filename": filename, "sha256": file.sha256 }),
    )
    .await;
    Ok(Json(json!({ "removed": filename, "note": "the filename stays reserved and can never be uploaded again" })))
}

pub async fn events(State(state): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (_, project) = project_for(&state, &headers, &name, Action::Manage).await?;
    let list = state.db.events(None, Some(project.id), 500).await.map_err(internal)?;
    Ok(Json(json!({ "project": project.normalized, "events": list.iter().map(crate::events::to_json).collect::<Vec<_>>() })))
}
