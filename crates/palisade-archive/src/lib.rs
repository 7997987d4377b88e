//! Bounded reading of distribution archives.
//!
//! The upload path needs one thing from an archive: its core metadata file, found where the
//! format says it lives, and proof that the archive is not hostile to whoever unpacks it. Every
//! read here is bounded (entries, sizes, compression ratio), hostile member names are refused, and
//! an archive that cannot be read completely is an error: the caller never sees a partial answer.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use palisade_dist::{DistFilename, DistKind};

mod anomaly;
pub mod partial;
mod tarread;
mod tree;
mod walk;
use tree::{Kind, Tree};
pub use walk::{Anomaly, Format, Member, Walk, WalkLimits, walk_bytes, walk_file};

/// Limits applied while reading. The defaults suit uploads of up to a few hundred MiB.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Members in one archive.
    pub max_entries: u64,
    /// Size of the core metadata file.
    pub max_metadata_bytes: u64,
    /// Sum of all members' uncompressed sizes.
    pub max_total_uncompressed: u64,
    /// Uncompressed/compressed ratio allowed once the uncompressed total passes `ratio_floor`.
    pub max_ratio: u64,
    pub ratio_floor: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_entries: 100_000, max_metadata_bytes: 8 << 20, max_total_uncompressed: 4 << 30, max_ratio: 50, ratio_floor: 64 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0} is not a readable zip archive: {1}")]
    Zip(String, String),
    #[error("{0} is not a readable gzip-compressed tar archive: {1}")]
    Tar(String, String),
    #[error("{0} has more than {1} members")]
    TooManyEntries(String, u64),
    #[error("{0} expands to more than {1} bytes (a decompression bomb?)")]
    TooLarge(String, u64),
    #[error("{0} has a compression ratio above {1}:1 (a decompression bomb?)")]
    Ratio(String, u64),
    #[error(
        "{0} contains a member with an unsafe path {1:?} (absolute, climbing with .., with a backslash or control character, or too long to extract)"
    )]
    UnsafePath(String, String),
    #[error("{0} contains the member {1:?} more than once")]
    Duplicate(String, String),
    #[error("{0} contains a link or special file {1:?}, which distributions must not have")]
    SpecialMember(String, String),
    /// Extractors would disagree on what the archive holds (the message is the anomaly's).
    #[error("{0}: {1}")]
    Ambiguous(String, String),
    #[error(
        "{0}: zip member {1:?} is also named {2:?} (in its local header or a Unicode path field); installers would disagree on its name"
    )]
    NameMismatch(String, String, String),
    #[error("{0}: {1}")]
    Layout(String, String),
    #[error("{0}: the core metadata file {1} is larger than {2} bytes")]
    MetadataTooLarge(String, String, u64),
    #[error("could not read {0}: {1}")]
    Io(String, #[source] io::Error),
}

/// Reads the core metadata file of the distribution at `path`, whose name was parsed as `filename`:
/// `{name}-{version}.dist-info/METADATA` for a wheel, `{name}-{version}/PKG-INFO` for an sdist.
pub fn read_core_metadata(path: &Path, filename: &DistFilename, display: &str, limits: &Limits) -> Result<Vec<u8>, ArchiveError> {
    let file = File::open(path).map_err(|e| ArchiveError::Io(display.to_string(), e))?;
    let compressed = file.metadata().map_err(|e| ArchiveError::Io(display.to_string(), e))?.len();
    match filename.kind {
        DistKind::Wheel => {
            // A second handle (not a clone, which would share the file position) reads headers.
            let raw = File::open(path).map_err(|e| ArchiveError::Io(display.to_string(), e))?;
            read_wheel(file, raw, compressed, filename, display, limits)
        }
        DistKind::Sdist => read_sdist(path, file, compressed, filename, display, limits),
    }
}

/// Whether a member name is safe to extract below a root: relative, no `..`, no backslashes or
/// drive letters, no NUL or other control characters, and short enough to create (at most 4096
/// bytes, 255 per component, as Linux allows).
pub fn is_safe_member_path(name: &str) -> bool {
    if name.is_empty() || name.starts_with('/') || name.contains('\\') || name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return false;
    }
    if name.len() > tarread::MAX_NAME_BYTES as usize || name.split('/').any(|c| c.len() > 255) {
        return false;
    }
    !name.split('/').any(|c| c == "..")
}

