//! Advisory feeds on disk and the export layout OSV.dev uses.
//!
//! OSV.dev publishes each ecosystem as `<ecosystem>/all.zip` (one `<ID>.json` per record),
//! `<ecosystem>/<ID>.json`, and `<ecosystem>/modified_id.csv` (`<modified>,<ID>` per line, no
//! header, newest first), which lets a mirror fetch only what changed. Palisade reads that layout
//! from OSV.dev or from another Palisade instance, and writes it for its own verdicts. A checkout
//! of ossf/malicious-packages is read as a folder.
//!
//! Every read is bounded: entry and file counts, each record's size (read with a limit, never
//! trusting a size a zip header declares), the total uncompressed size, folder depth. A bad record
//! is reported to the caller's callback and the walk goes on; only a problem with the container
//! itself (an unreadable zip directory, a bound passed) stops it.

use std::cmp::Reverse;
use std::fs;
use std::io::{Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::read::{Advisory, MAX_RECORD_BYTES, parse};
use crate::{OsvError, is_valid_id, parse_timestamp};

/// The most lines a `modified_id.csv`, entries a zip, or files a folder may hold.
pub const MAX_FEED_ITEMS: usize = 1_000_000;
/// The most bytes all of a zip's records may decompress to, together.
pub const MAX_ZIP_TOTAL_BYTES: u64 = 8 << 30;
/// The deepest folder level read below the folder named.
pub const MAX_FOLDER_DEPTH: usize = 16;

/// The `modified_id.csv` text for `(modified, id)` pairs: one `<modified>,<id>` line each, newest
/// first (by instant, so offsets and fractional seconds compare correctly), then by id.
/// Timestamps that do not parse sort last.
pub fn modified_id_csv(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by_key(|(modified, id)| (Reverse(parse_timestamp(modified)), id.as_str()));
    let mut out = String::new();
    for (modified, id) in sorted {
        out.push_str(modified);
        out.push(',');
        out.push_str(id);
        out.push('\n');
    }
    out
}

/// Reads a `modified_id.csv`: `(modified, id)` pairs in file order. Blank lines and `\r\n` line
/// ends are accepted; every other line must be an RFC 3339 timestamp, a comma and an OSV id.
/// The top-level file OSV.dev also publishes (`<ecosystem>/<ID>` ids) is not this format.
pub fn parse_modified_id_csv(text: &str) -> Result<Vec<(String, String)>, OsvError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line_no > MAX_FEED_ITEMS {
            return Err(OsvError::TooMany { what: "modified_id.csv lines".into(), limit: MAX_FEED_ITEMS as u64 });
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let shown = || line.chars().take(60).collect::<String>();
        let Some((modified, id)) = line.split_once(',') else {
            return Err(OsvError::Csv { line: line_no, reason: format!("{:?} is not `<modified>,<id>`", shown()) });
        };
        if parse_timestamp(modified).is_none() {
            return Err(OsvError::Csv { line: line_no, reason: format!("{:?} is not an RFC 3339 timestamp", shown()) });
        }
        if !is_valid_id(id) {
            return Err(OsvError::Csv { line: line_no, reason: format!("{:?} does not end in an OSV id", shown()) });
        }
        out.push((modified.to_string(), id.to_string()));
    }
    Ok(out)
}

/// An `all.zip` holding each record as `<id>.json`, deflated. Ids must be valid OSV ids (so no
/// entry name can hold a path) and appear once.
pub fn write_zip(records: &[(String, Vec<u8>)]) -> Result<Vec<u8>, OsvError> {
    let zip_err = |e: zip::result::ZipError| OsvError::Zip { archive: "(being written)".into(), reason: e.to_string() };
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(false);
    let mut seen = std::collections::HashSet::new();
    for (id, json) in records {
        if !is_valid_id(id) || !seen.insert(id.as_str()) {
            return Err(OsvError::ZipEntry {
                entry: format!("{}.json", id.chars().take(40).collect::<String>()),
                reason: "the id is not a valid OSV id or appears twice".into(),
            });
        }
        if json.len() > MAX_RECORD_BYTES {
            return Err(OsvError::TooLarge { what: format!("record {id}"), limit: MAX_RECORD_BYTES as u64 });
        }
        writer.start_file(format!("{id}.json"), options).map_err(zip_err)?;
        writer.write_all(json).map_err(|e| zip_err(e.into()))?;
    }
    Ok(writer.finish().map_err(zip_err)?.into_inner())
}

/// What a zip read held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipStats {
    /// Entries in the archive's directory.
    pub entries: usize,
    /// `.json` entries passed to the callback (read or failed).
    pub records: usize,
    /// Directories and entries not ending in `.json`, skipped.
    pub skipped: usize,
    /// Bytes decompressed.
    pub bytes: u64,
}

