//! Typed configuration, read once at start from an optional TOML file and `PALISADE_*`
//! environment variables (which win), validated up front with every problem reported at once.
//!
//! Closed sets are enums (a bad value is refused naming the key and the allowed values), secrets
//! are [`Secret`]s (redacted when printed, never serialized), and every variable is declared once,
//! in [`env`]. docs/configuration.md and palisade.example.toml describe every key; tests in
//! `config/tests.rs` keep both in step with the types here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use palisade_auth::Secret;
use palisade_scan::Verdict;
use palisade_store::{BucketConfig, Storage};
use serde::{Deserialize, Serialize};

pub mod env;

pub use env::ENV_VARS;

/// Declares a closed set of configuration values: an enum written as one of the given strings,
/// which refuses anything else naming the values it allows (serde's derive would answer a number
/// with "invalid type: unit variant", naming neither).
macro_rules! closed_set {
    ($(#[$meta:meta])* pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, as written in the configuration.
            pub const VALUES: &[&str] = &[$($text),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("one of ")?;
                        for (i, value) in $name::VALUES.iter().enumerate() {
                            write!(f, "{}`{value}`", if i == 0 { "" } else { ", " })?;
                        }
                        Ok(())
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $( $text => Ok($name::$variant), )*
                            _ => Err(E::unknown_variant(v, $name::VALUES)),
                        }
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

pub mod mirror;

pub use mirror::{MirrorConfig, UpstreamConfig, UpstreamNames};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the database and files live.
    pub data_dir: PathBuf,
    /// Largest file accepted by the upload API, in bytes (at most [`MAX_UPLOAD_BYTES`]).
    pub max_upload_bytes: u64,
    /// Largest total uncompressed size of an uploaded archive, in bytes.
    pub max_uncompressed_bytes: u64,
    /// Largest description (the core metadata's body) accepted in an upload, in bytes. The JSON
    /// API serves it in every answer about the release.
    pub max_description_bytes: u64,
    /// The URL clients reach this server at, for absolute links (the JSON API, mail). Without
    /// it, links name the listening address; never the request's Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Log filter (`info`, `warn`, `palisade_server=debug`, ...).
    pub log: String,
    /// How often the server checks the journal for changes made by other processes, in ms.
    pub journal_poll_ms: u64,
    /// Let the start-up orphan sweep remove blobs younger than a minute (tests use this).
    pub sweep_young_blobs: bool,
    /// A header set by the reverse proxy in front of Palisade carrying the client's address
    /// (`X-Forwarded-For`: its last entry is used). Without it, the TCP peer is the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip_header: Option<String>,
    /// The metadata database: SQLite in the data directory (the default) or PostgreSQL.
    pub database: DatabaseConfig,
    /// Where the files' bytes are kept: a folder (the default) or an S3-compatible bucket.
    pub storage: StorageConfig,
    /// The durable job queue (mail, for now).
    pub jobs: JobsConfig,
    /// Malware scanning of uploads.
    pub scan: ScanPolicy,
    /// Accounts, login and the two-factor policy.
    pub accounts: AccountPolicy,
    /// Outgoing email (verification, password reset, security notifications).
    pub smtp: SmtpConfig,
    /// Trusted publishing (OIDC token exchange).
    pub oidc: OidcConfig,
    /// PEP 740 attestations: the Sigstore trust root and the signers each publisher kind means.
    pub attestations: AttestationsConfig,
    /// The transparency log of everything Palisade publishes (`[transparency]`: `log` is the log
    /// filter's key).
    pub transparency: TransparencyConfig,
    /// Leaked-token reports from secret-scanning partners.
    pub disclosure: DisclosureConfig,
    /// Information sharing (docs/sharing.md): Palisade's verdicts as OSV, OSV feeds enforced,
    /// malware reports and webhooks.
    pub sharing: SharingConfig,
    /// Connection handling: time-outs and caps against slow and flooding clients.
    pub http: HttpConfig,
    /// The vulnerability disclosure policy served at `/.well-known/security.txt` (RFC 9116);
    /// without the section, no such file is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_txt: Option<SecurityTxt>,
    /// The web interface.
    pub web: WebConfig,
    /// The pull-through mirror of other indexes (docs/mirror.md).
    pub mirror: MirrorConfig,
}

/// `[web]`: what the web interface shows beyond the projects.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Notices shown on every page (plain text: maintenance windows, policy changes).
    pub notices: Vec<String>,
}

impl WebConfig {
    fn validate(&self, errors: &mut Vec<String>) {
        for n in &self.notices {
            if n.trim().is_empty() || n.chars().count() > 500 {
                errors.push(format!("web.notices: each notice is 1 to 500 characters of text, not {n:?}"));
            }
        }
    }
}

/// `[security_txt]`: what `/.well-known/security.txt` says (RFC 9116). `canonical` is added from
/// `public_url` when it is set.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityTxt {
    /// How to report a vulnerability: `mailto:`, `https:` or `tel:` URIs, most preferred first.
    pub contact: Vec<String>,
    /// When the file stops being valid, RFC 3339 (`2027-12-31T23:59:59Z`); RFC 9116 asks for
    /// less than a year ahead.
    pub expires: String,
    /// The disclosure policy's address (`https:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Languages reports may be written in (`en, de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_languages: Option<String>,
    /// The security acknowledgments page (`https:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgments: Option<String>,
}

impl SecurityTxt {
    /// The expiry as a timestamp; `validate` has checked that it parses.
    pub fn expires_at(&self) -> Option<jiff::Timestamp> {
        self.expires.parse().ok()
    }

