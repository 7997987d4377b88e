//! Reading one OSV JSON record into an [`Advisory`].
//!
//! The reader is lenient in what Palisade does not use (unknown fields, other ecosystems' entries,
//! `severity`, `ecosystem_specific`) and strict in what it enforces: the id, the timestamps, the
//! PyPI entries' versions, ranges and events, and the sha256 digests a record lists. A record
//! that breaks one of those rules is refused whole, with an error naming the field, rather than
//! read in part: a half-read advisory would block less than its author meant without saying so.
//!
//! Display text is the exception: `summary` and `details` are truncated rather than refused,
//! because refusing a malware record over the length of its prose would let the package through.

use serde_json::{Map, Value};

use crate::{OsvError, is_sha256_hex, is_valid_id, parse_timestamp};

/// The largest record read, in bytes (OSV.dev's largest PyPI records are a few hundred KiB).
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// `summary` is cut to this many characters.
pub const MAX_SUMMARY_CHARS: usize = 1000;
/// `details` is cut to this many bytes, on a character boundary.
pub const MAX_DETAILS_BYTES: usize = 64 * 1024;
/// The most `affected` entries a record may hold.
pub const MAX_AFFECTED: usize = 1000;
/// The most versions (`versions[]` and range events together) a record may hold.
pub const MAX_VERSIONS: usize = 10_000;
/// The most ranges a record may hold.
pub const MAX_RANGES: usize = 1000;
/// The most aliases a record may hold.
pub const MAX_ALIASES: usize = 1000;
/// The most sha256 digests a record may list.
pub const MAX_DIGESTS: usize = 10_000;
/// The longest package name or version string accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 256;

/// One OSV record as Palisade uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// The OSV id (`MAL-2024-10238`, `PYSEC-2021-1`, `x_PALISADE-2026-1`).
    pub id: String,
    /// When the record last changed, RFC 3339 as written in the record.
    pub modified: String,
    /// When the record was first published, if it says.
    pub published: Option<String>,
    /// When the record was withdrawn; a withdrawn record blocks nothing (see [`crate::decide`]).
    pub withdrawn: Option<String>,
    /// One line of text, cut to [`MAX_SUMMARY_CHARS`].
    pub summary: Option<String>,
    /// Markdown, cut to [`MAX_DETAILS_BYTES`].
    pub details: Option<String>,
    /// Other ids for the same issue.
    pub aliases: Vec<String>,
    /// Whether this reports malware rather than a vulnerability: the id starts with `MAL-`, an
    /// affected entry carries CWE-506 (Embedded Malicious Code), or the record has
    /// ossf/malicious-packages' `malicious-packages-origins`.
    pub malicious: bool,
    /// The PyPI entries only; empty when the record is about other ecosystems.
    pub packages: Vec<Affected>,
}

/// One PyPI `affected` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The PEP 503-normalised project name.
    pub name: String,
    /// Exact affected versions, as written.
    pub versions: Vec<String>,
    /// `ECOSYSTEM` and `SEMVER` ranges (`GIT` ranges are dropped: they name commits).
    pub ranges: Vec<Range>,
    /// Lowercase hex sha256 digests of affected files, from
    /// `database_specific.indicators.package_integrity[].hashes.sha256`.
    pub sha256: Vec<String>,
}

/// One range of an affected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The range's `type`; both are evaluated with PEP 440 ordering for PyPI.
    pub kind: RangeKind,
    /// The events, in the order written (evaluation sorts them).
    pub events: Vec<Event>,
}

/// The evaluated range types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    /// `ECOSYSTEM`: the ecosystem's own ordering (PEP 440).
    Ecosystem,
    /// `SEMVER`: read with PEP 440 too, which orders plain SemVer release versions the same way.
    Semver,
}

/// One event of a range: exactly one of OSV's four keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `introduced`: affected from this version on (`"0"` is the beginning).
    Introduced(String),
    /// `fixed`: not affected from this version on.
    Fixed(String),
    /// `last_affected`: affected up to and including this version.
    LastAffected(String),
    /// `limit`: nothing at or past this version is affected by the range (`"*"` is no limit).
    Limit(String),
}

