//! `/project/<name>/` and `/project/<name>/<version>/`: a release's description, metadata,
//! install command, files with sizes, hashes, scan status and provenance, and the release
//! history. Built from what anonymous clients may see (the JSON API's rules: published files
//! only, OSV-blocked files hidden) and cached per project change.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::Value;
use palisade_store::{FileRow, Project, Release};
use serde::Serialize;
use serde_json::Value as Json;

use super::from_api_error;
use super::markdown::{self, Rendered};
use super::templates::{self, ser};
use crate::AppState;
use crate::http::error::{ApiResult, internal, not_found};
use crate::pypi::cache::Doc;
use crate::pypi::render::{PublicRelease, effective_status, encode_filename, public_releases};

pub async fn latest(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    answer(&state, &name, None, &headers).await
}

pub async fn release(State(state): State<AppState>, Path((name, version)): Path<(String, String)>, headers: HeaderMap) -> Response {
    answer(&state, &name, Some(&version), &headers).await
}

async fn answer(state: &AppState, name: &str, version: Option<&str>, headers: &HeaderMap) -> Response {
    let normalized = palisade_dist::normalize(name);
    if normalized != name {
        let tail = version.map(|v| format!("{v}/")).unwrap_or_default();
        return crate::moved(&format!("/project/{normalized}/{tail}"));
    }
    // Cached by canonical version, like the JSON API: a caller cannot fill the cache with spellings.
    let canonical = match version {
        Some(v) => match palisade_dist::parse_version(v) {
            Ok(parsed) => Some(palisade_dist::canonical_version(&parsed)),
            Err(_) => return from_api_error(state, not_found(format!("{normalized} has no release {v:?}"))),
        },
        None => None,
    };
    let built = state
        .cache
        .document(Doc::WebPage, &normalized, canonical.as_deref(), || build(state, &normalized, version, canonical.as_deref()))
        .await;
    match built {
        Ok((page, hit)) => {
            state.count_cache(hit);
            crate::pypi::json_api::respond_as(&page, headers, "text/html; charset=utf-8")
        }
        Err(e) => from_api_error(state, e),
    }
}

/// The page and the project's serial, or the error to show.
/// A project as anonymous clients may see it: its releases, and its files less those an OSV
/// record blocks (`public_releases` then keeps the published ones).
async fn public_view(state: &AppState, normalized: &str) -> ApiResult<(Project, Vec<Release>, Vec<FileRow>)> {
    let project = state
        .db
        .project(normalized)
        .await
        .map_err(internal)?
        .ok_or_else(|| not_found(format!("there is no project named {normalized:?}")))?;
    let releases = state.db.releases(project.id).await.map_err(internal)?;
    let mut files = state.db.project_files(project.id).await.map_err(internal)?;
    state.blocks().hide(&mut files);
    Ok((project, releases, files))
}