    fn validate(&self, errors: &mut Vec<String>) {
        if self.contact.is_empty() {
            errors.push("security_txt.contact: list at least one mailto:, https: or tel: address".into());
        }
        let single_line = |v: &str| !v.is_empty() && !v.chars().any(char::is_control);
        for c in &self.contact {
            if !single_line(c) || !["mailto:", "https://", "tel:"].iter().any(|p| c.starts_with(p)) {
                errors.push(format!("security_txt.contact {c:?}: expected a mailto:, https:// or tel: URI"));
            }
        }
        if self.expires_at().is_none() {
            errors.push(format!("security_txt.expires = {:?}: expected an RFC 3339 time such as 2027-12-31T23:59:59Z", self.expires));
        }
        for (key, value) in [("policy", &self.policy), ("acknowledgments", &self.acknowledgments)] {
            if let Some(v) = value
                && (!single_line(v) || !v.starts_with("https://"))
            {
                errors.push(format!("security_txt.{key} = {v:?}: expected an https:// URL"));
            }
        }
        if let Some(v) = &self.preferred_languages
            && !v.split(',').all(|l| {
                let l = l.trim();
                !l.is_empty() && l.len() <= 35 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            errors.push(format!("security_txt.preferred_languages = {v:?}: expected language tags separated by commas (en, de)"));
        }
    }
}

/// Time-outs and caps on connections and request bodies (see docs/security.md, "Hostile
/// requests"). Body size limits are fixed per route; the upload's is `max_upload_bytes`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client has to send a request line and its headers, counted from the connection's
    /// start or from the first byte of a later request on it.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait, with no request in flight, for the next request;
    /// also how long a response may wait for a client that stopped reading.
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send the whole body of a request other than an upload (uploads have
    /// a per-chunk idle limit instead).
    pub body_timeout_secs: u64,
    /// Open connections at once, in all.
    pub max_connections: u64,
    /// Open connections at once from one client address (with `client_ip_header`: requests in
    /// flight per forwarded address). An IPv6 client counts by its /64.
    pub max_connections_per_client: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_secs: 20,
            idle_timeout_secs: 75,
            body_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_client: 256,
        }
    }
}

impl HttpConfig {
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.header_timeout_secs)
    }
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_timeout_secs)
    }

    fn validate(&self, errors: &mut Vec<String>) {
        for (key, v) in [
            ("http.header_timeout_secs", self.header_timeout_secs),
            ("http.idle_timeout_secs", self.idle_timeout_secs),
            ("http.body_timeout_secs", self.body_timeout_secs),
        ] {
            if !(1..=MAX_HTTP_TIMEOUT_SECS).contains(&v) {
                errors.push(format!("{key} = {v}: expected 1 to {MAX_HTTP_TIMEOUT_SECS} seconds"));
            }
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            errors.push(format!("http.max_connections = {}: expected 1 to {MAX_CONNECTIONS}", self.max_connections));
        }
        if self.max_connections_per_client == 0 || self.max_connections_per_client > self.max_connections.max(1) {
            errors.push(format!(
                "http.max_connections_per_client = {}: expected 1 to http.max_connections ({})",
                self.max_connections_per_client, self.max_connections
            ));
        }
    }
}

/// An hour: longer time-outs only keep attackers' connections open.
const MAX_HTTP_TIMEOUT_SECS: u64 = 3600;
/// More connections than one process can have file descriptors for is a typo.
const MAX_CONNECTIONS: u64 = 1_000_000;

/// The durable job queue: background work (mail) that survives a restart and runs once across
/// nodes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// How long a worker holds a job it claimed; a job whose worker died runs again elsewhere
    /// after this. Longer than any job takes (mail: the SMTP time-out, 20 s).
    pub lease_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { lease_secs: 120 }
    }
}

/// The metadata database. Several nodes share one PostgreSQL database; SQLite is shared only by
/// the processes of one machine.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]`.
    /// Unset: the data directory's `palisade.db`. A secret (it may carry a password): never
    /// serialized, and shown without its password.
    #[serde(skip_serializing)]
    pub url: Option<Secret>,
    /// Connections per process for reads; writes have their own (one on SQLite, half as many
    /// on PostgreSQL).
    pub pool_size: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, pool_size: 8 }
    }
}

/// More connections per node than a PostgreSQL server allows by default (100) is a typo.
const MAX_POOL_SIZE: u32 = 100;

impl DatabaseConfig {
    /// The URL to connect to; `data_dir` gives the default.
    pub fn url(&self, data_dir: &Path) -> anyhow::Result<String> {
        match &self.url {
            Some(url) => Ok(url.expose().to_string()),
            None => Ok(palisade_store::sqlite_url(&data_dir.join("palisade.db"))?),
        }
    }

    /// The URL as messages show it: without a password.
    pub fn display_url(&self, data_dir: &Path) -> String {
        let Some(url) = &self.url else { return data_dir.join("palisade.db").display().to_string() };
        let Ok(mut u) = url::Url::parse(url.expose()) else { return "(an unreadable database.url)".into() };
        if u.password().is_some() {
            let _ = u.set_password(Some("********"));
        }
        // libpq's `?password=...` too; every other parameter (sslmode, ...) is shown.
        let query: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| (k.to_string(), if k.eq_ignore_ascii_case("password") { "********".to_string() } else { v.to_string() }))
            .collect();
        if !query.is_empty() {
            u.query_pairs_mut().clear().extend_pairs(query);
        }
        u.to_string()
    }

    fn validate(&self, errors: &mut Vec<String>) {
        if let Some(url) = &self.url {
            let url = url.expose();
            let known = ["sqlite://", "postgres://", "postgresql://"];
            if !known.iter().any(|k| url.starts_with(k)) {
                let scheme = url.split(':').next().unwrap_or_default();
                errors.push(format!("database.url: expected sqlite://PATH or postgres://..., not a {scheme:?} URL"));
            } else if url.starts_with("postgres") && url::Url::parse(url).is_err() {
                errors.push("database.url: not a URL (a password with reserved characters must be percent-encoded)".into());
            }
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            errors.push(format!("database.pool_size = {}: expected 1 to {MAX_POOL_SIZE}", self.pool_size));
        }
    }
}

