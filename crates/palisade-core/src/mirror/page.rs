//! An upstream's PEP 691 project page, read strictly into the form Palisade keeps: for each file
//! what matters for security and resolution (sha256, size, upstream's upload time,
//! Requires-Python, yank, the metadata's hash, the provenance link) and nothing else. A file
//! entry that cannot be checked (no sha256, a name that is not a distribution of this project, a
//! link off the upstream's hosts) is left out, so nothing unverifiable is ever offered.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kept page.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Page {
    /// PEP 503 normalized.
    pub name: String,
    /// PEP 792 status as upstream gives it (`active` when absent).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub files: Vec<File>,
    /// File entries left out, and why (the first few), for `palisade mirror status` and logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct File {
    pub filename: String,
    /// The version, as the filename spells it.
    pub version: String,
    /// The canonical form of the version: files of one release share it.
    pub release: String,
    /// Absolute URL upstream serves the file at.
    pub url: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Upstream's upload time, in microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    /// `None`: not yanked; `Some("")`: yanked without a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
    /// The sha256 of its PEP 658 metadata file, when upstream serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_sha256: Option<String>,
    /// Upstream's PEP 740 provenance URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
}

/// Entries left out are listed up to this many.
const SKIPPED_KEPT: usize = 20;
/// Longest filename accepted.
const MAX_FILENAME: usize = 255;
/// Longest free text kept (a yank reason, a status reason, Requires-Python).
const MAX_TEXT: usize = 1000;

/// The project and version a distribution's filename names, read leniently (upstream files keep
/// their upstream spellings, `Django-1.0.tar.gz` among them): a wheel by its grammar
/// (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`), an sdist (`.tar.gz`, legacy
/// `.zip`) as `{name}-{version}` split at the last `-`. The version must be PEP 440.
pub fn identify(filename: &str) -> Option<(String, palisade_dist::Version)> {
    let (name, version) = if let Some(stem) = filename.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(parts.len() == 5 || parts.len() == 6) || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        (parts[0], parts[1])
    } else {
        let stem = filename.strip_suffix(".tar.gz").or_else(|| filename.strip_suffix(".zip"))?;
        stem.rsplit_once('-')?
    };
    palisade_dist::ProjectName::new(name).ok()?;
    let version = palisade_dist::parse_version(version).ok()?;
    Some((palisade_dist::normalize(name), version))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(|s| s.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect())
}

/// Whether `url` may be fetched for a page at `page_url`: https (or the page's own origin), on
/// the page's host or one of `file_hosts`, without user information.
pub fn allowed_url(url: &url::Url, page_url: &url::Url, file_hosts: &[String]) -> bool {
    let same_origin = url.origin() == page_url.origin();
    // A file host named in the configuration: over https on its standard port only.
    let file_host = url.scheme() == "https"
        && url.port_or_known_default() == Some(443)
        && url.host_str().is_some_and(|h| file_hosts.iter().any(|f| f.eq_ignore_ascii_case(h)));
    (same_origin || file_host) && url.username().is_empty() && url.password().is_none()
}

/// Reads an upstream's PEP 691 answer about `project` (normalized), fetched from `page_url`.
pub fn parse(project: &str, body: &[u8], page_url: &url::Url, file_hosts: &[String]) -> Result<Page, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not PEP 691 JSON: {e}"))?;
    let major = v.pointer("/meta/api-version").and_then(Value::as_str).and_then(|s| s.split('.').next()).unwrap_or("");
    if major != "1" {
        return Err("not PEP 691 JSON: meta.api-version is not 1.x".into());
    }
    let name = v.get("name").and_then(Value::as_str).ok_or("the page has no name")?;
    if palisade_dist::normalize(name) != project {
        return Err(format!("the page is about {name:?}, not {project:?}"));
    }
    let files = v.get("files").and_then(Value::as_array).ok_or("the page has no files list")?;
    let status = v.pointer("/project-status/status").and_then(Value::as_str).unwrap_or("active");
    let status = match status {
        "active" | "archived" | "quarantined" | "deprecated" => status.to_string(),
        // PEP 792: an unknown status is treated as active.
        _ => "active".to_string(),
    };
    let mut page = Page {
        name: project.to_string(),
        status,
        status_reason: text(v.pointer("/project-status/reason")),
        files: Vec::with_capacity(files.len()),
        skipped: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for f in files {
        match file(project, f, page_url, file_hosts) {
            Ok(file) if seen.insert(file.filename.clone()) => page.files.push(file),
            Ok(file) => skip(&mut page.skipped, &file.filename, "listed twice"),
            Err((name, why)) => skip(&mut page.skipped, &name, &why),
        }
    }
    Ok(page)
}

fn skip(skipped: &mut Vec<String>, name: &str, why: &str) {
    if skipped.len() < SKIPPED_KEPT {
        let name: String = name.chars().filter(|c| !c.is_control()).take(120).collect();
        skipped.push(format!("{name}: {why}"));
    }
}