async fn build(state: &AppState, normalized: &str, asked: Option<&str>, canonical: Option<&str>) -> ApiResult<(Vec<u8>, i64)> {
    let missing = || not_found(format!("there is no project named {normalized:?}"));
    let (project, releases, files) = public_view(state, normalized).await?;
    let public = public_releases(&project, &releases, &files);
    let site = templates::site(state);
    if public.is_empty() {
        // A project an administrator quarantined says so (installers get nothing from it); one
        // with nothing published, or only files held for review, is not shown at all.
        if project.status == "quarantined" {
            let ctx = minijinja::context! { site => ser(site), project => ser(project_ctx(&project, &files)), release => minijinja::context! { version => "" } };
            return Ok((templates::render("project.html", ctx).map_err(internal)?.into_bytes(), project.last_serial));
        }
        return Err(missing());
    }
    let latest = crate::pypi::json_api::latest(&public);
    let release = match (asked, canonical) {
        (Some(v), Some(c)) => public
            .iter()
            .find(|r| r.release.canonical_version == c)
            .ok_or_else(|| not_found(format!("{normalized} has no release {v:?}")))?,
        _ => latest.ok_or_else(missing)?,
    };
    let raw = state.db.core_metadata(&release.first.filename).await.map_err(internal)?.unwrap_or_default();
    let metadata = palisade_dist::CoreMetadata::read_fields(&raw).ok().and_then(|m| serde_json::to_value(m).ok()).unwrap_or(Json::Null);
    let (description_html, description_text) = match metadata.get("description").and_then(Json::as_str).filter(|d| !d.trim().is_empty()) {
        Some(d) => match markdown::render(d, metadata.get("description_content_type").and_then(Json::as_str)) {
            Rendered::Html(h) => (Some(Value::from_safe_string(h)), None),
            Rendered::Text(t) => (None, Some(t)),
        },
        None => (None, None),
    };
    let mut file_ctx = Vec::with_capacity(release.files.len());
    for f in &release.files {
        file_ctx.push(file(state, f).await?);
    }
    let maintainers: Vec<Json> = state
        .db
        .roles(Some(normalized))
        .await
        .map_err(internal)?
        .into_iter()
        .map(|r| serde_json::json!({ "name": r.user_name, "role": r.role }))
        .collect();
    let name = metadata.get("name").and_then(Json::as_str).map(str::trim).filter(|n| palisade_dist::normalize(n) == normalized);
    let install = format!("pip install --index-url {}/simple/ {}=={}", site.base, name.unwrap_or(normalized), release.version);
    let history: Vec<Json> = public
        .iter()
        .rev()
        .map(|r| {
            let yanked = r.files.iter().all(|f| f.yanked);
            serde_json::json!({
                "version": r.version,
                "uploaded": palisade_core::timestamp(r.first.upload_time),
                "yanked": yanked,
                "yanked_reason": if yanked { r.files.iter().find_map(|f| f.yanked_reason.clone()) } else { None },
                "prerelease": palisade_dist::parse_version(&r.version).is_ok_and(|v| v.any_prerelease()),
                "current": r.release.id == release.release.id,
            })
        })
        .collect();
    let yanked = release.files.iter().all(|f| f.yanked);
    let mut shown = project_ctx(&project, &files);
    shown.name = name.unwrap_or(&project.name).to_string();
    // A hosted project whose name also exists on an upstream the mirror uses.
    shown.upstream_namesake = state.db.shadows(Some(normalized)).await.map_err(internal)?.into_iter().next().map(|s| s.upstream);
    let ctx = minijinja::context! {
        site => ser(site),
        project => ser(shown),
        release => minijinja::context! {
            version => release.version.clone(),
            is_latest => latest.is_some_and(|l| l.release.id == release.release.id),
            yanked,
            yanked_reason => if yanked { release.files.iter().find_map(|f| f.yanked_reason.clone()) } else { None },
            uploaded => palisade_core::timestamp(release.first.upload_time),
        },
        latest => latest.map(|l| l.version.clone()),
        meta => ser(meta(&metadata, release)),
        urls => ser(urls(&metadata)),
        description_html,
        description_text,
        install,
        files => ser(file_ctx),
        maintainers => ser(maintainers),
        history => ser(history),
    };
    Ok((templates::render("project.html", ctx).map_err(internal)?.into_bytes(), project.last_serial))
}

/// How lists describe a project (`Doc::WebCard`): its name, latest public version and summary,
/// from its public files only (held, removed and blocked files say nothing), with the serial.
/// A project with nothing public is a 404, which lists leave out.
pub(super) async fn card(state: &AppState, normalized: &str) -> ApiResult<(Vec<u8>, i64)> {
    let missing = || not_found(format!("there is no project named {normalized:?}"));
    let (project, releases, files) = public_view(state, normalized).await?;
    let public = public_releases(&project, &releases, &files);
    let latest = crate::pypi::json_api::latest(&public).ok_or_else(missing)?;
    let raw = state.db.core_metadata(&latest.first.filename).await.map_err(internal)?.unwrap_or_default();
    let fields = palisade_dist::CoreMetadata::read_fields(&raw).ok().and_then(|m| serde_json::to_value(m).ok()).unwrap_or(Json::Null);
    let summary = fields.get("summary").and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty());
    let name = fields.get("name").and_then(Json::as_str).map(str::trim).filter(|n| palisade_dist::normalize(n) == normalized);
    let body = serde_json::json!({
        "name": name.unwrap_or(&project.name),
        "normalized": normalized,
        "version": latest.version,
        "summary": summary,
    });
    Ok((serde_json::to_vec(&body).map_err(internal)?, project.last_serial))
}

#[derive(Serialize)]
struct ProjectCtx {
    name: String,
    normalized: String,
    status: String,
    status_title: &'static str,
    status_text: &'static str,
    status_reason: Option<String>,
    /// The upstream index that also has a project of this name, if any.
    upstream_namesake: Option<String>,
}

/// The project and its PEP 792 status as a banner says it.
fn project_ctx(project: &Project, files: &[FileRow]) -> ProjectCtx {
    let status = effective_status(project, files).to_string();
    let (status_title, status_text) = match status.as_str() {
        "archived" => ("This project is archived", "Its maintainers do not expect to publish new releases."),
        "deprecated" => ("This project is deprecated", "Its maintainers recommend not using it."),
        "quarantined" => ("This project is quarantined", "Its files are not served while administrators review it."),
        _ => ("", ""),
    };
    ProjectCtx {
        name: project.name.clone(),
        normalized: project.normalized.clone(),
        status,
        status_title,
        status_text,
        status_reason: project.status_reason.clone(),
        upstream_namesake: None,
    }
}

