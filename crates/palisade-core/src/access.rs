//! Who is calling, and what they may do. The protocol layers find the secret (in an HTTP header,
//! say) and hand it to [`check_token`] or [`check_session`]; everything after that is here.
//!
//! Credentials: an API token (HTTP Basic with `__token__`, as twine sends it, or `Authorization:
//! Bearer pal_...`), a login session (`Authorization: Bearer palsess_...`), or the short-lived
//! token a trusted publisher got from the OIDC exchange (an API token bound to the publishers
//! that matched the CI job). Uploads take tokens only: a session may manage, never publish.
//!
//! [`authorize`] is the one place that decides whether a principal may perform an [`Action`] on
//! a project: the instance's two-factor and verified-email policy, the token's action and project
//! scopes, then the role. Every mutating endpoint calls it.

use palisade_store::{Db, Project, Role, Token, now_micros};

use crate::Core;
use crate::error::{Error, Result, forbidden, internal, unauthenticated};
use crate::tokens;

/// Session secrets: `palsess_` and 43 URL-safe base64 characters (256 bits).
pub const SESSION_PREFIX: &str = "palsess_";

/// How the caller authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user's API token, possibly limited to some actions.
    Token { id: i64, actions: Option<Vec<String>> },
    /// A login session (password and second factor).
    Session { id: i64 },
    /// A trusted publisher's short-lived upload token. `publisher_id` is the first of the
    /// publishers it covers; an upload is bound to the one registered for its project.
    Publisher { token_id: i64, publisher_id: i64 },
    /// The operator at the machine, running a CLI command that uploads on a user's behalf
    /// (`palisade import`). Uploads only; the user's roles still decide which projects.
    Console,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// `None` for a trusted publisher.
    pub user_id: Option<i64>,
    /// The user's name, or `publisher:<id>`: what the logs and the event log call the actor.
    pub user_name: String,
    pub is_admin: bool,
    pub has_2fa: bool,
    pub email_verified: bool,
    /// Phishing-resistant: a session logged in with a WebAuthn credential, or a token whose
    /// user holds one. The critical-project policy asks for it.
    pub phishing_resistant: bool,
    /// For a session: when its login (or the last re-authentication) was made.
    pub authenticated_at: Option<i64>,
    /// Normalized project names the credential is limited to; `None` is user-wide.
    pub scope: Option<Vec<String>>,
    pub credential: Credential,
}

/// What a principal wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Upload files (maintainers and owners).
    Upload,
    /// Yank and un-yank releases (maintainers and owners).
    Yank,
    /// Manage roles and trusted publishers, remove files, read the project's event log (owners).
    Manage,
    /// Review quarantine and other instance administration (administrators).
    Admin,
    /// Report projects (any user; a token needs this action).
    Report,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::Yank => "yank",
            Action::Manage => "manage",
            Action::Admin => "admin",
            Action::Report => "report",
        }
    }

    /// The token action scopes a user may grant.
    pub const SCOPES: [&'static str; 4] = ["upload", "yank", "manage", "report"];
}

impl Principal {
    pub fn may_touch(&self, normalized: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.iter().any(|p| p == normalized))
    }

    pub fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }

    pub fn token_id(&self) -> Option<i64> {
        match self.credential {
            Credential::Token { id, .. } => Some(id),
            Credential::Publisher { token_id, .. } => Some(token_id),
            Credential::Session { .. } | Credential::Console => None,
        }
    }

    /// Whether the credential's action scope includes `action` (roles are checked apart).
    pub fn allows(&self, action: Action) -> bool {
        self.credential_allows(action)
    }

    /// Whether the credential's action scope includes `action`.
    fn credential_allows(&self, action: Action) -> bool {
        match &self.credential {
            // A session manages accounts and projects; publishing takes a token.
            Credential::Session { .. } => action != Action::Upload,
            Credential::Publisher { .. } | Credential::Console => action == Action::Upload,
            Credential::Token { actions, .. } => match action {
                // Administration needs an unrestricted token (or a session) of an administrator.
                Action::Admin => actions.is_none() && self.scope.is_none(),
                _ => actions.as_ref().is_none_or(|a| a.iter().any(|x| x == action.as_str())),
            },
        }
    }
}

