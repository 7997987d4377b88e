//! The legacy upload API (`POST /legacy/`), as twine speaks it.
//!
//! This is the protocol half of an upload: credentials are checked before the body is read; the
//! multipart form is read with bounds on fields and sizes; the file is streamed to a temporary
//! blob while its digests are computed, with a hard size limit, its name parsed first (bad names
//! stop there). The form then becomes a typed `Upload` for `palisade_core::publish`, where every
//! rule of publishing lives.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::publish::{Published, Received, Upload};
use palisade_core::pypi::{Claims, Python};
use palisade_dist::{DistFilename, Hasher};
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, bad_request, internal, too_large};

/// Text fields are small; a description of a few MiB is already generous.
const MAX_TEXT_FIELD: usize = 4 << 20;
const MAX_TEXT_TOTAL: usize = 8 << 20;
const MAX_FIELDS: usize = 1_000;
/// A client that sends nothing for this long has gone away or is holding the connection open.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits for the next piece of the body, failing with 408 when the client stalls.
async fn next<T>(fut: impl std::future::Future<Output = Result<T, axum::extract::multipart::MultipartError>>) -> ApiResult<T> {
    match tokio::time::timeout(IDLE_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| bad_request(format!("malformed or truncated multipart body: {}", e.body_text()))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the client sent nothing for {} seconds; upload aborted", IDLE_TIMEOUT.as_secs()),
        )),
    }
}

/// twine's form: text fields, and the file, received into a temporary blob.
struct Form {
    fields: HashMap<String, Vec<String>>,
    content: Option<Received<DistFilename>>,
}

impl Form {
    /// The first value of `key`, trimmed; `None` when absent or blank.
    fn one(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(|v| v.first()).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn owned(&self, key: &str) -> Option<String> {
        self.one(key).map(str::to_string)
    }
}

pub async fn upload(State(state): State<AppState>, caller: Caller, request: Request) -> Response {
    let result = handle(&state, &caller, request).await;
    match result {
        Ok((outcome, size, log_index)) => {
            state.metrics.upload(if outcome == Published::Identical { "identical" } else { "accepted" }, size);
            let mut response = (StatusCode::OK, "OK\n").into_response();
            // The transparency-log entry that records the file: its proof is at
            // /log/proof/<filename> once a checkpoint covers it.
            if let Some(i) = log_index {
                response.headers_mut().insert("palisade-log-index", i.into());
            }
            response
        }
        Err(e) => {
            state.metrics.upload("rejected", 0);
            tracing::info!(status = e.status.as_u16(), reason = %e.message, "upload rejected");
            // A refusal may come before the body was read (a bad token, a declared size over the
            // limit); the connection is then not reusable, and saying so keeps clients from
            // sending their next request on a connection the server is closing.
            let mut response = e.into_response();
            response.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            response
        }
    }
}

async fn handle(state: &AppState, caller: &Caller, request: Request) -> ApiResult<(Published, u64, Option<u64>)> {
    // Invalid tokens are rate limited per client address; a valid token always gets through,
    // whatever others behind the same address sent.
    let principal = caller.principal(state).await?;
    // Whether this caller may upload at all needs no project: refuse before reading the body.
    state.may_upload(&principal)?;
    let max = state.config.max_upload_bytes;
    check_declared_length(request.headers(), max)?;
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad_request(format!("the upload must be multipart/form-data: {}", e.body_text())))?;
    let mut form = read_form(state, multipart, max).await?;

    let action = form.one(":action").unwrap_or("file_upload");
    if action != "file_upload" {
        return Err(bad_request(format!("unsupported :action {action:?}; only file_upload is supported")));
    }
    if let Some(p) = form.one("protocol_version")
        && p != "1"
    {
        return Err(bad_request(format!("unsupported protocol_version {p:?}; only 1 is supported")));
    }
    let claims = Claims {
        name: form.owned("name"),
        version: form.owned("version"),
        filetype: form.owned("filetype"),
        sha256: form.owned("sha256_digest"),
        blake2_256: form.owned("blake2_256_digest"),
        md5: form.owned("md5_digest"),
    };
    let attestations = match form.fields.get("attestations").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([one]) => Some(one.clone()),
        Some(_) => return Err(bad_request("Invalid attestations supplied during upload: more than one 'attestations' field")),
    };
    let Some(file) = form.content.take() else {
        return Err(bad_request("the upload has no 'content' file field"));
    };
    let (size, filename) = (file.size, file.filename.clone());
    let published = state.publish(principal, &caller.client, Upload::<Python> { file, claims, attestations }).await?;
    let log_index = state.db.log_entry_for_file(&filename).await.ok().flatten().map(|e| e.idx);
    Ok((published, size, log_index))
}

