//! Typed configuration, read once at start from an optional TOML file and `PALISADE_*`
//! environment variables (which win), validated up front with every problem reported at once.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the database and files live.
    pub data_dir: PathBuf,
    /// Largest file accepted by the upload API, in bytes.
    pub max_upload_bytes: u64,
    /// Largest total uncompressed size of an uploaded archive, in bytes.
    pub max_uncompressed_bytes: u64,
    /// Largest description (the core metadata's body) accepted in an upload, in bytes. The JSON
    /// API serves it in every answer about the release.
    pub max_description_bytes: u64,
    /// The URL clients reach this server at, for absolute links (the JSON API, mail). Without
    /// it, links name the listening address; never the request's Host header.
    pub public_url: Option<String>,
    /// Log filter (`info`, `warn`, `palisade_server=debug`, ...).
    pub log: String,
    /// How often the server checks the journal for changes made by other processes, in ms.
    pub journal_poll_ms: u64,
    /// Let the start-up orphan sweep remove blobs younger than a minute (tests use this).
    pub sweep_young_blobs: bool,
    /// A header set by the reverse proxy in front of Palisade carrying the client's address
    /// (`X-Forwarded-For`: its last entry is used). Without it, the TCP peer is the client.
    pub client_ip_header: Option<String>,
    /// Malware scanning of uploads.
    pub scan: ScanPolicy,
    /// Accounts, login and the two-factor policy.
    pub accounts: AccountPolicy,
    /// Outgoing email (verification, password reset, security notifications).
    pub smtp: SmtpConfig,
    /// Trusted publishing (OIDC token exchange).
    pub oidc: OidcConfig,
    /// Leaked-token reports from secret-scanning partners.
    pub disclosure: DisclosureConfig,
    /// Connection handling: time-outs and caps against slow and flooding clients.
    pub http: HttpConfig,
}

/// Time-outs and caps on connections and request bodies (see docs/security.md, "Hostile
/// requests"). Body size limits are fixed per route; the upload's is `max_upload_bytes`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
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

/// Who may do what with an account.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountPolicy {
    /// Two-factor authentication is required to publish, manage projects or create tokens.
    pub require_2fa: bool,
    /// A verified email address is required to publish, manage projects or create tokens.
    pub require_verified_email: bool,
    /// Anyone may create an account through `POST /api/register`.
    pub registration: bool,
    /// How long a login session lasts, in hours.
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
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u64,
    /// starttls, tls or none.
    pub security: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: "starttls".into(),
            username: None,
            password: None,
            from: "Palisade <palisade@localhost>".into(),
        }
    }
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .finish()
    }
}

/// Trusted publishing: which OIDC issuers may exchange their ID tokens for upload tokens.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
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

/// Secret-scanning partners that may report leaked tokens to `POST /_/secrets/disclose-token`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
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
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
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

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerKey {
    pub key_identifier: String,
    /// PEM SubjectPublicKeyInfo of an ECDSA P-256 key.
    pub key: String,
}