pub async fn check_token(db: &Db, secret: &str) -> Result<Principal> {
    if !tokens::well_formed(secret) {
        return Err(forbidden("invalid API token: it is not a Palisade token (expected pal_ followed by 38 letters and digits)"));
    }
    let token: Token =
        db.token_by_hash(&tokens::hash(secret)).await.map_err(internal)?.ok_or_else(|| forbidden("invalid or non-existent API token"))?;
    if token.revoked_at.is_some() {
        return Err(forbidden("this API token has been revoked"));
    }
    if token.expires_at.is_some_and(|e| e <= now_micros()) {
        return Err(forbidden("this API token has expired"));
    }
    if token.user_disabled {
        return Err(forbidden("this account is disabled"));
    }
    let credential = match token.publisher_id {
        Some(publisher_id) => Credential::Publisher { token_id: token.id, publisher_id },
        None => Credential::Token { id: token.id, actions: token.action_scope() },
    };
    Ok(Principal {
        user_id: token.user_id,
        user_name: token.user_name.clone(),
        is_admin: token.user_is_admin,
        has_2fa: token.user_has_2fa,
        email_verified: token.user_email_verified,
        phishing_resistant: token.user_has_webauthn,
        authenticated_at: None,
        scope: token.project_scope(),
        credential,
    })
}

pub async fn check_session(db: &Db, secret: &str) -> Result<Principal> {
    let session = db
        .session_by_hash(&palisade_auth::hash_secret(secret))
        .await
        .map_err(internal)?
        .ok_or_else(|| unauthenticated("the session has expired or was ended; log in again"))?;
    if session.stage != "active" {
        return Err(unauthenticated("the login is not complete: send the second factor to /api/login/second-factor"));
    }
    let user = db.user_by_id(session.user_id).await?;
    if user.disabled_at.is_some() {
        return Err(forbidden("this account is disabled"));
    }
    // Seen-at is informational; a lost update is harmless.
    if now_micros() - session.last_seen_at > 60_000_000 {
        let db = db.clone();
        tokio::spawn(async move {
            let _ = db.touch_session(session.id).await;
        });
    }
    Ok(Principal {
        user_id: Some(user.id),
        user_name: user.name.clone(),
        is_admin: user.is_admin,
        has_2fa: user.has_2fa,
        email_verified: user.email_verified(),
        phishing_resistant: session.phishing_resistant(),
        authenticated_at: Some(session.created_at),
        scope: None,
        credential: Credential::Session { id: session.id },
    })
}

/// The caller's network address and user agent, for the event log and rate limits.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub addr: Option<String>,
    pub user_agent: Option<String>,
}

/// Requires a login session (account management is not delegated to API tokens).
pub fn require_session(p: &Principal) -> Result<i64> {
    match (p.is_session(), p.user_id) {
        (true, Some(uid)) => Ok(uid),
        _ => Err(forbidden("this endpoint needs a login session (POST /api/login), not an API token")),
    }
}

