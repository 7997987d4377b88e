//! Core metadata (`*.dist-info/METADATA`, `PKG-INFO`): parsing, and the checks an index applies to
//! it on upload.
//!
//! The format is email headers, and installers read it with Python's `email` parser. Palisade
//! reads it with `python-pkginfo` (over `mailparse`), whose idea of where the headers end is more
//! forgiving; so the header block is first cut where Python cuts it (see [`header_block`]), and
//! what Python would read differently from `mailparse` is refused. What Palisade records is then
//! what pip and uv read.

use pep440_rs::{Version, VersionSpecifiers};
use python_pkginfo::Metadata;

/// Core metadata as uploaded, with the fields the index needs parsed out. The raw bytes are what the
/// index serves at `<file>.metadata` (PEP 658), so they are kept unchanged.
#[derive(Clone, Debug)]
pub struct CoreMetadata {
    pub fields: Metadata,
    pub version: Version,
    pub normalized_name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("core metadata could not be parsed: {0}")]
    Parse(String),
    #[error("core metadata is not valid UTF-8")]
    Encoding,
    #[error("unsupported Metadata-Version {0:?}: supported are 1.0 to 2.5")]
    UnsupportedVersion(String),
    #[error("core metadata has an invalid Name {0:?}")]
    Name(String),
    #[error("core metadata has an invalid Version {0:?}")]
    Version(String),
    #[error("core metadata has {count} '{field}' fields; a single-use field must appear once")]
    Repeated { field: &'static str, count: usize },
    #[error("core metadata line {line} {why}")]
    Header { line: usize, why: &'static str },
    #[error("core metadata has an invalid Requires-Python {value:?}: it must be PEP 440 version specifiers such as \">=3.9\" ({reason})")]
    RequiresPython { value: String, reason: String },
}

/// Metadata versions defined by the core metadata spec.
const SUPPORTED: &[&str] = &["1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5"];

/// The core metadata spec's single-use fields (as `packaging.metadata` knows them): each may
/// appear at most once. Header names compare case-insensitively.
const SINGLE_USE: &[&str] = &[
    "Metadata-Version",
    "Name",
    "Version",
    "Summary",
    "Description",
    "Description-Content-Type",
    "Keywords",
    "Home-page",
    "Download-URL",
    "Author",
    "Author-email",
    "Maintainer",
    "Maintainer-email",
    "License",
    "License-Expression",
    "Requires-Python",
];

impl CoreMetadata {
    pub fn parse(raw: &[u8]) -> Result<Self, MetadataError> {
        let text = std::str::from_utf8(raw).map_err(|_| MetadataError::Encoding)?;
        let block = header_block(text)?;
        for field in SINGLE_USE {
            let count = block.names.iter().filter(|n| n.eq_ignore_ascii_case(field)).count();
            if count > 1 {
                return Err(MetadataError::Repeated { field, count });
            }
        }
        let fields = Metadata::parse(block.as_python_reads(text).as_bytes()).map_err(|e| MetadataError::Parse(e.to_string()))?;
        let mv = fields.metadata_version.trim();
        if !SUPPORTED.contains(&mv) {
            return Err(MetadataError::UnsupportedVersion(mv.to_string()));
        }
        let name = crate::ProjectName::new(fields.name.trim()).map_err(|_| MetadataError::Name(fields.name.clone()))?;
        let version = crate::parse_version(&fields.version).map_err(|_| MetadataError::Version(fields.version.clone()))?;
        if let Some(value) = fields.requires_python.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            value
                .parse::<VersionSpecifiers>()
                .map_err(|e| MetadataError::RequiresPython { value: value.to_string(), reason: e.to_string() })?;
        }
        Ok(Self { normalized_name: name.normalized().to_string(), version, fields })
    }

    /// The fields of metadata that was accepted earlier, without the upload checks (which may
    /// have grown stricter since): for rendering what is already stored.
    pub fn read_fields(raw: &[u8]) -> Result<Metadata, MetadataError> {
        let text = std::str::from_utf8(raw).map_err(|_| MetadataError::Encoding)?;
        let cut = header_block(text).map(|b| b.as_python_reads(text).into_owned()).unwrap_or_else(|_| text.to_string());
        Metadata::parse(cut.as_bytes()).map_err(|e| MetadataError::Parse(e.to_string()))
    }
}

/// The header lines of a metadata file, as Python's `email.feedparser` delimits them.
struct HeaderBlock<'a> {
    /// Field names in order, repeats included.
    names: Vec<&'a str>,
    /// Byte offset of a line that ended the headers without the blank separator line: Python
    /// takes it, and everything after it, as the body (old setuptools wrote `Keywords` values
    /// with bare newlines, so real files have this).
    body_without_separator: Option<usize>,
}

