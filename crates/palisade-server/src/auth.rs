//! Who is calling: HTTP Basic with `__token__` and an API token, as PyPI and twine do.

use axum::http::HeaderMap;
use base64::Engine;
use palisade_store::{Db, Token, now_micros};

use crate::error::{ApiResult, forbidden, unauthorized};
use crate::tokens;

/// An authenticated caller: a user acting through a token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token_id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub is_admin: bool,
    /// Normalized project names the token is limited to; `None` is user-wide.
    pub scope: Option<Vec<String>>,
}

impl Principal {
    pub fn may_touch(&self, normalized: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.iter().any(|p| p == normalized))
    }
}

/// Reads the token from `Authorization: Basic` and checks it. Missing credentials are a 401
/// (so clients prompt); anything wrong with presented credentials is a 403 that does not say
/// which part was wrong beyond what the caller already knows.
pub async fn authenticate(db: &Db, headers: &HeaderMap) -> ApiResult<Principal> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(unauthorized("authentication required: upload with username __token__ and an API token as the password"));
    };
    let value = value.to_str().map_err(|_| forbidden("malformed Authorization header"))?;
    // The review API also takes `Authorization: Bearer <token>`.
    if let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
        return check_token(db, token.trim()).await;
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

async fn check_token(db: &Db, secret: &str) -> ApiResult<Principal> {
    if !tokens::well_formed(secret) {
        return Err(forbidden("invalid API token: it is not a Palisade token (expected pal_ followed by 38 letters and digits)"));
    }
    let token: Token = db
        .token_by_hash(&tokens::hash(secret))
        .await
        .map_err(crate::error::internal)?
        .ok_or_else(|| forbidden("invalid or non-existent API token"))?;
    if token.revoked_at.is_some() {
        return Err(forbidden("this API token has been revoked"));
    }
    if token.expires_at.is_some_and(|e| e <= now_micros()) {
        return Err(forbidden("this API token has expired"));
    }
    Ok(Principal {
        token_id: token.id,
        user_id: token.user_id,
        user_name: token.user_name.clone(),
        is_admin: token.user_is_admin,
        scope: token.project_scope(),
    })
}
