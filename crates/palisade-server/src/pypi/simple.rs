//! The simple repository API: `/simple/` and `/simple/<project>/`, served from the cache.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use palisade_core::mirror::{Route, names};

use crate::AppState;
use crate::http::error::{ApiError, ApiResult, internal, not_found};
use crate::pypi::cache::{Kind, Page};
use crate::pypi::negotiate::{self, Format};

pub async fn root(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let format = pick(&headers, &q)?;
    let (page, hit) = state.cache.root(&state.db, kind_of(format)).await.map_err(internal)?;
    state.count_cache(hit);
    Ok(respond(&page, format, &headers))
}

pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let normalized = palisade_dist::normalize(&name);
    if normalized != name {
        return Ok(redirect_to(&format!("/simple/{normalized}/"), &q));
    }
    let format = pick(&headers, &q)?;
    let mirror = &state.config.mirror;
    // A name the operator merged with upstream: this index's files and upstream's on one page.
    if mirror.enabled() && names::route(mirror, &normalized, true) == Route::Merged {
        state.core.mirror_read_ahead_page(&normalized, crate::pypi::mirror::client_target(&headers));
        let local = crate::pypi::mirror::local_json(&state, &normalized).await?;
        let page = crate::pypi::mirror::page(&state, &normalized, kind_of(format), local).await?;
        return page.map(|p| respond(&p, format, &headers)).ok_or_else(|| not_found(format!("no project named {normalized:?}")));
    }
    if let Some((page, hit)) =
        state.cache.project(&state.db, &normalized, kind_of(format), &state.links(), || state.blocks()).await.map_err(internal)?
    {
        state.count_cache(hit);
        return Ok(respond(&page, format, &headers));
    }
    // Not hosted here: upstream's, unless the name is reserved.
    if names::route(mirror, &normalized, false) == Route::Mirror
        && let Some(page) = crate::pypi::mirror::page(&state, &normalized, kind_of(format), None).await?
    {
        state.core.mirror_read_ahead_page(&normalized, crate::pypi::mirror::client_target(&headers));
        return Ok(respond(&page, format, &headers));
    }
    Err(not_found(format!("no project named {normalized:?}")))
}

/// `/simple/<name>` without the slash.
pub async fn project_no_slash(Path(name): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    redirect_to(&format!("/simple/{}/", palisade_dist::normalize(&name)), &q)
}

fn redirect_to(path: &str, q: &HashMap<String, String>) -> Response {
    let location = match q.get("format") {
        Some(f) => format!("{path}?format={}", percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC)),
        None => path.to_string(),
    };
    crate::moved(&location).into_response()
}

fn pick(headers: &HeaderMap, q: &HashMap<String, String>) -> ApiResult<Format> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    negotiate::choose(accept, q.get("format").map(String::as_str)).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "none of the requested media types is served here; available: {}, {}, text/html",
                negotiate::JSON_V1,
                negotiate::HTML_V1
            ),
        )
    })
}

fn kind_of(format: Format) -> Kind {
    match format {
        Format::Json => Kind::Json,
        Format::Html(_) => Kind::Html,
    }
}

fn respond(page: &Page, format: Format, headers: &HeaderMap) -> Response {
    let (body, etag) = (page.body.clone(), &page.etag);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or("")));
    let mut resp = if not_modified { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60, public"));
    h.insert("x-pypi-last-serial", page.serial.clone());
    resp
}

impl AppState {
    pub(crate) fn count_cache(&self, hit: bool) {
        let counter = if hit { &self.metrics.cache_hits } else { &self.metrics.cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
