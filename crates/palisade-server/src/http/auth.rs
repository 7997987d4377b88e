//! Who is calling, as HTTP says it: the caller's address, and the credential in `Authorization`
//! (an API token as HTTP Basic with `__token__`, as twine sends it, or `Bearer pal_...`; a login
//! session as `Bearer palsess_...`). What a credential may do is decided in
//! `palisade_core::access`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
pub use palisade_core::access::{
    Action, Credential, Origin, Principal, SESSION_PREFIX, authorize, check_policy, check_session, check_token, require_session,
};
use palisade_store::Db;

use crate::AppState;
use crate::http::error::{ApiResult, forbidden, unauthorized};

/// The caller's network address and user agent, for the event log and rate limits.
#[derive(Clone, Debug, Default)]
pub struct Client(pub Origin);

impl std::ops::Deref for Client {
    type Target = Origin;
    fn deref(&self) -> &Origin {
        &self.0
    }
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
        Ok(Client(Origin { addr, user_agent }))
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
