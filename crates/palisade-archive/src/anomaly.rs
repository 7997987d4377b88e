//! What can be structurally wrong or dangerous about an archive, as the walk and the extraction
//! model report it.

use std::fmt;

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
    UnsafePath {
        path: String,
    },
    LinkOutside {
        path: String,
        target: String,
    },
    Link {
        path: String,
        target: String,
    },
    /// A symlink that resolves through itself, or to a folder that contains it.
    LinkLoop {
        path: String,
        target: String,
    },
    /// A hard link to something that is not an earlier file of the archive.
    BrokenHardlink {
        path: String,
        target: String,
    },
    /// A member below a symlink: extracting it writes wherever the link points.
    ThroughLink {
        path: String,
        link: String,
    },
    SpecialFile {
        path: String,
    },
    /// A tar header that tar readers read differently (extension headers, sizes, prefixes).
    TarHeader {
        path: String,
        reason: String,
    },
    /// The path repeats (in any combination of types), or a member sits below a file.
    Duplicate {
        path: String,
    },
    /// Two members whose paths differ only in case: one file on macOS and Windows.
    CaseCollision {
        path: String,
        other: String,
    },
    HeaderMismatch {
        path: String,
        local: String,
    },
    UndecodableName {
        path: String,
    },
    FormatMismatch {
        claimed: Format,
        actual: Format,
    },
    /// Data after the end of a tar archive that extractors never read.
    TrailingData {
        path: String,
    },
    TooManyEntries {
        limit: u64,
    },
    /// The paths of the archive (each folder of a deep path counted) take more memory than the
    /// model allows.
    TooManyPaths {
        limit: u64,
    },
    TooLarge {
        limit: u64,
    },
    Bomb {
        path: String,
        ratio: u64,
    },
    TooDeep {
        path: String,
    },
    Encrypted {
        path: String,
    },
    Unreadable {
        path: String,
        reason: String,
    },
}

impl Anomaly {
    /// A stable identifier, used as the finding's rule id.
    pub fn id(&self) -> &'static str {
        match self {
            Anomaly::UnsafePath { .. } => "archive-unsafe-path",
            Anomaly::LinkOutside { .. } => "archive-link-outside",
            Anomaly::Link { .. } => "archive-link",
            Anomaly::LinkLoop { .. } => "archive-link-loop",
            Anomaly::BrokenHardlink { .. } => "archive-broken-hardlink",
            Anomaly::ThroughLink { .. } => "archive-through-link",
            Anomaly::SpecialFile { .. } => "archive-special-file",
            Anomaly::TarHeader { .. } => "archive-tar-header",
            Anomaly::Duplicate { .. } => "archive-duplicate-member",
            Anomaly::CaseCollision { .. } => "archive-case-collision",
            Anomaly::HeaderMismatch { .. } => "archive-zip-header-mismatch",
            Anomaly::UndecodableName { .. } => "archive-undecodable-name",
            Anomaly::FormatMismatch { .. } => "archive-format-mismatch",
            Anomaly::TrailingData { .. } => "archive-trailing-data",
            Anomaly::TooManyEntries { .. } => "archive-too-many-members",
            Anomaly::TooManyPaths { .. } => "archive-too-many-paths",
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
            | Anomaly::LinkLoop { path, .. }
            | Anomaly::BrokenHardlink { path, .. }
            | Anomaly::ThroughLink { path, .. }
            | Anomaly::SpecialFile { path }
            | Anomaly::TarHeader { path, .. }
            | Anomaly::Duplicate { path }
            | Anomaly::CaseCollision { path, .. }
            | Anomaly::HeaderMismatch { path, .. }
            | Anomaly::UndecodableName { path }
            | Anomaly::TrailingData { path }
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
                write!(
                    f,
                    "member {path:?} has a path that would escape the extraction folder or cannot be extracted (absolute, `..`, backslashes, control characters, too long)"
                )
            }
            Anomaly::LinkOutside { path, target } => write!(f, "link {path:?} points outside the archive ({target:?})"),
            Anomaly::Link { path, target } => write!(f, "member {path:?} is a link to {target:?}"),
            Anomaly::LinkLoop { path, target } => {
                write!(f, "link {path:?} -> {target:?} loops (it resolves through itself or to a folder that contains it)")
            }
            Anomaly::BrokenHardlink { path, target } => {
                write!(f, "hard link {path:?} names {target:?}, which is not an earlier file of the archive")
            }
            Anomaly::ThroughLink { path, link } => {
                write!(f, "member {path:?} would be written through the symlink {link}, wherever it points")
            }
            Anomaly::SpecialFile { path } => {
                write!(f, "member {path:?} is a device, FIFO, sparse file or other special member that installers do not agree on")
            }
            Anomaly::TarHeader { path, reason } => write!(f, "member {path:?}: {reason}"),
            Anomaly::Duplicate { path } => {
                write!(f, "member {path:?} appears more than once (or below a file); extractors disagree on which copy wins")
            }
            Anomaly::CaseCollision { path, other } => {
                write!(f, "members {other:?} and {path:?} differ only in case: on macOS and Windows one overwrites the other")
            }
            Anomaly::HeaderMismatch { path, local } => {
                write!(f, "zip member {path:?} is also named {local:?} (local header or Unicode path field): parsers disagree on its name")
            }
            Anomaly::UndecodableName { path } => write!(f, "member name {path:?} is not valid UTF-8 or contains control characters"),
            Anomaly::FormatMismatch { claimed, actual } => write!(f, "the file's name says {claimed:?} but its content is {actual:?}"),
            Anomaly::TrailingData { path } => write!(
                f,
                "{} has data after the end of its tar archive, which extractors never read",
                if path.is_empty() { "the archive" } else { path }
            ),
            Anomaly::TooManyEntries { limit } => write!(f, "the archive has more than {limit} members; the rest was not inspected"),
            Anomaly::TooManyPaths { limit } => write!(f, "the archive's paths take more than {limit} bytes; the rest was not inspected"),
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
