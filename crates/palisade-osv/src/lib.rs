//! OSV records for Palisade: reading advisories from feeds (a folder such as a checkout of
//! ossf/malicious-packages, a zip such as OSV.dev's `PyPI/all.zip`, another instance's export),
//! deciding which releases and files they affect, and writing Palisade's own malware verdicts in
//! the shape ossf/malicious-packages uses.
//!
//! This is an engine crate: pure and synchronous, with no network, no database and no clock.
//! Timestamps come in as RFC 3339 strings from the caller; the only I/O is reading the folder or
//! zip file a caller names, with every count and size bounded.
//!
//! The modules follow the life of a record:
//! - [`read`]: one OSV JSON record into an [`Advisory`], strict in what Palisade enforces and
//!   lenient in everything else;
//! - [`affects`]: OSV's range evaluation over PEP 440 versions;
//! - [`decide`]: the one blocking decision the upload, download and proxy paths share;
//! - [`write`]: Palisade's own verdicts as OSV records, and their upstream contribution form;
//! - [`feed`]: the export layout OSV.dev uses (`all.zip`, `<ID>.json`, `modified_id.csv`) and
//!   folder walking;
//! - [`query`]: the request and response of OSV's `POST /v1/query`.

pub mod affects;
pub mod decide;
pub mod feed;
pub mod query;
pub mod read;
pub mod write;

pub use decide::{blocking, vulnerabilities};
pub use feed::{FolderStats, ZipStats, modified_id_csv, parse_modified_id_csv, read_folder, read_zip, read_zip_bytes, write_zip};
pub use query::{Query, parse_query, query_response};
pub use read::{Advisory, Affected, Event, MAX_RECORD_BYTES, Range, RangeKind, parse};
pub use write::{Credit, DEFAULT_PREFIX, FileDigests, SCHEMA_VERSION, Verdict, check_prefix, contribution, local_id, record};

use std::path::PathBuf;

/// The longest OSV id accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// Everything that can go wrong reading, writing or querying OSV data. Each message names the
/// record field, file, zip entry or line at fault and is written to be shown to a user as is
/// (in a 4xx response or a sync log).
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// An input is larger than the bound Palisade reads.
    #[error("{what} is larger than the {limit} bytes Palisade reads")]
    TooLarge { what: String, limit: u64 },
    /// An input holds more items (entries, files, lines, versions) than Palisade reads.
    #[error("{what}: more than {limit} are not read")]
    TooMany { what: String, limit: u64 },
    /// The bytes are not a JSON object.
    #[error("the OSV record is not valid JSON: {0}")]
    Json(String),
    /// A field of an OSV record is missing or does not hold what the OSV schema says.
    #[error("OSV record {id}: field `{field}` {reason}")]
    Field { id: String, field: String, reason: String },
    /// A line of a `modified_id.csv` file is malformed.
    #[error("modified_id.csv line {line}: {reason}")]
    Csv { line: usize, reason: String },
    /// A zip archive cannot be opened or its directory read.
    #[error("zip archive {archive}: {reason}")]
    Zip { archive: String, reason: String },
    /// One entry of a zip archive cannot be read (encrypted, unreadable, too large).
    #[error("zip entry {entry}: {reason}")]
    ZipEntry { entry: String, reason: String },
    /// A file or folder cannot be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A prefix for local advisory ids is not allowed.
    #[error("advisory id prefix {prefix:?}: {reason}")]
    Prefix { prefix: String, reason: String },
    /// A `/v1/query` request Palisade cannot answer.
    #[error("{0}")]
    Query(String),
    /// A verdict or record to write is not valid (bad name, version or digest).
    #[error("verdict {id}: {reason}")]
    Verdict { id: String, reason: String },
}

/// Whether `id` is a well-formed OSV id: at most [`MAX_ID_CHARS`] characters, starting with an
/// ASCII letter or digit, then letters, digits and `._:-`, plus `_` (which the `x_` prefix for
/// local databases needs). No `/`, so an id is always safe as a file name stem.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= MAX_ID_CHARS
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// Parses an RFC 3339 timestamp (`2024-10-27T13:55:45Z`, with or without fractional seconds or
/// an offset) into an instant, for validation and ordering.
pub(crate) fn parse_timestamp(text: &str) -> Option<jiff::Timestamp> {
    // jiff accepts a few RFC 9557 extensions (`[UTC]` annotations); OSV timestamps never carry
    // them, so anything with a bracket is refused rather than half understood.
    if text.len() > 64 || text.contains('[') {
        return None;
    }
    text.parse::<jiff::Timestamp>().ok()
}

/// Whether `text` is 64 hexadecimal digits (either case).
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, expected: bool) {
        assert_eq!(is_valid_id(id), expected, "id {id:?}");
    }

    #[test]
    fn ids() {
        check("MAL-2024-10238", true);
        check("PYSEC-2021-1", true);
        check("GHSA-xxxx-xxxx-xxxx", true);
        check("x_PALISADE-2026-1", true);
        check("openSUSE-SU-2024:1234-1", true);
        check("", false);
        check("-MAL-1", false);
        check("MAL/../x", false);
        check("MAL 1", false);
        check(&"A".repeat(129), false);
        check(&"A".repeat(128), true);
    }

    #[test]
    fn timestamps() {
        for ok in ["2024-10-27T13:55:45Z", "2026-09-04T00:47:46.156672516Z", "2024-01-01T00:00:00+02:00"] {
            assert!(parse_timestamp(ok).is_some(), "{ok}");
        }
        for bad in ["2024-10-27", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00Z[UTC]", ""] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }
}
