//! OSV's `POST /v1/query`, for the PyPI packages Palisade serves: reading the request, and
//! shaping the response (`{"vulns": [...]}`, or `{}` when nothing matches, as OSV.dev answers).
//!
//! A package is named either by `name` and `ecosystem` or by a `purl`; the version is either the
//! `version` field or inside the purl, never both (OSV.dev refuses that too). Commit queries and
//! other ecosystems are refused with a sentence a user can act on. `page_token` is accepted and
//! ignored: Palisade answers in one page, so it never hands one out.

use serde_json::{Map, Value, json};

use crate::OsvError;
use crate::read::{MAX_TOKEN_BYTES, purl_pypi};

/// The largest query body read, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// A query for one PyPI package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The PEP 503-normalised project name.
    pub name: String,
    /// The version asked about; `None` asks for every advisory of the package.
    pub version: Option<String>,
}

/// Reads a `/v1/query` request body.
pub fn parse_query(bytes: &[u8]) -> Result<Query, OsvError> {
    let refuse = |text: &str| Err(OsvError::Query(text.to_string()));
    if bytes.len() > MAX_QUERY_BYTES {
        return refuse("The query is larger than the 64 KiB Palisade reads.");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes) else {
        return refuse(
            "The query must be a JSON object such as {\"package\": {\"name\": \"requests\", \"ecosystem\": \"PyPI\"}, \"version\": \"2.0.0\"}.",
        );
    };
    if body.get("commit").is_some_and(|c| !c.is_null()) {
        return refuse("Palisade serves PyPI packages and cannot answer queries by commit; query by package and version.");
    }
    let version = string(&body, "version", "version")?;
    let Some(Value::Object(package)) = body.get("package") else {
        return refuse(
            "The query has no \"package\" object; give {\"name\": ..., \"ecosystem\": \"PyPI\"} or {\"purl\": \"pkg:pypi/...\"}.",
        );
    };
    let name = string(package, "name", "package.name")?;
    let ecosystem = string(package, "ecosystem", "package.ecosystem")?;
    let purl = string(package, "purl", "package.purl")?;

    let (name, version) = match purl {
        Some(purl) => {
            if name.is_some() || ecosystem.is_some() {
                return refuse("Give either a purl or a name and ecosystem, not both.");
            }
            let (name, purl_version) = match purl_pypi(&purl) {
                Ok(Some(parts)) => parts,
                Ok(None) => return refuse("Palisade serves PyPI packages only; the purl must start with pkg:pypi/."),
                Err(reason) => return Err(OsvError::Query(format!("The purl {reason}."))),
            };
            if purl_version.is_some() && version.is_some() {
                return refuse("Give the version either in the purl or in \"version\", not both.");
            }
            (name, purl_version.or(version))
        }
        None => {
            match ecosystem.as_deref() {
                Some("PyPI") => {}
                Some(_) => return refuse("Palisade serves PyPI packages only; set \"ecosystem\" to \"PyPI\"."),
                None => return refuse("The package needs an \"ecosystem\" (\"PyPI\") beside its name, or a purl."),
            }
            let Some(name) = name else {
                return refuse("The package needs a \"name\", or a purl.");
            };
            (name, version)
        }
    };
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_TOKEN_BYTES {
        return refuse("The package name must be 1 to 256 bytes.");
    }
    if let Some(v) = &version
        && (v.trim().is_empty() || v.len() > MAX_TOKEN_BYTES)
    {
        return refuse("The version must be 1 to 256 bytes.");
    }
    Ok(Query { name: palisade_dist::normalize(name), version: version.map(|v| v.trim().to_string()) })
}

/// A string field of the query: absent or `null` is `None`, anything but a string is refused.
fn string(map: &Map<String, Value>, key: &str, shown: &str) -> Result<Option<String>, OsvError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OsvError::Query(format!("\"{shown}\" must be a string."))),
    }
}

/// The `/v1/query` response for these records: `{"vulns": [...]}`, or `{}` when there are none.
pub fn query_response(records: &[Value]) -> Value {
    if records.is_empty() { json!({}) } else { json!({ "vulns": records }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<(&str, Option<&str>), &str>) {
        let got = parse_query(body.as_bytes()).map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(q), Ok((name, version))) => {
                assert_eq!((q.name.as_str(), q.version.as_deref()), (name, version), "body {body}")
            }
            (Err(g), Err(w)) if g.contains(w) => {}
            _ => panic!("body {body}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn queries() {
        check(r#"{"package":{"name":"Foo_Bar","ecosystem":"PyPI"},"version":"1.0"}"#, Ok(("foo-bar", Some("1.0"))));
        check(r#"{"package":{"name":"foo","ecosystem":"PyPI"}}"#, Ok(("foo", None)));
        check(r#"{"package":{"purl":"pkg:pypi/Foo.Bar@1.0%2Blocal"}}"#, Ok(("foo-bar", Some("1.0+local"))));
        check(r#"{"package":{"purl":"pkg:pypi/foo"},"version":"2","page_token":"x"}"#, Ok(("foo", Some("2"))));
        check(r#"{"package":{"purl":"pkg:pypi/foo@1"},"version":"2"}"#, Err("either in the purl or in \"version\""));
        check(r#"{"package":{"purl":"pkg:npm/foo@1"}}"#, Err("PyPI packages only"));
        check(r#"{"package":{"name":"foo","ecosystem":"npm"},"version":"1"}"#, Err("set \"ecosystem\" to \"PyPI\""));
        check(r#"{"package":{"name":"foo"}}"#, Err("needs an \"ecosystem\""));
        check(r#"{"commit":"6879efc2c1596d11a6a6ad296f80063b558d5e0f"}"#, Err("cannot answer queries by commit"));
        check(r#"{"version":"1"}"#, Err("no \"package\" object"));
        check(r#"{"package":{"name":5,"ecosystem":"PyPI"}}"#, Err("\"package.name\" must be a string"));
        check("[]", Err("must be a JSON object"));
        check(&format!(r#"{{"package":{{"name":"{}","ecosystem":"PyPI"}}}}"#, "a".repeat(MAX_QUERY_BYTES)), Err("larger than"));
    }

    #[test]
    fn responses() {
        assert_eq!(query_response(&[]), json!({}));
        assert_eq!(query_response(&[json!({"id": "MAL-1"})]), json!({"vulns": [{"id": "MAL-1"}]}));
    }
}
