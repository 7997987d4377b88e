//! An upstream file's first download: fetched into a temporary blob while hashed, checked
//! against the sha256 and size upstream's page gives, scanned with the upload policy (the
//! checks meant for new local projects, typosquatting names, are left out: upstream names are
//! upstream's), its PEP 740 provenance verified, and stored. Only a file the policy publishes
//! is served; a held or blocked one answers 403 from then on, and its release leaves the index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use palisade_store::MirrorFile;

use super::guess::Guess;
use super::upstream::{self, FileError};
use super::{Mirror, View, now, page};
use crate::Core;
use crate::error::{Error, Result};
use crate::scanning::Outcome;

/// Scanner findings about a new local project's name, which do not apply to upstream names.
const LOCAL_ONLY_RULES: &[&str] = &["meta-typosquat"];

/// The largest provenance object fetched.
const PROVENANCE_BYTES: u64 = 1 << 20;

/// Whom a fetch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum For {
    /// A client waiting for it.
    Client,
    /// A read-ahead guess: scanned at a lower CPU priority until a client asks for the file, and
    /// from then on raced by a scan at normal priority (see [`Waiting`]).
    ReadAhead,
}

/// Files being fetched ahead, each with whether a client waits for it. A client marks the file
/// before it waits for the file's turn, and a read-ahead registers the file before it takes the
/// turn, so a client waiting behind a read-ahead is always seen: a scan nobody waited for when
/// it started is not left at a low priority once somebody does.
#[derive(Default)]
pub(super) struct Waiting {
    files: std::sync::Mutex<HashMap<String, Arc<Wanted>>>,
}

#[derive(Default)]
struct Wanted {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Wanted {
    fn is_wanted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Returns once a client waits for the file.
    async fn wanted(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_wanted() {
                return;
            }
            notified.await;
        }
    }
}

impl Waiting {
    /// A client is about to wait for `filename`.
    fn want(&self, filename: &str) {
        if let Some(w) = self.files.lock().unwrap_or_else(|e| e.into_inner()).get(filename) {
            w.flag.store(true, Ordering::SeqCst);
            w.notify.notify_waiters();
        }
    }
}

/// A read-ahead of `filename` starts; it ends when the guard is dropped.
fn register(mirror: &Arc<Mirror>, filename: &str) -> Registered {
    let wanted = mirror.waiting.files.lock().unwrap_or_else(|e| e.into_inner()).entry(filename.to_string()).or_default().clone();
    Registered { mirror: mirror.clone(), filename: filename.to_string(), wanted }
}

/// A read-ahead's registration; the entry goes with the last one for the file.
struct Registered {
    mirror: Arc<Mirror>,
    filename: String,
    wanted: Arc<Wanted>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut files = self.mirror.waiting.files.lock().unwrap_or_else(|e| e.into_inner());
        // The map's copy and this one: no other read-ahead of the file is under way.
        if Arc::strong_count(&self.wanted) <= 2 {
            files.remove(&self.filename);
        }
    }
}

/// `ahead`: the guess for the client that asked (or that a read-ahead guesses for): a file
/// fetched now has its dependencies read ahead for it.
pub(super) async fn file(core: &Core, view: &View, f: &page::File, ahead: Option<Guess>, whom: For) -> Result<MirrorFile> {
    if let Some(row) = core.db.mirror_file(&f.filename).await? {
        return served(row, f);
    }
    let registered = match whom {
        For::Client => {
            core.mirror.waiting.want(&f.filename);
            None
        }
        For::ReadAhead => Some(register(&core.mirror, &f.filename)),
    };
    let turn = core.mirror.one_at_a_time(&format!("file:{}", f.filename)).await;
    if let Some(row) = core.db.mirror_file(&f.filename).await? {
        return served(row, f);
    }
    // The fetch runs on its own task, holding the turn: a client that gives up (pip's time-out)
    // does not throw the work away, and the next request finds the file stored.
    let (core, upstream, project, f) = (core.clone(), view.upstream.clone(), view.page.name.clone(), f.clone());
    let task = tokio::spawn(async move {
        let _turn = turn;
        let wanted = registered.as_ref().map(|r| r.wanted.as_ref());
        let row = fetch_and_store(&core, &upstream, &project, &f, ahead, wanted).await?;
        served(row, &f)
    });
    task.await.map_err(|e| Error::Internal(anyhow::anyhow!("the fetch of an upstream file failed: {e}")))?
}

