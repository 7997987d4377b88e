//! What every area of the HTTP API shares: the error type and its envelope, the credential
//! extractor, body limits by route, and the connection listener.

pub mod auth;
pub mod body;
pub mod client;
pub mod error;
pub mod limits;
pub mod listener;
pub mod throttle;
