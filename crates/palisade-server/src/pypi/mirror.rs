//! Upstream projects through the pull-through mirror (docs/mirror.md): their index pages,
//! rendered from the core's [`View`] (only what its one decision lists), in the same PEP 691
//! JSON and PEP 503 HTML as hosted pages, with links to this index's `/files/`; and for
//! `mirror.merge` names, this index's files and upstream's on one page.
//!
//! Rendered pages are kept briefly ([`FRESH_FOR`], and never longer than `mirror.refresh`): a
//! cooldown ends with time, another node may have blocked a file, and a page past its refresh is
//! asked for again. This process's own changes (a verdict, an exemption) drop them at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use palisade_core::mirror::View;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::{Value, json};

use crate::AppState;
use crate::http::error::{ApiResult, internal, not_found};
use crate::pypi::cache::{Kind, Page};
use crate::pypi::render;

/// How long a rendered upstream page is served before it is rendered again.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// Memory for rendered upstream pages.
const CACHE_BYTES: u64 = 64 << 20;

struct Rendered {
    page: Arc<Page>,
    made: Instant,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<(String, Kind), Arc<Rendered>> for ByBytes {
    fn weight(&self, (name, _): &(String, Kind), r: &Arc<Rendered>) -> u64 {
        (name.len() + r.page.body.len() + 256) as u64
    }
}

/// Rendered upstream pages.
pub struct MirrorPages {
    cache: Cache<(String, Kind), Arc<Rendered>, ByBytes>,
}

impl Default for MirrorPages {
    fn default() -> Self {
        Self { cache: Cache::with_weighter(4096, CACHE_BYTES, ByBytes) }
    }
}

impl MirrorPages {
    pub fn invalidate(&self, project: &str) {
        for kind in [Kind::Html, Kind::Json] {
            self.cache.remove(&(project.to_string(), kind));
        }
    }