/// Where the files' bytes are kept. The database says which files exist; this holds their bytes,
/// addressed by sha256.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `file://PATH` or `s3://BUCKET[/PREFIX]`. Unset: the data directory's `files/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The S3 endpoint (MinIO, Ceph, R2, ...); unset: `AWS_ENDPOINT_URL`, else AWS itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Unset: `AWS_REGION` / `AWS_DEFAULT_REGION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Unset: `AWS_ACCESS_KEY_ID` (or the instance's role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Unset: `AWS_SECRET_ACCESS_KEY`. Never serialized.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<Secret>,
    /// Allow a plain-HTTP endpoint (a private network); unset: `AWS_ALLOW_HTTP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// With a bucket, answer downloads with a redirect to a presigned URL valid this many seconds
    /// instead of streaming the bytes through the node; 0 streams.
    pub presigned_downloads_secs: u64,
}

/// The longest presigned download: a day (S3 allows a week; a link that outlives a yank or a
/// quarantine by longer than that is a hazard).
pub const MAX_PRESIGNED_SECS: u64 = 24 * 3600;

impl StorageConfig {
    /// The storage the URL names, or why it names none. `data_dir` gives the default folder.
    pub fn storage(&self, data_dir: &Path) -> Result<Storage, String> {
        let Some(url) = self.url.as_deref() else { return Ok(Storage::Folder(data_dir.join("files"))) };
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!("storage.url = {url:?}: expected file://PATH"));
            }
            return Ok(Storage::Folder(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!("storage.url = {url:?}: expected file://PATH or s3://BUCKET[/PREFIX]"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(format!("storage.url = {url:?}: {bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' and '.')"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !prefix.is_empty() {
            return Err(format!("storage.url = {url:?}: the prefix {prefix:?} has an empty, '.' or '..' part"));
        }
        let secs = self.presigned_downloads_secs;
        Ok(Storage::Bucket(BucketConfig {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.as_ref().map(|s| s.expose().to_string()),
            allow_http: self.allow_http,
            presigned_downloads: (secs > 0).then(|| std::time::Duration::from_secs(secs)),
        }))
    }

    fn validate(&self, errors: &mut Vec<String>) {
        if let Err(e) = self.storage(Path::new("")) {
            errors.push(e);
        }
        if self.presigned_downloads_secs > MAX_PRESIGNED_SECS {
            errors.push(format!(
                "storage.presigned_downloads_secs = {}: expected at most {MAX_PRESIGNED_SECS} (a day)",
                self.presigned_downloads_secs
            ));
        }
        if self.presigned_downloads_secs > 0 && !self.url.as_deref().is_some_and(|u| u.starts_with("s3://")) {
            errors.push("storage.presigned_downloads_secs: presigned downloads need a bucket (storage.url = \"s3://...\")".into());
        }
    }
}

/// Who may do what with an account.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountPolicy {
    /// Two-factor authentication is required to publish, manage projects or create tokens.
    pub require_2fa: bool,
    /// A verified email address is required to publish, manage projects or create tokens.
    pub require_verified_email: bool,
    /// Owners and maintainers of projects an administrator marked critical must hold a WebAuthn
    /// credential (a security key or passkey) and, in the browser, have logged in with it.
    pub critical_require_webauthn: bool,
    /// How recent, in seconds, a session's login must be for sensitive changes (adding an owner
    /// or a trusted publisher, creating an API token); older sessions re-authenticate first.
    pub reauth_secs: u64,
    /// Anyone may create an account through `POST /api/register`.
    pub registration: bool,
    /// How long a login session lasts, in hours (at most [`MAX_SESSION_HOURS`]).
    pub session_hours: u64,
    /// Wrong passwords (or second-factor codes) for one account from one client address before
    /// that pair is locked out.
    pub max_failures: u64,
    /// Wrong guesses for one account from all addresses together before the account is locked
    /// out, except from addresses it logged in from recently (guessing spread over addresses).
    pub account_max_failures: u64,
    /// Wrong guesses from one address against all accounts together before the address is
    /// locked out, except for accounts that logged in from it recently (password spraying).
    pub address_max_failures: u64,
    /// Wrong guesses on the whole instance before every login is locked out, except from
    /// known addresses (a distributed attack).
    pub global_max_failures: u64,
    /// Invalid API tokens, OIDC ID tokens, login tickets and mailed links presented from one
    /// address before further invalid ones are answered 429. Valid ones are always accepted:
    /// they cannot be guessed, so a shared address never locks out their holders.
    pub token_max_failures: u64,
    /// The window in which failures are counted, and the longest lockout, in seconds.
    pub lockout_secs: u64,
    /// The first lockout, in seconds; each further lockout of the same key doubles it, up to
    /// `lockout_secs`.
    pub first_lockout_secs: u64,
    /// An address the account logged in from (with every factor) within this many days is
    /// "known": the account, address and global limits do not apply to that pair.
    pub known_address_days: u64,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            require_2fa: true,
            require_verified_email: true,
            critical_require_webauthn: true,
            reauth_secs: 900,
            registration: false,
            session_hours: 12,
            max_failures: 5,
            account_max_failures: 50,
            address_max_failures: 100,
            global_max_failures: 1000,
            token_max_failures: 100,
            lockout_secs: 900,
            first_lockout_secs: 60,
            known_address_days: 30,
        }
    }
}

