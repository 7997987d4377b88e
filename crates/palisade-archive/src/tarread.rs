//! Tar headers read the way Python's `tarfile` reads them, or refused.
//!
//! The `tar` crate and `tarfile` agree on plain headers but not on the extensions: which of a GNU
//! long name and a pax `path` wins, whether a pax `size` moves the next header, whether the
//! ustar prefix field of a GNU header is part of the name, whether a directory's size is data to
//! skip. Each disagreement lets one member be read as another (or hidden inside another's data).
//! So the archive is iterated raw, extension headers are applied here, bounded, and every entry
//! on which the two could disagree is refused with the reason. Both readers of the crate (the
//! upload's and the walker) go through [`Extensions::member`].

use std::io::Read;

use tar::EntryType;

/// Longest GNU long name or long link (Linux's PATH_MAX); longer names cannot be extracted.
pub(crate) const MAX_NAME_BYTES: u64 = 4096;
/// Longest pax extension header.
const MAX_PAX_BYTES: u64 = 64 << 10;

/// The names a member gets once its extension headers are applied.
pub(crate) struct Names {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    /// An old-style (type NUL) member whose own header name ends in `/`: tarfile reads it as a
    /// folder (judged on the header's name, before any extension renames it).
    pub old_dir: bool,
}

/// Extension headers seen since the last member.
#[derive(Default)]
pub(crate) struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<Vec<u8>>,
    pax: bool,
}

/// Whether `entry` (read raw) is a member rather than an extension header, and what Python would
/// call it; `Err` says why readers would disagree about it.
pub(crate) enum Step {
    /// An extension header, taken in.
    Extension,
    Member(Names),
}

fn nts(data: &[u8]) -> Vec<u8> {
    data.split(|&b| b == 0).next().unwrap_or(&[]).to_vec()
}

impl Extensions {
    pub(crate) fn step<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<Step, String> {
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(|e| format!("unreadable size field: {e}"))?;
        match kind {
            EntryType::GNULongName | EntryType::GNULongLink => {
                if size > MAX_NAME_BYTES + 1 {
                    return Err(format!("a GNU long name of {size} bytes (extractors accept at most {MAX_NAME_BYTES})"));
                }
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
                let slot = if kind == EntryType::GNULongName { &mut self.long_name } else { &mut self.long_link };
                if slot.replace(nts(&data)).is_some() {
                    return Err("two GNU long names for one member; tar readers disagree on which wins".into());
                }
                Ok(Step::Extension)
            }
            EntryType::XHeader | EntryType::XGlobalHeader => {
                if size > MAX_PAX_BYTES {
                    return Err(format!("a pax header of {size} bytes (at most {MAX_PAX_BYTES} are read)"));
                }
                let global = kind == EntryType::XGlobalHeader;
                if !global && std::mem::replace(&mut self.pax, true) {
                    return Err("two pax headers for one member; tar readers disagree on which wins".into());
                }
                let records = match entry.pax_extensions() {
                    Ok(Some(r)) => r,
                    Ok(None) => return Ok(Step::Extension),
                    Err(e) => return Err(format!("unreadable pax header: {e}")),
                };
                let mut seen = std::collections::HashSet::new();
                for record in records {
                    let record = record.map_err(|_| "malformed pax record".to_string())?;
                    let key = String::from_utf8_lossy(record.key_bytes()).into_owned();
                    if key.starts_with("GNU.sparse") {
                        return Err(format!("pax record {key:?} describes a sparse file, which distributions do not have"));
                    }
                    if !seen.insert(key.clone()) {
                        return Err(format!("pax record {key:?} appears twice; tar readers disagree on which wins"));
                    }
                    if global {
                        if matches!(key.as_str(), "path" | "linkpath" | "size") {
                            return Err(format!(
                                "a pax global header sets {key:?} for every member after it; tar readers disagree on applying it"
                            ));
                        }
                        continue;
                    }
                    let value = record.value_bytes().to_vec();
                    match key.as_str() {
                        "path" => self.pax_path = Some(value),
                        "linkpath" => self.pax_link = Some(value),
                        "size" => self.pax_size = Some(value),
                        _ => {}
                    }
                }
                Ok(Step::Extension)
            }
            _ => {
                let ext = std::mem::take(self);
                let header = entry.header();
                // tarfile reads bytes 345..500 of any header but a ustar one (and but GNU
                // extension types) as a prefix of the name; the tar crate reads them only in
                // ustar headers.
                if header.as_ustar().is_none() && header.as_bytes()[345..500].iter().any(|&b| b != 0) {
                    return Err("a non-ustar header with data in its ustar prefix field, which tar readers read differently".into());
                }
                let mut path = entry.path_bytes().into_owned();
                let mut link = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                // tarfile applies a pax header after a GNU long name (the pax path wins), the tar
                // crate prefers the long name: when both are there they must say the same.
                if let (Some(long), Some(pax)) = (&ext.long_name, &ext.pax_path)
                    && long != pax
                {
                    return Err("a GNU long name and a pax path name the member differently".into());
                }
                if let (Some(long), Some(pax)) = (&ext.long_link, &ext.pax_link)
                    && long != pax
                {
                    return Err("a GNU long link and a pax linkpath name the target differently".into());
                }
                if let Some(p) = ext.pax_path.or(ext.long_name) {
                    path = p;
                }
                if let Some(l) = ext.pax_link.or(ext.long_link) {
                    link = l;
                }
                if path.len() as u64 > MAX_NAME_BYTES || link.len() as u64 > MAX_NAME_BYTES {
                    return Err(format!("a name longer than {MAX_NAME_BYTES} bytes, which extractors cannot create"));
                }
                // The tar crate moves to the next header by the header's size; tarfile by the pax
                // size when there is one.
                if let Some(s) = ext.pax_size {
                    let pax: Option<u64> = std::str::from_utf8(&s).ok().and_then(|s| s.trim().parse().ok());
                    if pax != Some(size) {
                        return Err(
                            "a pax size that differs from the header's; tar readers disagree on where the next member starts".into()
                        );
                    }
                }
                // tarfile skips data only after regular (and unknown) members, the tar crate
                // after every member: a folder or link that carries data hides a member in it from
                // one of them. An old-style (type NUL) file named like a folder is a folder to
                // tarfile.
                let old_dir = header.as_bytes()[156] == 0 && header.path_bytes().ends_with(b"/");
                let no_data = old_dir
                    || matches!(
                        kind,
                        EntryType::Directory | EntryType::Symlink | EntryType::Link | EntryType::Char | EntryType::Block | EntryType::Fifo
                    );
                if no_data && size != 0 {
                    return Err(format!(
                        "a {} member carries {size} bytes of data, which tar readers skip differently",
                        kind_name(kind, old_dir)
                    ));
                }
                Ok(Step::Member(Names { path, link, old_dir }))
            }
        }
    }

    /// Extension headers left at the end of the archive with no member to apply to.
    pub(crate) fn dangling(&self) -> bool {
        self.long_name.is_some() || self.long_link.is_some() || self.pax
    }
}

fn kind_name(kind: EntryType, old_dir: bool) -> &'static str {
    match kind {
        _ if old_dir => "folder",
        EntryType::Directory => "folder",
        EntryType::Symlink => "symlink",
        EntryType::Link => "hard link",
        _ => "special",
    }
}
