//! The caller's address (the TCP peer, or behind a proxy the address it forwards) and user agent.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use palisade_core::access::Origin;

use crate::AppState;

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