/// The SMTP server that sends Palisade's mail. Without a host, no mail is sent.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// Never serialized: writing the configuration back out must not write the password.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: SmtpSecurity::StartTls,
            username: None,
            password: None,
            from: "Palisade <palisade@localhost>".into(),
        }
    }
}

closed_set! {
    /// How the connection to the SMTP server is protected.
    pub enum SmtpSecurity {
        /// Plain connection upgraded with STARTTLS, which must succeed (usually port 587).
        StartTls = "starttls",
        /// TLS from the first byte (usually port 465).
        Tls = "tls",
        /// No encryption: only for a relay on the same host.
        None = "none",
    }
}

/// Trusted publishing: which OIDC issuers may exchange their ID tokens for upload tokens.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    pub enabled: bool,
    /// The `aud` claim ID tokens must carry (`GET /_/oidc/audience`).
    pub audience: String,
    /// GitHub Actions' issuer (GitHub Enterprise Server has its own).
    pub github_issuer: String,
    /// GitLab's issuer (self-managed GitLab has its own).
    pub gitlab_issuer: String,
    /// Further issuers the administrator trusts for publishers with custom claim matchers.
    pub trusted_issuers: Vec<String>,
    /// Accept plain-http issuers on loopback addresses (for tests; never in production).
    pub allow_insecure_loopback: bool,
    /// Clock skew tolerated on exp, nbf and iat, in seconds.
    pub leeway_secs: u64,
    /// Lifetime of the upload tokens the exchange mints, in seconds (at most 900).
    pub token_ttl_secs: u64,
    /// How long a pending publisher may wait for its first use, in days. It reserves its name
    /// against other users' pending publishers until then.
    pub pending_publisher_days: u64,
    /// How many live pending publishers one user may have.
    pub max_pending_publishers: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            audience: "palisade".into(),
            github_issuer: "https://token.actions.githubusercontent.com".into(),
            gitlab_issuer: "https://gitlab.com".into(),
            trusted_issuers: Vec::new(),
            allow_insecure_loopback: false,
            leeway_secs: 60,
            token_ttl_secs: 900,
            pending_publisher_days: 30,
            max_pending_publishers: 10,
        }
    }
}

/// PEP 740 attestations (docs/transparency.md). Certificates name the OIDC issuer Fulcio saw,
/// which is configured here apart from the issuers that mint upload tokens (`[oidc]`), so that a
/// test issuer for the token exchange does not change which real signers are accepted.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttestationsConfig {
    /// The Sigstore trust root: `public-good` (bundled; PyPI's signers), `staging` (bundled;
    /// Sigstore's test instance, never for production) or the path of a `trusted_root.json`.
    pub trust_root: String,
    /// The issuer in certificates of GitHub Actions workflows.
    pub github_certificate_issuer: String,
    /// The issuer in certificates of GitLab CI/CD pipelines; the project's URL starts with it.
    pub gitlab_certificate_issuer: String,
    /// Publishers of other issuers sign attestations only through such a mapping.
    pub custom_issuers: Vec<CustomIssuer>,
}

impl Default for AttestationsConfig {
    fn default() -> Self {
        Self {
            trust_root: "public-good".into(),
            github_certificate_issuer: "https://token.actions.githubusercontent.com".into(),
            gitlab_certificate_issuer: "https://gitlab.com".into(),
            custom_issuers: Vec::new(),
        }
    }
}

/// How a custom-issuer publisher's claims show in a Fulcio certificate.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomIssuer {
    /// The issuer the publisher is registered with (its ID tokens' `iss`).
    pub token_issuer: String,
    /// The issuer the certificates carry.
    pub certificate_issuer: String,
    /// Publisher claim name → certificate field (`subject_alt_name`, `source_repository_uri`,
    /// `build_config_uri`, `token_subject`, ...): each mapped claim of the publisher must equal
    /// that field. At least one.
    pub claims: std::collections::BTreeMap<String, String>,
}

/// The transparency log (docs/transparency.md). The section is `[transparency]`, since `log` is
/// the log filter's key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransparencyConfig {
    /// The checkpoint's origin line. Used once, when the log is created; unset, it is
    /// `public_url`'s host and path plus `/log` (or the listening address's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The file holding the log's Ed25519 signing key, created at first start when missing.
    /// Unset: `log-signing.key` in the data directory. Several nodes need the same key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The signing key itself (as `palisade log key --private` prints it), in place of a file.
    #[serde(skip_serializing)]
    pub key: Option<Secret>,
    /// How often the sequencer looks for new entries to checkpoint, in ms.
    pub sequence_ms: u64,
}

impl Default for TransparencyConfig {
    fn default() -> Self {
        Self { origin: None, key_file: None, key: None, sequence_ms: 1000 }
    }
}

closed_set! {
    /// Who may read Palisade's own OSV records under `/osv/`.
    pub enum ExportAccess {
        /// Anyone (the default: the records protect everyone).
        Public = "public",
        /// Any caller with a valid token or session.
        Authenticated = "authenticated",
        /// Nobody: `/osv/` answers 404.
        Off = "off",
    }
}

/// Information sharing (docs/sharing.md).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharingConfig {
    /// Who may read `/osv/PyPI/...` and `POST /osv/v1/query`.
    pub export: ExportAccess,
    /// The id prefix of Palisade's own records (`<prefix>-<year>-<n>`); `x_` marks a local
    /// database in OSV's convention.
    pub prefix: String,
    /// The name the records credit as their finder; unset, `public_url`'s host (or "Palisade").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
    /// OSV feeds to enforce (`[[sharing.feeds]]`). None by default: nothing is fetched.
    pub feeds: Vec<FeedConfig>,
    /// Largest feed download (a zip, a CSV index) in bytes.
    pub max_feed_bytes: u64,
    /// Quarantine on malware reports as PyPI does (a trusted reporter on a young project, or
    /// enough distinct reporters of whom one is trusted).
    pub auto_quarantine: bool,
    /// A project younger than this many hours is quarantined on one trusted reporter's report.
    pub new_project_hours: u64,
    /// Distinct reporters (at least one trusted) that quarantine a project of any age.
    pub reporters: u64,
    /// Signed webhooks told of quarantines, decisions, reports and feed blocks.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for SharingConfig {
    fn default() -> Self {
        Self {
            export: ExportAccess::Public,
            prefix: "x_PALISADE".into(),
            credit: None,
            feeds: Vec::new(),
            max_feed_bytes: 512 << 20,
            auto_quarantine: true,
            new_project_hours: 24,
            reporters: 2,
            webhooks: Vec::new(),
        }
    }
}