/// Reads every `.json` entry of the zip file at `path`, calling `f` with the entry name, its bytes
/// (empty when it could not be read) and the parsed advisory or the error for that entry (encrypted, too large, not a record).
pub fn read_zip(path: &Path, f: impl FnMut(&str, &[u8], Result<Advisory, OsvError>)) -> Result<ZipStats, OsvError> {
    let file = fs::File::open(path).map_err(|source| OsvError::Io { path: path.to_path_buf(), source })?;
    read_zip_from(std::io::BufReader::new(file), &path.display().to_string(), f)
}

/// [`read_zip`] for a zip held in memory.
pub fn read_zip_bytes(bytes: &[u8], f: impl FnMut(&str, &[u8], Result<Advisory, OsvError>)) -> Result<ZipStats, OsvError> {
    read_zip_from(Cursor::new(bytes), "(in memory)", f)
}

fn read_zip_from<R: Read + Seek>(
    reader: R,
    archive: &str,
    mut f: impl FnMut(&str, &[u8], Result<Advisory, OsvError>),
) -> Result<ZipStats, OsvError> {
    let zip_err = |e: zip::result::ZipError| OsvError::Zip { archive: archive.into(), reason: e.to_string() };
    let mut zip = zip::ZipArchive::new(reader).map_err(zip_err)?;
    let mut stats = ZipStats { entries: zip.len(), ..ZipStats::default() };
    if zip.len() > MAX_FEED_ITEMS {
        return Err(OsvError::TooMany { what: format!("entries of zip archive {archive}"), limit: MAX_FEED_ITEMS as u64 });
    }
    for i in 0..zip.len() {
        let name = match zip.name_for_index(i) {
            Some(Ok(name)) => name.into_owned(),
            _ => format!("(entry {i} with an unreadable name)"),
        };
        if name.ends_with('/') || !name.ends_with(".json") {
            stats.skipped += 1;
            continue;
        }
        stats.records += 1;
        let entry_err = |reason: String| OsvError::ZipEntry { entry: name.clone(), reason };
        let mut entry = match zip.by_index(i) {
            Ok(entry) if entry.encrypted() => {
                f(&name, &[], Err(entry_err("is encrypted".into())));
                continue;
            }
            Ok(entry) => entry,
            Err(zip::result::ZipError::UnsupportedArchive(msg)) if msg == zip::result::ZipError::PASSWORD_REQUIRED => {
                f(&name, &[], Err(entry_err("is encrypted".into())));
                continue;
            }
            Err(e) => {
                f(&name, &[], Err(entry_err(e.to_string())));
                continue;
            }
        };
        if entry.is_dir() {
            stats.skipped += 1;
            stats.records -= 1;
            continue;
        }
        // Read one byte past the bound so that an entry at the bound is told from one beyond it,
        // whatever size its header declares.
        let mut data = Vec::new();
        let read = (&mut entry).take(MAX_RECORD_BYTES as u64 + 1).read_to_end(&mut data);
        stats.bytes += data.len() as u64;
        match read {
            Err(e) => f(&name, &[], Err(entry_err(format!("cannot be decompressed: {e}")))),
            Ok(_) if data.len() > MAX_RECORD_BYTES => {
                f(&name, &[], Err(entry_err(format!("decompresses to more than {MAX_RECORD_BYTES} bytes"))))
            }
            Ok(_) => f(&name, &data, parse(&data)),
        }
        if stats.bytes > MAX_ZIP_TOTAL_BYTES {
            return Err(OsvError::TooLarge { what: format!("zip archive {archive}, decompressed"), limit: MAX_ZIP_TOTAL_BYTES });
        }
    }
    Ok(stats)
}

/// What a folder read held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderStats {
    /// `.json` files passed to the callback (read or failed).
    pub records: usize,
    /// Files not ending in `.json`, symbolic links, and `.git` folders, skipped.
    pub skipped: usize,
}

/// Reads every `*.json` file below `dir` (the folder itself and up to [`MAX_FOLDER_DEPTH`] levels
/// down), calling `f` with the path relative to `dir`, the file's bytes (empty when it could not be
/// read) and the advisory or the error for that file.
/// Symbolic links are skipped, never followed, so a feed cannot point the reader outside itself;
/// `.git` folders are skipped; entries are visited in name order so runs are repeatable.
///
/// In a checkout of ossf/malicious-packages both `osv/malicious/` and `osv/withdrawn/` are read.
/// Records moved to `osv/withdrawn/` carry a `withdrawn` timestamp; Palisade goes by that field,
/// not by the folder a record sits in, so a record under `withdrawn/` without one still counts.
pub fn read_folder(dir: &Path, mut f: impl FnMut(&Path, &[u8], Result<Advisory, OsvError>)) -> Result<FolderStats, OsvError> {
    let mut stats = FolderStats::default();
    // The folder the caller names may itself be a link (a checkout kept elsewhere); only the
    // links inside it are skipped.
    let meta = fs::metadata(dir).map_err(|source| OsvError::Io { path: dir.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(OsvError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
        });
    }
    let mut files = 0usize;
    walk(dir, PathBuf::new(), 0, &mut files, &mut stats, &mut f)?;
    Ok(stats)
}