impl Event {
    /// The version the event names.
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// Reads one OSV JSON record. See the module documentation for what is enforced.
pub fn parse(bytes: &[u8]) -> Result<Advisory, OsvError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(OsvError::TooLarge { what: "the OSV record".into(), limit: MAX_RECORD_BYTES as u64 });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| OsvError::Json(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(OsvError::Json("the top level must be an object".into()));
    };
    Reader::new(&top)?.advisory()
}

/// The record being read, and the budget of versions it has left.
struct Reader<'a> {
    top: &'a Map<String, Value>,
    id: String,
    versions_left: usize,
    ranges_left: usize,
    digests_left: usize,
}

impl<'a> Reader<'a> {
    fn new(top: &'a Map<String, Value>) -> Result<Self, OsvError> {
        // The id is checked first so that every later error can name the record.
        let id = match top.get("id") {
            Some(Value::String(id)) if is_valid_id(id) => id.clone(),
            Some(Value::String(id)) => {
                let shown: String = id.chars().take(40).collect();
                return Err(OsvError::Field {
                    id: "(unnamed)".into(),
                    field: "id".into(),
                    reason: format!("{shown:?} is not an OSV id (at most 128 letters, digits and `._:-`)"),
                });
            }
            _ => {
                return Err(OsvError::Field { id: "(unnamed)".into(), field: "id".into(), reason: "is missing or not a string".into() });
            }
        };
        Ok(Reader { top, id, versions_left: MAX_VERSIONS, ranges_left: MAX_RANGES, digests_left: MAX_DIGESTS })
    }

    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> OsvError {
        OsvError::Field { id: self.id.clone(), field: field.into(), reason: reason.into() }
    }