/// One OSV feed: a folder (a checkout of `ossf/malicious-packages`, or an unpacked OSV.dev
/// export), a zip file, or the `https://.../osv/PyPI/` of another Palisade (or an OSV.dev-style
/// export).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// A short name (letters, digits, `-`, `_`), shown in refusals and logs.
    pub name: String,
    /// A folder, a `.zip` file, or an `http(s)://` URL ending in `/`.
    pub source: String,
    /// How often it is read again, such as `60s` or `10m`: by default 60 s for a URL, 10 minutes
    /// for a folder or zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// For a URL: an API token sent as `Authorization: Bearer`, when the other instance
    /// publishes to authenticated callers only.
    #[serde(default, skip_serializing)]
    pub token: Option<Secret>,
}

impl SharingConfig {
    fn validate(&self, errors: &mut Vec<String>) {
        if let Err(e) = palisade_osv::check_prefix(&self.prefix) {
            errors.push(format!("sharing.prefix = {:?}: {e}", self.prefix));
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.feeds {
            if f.name.is_empty() || f.name.len() > 64 || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                errors.push(format!("sharing.feeds name {:?}: expected letters, digits, '-' or '_'", f.name));
            }
            if !names.insert(f.name.as_str()) {
                errors.push(format!("sharing.feeds name {:?}: used twice", f.name));
            }
            if f.is_url() && !f.source.ends_with('/') {
                errors.push(format!(
                    "sharing.feeds {:?}: a URL source names a folder of records and ends with '/' (such as https://host/osv/PyPI/)",
                    f.name
                ));
            }
            // Whoever can change a feed in transit can lift its blocks: https, except on this machine.
            if f.source.starts_with("http://") && !url::Url::parse(&f.source).is_ok_and(|u| is_loopback(&u)) {
                errors.push(format!("sharing.feeds {:?}: plain http is refused for a feed from another machine; use https", f.name));
            }
            if f.token.is_some() && !f.is_url() {
                errors.push(format!("sharing.feeds {:?}: a token is for a URL source", f.name));
            }
            if let Some(i) = &f.interval
                && let Err(e) = parse_interval(i)
            {
                errors.push(format!("sharing.feeds {:?}: interval {i:?}: {e}", f.name));
            }
        }
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                errors.push(format!("sharing.webhooks url {:?}: expected an http:// or https:// URL", w.url));
            }
        }
        if self.reporters < 1 {
            errors.push("sharing.reporters must be at least 1".into());
        }
        if self.max_feed_bytes < 1 << 20 {
            errors.push("sharing.max_feed_bytes: expected at least 1 MiB".into());
        }
    }
}

impl FeedConfig {
    /// Whether the source is fetched over HTTP.
    pub fn is_url(&self) -> bool {
        self.source.starts_with("http://") || self.source.starts_with("https://")
    }

    /// The interval between syncs.
    pub fn every(&self) -> std::time::Duration {
        let default = std::time::Duration::from_secs(if self.is_url() { 60 } else { 600 });
        self.interval.as_deref().and_then(|i| parse_interval(i).ok()).unwrap_or(default)
    }
}

/// Whether a URL names this machine (`localhost`, `127.0.0.0/8`, `::1`), by its parsed host.
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A feed's interval: a number and a unit (`60s`, `10m`, `1h`), from one second to a week.
fn parse_interval(text: &str) -> Result<std::time::Duration, &'static str> {
    let span: jiff::Span = text.trim().parse().map_err(|_| "expected a number and a unit, such as 60s, 10m or 1h")?;
    let signed = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|_| "use seconds, minutes, hours or days")?;
    let d = std::time::Duration::try_from(signed).map_err(|_| "it must be positive")?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(7 * 86_400) {
        return Err("expected one second to a week");
    }
    Ok(d)
}

/// A webhook: JSON bodies signed with `Palisade-Signature: sha256=<hex HMAC-SHA256>`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(skip_serializing)]
    pub secret: Secret,
}

/// Secret-scanning partners that may report leaked tokens to `POST /_/secrets/disclose-token`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisclosureConfig {
    pub enabled: bool,
    pub partners: Vec<DisclosurePartner>,
}

impl Default for DisclosureConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            partners: vec![DisclosurePartner {
                name: "github".into(),
                key_id_header: "Github-Public-Key-Identifier".into(),
                signature_header: "Github-Public-Key-Signature".into(),
                keys_url: Some("https://api.github.com/meta/public_keys/secret_scanning".into()),
                keys_ttl_secs: default_keys_ttl_secs(),
                public_keys: Vec::new(),
            }],
        }
    }
}

/// One partner: the headers carrying its key id and signature, and where its keys come from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosurePartner {
    pub name: String,
    pub key_id_header: String,
    pub signature_header: String,
    /// A URL serving `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
    #[serde(default)]
    pub keys_url: Option<String>,
    /// Seconds keys fetched from `keys_url` are trusted before the URL is asked again, so that a
    /// key the partner withdrew stops verifying reports (1 to 86400).
    #[serde(default = "default_keys_ttl_secs")]
    pub keys_ttl_secs: u64,
    /// Keys given inline.
    #[serde(default)]
    pub public_keys: Vec<PartnerKey>,
}

