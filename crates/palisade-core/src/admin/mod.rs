//! Administrator operations that the CLI exposes. They live here, not in the binary, so that the
//! rules (name validity, token scope, expiry) are the same wherever they are invoked.

use std::time::Duration;

use palisade_store::{Db, User, now_micros};

use crate::tokens;

/// Account names: ASCII letters, digits, `.`, `_`, `-`; 1 to 50 characters.
pub fn validate_user_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty() && name.len() <= 50 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    anyhow::ensure!(ok, "invalid user name {name:?}: use 1 to 50 ASCII letters, digits, '.', '_' or '-'");
    Ok(())
}

/// A new account. With a password, its strength is checked as at registration; an administrator
/// may vouch for the email address (`email_verified`), which skips the verification mail.
pub async fn create_user(
    db: &Db,
    name: &str,
    admin: bool,
    email: Option<&str>,
    email_verified: bool,
    password: Option<&str>,
) -> anyhow::Result<User> {
    validate_user_name(name)?;
    if let Some(e) = email {
        anyhow::ensure!(e.contains('@') && !e.chars().any(char::is_whitespace) && e.len() <= 254, "invalid email address {e:?}");
    }
    let hash = match password {
        Some(pw) => {
            let mut inputs = vec![name];
            inputs.extend(email);
            palisade_auth::check_strength(pw, &inputs)?;
            Some(palisade_auth::hash_password(pw)?)
        }
        None => None,
    };
    Ok(db.create_user(name, admin, email, email_verified, hash.as_deref()).await?)
}

/// Sets a user's password from the CLI (ends their sessions and revokes their tokens).
pub async fn set_password(db: &Db, name: &str, password: &str) -> anyhow::Result<(u64, u64)> {
    let user = db.user_by_name(name).await?;
    let mut inputs = vec![name];
    inputs.extend(user.email.as_deref());
    palisade_auth::check_strength(password, &inputs)?;
    let hash = palisade_auth::hash_password(password)?;
    Ok(db.set_password(user.id, &hash).await?)
}

/// Creates a token for `user` from the CLI, under the same instance policy as the API: the user
/// needs a second factor and a verified address when the configuration requires them.
pub async fn create_token(
    db: &Db,
    policy: &crate::config::AccountPolicy,
    user: &str,
    projects: &[String],
    actions: &[String],
    expires_in: Option<Duration>,
    description: Option<&str>,
) -> anyhow::Result<(i64, String)> {
    let user = db.user_by_name(user).await?;
    anyhow::ensure!(
        !policy.require_2fa || user.has_2fa,
        "user {:?} has no second factor, and this instance requires one to create tokens (they enrol with POST /api/account/2fa/totp)",
        user.name
    );
    anyhow::ensure!(
        !policy.require_verified_email || user.email_verified(),
        "user {:?} has no verified email address, and this instance requires one (palisade user verify-email {})",
        user.name,
        user.name
    );
    create_token_for(db, &user, projects, actions, expires_in, description).await
}

/// Creates a token for `user` (rules already checked), limited to `projects` and `actions` when
/// any are given, and returns the secret, which is not stored and cannot be shown again.
pub async fn create_token_for(
    db: &Db,
    user: &User,
    projects: &[String],
    actions: &[String],
    expires_in: Option<Duration>,
    description: Option<&str>,
) -> anyhow::Result<(i64, String)> {
    let mut acts: Vec<String> = Vec::new();
    for a in actions {
        anyhow::ensure!(crate::access::Action::SCOPES.contains(&a.as_str()), "unknown action {a:?}: expected upload, yank or manage");
        acts.push(a.clone());
    }
    acts.sort();
    acts.dedup();
    let mut scope = Vec::new();
    for p in projects {
        let name = palisade_dist::ProjectName::new(p)?;
        scope.push(name.normalized().to_string());
    }
    scope.sort();
    scope.dedup();
    if let Some(d) = description {
        palisade_dist::check_text("token description", d)?;
    }
    let expires_at = expires_in.map(|d| now_micros() + d.as_micros() as i64);
    let t = tokens::generate();
    let id = db
        .create_token(
            Some(user.id),
            None,
            &t.hash,
            &t.hint,
            (!scope.is_empty()).then_some(&scope[..]),
            (!acts.is_empty()).then_some(&acts[..]),
            description,
            expires_at,
        )
        .await?;
    Ok((id, t.secret))
}

