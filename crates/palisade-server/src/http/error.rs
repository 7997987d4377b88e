//! One error type for every handler. The body is plain text, because that is what twine and pip
//! show their users; the same text goes into the HTTP reason phrase, which is what older twine
//! versions print. A 5xx never carries detail: that is logged once, with the request's id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}
pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}
pub fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, message)
}
/// 429 with `Retry-After`.
pub fn too_many(retry: std::time::Duration) -> ApiError {
    // Rounded up: a client that waits exactly this long must not find the lockout still running.
    let secs = (retry.as_secs() + u64::from(retry.subsec_nanos() > 0)).max(1);
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("too many failed attempts; try again in {secs} seconds"))
    }
}

pub fn too_large(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
}

/// Logs `err` and returns a 500 whose body says nothing about it.
pub fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "internal error");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error; the details are in the server log")
}

impl From<palisade_store::StoreError> for ApiError {
    fn from(e: palisade_store::StoreError) -> Self {
        match e {
            palisade_store::StoreError::NotFound(what) => not_found(format!("{what} not found")),
            palisade_store::StoreError::Exists(what) => ApiError::new(StatusCode::CONFLICT, format!("{what} already exists")),
            // A rule the store checked inside its transaction (the caller usually checked it
            // first, for a better message; the store's check is what makes it hold under races).
            palisade_store::StoreError::Conflict(msg) => match msg.strip_prefix("forbidden: ") {
                Some(m) => forbidden(m.to_string()),
                None => bad_request(msg),
            },
            other => internal(other),
        }
    }
}

impl From<palisade_core::Error> for ApiError {
    fn from(e: palisade_core::Error) -> Self {
        use palisade_core::Error as E;
        match e {
            E::Invalid(m) => bad_request(m),
            E::Unauthenticated(m) => unauthorized(m),
            E::Forbidden(m) => forbidden(m),
            E::NotFound(m) => not_found(m),
            E::Exists(m) => ApiError::new(StatusCode::CONFLICT, m),
            E::TooMany(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, m),
            E::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            E::BadGateway(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            E::Internal(e) => internal(format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.message.clone();
        body.push('\n');
        let mut resp = (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], body).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"palisade\""));
        }
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason_phrase(&self.message).into_bytes()) {
            resp.extensions_mut().insert(reason);
        }
        resp
    }
}

/// A reason phrase must be visible ASCII on one line; keep it short.
fn reason_phrase(message: &str) -> String {
    let mut out: String = message.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' }).take(300).collect();
    if out.trim().is_empty() {
        out = "Error".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_phrases_are_safe() {
        assert_eq!(reason_phrase("File already exists\r\nX-Evil: 1"), "File already exists  X-Evil: 1");
        assert_eq!(reason_phrase("é"), "Error");
        assert_eq!(reason_phrase(&"a".repeat(1000)).len(), 300);
    }
}
