//! Files the scanner held for review: an administrator releases them (a false positive) or
//! confirms them (malicious: never served, the name reserved, an OSV record written); a rescan
//! holds files already published that today's rules flag.

use serde_json::json;

use super::Actor;
use crate::Core;
use crate::error::{Result, not_found};
use crate::events::record;
use crate::scanning::{self, Outcome};
use crate::sharing::records::Reason;

/// A note on a decision is kept short.
const MAX_NOTE_CHARS: usize = 2000;

/// Publishes a held file (a false positive), or one confirmed as malicious (the decision
/// undone). Palisade's OSV records that list it are withdrawn; returns their ids.
pub async fn release(core: &Core, actor: &Actor, filename: &str, note: Option<&str>) -> Result<Vec<String>> {
    let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect::<String>());
    core.db.release_file(filename, &actor.name, note.as_deref()).await?;
    // The release is done; a failure to read the file back only costs the event its project.
    let file = core.db.file(filename).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, file.filename = %filename, "released file could not be read back");
        None
    });
    let mut withdrawn = Vec::new();
    if let Some(f) = &file {
        withdrawn = core.withdraw_verdicts(f, &actor.name).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, file.filename = %filename, "the OSV records of a released file could not be withdrawn");
            Vec::new()
        });
        let _ = core.db.set_observations_outcome(f.project_id, Some(&f.version), "released").await;
        core.changed(&f.project);
    }
    let details = json!({ "filename": filename, "decision": "released", "note": note, "withdrawn": withdrawn });
    record(core, "quarantine_decision", &actor.name, actor.user_id, file.as_ref().map(|f| f.project_id), &actor.origin, details.clone())
        .await;
    core.announce("release", details).await;
    tracing::info!(file.filename = %filename, user.name = %actor.name, "quarantined file released");
    Ok(withdrawn)
}

/// Confirms a quarantined file as malicious: it is kept out of every index and download (its
/// bytes stay, for evidence and so the decision can be undone, until it is removed), its name
/// stays reserved, and an OSV record of the verdict is written (see `sharing::records`).
/// Returns the record's id, if it could be written.
pub async fn confirm(core: &Core, actor: &Actor, filename: &str, note: Option<&str>) -> Result<Option<String>> {
    let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect::<String>());
    let file = core.db.file(filename).await?.ok_or_else(|| not_found(format!("no file {filename:?}")))?;
    core.db.confirm_file(filename, &actor.name, note.as_deref()).await?;
    core.changed(&file.project);
    let osv = core.record_verdict(&file, Reason::Confirmed, note.as_deref(), &actor.name).await.map_err(|e| {
        tracing::error!(error = %e, file.filename = %filename, "the OSV record of a confirmed file could not be written");
    });
    let osv = osv.ok();
    let _ = core.db.set_observations_outcome(file.project_id, Some(&file.version), "confirmed").await;
    let details = json!({ "filename": filename, "decision": "confirmed", "note": note, "record": osv, "project": file.project, "sha256": file.sha256 });
    record(core, "quarantine_decision", &actor.name, actor.user_id, Some(file.project_id), &actor.origin, details.clone()).await;
    core.announce("confirm", details).await;
    tracing::info!(file.filename = %filename, user.name = %actor.name, osv.id = ?osv, "quarantined file confirmed malicious");
    Ok(osv)
}

/// What a rescan did.
#[derive(Debug, Default)]
pub struct RescanSummary {
    pub scanned: usize,
    pub newly_quarantined: Vec<(String, String)>,
    pub missing_blobs: Vec<String>,
}

/// Re-scans every published file (of one project, or all) with the current rules and moves new
/// hits into quarantine, recording each report.
pub async fn rescan(core: &Core, actor: &Actor, project: Option<&str>) -> Result<RescanSummary> {
    let mut summary = RescanSummary::default();
    let files = core.db.all_files(project).await?;
    for f in files.into_iter().filter(|f| f.is_published()) {
        let Some(local) = core.blobs.local(&f.sha256).await? else {
            summary.missing_blobs.push(f.filename.clone());
            continue;
        };
        let report = core.scan.scan(local.path(), &f.filename, Vec::new()).await?;
        summary.scanned += 1;
        if core.scan.decide(&report) != Outcome::Publish {
            // A file already published is held for review rather than deleted outright.
            let scan_record = scanning::record(&report, Outcome::Quarantine, "rescan");
            core.db.quarantine_file(&f.filename, &scan_record, &actor.name).await?;
            core.changed(&f.project);
            let details = json!({ "filename": f.filename, "sha256": f.sha256, "trigger": "rescan" });
            record(core, "file_quarantined", &actor.name, actor.user_id, Some(f.project_id), &actor.origin, details.clone()).await;
            core.announce("quarantine", details).await;
            summary.newly_quarantined.push((f.filename.clone(), scanning::summary(&report)));
        }
    }
    Ok(summary)
}
