//! Loading and validation, the regression tests of issue 13's configuration bugs, and the checks
//! that keep docs/configuration.md and palisade.example.toml true to the types.

use std::collections::BTreeSet;

use super::*;

#[test]
fn env_overrides_file() {
    let c = Config::load("listen = \"127.0.0.1:9000\"\nmax_upload_bytes = 10\n", |k| {
        (k == env::PALISADE_MAX_UPLOAD_BYTES).then(|| "20".to_string())
    })
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:9000");
    assert_eq!(c.max_upload_bytes, 20);
}

#[test]
fn nested_env_overrides() {
    let c = Config::load("[scan]\nreject_at = \"never\"\n", |k| match k {
        env::PALISADE_SCAN_SUSPICIOUS_SCORE => Some("4".into()),
        env::PALISADE_SCAN_ENABLED => Some("false".into()),
        env::PALISADE_SCAN_REUSE_MIB => Some("0".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(c.scan.reuse_mib, 0);
    assert_eq!(Config::default().scan.reuse_mib, 64);
    assert!(Config::load("[scan]\nreuse_mib = 2000000\n", |_| None).is_err());
    assert_eq!(c.scan.reject_at, VerdictThreshold::Never);
    assert_eq!(c.scan.suspicious_score, 4.0);
    assert!(!c.scan.enabled);
    assert!(Config::load("[scan]\ntyposquat = \"maybe\"\n", |_| None).is_err());
}

#[test]
fn lockout_keys_are_validated() {
    let c = Config::load("", |k| (k == env::PALISADE_ACCOUNTS_FIRST_LOCKOUT_SECS).then(|| "30".to_string())).unwrap();
    assert_eq!((c.accounts.first_lockout_secs, c.accounts.lockout_secs), (30, 900));
    let err = Config::load("[accounts]\nfirst_lockout_secs = 1000\naddress_max_failures = 0\n", |_| None).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    assert!(err.to_string().contains("longest lockout"), "{err}");
    let err = Config::load("[oidc]\nmax_pending_publishers = 0\n", |_| None).unwrap_err();
    assert!(err.to_string().contains("max_pending_publishers"), "{err}");
}

#[test]
fn every_problem_is_reported() {
    let err = Config::load("listen = \"nowhere\"\n", |k| (k == env::PALISADE_JOURNAL_POLL_MS).then(|| "soon".to_string())).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    let err = Config::load("lisen = \"x\"\n", |_| None).unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
}

#[test]
fn http_limits_are_validated() {
    let c = Config::load("[http]\nheader_timeout_secs = 5\n", |k| {
        (k == env::PALISADE_HTTP_MAX_CONNECTIONS_PER_CLIENT).then(|| "3".to_string())
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
    check("[http]\nmax_connections_per_client = 0\n", "http.max_connections_per_client = 0: expected 1 to http.max_connections (10000)");
    check("[http]\nmax_connections = 10\nmax_connections_per_client = 11\n", "max_connections_per_client = 11");
    let err = Config::load("", |k| (k == env::PALISADE_HTTP_IDLE_TIMEOUT_SECS).then(|| "soon".to_string())).unwrap_err();
    assert!(err.to_string().contains("PALISADE_HTTP_IDLE_TIMEOUT_SECS=\"soon\": expected a whole number"), "{err}");
}

#[test]
fn closed_sets_name_the_key_and_the_allowed_values() {
    let toml = "listen = \"nowhere\"\n[scan]\ntyposquat = \"maybe\"\nquarantine_at = \"clean\"\n[smtp]\nsecurity = \"ssl\"\n";
    let err = Config::load(toml, |k| (k == env::PALISADE_SCAN_REJECT_AT).then(|| "sometimes".to_string())).unwrap_err();
    let expected = [
        "scan.quarantine_at: unknown variant `clean`, expected one of `suspicious`, `malicious`, `never`",
        "scan.reject_at (from PALISADE_SCAN_REJECT_AT): unknown variant `sometimes`, expected one of `suspicious`, `malicious`, `never`",
        "scan.typosquat: unknown variant `maybe`, expected one of `allow`, `quarantine`, `reject`",
        "smtp.security: unknown variant `ssl`, expected one of `starttls`, `tls`, `none`",
        "listen = \"nowhere\": expected an address such as 127.0.0.1:8080",
    ];
    let mut got = err.0.clone();
    got.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(got, expected);

    let c = Config::load("[scan]\nquarantine_at = \"malicious\"\ntyposquat = \"reject\"\n[smtp]\nsecurity = \"none\"\n", |_| None).unwrap();
    assert_eq!(
        (c.scan.quarantine_at, c.scan.typosquat, c.smtp.security),
        (VerdictThreshold::Malicious, TyposquatAction::Reject, SmtpSecurity::None)
    );
    assert!(VerdictThreshold::Malicious.reached_by(Verdict::Malicious));
    assert!(!VerdictThreshold::Malicious.reached_by(Verdict::Suspicious));
    assert!(VerdictThreshold::Suspicious.reached_by(Verdict::Malicious));
    assert!(!VerdictThreshold::Never.reached_by(Verdict::Malicious));
}

#[test]
fn a_refused_key_does_not_hide_the_next() {
    // Each of these stops serde on its own; all are reported, with the validation problems.
    let toml = "lisen = \"x\"\nmax_upload_bytes = \"big\"\n[scan]\nreject_at = 3\n[[disclosure.partners]]\nkey_id_header = \"A\"\n\
                signature_header = \"B\"\nkeys_url = \"https://k.example\"\n[http]\nmax_connections = 0\n";
    let err = Config::load(toml, |k| (k == env::PALISADE_SMTP_PORT).then(|| "70000".to_string())).unwrap_err();
    let text = err.to_string();
    for expected in [
        "lisen: unknown field `lisen`",
        "max_upload_bytes: invalid type: string \"big\", expected u64",
        "scan.reject_at: invalid type: integer `3`, expected one of `suspicious`, `malicious`, `never`",
        "disclosure.partners[0]: missing field `name`",
        "smtp.port (from PALISADE_SMTP_PORT): invalid value: integer `70000`, expected u16",
        "http.max_connections = 0",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // Seven: max_connections_per_client (default 256) is now above max_connections as well.
    assert_eq!(err.0.len(), 7, "{text}");
}

#[test]
fn smtp_password_is_a_secret() {
    let c = Config::load("[smtp]\nhost = \"mail.example\"\nusername = \"palisade\"\npassword = \"hunter2\"\n", |_| None).unwrap();
    assert_eq!(c.smtp.password.as_ref().map(Secret::expose), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    let written = toml::to_string(&c).unwrap();
    assert!(!written.contains("hunter2") && !written.contains("password"), "{written}");
    let c = Config::load("", |k| (k == env::PALISADE_SMTP_PASSWORD).then(|| "from-env".to_string())).unwrap();
    assert_eq!(c.smtp.password.as_ref().map(Secret::expose), Some("from-env"));
}

#[test]
fn a_syntax_error_does_not_echo_the_password() {
    let err = Config::load("[smtp]\nhost = \"mail.example\"\npassword = \"hunter2\n", |_| None).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("TOML syntax error at line 3, column"), "{text}");
}

// ---- Regression tests for the bugs of issue 13 --------------------------------------------------

/// `allow_insecure_loopback` accepted `http://127.evil.example` (a prefix check on `127.`) and
/// `http://127.0.0.1@evil.example` (the text before `@` taken for the host).
#[test]
fn allow_insecure_loopback_refuses_127_evil_example() {
    for url in [
        "http://127.evil.example",
        "http://127.evil.example:8080/",
        "http://127.0.0.1.evil.example/",
        "http://127.0.0.1@evil.example",
        "http://127.0.0.1:80@evil.example/",
        "http://localhost@evil.example",
        "http://localhost.evil.example",
        "http://[::1].evil.example",
        "http://[::2]",
        "http://10.0.0.1",
        "http://evil.example/127.0.0.1",
        "http://evil.example?127.0.0.1",
        "ftp://127.0.0.1",
        "http://",
        "127.0.0.1",
    ] {
        assert!(check_issuer_url(url, true).is_err(), "{url} was accepted as a loopback issuer");
    }
    for url in
        ["http://127.0.0.1", "http://127.0.0.1:8080/x", "http://127.1.2.3", "http://[::1]", "http://[::1]:9000/x", "http://localhost:1234"]
    {
        assert_eq!(check_issuer_url(url, true), Ok(()), "{url}");
        assert!(check_issuer_url(url, false).unwrap_err().contains("allow_insecure_loopback"), "{url}");
    }
    assert_eq!(check_issuer_url("https://token.actions.githubusercontent.com", false), Ok(()));
    assert!(check_issuer_url("https://user:pw@issuer.example", false).unwrap_err().contains("user information"));
    // As a configured issuer, too.
    let err =
        Config::load("[oidc]\nallow_insecure_loopback = true\ntrusted_issuers = [\"http://127.evil.example\"]\n", |_| None).unwrap_err();
    assert!(err.to_string().contains("oidc issuer \"http://127.evil.example\": plain http issuers are refused; use https"), "{err}");
}

/// `session_hours` and `max_upload_bytes` had no upper bound, and the arithmetic that uses them
/// (a session's expiry in microseconds, the upload's declared-length limit) could overflow.
#[test]
fn session_hours_and_max_upload_bytes_are_bounded() {
    let err = Config::load("max_upload_bytes = 9223372036854775807\n[accounts]\nsession_hours = 4294967295\n", |_| None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("max_upload_bytes = 9223372036854775807: expected 1 to 68719476736 (64 GiB)"), "{text}");
    assert!(text.contains("accounts.session_hours = 4294967295: expected 1 to 8760 (a year)"), "{text}");
    assert_eq!(err.0.len(), 2, "{text}");
    assert!(Config::load("", |k| (k == env::PALISADE_ACCOUNTS_SESSION_HOURS).then(|| "8761".to_string())).is_err());

    // The largest allowed values load, and a session's expiry computed from them fits.
    let largest = format!("max_upload_bytes = {MAX_UPLOAD_BYTES}\n[accounts]\nsession_hours = {MAX_SESSION_HOURS}\n");
    let c = Config::load(&largest, |_| None).unwrap();
    assert_eq!(c.accounts.session_micros(), 8760 * 3_600_000_000);
    assert!(palisade_store::now_micros().checked_add(c.accounts.session_micros()).is_some());
    // A policy built in code past the bound saturates instead of wrapping.
    let unchecked = AccountPolicy { session_hours: u64::MAX, ..AccountPolicy::default() };
    assert_eq!(unchecked.session_micros(), i64::MAX);
}

/// `oidc.leeway_secs` had no upper bound either: a large one accepts long-expired ID tokens,
/// and `leeway_secs as i64 + 60` (the replay record's lifetime) overflowed.
#[test]
fn oidc_leeway_secs_is_bounded() {
    let err = Config::load("[oidc]\nleeway_secs = 9223372036854775807\n", |_| None).unwrap_err();
    assert!(err.to_string().contains("oidc.leeway_secs = 9223372036854775807: expected at most 600 (10 minutes)"), "{err}");
    assert_eq!(Config::load("[oidc]\nleeway_secs = 600\n", |_| None).unwrap().oidc.leeway_secs, 600);
}

// ---- The documentation is true to the types ------------------------------------------------------

/// The keys of a configuration struct as `(section, key)`, listed by destructuring it without
/// `..`: a new field does not compile until it is listed here, so no key escapes the checks below.
macro_rules! keys {
    ($section:literal: $ty:ident { $($field:ident),* $(,)? }) => {{
        let _exhaustive = |value: $ty| {
            let $ty { $($field: _),* } = value;
        };
        vec![$(($section, stringify!($field))),*]
    }};
}

/// The tables (`[scan]`) inside `Config`: sections, not keys.
const SECTIONS: &[&str] = &[
    "database",
    "storage",
    "jobs",
    "scan",
    "accounts",
    "smtp",
    "oidc",
    "attestations",
    "transparency",
    "disclosure",
    "sharing",
    "http",
    "security_txt",
    "web",
    "mirror",
];

/// Every key, with its section ("" for the top level; `disclosure.partners` for a partner's keys).
fn all_keys() -> BTreeSet<(&'static str, &'static str)> {
    #[rustfmt::skip]
    let lists = [
        keys!("": Config { listen, data_dir, max_upload_bytes, max_uncompressed_bytes, max_description_bytes, public_url, log,
            journal_poll_ms, sweep_young_blobs, client_ip_header, database, storage, jobs, scan, accounts, smtp, oidc, attestations,
            transparency, disclosure, sharing, http, security_txt, web, mirror }),
        keys!("database": DatabaseConfig { url, pool_size }),
        keys!("storage": StorageConfig { url, endpoint, region, access_key_id, secret_access_key, allow_http,
            presigned_downloads_secs }),
        keys!("jobs": JobsConfig { lease_secs }),
        keys!("scan": ScanPolicy { enabled, quarantine_at, reject_at, suspicious_score, malicious_score, rules_dirs, popular_list,
            typosquat, reuse_mib }),
        keys!("accounts": AccountPolicy { require_2fa, require_verified_email, critical_require_webauthn, reauth_secs, registration, session_hours, max_failures,
            account_max_failures, address_max_failures, global_max_failures, token_max_failures, lockout_secs,
            first_lockout_secs, known_address_days }),
        keys!("smtp": SmtpConfig { host, port, security, username, password, from }),
        keys!("oidc": OidcConfig { enabled, audience, github_issuer, gitlab_issuer, trusted_issuers, allow_insecure_loopback,
            leeway_secs, token_ttl_secs, pending_publisher_days, max_pending_publishers }),
        keys!("attestations": AttestationsConfig { trust_root, github_certificate_issuer, gitlab_certificate_issuer, custom_issuers }),
        keys!("attestations.custom_issuers": CustomIssuer { token_issuer, certificate_issuer, claims }),
        keys!("transparency": TransparencyConfig { origin, key_file, key, sequence_ms }),
        keys!("sharing": SharingConfig { export, prefix, credit, feeds, max_feed_bytes, auto_quarantine, new_project_hours, reporters,
            webhooks }),
        keys!("sharing.feeds": FeedConfig { name, source, interval, token }),
        keys!("sharing.webhooks": WebhookConfig { url, secret }),
        keys!("disclosure": DisclosureConfig { enabled, partners }),
        keys!("disclosure.partners": DisclosurePartner { name, key_id_header, signature_header, keys_url, keys_ttl_secs, public_keys }),
        keys!("disclosure.partners.public_keys": PartnerKey { key_identifier, key }),
        keys!("security_txt": SecurityTxt { contact, expires, policy, preferred_languages, acknowledgments }),
        keys!("web": WebConfig { notices }),
        keys!("mirror": MirrorConfig { upstreams, reserved, merge, min_age, upstream_names, refresh, negative, max_page_bytes,
            cache_bytes, read_ahead }),
        keys!("mirror.upstreams": UpstreamConfig { name, url, file_hosts }),
        keys!("http": HttpConfig { header_timeout_secs, idle_timeout_secs, body_timeout_secs, max_connections,
            max_connections_per_client }),
    ];
    lists.into_iter().flatten().filter(|(section, key)| !(section.is_empty() && SECTIONS.contains(key))).collect()
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() { key.to_string() } else { format!("{section}.{key}") }
}

/// The defaults, serialized as the loader sees them.
fn defaults() -> toml::Table {
    toml::Table::try_from(Config::default()).expect("the defaults serialize")
}

/// The default of a key, when it has one that can be written down: `None` for optional keys
/// without a default and for the keys of array-of-tables entries.
fn default_of(section: &str, key: &str) -> Option<toml::Value> {
    let defaults = defaults();
    let table = if section.is_empty() { Some(&defaults) } else { defaults.get(section).and_then(toml::Value::as_table) };
    table?.get(key).cloned()
}

/// The keys of the serialized defaults plus those of the environment variables are every key
/// but those of entries in lists of tables: serialization and `ENV_VARS` leave none out, and the
/// list above is no wider than the types.
#[test]
fn keys_from_defaults_and_env_vars_are_every_key() {
    let mut derived = BTreeSet::new();
    for (key, value) in defaults() {
        match value {
            toml::Value::Table(t) => derived.extend(t.keys().map(|leaf| (key.clone(), leaf.clone()))),
            _ => {
                derived.insert((String::new(), key));
            }
        }
    }
    let partners = Config::default().disclosure.partners;
    let partner = toml::Table::try_from(&partners[0]).unwrap();
    derived.extend(partner.keys().map(|k| ("disclosure.partners".to_string(), k.clone())));
    for (_, key) in ENV_VARS {
        let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        derived.insert((section.to_string(), leaf.to_string()));
    }
    derived.extend(
        [
            ("disclosure.partners.public_keys", "key_identifier"),
            ("disclosure.partners.public_keys", "key"),
            ("attestations.custom_issuers", "token_issuer"),
            ("attestations.custom_issuers", "certificate_issuer"),
            ("attestations.custom_issuers", "claims"),
            ("sharing.feeds", "name"),
            ("sharing.feeds", "source"),
            ("sharing.feeds", "interval"),
            ("sharing.feeds", "token"),
            ("sharing.webhooks", "url"),
            ("sharing.webhooks", "secret"),
            ("mirror.upstreams", "name"),
            ("mirror.upstreams", "url"),
            ("mirror.upstreams", "file_hosts"),
        ]
        .map(|(s, k)| (s.into(), k.into())),
    );
    let all: BTreeSet<(String, String)> = all_keys().into_iter().map(|(s, k)| (s.to_string(), k.to_string())).collect();
    assert_eq!(derived, all);
}

/// Every variable is named after its key, and every key but the lists of tables has one.
#[test]
fn every_key_has_its_env_var() {
    for (section, key) in all_keys() {
        if section.starts_with("disclosure.partners")
            || (section, key) == ("disclosure", "partners")
            || section.starts_with("attestations.custom_issuers")
            || (section, key) == ("attestations", "custom_issuers")
            || section.starts_with("sharing.")
            || (section, key) == ("sharing", "feeds")
            || (section, key) == ("sharing", "webhooks")
            || section == "mirror.upstreams"
            || (section, key) == ("mirror", "upstreams")
        {
            continue;
        }
        let dotted = dotted(section, key);
        let expected = format!("PALISADE_{}", dotted.replace('.', "_").to_uppercase());
        assert_eq!(env::var_for(&dotted), Some(expected.as_str()), "{dotted}");
    }
    let mut seen = BTreeSet::new();
    for (var, key) in ENV_VARS {
        assert!(seen.insert(*var), "{var} is declared twice");
        assert!(all_keys().iter().any(|(s, k)| dotted(s, k) == *key), "{var} sets {key}, which is not a key");
    }
}

/// A documented table row: its section, its key and its cells by column name.
struct Row {
    section: String,
    key: String,
    cells: std::collections::BTreeMap<String, String>,
}

/// The rows of docs/configuration.md's key tables (those whose first column is `key`), each in
/// the section of the nearest heading that names one in backticks (`` `[scan]` ``); before the
/// first such heading, the top level.
fn documented_rows(md: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut section = String::new();
    let mut columns: Option<Vec<String>> = None;
    let split = |line: &str| -> Vec<String> { line.trim().trim_matches('|').split('|').map(|c| c.trim().to_string()).collect() };
    for line in md.lines() {
        if line.starts_with('#') {
            if let Some(start) = line.find("`[") {
                let name = &line[start + 1..];
                let name = &name[..name.find('`').unwrap_or(name.len())];
                section = name.trim_matches(['[', ']']).to_string();
            }
            continue;
        }
        if !line.starts_with('|') {
            columns = None;
            continue;
        }
        let cells = split(line);
        match &columns {
            None => columns = (cells.first().map(String::as_str) == Some("key")).then_some(cells),
            Some(_) if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) => {}
            Some(names) => {
                let key = cells[0].trim_matches('`').to_string();
                let cells = names.iter().cloned().zip(cells).collect();
                rows.push(Row { section: section.clone(), key, cells });
            }
        }
    }
    rows
}

/// How a default is written in the docs: strings bare, the rest as in TOML.
fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn configuration_md_documents_every_key() {
    let md = include_str!("../../../../docs/configuration.md");
    let rows = documented_rows(md);
    let all = all_keys();
    for (section, key) in &all {
        let found: Vec<&Row> = rows.iter().filter(|r| r.section == *section && r.key == *key).collect();
        let dotted = dotted(section, key);
        assert_eq!(found.len(), 1, "docs/configuration.md: `{dotted}` should have one row in its section's table");
        let row = found[0];
        for column in ["type", "default", "env", "meaning"] {
            assert!(row.cells.get(column).is_some_and(|c| !c.is_empty()), "docs/configuration.md: `{dotted}` has no {column}");
        }
        let env_cell = &row.cells["env"];
        match env::var_for(&dotted) {
            Some(var) => assert!(env_cell.contains(&format!("`{var}`")), "docs/configuration.md: `{dotted}` should name {var}"),
            None => assert!(!env_cell.contains("PALISADE_"), "docs/configuration.md: `{dotted}` names a variable it has not"),
        }
        // Defaults that can be written down are written as the code has them, first in the cell.
        if let Some(default) = default_of(section, key).filter(|v| !matches!(v, toml::Value::Table(_))) {
            if !(section.is_empty() || SECTIONS.contains(section)) || matches!(&default, toml::Value::Array(a) if !a.is_empty()) {
                continue;
            }
            let cell = &row.cells["default"];
            let written = cell.strip_prefix('`').and_then(|c| c.split('`').next()).unwrap_or(cell.split(' ').next().unwrap_or(""));
            assert_eq!(written, render(&default), "docs/configuration.md: the default of `{dotted}`");
        }
    }
    for row in &rows {
        assert!(
            all.contains(&(row.section.as_str(), row.key.as_str())),
            "docs/configuration.md documents `{}` in [{}], which is not a key",
            row.key,
            row.section
        );
    }
    for (var, _) in ENV_VARS.iter().chain(&[(env::PALISADE_CONFIG, "")]) {
        assert!(md.contains(var), "docs/configuration.md does not mention {var}");
    }
    assert_names_only_declared_variables("docs/configuration.md", md);
}

#[test]
fn example_file_is_in_sync() {
    let text = include_str!("../../../../palisade.example.toml");
    let parsed = Config::load(text, |_| None).expect("palisade.example.toml must load");
    // "The values shown are the defaults."
    assert_eq!(toml::Table::try_from(&parsed).unwrap(), defaults(), "palisade.example.toml's values are not the defaults");
    // Every key appears in its section, set or commented out (`# host = ...`).
    let mut section = String::new();
    let mut shown = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        // A table header commented out (an example to copy) opens its section too.
        let uncommented = line.trim_start_matches('#').trim_start();
        let line =
            if uncommented.starts_with('[') && uncommented.ends_with(']') && !uncommented.contains(' ') { uncommented } else { line };
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
            // `[[disclosure.partners]]` shows the key `partners` of `[disclosure]`.
            if line.starts_with("[[")
                && let Some((parent, key)) = section.rsplit_once('.')
            {
                shown.insert((parent.to_string(), key.to_string()));
            }
            continue;
        }
        let line = line.trim_start_matches('#').trim_start();
        if let Some((key, _)) = line.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            shown.insert((section.clone(), key.to_string()));
        }
    }
    for (section, key) in all_keys() {
        // The keys of a partner's inline public_keys entries are shown in a comment, not as lines.
        if section == "disclosure.partners.public_keys" {
            continue;
        }
        assert!(shown.contains(&(section.to_string(), key.to_string())), "palisade.example.toml does not show {}", dotted(section, key));
    }
    for (section, key) in &shown {
        assert!(
            all_keys().contains(&(section.as_str(), key.as_str())),
            "palisade.example.toml shows {}, which is not a key",
            dotted(section, key)
        );
    }
    for (var, _) in ENV_VARS {
        assert!(text.contains(var), "palisade.example.toml does not mention {var}");
    }
    assert_names_only_declared_variables("palisade.example.toml", text);
}

/// No stale or misspelt variable: every `PALISADE_*` name in `text` is declared in `env`.
fn assert_names_only_declared_variables(file: &str, text: &str) {
    let declared: BTreeSet<&str> = ENV_VARS.iter().map(|(var, _)| *var).chain([env::PALISADE_CONFIG]).collect();
    for (at, _) in text.match_indices("PALISADE_") {
        let name: String = text[at..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        // `PALISADE_*` names the family, not a variable.
        assert!(name == "PALISADE_" || declared.contains(name.as_str()), "{file} names {name}, which Palisade does not read");
    }
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

/// A secret given with the wrong type was quoted back in the error, on the terminal and in logs.
#[test]
fn a_mistyped_smtp_password_is_not_repeated_in_the_error() {
    let err = Config::load("[smtp]\npassword = 123456789\n", |_| None).unwrap_err().to_string();
    assert!(err.contains("smtp.password"), "{err}");
    assert!(!err.contains("123456789"), "{err}");
}

#[test]
fn storage_urls() {
    let load = |toml: &str| Config::load(toml, |_| None);
    let storage = |toml: &str| load(toml).unwrap().storage.storage(Path::new("/data")).unwrap();
    match storage("") {
        Storage::Folder(p) => assert_eq!(p, Path::new("/data/files")),
        other => panic!("{other:?}"),
    }
    match storage("[storage]\nurl = \"file:///srv/palisade/files\"") {
        Storage::Folder(p) => assert_eq!(p, Path::new("/srv/palisade/files")),
        other => panic!("{other:?}"),
    }
    match storage("[storage]\nurl = \"s3://my-bucket.files/prod/pypi/\"\nsecret_access_key = \"s3cr3t\"\npresigned_downloads_secs = 60") {
        Storage::Bucket(b) => {
            assert_eq!((b.bucket.as_str(), b.prefix.as_str()), ("my-bucket.files", "prod/pypi"));
            assert_eq!(b.secret_access_key.as_deref(), Some("s3cr3t"));
            assert_eq!(b.presigned_downloads, Some(std::time::Duration::from_secs(60)));
            assert!(!format!("{b:?}").contains("s3cr3t"), "the secret is redacted in Debug");
        }
        other => panic!("{other:?}"),
    }
    for (toml, want) in [
        ("url = \"http://bucket\"", "expected file://PATH or s3://BUCKET[/PREFIX]"),
        ("url = \"s3://Bad_Bucket\"", "is not a bucket name"),
        ("url = \"s3://ab\"", "is not a bucket name"),
        ("url = \"s3://bucket/a/../b\"", "has an empty, '.' or '..' part"),
        ("url = \"file://\"", "expected file://PATH"),
        ("presigned_downloads_secs = 60", "presigned downloads need a bucket"),
        ("url = \"s3://bucket\"\npresigned_downloads_secs = 86401", "expected at most 86400"),
    ] {
        let err = load(&format!("[storage]\n{toml}")).unwrap_err().to_string();
        assert!(err.contains(want), "{toml}: {err}");
    }
    // A secret that does not deserialize is not quoted back.
    let err = load("[storage]\nsecret_access_key = 12345").unwrap_err().to_string();
    assert!(!err.contains("12345"), "{err}");
}

#[test]
fn database_urls_are_checked_and_shown_without_passwords() {
    let load = |toml: &str| Config::load(toml, |_| None);
    let config = load("[database]\nurl = \"postgres://palisade:s3cr3t@db.internal:5432/palisade?sslmode=require&password=other\"").unwrap();
    let shown = config.database.display_url(Path::new("/data"));
    assert!(!shown.contains("s3cr3t") && !shown.contains("other"), "{shown}");
    assert!(shown.contains("db.internal:5432/palisade") && shown.contains("sslmode=require"), "{shown}");
    assert!(!format!("{config:?}").contains("s3cr3t"));
    assert_eq!(load("").unwrap().database.display_url(Path::new("/data")), "/data/palisade.db");
    for (toml, why) in [
        ("url = \"mysql://x@y/z\"", "expected sqlite://PATH or postgres://"),
        ("pool_size = 0", "database.pool_size = 0"),
        ("pool_size = 1000", "database.pool_size = 1000"),
    ] {
        let err = load(&format!("[database]\n{toml}")).unwrap_err().to_string();
        assert!(err.contains(why), "{toml}: {err}");
    }
}

#[test]
fn security_txt_is_checked() {
    let ok = "[security_txt]\ncontact = [\"mailto:sec@example.org\"]\nexpires = \"2030-01-01T00:00:00Z\"\n";
    let c = Config::load(ok, |_| None).unwrap();
    assert_eq!(c.security_txt.unwrap().contact, ["mailto:sec@example.org"]);
    assert!(Config::load("", |_| None).unwrap().security_txt.is_none());
    let from_env = Config::load("", |k| match k {
        env::PALISADE_SECURITY_TXT_CONTACT => Some("mailto:a@example.org, https://example.org/r".into()),
        env::PALISADE_SECURITY_TXT_EXPIRES => Some("2030-01-01T00:00:00Z".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(from_env.security_txt.unwrap().contact, ["mailto:a@example.org", "https://example.org/r"]);
    let bad = "[security_txt]\ncontact = [\"sec@example.org\"]\nexpires = \"next year\"\npolicy = \"http://x\"\n";
    let err = Config::load(bad, |_| None).unwrap_err().to_string();
    for part in ["security_txt.contact \"sec@example.org\"", "security_txt.expires = \"next year\"", "security_txt.policy"] {
        assert!(err.contains(part), "{part} not in {err}");
    }
}
