//! The digests PyPI publishes for every file: sha256, blake2b-256 and md5, computed in one pass.

use blake2::Blake2b;
use blake2::digest::consts::U32;
use md5::Md5;
use sha2::{Digest, Sha256};

/// Lowercase hex digests of one file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digests {
    pub sha256: String,
    pub blake2b_256: String,
    pub md5: String,
}

/// Incremental hasher feeding all three digests, so a stream is read once.
#[derive(Clone, Default)]
pub struct Hasher {
    sha256: Sha256,
    blake2b: Blake2b<U32>,
    md5: Md5,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.blake2b.update(data);
        self.md5.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex::encode(self.sha256.finalize()),
            blake2b_256: hex::encode(self.blake2b.finalize()),
            md5: hex::encode(self.md5.finalize()),
        }
    }
}

impl Digests {
    pub fn of(data: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    /// md5 in the urlsafe base64 form without padding that the legacy upload API uses.
    pub fn md5_urlsafe_b64(&self) -> String {
        use base64::Engine;
        let raw = hex::decode(&self.md5).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }
}

/// Lowercase hex sha256 of a byte string.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = Digests::of(b"abc");
        assert_eq!(d.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.blake2b_256, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
        assert_eq!(d.md5_urlsafe_b64(), "kAFQmDzST7DWlj99KOF_cg");
        assert_eq!(sha256_hex(b"abc"), d.sha256);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.len(), 3);
        assert_eq!(h.finish(), Digests::of(b"abc"));
    }
}
