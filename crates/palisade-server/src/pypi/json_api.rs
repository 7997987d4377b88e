//! PyPI's JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`, with the fields
//! that clients and tools read (https://docs.pypi.org/api/json/).
//!
//! Everything here is public, so it is built from published files only: a release appears while
//! one of its files is published, and its `info` comes from the core metadata of its earliest
//! published file, never from a file held for review (see `render::public_releases`). Absolute
//! URLs come from `AppState::base_url`, never from the request, so one answer fits every caller
//! and is cached in memory (`IndexCache::json_api`) until the project changes, with a gzip copy
//! for clients that accept it.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_store::{FileRow, Project};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::http::error::{ApiResult, internal, not_found};
use crate::pypi::cache::Page;
use crate::pypi::render::{PublicRelease, public_releases, upload_time};

pub async fn project(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    answer(&state, &name, None, &headers).await
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    answer(&state, &name, Some(&version), &headers).await
}

async fn answer(state: &AppState, name: &str, version: Option<&str>, headers: &HeaderMap) -> ApiResult<Response> {
    let normalized = palisade_dist::normalize(name);
    if normalized != name {
        let tail = version.map(|v| format!("{v}/")).unwrap_or_default();
        return Ok(crate::moved(&format!("/pypi/{normalized}/{tail}json")).into_response());
    }
    // Cached by canonical version, so `1.0`, `1.0.0` and `v1` share one entry and a caller cannot
    // fill the cache with spellings.
    let canonical = match version {
        Some(v) => Some(
            palisade_dist::parse_version(v)
                .map(|v| palisade_dist::canonical_version(&v))
                .map_err(|_| not_found(format!("{normalized} has no release {v:?}")))?,
        ),
        None => None,
    };
    let base = state.base_url();
    let (page, hit) =
        state.cache.json_api(&normalized, canonical.as_deref(), || build(state, &normalized, version, canonical.as_deref(), &base)).await?;
    state.count_cache(hit);
    Ok(respond_as(&page, headers, "application/json"))
}

/// The JSON answer and the project's serial, or the 404 to send.
async fn build(state: &AppState, normalized: &str, asked: Option<&str>, canonical: Option<&str>, base: &str) -> ApiResult<(Vec<u8>, i64)> {
    let project = state.db.project(normalized).await.map_err(internal)?;
    let Some(project) = project else { return Err(not_found(format!("no project named {normalized:?}"))) };
    let releases = state.db.releases(project.id).await.map_err(internal)?;
    let mut files = state.db.project_files(project.id).await.map_err(internal)?;
    state.blocks().hide(&mut files);
    let public = public_releases(&project, &releases, &files);
    if public.is_empty() {
        // Unknown, quarantined, or with nothing published: the same answer for each.
        return Err(not_found(format!("no project named {normalized:?}")));
    }
    let release = match (asked, canonical) {
        (Some(v), Some(c)) => public
            .iter()
            .find(|r| r.release.canonical_version == c)
            .ok_or_else(|| not_found(format!("{normalized} has no release {v:?}")))?,
        _ => latest(&public).ok_or_else(|| not_found(format!("{normalized} has no releases")))?,
    };
    let raw = state.db.core_metadata(&release.first.filename).await.map_err(internal)?.unwrap_or_default();
    let metadata = palisade_dist::CoreMetadata::read_fields(&raw).ok().and_then(|m| serde_json::to_value(m).ok()).unwrap_or(Value::Null);
    let entry = |f: &&FileRow| file_entry(f, base);
    let mut body = json!({
        "info": info(&project, release, &metadata, base),
        "last_serial": project.last_serial,
        "urls": release.files.iter().map(entry).collect::<Vec<_>>(),
        "vulnerabilities": vulnerabilities(state, normalized, &release.version).await?,
    });
    if asked.is_none() {
        let mut map = Map::new();
        for r in &public {
            map.insert(r.version.clone(), Value::Array(r.files.iter().map(entry).collect()));
        }
        body["releases"] = Value::Object(map);
    }
    Ok((serde_json::to_vec(&body).map_err(internal)?, project.last_serial))
}

/// Known vulnerabilities of `version` (PyPI's `vulnerabilities`; see `Core::vulnerabilities`).
async fn vulnerabilities(state: &AppState, normalized: &str, version: &str) -> ApiResult<Value> {
    Ok(Value::Array(state.vulnerabilities(normalized, version).await.map_err(internal)?))
}

