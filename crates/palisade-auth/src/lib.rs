//! Account-security primitives for Palisade: password hashing and policy, TOTP, recovery codes,
//! secret tokens, failure rate limiting, OIDC ID-token verification for trusted publishing,
//! signature checks for secret-scanning reports, and WebAuthn (security keys and passkeys).
//!
//! Everything here is a pure function of its arguments plus the operating system's randomness:
//! no database, no HTTP, no network, and no clock reads in verification (callers pass `now`).

pub mod disclose;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod recovery;
pub mod secret;
pub mod totp;
pub mod webauthn;

pub use disclose::{DisclosedToken, DisclosureError, parse_report, verify_report_signature};
pub use jsonwebtoken::jwk::JwkSet;
pub use oidc::{
    ClaimMismatch, OidcError, PublisherSpec, github_ids, match_publisher, peek_issuer, peek_kid, risky_trigger, verify_id_token,
};
pub use password::{PasswordError, WeakPassword, check_strength, hash_password, verify_dummy, verify_password};
pub use ratelimit::{GuessLimiter, GuessPolicy, RateLimiter};
pub use recovery::{new_recovery_codes, normalize_recovery_code};
pub use secret::{Secret, ct_eq, hash_secret, hmac_sha256, random_token};
pub use totp::{new_totp_secret, otpauth_uri, secret_base32, totp_code, verify_totp};
pub use webauthn::{Begun, KeyKind, Registered, RelyingParty, Verified, WebauthnError, new_user_handle};
