//! Who is looking at a page, as the browser says it: the login session in a cookie, and the
//! checks every form that changes something passes (CSRF).
//!
//! The session cookie `__Host-palisade_session` holds the same secret as an API login session
//! (`palsess_...`): the pages call the account API's own handlers with it ([`Visitor::caller`]),
//! so the rules, rate limits, events and mail are the API's. The cookie is `Secure` (browsers
//! keep secure cookies on `http://localhost` too), `HttpOnly`, `SameSite=Strict`, `Path=/`, and
//! the `__Host-` prefix makes the browser refuse it from any other host or path. A login makes a
//! new session (the id rotates); a second factor finishes it into another.
//!
//! Every state-changing form carries a CSRF token, checked before anything is done: signed in,
//! a digest of the session secret; not signed in (login), a random value also kept in the
//! `__Host-palisade_csrf` cookie (double submit). A request whose `Origin` is another site, or
//! that the browser marks `Sec-Fetch-Site: cross-site`, is refused first.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use palisade_store::User;

use crate::AppState;
use crate::http::auth::{Caller, Client, Principal, SESSION_PREFIX, check_session};
use crate::http::error::{ApiError, ApiResult, forbidden};
use crate::http::throttle::count_invalid_secret;

pub const SESSION: &str = "__Host-palisade_session";
/// The login ticket between the password and the second factor (five minutes).
pub const LOGIN: &str = "__Host-palisade_login";
/// The double-submit value of forms shown before login.
pub const CSRF: &str = "__Host-palisade_csrf";

/// The visitor: their address, their cookies, and whether the request came from this site.
pub struct Visitor {
    pub client: Client,
    cookies: Vec<(String, String)>,
    cross_site: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let client = Client::from_request_parts(parts, state).await?;
        Ok(Visitor { client, cookies: cookies(&parts.headers), cross_site: cross_site(&parts.headers, state) })
    }
}

/// The cookies of a request (every `Cookie` header), names and values as sent.
fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('=').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .take(64)
        .collect()
}

/// Whether the browser says the request comes from another site: `Sec-Fetch-Site: cross-site`,
/// or an `Origin` that is neither this instance's public URL nor the host the request names.
fn cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if origin == "null" {
        return true;
    }
    let origin = origin.trim_end_matches('/');
    let own = state.base_url();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let same = origin.eq_ignore_ascii_case(own.trim_end_matches('/'))
        || origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).is_some_and(|o| o.eq_ignore_ascii_case(host));
    !same
}

impl Visitor {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty() && v.len() <= 256)
    }

    /// The session secret in the cookie, if it is one (an API token there is ignored).
    fn session_secret(&self) -> Option<&str> {
        self.cookie(SESSION).filter(|s| s.starts_with(SESSION_PREFIX))
    }

    /// The signed-in user, if the session cookie names an active session. A cookie naming no
    /// session (or an ended one) counts as a wrong guess of a secret against the visitor's
    /// address, as the API's credentials do.
    pub async fn user(&self, state: &AppState) -> Option<(Principal, User)> {
        let secret = self.session_secret()?;
        let p = match check_session(&state.db, secret).await {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, palisade_core::Error::Unauthenticated(_)) {
                    let _ = count_invalid_secret(state, &self.client);
                }
                return None;
            }
        };
        let user = state.db.user_by_id(p.user_id?).await.ok()?;
        Some((p, user))
    }

    /// The visitor as the account API sees a caller: with the session's secret, if any.
    pub fn caller(&self) -> Caller {
        Caller::with_session(self.client.clone(), self.session_secret())
    }

    /// The CSRF token a signed-in visitor's forms carry.
    pub fn csrf_token(&self) -> Option<String> {
        self.session_secret().map(session_csrf)
    }

    /// Refuses a state-changing request from another site, or without the form's token.
    pub fn check_form(&self, sent: Option<&str>) -> ApiResult<()> {
        if self.cross_site {
            return Err(forbidden("this form was sent from another site; refused"));
        }
        let expected = match self.session_secret() {
            Some(secret) => session_csrf(secret),
            None => self.cookie(CSRF).map(str::to_string).ok_or_else(csrf_missing)?,
        };
        match sent {
            Some(s) if palisade_auth::ct_eq(s.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(csrf_missing()),
        }
    }

    /// Like [`check_form`](Self::check_form) for the forms shown before login (double submit).
    pub fn check_anonymous_form(&self, sent: Option<&str>) -> ApiResult<()> {
        if self.cross_site {
            return Err(forbidden("this form was sent from another site; refused"));
        }
        let expected = self.cookie(CSRF).ok_or_else(csrf_missing)?;
        match sent {
            Some(s) if palisade_auth::ct_eq(s.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(csrf_missing()),
        }
    }
}

fn csrf_missing() -> ApiError {
    forbidden("the form's security token is missing or stale: reload the page and send it again")
}

/// A signed-in visitor's CSRF token: a digest of the session secret (which the page never shows).
fn session_csrf(secret: &str) -> String {
    palisade_dist::sha256_hex(format!("palisade web csrf\0{secret}").as_bytes())[..32].to_string()
}

/// A `Set-Cookie` value for one of the `__Host-` cookies; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("__Host-palisade_invalid=; Path=/; Secure; Max-Age=0"))
}

/// A fresh random value for the anonymous forms' cookie.
pub fn new_csrf() -> String {
    palisade_auth::random_token("", 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_flags_and_tokens() {
        let c = set_cookie(SESSION, "palsess_x", 3600);
        assert_eq!(c.to_str().unwrap(), "__Host-palisade_session=palsess_x; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600");
        assert_eq!(session_csrf("a"), session_csrf("a"));
        assert_ne!(session_csrf("a"), session_csrf("b"));
        assert_eq!(session_csrf("a").len(), 32);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; __Host-palisade_session=s; b"));
        assert_eq!(cookies(&h), vec![("a".to_string(), "1".to_string()), (SESSION.to_string(), "s".to_string())]);
    }
}
