//! The PEP 740 attestation object (version 1) as clients send it, read strictly, and turned into
//! the Sigstore bundle (v0.3) that `sigstore-verify` checks, exactly as `pypi-attestations` does:
//! the certificate becomes the bundle's certificate, the transparency entries its `tlogEntries`,
//! and the envelope a DSSE envelope with payload type `application/vnd.in-toto+json`. The
//! statement stays the bytes the client signed; it is parsed to be read, never re-serialized.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::{Refusal, Stage};

/// The most transparency-log entries one attestation may carry (real ones carry one), so that a
/// hostile upload cannot make the verifier check thousands.
const MAX_ENTRIES: usize = 4;

/// The largest statement accepted, decoded. Real ones are a few hundred bytes.
const MAX_STATEMENT_BYTES: usize = 64 * 1024;

/// The in-toto statement type PEP 740 requires.
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate types an index accepts (PyPI's list), at most one attestation of each per file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PredicateType {
    /// `https://docs.pypi.org/attestations/publish/v1`: "this publisher published this file".
    Publish,
    /// `https://slsa.dev/provenance/v1`: SLSA build provenance.
    SlsaProvenance,
}

impl PredicateType {
    pub const ALL: [PredicateType; 2] = [PredicateType::Publish, PredicateType::SlsaProvenance];

    pub fn uri(self) -> &'static str {
        match self {
            PredicateType::Publish => "https://docs.pypi.org/attestations/publish/v1",
            PredicateType::SlsaProvenance => "https://slsa.dev/provenance/v1",
        }
    }

    pub fn parse(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.uri() == uri)
    }
}

/// What the statement says, once read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The one subject's name: a distribution filename, possibly spelled differently.
    pub subject_name: String,
    /// The one subject's sha256, lowercase hex.
    pub subject_sha256: String,
    pub predicate_type: PredicateType,
}

/// An attestation read and checked for shape, ready for Sigstore's verification.
pub(crate) struct Parsed {
    pub statement: Statement,
    /// What is wrong with the statement's subject, if anything: reported at the subject stage,
    /// after the signature and the log entry, as the stages are ordered.
    pub subject_problem: Option<Refusal>,
    /// The Sigstore bundle v0.3 JSON built from the attestation.
    pub bundle_json: String,
}

fn format(message: impl Into<String>) -> Refusal {
    Refusal::new(Stage::Format, message)
}

fn field<'a>(object: &'a Map<String, Value>, name: &str, within: &str) -> Result<&'a Value, Refusal> {
    object.get(name).ok_or_else(|| format(format!("{within} has no {name:?}")))
}

fn object<'a>(value: &'a Value, what: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, Refusal> {
    let map = value.as_object().ok_or_else(|| format(format!("{what} is not a JSON object")))?;
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format(format!("{what} has an unknown field {unknown:?}")));
    }
    Ok(map)
}

fn base64_field(object: &Map<String, Value>, name: &str, within: &str) -> Result<(String, Vec<u8>), Refusal> {
    let text = field(object, name, within)?.as_str().ok_or_else(|| format(format!("{within}.{name} is not a string")))?;
    let bytes = STANDARD.decode(text).map_err(|_| format(format!("{within}.{name} is not valid base64")))?;
    if bytes.is_empty() {
        return Err(format(format!("{within}.{name} is empty")));
    }
    Ok((text.to_owned(), bytes))
}

/// Reads one attestation object. Refuses any version but 1, unknown fields, undecodable
/// material, a statement that is not an in-toto v1 statement with exactly one subject and a
/// sha256 digest, an unknown predicate type, a publish predicate with content, and transparency
/// entries that cannot date the certificate (Rekor v2).
pub(crate) fn parse(value: &Value) -> Result<Parsed, Refusal> {
    let top = value.as_object().ok_or_else(|| format("the attestation is not a JSON object"))?;
    match top.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        Some(other) => {
            return Err(format(format!("unsupported attestation version {other}: only version 1 is defined (PEP 740)")));
        }
        None => return Err(format("the attestation has no \"version\"")),
    }
    let top = object(value, "the attestation", &["version", "verification_material", "envelope"])?;
    let material =
        object(field(top, "verification_material", "the attestation")?, "verification_material", &["certificate", "transparency_entries"])?;
    let (certificate, _) = base64_field(material, "certificate", "verification_material")?;
    let entries = field(material, "transparency_entries", "verification_material")?
        .as_array()
        .ok_or_else(|| format("verification_material.transparency_entries is not a list"))?;
    if entries.is_empty() {
        return Err(format("the attestation has no transparency log entry: Palisade needs one to date the short-lived certificate"));
    }
    if entries.len() > MAX_ENTRIES {
        return Err(format(format!("the attestation has {} transparency log entries; at most {MAX_ENTRIES} are read", entries.len())));
    }
    for entry in entries {
        check_entry_kind(entry)?;
    }
    let envelope = object(field(top, "envelope", "the attestation")?, "envelope", &["statement", "signature"])?;
    let (statement_b64, statement_bytes) = base64_field(envelope, "statement", "envelope")?;
    let (signature, _) = base64_field(envelope, "signature", "envelope")?;
    if statement_bytes.len() > MAX_STATEMENT_BYTES {
        return Err(format(format!("the statement is larger than {MAX_STATEMENT_BYTES} bytes")));
    }
    let (statement, subject_problem) = read_statement(&statement_bytes)?;
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "certificate": { "rawBytes": certificate }, "tlogEntries": entries },
        "dsseEnvelope": {
            "payload": statement_b64,
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{ "sig": signature }],
        },
    });
    Ok(Parsed { statement, subject_problem, bundle_json: bundle.to_string() })
}