/// The longest a file's fetch from upstream may take, whatever its size.
const FETCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

async fn fetch_and_store(
    core: &Core,
    upstream_name: &str,
    project: &str,
    f: &page::File,
    ahead: Option<Guess>,
    read_ahead: Option<&Wanted>,
) -> Result<MirrorFile> {
    let counters = &core.mirror.counters;
    counters.file_requests.fetch_add(1, Ordering::Relaxed);
    let max = core.config.max_upload_bytes;
    let fetched = tokio::time::timeout(FETCH_DEADLINE, upstream::file(&core.mirror.client, &core.blobs, &f.url, &f.sha256, f.size, max))
        .await
        .unwrap_or_else(|_| Err(FileError::Upstream(format!("{}: took longer than {} minutes", f.url, FETCH_DEADLINE.as_secs() / 60))));
    let temp = match fetched {
        Ok(t) => t,
        Err(FileError::Upstream(e)) => {
            counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
            return Err(Error::BadGateway(format!("upstream {upstream_name}: {e}")));
        }
        Err(FileError::Mismatch(e)) => {
            counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(file = %f.filename, upstream = %upstream_name, error = %e, "an upstream file is not what its page says; not served");
            return Err(Error::BadGateway(format!("{} from upstream {} was not served: {e}", f.filename, upstream_name)));
        }
        Err(FileError::Local(e)) => return Err(Error::Internal(e)),
    };

    let size = match f.size {
        Some(n) => n,
        None => tokio::fs::metadata(temp.path()).await.map_err(|e| Error::Internal(e.into()))?.len(),
    };
    counters.upstream_bytes.fetch_add(size, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let (status, reason, report) = judge(core, temp.path(), &f.filename, read_ahead).await?;
    let scan_ms = started.elapsed().as_millis() as u64;
    counters.scan_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    let (provenance, provenance_error) = match &f.provenance {
        Some(url) if status == Outcome::Publish => verify_provenance(core, url, f).await,
        _ => (None, None),
    };
    // A wheel that is served: its metadata (read now, while it is a file on this machine whatever
    // the storage) is served when upstream serves none, and names the dependencies to read ahead.
    let metadata = match status {
        Outcome::Publish => wheel_metadata(temp.path(), &f.filename, limits(core)).await,
        _ => None,
    };
    let stored = core.blobs.persist(temp, &f.sha256).await.map_err(|e| Error::Internal(e.into()))?;
    let row = MirrorFile {
        filename: f.filename.clone(),
        project: project.to_string(),
        version: f.version.clone(),
        upstream: upstream_name.to_string(),
        sha256: f.sha256.clone(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        status: match status {
            Outcome::Publish => "published",
            Outcome::Quarantine => "quarantined",
            Outcome::Reject => "malicious",
        }
        .to_string(),
        reason,
        report,
        provenance,
        provenance_error,
        fetched_at: now(),
        decided_by: None,
    };
    let row = core.db.record_mirror_file(&row, &stored).await?;
    drop(stored);
    // Its verdict and provenance are part of the project's view from now on.
    core.mirror.forget_view(&row.project);
    counters.files_fetched.fetch_add(1, Ordering::Relaxed);
    if row.status != "published" {
        counters.files_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(file = %row.filename, status = %row.status, reason = %row.reason, "an upstream file was refused by the scanner");
        let details = serde_json::json!({"project": row.project, "filename": row.filename, "sha256": row.sha256, "status": row.status, "reason": row.reason, "upstream": row.upstream});
        crate::events::record(core, "mirror_file_refused", "mirror", None, None, &Default::default(), details.clone()).await;
        core.announce("mirror_block", details).await;
        // The release leaves the index pages now.
        core.changed(&row.project);
    } else {
        tracing::info!(file = %row.filename, upstream = %row.upstream, size, scan_ms, provenance = row.provenance.is_some(), "upstream file fetched, checked and scanned");
        if let Some(metadata) = &metadata {
            keep_metadata(core, f, metadata).await;
            if let Some(guess) = &ahead
                && let Ok(fields) = palisade_dist::CoreMetadata::read_fields(metadata)
            {
                core.read_ahead_dependencies(&fields.requires_dist, guess);
            }
        }
    }
    Ok(row)
}

/// The limits a wheel's metadata is read within: an upload's.
pub(super) fn limits(core: &Core) -> palisade_archive::Limits {
    palisade_archive::Limits { max_total_uncompressed: core.config.max_uncompressed_bytes, ..Default::default() }
}

/// The core metadata of a wheel (`None` for an sdist, whose metadata may not be final, or an
/// unreadable wheel: the scanner has judged the file, and this is only for reading ahead and for
/// upstreams without metadata files).
async fn wheel_metadata(path: &std::path::Path, filename: &str, limits: palisade_archive::Limits) -> Option<Vec<u8>> {
    let dist = palisade_dist::DistFilename::parse(filename).ok()?;
    if dist.kind != palisade_dist::DistKind::Wheel {
        return None;
    }
    let (path, name) = (path.to_path_buf(), filename.to_string());
    let read = tokio::task::spawn_blocking(move || match palisade_archive::read_core_metadata(&path, &dist, &name, &limits) {
        Ok(data) => Some(data),
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "the metadata of a served upstream wheel could not be read");
            None
        }
    });
    read.await.ok().flatten()
}

