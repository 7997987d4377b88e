//! Rows as the rest of Palisade sees them.

use sqlx::any::{AnyTypeInfo, AnyTypeInfoKind};
use sqlx::{Any, FromRow};

/// A boolean as either engine answers it: PostgreSQL has booleans, SQLite answers 0 or 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flag(bool);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

impl sqlx::Type<Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <bool as sqlx::Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        matches!(ty.kind(), AnyTypeInfoKind::Bool) || ty.kind().is_integer()
    }
}

impl<'r> sqlx::Decode<'r, Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <bool as sqlx::Decode<Any>>::decode(value.clone()) {
            Ok(b) => Ok(Flag(b)),
            Err(_) => Ok(Flag(<i64 as sqlx::Decode<Any>>::decode(value)? != 0)),
        }
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "Flag")]
    pub is_admin: bool,
    pub created_at: i64,
    pub email: Option<String>,
    pub email_verified_at: Option<i64>,
    pub disabled_at: Option<i64>,
    /// Whether the user has at least one confirmed second factor.
    #[sqlx(try_from = "Flag")]
    pub has_2fa: bool,
    /// Whether a password is set (the hash itself is only read by `Db::password_hash`).
    #[sqlx(try_from = "Flag")]
    pub has_password: bool,
    /// Whether the user holds a WebAuthn credential (a security key or a passkey).
    #[sqlx(try_from = "Flag")]
    pub has_webauthn: bool,
}

impl User {
    pub fn email_verified(&self) -> bool {
        self.email.is_some() && self.email_verified_at.is_some()
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct Token {
    pub id: i64,
    /// The owning user; `None` for the short-lived tokens of a trusted publisher.
    pub user_id: Option<i64>,
    pub publisher_id: Option<i64>,
    /// The user's name, or `publisher:<id>` for publisher tokens.
    pub user_name: String,
    #[sqlx(try_from = "Flag")]
    pub user_is_admin: bool,
    #[sqlx(try_from = "Flag")]
    pub user_has_2fa: bool,
    /// Whether the user holds a WebAuthn credential (a security key or a passkey).
    #[sqlx(try_from = "Flag")]
    pub user_has_webauthn: bool,
    #[sqlx(try_from = "Flag")]
    pub user_email_verified: bool,
    #[sqlx(try_from = "Flag")]
    pub user_disabled: bool,
    pub hint: String,
    /// JSON array of normalized project names; `None` means every project the user may touch.
    pub projects: Option<String>,
    /// JSON array of actions (`upload`, `yank`, `manage`); `None` means all of them.
    pub actions: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    pub last_used_at: Option<i64>,
    pub last_used_addr: Option<String>,
}

impl Token {
    pub fn project_scope(&self) -> Option<Vec<String>> {
        self.projects.as_deref().map(serde_json_lite::parse_string_array)
    }

    pub fn action_scope(&self) -> Option<Vec<String>> {
        self.actions.as_deref().map(serde_json_lite::parse_string_array)
    }
}

/// A tiny parser for the JSON string arrays stored in `tokens.projects`; the store does not need
/// a JSON library for anything else. Names are PEP 503 normalized, so they never need escapes.
mod serde_json_lite {
    pub fn parse_string_array(s: &str) -> Vec<String> {
        s.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|p| p.trim().trim_matches('"').to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }

    pub fn to_string_array(items: &[String]) -> String {
        let inner: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", inner.join(","))
    }
}
pub(crate) use serde_json_lite::to_string_array;

/// A reserved filename that a new upload collides with: the same spelling, or another spelling
/// of the same file.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Reservation {
    /// The spelling that holds the reservation.
    pub filename: String,
    pub sha256: String,
    /// Whether that file is still stored (it may have been removed; its name stays reserved).
    #[sqlx(try_from = "Flag")]
    pub live: bool,
}

#[derive(Clone, Debug, FromRow)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub normalized: String,
    pub created_at: i64,
    pub last_serial: i64,
    pub status: String,
    pub status_reason: Option<String>,
    /// Uploads must carry a valid PEP 740 attestation from a registered trusted publisher.
    #[sqlx(try_from = "Flag")]
    pub require_attestations: bool,
    /// Marked critical by an administrator: changing it takes a WebAuthn second factor.
    #[sqlx(try_from = "Flag")]
    pub critical: bool,
}

#[derive(Clone, Debug, FromRow)]
pub struct Release {
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    pub canonical_version: String,
    pub created_at: i64,
    pub metadata: String,
    pub requires_python: Option<String>,
}

/// A file with the version of its release. `core_metadata` is not loaded here; see
/// [`crate::Db::core_metadata`].
#[derive(Clone, Debug, FromRow)]
pub struct FileRow {
    pub id: i64,
    pub release_id: i64,
    pub project_id: i64,
    pub version: String,
    pub filename: String,
    pub packagetype: String,
    pub python_version: String,
    pub size: i64,
    pub sha256: String,
    pub blake2b_256: String,
    pub md5: String,
    pub upload_time: i64,
    pub requires_python: Option<String>,
    pub metadata_sha256: String,
    #[sqlx(try_from = "Flag")]
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    /// The PEP 792 status of the file's project.
    pub project_status: String,
    /// `published` or `quarantined`.
    pub status: String,
    /// The normalized name of the file's project.
    pub project: String,
    /// Whether PEP 740 attestations are stored for the file.
    #[sqlx(try_from = "Flag")]
    pub has_provenance: bool,
}

