//! Rendering of simple API pages (PEP 503 HTML, PEP 691 JSON) from database rows. Pure functions,
//! so the cache can call them and tests can check them without a server.

use std::fmt::Write;

use palisade_store::{FileRow, Project, Release};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

pub const API_VERSION: &str = "1.4";

/// Characters kept as they are in a filename inside a URL path.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The URLs a rendered page links to.
#[derive(Clone, Debug)]
pub struct Links {
    /// The base of absolute links (provenance): `AppState::base_url`.
    pub base: String,
    /// What a file's link starts with. Under `public_url` when one is configured: a client takes
    /// an absolute link as it is, where a relative one is joined to the page's URL first (pip
    /// spends about 40% longer on a page of 15,000 relative links). Without it, relative to the
    /// project page (`/simple/<name>/`), so that the index works behind any path prefix.
    files: String,
}

impl Links {
    /// `public`: the configured `public_url`, if any (never a request's `Host`: pages are shared).
    pub fn new(base: String, public: Option<&str>) -> Self {
        let files = match public {
            Some(url) => format!("{}/files/", url.trim_end_matches('/')),
            None => "../../files/".to_string(),
        };
        Self { base, files }
    }

    /// The link to a file.
    pub fn file(&self, filename: &str) -> String {
        format!("{}{}", self.files, encode_filename(filename))
    }
}

/// A filename as one URL path segment.
pub fn encode_filename(filename: &str) -> String {
    utf8_percent_encode(filename, PATH_KEEP).to_string()
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `yyyy-mm-ddThh:mm:ss.ffffffZ` (PEP 700).
pub fn upload_time(micros: i64) -> String {
    palisade_core::timestamp(micros)
}

/// Files a client may see: published ones, and none while the project is quarantined (PEP 792).
pub fn visible<'a>(project: &Project, files: &'a [FileRow]) -> Vec<&'a FileRow> {
    if effective_status(project, files) == "quarantined" { Vec::new() } else { files.iter().filter(|f| f.is_published()).collect() }
}

/// The PEP 792 status clients see: the administrator's, or `quarantined` when every file of the
/// project is held for review.
pub fn effective_status<'a>(project: &'a Project, files: &[FileRow]) -> &'a str {
    if project.status == "active" && !files.is_empty() && files.iter().all(|f| !f.is_published()) { "quarantined" } else { &project.status }
}

/// A release as anonymous clients see it. The `releases` row was written by whichever upload
/// came first, and that may be a file held for review (or since removed), so nothing public is
/// taken from it: a release is public only while one of its files is, and it is described by
/// its earliest visible file (the version as that file spells it, its metadata, its
/// Requires-Python).
#[derive(Clone, Debug)]
pub struct PublicRelease<'a> {
    pub release: &'a Release,
    /// The version as the describing file spells it.
    pub version: String,
    /// The earliest visible file, whose core metadata describes the release.
    pub first: &'a FileRow,
    /// Every visible file of the release.
    pub files: Vec<&'a FileRow>,
}

