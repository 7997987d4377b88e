//! Core metadata (`*.dist-info/METADATA`, `PKG-INFO`): parsing, and the checks an index applies to
//! it on upload.

use pep440_rs::Version;
use python_pkginfo::Metadata;

/// Core metadata as uploaded, with the fields the index needs parsed out. The raw bytes are what the
/// index serves at `<file>.metadata` (PEP 658), so they are kept unchanged.
#[derive(Clone, Debug)]
pub struct CoreMetadata {
    pub fields: Metadata,
    pub version: Version,
    pub normalized_name: String,
}

#[derive(Debug, thiserror::Error)]
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
}

/// Metadata versions defined by the core metadata spec.
const SUPPORTED: &[&str] = &["1.0", "1.1", "1.2", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5"];

impl CoreMetadata {
    pub fn parse(raw: &[u8]) -> Result<Self, MetadataError> {
        if std::str::from_utf8(raw).is_err() {
            return Err(MetadataError::Encoding);
        }
        let fields = Metadata::parse(raw).map_err(|e| MetadataError::Parse(e.to_string()))?;
        let mv = fields.metadata_version.trim();
        if !SUPPORTED.contains(&mv) {
            return Err(MetadataError::UnsupportedVersion(mv.to_string()));
        }
        let name = crate::ProjectName::new(fields.name.trim()).map_err(|_| MetadataError::Name(fields.name.clone()))?;
        let version = crate::parse_version(&fields.version).map_err(|_| MetadataError::Version(fields.version.clone()))?;
        Ok(Self { normalized_name: name.normalized().to_string(), version, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
