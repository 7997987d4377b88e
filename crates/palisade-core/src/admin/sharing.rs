//! Information sharing, as administrators manage it: waiving an OSV record for one project, and
//! marking users as trusted reporters (see `crate::sharing`).

use super::Actor;
use crate::Core;
use crate::error::Result;
use crate::events::record;

/// Waives the record `osv_id` for `project` (an administrator's decision, with a reason),
/// or lifts the waiver (`reason` `None`). Audited: an event, a journal entry, a log entry.
pub async fn waive(core: &Core, actor: &Actor, project: &str, osv_id: &str, reason: Option<&str>) -> Result<bool> {
    let normalized = palisade_dist::normalize(project);
    let p = core.db.project(&normalized).await?.ok_or_else(|| crate::error::not_found(format!("no project named {normalized:?}")))?;
    if !palisade_osv::is_valid_id(osv_id) {
        return Err(crate::error::invalid(format!("{osv_id:?} is not an OSV id")));
    }
    if let Some(r) = reason {
        if r.trim().is_empty() {
            return Err(crate::error::invalid("a waiver needs a reason"));
        }
        palisade_dist::check_text("waiver reason", r).map_err(|e| crate::error::invalid(e.to_string()))?;
    }
    let changed = core.db.set_waiver(&normalized, osv_id, reason, &actor.name).await?;
    if changed {
        let kind = if reason.is_some() { "osv_waived" } else { "osv_waiver_lifted" };
        let details = serde_json::json!({ "record": osv_id, "reason": reason });
        record(core, kind, &actor.name, actor.user_id, Some(p.id), &actor.origin, details).await;
        if let Err(e) = core.refresh_blocks().await {
            tracing::warn!(error = %e, "could not reload the blocking records");
        }
        core.changed(&normalized);
    }
    Ok(changed)
}

/// Marks `user` as a trusted reporter, or not. Audited.
pub async fn set_trusted_reporter(core: &Core, actor: &Actor, user: &str, trusted: bool) -> Result<()> {
    if !core.db.set_trusted_reporter(user, trusted).await? {
        return Err(crate::error::not_found(format!("no user named {user:?}")));
    }
    let uid = core.db.user_by_name(user).await.ok().map(|u| u.id);
    let details = serde_json::json!({ "user": user, "trusted_reporter": trusted });
    record(core, "trusted_reporter_changed", &actor.name, uid, None, &actor.origin, details).await;
    Ok(())
}
