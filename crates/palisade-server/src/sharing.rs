//! Information sharing over HTTP (docs/sharing.md):
//!
//! - Palisade's own verdicts in OSV.dev's export layout: `GET /osv/PyPI/all.zip`,
//!   `GET /osv/PyPI/modified_id.csv`, `GET /osv/PyPI/<ID>.json`, and OSV's
//!   `POST /osv/v1/query`; who may read them is `sharing.export`.
//! - PyPI's observations API: `POST /danger-api/projects/<name>/observations` (reports), and
//!   `GET /api/reports[?project=NAME]` for administrators.
//!
//! What the records are made of, and what a report does, is the core's (`palisade_core::sharing`).

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use palisade_core::config::ExportAccess;
use palisade_core::sharing::reports::{Quarantined, Report};
use serde_json::{Value, json};

use crate::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, bad_request, forbidden, internal, not_found};
use crate::pypi::render::upload_time;

/// PyPI's media type for its "danger" API.
const DANGER_JSON: &str = "application/vnd.pypi.api-v0-danger+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/osv/PyPI/all.zip", get(all_zip))
        .route("/osv/PyPI/modified_id.csv", get(modified_id))
        .route("/osv/PyPI/{file}", get(record))
        .route("/osv/v1/query", post(query))
        .route("/danger-api/projects/{name}/observations", post(observe))
        .route("/api/reports", get(reports))
}

/// Whether `caller` may read the records (`sharing.export`).
async fn may_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    match state.config.sharing.export {
        ExportAccess::Public => Ok(()),
        ExportAccess::Authenticated => caller.principal(state).await.map(|_| ()),
        ExportAccess::Off => Err(not_found("this instance does not publish its OSV records (sharing.export = \"off\")")),
    }
}

/// Answers that change whenever a record does: caches must ask again (feeds poll them).
fn fresh(status: StatusCode, content_type: &'static str, body: impl IntoResponse, public: bool) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let cache = if public { "public, no-cache" } else { "private, no-cache" };
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

fn public(state: &AppState) -> bool {
    state.config.sharing.export == ExportAccess::Public
}

async fn all_zip(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    may_read(&state, &caller).await?;
    let zip = state.osv_all_zip().await?;
    Ok(fresh(StatusCode::OK, "application/zip", zip, public(&state)))
}

async fn modified_id(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    may_read(&state, &caller).await?;
    let csv = state.osv_modified_csv().await?;
    Ok(fresh(StatusCode::OK, "text/csv; charset=utf-8", csv, public(&state)))
}

async fn record(State(state): State<AppState>, caller: Caller, Path(file): Path<String>) -> ApiResult<Response> {
    may_read(&state, &caller).await?;
    let Some(id) = file.strip_suffix(".json") else { return Err(not_found(format!("no record {file:?}: records are <ID>.json"))) };
    let Some(text) = state.osv_record(id).await? else { return Err(not_found(format!("no record {id:?}"))) };
    Ok(fresh(StatusCode::OK, "application/json", text, public(&state)))
}

async fn query(State(state): State<AppState>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    may_read(&state, &caller).await?;
    Ok(Json(state.osv_query(&body).await?))
}

/// The body of a report, as PyPI's API takes it (plus an optional `version`).
fn report_of(body: &Bytes) -> ApiResult<Report> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        bad_request(format!(
            "the body must be JSON like {{\"kind\": \"is_malware\", \"summary\": \"...\", \"inspector_url\": \"https://...\"}}: {e}"
        ))
    })?;
    let text = |k: &str| -> ApiResult<Option<String>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_request(format!("{k} must be a string"))),
        }
    };
    Ok(Report {
        kind: text("kind")?
            .ok_or_else(|| bad_request("kind is required (is_malware, is_spam, is_dependency_confusion, something_else)"))?,
        summary: text("summary")?.ok_or_else(|| bad_request("summary is required"))?,
        inspector_url: text("inspector_url")?,
        version: text("version")?,
    })
}

async fn observe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
        && !accept
            .split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .any(|t| t == DANGER_JSON || t == "application/json" || t == "*/*")
    {
        return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, format!("this API answers {DANGER_JSON}")));
    }
    let p = caller.principal(&state).await?;
    let report = report_of(&body)?;
    let normalized = palisade_dist::normalize(&name);
    let outcome = state.report_project(&p, &caller.client, &name, report).await?;
    let mut body = json!({ "project": normalized, "thanks": "for the observation" });
    match outcome {
        Quarantined::No => {}
        Quarantined::Project => body["quarantined"] = json!("project"),
        Quarantined::Release(files) => body["quarantined"] = json!({ "files": files }),
    }
    let mut r = (StatusCode::ACCEPTED, Json(body)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(DANGER_JSON));
    Ok(r)
}

/// Reports, newest first, with each reporter's record (administrators).
async fn reports(State(state): State<AppState>, caller: Caller, Query(q): Query<HashMap<String, String>>) -> ApiResult<Json<Value>> {
    let p = caller.admin(&state).await?;
    let project = q.get("project").map(|n| palisade_dist::normalize(n));
    if let Some(name) = &project
        && !p.may_touch(name)
    {
        return Err(forbidden(format!("this token is limited to other projects than {name:?}")));
    }
    let list = state.db.observations(project.as_deref()).await.map_err(internal)?;
    let mut accuracy = HashMap::new();
    let mut out = Vec::new();
    for o in list {
        let (confirmed, released, open) = match accuracy.get(&o.reporter_id) {
            Some(a) => *a,
            None => {
                let a = state.db.reporter_accuracy(o.reporter_id).await.map_err(internal)?;
                *accuracy.entry(o.reporter_id).or_insert(a)
            }
        };
        out.push(json!({
            "id": o.id,
            "project": o.project,
            "version": o.version,
            "kind": o.kind,
            "summary": o.summary,
            "inspector_url": o.inspector_url,
            "reporter": { "name": o.reporter, "trusted": o.trusted, "confirmed": confirmed, "released": released, "open": open },
            "at": upload_time(o.created_at),
            "action": o.action,
            "outcome": o.outcome,
        }));
    }
    Ok(Json(json!({ "reports": out })))
}