/// The metadata fields the page shows.
fn meta(m: &Json, release: &PublicRelease) -> Json {
    let text = |k: &str| m.get(k).and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let list = |k: &str| m.get(k).and_then(Json::as_array).cloned().unwrap_or_default();
    serde_json::json!({
        "summary": text("summary"),
        "license": text("license_expression").or_else(|| text("license").filter(|l| l.len() <= 200 && !l.contains('\n'))),
        "requires_python": release.first.requires_python,
        "author": text("author").or_else(|| text("author_email")),
        "maintainer": text("maintainer").or_else(|| text("maintainer_email")),
        "keywords": text("keywords"),
        "classifiers": list("classifiers"),
        "requires_dist": list("requires_dist"),
    })
}

/// The project's links (`Project-URL`, `Home-page`, `Download-URL`): only `http(s)` addresses
/// become links; anything else is shown as text.
fn urls(m: &Json) -> Vec<Json> {
    let mut out = Vec::new();
    let mut push = |label: &str, url: &str| {
        let url = url.trim();
        if url.is_empty() {
            return;
        }
        let link = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).map(|u| u.to_string());
        out.push(serde_json::json!({ "label": label, "href": link, "text": url }));
    };
    if let Some(home) = m.get("home_page").and_then(Json::as_str) {
        push("Homepage", home);
    }
    for entry in m.get("project_urls").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
        if let Some((label, url)) = entry.split_once(',') {
            push(label.trim(), url);
        }
    }
    if let Some(download) = m.get("download_url").and_then(Json::as_str) {
        push("Download", download);
    }
    out
}

/// One file as the page lists it.
async fn file(state: &AppState, f: &FileRow) -> ApiResult<Json> {
    let reports = state.db.reports(&f.filename).await.map_err(internal)?;
    let scan = match reports.first() {
        None => serde_json::json!({ "class": "none", "text": "not scanned (uploaded while scanning was off)" }),
        Some(r) if r.decision.as_deref() == Some("released") => {
            serde_json::json!({ "class": "reviewed", "text": format!("held for review ({} verdict), then released by an administrator", r.verdict) })
        }
        Some(r) if r.verdict == "clean" => serde_json::json!({ "class": "clean", "text": "no findings" }),
        Some(r) => {
            serde_json::json!({ "class": "reviewed", "text": format!("{} verdict, published under the instance's policy", r.verdict) })
        }
    };
    let provenance = if f.has_provenance {
        let stored = state.db.attestations(f.id).await.map_err(internal)?;
        stored.first().and_then(|a| serde_json::from_str::<Json>(&a.publisher).ok()).map(|p| {
            let s = |k: &str| p.get(k).and_then(Json::as_str).map(str::to_string);
            let kind = s("kind").unwrap_or_else(|| "trusted".into());
            let repository = s("repository").or_else(|| s("project")).unwrap_or_default();
            let href = match kind.as_str() {
                "GitHub" if is_path(&repository) => Some(format!("https://github.com/{repository}")),
                "GitLab" if is_path(&repository) => Some(format!("https://gitlab.com/{repository}")),
                _ => None,
            };
            serde_json::json!({
                "kind": kind,
                "repository": repository,
                "href": href,
                "workflow": s("workflow").or_else(|| s("workflow_filepath")),
                "environment": s("environment").filter(|e| !e.is_empty()),
                "url": format!("/integrity/{}/{}/{}/provenance", f.project, encode_filename(&f.version), encode_filename(&f.filename)),
            })
        })
    } else {
        None
    };
    let kind = match f.packagetype.as_str() {
        "sdist" => "Source distribution",
        "bdist_wheel" => "Wheel",
        _ => "Built distribution",
    };
    Ok(serde_json::json!({
        "filename": f.filename,
        "href": encode_filename(&f.filename),
        "kind": kind,
        "python_version": f.python_version,
        "size_text": size_text(f.size),
        "uploaded": palisade_core::timestamp(f.upload_time),
        "yanked": f.yanked,
        "sha256": f.sha256,
        "blake2b_256": f.blake2b_256,
        "md5": f.md5,
        "scan": scan,
        "provenance": provenance,
    }))
}

/// `owner/name` with only the characters forges allow, so it can go into a URL path.
fn is_path(s: &str) -> bool {
    s.contains('/') && !s.contains("..") && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn size_text(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_links() {
        assert_eq!(size_text(999), "999 bytes");
        assert_eq!(size_text(12_345), "12.3 kB");
        assert_eq!(size_text(5_600_000), "5.6 MB");
        let m = serde_json::json!({
            "home_page": "javascript:alert(1)",
            "project_urls": ["Source, https://example.org/src", "Bad, data:text/html,<script>"],
        });
        let u = urls(&m);
        assert_eq!(u.len(), 3);
        assert!(u[0]["href"].is_null() && u[2]["href"].is_null(), "{u:?}");
        assert_eq!(u[1]["href"], "https://example.org/src");
        assert!(is_path("owner/repo") && !is_path("owner/../x") && !is_path("o/r?x=1") && !is_path("plain"));
    }
}
