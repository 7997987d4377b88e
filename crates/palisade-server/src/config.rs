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
    /// The URL clients reach this server at, for absolute links (the JSON API). Without it,
    /// links are built from the request's Host header.
    pub public_url: Option<String>,
    /// Log filter (`info`, `warn`, `palisade_server=debug`, ...).
    pub log: String,
    /// How often the server checks the journal for changes made by other processes, in ms.
    pub journal_poll_ms: u64,
    /// Let the start-up orphan sweep remove blobs younger than a minute (tests use this).
    pub sweep_young_blobs: bool,
    /// Malware scanning of uploads.
    pub scan: ScanPolicy,
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
            public_url: None,
            log: "info".into(),
            journal_poll_ms: 500,
            sweep_young_blobs: false,
            scan: ScanPolicy::default(),
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
    ("PALISADE_PUBLIC_URL", "public_url"),
    ("PALISADE_LOG", "log"),
    ("PALISADE_JOURNAL_POLL_MS", "journal_poll_ms"),
    ("PALISADE_SWEEP_YOUNG_BLOBS", "sweep_young_blobs"),
    ("PALISADE_SCAN_ENABLED", "scan.enabled"),
    ("PALISADE_SCAN_QUARANTINE_AT", "scan.quarantine_at"),
    ("PALISADE_SCAN_REJECT_AT", "scan.reject_at"),
    ("PALISADE_SCAN_SUSPICIOUS_SCORE", "scan.suspicious_score"),
    ("PALISADE_SCAN_MALICIOUS_SCORE", "scan.malicious_score"),
    ("PALISADE_SCAN_POPULAR_LIST", "scan.popular_list"),
    ("PALISADE_SCAN_TYPOSQUAT", "scan.typosquat"),
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
        if self.scan.suspicious_score <= 0.0 || self.scan.malicious_score < self.scan.suspicious_score {
            errors.push("scan scores: need 0 < suspicious_score <= malicious_score".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(format!("public_url = {url:?}: expected an http:// or https:// URL"));
        }
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
        if let Some(u) = &self.public_url {
            m.serialize_entry("public_url", u)?;
        }
        m.serialize_entry("log", &self.log)?;
        m.serialize_entry("journal_poll_ms", &self.journal_poll_ms)?;
        m.serialize_entry("sweep_young_blobs", &self.sweep_young_blobs)?;
        m.serialize_entry("scan", &self.scan)?;
        m.end()
    }
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
            _ => None,
        })
        .unwrap();
        assert_eq!(c.scan.reject_at, "never");
        assert_eq!(c.scan.suspicious_score, 4.0);
        assert!(!c.scan.enabled);
        assert!(Config::load("[scan]\ntyposquat = \"maybe\"\n", |_| None).is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Config::load("listen = \"nowhere\"\n", |k| (k == "PALISADE_JOURNAL_POLL_MS").then(|| "soon".to_string())).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        let err = Config::load("lisen = \"x\"\n", |_| None).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
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