/// Whether a session's login is older than `accounts.reauth_secs`, too old for a sensitive
/// change (adding an owner or a trusted publisher, creating an API token). Tokens are not
/// sessions: they carry their own scopes and are not asked.
pub fn needs_reauth(core: &Core, p: &Principal) -> bool {
    let window = i64::try_from(core.config.accounts.reauth_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    p.is_session() && p.authenticated_at.is_none_or(|at| now_micros().saturating_sub(at) > window)
}

/// Refuses a sensitive change through a session whose login is too old ([`needs_reauth`]).
pub fn require_recent_login(core: &Core, p: &Principal, what: &str) -> Result<()> {
    if needs_reauth(core, p) {
        return Err(forbidden(format!(
            "{what} needs a recent login: confirm it is you (POST /api/account/reauth with your password) and send it again"
        )));
    }
    Ok(())
}

/// The instance policy for anyone who publishes or administers: a confirmed second factor and a
/// verified email address.
pub fn check_policy(core: &Core, p: &Principal, what: &str) -> Result<()> {
    // A trusted publisher has no account; the operator at the console vouches for the user, as
    // when creating an account with a verified address.
    if matches!(p.credential, Credential::Publisher { .. } | Credential::Console) {
        return Ok(());
    }
    let policy = &core.config.accounts;
    if policy.require_2fa && !p.has_2fa {
        return Err(forbidden(format!(
            "two-factor authentication is required to {what}: user {:?} has none (enrol with POST /api/account/2fa/totp)",
            p.user_name
        )));
    }
    if policy.require_verified_email && !p.email_verified {
        return Err(forbidden(format!("a verified email address is required to {what}: user {:?} has none", p.user_name)));
    }
    Ok(())
}

/// Decides whether `p` may perform `action` on `project` (`None` for a project that does not
/// exist yet, where only uploading, which creates it, makes sense).
pub async fn authorize(core: &Core, p: &Principal, action: Action, project: Option<&Project>, name: &str) -> Result<()> {
    check_policy(core, p, action_phrase(action))?;
    if !p.credential_allows(action) {
        return Err(forbidden(format!("this credential does not allow the {:?} action", action.as_str())));
    }
    if action == Action::Admin {
        return if p.is_admin { Ok(()) } else { Err(forbidden("only administrators may do this")) };
    }
    if !p.may_touch(name) {
        return Err(forbidden(format!("this API token is not valid for project {name:?}")));
    }
    if let Some(project) = project
        && action != Action::Report
    {
        check_critical(core, p, project)?;
    }
    if p.is_admin {
        return Ok(());
    }
    if let Credential::Publisher { .. } = p.credential {
        return match publisher_for(core, p, project, name).await? {
            Some(_) => Ok(()),
            None if project.is_some() => Err(forbidden(format!("no trusted publisher of this token is registered for project {name:?}"))),
            None => Err(forbidden(format!(
                "this trusted publisher token may not create project {name:?}: register a pending publisher for it first"
            ))),
        };
    }
    let Some(project) = project else {
        // Creating a project by uploading to it: users may.
        return if action == Action::Upload { Ok(()) } else { Err(not_found_project(name)) };
    };
    let uid = p.user_id.unwrap_or_default();
    let role = core.db.role(project.id, uid).await.map_err(internal)?;
    let ok = match action {
        Action::Upload | Action::Yank => role.is_some(),
        Action::Manage => role == Some(Role::Owner),
        // Reporting takes no role (see `sharing::reports`); administration is decided above.
        Action::Report => true,
        Action::Admin => false,
    };
    if ok {
        Ok(())
    } else {
        let need = if action == Action::Manage { "an owner" } else { "an owner or maintainer" };
        Err(forbidden(format!("user {:?} is not {need} of project {name:?}", p.user_name)))
    }
}

/// The critical-project policy (`accounts.critical_require_webauthn`): a critical project is
/// changed only by users holding a WebAuthn credential, and through a session only one logged
/// in with it. Trusted publishers and the console are not users logging in, so it does not
/// apply to them.
fn check_critical(core: &Core, p: &Principal, project: &Project) -> Result<()> {
    if !project.critical || !core.config.accounts.critical_require_webauthn || p.phishing_resistant {
        return Ok(());
    }
    match p.credential {
        Credential::Session { .. } => Err(forbidden(format!(
            "project {:?} is critical: changing it needs a login with a security key or passkey (WebAuthn); log in again with one",
            project.normalized
        ))),
        Credential::Token { .. } => Err(forbidden(format!(
            "project {:?} is critical: its owners and maintainers need a security key or passkey (WebAuthn) on their account, and user {:?} has none",
            project.normalized, p.user_name
        ))),
        Credential::Publisher { .. } | Credential::Console => Ok(()),
    }
}

/// The critical-project policy at the account's doors: a user with a role on a critical project
/// creates API tokens, and adds a WebAuthn credential to one that has some, only through a session
/// logged in with WebAuthn; otherwise a phished password and TOTP code could mint a token, or
/// register the attacker's own passkey, and so get past [`check_critical`].
pub async fn require_phishing_resistant_for_critical(core: &Core, p: &Principal, user_id: i64, what: &str) -> Result<()> {
    if !core.config.accounts.critical_require_webauthn || p.phishing_resistant || !p.is_session() {
        return Ok(());
    }
    if core.db.has_critical_role(user_id).await.map_err(internal)? {
        return Err(forbidden(format!(
            "{what} needs a login with a security key or passkey: you have a role on a critical project; log in again with one"
        )));
    }
    Ok(())
}

/// For a trusted publisher's token: the publisher through which it may upload to `name`, one
/// registered for the existing `project`, or for a project that does not exist yet a live
/// pending one for the name. `None` for other credentials, or when there is no such publisher.
pub async fn publisher_for(core: &Core, p: &Principal, project: Option<&Project>, name: &str) -> Result<Option<palisade_store::Publisher>> {
    let Credential::Publisher { token_id, .. } = p.credential else { return Ok(None) };
    let found = core.db.publisher_for_token(token_id, name).await.map_err(internal)?;
    Ok(found.filter(|pb| match project {
        Some(project) => pb.project_id == Some(project.id),
        None => pb.pending,
    }))
}

fn action_phrase(action: Action) -> &'static str {
    match action {
        Action::Upload => "upload",
        Action::Yank => "yank releases",
        Action::Manage => "manage projects",
        Action::Admin => "administer this instance",
        Action::Report => "report projects",
    }
}

fn not_found_project(name: &str) -> Error {
    crate::error::not_found(format!("project {name:?} not found"))
}