/// What the server does with the scanner's verdicts.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanPolicy {
    /// Scan every upload before it becomes visible.
    pub enabled: bool,
    /// The verdict at or above which a file is quarantined: suspicious, malicious or never.
    pub quarantine_at: String,
    /// The verdict at or above which an upload is refused: suspicious, malicious or never.
    pub reject_at: String,
    /// Score at which a file is suspicious.
    pub suspicious_score: f64,
    /// Score at which a file is malicious.
    pub malicious_score: f64,
    /// Extra folders of YARA rules.
    pub rules_dirs: Vec<PathBuf>,
    /// A file of popular project names (one per line, most popular first) replacing the shipped list.
    pub popular_list: Option<PathBuf>,
    /// A new project whose name imitates a popular or hosted one: allow, quarantine or reject.
    pub typosquat: String,
    /// MiB of memory for analyses of Python files reused by content (a wheel after its sdist,
    /// a new version after the last); 0 analyses every file afresh.
    pub reuse_mib: u64,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            quarantine_at: "suspicious".into(),
            reject_at: "malicious".into(),
            suspicious_score: 5.0,
            malicious_score: 10.0,
            rules_dirs: Vec::new(),
            popular_list: None,
            typosquat: "quarantine".into(),
            reuse_mib: (palisade_scan::DEFAULT_REUSE_BYTES >> 20) as u64,
        }
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
            scan: ScanPolicy::default(),
            accounts: AccountPolicy::default(),
            smtp: SmtpConfig::default(),
            oidc: OidcConfig::default(),
            disclosure: DisclosureConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The environment variables this configuration reads, one per field.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PALISADE_LISTEN", "listen"),
    ("PALISADE_DATA_DIR", "data_dir"),
    ("PALISADE_MAX_UPLOAD_BYTES", "max_upload_bytes"),
    ("PALISADE_MAX_UNCOMPRESSED_BYTES", "max_uncompressed_bytes"),
    ("PALISADE_MAX_DESCRIPTION_BYTES", "max_description_bytes"),
    ("PALISADE_PUBLIC_URL", "public_url"),
    ("PALISADE_LOG", "log"),
    ("PALISADE_JOURNAL_POLL_MS", "journal_poll_ms"),
    ("PALISADE_SWEEP_YOUNG_BLOBS", "sweep_young_blobs"),
    ("PALISADE_CLIENT_IP_HEADER", "client_ip_header"),
    ("PALISADE_SCAN_ENABLED", "scan.enabled"),
    ("PALISADE_SCAN_QUARANTINE_AT", "scan.quarantine_at"),
    ("PALISADE_SCAN_REJECT_AT", "scan.reject_at"),
    ("PALISADE_SCAN_SUSPICIOUS_SCORE", "scan.suspicious_score"),
    ("PALISADE_SCAN_MALICIOUS_SCORE", "scan.malicious_score"),
    ("PALISADE_SCAN_POPULAR_LIST", "scan.popular_list"),
    ("PALISADE_SCAN_TYPOSQUAT", "scan.typosquat"),
    ("PALISADE_SCAN_REUSE_MIB", "scan.reuse_mib"),
    ("PALISADE_ACCOUNTS_REQUIRE_2FA", "accounts.require_2fa"),
    ("PALISADE_ACCOUNTS_REQUIRE_VERIFIED_EMAIL", "accounts.require_verified_email"),
    ("PALISADE_ACCOUNTS_REGISTRATION", "accounts.registration"),
    ("PALISADE_ACCOUNTS_SESSION_HOURS", "accounts.session_hours"),
    ("PALISADE_ACCOUNTS_MAX_FAILURES", "accounts.max_failures"),
    ("PALISADE_ACCOUNTS_ACCOUNT_MAX_FAILURES", "accounts.account_max_failures"),
    ("PALISADE_ACCOUNTS_ADDRESS_MAX_FAILURES", "accounts.address_max_failures"),
    ("PALISADE_ACCOUNTS_GLOBAL_MAX_FAILURES", "accounts.global_max_failures"),
    ("PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES", "accounts.token_max_failures"),
    ("PALISADE_ACCOUNTS_LOCKOUT_SECS", "accounts.lockout_secs"),
    ("PALISADE_ACCOUNTS_FIRST_LOCKOUT_SECS", "accounts.first_lockout_secs"),
    ("PALISADE_ACCOUNTS_KNOWN_ADDRESS_DAYS", "accounts.known_address_days"),
    ("PALISADE_SMTP_HOST", "smtp.host"),
    ("PALISADE_SMTP_PORT", "smtp.port"),
    ("PALISADE_SMTP_SECURITY", "smtp.security"),
    ("PALISADE_SMTP_USERNAME", "smtp.username"),
    ("PALISADE_SMTP_PASSWORD", "smtp.password"),
    ("PALISADE_SMTP_FROM", "smtp.from"),
    ("PALISADE_OIDC_ENABLED", "oidc.enabled"),
    ("PALISADE_OIDC_AUDIENCE", "oidc.audience"),
    ("PALISADE_OIDC_GITHUB_ISSUER", "oidc.github_issuer"),
    ("PALISADE_OIDC_GITLAB_ISSUER", "oidc.gitlab_issuer"),
    ("PALISADE_OIDC_TRUSTED_ISSUERS", "oidc.trusted_issuers"),
    ("PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK", "oidc.allow_insecure_loopback"),
    ("PALISADE_OIDC_LEEWAY_SECS", "oidc.leeway_secs"),
    ("PALISADE_OIDC_TOKEN_TTL_SECS", "oidc.token_ttl_secs"),
    ("PALISADE_OIDC_PENDING_PUBLISHER_DAYS", "oidc.pending_publisher_days"),
    ("PALISADE_OIDC_MAX_PENDING_PUBLISHERS", "oidc.max_pending_publishers"),
    ("PALISADE_DISCLOSURE_ENABLED", "disclosure.enabled"),
    ("PALISADE_HTTP_HEADER_TIMEOUT_SECS", "http.header_timeout_secs"),
    ("PALISADE_HTTP_IDLE_TIMEOUT_SECS", "http.idle_timeout_secs"),
    ("PALISADE_HTTP_BODY_TIMEOUT_SECS", "http.body_timeout_secs"),
    ("PALISADE_HTTP_MAX_CONNECTIONS", "http.max_connections"),
    ("PALISADE_HTTP_MAX_CONNECTIONS_PER_CLIENT", "http.max_connections_per_client"),
];

