//! Releases and files after publication: yanking, removing, and a project's status.

use palisade_store::Project;
use serde_json::json;

use super::Actor;
use crate::Core;
use crate::error::{Result, invalid, not_found};
use crate::events::record;

/// Yanks (or un-yanks) `version` of `project`, or only `file` of it. The reason is shown in
/// every index page and in terminals: plain text on one line. Returns how many files changed.
pub async fn set_yanked(
    core: &Core,
    actor: &Actor,
    project: &Project,
    version: &str,
    file: Option<&str>,
    yank: bool,
    reason: Option<&str>,
) -> Result<u64> {
    let reason = reason.filter(|r| yank && !r.is_empty());
    if let Some(r) = reason {
        palisade_dist::check_text("yank reason", r).map_err(|e| invalid(e.to_string()))?;
    }
    let n = core.db.set_yanked(&project.normalized, version, file, yank, reason, &actor.name).await?;
    core.changed(&project.normalized);
    let kind = if yank { "release_yanked" } else { "release_unyanked" };
    let details = json!({ "version": version, "file": file, "reason": reason, "files": n });
    record(core, kind, &actor.name, actor.user_id, Some(project.id), &actor.origin, details).await;
    Ok(n)
}

/// Removes `filename` as malicious: removed as [`remove_file`] does, after an OSV record of
/// the verdict is written (`note` goes into it). Returns the record's id.
pub async fn remove_malicious(core: &Core, actor: &Actor, filename: &str, note: Option<&str>) -> Result<String> {
    let file = core.db.file(filename).await?.ok_or_else(|| not_found(format!("no file {filename:?}")))?;
    let id = core
        .record_verdict(&file, crate::sharing::records::Reason::Removed, note, &actor.name)
        .await
        .map_err(|e| crate::error::internal(format!("the OSV record could not be written: {e:#}")))?;
    remove_file(core, actor, None, filename).await?;
    let _ = core.db.set_observations_outcome(file.project_id, Some(&file.version), "confirmed").await;
    core.announce(
        "confirm",
        json!({ "filename": filename, "decision": "removed", "record": id, "project": file.project, "sha256": file.sha256 }),
    )
    .await;
    Ok(id)
}

/// Removes `filename` (of `project`, when given: a file of another project is not found). Its
/// bytes go when nothing else references them; its name stays reserved forever.
pub async fn remove_file(core: &Core, actor: &Actor, project: Option<&Project>, filename: &str) -> Result<()> {
    let file = core.db.file(filename).await?.filter(|f| project.is_none_or(|p| p.id == f.project_id));
    let Some(file) = file else {
        return Err(not_found(match project {
            Some(p) => format!("no file {filename:?} in project {:?}", p.normalized),
            None => format!("no file {filename:?}"),
        }));
    };
    core.db.remove_file(&core.blobs, filename, &actor.name).await?;
    core.changed(&file.project);
    let details = json!({ "filename": filename, "sha256": file.sha256 });
    record(core, "file_removed", &actor.name, actor.user_id, Some(file.project_id), &actor.origin, details).await;
    Ok(())
}

/// Sets a project's status (`active`, `archived`, `quarantined`, ...), with a reason shown to
/// clients.
pub async fn set_status(core: &Core, actor: &Actor, project: &str, status: &str, reason: Option<&str>) -> Result<()> {
    let normalized = palisade_dist::normalize(project);
    if let Some(r) = reason {
        palisade_dist::check_text("status reason", r).map_err(|e| invalid(e.to_string()))?;
    }
    let before = core.db.project(&normalized).await?;
    core.db.set_status(&normalized, status, reason, &actor.name).await?;
    core.changed(&normalized);
    let project_id = before.as_ref().map(|p| p.id);
    // Lifting a quarantine decides the open malware reports (reporter accuracy), and they no
    // longer count towards another.
    if let Some(p) = before.filter(|p| p.status == "quarantined" && status != "quarantined") {
        let _ = core.db.set_observations_outcome(p.id, None, "released").await;
    }
    record(
        core,
        "project_status_changed",
        &actor.name,
        actor.user_id,
        project_id,
        &actor.origin,
        json!({ "status": status, "reason": reason }),
    )
    .await;
    Ok(())
}

/// Turns the project's attestation requirement on or off (owners): when on, every upload must
/// carry a valid PEP 740 attestation from one of the project's registered trusted publishers.
pub async fn set_require_attestations(core: &Core, actor: &Actor, project: &Project, on: bool) -> Result<()> {
    core.db.set_require_attestations(&project.normalized, on, &actor.name).await?;
    core.changed(&project.normalized);
    let details = json!({ "require_attestations": on });
    record(core, "project_attestation_policy_changed", &actor.name, actor.user_id, Some(project.id), &actor.origin, details).await;
    Ok(())
}

/// Marks a project critical, or not: its owners and maintainers then need a WebAuthn credential
/// to change it (`accounts.critical_require_webauthn`). Each owner is told.
pub async fn set_critical(core: &Core, actor: &Actor, project: &Project, on: bool) -> Result<()> {
    core.db.set_project_critical(&project.normalized, on).await?;
    record(core, "project_critical_changed", &actor.name, actor.user_id, Some(project.id), &actor.origin, json!({ "critical": on })).await;
    if on && core.config.accounts.critical_require_webauthn {
        let what = format!(
            "An administrator marked project {:?} critical. Uploading, yanking and managing it now need a security key or passkey \
             (WebAuthn) on your account, and in the browser a login made with it. Add one on your account page.",
            project.normalized
        );
        for role in core.db.roles(Some(&project.normalized)).await? {
            if let Ok(user) = core.db.user_by_name(&role.user_name).await {
                crate::mail::notify(&core.mailer, &user, &format!("{} is now a critical project", project.normalized), &what).await;
            }
        }
    }
    Ok(())
}