/// Registers a trusted publisher for `project` from the CLI: for an existing project, or a
/// pending one (which may create the project on its first upload, owned by `pending_owner`, and
/// expires after `[oidc] pending_publisher_days`). The per-user limit on pending publishers is
/// the API's; an administrator is not held to it.
pub async fn add_publisher(
    db: &Db,
    config: &crate::Config,
    project: &str,
    input: crate::publishers::PublisherInput,
    pending_owner: Option<&str>,
) -> anyhow::Result<palisade_store::Publisher> {
    let name = palisade_dist::ProjectName::new(project)?;
    let (issuer, spec) = crate::publishers::resolve(input, &config.oidc).map_err(anyhow::Error::msg)?;
    let spec_json = serde_json::to_string(&spec)?;
    sweep_expired_publishers(db).await?;
    let project_id = db.project(name.normalized()).await?.map(|p| p.id);
    let siblings: Vec<_> = db.publishers(Some(name.normalized())).await?.into_iter().filter(|pb| pb.project_id == project_id).collect();
    if let Some(id) = crate::publishers::duplicate_of(&siblings, &issuer, &spec) {
        anyhow::bail!("an identical trusted publisher (id {id}) is already registered for {:?}", name.normalized());
    }
    let id = match db.project(name.normalized()).await? {
        Some(p) => db.add_publisher(Some(p.id), None, &issuer, &spec_json, None, None, None).await?,
        None => {
            let owner = pending_owner.ok_or_else(|| {
                anyhow::anyhow!(
                    "project {:?} does not exist; to let the publisher create it, name its future owner with --owner USER",
                    name.normalized()
                )
            })?;
            let owner = db.user_by_name(owner).await?;
            let taken = db.publishers(Some(name.normalized())).await?.iter().any(|pb| pb.pending && pb.created_by != Some(owner.id));
            anyhow::ensure!(!taken, "another user has a pending publisher for {:?}", name.normalized());
            let expires = crate::publishers::pending_expiry(&config.oidc);
            db.add_publisher(None, Some(name.normalized()), &issuer, &spec_json, Some(owner.id), Some(expires), None).await?
        }
    };
    let p = db.publisher(id).await?.ok_or_else(|| anyhow::anyhow!("publisher {id} vanished"))?;
    let event = palisade_store::NewEvent {
        kind: "publisher_added".into(),
        project_id: p.project_id,
        actor: "admin-cli".into(),
        details: Some(serde_json::json!({ "publisher_id": id, "issuer": issuer, "spec": spec, "pending": p.pending }).to_string()),
        ..Default::default()
    };
    db.record_event(&event).await?;
    Ok(p)
}

/// Removes the pending publishers whose time ran out, recording a `publisher_expired` event for
/// each (on the account that registered it). Run before anything that counts or reserves
/// pending publishers; expired ones are ignored everywhere else until then.
pub async fn sweep_expired_publishers(db: &Db) -> anyhow::Result<usize> {
    let removed = db.sweep_expired_publishers().await?;
    for p in &removed {
        let event = palisade_store::NewEvent {
            kind: "publisher_expired".into(),
            user_id: p.created_by,
            actor: "expiry".into(),
            details: Some(
                serde_json::json!({ "publisher_id": p.id, "project": p.project, "issuer": p.issuer, "expired": p.expires_at.map(crate::timestamp) })
                    .to_string(),
            ),
            ..Default::default()
        };
        db.record_event(&event).await?;
    }
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed expired pending publishers");
    }
    Ok(removed.len())
}

/// Parses `90s`, `15m`, `12h`, `30d`, `2w`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("invalid duration {text:?}: expected a number and a unit, such as 30d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => anyhow::bail!("invalid duration {text:?}: the unit is one of s, m, h, d, w"),
    };
    anyhow::ensure!(n > 0, "invalid duration {text:?}: it must be positive");
    anyhow::ensure!(n.saturating_mul(secs) <= 10 * 366 * 86_400, "invalid duration {text:?}: at most ten years");
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        for bad in ["", "d", "30", "30y", "-1d", "0d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_names() {
        assert!(validate_user_name("alice.b-c_1").is_ok());
        for bad in ["", "a b", "ä", &"a".repeat(51)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }
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
pub async fn rescan(core: &crate::Core, project: Option<&str>, actor: &str) -> anyhow::Result<RescanSummary> {
    let scan = &core.scan;
    let mut summary = RescanSummary::default();
    let files = core.db.all_files(project).await?;
    for f in files.into_iter().filter(|f| f.is_published()) {
        let path = core.blobs.path_for(&f.sha256);
        if !path.is_file() {
            summary.missing_blobs.push(f.filename.clone());
            continue;
        }
        let report = scan.scan(&path, &f.filename, Vec::new()).await?;
        summary.scanned += 1;
        let outcome = scan.decide(&report);
        if outcome != crate::scanning::Outcome::Publish {
            // A file already published is held for review rather than deleted outright.
            let record = crate::scanning::record(&report, crate::scanning::Outcome::Quarantine, "rescan");
            core.db.quarantine_file(&f.filename, &record, actor).await?;
            core.changed(&f.project);
            summary.newly_quarantined.push((f.filename.clone(), crate::scanning::summary(&report)));
        }
    }
    Ok(summary)
}
