//! Walking every member of an archive for inspection, as the scanner needs it.
//!
//! Unlike [`crate::read_core_metadata`], which refuses a hostile archive at the first problem, a
//! walk goes on and records each problem as an [`Anomaly`], so that a report can list them all.
//! It is still bounded everywhere (members, bytes, ratio, nesting, bytes handed to the visitor),
//! and it says whether it read everything: `complete == false` means some content was not seen,
//! and a scanner must not call such an archive clean.
//!
//! The format is taken from the content, not the name: a zip called `.tar.gz` is read as a zip
//! (and the mismatch is an anomaly).

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use crate::{escapes_root, is_safe_member_path};

#[derive(Clone, Debug)]
pub struct WalkLimits {
    pub max_entries: u64,
    pub max_total_uncompressed: u64,
    /// Ratio of uncompressed to compressed size beyond which an archive is a bomb, once the
    /// uncompressed total passes `ratio_floor`.
    pub max_ratio: u64,
    pub ratio_floor: u64,
    /// Bytes of one member handed to the visitor; the rest is read (and counted) but not shown.
    pub max_member_bytes: u64,
    /// Archives inside archives are walked down to this depth (0 = the file itself only).
    pub max_depth: u8,
}

impl Default for WalkLimits {
    fn default() -> Self {
        Self {
            max_entries: 50_000,
            max_total_uncompressed: 1 << 30,
            max_ratio: 100,
            ratio_floor: 16 << 20,
            max_member_bytes: 4 << 20,
            max_depth: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zip,
    TarGz,
    TarBz2,
    Tar,
    Unknown,
}

impl Format {
    /// Sniffs the format from the first bytes (at least 262 for plain tar).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Format::Zip
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Format::TarGz
        } else if head.starts_with(b"BZh") {
            Format::TarBz2
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Format::Tar
        } else {
            Format::Unknown
        }
    }

    /// What a filename claims to be.
    pub fn from_name(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".whl") || n.ends_with(".zip") || n.ends_with(".egg") {
            Format::Zip
        } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Format::TarGz
        } else if n.ends_with(".tar.bz2") || n.ends_with(".tbz2") {
            Format::TarBz2
        } else if n.ends_with(".tar") {
            Format::Tar
        } else {
            Format::Unknown
        }
    }
}

/// Something structurally wrong or dangerous about an archive. `path` names the member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    UnsafePath { path: String },
    LinkOutside { path: String, target: String },
    Link { path: String, target: String },
    SpecialFile { path: String },
    Duplicate { path: String },
    HeaderMismatch { path: String, local: String },
    UndecodableName { path: String },
    FormatMismatch { claimed: Format, actual: Format },
    TooManyEntries { limit: u64 },
    TooLarge { limit: u64 },
    Bomb { path: String, ratio: u64 },
    TooDeep { path: String },
    Encrypted { path: String },
    Unreadable { path: String, reason: String },
}

