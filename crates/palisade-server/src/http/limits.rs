//! Request-level limits against hostile clients: the size and arrival time of every request body
//! except the upload's, and, behind a proxy, requests in flight per forwarded client address.
//! The connection-level limits (header and idle time-outs, connection caps) are in
//! [`crate::http::listener`].
//!
//! A body is read here, before the handler runs, into one buffer of at most the route's limit:
//! a declared `Content-Length` above the limit is refused before a byte of the body is read, and
//! a chunked body is refused as soon as it passes the limit. The whole body must arrive within
//! `http.body_timeout_secs` of the request's head, however it trickles in. The upload routes
//! stream their body to disk with their own limits (`max_upload_bytes`, an idle time-out per
//! chunk; see upload.rs).

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::body::Body as _;

use crate::AppState;
use crate::http::auth::Client;
use crate::http::body::JSON_BODY_LIMIT;
use crate::http::error::{ApiError, bad_request, too_large};
use crate::http::listener::ClientKey;

/// The body limit of leaked-token reports: a partner sends a JSON array of matches of about
/// 250 bytes each, so about 500 matches per report.
pub const DISCLOSURE_BODY_LIMIT: usize = 128 * 1024;

/// The most a route's body may hold, or `None` for the routes that stream their body with their
/// own limits (the upload routes).
pub fn body_limit(method: &Method, route: &str) -> Option<usize> {
    match route {
        "/legacy/" | "/legacy" | "/" if method == Method::POST => None,
        "/_/secrets/disclose-token" => Some(DISCLOSURE_BODY_LIMIT),
        _ => Some(JSON_BODY_LIMIT),
    }
}

fn kib(bytes: usize) -> String {
    format!("{} KiB", bytes / 1024)
}

/// Middleware: reads the body within the route's size limit and `http.body_timeout_secs`, then
/// hands it to the handler whole.
pub async fn bound_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
    let Some(limit) = body_limit(request.method(), &route) else {
        return next.run(request).await;
    };
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let declared = declared_length(request.headers());
    if let Some(declared) = declared
        && declared > limit as u64
    {
        return closing(too_large(format!(
            "the request body is {declared} bytes; {} {} accepts at most {}",
            request.method(),
            request.uri().path(),
            kib(limit)
        )));
    }
    let timeout = state.config.http.body_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let (parts, mut body) = request.into_parts();
    // A declared length (at most the limit here) sizes the buffer exactly; growing it by doubling
    // would hold up to twice the body.
    let mut buffer = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return closing(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {} seconds", timeout.as_secs()),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return closing(bad_request(format!("the request body could not be read: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue }; // trailers carry nothing Palisade reads
        if buffer.len() + data.len() > limit {
            return closing(too_large(format!(
                "the request body is larger than {}, the most {} {} accepts",
                kib(limit),
                parts.method,
                parts.uri.path()
            )));
        }
        buffer.extend_from_slice(&data);
    }
    next.run(Request::from_parts(parts, Body::from(buffer.freeze()))).await
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The body was not read to its end, so the connection cannot carry another request.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Middleware, behind a proxy only (`client_ip_header`): caps the requests in flight per
/// forwarded client address at `http.max_connections_per_client`. Directly on the network the
/// listener caps connections per address instead, which bounds requests the same way (HTTP/1.1
/// carries one request at a time).
pub async fn cap_per_client(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(per_client) = state.per_client.clone() else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let client = match Client::from_request_parts(&mut parts, &state).await {
        Ok(c) => c,
        Err(never) => match never {},
    };
    let key = client.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()).map(ClientKey::of);
    let request = Request::from_parts(parts, body);
    let Some(key) = key else {
        return next.run(request).await;
    };
    let Some(_slot) = per_client.acquire(key) else {
        state.metrics.connection_refused("max_connections_per_client");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many requests in flight from your address (the limit is {}); wait for some to finish", per_client.max()),
        )
        .into_response();
    };
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_but_the_upload_has_a_small_body_limit() {
        let check =
            |method: Method, route: &str, expected: Option<usize>| assert_eq!(body_limit(&method, route), expected, "{method} {route}");
        check(Method::POST, "/legacy/", None);
        check(Method::POST, "/legacy", None);
        check(Method::POST, "/", None);
        check(Method::GET, "/", Some(JSON_BODY_LIMIT));
        check(Method::POST, "/api/login", Some(JSON_BODY_LIMIT));
        check(Method::POST, "/_/oidc/mint-token", Some(JSON_BODY_LIMIT));
        check(Method::PUT, "/api/projects/{project}/roles/{user}", Some(JSON_BODY_LIMIT));
        check(Method::POST, "/_/secrets/disclose-token", Some(DISCLOSURE_BODY_LIMIT));
        check(Method::POST, "", Some(JSON_BODY_LIMIT));
    }
}
