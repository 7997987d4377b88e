//! File downloads and PEP 658 metadata files, at `/files/<filename>` and
//! `/files/<filename>.metadata`. Files are immutable, so they are cached forever and tagged with
//! their sha256.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, forbidden, internal, not_found};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Published files of a project that is not quarantined are public.
fn public(file: &palisade_store::FileRow) -> bool {
    file.is_published() && file.project_status != "quarantined"
}

/// Whether `caller` may have `file`. A file an OSV record blocks answers 403 naming the record,
/// to everyone (a pinned install fails loudly, not with a silent 404); the decision is the
/// index's (`Blocks::decide`). Anything else not public is served only to the project's owners
/// and to administrators, who must authenticate (a file confirmed as malicious, to
/// administrators only); to anyone else it does not exist.
async fn may_download(state: &AppState, file: &palisade_store::FileRow, caller: &Caller) -> Result<(), ApiError> {
    if let Some(block) = state.blocks().decide_file(file) {
        // Administrators may still fetch it, for analysis (never a shared cache: see
        // `cache_headers`).
        if let Ok(p) = caller.principal(state).await
            && p.is_admin
            && p.may_touch(&file.project)
        {
            return Ok(());
        }
        return Err(forbidden(format!("{} is {}", file.filename, block.message())));
    }
    if public(file) {
        return Ok(());
    }
    let hidden = || not_found(format!("no file named {:?}", file.filename));
    let Ok(p) = caller.principal(state).await else { return Err(hidden()) };
    let Some(uid) = p.user_id else { return Err(hidden()) };
    if !p.may_touch(&file.project) {
        return Err(hidden());
    }
    if p.is_admin {
        return Ok(());
    }
    let owner = matches!(state.db.role(file.project_id, uid).await, Ok(Some(palisade_store::Role::Owner)));
    if owner && file.status != "malicious" { Ok(()) } else { Err(hidden()) }
}

/// How long a shared cache may keep an answer about a file: forever for a public file (files
/// never change: published, and no record blocks it), not at all for one shown to its owners
/// only (or to administrators, when a record blocks it), which also varies with the credential.
fn cache_headers(public: bool, h: &mut HeaderMap) {
    if public {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        h.insert(header::VARY, HeaderValue::from_static("Authorization"));
    }
}

pub async fn download(State(state): State<AppState>, Path(name): Path<String>, caller: Caller, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(dist) = name.strip_suffix(".metadata") {
        return metadata(&state, dist, &caller, &headers).await;
    }
    let Some(file) = state.db.file(&name).await.map_err(internal)? else {
        // Not a hosted file: an upstream one through the mirror, fetched, checked and scanned on
        // its first request.
        if !state.config.mirror.enabled() {
            return Err(not_found(format!("no file named {name:?}")));
        }
        let row = state.core.mirror_download(&name, crate::pypi::mirror::client_target(&headers)).await?;
        return send(&state, &name, &row.sha256, row.size as u64, true, &headers).await;
    };
    may_download(&state, &file, &caller).await?;
    let public = public(&file) && state.blocks().decide_file(&file).is_none();
    send(&state, &name, &file.sha256, file.size as u64, public, &headers).await
}

/// Sends the blob `sha256` as the file `name`: whole or a range, tagged with its sha256, cached
/// forever by shared caches when `public` (never otherwise: see `cache_headers`).
async fn send(state: &AppState, name: &str, sha256: &str, size: u64, public: bool, headers: &HeaderMap) -> ApiResult<Response> {
    let etag = format!("\"{sha256}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut resp = (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
        cache_headers(public, resp.headers_mut());
        return Ok(resp);
    }
    // Files a shared cache may keep can be handed out by the bucket itself, when the operator
    // enabled it; held files always come through here, to the caller alone.
    if public && let Some(url) = state.blobs.presigned_url(sha256, name).await.map_err(internal)? {
        let mut resp = (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response();
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        return Ok(resp);
    }
    let content_type = if name.ends_with(".whl") || name.ends_with(".zip") { "application/zip" } else { "application/gzip" };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map_or(Range::Whole, |r| parse_range(r, size));
    let (status, start, len) = match range {
        Range::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Range::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                "requested range not satisfiable\n",
            )
                .into_response());
        }
        Range::Whole => (StatusCode::OK, 0, size),
    };
    let bytes = state
        .blobs
        .read(sha256, (status == StatusCode::PARTIAL_CONTENT).then_some(start..start + len))
        .await
        .map_err(|e| internal(format!("blob {sha256} for {name}: {e}")))?;
    state.metrics.download_bytes.fetch_add(len, Ordering::Relaxed);
    let body = Body::from_stream(bytes);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    cache_headers(public, h);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

async fn metadata(state: &AppState, dist: &str, caller: &Caller, headers: &HeaderMap) -> ApiResult<Response> {
    let Some(file) = state.db.file(dist).await.map_err(internal)? else {
        let data = crate::pypi::mirror::metadata(state, dist, crate::pypi::mirror::client_target(headers)).await?;
        let etag = format!("\"{}\"", palisade_dist::sha256_hex(&data));
        let mut resp = ([(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::ETAG, etag)], data).into_response();
        cache_headers(true, resp.headers_mut());
        return Ok(resp);
    };
    may_download(state, &file, caller).await?;
    let data = state.db.core_metadata(dist).await.map_err(internal)?.ok_or_else(|| not_found(format!("no file named {dist:?}")))?;
    let etag = format!("\"{}\"", file.metadata_sha256);
    let mut resp = ([(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::ETAG, etag)], data).into_response();
    cache_headers(public(&file) && state.blocks().decide_file(&file).is_none(), resp.headers_mut());
    Ok(resp)
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range against a file of `size` bytes. Multiple ranges, other units and malformed
/// headers are ignored (the whole file is served), which RFC 9110 allows.
fn parse_range(header: &str, size: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Range::Whole };
    let Some((a, b)) = spec.split_once('-') else { return Range::Whole };
    if spec.contains(',') {
        return Range::Whole;
    }
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(0) => Range::Unsatisfiable,
            Ok(_) if size == 0 => Range::Unsatisfiable,
            Ok(n) => Range::Part(size.saturating_sub(n), size - 1),
            Err(_) => Range::Whole,
        };
    }
    let Ok(start) = a.parse::<u64>() else { return Range::Whole };
    let end = if b.is_empty() {
        size.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) => e.min(size.saturating_sub(1)),
            Err(_) => return Range::Whole,
        }
    };
    if start >= size || start > end {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::{Range, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Part(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Range::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Whole);
        assert_eq!(parse_range("items=0-1", 100), Range::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Range::Whole);
    }
}