fn check_declared_length(headers: &HeaderMap, max: u64) -> ApiResult<()> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // The form's text fields and multipart framing come on top of the file; saturating, since a
    // `Config` built in code is not validated.
    if declared.is_some_and(|n| n > max.saturating_add(MAX_TEXT_TOTAL as u64).saturating_add(1 << 20)) {
        return Err(too_large(format!("the upload is larger than this server's limit of {max} bytes per file")));
    }
    Ok(())
}

async fn read_form(state: &AppState, mut multipart: Multipart, max: u64) -> ApiResult<Form> {
    let mut form = Form { fields: HashMap::new(), content: None };
    let mut text_total = 0usize;
    let mut count = 0usize;
    while let Some(mut field) = next(multipart.next_field()).await? {
        count += 1;
        if count > MAX_FIELDS {
            return Err(bad_request(format!("the upload has more than {MAX_FIELDS} form fields")));
        }
        let name = field.name().unwrap_or("").to_string();
        if name == "content" {
            if form.content.is_some() {
                return Err(bad_request("the upload has more than one 'content' field"));
            }
            let filename = field.file_name().map(str::to_string).ok_or_else(|| bad_request("the 'content' field has no filename"))?;
            let base = filename.rsplit(['/', '\\']).next().unwrap_or("").to_string();
            if base != filename {
                return Err(bad_request(format!("invalid filename {filename:?}: it must not contain a path")));
            }
            let dist = DistFilename::parse(&filename).map_err(|e| bad_request(e.to_string()))?;
            let mut blob = state.blobs.create_temp().await.map_err(internal)?;
            let mut hasher = Hasher::new();
            while let Some(chunk) = next(field.chunk()).await? {
                if hasher.len().saturating_add(chunk.len() as u64) > max {
                    return Err(too_large(format!("{filename:?} is larger than this server's limit of {max} bytes per file")));
                }
                hasher.update(&chunk);
                blob.file.write_all(&chunk).await.map_err(internal)?;
            }
            if hasher.is_empty() {
                return Err(bad_request(format!("{filename:?} is empty")));
            }
            // tokio's File hands writes to a background thread; the archive is read next by path,
            // so every byte must have reached the file first.
            blob.file.flush().await.map_err(internal)?;
            let size = hasher.len();
            form.content = Some(Received { filename, file: dist, blob, digests: hasher.finish(), size });
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = next(field.chunk()).await? {
                value.extend_from_slice(&chunk);
                text_total += chunk.len();
                if value.len() > MAX_TEXT_FIELD || text_total > MAX_TEXT_TOTAL {
                    return Err(too_large(format!("the form field {name:?} is too large")));
                }
            }
            let value = String::from_utf8(value).map_err(|_| bad_request(format!("the form field {name:?} is not valid UTF-8")))?;
            form.fields.entry(name).or_default().push(value);
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaring(length: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, length.into());
        headers
    }

    /// Regression (issue 13): `max_upload_bytes` had no upper bound, and the declared-length limit
    /// `max + MAX_TEXT_TOTAL + 1 MiB` overflowed for a large one.
    #[test]
    fn session_hours_and_max_upload_bytes_are_bounded() {
        let largest = palisade_core::config::MAX_UPLOAD_BYTES;
        assert!(check_declared_length(&declaring(largest), largest).is_ok());
        assert!(check_declared_length(&declaring(largest + MAX_TEXT_TOTAL as u64 + (1 << 20) + 1), largest).is_err());
        assert!(check_declared_length(&declaring(u64::MAX), u64::MAX).is_ok());
        assert!(check_declared_length(&declaring(u64::MAX), largest).is_err());
    }
}
