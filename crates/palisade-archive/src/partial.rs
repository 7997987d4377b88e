//! A wheel's core metadata from parts of the wheel (HTTP range requests), without the whole file:
//! what an index does for an upstream that serves no PEP 658 metadata file. The caller holds the
//! parts it has fetched; [`wheel_metadata`] either reads the metadata from them or names the part
//! it needs next. A zip is read from its end (the central directory), then the one member.
//!
//! The answer is the wheel's own `*.dist-info/METADATA` bytes. Nothing here vouches for them:
//! parts of a file cannot be checked against the file's sha256, so they are what upstream's
//! PEP 658 file would be, upstream's word, and the whole file is still checked and scanned before
//! it is served.

use std::io::{self, Read, Seek, SeekFrom};

use palisade_dist::DistFilename;

use crate::{ArchiveError, Limits};

/// The parts of one file fetched so far.
#[derive(Clone, Debug)]
pub struct Parts {
    size: u64,
    /// `(start, bytes)`, non-overlapping is not required.
    ranges: Vec<(u64, Vec<u8>)>,
}

/// What [`wheel_metadata`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The bytes `start..end` (end exclusive) are needed next.
    Need { start: u64, end: u64 },
    /// The metadata file's bytes.
    Metadata(Vec<u8>),
}

/// The least fetched at once: a small member and its header come in one request.
pub const MIN_PART: u64 = 256 << 10;

