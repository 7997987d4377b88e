//! The legacy upload API (`POST /legacy/`), as twine speaks it, with PyPI's rules.
//!
//! Order matters: credentials are checked before the body is read; the file is streamed to a
//! temporary blob while its digests are computed, with a hard size limit; then cheap checks
//! (filename grammar, form fields, digests, permission, filename reuse) run before the archive
//! is opened; the blob is synced and moved into place; and one transaction makes it visible.
//! Any failure drops the temporary blob, so a rejected upload leaves nothing behind.

use std::collections::HashMap;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_archive::Limits;
use palisade_dist::{CoreMetadata, DistFilename, Hasher};
use palisade_store::{NewFile, PublishOutcome, StoreError, TempBlob};
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::auth::{Action, Client, Credential, authenticate, authorize, check_policy};
use crate::error::{ApiError, ApiResult, bad_request, forbidden, internal, too_large};
use crate::scanning::{self, Outcome};

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

struct Form {
    fields: HashMap<String, Vec<String>>,
    content: Option<Received>,
}

struct Received {
    filename: String,
    dist: DistFilename,
    blob: TempBlob,
    digests: palisade_dist::Digests,
    size: u64,
}

impl Form {
    fn one(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(|v| v.first()).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
}

pub async fn upload(State(state): State<AppState>, client: Client, request: Request) -> Response {
    let result = handle(&state, &client, request).await;
    match result {
        Ok((outcome, size)) => {
            state.metrics.upload(if outcome == PublishOutcome::Identical { "identical" } else { "accepted" }, size);
            (StatusCode::OK, "OK\n").into_response()
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

async fn handle(state: &AppState, client: &Client, request: Request) -> ApiResult<(PublishOutcome, u64)> {
    // Invalid tokens are rate limited per client address; a valid token always gets through,
    // whatever others behind the same address sent.
    let principal = match authenticate(&state.db, request.headers()).await {
        Ok(p) => p,
        Err(e) if request.headers().contains_key(header::AUTHORIZATION) => return Err(crate::accounts::invalid_secret(state, client, e)),
        Err(e) => return Err(e),
    };
    // Uploading is what API tokens and trusted publishers' tokens are for. A login session is
    // for account management: one stolen from a browser must not publish.
    if principal.is_session() {
        return Err(forbidden(
            "a login session cannot upload: use an API token (username __token__, the token as password) or a trusted publisher's token",
        ));
    }
    // The instance policy needs no project: refuse before reading the body.
    check_policy(state, &principal, "upload")?;
    let max = state.config.max_upload_bytes;
    check_declared_length(request.headers(), max)?;
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad_request(format!("the upload must be multipart/form-data: {}", e.body_text())))?;
    let form = read_form(state, multipart, max).await?;

    let action = form.one(":action").unwrap_or("file_upload");
    if action != "file_upload" {
        return Err(bad_request(format!("unsupported :action {action:?}; only file_upload is supported")));
    }
    if let Some(p) = form.one("protocol_version")
        && p != "1"
    {
        return Err(bad_request(format!("unsupported protocol_version {p:?}; only 1 is supported")));
    }
    let Some(received) = form.content.as_ref() else {
        return Err(bad_request("the upload has no 'content' file field"));
    };
    let dist = &received.dist.clone();
    let filename = &received.filename.clone();

    // The form must describe the same file the filename names.
    if let Some(filetype) = form.one("filetype")
        && filetype != dist.kind.filetype()
    {
        return Err(bad_request(format!("filetype {filetype:?} does not match {filename:?}, which is a {}", dist.kind.filetype())));
    }
    if let Some(name) = form.one("name")
        && palisade_dist::normalize(name) != dist.normalized_name
    {
        return Err(bad_request(format!("the form's name {name:?} does not match the filename {filename:?}")));
    }
    if let Some(version) = form.one("version") {
        let same = palisade_dist::parse_version(version).is_ok_and(|v| v == dist.version);
        if !same {
            return Err(bad_request(format!("the form's version {version:?} does not match the filename {filename:?}")));
        }
    }
    check_digests(&form, &received.digests, filename)?;

    // Permission and reuse, before the (more expensive) archive read.
    let normalized = dist.normalized_name.clone();
    let project = state.db.project(&normalized).await.map_err(internal)?;
    if let Some(p) = &project
        && (p.status == "archived" || p.status == "quarantined")
    {
        return Err(bad_request(format!("project {normalized:?} is {} and accepts no uploads", p.status)));
    }
    authorize(state, &principal, Action::Upload, project.as_ref(), &normalized).await?;
    // A publisher's token may cover the publishers of several projects: the file is bound to
    // the one registered for this project, which is also the actor the event log names.
    let mut principal = principal;
    if let Credential::Publisher { token_id, .. } = principal.credential
        && let Some(pb) = crate::auth::publisher_for(state, &principal, project.as_ref(), &normalized).await?
    {
        principal.user_name = format!("publisher:{}", pb.id);
        principal.credential = Credential::Publisher { token_id, publisher_id: pb.id };
    }
    // Reuse: the same spelling, or another spelling of the same file (same project, version and
    // tags), reserved by an earlier upload, even a removed one.
    if let Some(r) = state.db.reservation(filename).await.map_err(internal)? {
        if r.filename == *filename && r.sha256 == received.digests.sha256 && r.live {
            return Ok((PublishOutcome::Identical, received.size));
        }
        return Err(file_exists(filename, &received.digests.blake2b_256, &r));
    }

    // Read and check the core metadata inside the archive.
    let limits = Limits { max_total_uncompressed: state.config.max_uncompressed_bytes, ..Limits::default() };
    let path = received.blob.path().to_path_buf();
    let (dist_c, fname) = (dist.clone(), filename.clone());
    let raw = tokio::task::spawn_blocking(move || palisade_archive::read_core_metadata(&path, &dist_c, &fname, &limits))
        .await
        .map_err(internal)?
        .map_err(|e| bad_request(format!("invalid distribution: {e}")))?;
    let meta = CoreMetadata::parse(&raw).map_err(|e| bad_request(format!("invalid distribution {filename:?}: {e}")))?;
    if meta.normalized_name != dist.normalized_name {
        return Err(bad_request(format!("the metadata's Name {:?} does not match the filename {filename:?}", meta.fields.name)));
    }
    if meta.version != dist.version {
        return Err(bad_request(format!("the metadata's Version {:?} does not match the filename {filename:?}", meta.fields.version)));
    }
    let description = meta.fields.description.as_ref().map_or(0, String::len) as u64;
    if description > state.config.max_description_bytes {
        return Err(bad_request(format!(
            "invalid distribution {filename:?}: its description (the core metadata's long description) is {description} bytes; \
             this server accepts at most {} bytes (max_description_bytes)",
            state.config.max_description_bytes
        )));
    }

    // Scan before anything becomes visible.
    let mut status = "published";
    let mut scan_record = None;
    if state.scan.enabled() {
        let new_project = state.db.project(&normalized).await.map_err(internal)?.is_none();
        let mut report = state.scan.scan(received.blob.path(), filename, Vec::new()).await.map_err(|e| {
            tracing::error!(error = %e, "scanner unavailable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the malware scanner is unavailable, so uploads are refused; try again later")
        })?;
        if new_project && !report.findings.iter().any(|f| f.rule == "meta-typosquat") {
            report = state.scan.check_hosted(&state.db, &normalized, report).await.map_err(internal)?;
        }
        let mut outcome = state.scan.decide(&report);
        if new_project && report.findings.iter().any(|f| f.rule == "meta-typosquat") {
            match state.scan.policy().typosquat.as_str() {
                "reject" => outcome = Outcome::Reject,
                "quarantine" if outcome == Outcome::Publish => outcome = Outcome::Quarantine,
                _ => {}
            }
        }
        tracing::info!(file.filename = %filename, verdict = report.verdict.as_str(), score = report.score, outcome = outcome.as_str(), duration_ms = report.duration_ms, "scanned upload");
        let record = scanning::record(&report, outcome, "upload");
        if outcome == Outcome::Reject {
            state
                .db
                .record_rejection(filename, &normalized, &received.digests.sha256, &record, &principal.user_name)
                .await
                .map_err(internal)?;
            return Err(bad_request(format!(
                "upload refused by the malware scanner: {} (score {:.1}): {}",
                report.verdict.as_str(),
                report.score,
                scanning::summary(&report)
            )));
        }
        if outcome == Outcome::Quarantine {
            status = "quarantined";
        }
        scan_record = Some(record);
    }

    let Form { content: Some(received), .. } = form else { unreachable!("checked above") };
    let new = NewFile {
        // A project created by a file held for review is listed under its normalized name, not
        // under a spelling taken from that file.
        project_name: if status == "quarantined" { normalized.clone() } else { meta.fields.name.trim().to_string() },
        normalized: normalized.clone(),
        version: meta.version.to_string(),
        canonical_version: palisade_dist::canonical_version(&meta.version),
        metadata_json: serde_json::to_string(&meta.fields).map_err(internal)?,
        requires_python: meta.fields.requires_python.clone().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        filename: received.filename.clone(),
        packagetype: dist.kind.filetype().to_string(),
        python_version: dist.pyversion().to_string(),
        size: received.size as i64,
        sha256: received.digests.sha256.clone(),
        blake2b_256: received.digests.blake2b_256.clone(),
        md5: received.digests.md5.clone(),
        metadata_sha256: palisade_dist::sha256_hex(&raw),
        core_metadata: raw,
        uploader_id: principal.user_id,
        publisher_id: match principal.credential {
            Credential::Publisher { publisher_id, .. } => Some(publisher_id),
            _ => None,
        },
        uploader_name: principal.user_name.clone(),
        uploader_is_admin: principal.is_admin,
        status: status.to_string(),
        scan: scan_record,
    };
    let size = received.size;
    let sha = received.digests.sha256.clone();
    let blake = received.digests.blake2b_256.clone();
    let existed = state.blobs.exists(&sha);
    // Holds this upload's own link to the bytes until the publishing transaction is over.
    let stored = state.blobs.persist(received.blob, &sha).await.map_err(internal)?;
    let outcome = match state.db.publish(&new, &stored).await {
        Ok(o) => o,
        Err(e) => {
            // The blob is not referenced by this upload; drop it unless someone else owns it.
            if !existed {
                let _ = state.db.remove_blob_if_unreferenced(&state.blobs, &sha).await;
            }
            return Err(match e {
                StoreError::Reserved(r) => file_exists(&new.filename, &blake, &r),
                StoreError::Conflict(msg) if msg.starts_with("forbidden: ") => forbidden(msg.trim_start_matches("forbidden: ")),
                StoreError::Conflict(msg) => bad_request(msg),
                other => internal(other),
            });
        }
    };
    state.cache.invalidate(&normalized);
    if let PublishOutcome::Published { created_project: true, .. } = outcome {
        state.scan.project_created(&normalized).await;
    }
    if let Some(token_id) = principal.token_id() {
        let db = state.db.clone();
        let ip = client.addr.clone().unwrap_or_default();
        tokio::spawn(async move {
            if let Err(e) = db.touch_token(token_id, &ip).await {
                tracing::warn!(error = %e, "could not record token use");
            }
        });
    }
    if let PublishOutcome::Published { .. } = outcome {
        let project = state.db.project(&normalized).await.ok().flatten();
        let project_id = project.as_ref().map(|p| p.id);
        let kind = if new.status == "quarantined" { "file_quarantined" } else { "file_uploaded" };
        let details = serde_json::json!({ "filename": new.filename, "sha256": new.sha256, "token_id": principal.token_id() });
        crate::events::record(state, kind, &principal.user_name, principal.user_id, project_id, client, details).await;
        if new.status == "quarantined"
            && let Some(project) = &project
        {
            notify_quarantine(state, project, &new.filename, &principal.user_name).await;
        }
    }
    tracing::info!(project.name = %normalized, file.filename = %new.filename, size_bytes = size, user.name = %principal.user_name, status = %new.status, "file stored");
    Ok((outcome, size))
}

/// Tells the project's owners (and the uploader, if not one of them) that a file was held for
/// review, so a legitimate publisher is not left wondering why pip cannot see it.
async fn notify_quarantine(state: &AppState, project: &palisade_store::Project, filename: &str, uploader: &str) {
    let mut to = match crate::projects::owners(state, project).await {
        Ok(owners) => owners,
        Err(_) => {
            tracing::warn!("could not list owners to notify of a quarantine");
            return;
        }
    };
    if !to.iter().any(|u| u.name == uploader)
        && let Ok(u) = state.db.user_by_name(uploader).await
    {
        to.push(u);
    }
    let normalized = &project.normalized;
    let what = format!(
        "The file {filename} uploaded to {normalized} by {uploader} was quarantined by the malware scanner: it is stored, \
         but not installable until an administrator reviews it. Project owners can read the scanner's report with \
         GET /api/quarantine; administrators release or confirm it with `palisade quarantine`."
    );
    for user in to {
        crate::mail::notify(&state.mailer, &user, "An upload was quarantined for review", &what);
    }
}

/// The answer to a reserved filename. twine's `--skip-existing` recognises "File already exists".
fn file_exists(filename: &str, blake2: &str, r: &palisade_store::Reservation) -> ApiError {
    if r.filename == filename {
        return bad_request(format!(
            "File already exists ({filename:?}, with blake2_256 hash {blake2:?}). Filenames are never reused, even after a file is removed; upload a new version instead."
        ));
    }
    let existing = &r.filename;
    let (has, what) = if r.live { ("already has", "") } else { ("had", ", since removed; its name stays reserved") };
    let same = if filename.ends_with(".whl") { "for the same tags" } else { "as its sdist" };
    bad_request(format!(
        "File already exists: this release {has} {existing:?} {same}{what}, and {filename:?} is another spelling of the same file \
         (installers compare the normalized project name, the version, the build tag and the tags). A file is never replaced; \
         upload a new version (or, for a wheel, a new build tag) instead."
    ))
}

fn check_declared_length(headers: &HeaderMap, max: u64) -> ApiResult<()> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max + MAX_TEXT_TOTAL as u64 + (1 << 20)) {
        return Err(too_large(format!("the upload is larger than this server's limit of {max} bytes per file")));
    }
    Ok(())
}

fn check_digests(form: &Form, d: &palisade_dist::Digests, filename: &str) -> ApiResult<()> {
    let sha = form.one("sha256_digest");
    let blake = form.one("blake2_256_digest");
    let md5 = form.one("md5_digest");
    if sha.is_none() && blake.is_none() && md5.is_none() {
        return Err(bad_request("the upload carries no digest: send sha256_digest (twine does)"));
    }
    let mismatch = |what: &str, sent: &str, actual: &str| {
        bad_request(format!(
            "the {what} sent ({sent}) does not match the uploaded file {filename:?} ({actual}); the file was corrupted in transit or the digest is wrong"
        ))
    };
    if let Some(s) = sha
        && !s.eq_ignore_ascii_case(&d.sha256)
    {
        return Err(mismatch("sha256_digest", s, &d.sha256));
    }
    if let Some(b) = blake
        && !b.eq_ignore_ascii_case(&d.blake2b_256)
    {
        return Err(mismatch("blake2_256_digest", b, &d.blake2b_256));
    }
    if let Some(m) = md5 {
        let b64 = d.md5_urlsafe_b64();
        if m != b64 && !m.eq_ignore_ascii_case(&d.md5) {
            return Err(mismatch("md5_digest", m, &b64));
        }
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
                if hasher.len() + chunk.len() as u64 > max {
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
            form.content = Some(Received { filename, dist, blob, digests: hasher.finish(), size });
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