/// Rekor v2 entries carry no integrated time, and a version 1 attestation has no field for the
/// RFC 3161 timestamps that would date the certificate instead, so nothing could show the
/// ten-minute certificate was valid when it signed.
fn check_entry_kind(entry: &Value) -> Result<(), Refusal> {
    let entry = entry.as_object().ok_or_else(|| format("a transparency entry is not a JSON object"))?;
    let version = entry.get("kindVersion").and_then(|k| k.get("version")).and_then(Value::as_str);
    let integrated = match entry.get("integratedTime") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.parse::<i64>().map_err(|_| format(format!("the entry's integratedTime {s:?} is not a number")))?,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format(format!("the entry's integratedTime {n} is not a whole number")))?,
        Some(other) => return Err(format(format!("the entry's integratedTime {other} is not a number"))),
    };
    let kind = entry.get("kindVersion").and_then(|k| k.get("kind")).and_then(Value::as_str).unwrap_or("");
    if integrated <= 0 || (version == Some("0.0.2") && kind != "intoto") {
        return Err(Refusal::new(
            Stage::Transparency,
            "the transparency entry is a Rekor v2 entry, which has no integrated time; version 1 attestations cannot \
             carry the RFC 3161 timestamp that would date the certificate instead (that packaging spec change is still \
             open), so only Rekor v1 entries are accepted",
        ));
    }
    Ok(())
}

/// Reads the in-toto statement PEP 740 allows: one subject, a sha256, a known predicate type. A
/// problem with the subject comes back beside the statement (whose subject is then empty), to be
/// reported at its own stage.
pub fn read_statement(bytes: &[u8]) -> Result<(Statement, Option<Refusal>), Refusal> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format(format!("the statement is not JSON: {e}")))?;
    let map = value.as_object().ok_or_else(|| format("the statement is not a JSON object"))?;
    match map.get("_type").and_then(Value::as_str) {
        Some(STATEMENT_TYPE) => {}
        other => return Err(format(format!("the statement's _type is {other:?}, not {STATEMENT_TYPE:?}"))),
    }
    let subjects = map.get("subject").and_then(Value::as_array).ok_or_else(|| format("the statement has no subject list"))?;
    let subject = match subjects.as_slice() {
        [one] => read_subject(one),
        many => Err(Refusal::new(Stage::Subject, format!("the statement has {} subjects; exactly one is allowed", many.len()))),
    };
    let uri = map.get("predicateType").and_then(Value::as_str).ok_or_else(|| format("the statement has no predicateType"))?;
    let predicate_type = PredicateType::parse(uri).ok_or_else(|| {
        format(format!(
            "unknown predicate type {uri:?}: accepted are {:?} and {:?}",
            PredicateType::Publish.uri(),
            PredicateType::SlsaProvenance.uri()
        ))
    })?;
    if predicate_type == PredicateType::Publish {
        match map.get("predicate") {
            None | Some(Value::Null) => {}
            Some(Value::Object(o)) if o.is_empty() => {}
            Some(_) => return Err(format("the publish predicate must be empty ({} or null)")),
        }
    }
    Ok(match subject {
        Ok((subject_name, subject_sha256)) => (Statement { subject_name, subject_sha256, predicate_type }, None),
        Err(problem) => (Statement { subject_name: String::new(), subject_sha256: String::new(), predicate_type }, Some(problem)),
    })
}

fn read_subject(subject: &Value) -> Result<(String, String), Refusal> {
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::new(Stage::Subject, "the statement's subject has no name"))?
        .to_owned();
    let sha256 = subject
        .get("digest")
        .and_then(|d| d.get("sha256"))
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::new(Stage::Subject, "the statement's subject has no sha256 digest"))?
        .to_owned();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(Refusal::new(Stage::Subject, "the statement's subject sha256 is not 64 lowercase hex digits"));
    }
    Ok((name, sha256))
}
