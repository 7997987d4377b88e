//! Checks on a distribution's own metadata: typosquatting of its name and the tells of a
//! dependency-confusion probe.

use crate::Context;
use crate::report::{Finding, Severity};
use crate::typo::TypoIndex;

pub struct Meta {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub description: String,
}

/// `PKG-INFO` at the top of an sdist or `*.dist-info/METADATA` in a wheel.
pub fn is_metadata_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [_, "PKG-INFO"] => true,
        [d, "METADATA"] => d.ends_with(".dist-info"),
        _ => false,
    }
}

pub fn parse(data: &[u8]) -> Option<Meta> {
    let m = python_pkginfo_lite(data)?;
    Some(m)
}

/// A forgiving header reader: malware metadata is often malformed, and the scanner must still see
/// the name and version.
fn python_pkginfo_lite(data: &[u8]) -> Option<Meta> {
    let text = String::from_utf8_lossy(data);
    let (headers, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text[i + 2..].trim().to_string()),
        None => (&text[..], String::new()),
    };
    let mut name = None;
    let mut version = None;
    let mut summary = String::new();
    let mut description = body;
    for line in headers.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(v.to_string()),
            "version" => version = Some(v.to_string()),
            "summary" => summary = v.to_string(),
            "description" if description.is_empty() && v != "UNKNOWN" => description = v.to_string(),
            _ => {}
        }
    }
    Some(Meta { name: name?, version: version.unwrap_or_default(), summary, description })
}

/// The typosquatting finding for `name` against an index, if it imitates something there.
/// `others` are the package's other findings: a look-alike name is a reason to look; a
/// look-alike that also runs code at install is the classic attack.
pub fn typosquat_finding(name: &str, index: &TypoIndex, what: &str, others: &[Finding]) -> Option<Finding> {
    let s = index.check(name)?;
    let runs_code = others.iter().any(|f| f.rule.starts_with("py-install") || f.rule == "py-import-download-exec");
    let severity = if runs_code { Severity::High } else { Severity::Medium };
    Some(Finding::new(
        "meta-typosquat",
        severity,
        Context::Install,
        "",
        None,
        name,
        &format!("the name {name:?} imitates the {what} project {:?} ({})", s.target, s.how),
    ))
}

pub fn check(meta: Option<&Meta>, _filename: &str, typo: &TypoIndex, hosted: &[String], others: &[Finding]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(m) = meta else { return out };
    let hosted_index = (!hosted.is_empty()).then(|| TypoIndex::new(hosted.iter().map(String::as_str)));
    let squat = typosquat_finding(&m.name, typo, "popular", others)
        .or_else(|| hosted_index.as_ref().and_then(|h| typosquat_finding(&m.name, h, "hosted", others)));
    out.extend(squat);
    let major: u64 = m.version.trim_start_matches(['v', 'V']).split(['.', '-', '+']).next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let empty = |s: &str| {
        let t = s.trim();
        t.is_empty() || t.eq_ignore_ascii_case("unknown") || t.len() < 5
    };
    if major >= 90 {
        let bare = empty(&m.summary) && empty(&m.description);
        out.push(Finding::new(
            "meta-dependency-confusion",
            if bare { Severity::Medium } else { Severity::Low },
            Context::Install,
            "",
            None,
            &format!("{} {}", m.name, m.version),
            "an implausibly high version number, the way dependency-confusion probes outrank an internal package",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_metadata_files() {
        assert!(is_metadata_file("demo-1.0/PKG-INFO"));
        assert!(is_metadata_file("demo-1.0.dist-info/METADATA"));
        assert!(!is_metadata_file("demo-1.0/src/demo.egg-info/PKG-INFO"));
    }

    #[test]
    fn dependency_confusion_tells() {
        let typo = TypoIndex::new(["requests"].into_iter());
        let m = parse(b"Metadata-Version: 2.1\nName: internal-tool\nVersion: 99.0.0\n").unwrap();
        let f = check(Some(&m), "", &typo, &[], &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Medium);
        let m = parse(b"Metadata-Version: 2.1\nName: internal-tool\nVersion: 1.0\nSummary: a tool\n").unwrap();
        assert!(check(Some(&m), "", &typo, &[], &[]).is_empty());
    }

    #[test]
    fn typosquat_against_hosted() {
        let typo = TypoIndex::new(["requests"].into_iter());
        let m = parse(b"Name: acme-billing\nVersion: 1.0\n").unwrap();
        let f = check(Some(&m), "", &typo, &["acme-biling".to_string()], &[]);
        assert_eq!(f[0].rule, "meta-typosquat");
    }
}