impl Parts {
    pub fn new(size: u64) -> Self {
        Self { size, ranges: Vec::new() }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held, in all.
    pub fn held(&self) -> u64 {
        self.ranges.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Adds the bytes fetched at `start` (clipped to the file's size).
    pub fn add(&mut self, start: u64, mut bytes: Vec<u8>) {
        let room = self.size.saturating_sub(start);
        bytes.truncate(usize::try_from(room).unwrap_or(usize::MAX));
        self.ranges.push((start, bytes));
    }

    /// The last `n` bytes' range (what to fetch first).
    pub fn tail(&self, n: u64) -> (u64, u64) {
        (self.size.saturating_sub(n), self.size)
    }
}

/// A reader over the parts: a read outside them fails, noting where.
struct Sparse<'a> {
    parts: &'a Parts,
    pos: u64,
    missing: Option<(u64, u64)>,
}

impl Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.parts.size || buf.is_empty() {
            return Ok(0);
        }
        for (start, bytes) in &self.parts.ranges {
            let end = start + bytes.len() as u64;
            if (*start..end).contains(&self.pos) {
                let from = usize::try_from(self.pos - start).unwrap_or(usize::MAX);
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
        }
        self.missing = Some((self.pos, buf.len() as u64));
        Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a part not fetched yet"))
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.parts.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// The core metadata of the wheel `filename`, from `parts`, or the part needed next. A wheel
/// with no, or more than one, top-level `*.dist-info/METADATA`, or whose metadata folder names
/// another release, is an error, as is one that is not a zip, repeats a member name, or whose
/// metadata exceeds `limits.max_metadata_bytes`.
pub fn wheel_metadata(parts: &Parts, filename: &DistFilename, display: &str, limits: &Limits) -> Result<Step, ArchiveError> {
    let mut reader = Sparse { parts, pos: 0, missing: None };
    let result = read(&mut reader, filename, display, limits);
    match (result, reader.missing) {
        (Ok(data), _) => Ok(Step::Metadata(data)),
        (Err(_), Some((start, len))) => {
            // At least as much as is held already: a central directory read entry by entry
            // comes in a few requests, however large.
            let end = start.saturating_add(len.max(MIN_PART).max(parts.held())).min(parts.size);
            Ok(Step::Need { start, end })
        }
        (Err(e), None) => Err(e),
    }
}

fn read(reader: &mut Sparse<'_>, filename: &DistFilename, display: &str, limits: &Limits) -> Result<Vec<u8>, ArchiveError> {
    let zerr = |e: zip::result::ZipError| ArchiveError::Zip(display.to_string(), e.to_string());
    let mut zip = zip::ZipArchive::new(reader).map_err(zerr)?;
    if zip.len() as u64 > limits.max_entries {
        return Err(ArchiveError::TooManyEntries(display.to_string(), limits.max_entries));
    }
    if zip.has_duplicate_names() {
        return Err(ArchiveError::Duplicate(display.to_string(), "(a name in the central directory)".into()));
    }
    let found: Vec<usize> = (0..zip.len())
        .filter(|&i| {
            zip.name_for_index(i).is_some_and(|n| n.is_ok_and(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1))
        })
        .collect();
    let index = match found[..] {
        [i] => i,
        [] => return Err(ArchiveError::Layout(display.to_string(), "the wheel has no *.dist-info/METADATA".into())),
        _ => return Err(ArchiveError::Layout(display.to_string(), "the wheel has more than one *.dist-info/METADATA".into())),
    };
    let folder = zip.name_for_index(index).and_then(Result::ok).unwrap_or_default();
    let stem = folder.trim_end_matches("/METADATA").trim_end_matches(".dist-info");
    if !crate::names_release(stem, filename) {
        return Err(ArchiveError::Layout(
            display.to_string(),
            format!("the wheel's metadata folder {stem:?}.dist-info is not that of {} {}", filename.normalized_name, filename.version),
        ));
    }
    let member = zip.by_index(index).map_err(zerr)?;
    let name = member.name().map_err(zerr)?.to_string();
    if member.size() > limits.max_metadata_bytes {
        return Err(ArchiveError::MetadataTooLarge(display.to_string(), name, limits.max_metadata_bytes));
    }
    let mut data = Vec::new();
    // The zip reader checks the member's CRC-32 as it reaches its end.
    member.take(limits.max_metadata_bytes + 1).read_to_end(&mut data).map_err(|e| ArchiveError::Io(display.to_string(), e))?;
    if data.len() as u64 > limits.max_metadata_bytes {
        return Err(ArchiveError::MetadataTooLarge(display.to_string(), name, limits.max_metadata_bytes));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn wheel(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, data) in members {
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    /// Reads the metadata the way the mirror does, fetching what is asked for; returns it and
    /// the number of fetches.
    fn by_parts(file: &[u8], first: u64) -> (Result<Vec<u8>, ArchiveError>, usize) {
        let mut parts = Parts::new(file.len() as u64);
        let (start, end) = parts.tail(first);
        parts.add(start, file[start as usize..end as usize].to_vec());
        for fetches in 1..10 {
            match wheel_metadata(&parts, &demo(), "demo.whl", &Limits::default()) {
                Ok(Step::Metadata(m)) => return (Ok(m), fetches),
                Ok(Step::Need { start, end }) => parts.add(start, file[start as usize..end as usize].to_vec()),
                Err(e) => return (Err(e), fetches),
            }
        }
        panic!("never done");
    }

    fn demo() -> DistFilename {
        DistFilename::parse("demo-1.0-py3-none-any.whl").unwrap()
    }

    fn noise(n: usize) -> Vec<u8> {
        // Incompressible enough that the file is large.
        (0..n).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
    }

    #[test]
    fn the_metadata_of_a_large_wheel_comes_from_two_or_three_parts() {
        let metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: idna\n".to_vec();
        let file = wheel(&[
            ("demo/__init__.py", noise(3 << 20)),
            ("demo-1.0.dist-info/METADATA", metadata.clone()),
            ("demo-1.0.dist-info/RECORD", b"".to_vec()),
        ]);
        let (got, fetches) = by_parts(&file, 64 << 10);
        assert_eq!(got.unwrap(), metadata);
        assert!(fetches <= 3, "{fetches} fetches");
        // The whole file at once: one.
        let (got, fetches) = by_parts(&file, file.len() as u64);
        assert_eq!(got.unwrap(), metadata);
        assert_eq!(fetches, 1);
    }

    #[test]
    fn wheels_without_one_clear_metadata_file_are_errors() {
        let none = wheel(&[("demo/__init__.py", b"x".to_vec())]);
        assert!(matches!(by_parts(&none, 64 << 10).0, Err(ArchiveError::Layout(..))));
        let two = wheel(&[("a-1.0.dist-info/METADATA", b"a".to_vec()), ("b-1.0.dist-info/METADATA", b"b".to_vec())]);
        assert!(matches!(by_parts(&two, 64 << 10).0, Err(ArchiveError::Layout(..))));
        let nested = wheel(&[("demo/vendored-1.0.dist-info/METADATA", b"x".to_vec())]);
        assert!(matches!(by_parts(&nested, 64 << 10).0, Err(ArchiveError::Layout(..))));
        // Another release's metadata in demo-1.0's wheel.
        let other = wheel(&[("evil-2.0.dist-info/METADATA", b"Name: evil".to_vec())]);
        assert!(matches!(by_parts(&other, 64 << 10).0, Err(ArchiveError::Layout(..))));
        assert!(matches!(by_parts(b"not a zip at all, just text", 64).0, Err(ArchiveError::Zip(..))));
    }

    #[test]
    fn a_large_central_directory_comes_in_few_parts() {
        let metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n".to_vec();
        let mut members: Vec<(String, Vec<u8>)> =
            (0..40_000).map(|i| (format!("demo/module_with_a_long_name_{i}.py"), Vec::new())).collect();
        members.push(("demo-1.0.dist-info/METADATA".into(), metadata.clone()));
        let members: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        let file = wheel(&members);
        assert!(file.len() > 3 << 20, "{}", file.len());
        let (got, fetches) = by_parts(&file, MIN_PART);
        assert_eq!(got.unwrap(), metadata);
        assert!(fetches <= 6, "{fetches} fetches");
    }

    #[test]
    fn metadata_past_the_limit_is_refused() {
        let file = wheel(&[("demo-1.0.dist-info/METADATA", vec![b'a'; 1 << 20])]);
        let mut parts = Parts::new(file.len() as u64);
        parts.add(0, file.clone());
        let limits = Limits { max_metadata_bytes: 1000, ..Limits::default() };
        assert!(matches!(wheel_metadata(&parts, &demo(), "demo.whl", &limits), Err(ArchiveError::MetadataTooLarge(..))));
    }

    #[test]
    fn parts_past_the_end_are_clipped() {
        let mut parts = Parts::new(10);
        parts.add(8, vec![1, 2, 3, 4]);
        assert_eq!(parts.held(), 2);
        assert_eq!(parts.tail(100), (0, 10));
    }
}