fn file(project: &str, f: &Value, page_url: &url::Url, file_hosts: &[String]) -> Result<File, (String, String)> {
    let filename = f.get("filename").and_then(Value::as_str).unwrap_or("").to_string();
    let fail = |why: &str| (filename.clone(), why.to_string());
    if filename.is_empty()
        || filename.len() > MAX_FILENAME
        || filename.contains(['/', '\\'])
        || filename.starts_with('.')
        || filename.chars().any(char::is_control)
    {
        return Err(fail("not a plain file name"));
    }
    let (name, version) = identify(&filename).ok_or_else(|| fail("not a wheel or sdist name"))?;
    if name != project {
        return Err(fail("names another project"));
    }
    let sha256 = f.pointer("/hashes/sha256").and_then(Value::as_str).map(str::to_ascii_lowercase).unwrap_or_default();
    if !is_hex64(&sha256) {
        return Err(fail("no sha256 to check it against"));
    }
    let href = f.get("url").and_then(Value::as_str).ok_or_else(|| fail("no url"))?;
    let url = page_url.join(href).map_err(|_| fail("a url that does not parse"))?;
    if !allowed_url(&url, page_url, file_hosts) {
        return Err(fail(&format!(
            "a file on {} is not fetched (not the upstream's host or one of its file_hosts)",
            url.host_str().unwrap_or("?")
        )));
    }
    let mut url = url;
    url.set_fragment(None);
    let upload_time = match f.get("upload-time") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            t.as_str()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .ok_or_else(|| fail("an upload-time that does not parse"))?
                .as_microsecond(),
        ),
    };
    let yanked = match f.get("yanked") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(String::new()),
        Some(Value::String(reason)) => Some(reason.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect()),
        Some(_) => return Err(fail("a yanked value that is neither a boolean nor a string")),
    };
    let metadata = f.get("core-metadata").or_else(|| f.get("dist-info-metadata"));
    let metadata_sha256 =
        metadata.and_then(|m| m.get("sha256")).and_then(Value::as_str).map(str::to_ascii_lowercase).filter(|h| is_hex64(h));
    let provenance = f
        .get("provenance")
        .and_then(Value::as_str)
        .and_then(|p| page_url.join(p).ok())
        .filter(|u| allowed_url(u, page_url, file_hosts))
        .map(|u| u.to_string());
    let size = match f.get("size") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().ok_or_else(|| fail("a size that is not a whole number"))?),
    };
    Ok(File {
        version: version.to_string(),
        release: palisade_dist::canonical_version(&version),
        filename,
        url: url.to_string(),
        sha256,
        size,
        upload_time,
        requires_python: text(f.get("requires-python")).filter(|s| !s.is_empty()),
        yanked,
        metadata_sha256,
        provenance,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn page_url() -> url::Url {
        url::Url::parse("https://pypi.example/simple/demo/").unwrap()
    }

    fn entry(filename: &str, url: &str) -> Value {
        json!({"filename": filename, "url": url, "hashes": {"sha256": SHA}, "upload-time": "2026-01-02T03:04:05.123456Z",
               "requires-python": ">=3.9", "yanked": false, "core-metadata": {"sha256": SHA}, "size": 10})
    }

    fn read(files: Vec<Value>) -> Page {
        let body = json!({"meta": {"api-version": "1.4"}, "name": "Demo", "files": files, "project-status": {"status": "deprecated", "reason": "use x"}});
        parse("demo", body.to_string().as_bytes(), &page_url(), &["files.example".into()]).unwrap()
    }

    #[test]
    fn keeps_what_matters_and_resolves_links() {
        let p = read(vec![
            entry("demo-1.0-py3-none-any.whl", "../../files/demo-1.0-py3-none-any.whl#sha256=aa"),
            entry("Demo-1.0.tar.gz", "https://files.example/x/Demo-1.0.tar.gz"),
            entry("demo-0.9.zip", "demo-0.9.zip"),
        ]);
        assert_eq!(p.status, "deprecated");
        assert_eq!(p.status_reason.as_deref(), Some("use x"));
        assert_eq!(p.files.len(), 3, "{:?}", p.skipped);
        let w = &p.files[0];
        assert_eq!(w.url, "https://pypi.example/files/demo-1.0-py3-none-any.whl");
        assert_eq!(w.upload_time, Some(1_767_323_045_123_456));
        assert_eq!((w.version.as_str(), w.release.as_str()), ("1.0", "1"));
        assert_eq!(w.metadata_sha256.as_deref(), Some(SHA));
        assert_eq!(p.files[2].version, "0.9");
    }

    #[test]
    fn leaves_out_what_cannot_be_checked() {
        let mut no_hash = entry("demo-2.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl");
        no_hash["hashes"] = json!({"md5": "x"});
        let mut bad_yank = entry("demo-3.0-py3-none-any.whl", "demo-3.0-py3-none-any.whl");
        bad_yank["yanked"] = json!(1);
        let p = read(vec![
            entry("other-1.0-py3-none-any.whl", "other-1.0-py3-none-any.whl"),
            entry("../demo-1.0.tar.gz", "x"),
            entry("demo-1.0.exe", "demo-1.0.exe"),
            entry("demo-1.0-py3-none-any.whl", "https://evil.example/demo-1.0-py3-none-any.whl"),
            entry("demo-1.1-py3-none-any.whl", "http://files.example/demo-1.1-py3-none-any.whl"),
            entry("demo-1.2-py3-none-any.whl", "https://files.example:6379/demo-1.2-py3-none-any.whl"),
            entry("demo-1.3-py3-none-any.whl", "https://pypi.example:8443/demo-1.3-py3-none-any.whl"),
            no_hash,
            bad_yank,
        ]);
        assert!(p.files.is_empty(), "{:?}", p.files);
        assert_eq!(p.skipped.len(), 9, "{:?}", p.skipped);
        assert!(p.skipped[0].contains("names another project"));
        assert!(p.skipped[3].contains("evil.example"));
    }

    #[test]
    fn refuses_pages_that_are_not_about_the_project() {
        let body = json!({"meta": {"api-version": "1.0"}, "name": "other", "files": []}).to_string();
        assert!(parse("demo", body.as_bytes(), &page_url(), &[]).unwrap_err().contains("not \"demo\""));
        assert!(parse("demo", b"<html>", &page_url(), &[]).unwrap_err().contains("not PEP 691"));
        let v2 = json!({"meta": {"api-version": "2.0"}, "name": "demo", "files": []}).to_string();
        assert!(parse("demo", v2.as_bytes(), &page_url(), &[]).is_err());
    }
}