impl HeaderBlock<'_> {
    /// The text with a blank line inserted where Python's headers end, so that `mailparse`, which
    /// would read on past a line that is not a header, stops where Python stops.
    fn as_python_reads<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match self.body_without_separator {
            Some(at) => format!("{}\n{}", &text[..at], &text[at..]).into(),
            None => text.into(),
        }
    }
}

/// Finds the header block the way Python's `email` parser (compat32, what pip, uv's Python
/// tooling and `packaging` use) does: headers are `name: value` lines whose name is printable
/// ASCII without `:`, continued by lines starting with a space or a tab; the first other line
/// ends them (a blank one is dropped, any other starts the body). The corners where Python does
/// something other than `mailparse` are refused instead of emulated: a carriage return inside a
/// line (Python breaks the line there), a first line that is a continuation, a line with an empty
/// field name, and a `From ` line (a Unix mailbox separator to Python).
fn header_block(text: &str) -> Result<HeaderBlock<'_>, MetadataError> {
    let mut names = Vec::new();
    let mut offset = 0;
    for (i, raw_line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let err = |why| MetadataError::Header { line: line_no, why };
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.strip_suffix('\n').unwrap_or(raw_line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains('\r') {
            return Err(err("contains a carriage return inside the line; installers would split the line there"));
        }
        if line.is_empty() {
            return Ok(HeaderBlock { names, body_without_separator: None });
        }
        if line.starts_with([' ', '\t']) {
            if i == 0 {
                return Err(err("is a continuation line, but there is no header before it"));
            }
            continue;
        }
        if line.starts_with("From ") {
            return Err(err("starts with \"From \", which email parsers take as a mailbox separator, not a header"));
        }
        let name_len = line.bytes().take_while(|&b| (0x21..=0x7e).contains(&b) && b != b':').count();
        if line.as_bytes().get(name_len) != Some(&b':') {
            // Not a header: the body starts here, without the blank separator line.
            if names.is_empty() {
                return Err(err("is not a 'Field: value' header; core metadata starts with headers"));
            }
            return Ok(HeaderBlock { names, body_without_separator: Some(start) });
        }
        if name_len == 0 {
            return Err(err("has an empty field name"));
        }
        names.push(&line[..name_len]);
    }
    Ok(HeaderBlock { names, body_without_separator: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

    /// (name, version, summary, requires_dist, description)
    type Fields = (String, String, Option<String>, Vec<String>, Option<String>);

    /// Parses `HEAD` + `rest` and returns its fields or the error text.
    fn parsed(rest: &str) -> Result<Fields, String> {
        CoreMetadata::parse(format!("{HEAD}{rest}").as_bytes())
            .map(|m| {
                let f = m.fields;
                (f.name, f.version, f.summary, f.requires_dist, f.description.map(|d| d.trim().to_string()))
            })
            .map_err(|e| e.to_string())
    }

    fn check_err(rest: &str, expected: &str) {
        assert_eq!(parsed(rest).map(|_| ()), Err(expected.to_string()), "{rest:?}");
    }

    #[test]
    fn parses_a_wheel_metadata() {
        let raw = b"Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.0.0\nRequires-Python: >=3.8\nRequires-Dist: requests>=2\nSummary: A demo\n\nLong description\n";
        let m = CoreMetadata::parse(raw).unwrap();
        assert_eq!(m.normalized_name, "demo-pkg");
        assert_eq!(m.version.to_string(), "1.0.0");
        assert_eq!(m.fields.requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(m.fields.requires_dist, vec!["requests>=2"]);
    }

    #[test]
    fn rejects_bad_metadata() {
        for raw in [
            &b"Metadata-Version: 9.0\nName: a\nVersion: 1\n"[..],
            b"Metadata-Version: 2.1\nName: -a\nVersion: 1\n",
            b"Metadata-Version: 2.1\nName: a\nVersion: one\n",
            b"Metadata-Version: 2.1\nVersion: 1\n",
            b"Metadata-Version: 2.1\nName: a\nVersion: 1\n\xff\xfe",
        ] {
            assert!(CoreMetadata::parse(raw).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn single_use_fields_appear_once() {
        check_err("Version: 2.0\n", "core metadata has 2 'Version' fields; a single-use field must appear once");
        check_err("name: evil\n", "core metadata has 2 'Name' fields; a single-use field must appear once");
        check_err("NAME: demo\n", "core metadata has 2 'Name' fields; a single-use field must appear once");
        check_err("Metadata-Version: 2.4\n", "core metadata has 2 'Metadata-Version' fields; a single-use field must appear once");
        check_err("Summary: a\nSummary: b\nSummary: c\n", "core metadata has 3 'Summary' fields; a single-use field must appear once");
        check_err(
            "Requires-Python: >=3.8\nrequires-python: >=2.7\n",
            "core metadata has 2 'Requires-Python' fields; a single-use field must appear once",
        );
        check_err("Home-Page: a\nhome-page: b\n", "core metadata has 2 'Home-page' fields; a single-use field must appear once");
        check_err(
            "License-Expression: MIT\nLicense-Expression: GPL-3.0-only\n",
            "core metadata has 2 'License-Expression' fields; a single-use field must appear once",
        );
        for field in SINGLE_USE.iter().filter(|f| !["Metadata-Version", "Name", "Version"].contains(f)) {
            let rest = format!("{field}: one\n{}: two\n", field.to_ascii_uppercase());
            let got = parsed(&rest).unwrap_err();
            assert!(got.starts_with(&format!("core metadata has 2 '{field}' fields")), "{field}: {got}");
        }
        // Multiple-use fields may repeat; a single-use name in the body is description text.
        assert_eq!(
            parsed("Requires-Dist: a\nRequires-Dist: b\nClassifier: x\nClassifier: y\n\nVersion: 2.0\n").map(|p| p.3),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn headers_end_where_python_ends_them() {
        // passlib 1.7.4's PKG-INFO: a Keywords value with bare newlines. Python's email parser
        // ends the headers at the first line that is not one; so does Palisade, and what follows
        // is description, not headers.
        let got = parsed("Keywords: password\ncrypt md5-crypt\nRequires-Dist: evil\nSummary: hidden\n").unwrap();
        assert_eq!((got.2, got.3), (None, vec![]));
        assert!(got.4.as_deref().is_some_and(|d| d.starts_with("crypt md5-crypt\nRequires-Dist: evil")), "{:?}", got.4);
        // A second Version after such a line is body text too, not a repeated field.
        assert!(parsed("Keywords: a\nb c\nVersion: 2.0\n").is_ok());
        // CRLF line ends are fine; folded values are continuations (kept folded, as Python's
        // compat32 policy keeps them).
        let crlf = "Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\nSummary: a\r\n  b\r\nRequires-Dist: x\r\n\r\nbody\r\n";
        let m = CoreMetadata::parse(crlf.as_bytes()).unwrap().fields;
        assert_eq!((m.summary.as_deref(), m.requires_dist), (Some("a\r\n  b"), vec!["x".to_string()]));
        // A name with a space before the colon is not a header to Python.
        let got = parsed("Summary: s\nRequires-Dist : evil\nRequires-Dist: also\n").unwrap();
        assert_eq!(got.3, Vec::<String>::new());
    }

    #[test]
    fn refuses_what_python_reads_differently() {
        check_err(
            "Summary: fine\rRequires-Dist: evil\n",
            "core metadata line 4 contains a carriage return inside the line; installers would split the line there",
        );
        check_err(
            "From evil\n",
            "core metadata line 4 starts with \"From \", which email parsers take as a mailbox separator, not a header",
        );
        check_err(": no name\n", "core metadata line 4 has an empty field name");
        let first_continued = CoreMetadata::parse(b" Metadata-Version: 2.1\nName: a\nVersion: 1\n").unwrap_err();
        assert_eq!(first_continued.to_string(), "core metadata line 1 is a continuation line, but there is no header before it");
        let no_headers = CoreMetadata::parse("\u{feff}Metadata-Version: 2.1\nName: a\nVersion: 1\n".as_bytes()).unwrap_err();
        assert_eq!(no_headers.to_string(), "core metadata line 1 is not a 'Field: value' header; core metadata starts with headers");
        // In the description, anything goes.
        assert!(parsed("\nFrom here\r on: x\n : y\n").is_ok());
    }

    #[test]
    fn requires_python_is_pep_440() {
        for ok in [">=3.8", ">=3.6, <4", ">=2.7,!=3.0.*,!=3.1.*", "~=3.9", "==3.*", "  >=3.10  ", ""] {
            assert!(parsed(&format!("Requires-Python: {ok}\n")).is_ok(), "{ok:?}");
        }
        for bad in ["python3", ">=3.8;", "3.8+", ">= three", ">=3.8 or <2", ">=3.6.*"] {
            let got = parsed(&format!("Requires-Python: {bad}\n")).unwrap_err();
            assert!(got.starts_with(&format!("core metadata has an invalid Requires-Python {:?}", bad.trim())), "{bad}: {got}");
        }
    }

    #[test]
    fn stored_metadata_is_read_without_the_upload_checks() {
        let raw = format!("{HEAD}Summary: one\nSummary: two\nRequires-Python: whatever\n");
        assert!(CoreMetadata::parse(raw.as_bytes()).is_err());
        assert_eq!(CoreMetadata::read_fields(raw.as_bytes()).unwrap().summary.as_deref(), Some("one"));
    }
}
