//! Every `PALISADE_*` environment variable Palisade reads, each declared once here (as uv's
//! `EnvVars`): the binary's arguments and the configuration loader name these constants, and a
//! test checks docs/configuration.md and palisade.example.toml against them. A new variable goes
//! here, never into a string literal elsewhere.

/// Declares one constant per variable, whose value is its own name, and for the variables that
/// set a configuration key, the table the loader reads.
macro_rules! variables {
    (
        other { $( $(#[$doc:meta])* $plain:ident, )* }
        keys { $( $name:ident => $key:literal, )* }
    ) => {
        $( $(#[$doc])* pub const $plain: &str = stringify!($plain); )*
        $( #[doc = concat!("Sets the configuration key `", $key, "`.")] pub const $name: &str = stringify!($name); )*

        /// The variables that set configuration keys, with the key each sets (dotted, as a
        /// `[section]` key in the file), in the order of docs/configuration.md. They win over
        /// the file; lists are given comma-separated.
        pub const ENV_VARS: &[(&str, &str)] = &[ $( ($name, $key), )* ];
    };
}

variables! {
    other {
        /// The TOML configuration file, when `--config` is not given.
        PALISADE_CONFIG,
    }

    keys {
        PALISADE_LISTEN => "listen",
        PALISADE_DATA_DIR => "data_dir",
        PALISADE_MAX_UPLOAD_BYTES => "max_upload_bytes",
        PALISADE_MAX_UNCOMPRESSED_BYTES => "max_uncompressed_bytes",
        PALISADE_MAX_DESCRIPTION_BYTES => "max_description_bytes",
        PALISADE_PUBLIC_URL => "public_url",
        PALISADE_LOG => "log",
        PALISADE_JOURNAL_POLL_MS => "journal_poll_ms",
        PALISADE_SWEEP_YOUNG_BLOBS => "sweep_young_blobs",
        PALISADE_CLIENT_IP_HEADER => "client_ip_header",
        PALISADE_DATABASE_URL => "database.url",
        PALISADE_DATABASE_POOL_SIZE => "database.pool_size",
        PALISADE_STORAGE_URL => "storage.url",
        PALISADE_STORAGE_ENDPOINT => "storage.endpoint",
        PALISADE_STORAGE_REGION => "storage.region",
        PALISADE_STORAGE_ACCESS_KEY_ID => "storage.access_key_id",
        PALISADE_STORAGE_SECRET_ACCESS_KEY => "storage.secret_access_key",
        PALISADE_STORAGE_ALLOW_HTTP => "storage.allow_http",
        PALISADE_STORAGE_PRESIGNED_DOWNLOADS_SECS => "storage.presigned_downloads_secs",
        PALISADE_JOBS_LEASE_SECS => "jobs.lease_secs",
        PALISADE_SCAN_ENABLED => "scan.enabled",
        PALISADE_SCAN_QUARANTINE_AT => "scan.quarantine_at",
        PALISADE_SCAN_REJECT_AT => "scan.reject_at",
        PALISADE_SCAN_SUSPICIOUS_SCORE => "scan.suspicious_score",
        PALISADE_SCAN_MALICIOUS_SCORE => "scan.malicious_score",
        PALISADE_SCAN_RULES_DIRS => "scan.rules_dirs",
        PALISADE_SCAN_POPULAR_LIST => "scan.popular_list",
        PALISADE_SCAN_TYPOSQUAT => "scan.typosquat",
        PALISADE_SCAN_REUSE_MIB => "scan.reuse_mib",
        PALISADE_ACCOUNTS_REQUIRE_2FA => "accounts.require_2fa",
        PALISADE_ACCOUNTS_REQUIRE_VERIFIED_EMAIL => "accounts.require_verified_email",
        PALISADE_ACCOUNTS_CRITICAL_REQUIRE_WEBAUTHN => "accounts.critical_require_webauthn",
        PALISADE_ACCOUNTS_REAUTH_SECS => "accounts.reauth_secs",
        PALISADE_ACCOUNTS_REGISTRATION => "accounts.registration",
        PALISADE_ACCOUNTS_SESSION_HOURS => "accounts.session_hours",
        PALISADE_ACCOUNTS_MAX_FAILURES => "accounts.max_failures",
        PALISADE_ACCOUNTS_ACCOUNT_MAX_FAILURES => "accounts.account_max_failures",
        PALISADE_ACCOUNTS_ADDRESS_MAX_FAILURES => "accounts.address_max_failures",
        PALISADE_ACCOUNTS_GLOBAL_MAX_FAILURES => "accounts.global_max_failures",
        PALISADE_ACCOUNTS_TOKEN_MAX_FAILURES => "accounts.token_max_failures",
        PALISADE_ACCOUNTS_LOCKOUT_SECS => "accounts.lockout_secs",
        PALISADE_ACCOUNTS_FIRST_LOCKOUT_SECS => "accounts.first_lockout_secs",
        PALISADE_ACCOUNTS_KNOWN_ADDRESS_DAYS => "accounts.known_address_days",
        PALISADE_SMTP_HOST => "smtp.host",
        PALISADE_SMTP_PORT => "smtp.port",
        PALISADE_SMTP_SECURITY => "smtp.security",
        PALISADE_SMTP_USERNAME => "smtp.username",
        PALISADE_SMTP_PASSWORD => "smtp.password",
        PALISADE_SMTP_FROM => "smtp.from",
        PALISADE_OIDC_ENABLED => "oidc.enabled",
        PALISADE_OIDC_AUDIENCE => "oidc.audience",
        PALISADE_OIDC_GITHUB_ISSUER => "oidc.github_issuer",
        PALISADE_OIDC_GITLAB_ISSUER => "oidc.gitlab_issuer",
        PALISADE_OIDC_TRUSTED_ISSUERS => "oidc.trusted_issuers",
        PALISADE_OIDC_ALLOW_INSECURE_LOOPBACK => "oidc.allow_insecure_loopback",
        PALISADE_OIDC_LEEWAY_SECS => "oidc.leeway_secs",
        PALISADE_OIDC_TOKEN_TTL_SECS => "oidc.token_ttl_secs",
        PALISADE_OIDC_PENDING_PUBLISHER_DAYS => "oidc.pending_publisher_days",
        PALISADE_OIDC_MAX_PENDING_PUBLISHERS => "oidc.max_pending_publishers",
        PALISADE_ATTESTATIONS_TRUST_ROOT => "attestations.trust_root",
        PALISADE_ATTESTATIONS_GITHUB_CERTIFICATE_ISSUER => "attestations.github_certificate_issuer",
        PALISADE_ATTESTATIONS_GITLAB_CERTIFICATE_ISSUER => "attestations.gitlab_certificate_issuer",
        PALISADE_TRANSPARENCY_ORIGIN => "transparency.origin",
        PALISADE_TRANSPARENCY_KEY_FILE => "transparency.key_file",
        PALISADE_TRANSPARENCY_KEY => "transparency.key",
        PALISADE_TRANSPARENCY_SEQUENCE_MS => "transparency.sequence_ms",
        PALISADE_DISCLOSURE_ENABLED => "disclosure.enabled",
        PALISADE_SHARING_EXPORT => "sharing.export",
        PALISADE_SHARING_PREFIX => "sharing.prefix",
        PALISADE_SHARING_CREDIT => "sharing.credit",
        PALISADE_SHARING_MAX_FEED_BYTES => "sharing.max_feed_bytes",
        PALISADE_SHARING_AUTO_QUARANTINE => "sharing.auto_quarantine",
        PALISADE_SHARING_NEW_PROJECT_HOURS => "sharing.new_project_hours",
        PALISADE_SHARING_REPORTERS => "sharing.reporters",
        PALISADE_SECURITY_TXT_CONTACT => "security_txt.contact",
        PALISADE_SECURITY_TXT_EXPIRES => "security_txt.expires",
        PALISADE_SECURITY_TXT_POLICY => "security_txt.policy",
        PALISADE_SECURITY_TXT_PREFERRED_LANGUAGES => "security_txt.preferred_languages",
        PALISADE_SECURITY_TXT_ACKNOWLEDGMENTS => "security_txt.acknowledgments",
        PALISADE_HTTP_HEADER_TIMEOUT_SECS => "http.header_timeout_secs",
        PALISADE_HTTP_IDLE_TIMEOUT_SECS => "http.idle_timeout_secs",
        PALISADE_HTTP_BODY_TIMEOUT_SECS => "http.body_timeout_secs",
        PALISADE_HTTP_MAX_CONNECTIONS => "http.max_connections",
        PALISADE_HTTP_MAX_CONNECTIONS_PER_CLIENT => "http.max_connections_per_client",
        PALISADE_WEB_NOTICES => "web.notices",
        PALISADE_MIRROR_RESERVED => "mirror.reserved",
        PALISADE_MIRROR_MERGE => "mirror.merge",
        PALISADE_MIRROR_MIN_AGE => "mirror.min_age",
        PALISADE_MIRROR_UPSTREAM_NAMES => "mirror.upstream_names",
        PALISADE_MIRROR_REFRESH => "mirror.refresh",
        PALISADE_MIRROR_NEGATIVE => "mirror.negative",
        PALISADE_MIRROR_MAX_PAGE_BYTES => "mirror.max_page_bytes",
        PALISADE_MIRROR_CACHE_BYTES => "mirror.cache_bytes",
        PALISADE_MIRROR_READ_AHEAD => "mirror.read_ahead",
    }
}

/// The variable that sets `key`, if one does.
pub fn var_for(key: &str) -> Option<&'static str> {
    ENV_VARS.iter().find(|(_, k)| *k == key).map(|(var, _)| *var)
}