fn default_keys_ttl_secs() -> u64 {
    3600
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerKey {
    pub key_identifier: String,
    /// PEM SubjectPublicKeyInfo of an ECDSA P-256 key.
    pub key: String,
}

/// What the server does with the scanner's verdicts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanPolicy {
    /// Scan every upload before it becomes visible.
    pub enabled: bool,
    /// The verdict at or above which a file is quarantined.
    pub quarantine_at: VerdictThreshold,
    /// The verdict at or above which an upload is refused.
    pub reject_at: VerdictThreshold,
    /// Score at which a file is suspicious.
    pub suspicious_score: f64,
    /// Score at which a file is malicious.
    pub malicious_score: f64,
    /// Extra folders of YARA rules.
    pub rules_dirs: Vec<PathBuf>,
    /// A file of popular project names (one per line, most popular first) replacing the shipped list.
    pub popular_list: Option<PathBuf>,
    /// What happens to a new project whose name imitates a popular or hosted one.
    pub typosquat: TyposquatAction,
    /// MiB of memory for analyses of Python files reused by content (a wheel after its sdist,
    /// a new version after the last); 0 analyses every file afresh.
    pub reuse_mib: u64,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            quarantine_at: VerdictThreshold::Suspicious,
            reject_at: VerdictThreshold::Malicious,
            suspicious_score: 5.0,
            malicious_score: 10.0,
            rules_dirs: Vec::new(),
            popular_list: None,
            typosquat: TyposquatAction::Quarantine,
            reuse_mib: (palisade_scan::DEFAULT_REUSE_BYTES >> 20) as u64,
        }
    }
}

closed_set! {
    /// A scanner verdict at or above which a policy applies, or never. (A `clean` threshold
    /// would apply to every file, so it is not offered.)
    pub enum VerdictThreshold {
        Suspicious = "suspicious",
        Malicious = "malicious",
        Never = "never",
    }
}

impl VerdictThreshold {
    /// The lowest verdict that reaches this threshold, if any does.
    pub fn verdict(self) -> Option<Verdict> {
        match self {
            VerdictThreshold::Suspicious => Some(Verdict::Suspicious),
            VerdictThreshold::Malicious => Some(Verdict::Malicious),
            VerdictThreshold::Never => None,
        }
    }

    /// Whether a file given `verdict` reaches this threshold.
    pub fn reached_by(self, verdict: Verdict) -> bool {
        self.verdict().is_some_and(|lowest| verdict >= lowest)
    }
}