/// The cached page, as gzip when the client accepts it, with a validator: a JSON API answer, or
/// (`content_type`) a web page.
pub(crate) fn respond_as(page: &Page, headers: &HeaderMap, content_type: &'static str) -> Response {
    let etag = &page.etag;
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or("")));
    let gzip = page.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        gzip.cloned().unwrap_or_else(|| page.body.clone()).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if gzip.is_some() && !not_modified {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60, public"));
    h.insert("x-pypi-last-serial", page.serial.clone());
    resp
}

/// Whether `Accept-Encoding` admits gzip: its own q-value if it is listed, else that of `*`.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for item in headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok())).unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// PyPI's choice of "the" release: the highest version that is not a pre-release and not wholly
/// yanked; failing that, the highest of all. `releases` is in PEP 440 order.
pub(crate) fn latest<'r, 'a>(releases: &'r [PublicRelease<'a>]) -> Option<&'r PublicRelease<'a>> {
    let stable = |r: &&PublicRelease| {
        !r.files.iter().all(|f| f.yanked) && palisade_dist::parse_version(&r.version).is_ok_and(|v| !v.any_prerelease())
    };
    releases.iter().rev().find(stable).or_else(|| releases.last())
}

fn info(project: &Project, release: &PublicRelease, m: &Value, base: &str) -> Value {
    let s = |k: &str| m.get(k).cloned().filter(|v| !v.is_null()).unwrap_or(Value::Null);
    let list = |k: &str| m.get(k).cloned().filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    let project_urls: BTreeMap<String, String> = m
        .get("project_urls")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|u| u.as_str()?.split_once(',').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect())
        .unwrap_or_default();
    let yanked = release.files.iter().all(|f| f.yanked);
    let yanked_reason = if yanked { release.files.iter().find_map(|f| f.yanked_reason.clone()) } else { None };
    let platform = m.get("platforms").and_then(Value::as_array).and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
    // The name as the describing file's metadata spells it (the project row keeps the spelling
    // of the first upload, which may be one held for review).
    let name = m.get("name").and_then(Value::as_str).map(str::trim).filter(|n| palisade_dist::normalize(n) == project.normalized);
    json!({
        "author": s("author"),
        "author_email": s("author_email"),
        "bugtrack_url": null,
        "classifiers": m.get("classifiers").cloned().unwrap_or(json!([])),
        "description": s("description"),
        "description_content_type": s("description_content_type"),
        "docs_url": null,
        "download_url": s("download_url"),
        "downloads": { "last_day": -1, "last_month": -1, "last_week": -1 },
        "dynamic": list("dynamic"),
        "home_page": s("home_page"),
        "keywords": s("keywords"),
        "license": s("license"),
        "license_expression": s("license_expression"),
        "license_files": list("license_files"),
        "maintainer": s("maintainer"),
        "maintainer_email": s("maintainer_email"),
        "name": name.unwrap_or(&project.normalized),
        "package_url": format!("{base}/simple/{}/", project.normalized),
        "platform": platform,
        "project_url": format!("{base}/simple/{}/", project.normalized),
        "project_urls": if project_urls.is_empty() { Value::Null } else { json!(project_urls) },
        "provides_extra": list("provides_extras"),
        "release_url": format!("{base}/pypi/{}/{}/json", project.normalized, release.version),
        "requires_dist": list("requires_dist"),
        "requires_python": release.first.requires_python,
        "summary": s("summary"),
        "version": release.version,
        "yanked": yanked,
        "yanked_reason": yanked_reason,
    })
}

fn file_entry(f: &FileRow, base: &str) -> Value {
    let iso = upload_time(f.upload_time);
    json!({
        "comment_text": "",
        "digests": { "blake2b_256": f.blake2b_256, "md5": f.md5, "sha256": f.sha256 },
        "downloads": -1,
        "filename": f.filename,
        "has_sig": false,
        "md5_digest": f.md5,
        "packagetype": f.packagetype,
        "python_version": f.python_version,
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": iso.get(..19).unwrap_or(&iso),
        "upload_time_iso_8601": iso,
        "url": format!("{base}/files/{}", crate::pypi::render::encode_filename(&f.filename)),
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason,
        "core-metadata": { "sha256": f.metadata_sha256 },
        "provenance": crate::pypi::render::provenance_url(base, f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let check = |value: Option<&str>, expected: bool| {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(accepts_gzip(&h), expected, "{value:?}");
        };
        check(None, false);
        check(Some("gzip"), true);
        check(Some("gzip, deflate, br"), true);
        check(Some("br;q=1.0, GZIP;q=0.5"), true);
        check(Some("gzip;q=0"), false);
        check(Some("identity"), false);
        check(Some("*"), true);
        check(Some("deflate, *;q=0"), false);
        check(Some("gzip;q=0, *"), false);
        check(Some("*;q=0, gzip"), true);
    }
}
