//! The quarantine review API. Administrators list, read, release and confirm held files; a
//! project's owners may list and read their own project's reports.
//!
//! - `GET /api/quarantine[?project=NAME]`
//! - `GET /api/quarantine/<filename>` (the file's scan reports, newest first)
//! - `POST /api/quarantine/<filename>/release` and `/confirm`, body `{"note": "..."}` (optional)

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use palisade_store::{Role, ScanReportRow};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Action, Client, Principal, authenticate, authorize};
use crate::error::{ApiResult, bad_request, forbidden, internal, not_found};
use crate::render::upload_time;

async fn may_read(state: &AppState, p: &Principal, project: &str) -> ApiResult<bool> {
    if !p.may_touch(project) {
        return Ok(false);
    }
    if p.is_admin {
        return Ok(true);
    }
    let Some(proj) = state.db.project(project).await.map_err(internal)? else { return Ok(false) };
    let Some(uid) = p.user_id else { return Ok(false) };
    Ok(matches!(state.db.role(proj.id, uid).await.map_err(internal)?, Some(Role::Owner)))
}

pub async fn list(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    let p = authenticate(&state.db, &headers).await?;
    let project = q.get("project").map(|n| palisade_dist::normalize(n));
    let mut out = Vec::new();
    for f in state.db.quarantined(project.as_deref()).await.map_err(internal)? {
        if !may_read(&state, &p, &f.project).await? {
            continue;
        }
        let report = state.db.reports(&f.filename).await.map_err(internal)?.into_iter().next();
        out.push(json!({
            "filename": f.filename,
            "project": f.project,
            "version": f.version,
            "sha256": f.sha256,
            "uploaded": upload_time(f.upload_time),
            "verdict": report.as_ref().map(|r| r.verdict.clone()),
            "score": report.as_ref().map(|r| r.score),
        }));
    }
    Ok(Json(json!({ "files": out })))
}

fn report_json(r: &ScanReportRow) -> Value {
    json!({
        "filename": r.filename,
        "project": r.project,
        "sha256": r.sha256,
        "verdict": r.verdict,
        "score": r.score,
        "outcome": r.outcome,
        "trigger": r.trigger,
        "actor": r.actor,
        "at": upload_time(r.created_at),
        "decision": r.decision,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at.map(upload_time),
        "note": r.note,
        "report": serde_json::from_str::<Value>(&r.report).unwrap_or(Value::Null),
    })
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap, Path(filename): Path<String>) -> ApiResult<Json<Value>> {
    let p = authenticate(&state.db, &headers).await?;
    let reports = state.db.reports(&filename).await.map_err(internal)?;
    let Some(first) = reports.first() else { return Err(not_found(format!("no scan report for {filename:?}"))) };
    if !may_read(&state, &p, &first.project).await? {
        return Err(not_found(format!("no scan report for {filename:?}")));
    }
    Ok(Json(json!({ "filename": filename, "reports": reports.iter().map(report_json).collect::<Vec<_>>() })))
}

fn note_of(body: &Bytes) -> ApiResult<Option<String>> {
    if body.is_empty() {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad_request(format!("the body must be JSON like {{\"note\": \"...\"}}: {e}")))?;
    Ok(v.get("note").and_then(Value::as_str).map(|s| s.chars().take(2000).collect()))
}

async fn admin(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    let p = authenticate(&state.db, headers).await?;
    if !p.is_admin {
        return Err(forbidden("only administrators may release or confirm quarantined files"));
    }
    authorize(state, &p, Action::Admin, None, "").await?;
    Ok(p)
}

async fn record_decision(
    state: &AppState,
    p: &Principal,
    client: &Client,
    filename: &str,
    project: Option<&str>,
    decision: &str,
    note: Option<&str>,
) {
    let project_id = match project {
        Some(name) => state.db.project(name).await.ok().flatten().map(|p| p.id),
        None => None,
    };
    let details = json!({ "filename": filename, "decision": decision, "note": note });
    crate::events::record(state, "quarantine_decision", &p.user_name, p.user_id, project_id, client, details).await;
}

pub async fn release(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(filename): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let p = admin(&state, &headers).await?;
    let note = note_of(&body)?;
    state.db.release_file(&filename, &p.user_name, note.as_deref()).await?;
    let project = state.db.file(&filename).await.ok().flatten().map(|f| f.project);
    if let Some(project) = &project {
        state.invalidate(project);
    }
    record_decision(&state, &p, &client, &filename, project.as_deref(), "released", note.as_deref()).await;
    tracing::info!(file.filename = %filename, user.name = %p.user_name, "quarantined file released");
    Ok(Json(json!({ "filename": filename, "decision": "released" })))
}

pub async fn confirm(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(filename): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let p = admin(&state, &headers).await?;
    let note = note_of(&body)?;
    let project = state.db.file(&filename).await.map_err(internal)?.map(|f| f.project);
    state.db.confirm_file(&state.blobs, &filename, &p.user_name, note.as_deref()).await?;
    if let Some(project) = &project {
        state.invalidate(project);
    }
    record_decision(&state, &p, &client, &filename, project.as_deref(), "confirmed", note.as_deref()).await;
    tracing::info!(file.filename = %filename, user.name = %p.user_name, "quarantined file confirmed malicious and removed");
    Ok(Json(json!({ "filename": filename, "decision": "confirmed" })))
}