/// The metadata of a stored, served upstream wheel, read from the stored file and kept (a wheel
/// fetched before its metadata was kept, or released by an administrator).
pub(super) async fn stored_metadata(core: &Core, row: &MirrorFile, f: &page::File) -> Result<Option<Vec<u8>>> {
    if row.status != "published" {
        return Ok(None);
    }
    let Some(local) = core.blobs.local(&row.sha256).await.map_err(|e| Error::Internal(e.into()))? else { return Ok(None) };
    let Some(metadata) = wheel_metadata(local.path(), &row.filename, limits(core)).await else { return Ok(None) };
    keep_metadata(core, f, &metadata).await;
    Ok(Some(metadata))
}

/// Keeps the metadata of a wheel upstream serves no metadata file for: the whole file's own,
/// replacing what was read from parts of it before (upstream's word). A failure is logged: the
/// file itself is stored and served either way.
async fn keep_metadata(core: &Core, f: &page::File, metadata: &[u8]) {
    if f.metadata_sha256.is_some() {
        return;
    }
    let sha256 = palisade_dist::sha256_hex(metadata);
    let kept = match core.db.mirror_metadata(&f.filename).await {
        Ok(kept) => kept,
        Err(e) => return tracing::error!(file = %f.filename, error = %e, "could not read the kept metadata of an upstream wheel"),
    };
    match kept {
        Some((kept, _)) if kept == sha256 => return,
        Some(_) => {
            tracing::warn!(file = %f.filename, "the metadata read from parts of an upstream file is not the whole file's; the whole file's is served from now on")
        }
        None => {}
    }
    if let Err(e) = core.db.put_mirror_metadata(&f.filename, &sha256, metadata, now(), true).await {
        tracing::error!(file = %f.filename, error = %e, "could not keep the metadata of an upstream wheel");
    }
}

/// A stored file, if it is what the page names and it is served.
fn served(row: MirrorFile, f: &page::File) -> Result<MirrorFile> {
    if row.sha256 != f.sha256 {
        return Err(Error::BadGateway(format!(
            "upstream now lists other bytes for {} (sha256 {}) than it served before ({}); files never change, so neither is served",
            f.filename, f.sha256, row.sha256
        )));
    }
    match row.status.as_str() {
        "published" => Ok(row),
        "quarantined" => Err(Error::Forbidden(format!("{} is held for review: {}", row.filename, row.reason))),
        _ => Err(Error::Forbidden(format!("{} is blocked: {}", row.filename, row.reason))),
    }
}

