//! PyPI's JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`, with the fields
//! that clients and tools read (https://docs.pypi.org/api/json/).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use palisade_store::{FileRow, Project, Release};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiResult, internal, not_found};
use crate::render::{sorted_versions, upload_time};

pub async fn project(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    render(&state, &name, None, &headers).await
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    render(&state, &name, Some(&version), &headers).await
}

async fn render(state: &AppState, name: &str, version: Option<&str>, headers: &HeaderMap) -> ApiResult<Response> {
    let normalized = palisade_dist::normalize(name);
    if normalized != name {
        let tail = version.map(|v| format!("{v}/")).unwrap_or_default();
        return Ok(crate::moved(&format!("/pypi/{normalized}/{tail}json")).into_response());
    }
    let project = state.db.project(&normalized).await.map_err(internal)?.filter(|p| p.status != "quarantined");
    let Some(project) = project else { return Err(not_found(format!("no project named {normalized:?}"))) };
    let releases = state.db.releases(project.id).await.map_err(internal)?;
    let all_files = state.db.project_files(project.id).await.map_err(internal)?;
    let files: Vec<FileRow> = crate::render::visible(&project, &all_files).into_iter().cloned().collect();
    if files.is_empty() && !all_files.is_empty() {
        return Err(not_found(format!("no project named {normalized:?}")));
    }
    let releases: Vec<Release> = releases
        .into_iter()
        .filter(|r| files.iter().any(|f| f.release_id == r.id) || !all_files.iter().any(|f| f.release_id == r.id))
        .collect();
    let base = state.base_url(headers);
    let release = match version {
        Some(v) => {
            let canonical = palisade_dist::parse_version(v).map(|v| palisade_dist::canonical_version(&v)).ok();
            releases
                .iter()
                .find(|r| Some(&r.canonical_version) == canonical.as_ref())
                .ok_or_else(|| not_found(format!("{normalized} has no release {v:?}")))?
        }
        None => latest(&releases, &files).ok_or_else(|| not_found(format!("{normalized} has no releases")))?,
    };
    let entry = |f: &FileRow| file_entry(f, &base);
    let urls: Vec<Value> = files.iter().filter(|f| f.release_id == release.id).map(entry).collect();
    let mut body = json!({
        "info": info(&project, release, &files, &base),
        "last_serial": project.last_serial,
        "urls": urls,
        "vulnerabilities": [],
    });
    if version.is_none() {
        let mut map = Map::new();
        for v in sorted_versions(&releases) {
            let r = releases.iter().find(|r| r.version == v).map(|r| r.id);
            map.insert(v, Value::Array(files.iter().filter(|f| Some(f.release_id) == r).map(entry).collect()));
        }
        body["releases"] = Value::Object(map);
    }
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert("x-pypi-last-serial", HeaderValue::from(project.last_serial));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60, public"));
    Ok(resp)
}

/// PyPI's choice of "the" release: the highest version that is not a pre-release and not wholly
/// yanked; failing that, the highest of all.
fn latest<'a>(releases: &'a [Release], files: &[FileRow]) -> Option<&'a Release> {
    let parsed = |r: &Release| palisade_dist::parse_version(&r.version).ok();
    let all_yanked = |r: &Release| {
        let mut fs = files.iter().filter(|f| f.release_id == r.id).peekable();
        fs.peek().is_some() && fs.all(|f| f.yanked)
    };
    let best = |pred: &dyn Fn(&Release) -> bool| {
        releases.iter().filter(|r| pred(r)).filter_map(|r| parsed(r).map(|v| (v, r))).max_by(|a, b| a.0.cmp(&b.0)).map(|(_, r)| r)
    };
    best(&|r| !all_yanked(r) && parsed(r).is_some_and(|v| !v.any_prerelease())).or_else(|| best(&|_| true))
}

fn info(project: &Project, release: &Release, files: &[FileRow], base: &str) -> Value {
    let m: Value = serde_json::from_str(&release.metadata).unwrap_or(Value::Null);
    let s = |k: &str| m.get(k).cloned().filter(|v| !v.is_null()).unwrap_or(Value::Null);
    let list = |k: &str| m.get(k).cloned().filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    let project_urls: BTreeMap<String, String> = m
        .get("project_urls")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|u| u.as_str()?.split_once(',').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect())
        .unwrap_or_default();
    let rel_files: Vec<&FileRow> = files.iter().filter(|f| f.release_id == release.id).collect();
    let yanked = !rel_files.is_empty() && rel_files.iter().all(|f| f.yanked);
    let yanked_reason = if yanked { rel_files.iter().find_map(|f| f.yanked_reason.clone()) } else { None };
    let platform = m.get("platforms").and_then(Value::as_array).and_then(|a| a.first().cloned()).unwrap_or(Value::Null);
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
        "name": project.name,
        "package_url": format!("{base}/simple/{}/", project.normalized),
        "platform": platform,
        "project_url": format!("{base}/simple/{}/", project.normalized),
        "project_urls": if project_urls.is_empty() { Value::Null } else { json!(project_urls) },
        "provides_extra": list("provides_extras"),
        "release_url": format!("{base}/pypi/{}/{}/json", project.normalized, release.version),
        "requires_dist": list("requires_dist"),
        "requires_python": release.requires_python,
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
        "url": format!("{base}/files/{}", crate::render::encode_filename(&f.filename)),
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason,
        "core-metadata": { "sha256": f.metadata_sha256 },
    })
}
