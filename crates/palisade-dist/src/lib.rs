//! The vocabulary of Python distributions, with no I/O: project names (PEP 503), versions
//! (PEP 440), wheel and sdist filenames (PEP 427, PEP 625) and their identity, core metadata,
//! digests, the environments installers install for (which wheels and requirements apply there,
//! PEP 425 and PEP 508), and the rules for the short free text people attach to them (yank reasons).
//!
//! Everything here is a pure function of its input so that the server, the CLI and the scanner can
//! agree on what a filename or a metadata file means.

mod digest;
mod filename;
mod metadata;
mod name;
mod target;
mod text;

pub use digest::{Digests, Hasher, sha256_hex};
pub use filename::{DistFilename, DistKind, FilenameError};
pub use metadata::{CoreMetadata, MetadataError};
pub use name::{NameError, ProjectName, normalize};
pub use pep440_rs::{Version, VersionSpecifiers};
pub use python_pkginfo::Metadata as MetadataFields;
pub use target::{Dependency, Libc, Target};
pub use text::{MAX_TEXT_CHARS, TextError, check_text, display_hazard};

/// Parses a PEP 440 version, accepting the non-canonical spellings the spec allows
/// (`v1.0`, `1.0-post1`) and returning the parsed value.
pub fn parse_version(text: &str) -> Result<Version, String> {
    text.trim().parse::<Version>().map_err(|e| e.to_string())
}

/// The key under which a release is unique: PEP 440 equality, so trailing zeros in the release
/// segment do not count (`1.0` and `1.0.0` are one release), as in `packaging.utils.canonicalize_version`.
pub fn canonical_version(v: &Version) -> String {
    let mut release: Vec<u64> = v.release().to_vec();
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    v.clone().with_release(release).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_versions() {
        for (a, b) in
            [("1.0", "1"), ("1.0.0", "1"), ("1.0.0.post1", "1.post1"), ("2!1.10.0rc1", "2!1.10rc1"), ("0", "0"), ("v1.0-1", "1.post1")]
        {
            assert_eq!(canonical_version(&parse_version(a).unwrap()), b, "{a}");
        }
    }
}