impl Anomaly {
    /// A stable identifier, used as the finding's rule id.
    pub fn id(&self) -> &'static str {
        match self {
            Anomaly::UnsafePath { .. } => "archive-unsafe-path",
            Anomaly::LinkOutside { .. } => "archive-link-outside",
            Anomaly::Link { .. } => "archive-link",
            Anomaly::SpecialFile { .. } => "archive-special-file",
            Anomaly::Duplicate { .. } => "archive-duplicate-member",
            Anomaly::HeaderMismatch { .. } => "archive-zip-header-mismatch",
            Anomaly::UndecodableName { .. } => "archive-undecodable-name",
            Anomaly::FormatMismatch { .. } => "archive-format-mismatch",
            Anomaly::TooManyEntries { .. } => "archive-too-many-members",
            Anomaly::TooLarge { .. } => "archive-too-large",
            Anomaly::Bomb { .. } => "archive-bomb",
            Anomaly::TooDeep { .. } => "archive-nested-too-deep",
            Anomaly::Encrypted { .. } => "archive-encrypted-member",
            Anomaly::Unreadable { .. } => "archive-unreadable",
        }
    }

    /// The member concerned, if any.
    pub fn path(&self) -> &str {
        match self {
            Anomaly::UnsafePath { path }
            | Anomaly::LinkOutside { path, .. }
            | Anomaly::Link { path, .. }
            | Anomaly::SpecialFile { path }
            | Anomaly::Duplicate { path }
            | Anomaly::HeaderMismatch { path, .. }
            | Anomaly::UndecodableName { path }
            | Anomaly::Bomb { path, .. }
            | Anomaly::TooDeep { path }
            | Anomaly::Encrypted { path }
            | Anomaly::Unreadable { path, .. } => path,
            _ => "",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::UnsafePath { path } => {
                write!(f, "member {path:?} has an absolute or parent-relative path that would escape the extraction folder")
            }
            Anomaly::LinkOutside { path, target } => write!(f, "link {path:?} points outside the archive ({target:?})"),
            Anomaly::Link { path, target } => write!(f, "member {path:?} is a link to {target:?}"),
            Anomaly::SpecialFile { path } => write!(f, "member {path:?} is a device, FIFO or other special file"),
            Anomaly::Duplicate { path } => write!(f, "member {path:?} appears more than once; tools disagree on which copy wins"),
            Anomaly::HeaderMismatch { path, local } => {
                write!(f, "zip member {path:?} is named {local:?} in its local header: parsers disagree on its name")
            }
            Anomaly::UndecodableName { path } => write!(f, "member name {path:?} is not valid UTF-8 or contains control characters"),
            Anomaly::FormatMismatch { claimed, actual } => write!(f, "the file's name says {claimed:?} but its content is {actual:?}"),
            Anomaly::TooManyEntries { limit } => write!(f, "the archive has more than {limit} members; the rest was not inspected"),
            Anomaly::TooLarge { limit } => write!(f, "the archive expands to more than {limit} bytes; the rest was not inspected"),
            Anomaly::Bomb { path, ratio } => write!(f, "{path:?} expands {ratio}x: a decompression bomb"),
            Anomaly::TooDeep { path } => write!(f, "archive {path:?} is nested too deep to inspect"),
            Anomaly::Encrypted { path } => write!(f, "member {path:?} is encrypted and cannot be inspected"),
            Anomaly::Unreadable { path, reason } => {
                write!(f, "could not read {}: {reason}", if path.is_empty() { "the archive" } else { path })
            }
        }
    }
}

/// One regular file inside the archive.
pub struct Member<'a> {
    /// Path inside the archive; members of nested archives are `outer/inner.zip!path`.
    pub path: &'a str,
    pub data: &'a [u8],
    /// The member was larger than `max_member_bytes`; `data` is its beginning.
    pub truncated: bool,
    /// Full uncompressed size.
    pub size: u64,
    pub depth: u8,
}

#[derive(Debug)]
pub struct Walk {
    pub format: Format,
    pub entries: u64,
    pub uncompressed: u64,
    pub anomalies: Vec<Anomaly>,
    /// Every member was read to its end.
    pub complete: bool,
}

impl Walk {
    fn new(format: Format) -> Self {
        Self { format, entries: 0, uncompressed: 0, anomalies: Vec::new(), complete: true }
    }

    fn fail(&mut self, a: Anomaly) {
        self.complete = false;
        self.anomalies.push(a);
    }
}

