//! Files the scanner held for review: an administrator releases them (a false positive) or
//! confirms them (malicious: removed, the name reserved); a rescan holds files already published
//! that today's rules flag.

use serde_json::json;

use super::Actor;
use crate::Core;
use crate::error::{Result, not_found};
use crate::events::record;
use crate::scanning::{self, Outcome};

/// A note on a decision is kept short.
const MAX_NOTE_CHARS: usize = 2000;

/// Publishes a quarantined file.
pub async fn release(core: &Core, actor: &Actor, filename: &str, note: Option<&str>) -> Result<()> {
    let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect::<String>());
    core.db.release_file(filename, &actor.name, note.as_deref()).await?;
    // The release is done; a failure to read the file back only costs the event its project.
    let file = core.db.file(filename).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, file.filename = %filename, "released file could not be read back");
        None
    });
    if let Some(f) = &file {
        core.changed(&f.project);
    }
    let details = json!({ "filename": filename, "decision": "released", "note": note });
    record(core, "quarantine_decision", &actor.name, actor.user_id, file.map(|f| f.project_id), &actor.origin, details).await;
    tracing::info!(file.filename = %filename, user.name = %actor.name, "quarantined file released");
    Ok(())
}

/// Confirms a quarantined file as malicious: it is removed, and its name stays reserved.
pub async fn confirm(core: &Core, actor: &Actor, filename: &str, note: Option<&str>) -> Result<()> {
    let note = note.map(|n| n.chars().take(MAX_NOTE_CHARS).collect::<String>());
    let file = core.db.file(filename).await?.ok_or_else(|| not_found(format!("no file {filename:?}")))?;
    core.db.confirm_file(&core.blobs, filename, &actor.name, note.as_deref()).await?;
    core.changed(&file.project);
    let details = json!({ "filename": filename, "decision": "confirmed", "note": note });
    record(core, "quarantine_decision", &actor.name, actor.user_id, Some(file.project_id), &actor.origin, details).await;
    tracing::info!(file.filename = %filename, user.name = %actor.name, "quarantined file confirmed malicious and removed");
    Ok(())
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
            record(core, "file_quarantined", &actor.name, actor.user_id, Some(f.project_id), &actor.origin, details).await;
            summary.newly_quarantined.push((f.filename.clone(), scanning::summary(&report)));
        }
    }
    Ok(summary)
}