fn read_wheel(
    file: File,
    mut raw: File,
    compressed: u64,
    filename: &DistFilename,
    display: &str,
    limits: &Limits,
) -> Result<Vec<u8>, ArchiveError> {
    let zerr = |e: zip::result::ZipError| ArchiveError::Zip(display.to_string(), e.to_string());
    // pip opens a wheel from its end; other tools stream it from its first byte. Both must find
    // the same zip: no other format in front, no data before the archive.
    let mut magic = [0u8; 4];
    raw.read_exact(&mut magic).map_err(|e| ArchiveError::Io(display.to_string(), e))?;
    if &magic != b"PK\x03\x04" {
        return Err(ArchiveError::Zip(display.to_string(), "a wheel must start with a zip member header".into()));
    }
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(zerr)?;
    if zip.offset() != 0 {
        return Err(ArchiveError::Zip(display.to_string(), "data before the zip archive".into()));
    }
    if zip.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries(display.to_string(), limits.max_entries));
    }
    // The zip reader indexes members by name, so a repeated name would silently hide one copy:
    // exactly the parser confusion that lets an index and an installer see different files.
    if zip.has_duplicate_names() {
        return Err(ArchiveError::Duplicate(display.to_string(), "(a name in the central directory)".into()));
    }
    let mut tree = Tree::new();
    let mut total: u64 = 0;
    let mut dist_infos: Vec<String> = Vec::new();
    let mut starts = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(zerr)?;
        starts.push(entry.central_header_start());
        let reader_name = entry.name_raw().to_vec();
        let (header_start, central_start) = (entry.header_start(), entry.central_header_start());
        let is_symlink = entry.is_symlink();
        total = total.saturating_add(entry.size());
        drop(entry);
        // pip installs with Python's zipfile, which takes the central directory's name and
        // ignores Unicode path fields; other readers take the local header's. They must agree.
        let central = walk::central_header_name(&mut raw, central_start)
            .map(|(n, _)| n)
            .ok_or_else(|| ArchiveError::Zip(display.to_string(), format!("the central header of member {i} cannot be read")))?;
        let local = walk::local_header_name(&mut raw, header_start)
            .ok_or_else(|| ArchiveError::Zip(display.to_string(), format!("the local header of member {i} cannot be read")))?;
        let name = String::from_utf8(central.clone())
            .map_err(|_| ArchiveError::UnsafePath(display.to_string(), String::from_utf8_lossy(&central).into_owned()))?;
        for other in [&local, &reader_name] {
            if *other != central {
                return Err(ArchiveError::NameMismatch(display.to_string(), name, String::from_utf8_lossy(other).into_owned()));
            }
        }
        let Some(path) = tree::normalize(&name).filter(|n| is_safe_member_path(n)) else {
            return Err(ArchiveError::UnsafePath(display.to_string(), name));
        };
        if is_symlink {
            return Err(ArchiveError::SpecialMember(display.to_string(), name));
        }
        let kind = if name.ends_with('/') { Kind::Dir } else { Kind::File };
        // The zip reader shows one copy of a repeated name, so a repeat is refused outright.
        if tree.insert(&path, kind, i, &name).map_err(|a| ArchiveError::Ambiguous(display.to_string(), a.to_string()))?.is_some() {
            return Err(ArchiveError::Duplicate(display.to_string(), name));
        }
        if let Some((top, rest)) = path.split_once('/')
            && top.ends_with(".dist-info")
            && rest == "METADATA"
        {
            dist_infos.push(top.to_string());
        }
    }
    walk::central_directory_agrees(&mut raw, zip.central_directory_start(), &mut starts)
        .map_err(|e| ArchiveError::Zip(display.to_string(), e))?;
    check_totals(display, total, compressed, limits)?;
    let dist_info = match dist_infos.as_slice() {
        [one] => one.clone(),
        [] => return Err(ArchiveError::Layout(display.to_string(), "the wheel has no *.dist-info/METADATA".into())),
        _ => return Err(ArchiveError::Layout(display.to_string(), "the wheel has more than one *.dist-info directory".into())),
    };
    // Installers take the project from this folder's name (pip refuses a mismatch).
    let stem = dist_info.trim_end_matches(".dist-info");
    if !names_release(stem, filename) {
        return Err(ArchiveError::Layout(
            display.to_string(),
            format!(
                "the wheel's metadata folder {dist_info:?} is not that of {} {}: it must be {}-{}.dist-info",
                filename.normalized_name, filename.version, filename.name, filename.version
            ),
        ));
    }
    for required in ["WHEEL", "RECORD"] {
        if !tree.is_file(&format!("{dist_info}/{required}")) {
            return Err(ArchiveError::Layout(display.to_string(), format!("the wheel has no {dist_info}/{required}")));
        }
    }
    let member = format!("{dist_info}/METADATA");
    let entry = zip.by_name(&member).map_err(zerr)?;
    read_bounded(entry, display, &member, limits.max_metadata_bytes)
}