/// Walks the archive at `path`, calling `visit` for every regular member (and for members of
/// nested archives). `name` is used for the format-mismatch check and in messages.
pub fn walk_file(path: &Path, name: &str, limits: &WalkLimits, visit: &mut dyn FnMut(&Member)) -> Walk {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let mut w = Walk::new(Format::Unknown);
            w.fail(Anomaly::Unreadable { path: String::new(), reason: e.to_string() });
            return w;
        }
    };
    let mut head = [0u8; 512];
    let n = read_up_to(&mut file, &mut head).unwrap_or(0);
    let format = Format::sniff(&head[..n]);
    let compressed = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut walk = Walk::new(format);
    check_claim(&mut walk, name, format);
    if file.seek(SeekFrom::Start(0)).is_err() {
        walk.fail(Anomaly::Unreadable { path: String::new(), reason: "cannot seek".into() });
        return walk;
    }
    let mut ctx = Ctx { limits, compressed, walk: &mut walk, visit };
    ctx.walk_reader(io::BufReader::new(file), format, "", 0);
    finish(&mut walk, compressed, limits);
    walk
}

/// Like [`walk_file`], for an archive already in memory.
pub fn walk_bytes(data: &[u8], name: &str, limits: &WalkLimits, visit: &mut dyn FnMut(&Member)) -> Walk {
    let format = Format::sniff(&data[..data.len().min(512)]);
    let mut walk = Walk::new(format);
    check_claim(&mut walk, name, format);
    let mut ctx = Ctx { limits, compressed: data.len() as u64, walk: &mut walk, visit };
    ctx.walk_reader(Cursor::new(data), format, "", 0);
    finish(&mut walk, data.len() as u64, limits);
    walk
}

fn check_claim(walk: &mut Walk, name: &str, actual: Format) {
    let claimed = Format::from_name(name);
    if claimed != Format::Unknown && actual != Format::Unknown && claimed != actual {
        walk.anomalies.push(Anomaly::FormatMismatch { claimed, actual });
    }
}

