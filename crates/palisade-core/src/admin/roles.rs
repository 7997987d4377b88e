//! Who may publish a project: owners and maintainers.

use palisade_store::{Project, Role, User};
use serde_json::{Value, json};

use super::Actor;
use crate::Core;
use crate::error::{Result, invalid, not_found};
use crate::events::record;

/// Gives `user` `role` on `project` (or changes it). A project keeps at least one owner.
pub async fn set_role(core: &Core, actor: &Actor, project: &Project, user: &str, role: Role) -> Result<User> {
    let target = core.db.user_by_name(user).await?;
    let before = core.db.role(project.id, target.id).await?;
    // A friendly early answer; the store checks again inside its transaction, which is what
    // makes it hold when two owners demote each other at once.
    if before == Some(Role::Owner) && role != Role::Owner && core.owners(project).await?.len() <= 1 {
        return Err(invalid("a project must keep at least one owner"));
    }
    core.db.set_role(&project.normalized, &target.name, role, &actor.name).await?;
    let details = json!({ "user": target.name, "from": before.map(Role::as_str), "to": role.as_str() });
    record(core, "role_changed", &actor.name, Some(target.id), Some(project.id), &actor.origin, details).await;
    let what = format!("{} made you {} of project {}.", actor.name, role.as_str(), project.normalized);
    crate::mail::notify(&core.mailer, &target, "Your role changed", &what).await;
    core.changed(&project.normalized);
    Ok(target)
}

/// Removes `user`'s role on `project`. A project keeps at least one owner.
pub async fn remove_role(core: &Core, actor: &Actor, project: &Project, user: &str) -> Result<User> {
    let target = core.db.user_by_name(user).await?;
    let before = core.db.role(project.id, target.id).await?;
    if before.is_none() {
        return Err(not_found(format!("user {:?} has no role on {:?}", target.name, project.normalized)));
    }
    if before == Some(Role::Owner) && core.owners(project).await?.len() <= 1 {
        return Err(invalid("a project must keep at least one owner"));
    }
    core.db.remove_role(&project.normalized, &target.name, &actor.name).await?;
    let details = json!({ "user": target.name, "from": before.map(Role::as_str), "to": Value::Null });
    record(core, "role_changed", &actor.name, Some(target.id), Some(project.id), &actor.origin, details).await;
    let what = format!("{} removed your role on project {}.", actor.name, project.normalized);
    crate::mail::notify(&core.mailer, &target, "Your role was removed", &what).await;
    core.changed(&project.normalized);
    Ok(target)
}
