//! `palisade audit`: the security event log.

use anyhow::Context;
use palisade_core::Core;

use crate::time;

pub async fn run(core: &Core, project: Option<String>, user: Option<String>, limit: i64, json: bool) -> anyhow::Result<()> {
    let project_id = match &project {
        Some(p) => Some(core.db.project(&palisade_dist::normalize(p)).await?.with_context(|| format!("no project {p:?}"))?.id),
        None => None,
    };
    let user_id = match &user {
        Some(u) => Some(core.db.user_by_name(u).await?.id),
        None => None,
    };
    for e in core.db.events(user_id, project_id, limit).await? {
        if json {
            println!("{}", palisade_core::events::to_json(&e));
            continue;
        }
        println!(
            "{}  {:<26} actor={} user={} project={} addr={} ua={:?} {}",
            time(e.at),
            e.kind,
            e.actor,
            e.user_name.as_deref().unwrap_or("-"),
            e.project.as_deref().unwrap_or("-"),
            e.addr.as_deref().unwrap_or("-"),
            e.user_agent.as_deref().unwrap_or("-"),
            e.details.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
