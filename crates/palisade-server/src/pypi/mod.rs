//! PyPI's protocols: the simple repository API (PEP 503/691), file downloads with their
//! `.metadata` (PEP 658), the JSON API, and the legacy upload API that twine speaks. The index
//! pages and JSON answers are rendered once per change (`cache`, `render`).

pub mod cache;
pub mod files;
pub mod integrity;
pub mod json_api;
pub mod mirror;
pub mod negotiate;
pub mod render;
pub mod simple;
pub mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::{AppState, moved};

pub fn routes() -> Router<AppState> {
    // The upload streams its body to disk under its own limit (`max_upload_bytes`).
    let upload_limit = DefaultBodyLimit::disable();
    Router::new()
        .route("/simple", get(|| async { moved("/simple/") }))
        .route("/simple/", get(simple::root))
        .route("/simple/{project}", get(simple::project_no_slash))
        .route("/simple/{project}/", get(simple::project))
        .route("/files/{filename}", get(files::download))
        .route("/pypi/{project}/json", get(json_api::project))
        .route("/pypi/{project}/json/", get(json_api::project))
        .route("/pypi/{project}/{version}/json", get(json_api::release))
        .route("/pypi/{project}/{version}/json/", get(json_api::release))
        .route("/integrity/{project}/{version}/{filename}/provenance", get(integrity::provenance))
        .route("/legacy/", post(upload::upload).layer(upload_limit))
        .route("/legacy", post(upload::upload).layer(upload_limit))
        .route("/", post(upload::upload).layer(upload_limit))
}
