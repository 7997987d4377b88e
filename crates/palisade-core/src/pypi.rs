//! Python's side of the pipeline: the distribution filename names the project, version and tags;
//! twine's form claims a name, version, file type and digests; the core metadata is read from
//! inside the archive and checked against the filename; and two wheels with the same tags (or
//! two sdists of one release) are the same file to pip, whatever their spelling.

use palisade_archive::Limits;
use palisade_dist::{CoreMetadata, Digests, DistFilename};
use palisade_store::Reservation;

use crate::Core;
use crate::ecosystem::{Description, Ecosystem, Received};
use crate::error::{Error, Result, internal, invalid};

/// The Python Package Index's rules.
pub struct Python;

/// What twine's form said about the file. Each claim that is present must agree with the file.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub name: Option<String>,
    pub version: Option<String>,
    /// `sdist` or `bdist_wheel`.
    pub filetype: Option<String>,
    pub sha256: Option<String>,
    pub blake2_256: Option<String>,
    /// Hex, or URL-safe base64 without padding (what PyPI's form documents).
    pub md5: Option<String>,
}

impl Ecosystem for Python {
    type File = DistFilename;
    type Claims = Claims;

    fn project(file: &DistFilename) -> &str {
        &file.normalized_name
    }

    fn version(file: &DistFilename) -> String {
        file.version.to_string()
    }

    fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
        let a: palisade_dist::Version = a.parse().ok()?;
        let b: palisade_dist::Version = b.parse().ok()?;
        Some(a.cmp(&b))
    }

    fn reservation_key(file: &DistFilename) -> String {
        file.identity()
    }

    fn check_claims(claims: &Claims, file: &Received<DistFilename>) -> Result<()> {
        check_claims(claims, file)
    }

    async fn describe(core: &Core, file: &Received<DistFilename>) -> Result<Description> {
        let (max_uncompressed, max_description) = (core.config.max_uncompressed_bytes, core.config.max_description_bytes);
        describe(file, max_uncompressed, max_description).await
    }

    fn reused(filename: &str, digests: &Digests, r: &Reservation) -> Error {
        file_exists(filename, &digests.blake2b_256, r)
    }
}

/// Reads and checks the core metadata of the distribution `file`: present where the format puts
/// it, parseable, naming the same project and version as the filename, its description within
/// `max_description_bytes`; the archive itself within `max_uncompressed_bytes` and free of the
/// ambiguities `palisade_archive` refuses.
async fn describe(file: &Received<DistFilename>, max_uncompressed_bytes: u64, max_description_bytes: u64) -> Result<Description> {
    let (dist, filename) = (&file.file, &file.filename);
    let limits = Limits { max_total_uncompressed: max_uncompressed_bytes, ..Limits::default() };
    let (owned_path, owned_dist, owned_name) = (file.blob.path().to_path_buf(), dist.clone(), filename.clone());
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
    Ok(Description {
        name: meta.fields.name.trim().to_string(),
        version: meta.version.to_string(),
        canonical_version: palisade_dist::canonical_version(&meta.version),
        kind: dist.kind.filetype().to_string(),
        target: dist.pyversion().to_string(),
        requires: meta.fields.requires_python.clone().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        fields_json: serde_json::to_string(&meta.fields).map_err(internal)?,
        metadata: raw,
    })
}

/// The form must describe the same file the filename names, and carry a digest that matches.
fn check_claims(claims: &Claims, file: &Received<DistFilename>) -> Result<()> {
    let (dist, filename) = (&file.file, &file.filename);
    if let Some(filetype) = &claims.filetype
        && filetype != dist.kind.filetype()
    {
        return Err(invalid(format!("filetype {filetype:?} does not match {filename:?}, which is a {}", dist.kind.filetype())));
    }
    if let Some(name) = &claims.name
        && palisade_dist::normalize(name) != dist.normalized_name
    {
        return Err(invalid(format!("the form's name {name:?} does not match the filename {filename:?}")));
    }
    if let Some(version) = &claims.version {
        let same = palisade_dist::parse_version(version).is_ok_and(|v| v == dist.version);
        if !same {
            return Err(invalid(format!("the form's version {version:?} does not match the filename {filename:?}")));
        }
    }
    check_digests(claims, &file.digests, filename)
}

fn check_digests(claims: &Claims, d: &Digests, filename: &str) -> Result<()> {
    if claims.sha256.is_none() && claims.blake2_256.is_none() && claims.md5.is_none() {
        return Err(invalid("the upload carries no digest: send sha256_digest (twine does)"));
    }
    let mismatch = |what: &str, sent: &str, actual: &str| {
        invalid(format!(
            "the {what} sent ({sent}) does not match the uploaded file {filename:?} ({actual}); the file was corrupted in transit or the digest is wrong"
        ))
    };
    if let Some(s) = &claims.sha256
        && !s.eq_ignore_ascii_case(&d.sha256)
    {
        return Err(mismatch("sha256_digest", s, &d.sha256));
    }
    if let Some(b) = &claims.blake2_256
        && !b.eq_ignore_ascii_case(&d.blake2b_256)
    {
        return Err(mismatch("blake2_256_digest", b, &d.blake2b_256));
    }
    if let Some(m) = &claims.md5 {
        let b64 = d.md5_urlsafe_b64();
        if *m != b64 && !m.eq_ignore_ascii_case(&d.md5) {
            return Err(mismatch("md5_digest", m, &b64));
        }
    }
    Ok(())
}

/// The answer to a reserved filename. twine's `--skip-existing` recognises "File already exists".
fn file_exists(filename: &str, blake2: &str, r: &Reservation) -> Error {
    if r.filename == filename {
        return invalid(format!(
            "File already exists ({filename:?}, with blake2_256 hash {blake2:?}). Filenames are never reused, even after a file is removed; upload a new version instead."
        ));
    }
    let existing = &r.filename;
    let (has, what) = if r.live { ("already has", "") } else { ("had", ", since removed; its name stays reserved") };
    let same = if filename.ends_with(".whl") { "for the same tags" } else { "as its sdist" };
    invalid(format!(
        "File already exists: this release {has} {existing:?} {same}{what}, and {filename:?} is another spelling of the same file \
         (installers compare the normalized project name, the version, the build tag and the tags). A file is never replaced; \
         upload a new version (or, for a wheel, a new build tag) instead."
    ))
}