    fn advisory(mut self) -> Result<Advisory, OsvError> {
        let modified = self.timestamp("modified")?.ok_or_else(|| self.err("modified", "is required"))?;
        let published = self.timestamp("published")?;
        let withdrawn = self.timestamp("withdrawn")?;
        let summary = self.text("summary")?.map(|s| cut_chars(s, MAX_SUMMARY_CHARS));
        let details = self.text("details")?.map(|s| cut_bytes(s, MAX_DETAILS_BYTES));
        let aliases = self.aliases()?;

        let mut malicious = self.id.starts_with("MAL-")
            || self.top.get("database_specific").and_then(Value::as_object).is_some_and(|d| d.contains_key("malicious-packages-origins"));

        let affected = match self.top.get("affected") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) if a.len() <= MAX_AFFECTED => a.as_slice(),
            Some(Value::Array(_)) => {
                return Err(self.err("affected", format!("holds more than {MAX_AFFECTED} entries")));
            }
            Some(_) => return Err(self.err("affected", "is not an array")),
        };
        let mut packages = Vec::new();
        for (i, entry) in affected.iter().enumerate() {
            let at = format!("affected[{i}]");
            let Value::Object(entry) = entry else {
                return Err(self.err(at, "is not an object"));
            };
            malicious |= has_cwe_506(entry);
            if let Some(name) = self.pypi_name(entry, &at)? {
                packages.push(self.affected(entry, name, &at)?);
            }
        }

        Ok(Advisory { id: self.id, modified, published, withdrawn, summary, details, aliases, malicious, packages })
    }

    /// A timestamp field: absent is `None`, present must be an RFC 3339 string.
    fn timestamp(&self, field: &str) -> Result<Option<String>, OsvError> {
        match self.top.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if parse_timestamp(s).is_some() => Ok(Some(s.clone())),
            Some(Value::String(s)) => {
                let shown: String = s.chars().take(40).collect();
                Err(self.err(field, format!("{shown:?} is not an RFC 3339 timestamp")))
            }
            Some(_) => Err(self.err(field, "is not a string")),
        }
    }

    fn text(&self, field: &str) -> Result<Option<String>, OsvError> {
        match self.top.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(field, "is not a string")),
        }
    }

    fn aliases(&self) -> Result<Vec<String>, OsvError> {
        let list = match self.top.get("aliases") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) if a.len() <= MAX_ALIASES => a,
            Some(Value::Array(_)) => {
                return Err(self.err("aliases", format!("holds more than {MAX_ALIASES} ids")));
            }
            Some(_) => return Err(self.err("aliases", "is not an array")),
        };
        list.iter()
            .enumerate()
            .map(|(i, a)| match a {
                Value::String(s) if is_valid_id(s) => Ok(s.clone()),
                _ => Err(self.err(format!("aliases[{i}]"), "is not an OSV id")),
            })
            .collect()
    }

    /// The normalised name when the entry is a PyPI package, by its ecosystem (`PyPI` or a
    /// `PyPI:<suffix>` variant, which the schema allows for every ecosystem) or its purl
    /// (`pkg:pypi/<name>`); `None` for any other entry.
    fn pypi_name(&self, entry: &Map<String, Value>, at: &str) -> Result<Option<String>, OsvError> {
        let Some(package) = entry.get("package") else { return Ok(None) };
        let Value::Object(package) = package else {
            return Err(self.err(format!("{at}.package"), "is not an object"));
        };
        let ecosystem = package.get("ecosystem").and_then(Value::as_str).unwrap_or("");
        if ecosystem == "PyPI" || ecosystem.starts_with("PyPI:") {
            let name = match package.get("name") {
                Some(Value::String(n)) => n.as_str(),
                _ => return Err(self.err(format!("{at}.package.name"), "is missing or not a string")),
            };
            return self.name(name, &format!("{at}.package.name")).map(Some);
        }
        match package.get("purl") {
            Some(Value::String(purl)) => match purl_pypi(purl) {
                Ok(Some((name, _version))) => self.name(&name, &format!("{at}.package.purl")).map(Some),
                Ok(None) => Ok(None),
                Err(reason) => Err(self.err(format!("{at}.package.purl"), reason)),
            },
            _ => Ok(None),
        }
    }

    fn name(&self, name: &str, at: &str) -> Result<String, OsvError> {
        let trimmed = name.trim();
        if trimmed.is_empty() || trimmed.len() > MAX_TOKEN_BYTES {
            return Err(self.err(at, format!("must be 1 to {MAX_TOKEN_BYTES} bytes")));
        }
        Ok(palisade_dist::normalize(trimmed))
    }

    fn affected(&mut self, entry: &Map<String, Value>, name: String, at: &str) -> Result<Affected, OsvError> {
        let versions = match entry.get("versions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                let mut out = Vec::with_capacity(list.len().min(self.versions_left));
                for (i, v) in list.iter().enumerate() {
                    out.push(self.version(v, &format!("{at}.versions[{i}]"))?);
                }
                out
            }
            Some(_) => return Err(self.err(format!("{at}.versions"), "is not an array")),
        };
        let ranges = match entry.get("ranges") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                let mut out = Vec::new();
                for (i, r) in list.iter().enumerate() {
                    if let Some(range) = self.range(r, &format!("{at}.ranges[{i}]"))? {
                        out.push(range);
                    }
                }
                out
            }
            Some(_) => return Err(self.err(format!("{at}.ranges"), "is not an array")),
        };
        let sha256 = self.digests(entry, at)?;
        Ok(Affected { name, versions, ranges, sha256 })
    }

    /// One version string, counted against the record's budget.
    fn version(&mut self, v: &Value, at: &str) -> Result<String, OsvError> {
        if self.versions_left == 0 {
            return Err(self.err(at, format!("is past the {MAX_VERSIONS} versions a record may hold")));
        }
        self.versions_left -= 1;
        match v {
            Value::String(s) if !s.is_empty() && s.len() <= MAX_TOKEN_BYTES => Ok(s.clone()),
            Value::String(_) => Err(self.err(at, format!("must be 1 to {MAX_TOKEN_BYTES} bytes"))),
            _ => Err(self.err(at, "is not a string")),
        }
    }

    /// One range; `None` for a `GIT` range, which names commits rather than releases.
    fn range(&mut self, r: &Value, at: &str) -> Result<Option<Range>, OsvError> {
        if self.ranges_left == 0 {
            return Err(self.err(at, format!("is past the {MAX_RANGES} ranges a record may hold")));
        }
        self.ranges_left -= 1;
        let Value::Object(r) = r else { return Err(self.err(at, "is not an object")) };
        let kind = match r.get("type").and_then(Value::as_str) {
            Some("ECOSYSTEM") => RangeKind::Ecosystem,
            Some("SEMVER") => RangeKind::Semver,
            Some("GIT") => return Ok(None),
            Some(other) => {
                let shown: String = other.chars().take(40).collect();
                return Err(self.err(format!("{at}.type"), format!("{shown:?} is not GIT, SEMVER or ECOSYSTEM")));
            }
            None => return Err(self.err(format!("{at}.type"), "is missing or not a string")),
        };
        let list = match r.get("events") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => return Err(self.err(format!("{at}.events"), "is missing or not a non-empty array")),
        };
        let mut events = Vec::with_capacity(list.len().min(self.versions_left));
        for (i, e) in list.iter().enumerate() {
            let eat = format!("{at}.events[{i}]");
            let Value::Object(e) = e else { return Err(self.err(eat, "is not an object")) };
            let keys: Vec<&str> = ["introduced", "fixed", "last_affected", "limit"].into_iter().filter(|k| e.contains_key(*k)).collect();
            let [key] = keys[..] else {
                return Err(self.err(eat, "must hold exactly one of introduced, fixed, last_affected and limit"));
            };
            let version = self.version(&e[key], &format!("{eat}.{key}"))?;
            events.push(match key {
                "introduced" => Event::Introduced(version),
                "fixed" => Event::Fixed(version),
                "last_affected" => Event::LastAffected(version),
                _ => Event::Limit(version),
            });
        }
        if !events.iter().any(|e| matches!(e, Event::Introduced(_))) {
            return Err(self.err(format!("{at}.events"), "has no introduced event"));
        }
        let fixed = events.iter().any(|e| matches!(e, Event::Fixed(_)));
        let last = events.iter().any(|e| matches!(e, Event::LastAffected(_)));
        if fixed && last {
            return Err(self.err(format!("{at}.events"), "mixes fixed and last_affected, which OSV forbids"));
        }
        Ok(Some(Range { kind, events }))
    }

    /// The sha256 digests of `database_specific.indicators.package_integrity[].hashes`. Other
    /// digests (md5, blake2b_256) and other indicators are not used; a sha256 that is not 64 hex
    /// digits is refused, since a typo there would silently let a listed file through.
    fn digests(&mut self, entry: &Map<String, Value>, at: &str) -> Result<Vec<String>, OsvError> {
        let Some(list) = entry.get("database_specific").and_then(|d| d.get("indicators")).and_then(|i| i.get("package_integrity")) else {
            return Ok(Vec::new());
        };
        let field = format!("{at}.database_specific.indicators.package_integrity");
        let Value::Array(list) = list else { return Err(self.err(field, "is not an array")) };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let Some(sha) = item.get("hashes").and_then(|h| h.get("sha256")) else { continue };
            let here = format!("{field}[{i}].hashes.sha256");
            if self.digests_left == 0 {
                return Err(self.err(here, format!("is past the {MAX_DIGESTS} digests a record may list")));
            }
            self.digests_left -= 1;
            match sha {
                Value::String(s) if is_sha256_hex(s) => out.push(s.to_ascii_lowercase()),
                _ => return Err(self.err(here, "is not 64 hexadecimal digits")),
            }
        }
        Ok(out)
    }
}

