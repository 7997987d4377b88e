//! PyPI's Integrity API: `GET /integrity/<project>/<version>/<filename>/provenance`, the PEP 740
//! provenance object of a published file: its attestations, one bundle per publisher identity,
//! with the publisher object PyPI uses.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::AppState;
use crate::http::error::{ApiError, ApiResult, internal, not_found};

pub const MEDIA_TYPE: &str = "application/vnd.pypi.integrity.v1+json";

/// Whether the `Accept` header admits the integrity media type (absent means anything).
fn accepts(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT) else { return true };
    let Ok(accept) = accept.to_str() else { return false };
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
        !refused && matches!(media.as_str(), "*/*" | "application/*" | "application/json" | MEDIA_TYPE)
    })
}

pub async fn provenance(
    State(state): State<AppState>,
    Path((project, version, filename)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !accepts(&headers) {
        return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, format!("the Integrity API answers {MEDIA_TYPE} only")));
    }
    let missing = || not_found(format!("no provenance for {filename:?} in {project} {version}"));
    let Some(file) = state.db.file(&filename).await.map_err(internal)? else {
        // An upstream file's provenance, kept only when every attestation verified here.
        if !state.config.mirror.enabled()
            || palisade_core::mirror::page::identify(&filename).map(|(p, _)| p) != Some(palisade_dist::normalize(&project))
        {
            return Err(missing());
        }
        let body = state.core.mirror_provenance(&filename).await?.ok_or_else(missing)?;
        let mut response = (StatusCode::OK, body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return Ok(response);
    };
    let same_version = palisade_dist::parse_version(&version)
        .ok()
        .zip(palisade_dist::parse_version(&file.version).ok())
        .is_some_and(|(a, b)| palisade_dist::canonical_version(&a) == palisade_dist::canonical_version(&b));
    // Held files, and those of a quarantined project, are not served: neither is their provenance.
    // What the index hides is not described here either (a held, blocked or quarantined file).
    if file.project != palisade_dist::normalize(&project)
        || !same_version
        || !file.is_published()
        || file.project_status == "quarantined"
        || state.blocks().decide_file(&file).is_some()
    {
        return Err(missing());
    }
    let stored = state.db.attestations(file.id).await.map_err(internal)?;
    if stored.is_empty() {
        return Err(missing());
    }
    // One bundle per publisher identity, in the order they first signed.
    let mut bundles: Vec<(String, Vec<Value>)> = Vec::new();
    for a in stored {
        let attestation: Value = serde_json::from_str(&a.attestation).map_err(internal)?;
        match bundles.iter_mut().find(|(p, _)| *p == a.publisher) {
            Some((_, list)) => list.push(attestation),
            None => bundles.push((a.publisher, vec![attestation])),
        }
    }
    let bundles: Vec<Value> = bundles
        .into_iter()
        .map(|(publisher, attestations)| {
            let publisher: Value = serde_json::from_str(&publisher).unwrap_or(Value::Null);
            json!({ "publisher": publisher, "attestations": attestations })
        })
        .collect();
    let body = json!({ "version": 1, "attestation_bundles": bundles }).to_string();
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    // Not immutable: an index may add attestations later (PEP 740).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        accepts(&h)
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts(&HeaderMap::new()));
        assert!(accept(MEDIA_TYPE));
        assert!(accept("text/html, */*;q=0.1"));
        assert!(accept("application/json"));
        assert!(!accept("text/html"));
        assert!(!accept("application/vnd.pypi.simple.v1+json"));
        assert!(!accept("application/vnd.pypi.integrity.v1+json;q=0"));
    }
}