impl Config {
    /// Builds the configuration from TOML text (may be empty) and an environment lookup.
    pub fn load(toml_text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml_text.parse().map_err(|e: toml::de::Error| ConfigError(vec![e.to_string()]))?;
        let mut errors = Vec::new();
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        for (var, key) in ENV_VARS {
            let Some(raw) = env(var) else { continue };
            let (section, leaf) = match key.split_once('.') {
                Some((s, l)) => (Some(s), l),
                None => (None, *key),
            };
            let default = match section {
                Some(s) => defaults.get(s).and_then(|t| t.as_table()).and_then(|t| t.get(leaf)),
                None => defaults.get(leaf),
            };
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
                Some(toml::Value::Array(_)) => toml::Value::Array(
                    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| toml::Value::String(s.into())).collect(),
                ),
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
        }
        let config: Config = match toml::Value::Table(table).try_into() {
            Ok(c) => c,
            Err(e) => {
                errors.push(e.to_string());
                return Err(ConfigError(errors));
            }
        };
        errors.extend(config.validate());
        if errors.is_empty() { Ok(config) } else { Err(ConfigError(errors)) }
    }

    fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!("listen = {:?}: expected an address such as 127.0.0.1:8080", self.listen));
        }
        if self.max_upload_bytes == 0 {
            errors.push("max_upload_bytes must be positive".into());
        }
        if self.max_description_bytes == 0 {
            errors.push("max_description_bytes must be positive".into());
        }
        if self.journal_poll_ms == 0 {
            errors.push("journal_poll_ms must be positive".into());
        }
        let verdicts = ["suspicious", "malicious", "never"];
        for (key, v) in [("scan.quarantine_at", &self.scan.quarantine_at), ("scan.reject_at", &self.scan.reject_at)] {
            if !verdicts.contains(&v.as_str()) {
                errors.push(format!("{key} = {v:?}: expected suspicious, malicious or never"));
            }
        }
        if !["allow", "quarantine", "reject"].contains(&self.scan.typosquat.as_str()) {
            errors.push(format!("scan.typosquat = {:?}: expected allow, quarantine or reject", self.scan.typosquat));
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
        if !["starttls", "tls", "none"].contains(&self.smtp.security.as_str()) {
            errors.push(format!("smtp.security = {:?}: expected starttls, tls or none", self.smtp.security));
        }
        if self.smtp.port == 0 || self.smtp.port > 65535 {
            errors.push(format!("smtp.port = {}: expected a TCP port", self.smtp.port));
        }
        let a = &self.accounts;
        for (key, value) in [
            ("session_hours", a.session_hours),
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
        let oidc = &self.oidc;
        for issuer in std::iter::once(&oidc.github_issuer).chain(std::iter::once(&oidc.gitlab_issuer)).chain(&oidc.trusted_issuers) {
            if let Err(e) = check_issuer_url(issuer, oidc.allow_insecure_loopback) {
                errors.push(format!("oidc issuer {issuer:?}: {e}"));
            }
        }
        for p in &self.disclosure.partners {
            if p.keys_url.is_none() && p.public_keys.is_empty() {
                errors.push(format!("disclosure partner {:?}: needs keys_url or public_keys", p.name));
            }
            if p.keys_ttl_secs == 0 || p.keys_ttl_secs > 86_400 {
                errors.push(format!("disclosure partner {:?}: keys_ttl_secs = {}: expected 1 to 86400 seconds", p.name, p.keys_ttl_secs));
            }
        }
        self.http.validate(&mut errors);
        errors
    }
}

