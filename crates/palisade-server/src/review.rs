//! The quarantine review API. Administrators list, read, release and confirm held files; a
//! project's owners may list and read their own project's reports.
//!
//! - `GET /api/quarantine[?project=NAME]` (each held file with its scan verdict and the open
//!   reports users filed about its project)
//! - `GET /api/quarantine/<filename>` (the file's scan reports, newest first)
//! - `POST /api/quarantine/<filename>/release` and `/confirm`, body `{"note": "..."}` (optional)

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use bytes::Bytes;
use palisade_store::{Role, ScanReportRow};
use serde_json::{Value, json};

use palisade_core::admin::Actor;

use crate::AppState;
use crate::http::auth::{Caller, Principal};
use crate::http::error::{ApiResult, bad_request, internal, not_found};
use crate::pypi::render::upload_time;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/quarantine", get(list))
        .route("/api/quarantine/{filename}", get(show))
        .route("/api/quarantine/{filename}/release", post(release))
        .route("/api/quarantine/{filename}/confirm", post(confirm))
}

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

pub async fn list(State(state): State<AppState>, caller: Caller, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
    let project = q.get("project").map(|n| palisade_dist::normalize(n));
    let mut out = Vec::new();
    for f in state.db.quarantined(project.as_deref()).await.map_err(internal)? {
        if !may_read(&state, &p, &f.project).await? {
            continue;
        }
        let report = state.db.reports(&f.filename).await.map_err(internal)?.into_iter().next();
        // Users' reports of the project, beside the scanner's.
        let reports: Vec<Value> = state
            .db
            .observations(Some(&f.project))
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|o| o.outcome.is_none() && o.version.as_deref().is_none_or(|v| v == f.version))
            .map(|o| json!({ "id": o.id, "kind": o.kind, "summary": o.summary, "inspector_url": o.inspector_url, "reporter": o.reporter, "trusted": o.trusted }))
            .collect();
        out.push(json!({
            "reports": reports,
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

pub async fn show(State(state): State<AppState>, caller: Caller, Path(filename): Path<String>) -> ApiResult<Json<Value>> {
    let p = caller.principal(&state).await?;
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

pub async fn release(State(state): State<AppState>, caller: Caller, Path(filename): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let p = caller.admin(&state).await?;
    let note = note_of(&body)?;
    let withdrawn = palisade_core::admin::release(&state, &Actor::of(&p, &caller.client), &filename, note.as_deref()).await?;
    Ok(Json(json!({ "filename": filename, "decision": "released", "withdrawn": withdrawn })))
}

pub async fn confirm(State(state): State<AppState>, caller: Caller, Path(filename): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let p = caller.admin(&state).await?;
    let note = note_of(&body)?;
    let record = palisade_core::admin::confirm(&state, &Actor::of(&p, &caller.client), &filename, note.as_deref()).await?;
    Ok(Json(json!({ "filename": filename, "decision": "confirmed", "record": record })))
}
