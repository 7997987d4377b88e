//! The stylesheet and the one script (WebAuthn ceremonies), compiled into the binary and served
//! with a long cache lifetime: pages link them with their digest in the query, so a new build's
//! files are new URLs.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const STYLESHEET: &str = "/static/palisade.css";
pub const WEBAUTHN_JS: &str = "/static/webauthn.js";
const CSS: &str = include_str!("../../assets/palisade.css");
const JS: &str = include_str!("../../assets/webauthn.js");

/// A short digest of the stylesheet and script together.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| palisade_dist::sha256_hex(format!("{CSS}\0{JS}").as_bytes())[..12].to_string())
}

fn immutable(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

pub async fn stylesheet() -> Response {
    immutable(CSS, "text/css; charset=utf-8")
}

pub async fn webauthn_js() -> Response {
    immutable(JS, "text/javascript; charset=utf-8")
}
