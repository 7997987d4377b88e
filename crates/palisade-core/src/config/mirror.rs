//! `[mirror]`: the pull-through mirror of other indexes (docs/mirror.md). Off until an upstream
//! is configured.

use serde::{Deserialize, Serialize};

closed_set! {
    /// What happens to the first upload of a project whose name exists upstream.
    pub enum UpstreamNames {
        /// Accepted, flagged on its page and in `palisade mirror status`; its owners are mailed.
        Allow = "allow",
        /// Refused with 409.
        Refuse = "refuse",
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorConfig {
    /// The indexes mirrored (`[[mirror.upstreams]]`), asked in order. None by default: nothing
    /// is fetched.
    pub upstreams: Vec<UpstreamConfig>,
    /// Names never looked up upstream (PEP 503 normalized; `acme-*` covers `acme` and every
    /// `acme-...`). They may be uploaded here like any name.
    pub reserved: Vec<String>,
    /// Names whose page lists this index's files and upstream's together. Every other name
    /// hosted here is this index's alone.
    pub merge: Vec<String>,
    /// How old an upstream release must be before it is listed or downloaded, such as `3 days`
    /// (its earliest file's upstream upload time); `0` lists releases at once.
    pub min_age: String,
    /// The first upload of a project whose name exists upstream: `allow` (flagged) or `refuse`.
    pub upstream_names: UpstreamNames,
    /// How long an upstream page is used before upstream is asked again (a conditional request;
    /// until twice that, in the background while the kept page is served).
    pub refresh: String,
    /// How long "upstream has no such project" is remembered.
    pub negative: String,
    /// Largest upstream page read, in bytes.
    pub max_page_bytes: u64,
    /// Bytes of upstream pages kept in the database; past it, the pages checked longest ago go.
    pub cache_bytes: u64,
    /// How many files are read ahead at once: the files pip or uv will ask for next after a page
    /// or a wheel (the newest release, the wheel's dependencies, for the environment its
    /// User-Agent describes), fetched and scanned before it asks; twice as many pages and
    /// metadata files are looked up at once. 0 fetches only what is asked for.
    pub read_ahead: u32,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            reserved: Vec::new(),
            merge: Vec::new(),
            min_age: "0".into(),
            upstream_names: UpstreamNames::Allow,
            refresh: "5m".into(),
            negative: "1m".into(),
            max_page_bytes: 64 << 20,
            cache_bytes: 256 << 20,
            read_ahead: 4,
        }
    }
}

/// One upstream index.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A short name (letters, digits, `-`, `_`), shown in pages, refusals and `mirror status`.
    pub name: String,
    /// The simple API's base URL, ending in `/` (`https://pypi.org/simple/`); it must answer
    /// PEP 691 JSON.
    pub url: String,
    /// Hosts its pages may link files on besides its own (`files.pythonhosted.org` for PyPI).
    /// A file anywhere else is not fetched.
    #[serde(default)]
    pub file_hosts: Vec<String>,
}

