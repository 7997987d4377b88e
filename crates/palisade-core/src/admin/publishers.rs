//! Trusted publishers: the CI identities whose OIDC tokens may upload to a project, or create
//! one (a pending publisher, which expires after `[oidc] pending_publisher_days`).

use palisade_store::{Project, Publisher, User};
use serde_json::json;

use super::Actor;
use crate::Core;
use crate::error::{Error, Result, internal, invalid};
use crate::events::record;
use crate::publishers::{PublisherInput, describe, duplicate_of, pending_expiry, resolve};

/// What a new publisher may publish.
pub enum PublisherTarget<'a> {
    /// An existing project.
    Project(&'a Project),
    /// A project that does not exist yet, which the publisher may create on its first upload,
    /// owned by `owner`. `limit` caps the owner's pending publishers (the API's rule; `None` for
    /// an administrator).
    Pending { name: &'a str, owner: &'a User, limit: Option<u64> },
}

/// Registers a publisher, records it, and tells the project's owners (or the pending one's owner).
pub async fn add_publisher(core: &Core, actor: &Actor, target: PublisherTarget<'_>, input: PublisherInput) -> Result<Publisher> {
    let (issuer, spec) = resolve(input, &core.config.oidc).map_err(invalid)?;
    let spec_json = serde_json::to_string(&spec).map_err(internal)?;
    sweep_expired_publishers(core).await?;
    let (project, pending) = match &target {
        PublisherTarget::Project(p) => (Some(*p), None),
        PublisherTarget::Pending { name, owner, limit } => {
            let name = palisade_dist::ProjectName::new(name).map_err(|e| invalid(e.to_string()))?;
            let normalized = name.normalized().to_string();
            if core.db.project(&normalized).await?.is_some() {
                return Err(invalid(format!("project {normalized:?} exists; add the publisher to the project instead")));
            }
            if let Some(max) = limit {
                let mine = core.db.pending_publishers_of(owner.id).await?;
                if mine.len() as u64 >= *max {
                    return Err(invalid(format!(
                        "user {:?} already has {} pending publishers, the most this instance allows ([oidc] max_pending_publishers = {max}); \
                         delete one (DELETE /api/account/pending-publishers/{{id}}) or let one create its project first",
                        owner.name,
                        mine.len()
                    )));
                }
            }
            let taken = core.db.publishers(Some(&normalized)).await?.iter().any(|pb| pb.pending && pb.created_by != Some(owner.id));
            if taken {
                return Err(invalid(format!(
                    "another user has a pending publisher for {normalized:?}; the name is reserved for them until it expires or is used"
                )));
            }
            (None, Some((normalized, owner, *limit)))
        }
    };
    let name = project.map(|p| p.normalized.clone()).or_else(|| pending.as_ref().map(|(n, ..)| n.clone())).unwrap_or_default();
    let now = palisade_store::now_micros();
    let siblings: Vec<_> = core
        .db
        .publishers(Some(&name))
        .await?
        .into_iter()
        .filter(|pb| pb.project_id == project.map(|p| p.id) && !pb.expired(now))
        .collect();
    if let Some(id) = duplicate_of(&siblings, &issuer, &spec) {
        return Err(Error::Exists(format!("an identical trusted publisher (id {id}) is already registered for {name:?}")));
    }
    let id = match &pending {
        None => core.db.add_publisher(project.map(|p| p.id), None, &issuer, &spec_json, actor.user_id, None, None).await?,
        Some((normalized, owner, limit)) => {
            let expires = pending_expiry(&core.config.oidc);
            core.db.add_publisher(None, Some(normalized), &issuer, &spec_json, Some(owner.id), Some(expires), *limit).await?
        }
    };
    let publisher = core.db.publisher(id).await?.ok_or_else(|| internal(format!("publisher {id} vanished")))?;
    let details = json!({ "publisher_id": id, "issuer": issuer, "spec": spec, "pending": publisher.pending });
    let subject = pending.as_ref().map(|(_, owner, _)| owner.id).or(actor.user_id);
    record(core, "publisher_added", &actor.name, subject, project.map(|p| p.id), &actor.origin, details).await;
    let what = format!("{} added a trusted publisher to {}: {}", actor.name, publisher.project, describe(&publisher));
    match (project, &pending) {
        (Some(project), _) => {
            for owner in core.owners(project).await? {
                crate::mail::notify(&core.mailer, &owner, "Trusted publisher added", &what).await;
            }
        }
        (None, Some((_, owner, _))) => crate::mail::notify(&core.mailer, owner, "Pending trusted publisher added", &what).await,
        (None, None) => {}
    }
    Ok(publisher)
}

/// Removes a publisher (and withdraws the upload tokens it minted).
pub async fn remove_publisher(core: &Core, actor: &Actor, publisher: &Publisher) -> Result<()> {
    core.db.remove_publisher(publisher.id).await?;
    let details =
        json!({ "publisher_id": publisher.id, "issuer": publisher.issuer, "project": publisher.project, "pending": publisher.pending });
    record(core, "publisher_removed", &actor.name, actor.user_id, publisher.project_id, &actor.origin, details).await;
    Ok(())
}

/// Removes the pending publishers whose time ran out, recording a `publisher_expired` event for
/// each (on the account that registered it). Run before anything that counts or reserves
/// pending publishers; expired ones are ignored everywhere else until then.
pub async fn sweep_expired_publishers(core: &Core) -> Result<usize> {
    let removed = core.db.sweep_expired_publishers().await?;
    for p in &removed {
        let details =
            json!({ "publisher_id": p.id, "project": p.project, "issuer": p.issuer, "expired": p.expires_at.map(crate::timestamp) });
        record(core, "publisher_expired", "expiry", p.created_by, None, &crate::access::Origin::default(), details).await;
    }
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed expired pending publishers");
    }
    Ok(removed.len())
}