fn walk(
    root: &Path,
    rel: PathBuf,
    depth: usize,
    files: &mut usize,
    stats: &mut FolderStats,
    f: &mut impl FnMut(&Path, &[u8], Result<Advisory, OsvError>),
) -> Result<(), OsvError> {
    let here = root.join(&rel);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OsvError::Io { path, source }
    };
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(&here).map_err(io(&here))?.collect::<Result<_, _>>().map_err(io(&here))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        *files += 1;
        if *files > MAX_FEED_ITEMS {
            return Err(OsvError::TooMany { what: format!("files under {}", root.display()), limit: MAX_FEED_ITEMS as u64 });
        }
        let name = entry.file_name();
        let rel_path = rel.join(&name);
        // `file_type` does not follow links, so a link is seen as a link.
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        if kind.is_symlink() {
            stats.skipped += 1;
        } else if kind.is_dir() {
            if name == ".git" {
                stats.skipped += 1;
            } else if depth + 1 > MAX_FOLDER_DEPTH {
                return Err(OsvError::TooMany { what: format!("folder levels under {}", root.display()), limit: MAX_FOLDER_DEPTH as u64 });
            } else {
                walk(root, rel_path, depth + 1, files, stats, f)?;
            }
        } else if kind.is_file() && name.to_string_lossy().ends_with(".json") {
            stats.records += 1;
            match read_file(&entry.path()) {
                Ok(bytes) => f(&rel_path, &bytes, parse(&bytes)),
                Err(e) => f(&rel_path, &[], Err(e)),
            }
        } else {
            stats.skipped += 1;
        }
    }
    Ok(())
}

/// Reads at most one byte past [`MAX_RECORD_BYTES`], whatever size the file claims.
fn read_file(path: &Path) -> Result<Vec<u8>, OsvError> {
    let file = fs::File::open(path).map_err(|source| OsvError::Io { path: path.to_path_buf(), source })?;
    let mut data = Vec::new();
    file.take(MAX_RECORD_BYTES as u64 + 1).read_to_end(&mut data).map_err(|source| OsvError::Io { path: path.to_path_buf(), source })?;
    if data.len() > MAX_RECORD_BYTES {
        return Err(OsvError::TooLarge { what: format!("file {}", path.display()), limit: MAX_RECORD_BYTES as u64 });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&[(&str, &str)], &str>) {
        let got = parse_modified_id_csv(text).map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(got), Ok(want)) => {
                let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
                assert_eq!(got, &want, "text {text:?}");
            }
            (Err(g), Err(w)) if g.contains(w) => {}
            _ => panic!("text {text:?}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn modified_id_csv_parsing() {
        check("", Ok(&[]));
        check(
            "2026-09-04T00:47:46.156672516Z,MAL-2026-15859\r\n2024-10-27T13:55:45Z,PYSEC-2021-1\n\n",
            Ok(&[("2026-09-04T00:47:46.156672516Z", "MAL-2026-15859"), ("2024-10-27T13:55:45Z", "PYSEC-2021-1")]),
        );
        check("modified,id\n", Err("line 1: \"modified,id\" is not an RFC 3339 timestamp"));
        check("2024-10-27T13:55:45Z,PYSEC-1\n2024-10-27T13:55:45Z\n", Err("line 2"));
        check("2024-10-27T13:55:45Z,PyPI/PYSEC-1\n", Err("does not end in an OSV id"));
    }

    #[test]
    fn modified_id_csv_is_newest_first_and_round_trips() {
        let entries: Vec<(String, String)> = [
            ("2024-01-01T00:00:00Z", "B-1"),
            ("2024-01-01T00:00:00.5Z", "A-1"),
            ("2024-01-01T01:00:00+02:00", "C-1"), // 2023-12-31T23:00Z, the oldest
            ("2024-01-01T00:00:00Z", "A-2"),
        ]
        .iter()
        .map(|(m, i)| (m.to_string(), i.to_string()))
        .collect();
        let text = modified_id_csv(&entries);
        assert_eq!(text, "2024-01-01T00:00:00.5Z,A-1\n2024-01-01T00:00:00Z,A-2\n2024-01-01T00:00:00Z,B-1\n2024-01-01T01:00:00+02:00,C-1\n");
        let back = parse_modified_id_csv(&text).unwrap();
        assert_eq!(modified_id_csv(&back), text);
    }
}
