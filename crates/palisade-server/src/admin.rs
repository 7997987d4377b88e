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

pub async fn create_user(db: &Db, name: &str, admin: bool) -> anyhow::Result<User> {
    validate_user_name(name)?;
    Ok(db.create_user(name, admin).await?)
}

/// Creates a token for `user`, limited to `projects` when any are given, and returns the secret,
/// which is not stored and cannot be shown again.
pub async fn create_token(
    db: &Db,
    user: &str,
    projects: &[String],
    expires_in: Option<Duration>,
    description: Option<&str>,
) -> anyhow::Result<(i64, String)> {
    let user = db.user_by_name(user).await?;
    let mut scope = Vec::new();
    for p in projects {
        let name = palisade_dist::ProjectName::new(p)?;
        scope.push(name.normalized().to_string());
    }
    scope.sort();
    scope.dedup();
    let expires_at = expires_in.map(|d| now_micros() + d.as_micros() as i64);
    let t = tokens::generate();
    let id = db.create_token(user.id, &t.hash, &t.hint, (!scope.is_empty()).then_some(&scope[..]), description, expires_at).await?;
    Ok((id, t.secret))
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
pub async fn rescan(state: &crate::AppState, project: Option<&str>, actor: &str) -> anyhow::Result<RescanSummary> {
    let scan = &state.scan;
    let mut summary = RescanSummary::default();
    let files = state.db.all_files(project).await?;
    for f in files.into_iter().filter(|f| f.is_published()) {
        let path = state.blobs.path_for(&f.sha256);
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
            state.db.quarantine_file(&f.filename, &record, actor).await?;
            state.invalidate(&f.project);
            summary.newly_quarantined.push((f.filename.clone(), crate::scanning::summary(&report)));
        }
    }
    Ok(summary)
}
