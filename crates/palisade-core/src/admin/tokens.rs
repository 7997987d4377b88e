//! API tokens: creating one under the instance's policy, revoking one.

use std::time::Duration;

use palisade_store::{User, now_micros};
use serde_json::json;

use super::Actor;
use crate::Core;
use crate::access::Action;
use crate::error::{Result, forbidden, invalid, not_found};
use crate::events::record;

/// The longest a token may be valid for.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 366 * 86_400);

/// What a new token may do.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest<'a> {
    /// Project names it is limited to; empty for all of the user's projects.
    pub projects: &'a [String],
    /// Actions (`upload`, `yank`, `manage`) it is limited to; empty for all.
    pub actions: &'a [String],
    pub expires_in: Option<Duration>,
    pub description: Option<&'a str>,
}

/// Creates a token for the user named `user` on behalf of an administrator, under the same
/// instance policy as the API: the user needs a second factor and a verified address when the
/// configuration requires them. Returns the id and the secret, which cannot be shown again.
pub async fn create_token(core: &Core, actor: &Actor, user: &str, request: TokenRequest<'_>) -> Result<(i64, String)> {
    let user = core.db.user_by_name(user).await?;
    let policy = &core.config.accounts;
    if policy.require_2fa && !user.has_2fa {
        return Err(forbidden(format!(
            "user {:?} has no second factor, and this instance requires one to create tokens (they enrol with POST /api/account/2fa/totp)",
            user.name
        )));
    }
    if policy.require_verified_email && !user.email_verified() {
        return Err(forbidden(format!(
            "user {:?} has no verified email address, and this instance requires one (palisade user verify-email {})",
            user.name, user.name
        )));
    }
    create_token_for(core, actor, &user, request).await
}

/// Creates a token for `user`, whose right to have one is already established, limited to the
/// request's projects and actions when any are given. Records the event and tells the user.
pub async fn create_token_for(core: &Core, actor: &Actor, user: &User, request: TokenRequest<'_>) -> Result<(i64, String)> {
    let mut actions: Vec<String> = Vec::new();
    for a in request.actions {
        if !Action::SCOPES.contains(&a.as_str()) {
            return Err(invalid(format!("unknown action {a:?}: expected upload, yank or manage")));
        }
        actions.push(a.clone());
    }
    actions.sort();
    actions.dedup();
    let mut scope = Vec::new();
    for p in request.projects {
        let name = palisade_dist::ProjectName::new(p).map_err(|e| invalid(e.to_string()))?;
        scope.push(name.normalized().to_string());
    }
    scope.sort();
    scope.dedup();
    if let Some(d) = request.description {
        palisade_dist::check_text("token description", d).map_err(|e| invalid(e.to_string()))?;
    }
    if request.expires_in.is_some_and(|d| d.is_zero() || d > MAX_LIFETIME) {
        return Err(invalid("a token's lifetime must be positive and at most ten years"));
    }
    let expires_at = request.expires_in.map(|d| now_micros().saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    let t = crate::tokens::generate();
    let scope = (!scope.is_empty()).then_some(&scope[..]);
    let acts = (!actions.is_empty()).then_some(&actions[..]);
    let id = core.db.create_token(Some(user.id), None, &t.hash, &t.hint, scope, acts, request.description, expires_at).await?;
    let via = if actor.user_id.is_some() { "api" } else { "cli" };
    let details = json!({ "token_id": id, "projects": scope, "actions": acts, "via": via });
    record(core, "token_created", &actor.name, Some(user.id), None, &actor.origin, details).await;
    crate::mail::notify(
        &core.mailer,
        user,
        "API token created",
        &format!("An API token ({}…, {}) was created for your account.", t.hint, request.description.unwrap_or("no description")),
    )
    .await;
    Ok((id, t.secret))
}

/// Revokes token `id`. With `owner`, only a token of that user (anything else is not found).
pub async fn revoke_token(core: &Core, actor: &Actor, id: i64, owner: Option<i64>, reason: &str) -> Result<()> {
    let token = core.db.token_by_id(id).await?.filter(|t| owner.is_none() || t.user_id == owner);
    let Some(token) = token else { return Err(not_found(format!("token {id} not found"))) };
    if token.revoked_at.is_some() {
        return Err(invalid(format!("token {id} is already revoked")));
    }
    core.db.revoke_token(id, reason).await?;
    record(core, "token_revoked", &actor.name, token.user_id, None, &actor.origin, json!({ "token_id": id })).await;
    Ok(())
}

/// Parses a lifetime such as `90s`, `15m`, `12h`, `30d`, `2w` or `1w 3d` (jiff's friendly
/// format, days and weeks taken as 24 hours and 7 days): positive, at most ten years.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |why: &str| invalid(format!("invalid duration {text:?}: {why}"));
    let span: jiff::Span = text.trim().parse().map_err(|_| bad("expected a number and a unit, such as 30d, 12h or 2w"))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad("use seconds, minutes, hours, days or weeks (months and years vary in length)"))?;
    let duration = Duration::try_from(signed).map_err(|_| bad("it must be positive"))?;
    if duration.is_zero() {
        return Err(bad("it must be positive"));
    }
    if duration > MAX_LIFETIME {
        return Err(bad("at most ten years"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_duration("1w 3d").unwrap(), Duration::from_secs(10 * 86_400));
        for bad in ["", "d", "30", "30y", "2mo", "-1d", "0d", "4000d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
