//! The stylesheet, compiled into the binary and served with a long cache lifetime: pages link it
//! with its digest in the query, so a new build's stylesheet is a new URL.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const STYLESHEET: &str = "/static/palisade.css";
const CSS: &str = include_str!("../../assets/palisade.css");

/// A short digest of the stylesheet.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| palisade_dist::sha256_hex(CSS.as_bytes())[..12].to_string())
}

pub async fn stylesheet() -> Response {
    let mut response = CSS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}