closed_set! {
    /// What happens to a new project whose name imitates a popular or hosted one.
    pub enum TyposquatAction {
        /// Decided by the verdict alone, like any other upload.
        Allow = "allow",
        /// Quarantined at least, whatever the verdict (refused if the verdict says so).
        Quarantine = "quarantine",
        /// Refused.
        Reject = "reject",
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("palisade-data"),
            max_upload_bytes: 100 << 20,
            max_uncompressed_bytes: 4 << 30,
            max_description_bytes: 2 << 20,
            public_url: None,
            log: "info".into(),
            journal_poll_ms: 500,
            sweep_young_blobs: false,
            client_ip_header: None,
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            jobs: JobsConfig::default(),
            scan: ScanPolicy::default(),
            accounts: AccountPolicy::default(),
            smtp: SmtpConfig::default(),
            oidc: OidcConfig::default(),
            attestations: AttestationsConfig::default(),
            transparency: TransparencyConfig::default(),
            disclosure: DisclosureConfig::default(),
            sharing: SharingConfig::default(),
            http: HttpConfig::default(),
            security_txt: None,
            web: WebConfig::default(),
            mirror: MirrorConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The largest `max_upload_bytes`: 64 GiB, far above any distribution on PyPI, and far below
/// where the upload's size arithmetic could overflow.
pub const MAX_UPLOAD_BYTES: u64 = 64 << 30;
/// The longest `accounts.session_hours`: a year. A session's expiry is stored in microseconds
/// as an `i64`, which this keeps far from overflowing.
pub const MAX_SESSION_HOURS: u64 = 365 * 24;
/// The largest `oidc.leeway_secs`: ten minutes. A longer leeway accepts ID tokens long expired.
pub const MAX_LEEWAY_SECS: u64 = 600;

impl AccountPolicy {
    /// How long an active login session lasts, in microseconds (the database's unit). Saturates
    /// instead of overflowing for a policy built in code past [`MAX_SESSION_HOURS`].
    pub fn session_micros(&self) -> i64 {
        i64::try_from(self.session_hours).unwrap_or(i64::MAX).saturating_mul(3_600_000_000)
    }
}

impl Config {
    /// Builds the configuration from TOML text (may be empty) and an environment lookup (the
    /// binary passes `std::env::var`; tests pass a closure).
    ///
    /// Every problem is reported, not only the first: a key that does not deserialize (unknown,
    /// of the wrong type, not one of an enum's values) is reported with its dotted name, and the
    /// variable it came from if it did, then set aside so that the rest can be read; the values
    /// read are then validated together.
    pub fn load(toml_text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table: toml::Table = toml_text.parse().map_err(|e: toml::de::Error| ConfigError(vec![syntax_error(toml_text, &e)]))?;
        let mut errors = Vec::new();
        let mut value = toml::Value::Table(table);
        let from_env = apply_env(&mut value, env, &mut errors);
        let config = loop {
            match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
                Ok(config) => break Some(config),
                Err(e) => {
                    let key = e.path().to_string();
                    let source = from_env.iter().find(|(k, _)| *k == key).map(|(_, var)| format!(" (from {var})")).unwrap_or_default();
                    // serde's message quotes the value it refused; a secret's value is not repeated.
                    let message =
                        if SECRET_KEYS.contains(&key.as_str()) { "expected a string".to_string() } else { e.inner().message().to_string() };
                    errors.push(format!("{key}{source}: {message}"));
                    if !remove_at(&mut value, e.path()) {
                        break None;
                    }
                }
            }
        };
        if let Some(config) = &config {
            errors.extend(config.validate());
        }
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigError(errors)),
        }
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!("listen = {:?}: expected an address such as 127.0.0.1:8080", self.listen));
        }
        if !(1..=MAX_UPLOAD_BYTES).contains(&self.max_upload_bytes) {
            errors.push(format!("max_upload_bytes = {}: expected 1 to {MAX_UPLOAD_BYTES} (64 GiB)", self.max_upload_bytes));
        }
        if self.max_description_bytes == 0 {
            errors.push("max_description_bytes must be positive".into());
        }
        if self.journal_poll_ms == 0 {
            errors.push("journal_poll_ms must be positive".into());
        }
        self.database.validate(&mut errors);
        self.storage.validate(&mut errors);
        if !(100..=10_000).contains(&self.transparency.sequence_ms) {
            errors.push(format!("transparency.sequence_ms = {}: expected 100 to 10000", self.transparency.sequence_ms));
        }
        if let Some(origin) = &self.transparency.origin
            && (origin.is_empty() || origin.len() > 200 || origin.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+'))
        {
            errors.push(format!(
                "transparency.origin = {origin:?}: expected a non-empty name without spaces or '+', such as example.com/log"
            ));
        }
        for c in &self.attestations.custom_issuers {
            if c.claims.is_empty() {
                errors.push(format!("attestations.custom_issuers for {:?}: map at least one claim", c.token_issuer));
            }
            for field in c.claims.values() {
                if palisade_attest::ClaimField::parse(field).is_none() {
                    errors.push(format!("attestations.custom_issuers for {:?}: unknown certificate field {field:?}", c.token_issuer));
                }
            }
        }
        self.sharing.validate(&mut errors);
        if let Some(s) = &self.security_txt {
            s.validate(&mut errors);
        }
        if !(5..=3600).contains(&self.jobs.lease_secs) {
            errors.push(format!("jobs.lease_secs = {}: expected 5 to 3600", self.jobs.lease_secs));
        }
        if self.scan.reuse_mib > 1 << 20 {
            errors.push(format!("scan.reuse_mib = {}: expected at most 1048576 (1 TiB)", self.scan.reuse_mib));
        }
        if self.scan.suspicious_score <= 0.0 || self.scan.malicious_score < self.scan.suspicious_score {
            errors.push("scan scores: need 0 < suspicious_score <= malicious_score".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(format!("public_url = {url:?}: expected an http:// or https:// URL"));
        }
        if self.smtp.port == 0 {
            errors.push("smtp.port = 0: expected a TCP port".into());
        }
        let a = &self.accounts;
        if !(1..=86_400).contains(&a.reauth_secs) {
            errors.push(format!("accounts.reauth_secs = {}: expected 1 to 86400 (a day)", a.reauth_secs));
        }
        if !(1..=MAX_SESSION_HOURS).contains(&a.session_hours) {
            errors.push(format!("accounts.session_hours = {}: expected 1 to {MAX_SESSION_HOURS} (a year)", a.session_hours));
        }
        for (key, value) in [
            ("max_failures", a.max_failures),
            ("account_max_failures", a.account_max_failures),
            ("address_max_failures", a.address_max_failures),
            ("global_max_failures", a.global_max_failures),
            ("token_max_failures", a.token_max_failures),
            ("lockout_secs", a.lockout_secs),
            ("first_lockout_secs", a.first_lockout_secs),
        ] {
            if value == 0 || value > u32::MAX as u64 {
                errors.push(format!("accounts.{key} = {value}: expected 1 to {}", u32::MAX));
            }
        }
        if a.first_lockout_secs > a.lockout_secs {
            errors.push(format!(
                "accounts.first_lockout_secs = {} is longer than accounts.lockout_secs = {} (the longest lockout)",
                a.first_lockout_secs, a.lockout_secs
            ));
        }
        if a.known_address_days > 3650 {
            errors.push(format!("accounts.known_address_days = {}: expected at most 3650", a.known_address_days));
        }
        if self.oidc.pending_publisher_days == 0 || self.oidc.pending_publisher_days > 3650 {
            errors.push(format!("oidc.pending_publisher_days = {}: expected 1 to 3650", self.oidc.pending_publisher_days));
        }
        if self.oidc.max_pending_publishers == 0 || self.oidc.max_pending_publishers > 10_000 {
            errors.push(format!("oidc.max_pending_publishers = {}: expected 1 to 10000", self.oidc.max_pending_publishers));
        }
        if self.oidc.token_ttl_secs == 0 || self.oidc.token_ttl_secs > 900 {
            errors.push(format!("oidc.token_ttl_secs = {}: expected 1 to 900 (15 minutes)", self.oidc.token_ttl_secs));
        }
        if self.oidc.leeway_secs > MAX_LEEWAY_SECS {
            errors.push(format!("oidc.leeway_secs = {}: expected at most {MAX_LEEWAY_SECS} (10 minutes)", self.oidc.leeway_secs));
        }
        let oidc = &self.oidc;
        for issuer in std::iter::once(&oidc.github_issuer).chain(std::iter::once(&oidc.gitlab_issuer)).chain(&oidc.trusted_issuers) {
            if let Err(e) = check_issuer_url(issuer, oidc.allow_insecure_loopback) {
                errors.push(format!("oidc issuer {issuer:?}: {e}"));
            }
        }
        for (i, p) in self.disclosure.partners.iter().enumerate() {
            if p.keys_url.is_none() && p.public_keys.is_empty() {
                errors.push(format!("disclosure partner {:?}: needs keys_url or public_keys", p.name));
            }
            if p.keys_ttl_secs == 0 || p.keys_ttl_secs > 86_400 {
                errors.push(format!("disclosure partner {:?}: keys_ttl_secs = {}: expected 1 to 86400 seconds", p.name, p.keys_ttl_secs));
            }
            // Fetched keys are cached by partner name.
            if self.disclosure.partners[..i].iter().any(|q| q.name == p.name) {
                errors.push(format!("disclosure partner {:?}: listed twice (names must be unique)", p.name));
            }
        }
        self.http.validate(&mut errors);
        self.web.validate(&mut errors);
        self.mirror.validate(&mut errors);
        errors
    }
}