impl serde::Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("listen", &self.listen)?;
        m.serialize_entry("data_dir", &self.data_dir)?;
        m.serialize_entry("max_upload_bytes", &self.max_upload_bytes)?;
        m.serialize_entry("max_uncompressed_bytes", &self.max_uncompressed_bytes)?;
        m.serialize_entry("max_description_bytes", &self.max_description_bytes)?;
        if let Some(u) = &self.public_url {
            m.serialize_entry("public_url", u)?;
        }
        m.serialize_entry("log", &self.log)?;
        m.serialize_entry("journal_poll_ms", &self.journal_poll_ms)?;
        m.serialize_entry("sweep_young_blobs", &self.sweep_young_blobs)?;
        if let Some(h) = &self.client_ip_header {
            m.serialize_entry("client_ip_header", h)?;
        }
        m.serialize_entry("scan", &self.scan)?;
        m.serialize_entry("accounts", &self.accounts)?;
        m.serialize_entry("smtp", &self.smtp)?;
        m.serialize_entry("oidc", &self.oidc)?;
        m.serialize_entry("disclosure", &self.disclosure)?;
        m.serialize_entry("http", &self.http)?;
        m.end()
    }
}

/// Issuer URLs must be https; plain http only on a loopback host, and only when allowed.
pub fn check_issuer_url(url: &str, allow_insecure_loopback: bool) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() || rest.starts_with('/') { Err("missing host".into()) } else { Ok(()) };
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]") || host.starts_with("127.");
        return match (loopback, allow_insecure_loopback) {
            (true, true) => Ok(()),
            (true, false) => {
                Err("plain http issuers are refused (set [oidc] allow_insecure_loopback = true for a test issuer on loopback)".into())
            }
            (false, _) => Err("plain http issuers are refused; use https".into()),
        };
    }
    Err("expected an https:// URL".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file() {
        let c = Config::load("listen = \"127.0.0.1:9000\"\nmax_upload_bytes = 10\n", |k| {
            (k == "PALISADE_MAX_UPLOAD_BYTES").then(|| "20".to_string())
        })
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.max_upload_bytes, 20);
    }

    #[test]
    fn nested_env_overrides() {
        let c = Config::load("[scan]\nreject_at = \"never\"\n", |k| match k {
            "PALISADE_SCAN_SUSPICIOUS_SCORE" => Some("4".into()),
            "PALISADE_SCAN_ENABLED" => Some("false".into()),
            "PALISADE_SCAN_REUSE_MIB" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.scan.reuse_mib, 0);
        assert_eq!(Config::default().scan.reuse_mib, 64);
        assert!(Config::load("[scan]\nreuse_mib = 2000000\n", |_| None).is_err());
        assert_eq!(c.scan.reject_at, "never");
        assert_eq!(c.scan.suspicious_score, 4.0);
        assert!(!c.scan.enabled);
        assert!(Config::load("[scan]\ntyposquat = \"maybe\"\n", |_| None).is_err());
    }

    #[test]
    fn lockout_keys_are_validated() {
        let c = Config::load("", |k| (k == "PALISADE_ACCOUNTS_FIRST_LOCKOUT_SECS").then(|| "30".to_string())).unwrap();
        assert_eq!((c.accounts.first_lockout_secs, c.accounts.lockout_secs), (30, 900));
        let err = Config::load("[accounts]\nfirst_lockout_secs = 1000\naddress_max_failures = 0\n", |_| None).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(err.to_string().contains("longest lockout"), "{err}");
        let err = Config::load("[oidc]\nmax_pending_publishers = 0\n", |_| None).unwrap_err();
        assert!(err.to_string().contains("max_pending_publishers"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Config::load("listen = \"nowhere\"\n", |k| (k == "PALISADE_JOURNAL_POLL_MS").then(|| "soon".to_string())).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        let err = Config::load("lisen = \"x\"\n", |_| None).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn http_limits_are_validated() {
        let c = Config::load("[http]\nheader_timeout_secs = 5\n", |k| {
            (k == "PALISADE_HTTP_MAX_CONNECTIONS_PER_CLIENT").then(|| "3".to_string())
        })
        .unwrap();
        assert_eq!((c.http.header_timeout_secs, c.http.max_connections_per_client), (5, 3));
        assert_eq!(c.http.idle_timeout_secs, 75);
        let check = |toml: &str, expected: &str| {
            let err = Config::load(toml, |_| None).unwrap_err().to_string();
            assert!(err.contains(expected), "{toml:?}: {err}");
        };
        check("[http]\nheader_timeout_secs = 0\n", "http.header_timeout_secs = 0: expected 1 to 3600 seconds");
        check("[http]\nidle_timeout_secs = 86400\n", "http.idle_timeout_secs = 86400: expected 1 to 3600 seconds");
        check("[http]\nbody_timeout_secs = 0\n", "http.body_timeout_secs = 0");
        check("[http]\nmax_connections = 0\n", "http.max_connections = 0: expected 1 to 1000000");
        check(
            "[http]\nmax_connections_per_client = 0\n",
            "http.max_connections_per_client = 0: expected 1 to http.max_connections (10000)",
        );
        check("[http]\nmax_connections = 10\nmax_connections_per_client = 11\n", "max_connections_per_client = 11");
        let err = Config::load("", |k| (k == "PALISADE_HTTP_IDLE_TIMEOUT_SECS").then(|| "soon".to_string())).unwrap_err();
        assert!(err.to_string().contains("PALISADE_HTTP_IDLE_TIMEOUT_SECS=\"soon\": expected a whole number"), "{err}");
    }

    #[test]
    fn disclosure_key_ttl_is_bounded() {
        assert_eq!(Config::default().disclosure.partners[0].keys_ttl_secs, 3600);
        let partner = |ttl: &str| {
            format!(
                "[[disclosure.partners]]\nname = \"p\"\nkey_id_header = \"K\"\nsignature_header = \"S\"\nkeys_url = \"https://example.test/keys\"\n{ttl}"
            )
        };
        assert_eq!(Config::load(&partner(""), |_| None).unwrap().disclosure.partners[0].keys_ttl_secs, 3600);
        assert_eq!(Config::load(&partner("keys_ttl_secs = 5\n"), |_| None).unwrap().disclosure.partners[0].keys_ttl_secs, 5);
        let err = Config::load(&partner("keys_ttl_secs = 0\n"), |_| None).unwrap_err().to_string();
        assert!(err.contains("disclosure partner \"p\": keys_ttl_secs = 0: expected 1 to 86400 seconds"), "{err}");
    }

    #[test]
    fn example_file_is_in_sync() {
        let text = include_str!("../../../palisade.example.toml");
        let parsed = Config::load(text, |_| None).expect("palisade.example.toml must load");
        let documented: Vec<&str> =
            text.lines().filter_map(|l| l.trim_start_matches('#').trim().split_once(" = ").map(|(k, _)| k.trim())).collect();
        for (var, key) in ENV_VARS {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            assert!(documented.contains(&leaf), "palisade.example.toml does not document {key}");
            assert!(text.contains(var), "palisade.example.toml does not mention {var}");
        }
        assert_eq!(parsed.listen, Config::default().listen);
    }
}
