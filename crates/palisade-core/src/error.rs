//! What can go wrong in an operation, by kind. The kinds are the ones a client can act on; the
//! HTTP layer turns each into a status, the CLI prints the message. An `Internal` error carries
//! its cause for the log, never for the client.

use palisade_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or credentials that have ended (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// What the request names does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// What the request creates exists already (HTTP 409).
    #[error("{0}")]
    Exists(String),
    /// The caller did this too often; it may try again later (HTTP 429).
    #[error("{0}")]
    TooMany(String),
    /// A part the operation needs is down (the scanner; HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// An upstream index failed or answered wrongly (the mirror; HTTP 502).
    #[error("{0}")]
    BadGateway(String),
    /// Anything else: a bug or a failing disk or database (HTTP 500).
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}
pub fn unauthenticated(message: impl Into<String>) -> Error {
    Error::Unauthenticated(message.into())
}
pub fn forbidden(message: impl Into<String>) -> Error {
    Error::Forbidden(message.into())
}
pub fn not_found(message: impl Into<String>) -> Error {
    Error::NotFound(message.into())
}
/// An unexpected failure; the cause is kept for the log.
pub fn internal(err: impl std::fmt::Display) -> Error {
    Error::Internal(anyhow::anyhow!("{err}"))
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(format!("{what} not found")),
            StoreError::Exists(what) => Error::Exists(format!("{what} already exists")),
            StoreError::Busy => Error::Unavailable(StoreError::Busy.to_string()),
            // A rule the store checked inside its transaction (the caller usually checked it
            // first, for a better message; the store's check is what makes it hold under races).
            StoreError::Conflict(msg) => match msg.strip_prefix("forbidden: ") {
                Some(m) => Error::Forbidden(m.to_string()),
                None => Error::Invalid(msg),
            },
            other => Error::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(e)
    }
}
