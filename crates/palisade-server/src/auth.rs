//! Who is calling, and what they may do.
//!
//! Credentials: an API token (HTTP Basic with `__token__`, as twine sends it, or `Authorization:
//! Bearer pal_...`), a login session (`Authorization: Bearer palsess_...`), or the short-lived
//! token a trusted publisher got from the OIDC exchange (an API token bound to the publishers
//! that matched the CI job). Uploads take tokens only: a session may manage, never publish.
//!
//! [`authorize`] is the one place that decides whether a principal may perform an [`Action`] on
//! a project: the instance's two-factor and verified-email policy, the token's action and project
//! scopes, then the role. Every mutating endpoint calls it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use palisade_store::{Db, Project, Role, Token, now_micros};

use crate::AppState;
use crate::error::{ApiError, ApiResult, forbidden, internal, unauthorized};
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
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upload => "upload",
            Action::Yank => "yank",
            Action::Manage => "manage",
            Action::Admin => "admin",
        }
    }

    /// The token action scopes a user may grant.
    pub const SCOPES: [&'static str; 3] = ["upload", "yank", "manage"];
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
            Credential::Session { .. } => None,
        }
    }

    /// Whether the credential's action scope includes `action`.
    fn credential_allows(&self, action: Action) -> bool {
        match &self.credential {
            // A session manages accounts and projects; publishing takes a token.
            Credential::Session { .. } => action != Action::Upload,
            Credential::Publisher { .. } => action == Action::Upload,
            Credential::Token { actions, .. } => match action {
                // Administration needs an unrestricted token (or a session) of an administrator.
                Action::Admin => actions.is_none() && self.scope.is_none(),
                _ => actions.as_ref().is_none_or(|a| a.iter().any(|x| x == action.as_str())),
            },
        }
    }
}

/// The caller's network address and user agent, for the event log and rate limits.
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub addr: Option<String>,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        // Behind a reverse proxy the peer is the proxy; the proxy appends the real client last.
        let forwarded = state.config.client_ip_header.as_deref().and_then(|h| {
            let value = parts.headers.get_all(h).iter().filter_map(|v| v.to_str().ok()).next_back()?;
            let last = value.rsplit(',').next()?.trim();
            last.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
        });
        let addr = forwarded.or(peer);
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect());
        Ok(Client { addr, user_agent })
    }
}

/// Reads the credential from `Authorization` and checks it. Missing credentials are a 401 (so
/// clients prompt); anything wrong with presented credentials is a 403 that does not say which
/// part was wrong beyond what the caller already knows.
pub async fn authenticate(db: &Db, headers: &HeaderMap) -> ApiResult<Principal> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(unauthorized("authentication required: upload with username __token__ and an API token as the password"));
    };
    let value = value.to_str().map_err(|_| forbidden("malformed Authorization header"))?;
    if let Some(secret) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        let secret = secret.trim();
        if secret.starts_with(SESSION_PREFIX) {
            return check_session(db, secret).await;
        }
        return check_token(db, secret).await;
    }
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Err(forbidden("unsupported authorization scheme: use HTTP Basic with username __token__"));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| forbidden("malformed Basic credentials"))?;
    let (user, secret) = decoded.split_once(':').ok_or_else(|| forbidden("malformed Basic credentials"))?;
    if user != "__token__" {
        return Err(forbidden("username/password authentication is not supported: use username __token__ and an API token"));
    }
    check_token(db, secret).await
}

/// Like [`authenticate`], but `None` when no credential was presented at all.
pub async fn optional(db: &Db, headers: &HeaderMap) -> ApiResult<Option<Principal>> {
    if headers.get(axum::http::header::AUTHORIZATION).is_none() {
        return Ok(None);
    }
    authenticate(db, headers).await.map(Some)
}

async fn check_token(db: &Db, secret: &str) -> ApiResult<Principal> {
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
        scope: token.project_scope(),
        credential,
    })
}

async fn check_session(db: &Db, secret: &str) -> ApiResult<Principal> {
    let session = db
        .session_by_hash(&palisade_auth::hash_secret(secret))
        .await
        .map_err(internal)?
        .ok_or_else(|| unauthorized("the session has expired or was ended; log in again"))?;
    if session.stage != "active" {
        return Err(unauthorized("the login is not complete: send the second factor to /api/login/second-factor"));
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
        scope: None,
        credential: Credential::Session { id: session.id },
    })
}

/// Requires a login session (account management is not delegated to API tokens).
pub fn require_session(p: &Principal) -> ApiResult<i64> {
    match (p.is_session(), p.user_id) {
        (true, Some(uid)) => Ok(uid),
        _ => Err(forbidden("this endpoint needs a login session (POST /api/login), not an API token")),
    }
}

/// The instance policy for anyone who publishes or administers: a confirmed second factor and a
/// verified email address.
pub fn check_policy(state: &AppState, p: &Principal, what: &str) -> ApiResult<()> {
    if matches!(p.credential, Credential::Publisher { .. }) {
        return Ok(());
    }
    let policy = &state.config.accounts;
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
pub async fn authorize(state: &AppState, p: &Principal, action: Action, project: Option<&Project>, name: &str) -> ApiResult<()> {
    check_policy(state, p, action_phrase(action))?;
    if !p.credential_allows(action) {
        return Err(forbidden(format!("this credential does not allow the {:?} action", action.as_str())));
    }
    if action == Action::Admin {
        return if p.is_admin { Ok(()) } else { Err(forbidden("only administrators may do this")) };
    }
    if !p.may_touch(name) {
        return Err(forbidden(format!("this API token is not valid for project {name:?}")));
    }
    if p.is_admin {
        return Ok(());
    }
    if let Credential::Publisher { .. } = p.credential {
        return match publisher_for(state, p, project, name).await? {
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
    let role = state.db.role(project.id, uid).await.map_err(internal)?;
    let ok = match action {
        Action::Upload | Action::Yank => role.is_some(),
        Action::Manage => role == Some(Role::Owner),
        Action::Admin => false,
    };
    if ok {
        Ok(())
    } else {
        let need = if action == Action::Manage { "an owner" } else { "an owner or maintainer" };
        Err(forbidden(format!("user {:?} is not {need} of project {name:?}", p.user_name)))
    }
}

/// For a trusted publisher's token: the publisher through which it may upload to `name`, one
/// registered for the existing `project`, or for a project that does not exist yet a live
/// pending one for the name. `None` for other credentials, or when there is no such publisher.
pub async fn publisher_for(
    state: &AppState,
    p: &Principal,
    project: Option<&Project>,
    name: &str,
) -> ApiResult<Option<palisade_store::Publisher>> {
    let Credential::Publisher { token_id, .. } = p.credential else { return Ok(None) };
    let found = state.db.publisher_for_token(token_id, name).await.map_err(internal)?;
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
    }
}

fn not_found_project(name: &str) -> ApiError {
    crate::error::not_found(format!("project {name:?} not found"))
}