fn finish(walk: &mut Walk, compressed: u64, limits: &WalkLimits) {
    if walk.uncompressed > limits.ratio_floor {
        let ratio = walk.uncompressed / compressed.max(1);
        if ratio > limits.max_ratio && !walk.anomalies.iter().any(|a| matches!(a, Anomaly::Bomb { .. })) {
            walk.anomalies.push(Anomaly::Bomb { path: String::new(), ratio });
        }
    }
    if walk.format == Format::Unknown {
        walk.fail(Anomaly::Unreadable { path: String::new(), reason: "not a zip, tar, tar.gz or tar.bz2 archive".into() });
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

struct Ctx<'a, 'v> {
    limits: &'a WalkLimits,
    /// Size of the outermost file, for the ratio check while reading.
    compressed: u64,
    walk: &'a mut Walk,
    visit: &'v mut dyn FnMut(&Member),
}

enum Budget {
    Ok,
    Stop,
}

impl Ctx<'_, '_> {
    fn count_entry(&mut self) -> Budget {
        self.walk.entries += 1;
        if self.walk.entries > self.limits.max_entries {
            self.walk.fail(Anomaly::TooManyEntries { limit: self.limits.max_entries });
            return Budget::Stop;
        }
        Budget::Ok
    }

    fn walk_reader<R: Read + Seek>(&mut self, reader: R, format: Format, prefix: &str, depth: u8) {
        match format {
            Format::Zip => self.walk_zip(reader, prefix, depth),
            Format::TarGz => self.walk_tar(flate2::read::GzDecoder::new(reader), prefix, depth),
            Format::TarBz2 => self.walk_tar(bzip2::read::BzDecoder::new(reader), prefix, depth),
            Format::Tar => self.walk_tar(reader, prefix, depth),
            Format::Unknown => {}
        }
    }

    /// Reads one member's content: the first `max_member_bytes` kept, the rest counted.
    fn read_member(&mut self, mut r: impl Read, path: &str) -> Option<(Vec<u8>, u64, bool)> {
        let keep = self.limits.max_member_bytes;
        let mut data = Vec::new();
        if let Err(e) = (&mut r).take(keep).read_to_end(&mut data) {
            self.walk.fail(Anomaly::Unreadable { path: path.to_string(), reason: e.to_string() });
            return None;
        }
        let mut size = data.len() as u64;
        let mut truncated = false;
        if size == keep {
            // Read no further than the size limit or the ratio allows, whichever comes first, so
            // a bomb costs at most that much decompression.
            let ratio_cap = self.limits.ratio_floor.max(self.compressed.saturating_mul(self.limits.max_ratio));
            let budget = self.limits.max_total_uncompressed.min(ratio_cap).saturating_sub(self.walk.uncompressed + size);
            match io::copy(&mut (&mut r).take(budget + 1), &mut io::sink()) {
                Ok(rest) => {
                    size += rest;
                    truncated = rest > 0;
                }
                Err(e) => {
                    self.walk.fail(Anomaly::Unreadable { path: path.to_string(), reason: e.to_string() });
                    return None;
                }
            }
        }
        self.walk.uncompressed += size;
        let ratio_cap = self.limits.ratio_floor.max(self.compressed.saturating_mul(self.limits.max_ratio));
        if self.walk.uncompressed > ratio_cap && self.walk.uncompressed <= self.limits.max_total_uncompressed {
            self.walk.fail(Anomaly::Bomb { path: path.to_string(), ratio: self.walk.uncompressed / self.compressed.max(1) });
            return None;
        }
        if self.walk.uncompressed > self.limits.max_total_uncompressed {
            self.walk.fail(Anomaly::TooLarge { limit: self.limits.max_total_uncompressed });
            return None;
        }
        Some((data, size, truncated))
    }

    fn deliver(&mut self, path: &str, data: &[u8], size: u64, truncated: bool, depth: u8) {
        (self.visit)(&Member { path, data, truncated, size, depth });
        let nested = Format::from_name(path);
        let sniffed = Format::sniff(&data[..data.len().min(512)]);
        let is_archive = nested != Format::Unknown && sniffed != Format::Unknown;
        if !is_archive {
            return;
        }
        if depth >= self.limits.max_depth || truncated {
            self.walk.fail(Anomaly::TooDeep { path: path.to_string() });
            return;
        }
        let inner_prefix = format!("{path}!");
        self.walk_reader(Cursor::new(data), sniffed, &inner_prefix, depth + 1);
    }

    fn walk_zip<R: Read + Seek>(&mut self, reader: R, prefix: &str, depth: u8) {
        let mut zip = match zip::ZipArchive::new(reader) {
            Ok(z) => z,
            Err(e) => {
                self.walk.fail(Anomaly::Unreadable {
                    path: prefix.trim_end_matches('!').to_string(),
                    reason: format!("not a readable zip: {e}"),
                });
                return;
            }
        };
        if zip.has_duplicate_names() {
            // The reader keeps one copy per name; the others are never seen.
            self.walk.fail(Anomaly::Duplicate { path: format!("{prefix}(a name in the central directory)") });
        }
        let mut seen = HashSet::new();
        let mut headers = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            if let Budget::Stop = self.count_entry() {
                break;
            }
            // Compare the central directory's name with the local header's: a mismatch is how
            // parser-confusion attacks hide files from one tool and show them to another.
            let (raw_name, header_start) = match zip.by_index_raw(i) {
                Ok(e) => (e.name_raw().to_vec(), e.header_start()),
                Err(e) => {
                    self.walk.fail(Anomaly::Unreadable { path: format!("{prefix}#{i}"), reason: e.to_string() });
                    continue;
                }
            };
            let name = match String::from_utf8(raw_name.clone()) {
                Ok(n) if !n.bytes().any(|b| b < 0x20 || b == 0x7f) => n,
                _ => {
                    let shown = String::from_utf8_lossy(&raw_name).into_owned();
                    self.walk.anomalies.push(Anomaly::UndecodableName { path: format!("{prefix}{shown}") });
                    shown
                }
            };
            let full = format!("{prefix}{name}");
            headers.push((raw_name, header_start, full.clone()));
            if !is_safe_member_path(&name) {
                self.walk.anomalies.push(Anomaly::UnsafePath { path: full.clone() });
            }
            if !seen.insert(name.clone()) {
                self.walk.anomalies.push(Anomaly::Duplicate { path: full.clone() });
            }
            let mut entry = match zip.by_index(i) {
                Ok(e) => e,
                Err(zip::result::ZipError::UnsupportedArchive(msg)) if msg.contains("ncrypt") || msg.contains("assword") => {
                    self.walk.fail(Anomaly::Encrypted { path: full });
                    continue;
                }
                Err(e) => {
                    self.walk.fail(Anomaly::Unreadable { path: full, reason: e.to_string() });
                    continue;
                }
            };
            if entry.encrypted() {
                self.walk.fail(Anomaly::Encrypted { path: full });
                continue;
            }
            if entry.is_dir() {
                continue;
            }
            let declared = entry.size();
            let compressed = entry.compressed_size().max(1);
            if declared > self.limits.ratio_floor && declared / compressed > self.limits.max_ratio {
                self.walk.fail(Anomaly::Bomb { path: full, ratio: declared / compressed });
                continue;
            }
            if entry.is_symlink() {
                let mut target = String::new();
                let _ = (&mut entry).take(4096).read_to_string(&mut target);
                let base = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                if target.starts_with('/') || escapes_root(&format!("{base}/{target}")) {
                    self.walk.anomalies.push(Anomaly::LinkOutside { path: full, target });
                } else {
                    self.walk.anomalies.push(Anomaly::Link { path: full, target });
                }
                continue;
            }
            let Some((data, size, truncated)) = self.read_member(&mut entry, &full) else { continue };
            drop(entry);
            self.deliver(&full, &data, size, truncated, depth);
        }
        // Compare each central-directory name with its local header's: a mismatch is how
        // parser-confusion attacks show one file to the index and another to the installer.
        let mut reader = zip.into_inner();
        for (central, offset, full) in headers {
            match local_header_name(&mut reader, offset) {
                Some(local) if local == central => {}
                Some(local) => {
                    self.walk.anomalies.push(Anomaly::HeaderMismatch { path: full, local: String::from_utf8_lossy(&local).into_owned() })
                }
                None => self.walk.fail(Anomaly::Unreadable { path: full, reason: "its local header cannot be read".into() }),
            }
        }
    }

    fn walk_tar<R: Read>(&mut self, reader: R, prefix: &str, depth: u8) {
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.walk.fail(Anomaly::Unreadable { path: prefix.trim_end_matches('!').to_string(), reason: e.to_string() });
                return;
            }
        };
        let mut seen = HashSet::new();
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.walk.fail(Anomaly::Unreadable {
                        path: prefix.trim_end_matches('!').to_string(),
                        reason: format!("corrupt or truncated tar stream: {e}"),
                    });
                    return;
                }
            };
            if let Budget::Stop = self.count_entry() {
                return;
            }
            let raw = entry.path_bytes().into_owned();
            let name = match String::from_utf8(raw.clone()) {
                Ok(n) if !n.bytes().any(|b| b < 0x20 || b == 0x7f) => n,
                _ => {
                    let shown = String::from_utf8_lossy(&raw).into_owned();
                    self.walk.anomalies.push(Anomaly::UndecodableName { path: format!("{prefix}{shown}") });
                    shown
                }
            };
            let clean = name.trim_start_matches("./").to_string();
            let full = format!("{prefix}{clean}");
            if clean.is_empty() || clean == "." {
                continue;
            }
            if !is_safe_member_path(clean.trim_end_matches('/')) {
                self.walk.anomalies.push(Anomaly::UnsafePath { path: full.clone() });
            }
            use tar::EntryType as T;
            let kind = entry.header().entry_type();
            match kind {
                T::Directory | T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
                T::Symlink | T::Link => {
                    let target = entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
                    let base = clean.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let resolved = if kind == T::Link { target.clone() } else { format!("{base}/{target}") };
                    if target.starts_with('/') || escapes_root(&resolved) {
                        self.walk.anomalies.push(Anomaly::LinkOutside { path: full, target });
                    } else {
                        self.walk.anomalies.push(Anomaly::Link { path: full, target });
                    }
                    continue;
                }
                T::Regular | T::Continuous | T::GNUSparse => {}
                _ => {
                    self.walk.anomalies.push(Anomaly::SpecialFile { path: full });
                    continue;
                }
            }
            if !seen.insert(clean.clone()) {
                self.walk.anomalies.push(Anomaly::Duplicate { path: full.clone() });
            }
            let Some((data, size, truncated)) = self.read_member(&mut entry, &full) else { return };
            self.deliver(&full, &data, size, truncated, depth);
        }
    }
}