/// A TOML syntax error by line and column, without the excerpt of the line that toml's own
/// message shows: that line may hold the SMTP password.
/// List keys of optional sections, which the defaults do not show.
const OPTIONAL_LISTS: &[&str] = &["security_txt.contact"];

/// Keys whose values are secrets, never repeated in an error.
const SECRET_KEYS: &[&str] = &["database.url", "smtp.password", "storage.secret_access_key"];

fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return format!("TOML syntax error: {message}");
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("TOML syntax error at line {line}, column {column}: {message}")
}

/// Sets the keys given in the environment into `value` (the file's table), each converted to
/// the type of its default; returns the keys set, with their variables, to name them in errors.
fn apply_env(value: &mut toml::Value, env: impl Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> Vec<(&'static str, &'static str)> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let empty_list = toml::Value::Array(Vec::new());
    let mut set = Vec::new();
    let Some(table) = value.as_table_mut() else { return set };
    for &(var, key) in ENV_VARS {
        let Some(raw) = env(var) else { continue };
        let (section, leaf) = match key.split_once('.') {
            Some((s, l)) => (Some(s), l),
            None => (None, key),
        };
        let default = match section {
            Some(s) => defaults.get(s).and_then(|t| t.as_table()).and_then(|t| t.get(leaf)),
            None => defaults.get(leaf),
        };
        // A list in a section with no default (`[security_txt]`) has no default to take its
        // type from.
        let default = if OPTIONAL_LISTS.contains(&key) { Some(&empty_list) } else { default };
        let value = match default {
            Some(toml::Value::Integer(_)) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 0 => toml::Value::Integer(n),
                _ => {
                    errors.push(format!("{var}={raw:?}: expected a whole number"));
                    continue;
                }
            },
            Some(toml::Value::Float(_)) => match raw.trim().parse::<f64>() {
                Ok(n) if n >= 0.0 => toml::Value::Float(n),
                _ => {
                    errors.push(format!("{var}={raw:?}: expected a number"));
                    continue;
                }
            },
            Some(toml::Value::Boolean(_)) => match raw.trim() {
                "1" | "true" | "yes" => toml::Value::Boolean(true),
                "0" | "false" | "no" | "" => toml::Value::Boolean(false),
                _ => {
                    errors.push(format!("{var}={raw:?}: expected true or false"));
                    continue;
                }
            },
            // Lists are comma-separated in the environment.
            Some(toml::Value::Array(_)) => {
                toml::Value::Array(raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect())
            }
            _ => toml::Value::String(raw),
        };
        match section {
            Some(s) => {
                let entry = table.entry(s.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
                if let Some(t) = entry.as_table_mut() {
                    t.insert(leaf.to_string(), value);
                }
            }
            None => {
                table.insert(leaf.to_string(), value);
            }
        }
        set.push((key, var));
    }
    set
}

/// Removes the value at `path` (a key serde refused) so that reading can go on past it; false
/// when there is nothing there to remove.
fn remove_at(root: &mut toml::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut value = root;
    for segment in parents {
        let child = match (value, segment) {
            (toml::Value::Table(t), Segment::Map { key }) => t.get_mut(key),
            (toml::Value::Array(a), Segment::Seq { index }) => a.get_mut(*index),
            _ => None,
        };
        let Some(child) = child else { return false };
        value = child;
    }
    match (value, last) {
        (toml::Value::Table(t), Segment::Map { key }) => t.remove(key).is_some(),
        (toml::Value::Array(a), Segment::Seq { index }) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// Issuer URLs (and the JWKS URIs their discovery documents name) must be https; plain http is
/// accepted only for a loopback host, and only when allowed.
///
/// The URL is parsed as the HTTP client parses it (WHATWG, the `url` crate), and its host, not
/// a prefix of the text, is classified: `http://127.evil.example` names a domain and
/// `http://127.0.0.1@evil.example` the host `evil.example`, so neither is loopback. Loopback
/// means an IP address that `std::net` calls loopback (`127.0.0.0/8`, `[::1]`) or `localhost`.
/// URLs carrying credentials (`user@host`) are refused outright.
pub fn check_issuer_url(url: &str, allow_insecure_loopback: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("expected an https:// URL ({e})"))?;
    let secure = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err("expected an https:// URL".into()),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL with user information (user@host) is refused".into());
    }
    let Some(host) = parsed.host() else { return Err("missing host".into()) };
    if secure {
        return Ok(());
    }
    let loopback = match host {
        url::Host::Ipv4(ip) => IpAddr::from(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::from(ip).is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    };
    match (loopback, allow_insecure_loopback) {
        (true, true) => Ok(()),
        (true, false) => {
            Err("plain http issuers are refused (set [oidc] allow_insecure_loopback = true for a test issuer on loopback)".into())
        }
        (false, _) => Err("plain http issuers are refused; use https".into()),
    }
}

#[cfg(test)]
mod tests;
