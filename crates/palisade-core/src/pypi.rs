//! What the pipeline needs to know about a Python distribution: its core metadata, read from
//! inside the archive and checked against the filename. Another ecosystem brings its own reader
//! of the same shape.

use palisade_archive::Limits;
use std::path::Path;

use palisade_dist::{CoreMetadata, DistFilename};

use crate::error::{Result, internal, invalid};

/// A distribution's core metadata, checked, in the forms the store keeps.
pub struct Metadata {
    /// The project name as the metadata spells it.
    pub name: String,
    pub version: String,
    pub canonical_version: String,
    pub requires_python: Option<String>,
    /// The parsed fields, as JSON (the JSON API serves them).
    pub fields_json: String,
    /// The metadata file's bytes (served as the file's `.metadata`, PEP 658).
    pub raw: Vec<u8>,
}

/// Reads and checks the core metadata of the distribution at `path`, called `filename`: present where the format puts it, parseable,
/// naming the same project and version as the filename, its description within
/// `max_description_bytes`; the archive itself within `max_uncompressed_bytes` and free of the
/// ambiguities `palisade_archive` refuses.
pub async fn read_metadata(
    path: &Path,
    dist: &DistFilename,
    filename: &str,
    max_uncompressed_bytes: u64,
    max_description_bytes: u64,
) -> Result<Metadata> {
    let limits = Limits { max_total_uncompressed: max_uncompressed_bytes, ..Limits::default() };
    let (owned_path, owned_dist, owned_name) = (path.to_path_buf(), dist.clone(), filename.to_string());
    let raw = tokio::task::spawn_blocking(move || palisade_archive::read_core_metadata(&owned_path, &owned_dist, &owned_name, &limits))
        .await
        .map_err(internal)?
        .map_err(|e| invalid(format!("invalid distribution: {e}")))?;
    let meta = CoreMetadata::parse(&raw).map_err(|e| invalid(format!("invalid distribution {filename:?}: {e}")))?;
    if meta.normalized_name != dist.normalized_name {
        return Err(invalid(format!("the metadata's Name {:?} does not match the filename {filename:?}", meta.fields.name)));
    }
    if meta.version != dist.version {
        return Err(invalid(format!("the metadata's Version {:?} does not match the filename {filename:?}", meta.fields.version)));
    }
    let description = meta.fields.description.as_ref().map_or(0, String::len) as u64;
    if description > max_description_bytes {
        return Err(invalid(format!(
            "invalid distribution {filename:?}: its description (the core metadata's long description) is {description} bytes; \
             this server accepts at most {max_description_bytes} bytes (max_description_bytes)"
        )));
    }
    Ok(Metadata {
        name: meta.fields.name.trim().to_string(),
        version: meta.version.to_string(),
        canonical_version: palisade_dist::canonical_version(&meta.version),
        requires_python: meta.fields.requires_python.clone().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        fields_json: serde_json::to_string(&meta.fields).map_err(internal)?,
        raw,
    })
}
