//! `Hash`, the 32-byte SHA-256 value of a Merkle tree node, and the glue that hands stored hashes to
//! `tlog_tiles`: a reader over the caller's `HashMap` and a recorder that learns which stored
//! hashes an operation reads.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tlog_tiles::HashReader;

use crate::{Error, Result};

/// A SHA-256 Merkle tree hash: a leaf (`SHA-256(0x00 || entry)`), an interior node, or a tree's
/// root, as RFC 6962 defines them. It displays as standard base64, the form checkpoints and
/// proofs use.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The root of the empty tree: the SHA-256 of no bytes.
    pub const EMPTY: Hash = Hash(tlog_tiles::EMPTY_HASH.0);

    /// The standard base64 (RFC 4648 section 4, padded) of the hash.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads a hash from standard, padded base64, refusing anything but 32 bytes in canonical
    /// form.
    pub fn from_base64(text: &str) -> Option<Hash> {
        let bytes = STANDARD.decode(text).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }

    /// The lower-case hexadecimal of the hash.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads a hash from 64 hexadecimal digits (either case).
    pub fn from_hex(text: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Hash(out))
    }

    pub(crate) fn to_tlog(self) -> tlog_tiles::Hash {
        tlog_tiles::Hash(self.0)
    }

    pub(crate) fn from_tlog(hash: tlog_tiles::Hash) -> Hash {
        Hash(hash.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

/// The leaf hash of an entry, `SHA-256(0x00 || entry)` (RFC 6962 section 2.1): what the log stores
/// for the entry and what level-0 tiles list.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash::from_tlog(tlog_tiles::record_hash(entry))
}

pub(crate) fn to_tlog_all(hashes: &[Hash]) -> Vec<tlog_tiles::Hash> {
    hashes.iter().map(|h| h.to_tlog()).collect()
}

pub(crate) fn from_tlog_all(hashes: Vec<tlog_tiles::Hash>) -> Vec<Hash> {
    hashes.into_iter().map(Hash::from_tlog).collect()
}

/// A `HashReader` over the caller's map that remembers the first index it did not find, since
/// `tlog_tiles::Error` has no room to say which.
pub(crate) struct MapReader<'a> {
    map: &'a HashMap<u64, Hash>,
    missing: Cell<Option<u64>>,
}

impl<'a> MapReader<'a> {
    pub(crate) fn new(map: &'a HashMap<u64, Hash>) -> MapReader<'a> {
        MapReader { map, missing: Cell::new(None) }
    }

    /// Turns an error of `tlog_tiles` into ours: a missing hash if this reader failed, otherwise
    /// `other`, which the caller knows to be the only other way the operation fails.
    pub(crate) fn error(&self, other: impl FnOnce() -> Error) -> Error {
        match self.missing.get() {
            Some(index) => Error::MissingHash { index },
            None => other(),
        }
    }
}

impl HashReader for MapReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        for &index in indexes {
            let Some(hash) = self.map.get(&index) else {
                self.missing.set(Some(index));
                return Err(tlog_tiles::Error::IndexesNotInTree);
            };
            out.push(hash.to_tlog());
        }
        Ok(out)
    }
}

/// A `HashReader` over a dense vector of stored hashes, index for index, as the client builds
/// from a log's entries.
pub(crate) struct VecReader<'a>(pub(crate) &'a [tlog_tiles::Hash]);

impl HashReader for VecReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let get = |&index: &u64| usize::try_from(index).ok().and_then(|i| self.0.get(i).copied());
        indexes.iter().map(get).collect::<Option<Vec<_>>>().ok_or(tlog_tiles::Error::IndexesNotInTree)
    }
}

/// Runs `operation` with a reader that records the indexes it is asked for and then fails, and
/// returns those indexes. The operations this is used with read all their stored hashes in one
/// call, so the record is complete.
pub(crate) fn needs<T>(operation: impl FnOnce(&Recorder) -> Result<T, tlog_tiles::Error>) -> Vec<u64> {
    let recorder = Recorder(RefCell::new(Vec::new()));
    // The operation fails by design once it asks for hashes; only the request matters.
    let _ = operation(&recorder);
    recorder.0.into_inner()
}

pub(crate) struct Recorder(RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Err(tlog_tiles::Error::IndexesNotInTree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hash: Hash, base64: &str, hex: &str) {
        assert_eq!(hash.to_base64(), base64);
        assert_eq!(hash.to_string(), base64);
        assert_eq!(hash.to_hex(), hex);
        assert_eq!(Hash::from_base64(base64), Some(hash));
        assert_eq!(Hash::from_hex(hex), Some(hash));
        assert_eq!(Hash::from_hex(&hex.to_uppercase()), Some(hash));
    }

    #[test]
    fn encodings() {
        check(
            Hash::EMPTY,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        );
        // The leaf hash of "hello world", as tlog_tiles' own checkpoint test spells it.
        check(
            leaf_hash(b"hello world"),
            "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=",
            "4eccf34608d31bac5c7becf6006df59005d828181056d092084e341e6bb005bd",
        );
    }

    #[test]
    fn refused_encodings() {
        for text in [
            "",
            // No padding, and one byte short.
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuA==",
            // URL-safe alphabet.
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=",
            // Non-zero trailing bits: another spelling of the same bytes.
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=",
            " 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        ] {
            assert_eq!(Hash::from_base64(text), None, "{text:?}");
        }
        for text in ["", "e3b0", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g"] {
            assert_eq!(Hash::from_hex(text), None, "{text:?}");
        }
    }
}