    pub fn invalidate_all(&self) {
        self.cache.clear();
    }
}

/// The page of `normalized` through the mirror; `local` is this index's own page as PEP 691 JSON
/// when the name is merged. `None`: neither has the project.
pub async fn page(state: &AppState, normalized: &str, kind: Kind, local: Option<Value>) -> ApiResult<Option<Arc<Page>>> {
    let key = (normalized.to_string(), kind);
    if let Some(r) = state.mirror_pages.cache.get(&key)
        && r.made.elapsed() < FRESH_FOR.min(state.config.mirror.refresh_every())
        && local.is_none()
    {
        return Ok(Some(r.page.clone()));
    }
    let view = match state.core.mirror_view(normalized).await {
        Ok(view) => view,
        // A merged name's own files are served whatever upstream does.
        Err(e) if local.is_some() => {
            tracing::warn!(project = normalized, error = %e, "upstream failed; the merged page lists this index's files only");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if view.is_none() && local.is_none() {
        return Ok(None);
    }
    // Every filename hosted here, listed or not (a held file's upstream namesake would answer
    // the hosted file's 404): upstream's files of those names are left out.
    let hosted = match (&view, local.is_some()) {
        (Some(_), true) => match state.db.project(normalized).await.map_err(internal)? {
            Some(p) => state.db.project_files(p.id).await.map_err(internal)?.into_iter().map(|f| f.filename).collect(),
            None => Default::default(),
        },
        _ => Default::default(),
    };
    let json = merged(view.as_ref(), local, &hosted, &state.links(), normalized);
    let serial = json.pointer("/meta/_last-serial").and_then(Value::as_i64).unwrap_or(0);
    let body = match kind {
        Kind::Json => json.to_string().into_bytes(),
        Kind::Html => html(&json).into_bytes(),
    };
    let page = Arc::new(Page::rendered(body, if kind == Kind::Json { "m-json" } else { "m-html" }, serial));
    state.mirror_pages.cache.insert(key, Arc::new(Rendered { page: page.clone(), made: Instant::now() }));
    Ok(Some(page))
}

/// The PEP 691 answer: this index's files first (merged names), then upstream's listed files.
fn merged(
    view: Option<&View>,
    local: Option<Value>,
    hosted: &std::collections::HashSet<String>,
    links: &render::Links,
    normalized: &str,
) -> Value {
    let mut out = local.unwrap_or_else(|| {
        json!({
            "meta": { "api-version": render::API_VERSION, "_last-serial": 0 },
            "name": normalized,
            "versions": [],
            "files": [],
            "project-status": { "status": "active" },
        })
    });
    let Some(view) = view else { return out };
    if out.pointer("/meta/_last-serial").and_then(Value::as_i64) == Some(0) && out["files"].as_array().is_some_and(Vec::is_empty) {
        // Upstream's own status applies to a page that is upstream's alone.
        let mut status = json!({ "status": view.page.status });
        if let Some(r) = &view.page.status_reason {
            status["reason"] = json!(r);
        }
        out["project-status"] = status;
    }
    let mut local_names: std::collections::HashSet<String> =
        out["files"].as_array().into_iter().flatten().filter_map(|f| f["filename"].as_str().map(str::to_string)).collect();
    local_names.extend(hosted.iter().cloned());
    let mut versions: Vec<String> =
        out["versions"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
    let mut files = out["files"].as_array().cloned().unwrap_or_default();
    for f in view.listed().filter(|f| !local_names.contains(&f.filename)) {
        let yanked = match &f.yanked {
            None => Value::Bool(false),
            Some(r) if r.is_empty() => Value::Bool(true),
            Some(r) => Value::String(r.clone()),
        };
        // Upstream's metadata file with its hash; for a wheel upstream serves none for, this
        // index reads one out of the wheel, whose hash is not known before (PEP 714's `true`).
        let meta = match &f.metadata_sha256 {
            Some(h) => json!({ "sha256": h }),
            None => Value::Bool(f.filename.ends_with(".whl")),
        };
        let provenance = view.provenance.contains(&f.filename).then(|| {
            format!(
                "{}/integrity/{normalized}/{}/{}/provenance",
                links.base,
                render::encode_filename(&f.version),
                render::encode_filename(&f.filename)
            )
        });
        let mut entry = json!({
            "filename": f.filename,
            "url": links.file(&f.filename),
            "hashes": { "sha256": f.sha256 },
            "requires-python": f.requires_python,
            "core-metadata": meta,
            "dist-info-metadata": meta,
            "yanked": yanked,
            "provenance": provenance,
        });
        if let Some(size) = f.size {
            entry["size"] = json!(size);
        }
        if let Some(t) = f.upload_time {
            entry["upload-time"] = json!(render::upload_time(t));
        }
        files.push(entry);
        if !versions.contains(&f.version) {
            versions.push(f.version.clone());
        }
    }
    versions.sort_by(|a, b| match (palisade_dist::parse_version(a), palisade_dist::parse_version(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    });
    out["versions"] = json!(versions);
    out["files"] = Value::Array(files);
    out
}

/// The PEP 503 page of a PEP 691 answer.
fn html(v: &Value) -> String {
    use std::fmt::Write;
    let esc = render::html_escape;
    let name = esc(v["name"].as_str().unwrap_or(""));
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{}\">\n    <meta name=\"pypi:project-status\" content=\"{}\">\n",
        render::API_VERSION,
        esc(v.pointer("/project-status/status").and_then(Value::as_str).unwrap_or("active"))
    );
    if let Some(reason) = v.pointer("/project-status/reason").and_then(Value::as_str) {
        let _ = writeln!(out, "    <meta name=\"pypi:project-status-reason\" content=\"{}\">", esc(reason));
    }
    let _ = write!(out, "    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n");
    for f in v["files"].as_array().into_iter().flatten() {
        let filename = f["filename"].as_str().unwrap_or("");
        let sha = f.pointer("/hashes/sha256").and_then(Value::as_str).unwrap_or("");
        let _ = write!(out, "    <a href=\"{}#sha256={sha}\"", esc(f["url"].as_str().unwrap_or("")));
        if let Some(rp) = f["requires-python"].as_str() {
            let _ = write!(out, " data-requires-python=\"{}\"", esc(rp));
        }
        if let Some(m) = f.pointer("/core-metadata/sha256").and_then(Value::as_str) {
            let _ = write!(out, " data-dist-info-metadata=\"sha256={0}\" data-core-metadata=\"sha256={0}\"", esc(m));
        } else if f["core-metadata"] == Value::Bool(true) {
            out.push_str(" data-dist-info-metadata=\"true\" data-core-metadata=\"true\"");
        }
        if let Some(p) = f["provenance"].as_str().filter(|u| u.starts_with("https://")) {
            let _ = write!(out, " data-provenance=\"{}\"", esc(p));
        }
        match &f["yanked"] {
            Value::String(r) if !r.is_empty() => {
                let _ = write!(out, " data-yanked=\"{}\"", esc(r));
            }
            Value::String(_) | Value::Bool(true) => out.push_str(" data-yanked=\"\""),
            _ => {}
        }
        let _ = writeln!(out, ">{}</a><br>", esc(filename));
    }
    out.push_str("  </body>\n</html>\n");
    out
}

/// This index's own page of a merged name, as JSON, if it hosts the project.
pub async fn local_json(state: &AppState, normalized: &str) -> ApiResult<Option<Value>> {
    let Some((page, _)) =
        state.cache.project(&state.db, normalized, Kind::Json, &state.links(), || state.blocks()).await.map_err(internal)?
    else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_slice(&page.body).map_err(internal)?))
}

/// The environment an installer's User-Agent describes (pip, uv), for the mirror's read-ahead.
pub fn client_target(headers: &axum::http::HeaderMap) -> Option<palisade_dist::Target> {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).and_then(palisade_core::mirror::target_of)
}

/// `Some(bytes)` of an upstream file's metadata.
pub async fn metadata(state: &AppState, dist: &str, client: Option<palisade_dist::Target>) -> ApiResult<Bytes> {
    if !state.config.mirror.enabled() {
        return Err(not_found(format!("no file named {dist:?}")));
    }
    Ok(Bytes::from(state.core.mirror_metadata(dist, client).await?))
}
