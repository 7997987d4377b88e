//! Palisade's own malware verdicts as OSV records, shaped like ossf/malicious-packages records
//! (one `affected` entry, exact `versions`, CWE-506, `package_integrity` digests, a FINDER credit),
//! and their contribution form for that repository.
//!
//! Local records take ids like `x_PALISADE-2026-1`: OSV reserves the `x_` prefix for databases it
//! does not aggregate, so a local id can never collide with a real `MAL-` or `PYSEC-` id.

use serde_json::{Value, json};

use crate::{OsvError, is_sha256_hex, is_valid_id};

/// The OSV schema version Palisade writes.
pub const SCHEMA_VERSION: &str = "1.7.5";

/// The default prefix for local advisory ids.
pub const DEFAULT_PREFIX: &str = "x_PALISADE";

/// Prefixes registered to OSV home databases (from the schema's `prefix` pattern, July 2026):
/// a local database must not use them.
const REGISTERED_PREFIXES: &[&str] = &[
    "ASB-A",
    "PUB-A",
    "ALPINE",
    "ALSA",
    "ALBA",
    "ALEA",
    "AZL",
    "BELL",
    "BIT",
    "CGA",
    "CLEANSTART",
    "CLSA",
    "CURL",
    "CVE",
    "DEBIAN",
    "DHI",
    "DRUPAL",
    "DSA",
    "DLA",
    "ELA",
    "DTSA",
    "ECHO",
    "EEF",
    "FreeBSD",
    "GHSA",
    "GO",
    "GSD",
    "HSEC",
    "JLSEC",
    "KUBE",
    "LBSEC",
    "LSN",
    "MAL",
    "MINI",
    "MGASA",
    "OESA",
    "OSEC",
    "OSV",
    "openSUSE-SU",
    "PHSA",
    "PSF",
    "PYSEC",
    "RHBA",
    "RHEA",
    "RHSA",
    "RLSA",
    "RXSA",
    "RSEC",
    "ROOT",
    "RUSTSEC",
    "SUSE-SU",
    "SUSE-RU",
    "SUSE-FU",
    "SUSE-OU",
    "UBUNTU",
    "USN",
    "V8",
];

/// A malware verdict Palisade reached about some files of one release line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The local id, from [`local_id`].
    pub id: String,
    /// The project name; written PEP 503-normalised, as OSV requires for PyPI.
    pub name: String,
    /// The exact affected versions.
    pub versions: Vec<String>,
    /// The affected files and their digests.
    pub files: Vec<FileDigests>,
    /// The standard one-liner, e.g. `Malicious code in demo (PyPI)`.
    pub summary: String,
    /// Markdown: why, what the payload does, how it triggers.
    pub details: String,
    /// RFC 3339, from the caller's clock.
    pub published: String,
    /// RFC 3339, from the caller's clock.
    pub modified: String,
    /// RFC 3339 when the verdict was retracted.
    pub withdrawn: Option<String>,
    /// Who found it.
    pub credit: Credit,
    /// URLs written as `WEB` references.
    pub references: Vec<String>,
}

/// One affected file and its digests, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigests {
    pub filename: String,
    pub sha256: String,
    pub blake2b_256: String,
    pub md5: String,
}

/// The finder credited in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub name: String,
    /// URLs or e-mail addresses.
    pub contact: Vec<String>,
}