/// Whether an affected entry's `database_specific.cwes[].cweId` names CWE-506.
fn has_cwe_506(entry: &Map<String, Value>) -> bool {
    entry
        .get("database_specific")
        .and_then(|d| d.get("cwes"))
        .and_then(Value::as_array)
        .is_some_and(|cwes| cwes.iter().any(|c| c.get("cweId").and_then(Value::as_str) == Some("CWE-506")))
}

/// Reads a package URL: `Ok(Some((name, version)))` for `pkg:pypi/<name>[@<version>]` (with any
/// `?qualifiers` or `#subpath` dropped, and the parts percent-decoded), `Ok(None)` for another
/// type, `Err` for a PyPI purl that cannot be decoded.
pub(crate) fn purl_pypi(purl: &str) -> Result<Option<(String, Option<String>)>, String> {
    let Some((scheme, rest)) = purl.split_once(':') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("pkg") {
        return Ok(None);
    }
    // The spec tolerates slashes after `pkg:`.
    let rest = rest.trim_start_matches('/');
    let Some((kind, rest)) = rest.split_once('/') else { return Ok(None) };
    if !kind.eq_ignore_ascii_case("pypi") {
        return Ok(None);
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (name, version) = match rest.rsplit_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    // PyPI purls have no namespace; a `/` left in the name is not a PyPI project.
    if name.contains('/') {
        return Err("is a PyPI purl with a namespace, which PyPI does not have".into());
    }
    let name = percent_decode(name).ok_or("holds a bad percent-encoding")?;
    if name.is_empty() {
        return Err("has no package name".into());
    }
    let version = match version {
        Some(v) => Some(percent_decode(v).filter(|v| !v.is_empty()).ok_or("holds a bad or empty version")?),
        None => None,
    };
    Ok(Some((name, version)))
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn cut_chars(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_string(),
        None => text,
    }
}

fn cut_bytes(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses a record built from `affected` and extra top-level fields; returns the error text.
    fn check(record: Value, expected: Result<(), &str>) {
        let got = parse(record.to_string().as_bytes()).map(|_| ()).map_err(|e| e.to_string());
        match (&got, &expected) {
            (Ok(()), Ok(())) => {}
            (Err(got), Err(want)) if got.contains(want) => {}
            _ => panic!("record {record}\n got {got:?}\nwant {expected:?}"),
        }
    }

    fn with_events(events: Value) -> Value {
        json!({"id": "PYSEC-1", "modified": "2024-01-01T00:00:00Z", "affected": [
            {"package": {"ecosystem": "PyPI", "name": "demo"}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ]})
    }

    #[test]
    fn hostile_records_are_refused_with_the_field_named() {
        let base = json!({"id": "MAL-1", "modified": "2024-01-01T00:00:00Z"});
        check(base.clone(), Ok(()));
        check(json!({"modified": "2024-01-01T00:00:00Z"}), Err("field `id` is missing"));
        check(json!({"id": "../../etc/passwd", "modified": "2024-01-01T00:00:00Z"}), Err("is not an OSV id"));
        check(json!({"id": "MAL-1"}), Err("field `modified` is required"));
        check(json!({"id": "MAL-1", "modified": "last tuesday"}), Err("is not an RFC 3339 timestamp"));
        check(json!({"id": "MAL-1", "modified": "2024-01-01T00:00:00Z", "withdrawn": 5}), Err("`withdrawn` is not a string"));
        check(json!([1, 2]), Err("the top level must be an object"));
        check(with_events(json!([{"introduced": "0", "fixed": "1.0"}])), Err("affected[0].ranges[0].events[0]` must hold exactly one"));
        check(with_events(json!([{}])), Err("must hold exactly one"));
        check(with_events(json!([{"introduced": "0"}, {"fixed": "1"}, {"last_affected": "2"}])), Err("mixes fixed and last_affected"));
        check(with_events(json!([{"fixed": "1"}])), Err("has no introduced event"));
        check(with_events(json!([])), Err("events` is missing or not a non-empty array"));
        check(with_events(json!([{"introduced": 0}])), Err("events[0].introduced` is not a string"));
        let bad_hash = json!({"id": "MAL-1", "modified": "2024-01-01T00:00:00Z", "affected": [
            {"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": ["1"],
             "database_specific": {"indicators": {"package_integrity": [{"hashes": {"sha256": "abc"}}]}}}]});
        check(bad_hash, Err("package_integrity[0].hashes.sha256` is not 64 hexadecimal digits"));
        let mut oversized = base.clone();
        oversized["details"] = json!("x".repeat(MAX_RECORD_BYTES));
        check(oversized, Err("larger than"));
        let many: Vec<String> = (0..=MAX_VERSIONS).map(|i| i.to_string()).collect();
        check(
            json!({"id": "MAL-1", "modified": "2024-01-01T00:00:00Z", "affected": [
                {"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": many}]}),
            Err("past the 10000 versions"),
        );
        // What Palisade does not evaluate is not judged: another ecosystem's odd range, a GIT range.
        check(
            json!({"id": "GHSA-1", "modified": "2024-01-01T00:00:00Z", "affected": [
                {"package": {"ecosystem": "npm", "name": "x"}, "ranges": [{"type": "WHATEVER"}]},
                {"package": {"ecosystem": "PyPI", "name": "x"}, "ranges": [{"type": "GIT", "repo": "r", "events": [{"introduced": "0"}]}]}]}),
            Ok(()),
        );
    }

    #[test]
    fn pypi_entries_malice_and_text_bounds() {
        let record = json!({
            "id": "GHSA-aaaa-bbbb-cccc", "modified": "2024-01-01T00:00:00.123Z",
            "summary": "é".repeat(2000), "details": "é".repeat(MAX_DETAILS_BYTES),
            "aliases": ["CVE-2024-1"],
            "affected": [
                {"package": {"ecosystem": "npm", "name": "left-pad"}, "versions": ["1"]},
                {"package": {"ecosystem": "PyPI", "name": "Foo_Bar.baz"}, "versions": ["1.0"]},
                {"package": {"ecosystem": "PyPI:Ubuntu", "name": "x"}},
                {"package": {"purl": "pkg:pypi/Some%5FThing@2.0?x=1"}, "versions": ["2.0"],
                 "database_specific": {"cwes": [{"cweId": "CWE-506"}]}},
                {"package": {"ecosystem": "Go", "purl": "pkg:golang/x"}}
            ]
        });
        let a = parse(record.to_string().as_bytes()).unwrap();
        let names: Vec<&str> = a.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["foo-bar-baz", "x", "some-thing"]);
        assert!(a.malicious, "CWE-506 on an entry marks the record malicious");
        assert_eq!(a.summary.unwrap().chars().count(), MAX_SUMMARY_CHARS);
        let details = a.details.unwrap();
        assert!(details.len() <= MAX_DETAILS_BYTES && details.len() > MAX_DETAILS_BYTES - 2);
        assert_eq!(a.aliases, ["CVE-2024-1"]);

        let plain = parse(br#"{"id":"PYSEC-2021-1","modified":"2021-01-01T00:00:00Z"}"#).unwrap();
        assert!(!plain.malicious && plain.packages.is_empty());
    }

    #[test]
    fn purls() {
        let check = |purl: &str, expected: Result<Option<(&str, Option<&str>)>, ()>| {
            let got = purl_pypi(purl).map_err(|_| ());
            let want = expected.map(|o| o.map(|(n, v)| (n.to_string(), v.map(str::to_string))));
            assert_eq!(got, want, "purl {purl:?}");
        };
        check("pkg:pypi/requests", Ok(Some(("requests", None))));
        check("pkg:pypi/requests@2.0.0", Ok(Some(("requests", Some("2.0.0")))));
        check("pkg:PyPI/django@1.11.1?foo=bar#sub/path", Ok(Some(("django", Some("1.11.1")))));
        check("pkg:pypi/a%2Bb@1.0%2Blocal", Ok(Some(("a+b", Some("1.0+local")))));
        check("pkg:npm/left-pad@1", Ok(None));
        check("https://example.com", Ok(None));
        check("pkg:pypi/ns/name", Err(()));
        check("pkg:pypi/bad%zz", Err(()));
        check("pkg:pypi/x@", Err(()));
    }
}