/// The public releases of a project, in PEP 440 order.
pub fn public_releases<'a>(project: &Project, releases: &'a [Release], files: &'a [FileRow]) -> Vec<PublicRelease<'a>> {
    let shown = visible(project, files);
    let mut out: Vec<(palisade_dist::Version, PublicRelease<'a>)> = releases
        .iter()
        .filter_map(|release| {
            let files: Vec<&FileRow> = shown.iter().copied().filter(|f| f.release_id == release.id).collect();
            let first = *files.iter().min_by_key(|f| (f.upload_time, f.id))?;
            let parsed = palisade_dist::DistFilename::parse(&first.filename).ok().map(|d| d.version);
            let parsed = parsed.or_else(|| palisade_dist::parse_version(&release.version).ok())?;
            Some((parsed.clone(), PublicRelease { release, version: parsed.to_string(), first, files }))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, r)| r).collect()
}

/// The PEP 740 provenance URL of a file with attestations (the Integrity API), absolute.
pub fn provenance_url(base: &str, f: &FileRow) -> Option<String> {
    f.has_provenance
        .then(|| format!("{base}/integrity/{}/{}/{}/provenance", f.project, encode_filename(&f.version), encode_filename(&f.filename)))
}

/// The provenance links are absolute, under `links.base`.
pub fn project_html(project: &Project, releases: &[Release], files: &[FileRow], links: &Links) -> String {
    let name = html_escape(&project.normalized);
    let mut out = String::with_capacity(256 + files.len() * 300);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <meta name=\"pypi:project-status\" content=\"{}\">\n",
        html_escape(effective_status(project, files))
    );
    if let Some(reason) = &project.status_reason {
        let _ = writeln!(out, "    <meta name=\"pypi:project-status-reason\" content=\"{}\">", html_escape(reason));
    }
    let _ = write!(out, "    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n");
    let _ = releases;
    for f in visible(project, files) {
        let _ = write!(out, "    <a href=\"{}#sha256={}\"", html_escape(&links.file(&f.filename)), f.sha256);
        if let Some(rp) = &f.requires_python {
            let _ = write!(out, " data-requires-python=\"{}\"", html_escape(rp));
        }
        let _ = write!(out, " data-dist-info-metadata=\"sha256={0}\" data-core-metadata=\"sha256={0}\"", f.metadata_sha256);
        // PEP 740: only a URL on a secure origin is a valid data-provenance.
        if let Some(url) = provenance_url(&links.base, f).filter(|u| u.starts_with("https://")) {
            let _ = write!(out, " data-provenance=\"{}\"", html_escape(&url));
        }
        if f.yanked {
            match f.yanked_reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => {
                    let _ = write!(out, " data-yanked=\"{}\"", html_escape(r));
                }
                None => out.push_str(" data-yanked=\"\""),
            }
        }
        let _ = writeln!(out, ">{}</a><br>", html_escape(&f.filename));
    }
    let _ = write!(out, "  </body>\n</html>\n<!--SERIAL {}-->\n", project.last_serial);
    out
}

pub fn project_json(project: &Project, releases: &[Release], files: &[FileRow], links: &Links) -> Value {
    let status = effective_status(project, files);
    let shown = visible(project, files);
    let files_json: Vec<Value> = shown
        .iter()
        .map(|f| {
            let yanked = match (f.yanked, f.yanked_reason.as_deref().filter(|r| !r.is_empty())) {
                (false, _) => Value::Bool(false),
                (true, Some(r)) => Value::String(r.to_string()),
                (true, None) => Value::Bool(true),
            };
            let meta = json!({ "sha256": f.metadata_sha256 });
            json!({
                "filename": f.filename,
                "url": links.file(&f.filename),
                "hashes": { "sha256": f.sha256 },
                "requires-python": f.requires_python,
                "core-metadata": meta,
                "dist-info-metadata": meta,
                "yanked": yanked,
                "size": f.size,
                "upload-time": upload_time(f.upload_time),
                "provenance": provenance_url(&links.base, f),
            })
        })
        .collect();
    let mut status_json = json!({ "status": status });
    if let Some(reason) = &project.status_reason {
        status_json["reason"] = json!(reason);
    }
    json!({
        "meta": { "api-version": API_VERSION, "_last-serial": project.last_serial },
        "name": project.normalized,
        "versions": public_releases(project, releases, files).into_iter().map(|r| r.version).collect::<Vec<_>>(),
        "files": files_json,
        "project-status": status_json,
    })
}

pub fn root_html(projects: &[Project], serial: i64) -> String {
    let mut out = String::with_capacity(200 + projects.len() * 60);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>Simple index</title>\n  </head>\n  <body>\n"
    );
    for p in projects {
        let n = html_escape(&p.normalized);
        let _ = writeln!(out, "    <a href=\"{n}/\">{}</a><br>", html_escape(&p.name));
    }
    let _ = write!(out, "  </body>\n</html>\n<!--SERIAL {serial}-->\n");
    out
}