impl FileRow {
    pub fn is_published(&self) -> bool {
        self.status == "published"
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct ScanReportRow {
    pub id: i64,
    pub filename: String,
    pub project: String,
    pub sha256: String,
    pub verdict: String,
    pub score: f64,
    pub report: String,
    pub outcome: String,
    pub trigger: String,
    pub actor: Option<String>,
    pub created_at: i64,
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct RoleRow {
    pub project: String,
    pub user_name: String,
    pub role: String,
}

#[derive(Clone, Debug, FromRow)]
pub struct JournalEntry {
    pub serial: i64,
    pub project: String,
    pub action: String,
    pub actor: Option<String>,
    pub at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Maintainer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Maintainer => "maintainer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "maintainer" => Some(Role::Maintainer),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub stage: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub addr: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<i64>,
    /// How the login was made: `password`, `totp`, `recovery_code`, `security_key`, `passkey`.
    pub method: Option<String>,
}

/// A session to open: `stage` `active`, or `second_factor` for a login ticket.
#[derive(Clone, Copy, Debug)]
pub struct NewSession<'a> {
    pub user_id: i64,
    /// The SHA-256 of the session's secret.
    pub hash: &'a str,
    pub stage: &'a str,
    pub expires_at: i64,
    pub addr: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// How the login was made (see [`Session::method`]).
    pub method: Option<&'a str>,
}

impl Session {
    /// Whether the login used a phishing-resistant factor (WebAuthn).
    pub fn phishing_resistant(&self) -> bool {
        matches!(self.method.as_deref(), Some("security_key" | "passkey"))
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct SecondFactor {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub name: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A WebAuthn credential: webauthn-rs's stored form (`credential`, JSON), for verification.
#[derive(Clone, Debug, FromRow)]
pub struct WebauthnCredential {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// A passkey (discoverable, user-verifying: logs in alone) rather than a security key.
    #[sqlx(try_from = "Flag")]
    pub passkey: bool,
    pub credential_id: String,
    pub credential: String,
}

/// The server's half of a WebAuthn ceremony in progress.
#[derive(Clone, Debug, FromRow)]
pub struct Ceremony {
    pub user_id: Option<i64>,
    pub bound: Option<String>,
    pub state: String,
}

/// A TOTP factor with its secret, for verification only.
#[derive(Clone, FromRow)]
pub struct TotpFactor {
    pub id: i64,
    pub secret: Vec<u8>,
    pub confirmed_at: Option<i64>,
    pub last_used_step: Option<i64>,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor").field("id", &self.id).field("secret", &"[redacted]").finish()
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct EmailToken {
    pub user_id: i64,
    pub purpose: String,
    pub email: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What following an email-verification link did.
#[derive(Clone, Debug)]
pub enum EmailVerification {
    /// The link is unknown, used, expired or not a verification link.
    NoSuchLink,
    /// The address is verified and the link used up.
    Verified(EmailToken),
    /// The account's address changed since the link was sent: the link is used up, nothing
    /// is verified.
    AddressChanged(EmailToken),
    /// Another account has verified the same address: nothing changed, the link included.
    TakenByAnother(EmailToken),
}

#[derive(Clone, Debug, FromRow)]
pub struct Publisher {
    pub id: i64,
    pub project_id: Option<i64>,
    /// The project's normalized name (for a pending publisher: the name it may create).
    pub project: String,
    #[sqlx(try_from = "Flag")]
    pub pending: bool,
    pub issuer: String,
    /// JSON of the claims to match.
    pub spec: String,
    pub created_by: Option<i64>,
    pub created_by_name: Option<String>,
    pub created_at: i64,
    /// When a pending publisher stops counting (`None` for ordinary publishers).
    pub expires_at: Option<i64>,
}

impl Publisher {
    /// Whether this is a pending publisher whose time ran out at `now` (microseconds): it matches
    /// no token and reserves nothing, and is removed by the next sweep.
    pub fn expired(&self, now: i64) -> bool {
        self.pending && self.expires_at.is_some_and(|e| e <= now)
    }
}

#[derive(Clone, Debug, FromRow)]
pub struct Event {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub user_name: Option<String>,
    pub project: Option<String>,
    pub actor: String,
    pub addr: Option<String>,
    pub user_agent: Option<String>,
    pub details: Option<String>,
}

/// An event to record.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub kind: String,
    pub user_id: Option<i64>,
    pub project_id: Option<i64>,
    pub actor: String,
    pub addr: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object.
    pub details: Option<String>,
}

/// PEP 792 project status markers.
pub const PROJECT_STATUSES: &[&str] = &["active", "archived", "quarantined", "deprecated"];

#[cfg(test)]
mod tests {
    use super::serde_json_lite::*;

    #[test]
    fn string_arrays_round_trip() {
        let v = vec!["a".to_string(), "b-c".to_string()];
        assert_eq!(parse_string_array(&to_string_array(&v)), v);
        assert!(parse_string_array("[]").is_empty());
    }
}

/// A background job (see `Db::enqueue_job`).
#[derive(Clone, Debug, FromRow)]
pub struct Job {
    pub id: i64,
    /// What to do: `mail`, ...
    pub kind: String,
    /// JSON; `{}` once done (mail bodies carry one-time links).
    pub payload: String,
    pub created_at: i64,
    /// Not to be run before this time.
    pub run_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    /// The worker holding the job, until `locked_until`.
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    /// `queued`, `done` or `failed`.
    pub state: String,
    pub finished_at: Option<i64>,
}