/// The filename stored in a zip member's local header.
fn local_header_name<R: Read + Seek>(reader: &mut R, offset: u64) -> Option<Vec<u8>> {
    reader.seek(SeekFrom::Start(offset)).ok()?;
    let mut fixed = [0u8; 30];
    reader.read_exact(&mut fixed).ok()?;
    if &fixed[..4] != b"PK\x03\x04" {
        return Some(b"<no local header>".to_vec());
    }
    let name_len = u16::from_le_bytes([fixed[26], fixed[27]]) as usize;
    let mut name = vec![0u8; name_len];
    reader.read_exact(&mut name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            for (n, d) in entries {
                z.start_file(*n, o).unwrap();
                z.write_all(d).unwrap();
            }
            z.finish().unwrap();
        }
        buf.into_inner()
    }

    fn tgz_bytes(build: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>)) -> Vec<u8> {
        let mut t = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        build(&mut t);
        t.into_inner().unwrap().finish().unwrap()
    }

    fn file(t: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, name, data).unwrap();
    }

    fn run(data: &[u8], name: &str) -> (Walk, Vec<String>) {
        let mut seen = Vec::new();
        let w = walk_bytes(data, name, &WalkLimits::default(), &mut |m| seen.push(m.path.to_string()));
        (w, seen)
    }

    fn ids(w: &Walk) -> Vec<&'static str> {
        w.anomalies.iter().map(Anomaly::id).collect()
    }

    #[test]
    fn clean_zip_and_tar() {
        let (w, seen) = run(&zip_bytes(&[("a/b.py", b"x"), ("a/c.py", b"y")]), "a-1.0-py3-none-any.whl");
        assert!(w.complete && w.anomalies.is_empty(), "{:?}", w.anomalies);
        assert_eq!(seen, vec!["a/b.py", "a/c.py"]);
        let (w, seen) = run(&tgz_bytes(|t| file(t, "a-1.0/setup.py", b"print(1)")), "a-1.0.tar.gz");
        assert!(w.complete && w.anomalies.is_empty(), "{:?}", w.anomalies);
        assert_eq!(seen, vec!["a-1.0/setup.py"]);
    }

    #[test]
    fn hostile_zip_members() {
        let (w, _) = run(&zip_bytes(&[("../evil.py", b"x"), ("/abs.py", b"y")]), "x.zip");
        assert_eq!(ids(&w), vec!["archive-unsafe-path", "archive-unsafe-path"]);
    }

    #[test]
    fn zip_header_mismatch_is_found() {
        let mut data = zip_bytes(&[("pkg/good.py", b"x")]);
        // Rename the member in its local header only.
        let pos = data.windows(11).position(|w| w == b"pkg/good.py").unwrap();
        data[pos + 4..pos + 8].copy_from_slice(b"evil");
        let (w, _) = run(&data, "x.whl");
        assert!(ids(&w).contains(&"archive-zip-header-mismatch"), "{:?}", w.anomalies);
    }

    #[test]
    fn duplicate_zip_names_are_found() {
        let mut data = zip_bytes(&[("pkg/a.py", b"first"), ("pkg/b.py", b"second")]);
        // Rename the second member to the first one's name, in both headers.
        for pos in data.windows(8).enumerate().filter(|(_, w)| *w == b"pkg/b.py").map(|(i, _)| i).collect::<Vec<_>>() {
            data[pos + 4] = b'a';
        }
        let (w, _) = run(&data, "x.whl");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-duplicate-member"), "{:?}", w.anomalies);
    }

    #[test]
    fn tar_links_and_devices() {
        let data = tgz_bytes(|t| {
            file(t, "p-1.0/setup.py", b"");
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            t.append_link(&mut h, "p-1.0/link", "../../etc/passwd").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Char);
            h.set_size(0);
            t.append_data(&mut h, "p-1.0/dev", &[][..]).unwrap();
            file(t, "p-1.0/setup.py", b"again");
        });
        let (w, _) = run(&data, "p-1.0.tar.gz");
        assert_eq!(ids(&w), vec!["archive-link-outside", "archive-special-file", "archive-duplicate-member"]);
    }

    #[test]
    fn content_wins_over_extension_and_nesting_is_walked() {
        let inner = zip_bytes(&[("payload.py", b"x")]);
        let outer = zip_bytes(&[("p/inner.zip", &inner)]);
        let (w, seen) = run(&outer, "p-1.0.tar.gz");
        assert_eq!(w.format, Format::Zip);
        assert_eq!(ids(&w), vec!["archive-format-mismatch"]);
        assert_eq!(seen, vec!["p/inner.zip", "p/inner.zip!payload.py"]);
    }

    #[test]
    fn nesting_is_bounded() {
        let mut data = zip_bytes(&[("x.py", b"x")]);
        for i in 0..4 {
            data = zip_bytes(&[(&format!("l{i}.zip"), &data)]);
        }
        let (w, _) = run(&data, "n.zip");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-nested-too-deep"));
    }

    #[test]
    fn truncated_or_garbage_is_incomplete() {
        let data = tgz_bytes(|t| file(t, "p-1.0/big", &vec![1u8; 200_000]));
        let (w, _) = run(&data[..data.len() / 2], "p-1.0.tar.gz");
        assert!(!w.complete, "{:?}", w.anomalies);
        let (w, _) = run(b"just some text", "p-1.0.tar.gz");
        assert!(!w.complete);
        assert_eq!(w.format, Format::Unknown);
    }

    #[test]
    fn bombs_are_flagged() {
        let data = zip_bytes(&[("zeros", &vec![0u8; 40 << 20])]);
        let (w, _) = run(&data, "b.zip");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-bomb"), "{:?}", w.anomalies);
    }

    #[test]
    fn tar_bombs_stop_at_the_ratio() {
        let data = tgz_bytes(|t| file(t, "p-1.0/zeros", &vec![0u8; 40 << 20]));
        let limits = WalkLimits { ratio_floor: 1 << 20, ..WalkLimits::default() };
        let w = walk_bytes(&data, "p-1.0.tar.gz", &limits, &mut |_| {});
        assert!(!w.complete);
        assert!(w.anomalies.iter().any(|a| matches!(a, Anomaly::Bomb { .. })), "{:?}", w.anomalies);
        // It stopped near the cap rather than reading all 40 MiB.
        assert!(
            w.uncompressed <= (data.len() as u64 * limits.max_ratio).max(limits.ratio_floor) + limits.max_member_bytes,
            "{}",
            w.uncompressed
        );
    }

    #[test]
    fn oversized_members_are_truncated_but_counted() {
        let limits = WalkLimits { max_member_bytes: 10, ..WalkLimits::default() };
        let data = zip_bytes(&[("big.txt", &[b'a'; 100])]);
        let mut got = Vec::new();
        let w = walk_bytes(&data, "x.zip", &limits, &mut |m| got.push((m.data.len(), m.size, m.truncated)));
        assert!(w.complete);
        assert_eq!(got, vec![(10, 100, true)]);
    }
}