/// Scans the file with the upload policy: (outcome, the reason a refusal names, the report).
/// `read_ahead`: for a file read ahead, whether a client waits for it: until one does, it is
/// scanned at a lower priority; from then on a scan at normal priority races that one (the
/// reports are the same; the first is taken).
async fn judge(core: &Core, path: &std::path::Path, filename: &str, read_ahead: Option<&Wanted>) -> Result<(Outcome, String, String)> {
    if !core.scan.enabled() {
        return Ok((Outcome::Publish, String::new(), "{}".into()));
    }
    let report = match read_ahead {
        Some(wanted) if !wanted.is_wanted() => {
            let background = core.scan.scan_in_background(path, filename);
            tokio::pin!(background);
            tokio::select! {
                report = &mut background => report,
                () = wanted.wanted() => {
                    tracing::debug!(file = filename, "a client waits for a file scanned ahead: it is scanned at normal priority too");
                    tokio::select! {
                        report = &mut background => report,
                        report = core.scan.scan(path, filename, Vec::new()) => report,
                    }
                }
            }
        }
        _ => core.scan.scan(path, filename, Vec::new()).await,
    };
    let report = report.map_err(|e| {
        tracing::error!(error = %e, "scanner unavailable");
        Error::Unavailable("the malware scanner is unavailable, so upstream files are not served; try again later".into())
    })?;
    let report = report.without_rules(LOCAL_ONLY_RULES, &core.scan.thresholds());
    let outcome = core.scan.decide(&report);
    let reason = match outcome {
        Outcome::Publish => String::new(),
        _ => format!("the scanner found it {}: {}", report.verdict.as_str(), crate::scanning::summary(&report)),
    };
    Ok((outcome, reason, serde_json::to_string(&report).unwrap_or_else(|_| "{}".into())))
}

/// Fetches and verifies upstream's provenance: (the object, kept when it verified; why not).
async fn verify_provenance(core: &Core, url: &str, f: &page::File) -> (Option<String>, Option<String>) {
    core.mirror.counters.other_requests.fetch_add(1, Ordering::Relaxed);
    let body = match upstream::document(&core.mirror.client, url, PROVENANCE_BYTES).await {
        Ok(b) => b,
        Err(e) => return (None, Some(format!("could not fetch it: {e}"))),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (None, Some("not JSON".into()));
    };
    let attestations = core.attestations.clone();
    let (filename, sha256) = (f.filename.clone(), f.sha256.clone());
    let checked = tokio::task::spawn_blocking(move || attestations.verify_provenance(&value, &filename, &sha256).map(|n| (n, value))).await;
    match checked {
        Ok(Ok((n, value))) => {
            tracing::info!(file = %f.filename, attestations = n, "upstream provenance verified");
            (Some(value.to_string()), None)
        }
        Ok(Err(e)) => {
            tracing::warn!(file = %f.filename, error = %e, "upstream provenance did not verify; the file is served without it");
            (None, Some(e))
        }
        Err(e) => (None, Some(format!("verification failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_waiting_for_a_file_read_ahead_is_seen_and_the_entry_goes_with_the_last_read_ahead() {
        let mirror = Arc::new(Mirror::new(&Default::default()).unwrap());
        let files = |m: &Mirror| m.waiting.files.lock().unwrap().keys().cloned().collect::<Vec<_>>();
        // Nobody reads it ahead: nothing to mark, nothing kept.
        mirror.waiting.want("a-1.0-py3-none-any.whl");
        assert!(files(&mirror).is_empty());
        let first = register(&mirror, "a-1.0-py3-none-any.whl");
        let second = register(&mirror, "a-1.0-py3-none-any.whl");
        assert!(!first.wanted.is_wanted());
        let wanted = first.wanted.clone();
        let waiter = tokio::spawn(async move { wanted.wanted().await });
        tokio::task::yield_now().await;
        mirror.waiting.want("a-1.0-py3-none-any.whl");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.expect("the scan learns a client waits").unwrap();
        assert!(second.wanted.is_wanted());
        // Wanted before the scan starts: it starts at normal priority (no wait at all).
        tokio::time::timeout(std::time::Duration::from_secs(5), second.wanted.wanted()).await.unwrap();
        drop(first);
        assert_eq!(files(&mirror), ["a-1.0-py3-none-any.whl"]);
        drop(second);
        assert!(files(&mirror).is_empty());
    }
}