/// Whether a `{name}-{version}` folder name (an sdist's top folder, a wheel's `.dist-info`)
/// names the release `filename` belongs to: the same normalized project, an equal version.
fn names_release(stem: &str, filename: &DistFilename) -> bool {
    let Some((name, version)) = stem.rsplit_once('-') else { return false };
    palisade_dist::normalize(name) == filename.normalized_name && palisade_dist::parse_version(version).is_ok_and(|v| v == filename.version)
}

fn read_sdist(
    file_path: &Path,
    file: File,
    compressed: u64,
    filename: &DistFilename,
    display: &str,
    limits: &Limits,
) -> Result<Vec<u8>, ArchiveError> {
    let terr = |e: io::Error| ArchiveError::Tar(display.to_string(), e.to_string());
    let ambiguous = |a: Anomaly| ArchiveError::Ambiguous(display.to_string(), a.to_string());
    // Every gzip member, as tarfile and GNU tar read them: a reader that stops after the first
    // would see another archive than the one installed.
    let mut file = io::BufReader::new(file);
    if !io::BufRead::fill_buf(&mut file).map_err(terr)?.starts_with(&[0x1f, 0x8b]) {
        return Err(ArchiveError::Tar(display.to_string(), "not gzip-compressed".into()));
    }
    let gz = flate2::read::MultiGzDecoder::new(file);
    let mut archive = tar::Archive::new(gz);
    let mut count: u64 = 0;
    let mut total: u64 = 0;
    let mut top: Option<String> = None;
    let mut pkg_info: Option<Vec<u8>> = None;
    let mut tree = Tree::new();
    let mut repeats = Vec::new();
    let mut ext = tarread::Extensions::default();
    for (index, entry) in archive.entries().map_err(terr)?.raw(true).enumerate() {
        let mut entry = entry.map_err(terr)?;
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(display.to_string(), limits.max_entries));
        }
        let names = match ext.step(&mut entry) {
            Ok(tarread::Step::Extension) => continue,
            Ok(tarread::Step::Member(names)) => names,
            Err(reason) => {
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                return Err(ambiguous(Anomaly::TarHeader { path, reason }));
            }
        };
        let kind = walk::tar_kind(entry.header().entry_type(), &names.link);
        let raw = names.path;
        let name = String::from_utf8(raw.clone())
            .map_err(|_| ArchiveError::UnsafePath(display.to_string(), String::from_utf8_lossy(&raw).into_owned()))?;
        let old_dir = names.old_dir;
        let kind = if old_dir { Kind::Dir } else { kind.map_err(|()| ArchiveError::SpecialMember(display.to_string(), name.clone()))? };
        let Some(path) = tree::normalize(&name) else {
            if name.trim_start_matches("./").trim_end_matches('/').is_empty() {
                continue;
            }
            return Err(ArchiveError::UnsafePath(display.to_string(), name));
        };
        if !is_safe_member_path(&path) || (kind == Kind::File && name.ends_with('/')) {
            return Err(ArchiveError::UnsafePath(display.to_string(), name));
        }
        let first = path.split('/').next().unwrap_or("").to_string();
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(ArchiveError::Layout(
                    display.to_string(),
                    format!("an sdist has one top-level directory, found {t:?} and {first:?}"),
                ));
            }
            _ => {}
        }
        let is_file = kind == Kind::File;
        if !is_file && path == format!("{first}/PKG-INFO") {
            return Err(ArchiveError::Layout(display.to_string(), format!("{path} must be a regular file, not a link or folder")));
        }
        if let Some(first) = tree.insert(&path, kind, index, &name).map_err(ambiguous)? {
            repeats.push((first, index, name.clone()));
        }
        if is_file {
            let size = entry.header().size().map_err(terr)?;
            total = total.saturating_add(size);
            if total > limits.max_total_uncompressed {
                return Err(ArchiveError::TooLarge(display.to_string(), limits.max_total_uncompressed));
            }
            // A tar header states its member's exact size, so a bomb is refused here, before
            // its content is decompressed, not after gigabytes of it.
            if total > limits.ratio_floor && total / compressed.max(1) > limits.max_ratio {
                return Err(ArchiveError::Ratio(display.to_string(), limits.max_ratio));
            }
            if path == format!("{first}/PKG-INFO") {
                pkg_info = Some(read_bounded(&mut entry, display, &path, limits.max_metadata_bytes)?);
            } else {
                // Drain the member through the decompressor so a corrupt stream is noticed here.
                io::copy(&mut entry, &mut io::sink()).map_err(terr)?;
            }
        }
    }
    if ext.dangling() {
        return Err(ambiguous(Anomaly::TarHeader { path: String::new(), reason: "extension headers with no member after them".into() }));
    }
    // After the end marker only zero padding may follow: anything else is an archive that
    // extractors never read (and the gzip trailers are checked on the way).
    let ratio_cap = limits.ratio_floor.max(compressed.saturating_mul(limits.max_ratio));
    let budget = limits.max_total_uncompressed.min(ratio_cap).saturating_sub(total);
    let (found, trailing) = walk::trailing_data(archive.into_inner(), budget).map_err(terr)?;
    if found {
        return Err(ArchiveError::Ambiguous(display.to_string(), Anomaly::TrailingData { path: String::new() }.to_string()));
    }
    check_totals(display, total.saturating_add(trailing), compressed, limits)?;
    if count == 0 {
        return Err(ArchiveError::Layout(display.to_string(), "the sdist is empty".into()));
    }
    // A later member can change where an earlier link leads: check them all against the end.
    tree.aliases(limits.max_entries as usize).map_err(ambiguous)?;
    // A file stated twice is one file only if both copies are the same bytes.
    if !repeats.is_empty() {
        let digests = member_digests(file_path, repeats.iter().flat_map(|r| [r.0, r.1]).collect()).map_err(terr)?;
        for (first, again, name) in repeats {
            if digests.get(&first) != digests.get(&again) || !digests.contains_key(&first) {
                return Err(ArchiveError::Duplicate(display.to_string(), name));
            }
        }
    }
    let top = top.unwrap_or_default();
    if !names_release(&top, filename) {
        return Err(ArchiveError::Layout(
            display.to_string(),
            format!(
                "the sdist's top-level folder {top:?} is not that of {} {}: it must be {}-{}",
                filename.normalized_name, filename.version, filename.name, filename.version
            ),
        ));
    }
    pkg_info.ok_or_else(|| ArchiveError::Layout(display.to_string(), format!("the sdist has no {top}/PKG-INFO")))
}

