//! The transparency log as C2SP tlog-tiles, under `/log/`: the signed checkpoint, hash tiles and
//! entry bundles, and a C2SP tlog-proof per published file (docs/transparency.md). What they are
//! made of is the core's (`palisade_core::transparency`); this is the HTTP side: paths, media
//! types and the caching the spec asks for.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use palisade_core::transparency::{Proof, Tile, parse_tile};

use crate::AppState;
use crate::http::error::{ApiError, ApiResult, not_found};

/// Tiles never change once served: a partial tile is a prefix of what later grows.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// How long a client waits before asking again for what no checkpoint covers yet.
const RETRY_SECS: u64 = 2;

pub fn routes() -> Router<AppState> {
    Router::new().route("/log/checkpoint", get(checkpoint)).route("/log/tile/{*path}", get(tile)).route("/log/proof/{filename}", get(proof))
}

fn text(body: String, cache: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

fn not_yet(what: String) -> ApiError {
    ApiError { retry_after: Some(RETRY_SECS), ..not_found(what) }
}

async fn checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    let note = state.log_checkpoint().await?.ok_or_else(|| not_yet("the log has no checkpoint yet".into()))?;
    // Checkpoints move on every change: caches may keep one for a second at most.
    Ok(text(note, "public, max-age=1"))
}

async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let tile = parse_tile(&path)?;
    match state.log_tile(&tile).await? {
        Tile::Bytes(bytes) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
            Ok(r)
        }
        Tile::NotYet => Err(not_yet(format!("tile/{path} is beyond the newest checkpoint"))),
    }
}

async fn proof(State(state): State<AppState>, Path(filename): Path<String>) -> ApiResult<Response> {
    match state.log_proof(&filename).await? {
        Proof::Text(t) => Ok(text(t, "public, max-age=60")),
        Proof::NotYet => Err(not_yet(format!("no checkpoint covers the entry of {filename:?} yet; try again in a few seconds"))),
    }
}