/// The OSV record for a verdict, valid against the OSV 1.7.5 JSON schema. It refuses what would make a record Palisade itself could not
/// read back ([`crate::parse`]): a bad id or timestamp, an empty name or version, a sha256 that
/// is not 64 hex digits.
pub fn record(v: &Verdict) -> Result<Value, OsvError> {
    let bad = |reason: String| OsvError::Verdict { id: v.id.clone(), reason };
    if !is_valid_id(&v.id) {
        return Err(bad("the id is not an OSV id".into()));
    }
    // Timestamps are written in UTC with `Z`, the only form the OSV schema's pattern allows.
    let utc = |field: &str, value: &str| {
        crate::parse_timestamp(value).map(|t| t.to_string()).ok_or_else(|| bad(format!("{field} {value:?} is not an RFC 3339 timestamp")))
    };
    let published = utc("published", &v.published)?;
    let modified = utc("modified", &v.modified)?;
    let withdrawn = v.withdrawn.as_deref().map(|w| utc("withdrawn", w)).transpose()?;
    let name = palisade_dist::normalize(v.name.trim());
    if name.is_empty() {
        return Err(bad("the project name is empty".into()));
    }
    if v.versions.is_empty() && v.files.is_empty() {
        return Err(bad("it names neither a version nor a file".into()));
    }
    if let Some(empty) = v.versions.iter().position(|x| x.trim().is_empty()) {
        return Err(bad(format!("version {empty} is empty")));
    }
    if let Some(f) = v.files.iter().find(|f| !is_sha256_hex(&f.sha256)) {
        return Err(bad(format!("the sha256 of {} is not 64 hexadecimal digits", f.filename)));
    }

    let integrity: Vec<Value> = v
        .files
        .iter()
        .map(|f| {
            json!({
                "filename": f.filename,
                "hashes": {
                    "sha256": f.sha256.to_ascii_lowercase(),
                    "blake2b_256": f.blake2b_256.to_ascii_lowercase(),
                    "md5": f.md5.to_ascii_lowercase(),
                },
            })
        })
        .collect();
    let mut database_specific = json!({
        "cwes": [{
            "cweId": "CWE-506",
            "description": "The product contains code that appears to be malicious in nature.",
            "name": "Embedded Malicious Code",
        }],
    });
    if !integrity.is_empty() {
        database_specific["indicators"] = json!({ "package_integrity": integrity });
    }
    let mut out = json!({
        "schema_version": SCHEMA_VERSION,
        "id": v.id,
        "published": published,
        "modified": modified,
        "summary": v.summary,
        "details": v.details,
        "affected": [{
            "package": { "ecosystem": "PyPI", "name": name },
            "versions": v.versions,
            "database_specific": database_specific,
        }],
        "credits": [{ "name": v.credit.name, "contact": v.credit.contact, "type": "FINDER" }],
        "references": v.references.iter().map(|url| json!({ "type": "WEB", "url": url })).collect::<Vec<_>>(),
    });
    if let Some(withdrawn) = withdrawn {
        out["withdrawn"] = json!(withdrawn);
    }
    Ok(out)
}

/// The record as a contribution to ossf/malicious-packages: without `id` and `summary`, which
/// that repository's CONTRIBUTING says contributors must not set (it assigns both on ingest).
/// Such a file is named `MAL-0000-<anything>.json` in the pull request.
pub fn contribution(record: &Value) -> Value {
    let mut out = record.clone();
    if let Value::Object(map) = &mut out {
        map.remove("id");
        map.remove("summary");
    }
    out
}

/// A local advisory id: `{prefix}-{year}-{n}`.
pub fn local_id(prefix: &str, year: i32, n: u64) -> String {
    format!("{prefix}-{year}-{n}")
}

/// Checks a prefix for local advisory ids: ASCII letters, digits and `_`, at most 32 characters,
/// and not a prefix registered to an OSV home database (`MAL`, `PYSEC`, `GHSA`, ...). The `x_`
/// form ([`DEFAULT_PREFIX`]) is the one OSV recommends for local databases.
pub fn check_prefix(prefix: &str) -> Result<(), OsvError> {
    let refuse = |reason: &str| Err(OsvError::Prefix { prefix: prefix.chars().take(40).collect(), reason: reason.into() });
    if prefix.is_empty() || prefix.len() > 32 {
        return refuse("must be 1 to 32 characters");
    }
    if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return refuse("may hold only ASCII letters, digits and `_`; use the x_ form, e.g. x_PALISADE");
    }
    if !prefix.as_bytes()[0].is_ascii_alphanumeric() {
        return refuse("must start with a letter or digit");
    }
    // A prefix that starts a registered one's ids (`MAL`, `SUSE` of `SUSE-SU`) is refused too.
    let taken = REGISTERED_PREFIXES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(prefix) || r.split('-').next().is_some_and(|head| head.eq_ignore_ascii_case(prefix)));
    if taken {
        return refuse("is registered to an OSV database; use the x_ form, e.g. x_PALISADE");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(prefix: &str, expected: Result<(), &str>) {
        let got = check_prefix(prefix).map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(g), Err(w)) if g.contains(w) => {}
            _ => panic!("prefix {prefix:?}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn prefixes() {
        check(DEFAULT_PREFIX, Ok(()));
        check("x_ACME_MIRROR", Ok(()));
        check("ACME", Ok(()));
        for taken in ["MAL", "mal", "GHSA", "PYSEC", "OSV", "CVE", "SUSE", "openSUSE"] {
            check(taken, Err("registered to an OSV database"));
        }
        check("", Err("1 to 32"));
        check("x-PALISADE", Err("only ASCII letters"));
        check("_x", Err("must start"));
        assert_eq!(local_id(DEFAULT_PREFIX, 2026, 1), "x_PALISADE-2026-1");
    }
}