impl MirrorConfig {
    /// Whether anything is mirrored.
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Whether `normalized` matches an entry of `reserved`: `acme-*` covers `acme` and every
    /// `acme-...`; `acme*` every name starting with `acme`; `acme` that name only.
    pub fn reserves(&self, normalized: &str) -> bool {
        self.reserved.iter().any(|entry| match entry.strip_suffix('*') {
            Some(stem) => {
                let bare = stem.trim_end_matches(['-', '_', '.']);
                let prefix = palisade_dist::normalize(bare);
                if bare.len() < stem.len() {
                    normalized == prefix || normalized.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with('-'))
                } else {
                    normalized.starts_with(&prefix)
                }
            }
            None => palisade_dist::normalize(entry) == normalized,
        })
    }

    /// The cooldown, in microseconds (0: none).
    pub fn min_age_micros(&self) -> i64 {
        parse_span(&self.min_age, true).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    pub fn refresh_every(&self) -> std::time::Duration {
        parse_span(&self.refresh, false).unwrap_or(std::time::Duration::from_secs(300))
    }

    pub fn negative_for(&self) -> std::time::Duration {
        parse_span(&self.negative, true).unwrap_or(std::time::Duration::from_secs(60))
    }

    pub(super) fn validate(&self, errors: &mut Vec<String>) {
        let mut names = std::collections::HashSet::new();
        for u in &self.upstreams {
            if u.name.is_empty() || u.name.len() > 64 || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                errors.push(format!("mirror.upstreams name {:?}: expected letters, digits, '-' or '_'", u.name));
            }
            if !names.insert(u.name.as_str()) {
                errors.push(format!("mirror.upstreams name {:?}: used twice", u.name));
            }
            match url::Url::parse(&u.url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                    if !u.url.ends_with('/') {
                        errors.push(format!("mirror.upstreams {:?}: url must end with '/' (such as https://pypi.org/simple/)", u.name));
                    }
                    if parsed.scheme() == "http" && !super::is_loopback(&parsed) {
                        errors.push(format!(
                            "mirror.upstreams {:?}: plain http is refused for an index on another machine (its pages name the hashes files are checked against); use https",
                            u.name
                        ));
                    }
                    if !parsed.username().is_empty() || parsed.password().is_some() {
                        errors.push(format!("mirror.upstreams {:?}: a URL with user information (user@host) is refused", u.name));
                    }
                }
                _ => errors.push(format!("mirror.upstreams {:?}: url {:?}: expected an http(s):// URL", u.name, u.url)),
            }
            for h in &u.file_hosts {
                if h.is_empty() || h.contains(['/', ':', '@', ' ']) {
                    errors.push(format!("mirror.upstreams {:?}: file_hosts entry {h:?}: expected a host name", u.name));
                }
            }
        }
        for (key, list) in [("reserved", &self.reserved), ("merge", &self.merge)] {
            for n in list {
                let bare = n.strip_suffix('*').unwrap_or(n);
                let bare = if key == "reserved" { bare.trim_end_matches(['-', '_', '.']) } else { bare };
                if bare.is_empty() || palisade_dist::ProjectName::new(bare).is_err() || (key == "merge" && n.contains('*')) {
                    errors.push(format!(
                        "mirror.{key} {n:?}: expected a project name{}",
                        if key == "reserved" { " or a prefix such as acme-*" } else { "" }
                    ));
                }
            }
        }
        for m in &self.merge {
            let normalized = palisade_dist::normalize(m);
            if self.reserves(&normalized) {
                errors.push(format!("mirror.merge {m:?} is also reserved (mirror.reserved): a reserved name is never looked up upstream"));
            }
        }
        for (key, text, zero) in [("min_age", &self.min_age, true), ("refresh", &self.refresh, false), ("negative", &self.negative, true)] {
            if let Err(e) = parse_span(text, zero) {
                errors.push(format!("mirror.{key} = {text:?}: {e}"));
            }
        }
        if self.max_page_bytes < 1 << 20 {
            errors.push("mirror.max_page_bytes: expected at least 1 MiB".into());
        }
        if self.read_ahead > 64 {
            errors.push("mirror.read_ahead: expected at most 64 (files fetched and scanned at once)".into());
        }
        if self.cache_bytes < self.max_page_bytes {
            errors.push("mirror.cache_bytes: expected at least mirror.max_page_bytes".into());
        }
    }
}

/// A span such as `3 days`, `90m` or `1h`: at most a year; `0` when `zero` allows it.
fn parse_span(text: &str, zero: bool) -> Result<std::time::Duration, &'static str> {
    let t = text.trim();
    if t == "0" {
        return if zero { Ok(std::time::Duration::ZERO) } else { Err("expected a positive span") };
    }
    let span: jiff::Span = t.parse().map_err(|_| "expected a number and a unit, such as 3 days, 12h or 90m")?;
    let signed = span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).map_err(|_| "use seconds, minutes, hours or days")?;
    let d = std::time::Duration::try_from(signed).map_err(|_| "it must not be negative")?;
    if d.is_zero() && !zero {
        return Err("expected a positive span");
    }
    if d > std::time::Duration::from_secs(366 * 86_400) {
        return Err("expected at most a year");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span("3 days", true), Ok(std::time::Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_span("90m", false), Ok(std::time::Duration::from_secs(5400)));
        assert_eq!(parse_span("0", true), Ok(std::time::Duration::ZERO));
        assert!(parse_span("0", false).is_err());
        assert!(parse_span("-1h", true).is_err());
        assert!(parse_span("2 years", true).is_err());
        assert!(parse_span("soon", true).is_err());
    }

    #[test]
    fn validation_names_each_problem() {
        let config = MirrorConfig {
            upstreams: vec![
                UpstreamConfig { name: "pypi".into(), url: "http://pypi.org/simple/".into(), file_hosts: vec![] },
                UpstreamConfig { name: "pypi".into(), url: "https://example.org/simple".into(), file_hosts: vec!["a/b".into()] },
            ],
            reserved: vec!["acme-*".into(), "*".into()],
            merge: vec!["ok".into(), "no-*".into()],
            min_age: "soon".into(),
            ..MirrorConfig::default()
        };
        let mut errors = Vec::new();
        config.validate(&mut errors);
        let text = errors.join("\n");
        for want in [
            "plain http is refused",
            "used twice",
            "must end with '/'",
            "file_hosts entry",
            "mirror.reserved \"*\"",
            "mirror.merge \"no-*\"",
            "mirror.min_age",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        assert!(!text.contains("mirror.reserved \"acme-*\""), "{text}");
        let mut ok = Vec::new();
        MirrorConfig::default().validate(&mut ok);
        assert!(ok.is_empty(), "{ok:?}");
    }
}