/// The SHA-256 of the sdist members at the given walk indexes, read again from the start.
fn member_digests(path: &Path, wanted: std::collections::HashSet<usize>) -> io::Result<std::collections::HashMap<usize, [u8; 32]>> {
    use sha2::Digest;
    let gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(File::open(path)?));
    let mut archive = tar::Archive::new(gz);
    let mut out = std::collections::HashMap::new();
    let last = wanted.iter().copied().max().unwrap_or(0);
    for (index, entry) in archive.entries()?.raw(true).enumerate() {
        if index > last {
            break;
        }
        let mut entry = entry?;
        if wanted.contains(&index) {
            let mut hasher = sha2::Sha256::new();
            io::copy(&mut entry, &mut hasher)?;
            out.insert(index, hasher.finalize().into());
        }
    }
    Ok(out)
}

fn escapes_root(path: &str) -> bool {
    let mut depth: i64 = 0;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn check_totals(display: &str, total: u64, compressed: u64, limits: &Limits) -> Result<(), ArchiveError> {
    if total > limits.max_total_uncompressed {
        return Err(ArchiveError::TooLarge(display.to_string(), limits.max_total_uncompressed));
    }
    if total > limits.ratio_floor && total / compressed.max(1) > limits.max_ratio {
        return Err(ArchiveError::Ratio(display.to_string(), limits.max_ratio));
    }
    Ok(())
}

fn read_bounded(reader: impl Read, display: &str, member: &str, max: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    reader.take(max + 1).read_to_end(&mut out).map_err(|e| ArchiveError::Io(format!("{display} ({member})"), e))?;
    if out.len() as u64 > max {
        return Err(ArchiveError::MetadataTooLarge(display.to_string(), member.to_string(), max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