pub fn root_json(projects: &[Project], serial: i64) -> Value {
    let list: Vec<Value> = projects.iter().map(|p| json!({ "name": p.name, "_last-serial": p.last_serial })).collect();
    json!({ "meta": { "api-version": API_VERSION, "_last-serial": serial }, "projects": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(status: &str) -> Project {
        Project {
            id: 1,
            name: "Demo".into(),
            normalized: "demo".into(),
            created_at: 0,
            last_serial: 7,
            status: status.into(),
            status_reason: None,
            require_attestations: false,
            critical: false,
        }
    }

    fn file(name: &str, yanked: bool, reason: Option<&str>) -> FileRow {
        FileRow {
            id: 1,
            release_id: 1,
            project_id: 1,
            version: "1.0".into(),
            filename: name.into(),
            packagetype: "bdist_wheel".into(),
            python_version: "py3".into(),
            size: 10,
            sha256: "ab".into(),
            blake2b_256: "cd".into(),
            md5: "ef".into(),
            upload_time: 1_700_000_000_123_456,
            requires_python: Some(">=3.8,<4".into()),
            metadata_sha256: "12".into(),
            yanked,
            yanked_reason: reason.map(str::to_string),
            project_status: "active".into(),
            status: "published".into(),
            project: "demo".into(),
            has_provenance: false,
        }
    }

    #[test]
    fn provenance_links_are_absolute_and_https_only_in_html() {
        let mut f = file("demo-1.0-py3-none-any.whl", false, None);
        f.has_provenance = true;
        let want = "https://pypi.example/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance";
        let v = project_json(&project("active"), &[], std::slice::from_ref(&f), &Links::new("https://pypi.example".into(), None));
        assert_eq!(v["files"][0]["provenance"], json!(want));
        assert!(
            project_html(&project("active"), &[], std::slice::from_ref(&f), &Links::new("https://pypi.example".into(), None))
                .contains(&format!("data-provenance=\"{want}\""))
        );
        // PEP 740: an http URL is no valid data-provenance; the JSON still names it.
        assert!(
            !project_html(&project("active"), &[], std::slice::from_ref(&f), &Links::new("http://pypi.example".into(), None))
                .contains("data-provenance")
        );
        assert_eq!(
            project_json(&project("active"), &[], &[file("x-1.0-py3-none-any.whl", false, None)], &Links::new("https://p".into(), None))["files"]
                [0]["provenance"],
            Value::Null
        );
    }

    #[test]
    fn html_escapes_and_marks() {
        let html = project_html(
            &project("active"),
            &[],
            &[file("demo-1.0+x-py3-none-any.whl", true, Some("bad <b>"))],
            &Links::new("http://test".into(), None),
        );
        assert!(html.contains("href=\"../../files/demo-1.0%2Bx-py3-none-any.whl#sha256=ab\""), "{html}");
        assert!(html.contains("data-requires-python=\"&gt;=3.8,&lt;4\""));
        assert!(html.contains("data-yanked=\"bad &lt;b&gt;\""));
        assert!(html.contains("data-core-metadata=\"sha256=12\""));
        assert!(html.contains("<!--SERIAL 7-->"));
    }

    #[test]
    fn file_links_are_absolute_under_a_public_url_and_relative_without() {
        let f = [file("demo-1.0+x-py3-none-any.whl", false, None)];
        let public = Links::new("https://pypi.example.org/pkgs".into(), Some("https://pypi.example.org/pkgs/"));
        let json = project_json(&project("active"), &[], &f, &public);
        assert_eq!(json["files"][0]["url"], json!("https://pypi.example.org/pkgs/files/demo-1.0%2Bx-py3-none-any.whl"));
        assert!(
            project_html(&project("active"), &[], &f, &public)
                .contains("href=\"https://pypi.example.org/pkgs/files/demo-1.0%2Bx-py3-none-any.whl#")
        );
        let bare = Links::new("http://127.0.0.1:8080".into(), None);
        assert_eq!(project_json(&project("active"), &[], &f, &bare)["files"][0]["url"], json!("../../files/demo-1.0%2Bx-py3-none-any.whl"));
    }

    #[test]
    fn json_fields() {
        let v =
            project_json(&project("active"), &[], &[file("a-1.0-py3-none-any.whl", true, None)], &Links::new("http://test".into(), None));
        let f = &v["files"][0];
        assert_eq!(f["yanked"], json!(true));
        assert_eq!(f["size"], json!(10));
        assert_eq!(f["upload-time"], json!("2023-11-14T22:13:20.123456Z"));
        assert_eq!(f["core-metadata"], json!({"sha256": "12"}));
        assert_eq!(v["meta"]["api-version"], json!("1.4"));
    }

    #[test]
    fn quarantined_files_are_hidden() {
        let mut held = file("a-2.0-py3-none-any.whl", false, None);
        held.status = "quarantined".into();
        held.release_id = 2;
        let releases = vec![
            Release {
                id: 1,
                project_id: 1,
                version: "1.0".into(),
                canonical_version: "1".into(),
                created_at: 0,
                metadata: "{}".into(),
                requires_python: None,
            },
            Release {
                id: 2,
                project_id: 1,
                version: "2.0".into(),
                canonical_version: "2".into(),
                created_at: 0,
                metadata: "{}".into(),
                requires_python: None,
            },
        ];
        let files = vec![file("a-1.0-py3-none-any.whl", false, None), held.clone()];
        let v = project_json(&project("active"), &releases, &files, &Links::new("http://test".into(), None));
        assert_eq!(v["files"].as_array().unwrap().len(), 1);
        assert_eq!(v["versions"], json!(["1.0"]));
        assert_eq!(v["project-status"]["status"], json!("active"));
        // When every file is held, the whole project is quarantined.
        let v = project_json(&project("active"), &releases, &[held], &Links::new("http://test".into(), None));
        assert_eq!(v["project-status"]["status"], json!("quarantined"));
    }

    fn release(id: i64, version: &str) -> Release {
        let canonical = palisade_dist::canonical_version(&palisade_dist::parse_version(version).unwrap());
        Release {
            id,
            project_id: 1,
            version: version.into(),
            canonical_version: canonical,
            created_at: 0,
            metadata: "{\"summary\": \"from the first upload\"}".into(),
            requires_python: Some(">=3.99".into()),
        }
    }

    /// The release row was written by the first upload, here a held one; the public view takes
    /// nothing from it but its id.
    #[test]
    fn public_releases_are_described_by_their_earliest_published_file() {
        let mut held = file("a-1.0.0-py3-none-any.whl", false, None);
        (held.status, held.id, held.upload_time) = ("quarantined".into(), 1, 10);
        let mut sdist = file("a-1.0.tar.gz", false, None);
        (sdist.id, sdist.upload_time) = (2, 20);
        let mut wheel = file("a-1.0-py2.py3-none-any.whl", false, None);
        (wheel.id, wheel.upload_time) = (3, 30);
        let mut only_held = file("a-2.0-py3-none-any.whl", false, None);
        (only_held.status, only_held.release_id, only_held.id) = ("quarantined".into(), 2, 4);
        let mut old = file("a-0.9-py3-none-any.whl", false, None);
        (old.release_id, old.id) = (3, 5);
        let releases = vec![release(1, "1.0.0"), release(2, "2.0"), release(3, "0.9"), release(4, "0.1")];
        let files = vec![held, wheel, sdist, only_held, old];
        let public = public_releases(&project("active"), &releases, &files);
        let got: Vec<(&str, &str, Vec<&str>)> = public
            .iter()
            .map(|r| (r.version.as_str(), r.first.filename.as_str(), r.files.iter().map(|f| f.filename.as_str()).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("0.9", "a-0.9-py3-none-any.whl", vec!["a-0.9-py3-none-any.whl"]),
                ("1.0", "a-1.0.tar.gz", vec!["a-1.0-py2.py3-none-any.whl", "a-1.0.tar.gz"]),
            ]
        );
        assert_eq!(
            project_json(&project("active"), &releases, &files, &Links::new("http://test".into(), None))["versions"],
            json!(["0.9", "1.0"])
        );
        assert!(public_releases(&project("quarantined"), &releases, &files).is_empty());
    }

    #[test]
    fn quarantined_projects_list_no_files() {
        let v = project_json(
            &project("quarantined"),
            &[],
            &[file("a-1.0-py3-none-any.whl", false, None)],
            &Links::new("http://test".into(), None),
        );
        assert_eq!(v["files"], json!([]));
        assert_eq!(v["project-status"]["status"], json!("quarantined"));
        assert!(
            !project_html(
                &project("quarantined"),
                &[],
                &[file("a-1.0-py3-none-any.whl", false, None)],
                &Links::new("http://test".into(), None)
            )
            .contains("<a ")
        );
    }
}
