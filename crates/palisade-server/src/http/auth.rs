//! Who is calling, as HTTP says it: the caller's address, and the credential in `Authorization`
//! (an API token as HTTP Basic with `__token__`, as twine sends it, or `Bearer pal_...`; a login
//! session as `Bearer palsess_...`; a trusted publisher's short-lived token like an API token).
//!
//! [`Caller`] is the one extractor every handler uses. It checks nothing until the handler says
//! what it needs ([`Caller::principal`], [`Caller::session`], [`Caller::on_project`] with an
//! [`Action`], [`Caller::admin`]), so public answers cost no database look-up even when a client
//! sends credentials everywhere, as pip does. What a credential may do is decided in
//! `palisade_core::access`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use base64::Engine;
pub use palisade_core::access::{
    Action, Credential, Principal, SESSION_PREFIX, authorize, check_policy, check_session, check_token, needs_reauth,
    require_phishing_resistant_for_critical, require_recent_login, require_session,
};
use palisade_store::{Db, Project, User};

use crate::AppState;
pub use crate::http::client::Client;
use crate::http::error::{ApiResult, forbidden, not_found, unauthorized};
use crate::http::throttle::invalid_secret;

/// The caller: their address, and the credential they presented, checked on demand.
pub struct Caller {
    pub client: Client,
    authorization: Option<HeaderValue>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let client = Client::from_request_parts(parts, state).await?;
        Ok(Caller { client, authorization: parts.headers.get(header::AUTHORIZATION).cloned() })
    }
}

impl Caller {
    /// A caller presenting a login session's secret (the web interface's session cookie), as
    /// if it were sent in `Authorization`; anything but a session secret presents nothing.
    pub fn with_session(client: Client, secret: Option<&str>) -> Self {
        let authorization =
            secret.filter(|s| s.starts_with(SESSION_PREFIX)).and_then(|s| HeaderValue::from_str(&format!("Bearer {s}")).ok());
        Caller { client, authorization }
    }

    /// Any valid credential: 401 without one (so clients prompt), 403 for a bad one, which is
    /// also counted against the client's address (429 once it has presented too many).
    pub async fn principal(&self, state: &AppState) -> ApiResult<Principal> {
        let Some(value) = &self.authorization else {
            return Err(unauthorized("authentication required: upload with username __token__ and an API token as the password"));
        };
        check(&state.db, value).await.map_err(|e| {
            // A refused credential counts as a guess; a failure of the server's own does not.
            if e.status == axum::http::StatusCode::UNAUTHORIZED || e.status == axum::http::StatusCode::FORBIDDEN {
                invalid_secret(state, &self.client, e)
            } else {
                e
            }
        })
    }

    /// A login session and its user: account management is not delegated to API tokens.
    pub async fn session(&self, state: &AppState) -> ApiResult<(Principal, User)> {
        let p = self.principal(state).await?;
        let uid = require_session(&p)?;
        let user = state.db.user_by_id(uid).await?;
        Ok((p, user))
    }

    /// A caller allowed to perform `action` on the existing project `name` (any spelling).
    pub async fn on_project(&self, state: &AppState, name: &str, action: Action) -> ApiResult<(Principal, Project)> {
        let p = self.principal(state).await?;
        let normalized = palisade_dist::normalize(name);
        let project = state.db.project(&normalized).await?;
        authorize(state, &p, action, project.as_ref(), &normalized).await?;
        let project = project.ok_or_else(|| not_found(format!("project {normalized:?} not found")))?;
        Ok((p, project))
    }

    /// An administrator, with a credential that allows administration (a session, or an
    /// unrestricted token).
    pub async fn admin(&self, state: &AppState) -> ApiResult<Principal> {
        let p = self.principal(state).await?;
        if !p.is_admin {
            return Err(forbidden("only administrators may do this"));
        }
        authorize(state, &p, Action::Admin, None, "").await?;
        Ok(p)
    }
}

/// Checks the credential in an `Authorization` value. Anything wrong with it is a 403 that does
/// not say which part was wrong beyond what the caller already knows (an ended session is a 401,
/// so the client logs in again).
async fn check(db: &Db, value: &HeaderValue) -> ApiResult<Principal> {
    let value = value.to_str().map_err(|_| forbidden("malformed Authorization header"))?;
    if let Some(secret) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        let secret = secret.trim();
        if secret.starts_with(SESSION_PREFIX) {
            return Ok(check_session(db, secret).await?);
        }
        return Ok(check_token(db, secret).await?);
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
    Ok(check_token(db, secret).await?)
}
