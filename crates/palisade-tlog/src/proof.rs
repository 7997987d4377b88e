//! Offline inclusion proofs in the [C2SP tlog-proof] format (`c2sp.org/tlog-proof@v1`): what a
//! user keeps beside a file to show, without asking the log, that the log holds its entry.
//!
//! The format, as the spec gives it: a first line `c2sp.org/tlog-proof@v1`; an optional line
//! `extra <base64>` of opaque, unauthenticated data; a line `index <n>`, the entry's zero-based
//! index in decimal without leading zeros; zero or more lines of one base64 SHA-256 hash each, the
//! RFC 6962 inclusion proof from the leaf's sibling up to the root's child; an empty line; and the
//! log's signed checkpoint verbatim, cosignatures included. The base64 is standard (RFC 4648
//! section 4) with padding.
//!
//! [C2SP tlog-proof]: https://c2sp.org/tlog-proof

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::tree::MAX_PROOF_LEN;
use crate::{Checkpoint, Error, Hash, Result, check_inclusion, open_checkpoint};

/// The first line of every proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// What a proof that [`check_proof`] accepted says: the opened checkpoint, the index of the entry
/// in its tree, and the proof's extra data. The extra data is not authenticated by anything: it is
/// the proof's author's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofInfo {
    pub checkpoint: Checkpoint,
    pub index: u64,
    pub extra: Option<Vec<u8>>,
}

/// Writes a proof that entry `index` is in the tree of `checkpoint_note` (a signed checkpoint,
/// kept verbatim), with the inclusion proof `proof` and optional `extra` data.
pub fn format_proof(extra: Option<&[u8]>, index: u64, proof: &[Hash], checkpoint_note: &str) -> String {
    let mut out = format!("{PROOF_HEADER}\n");
    if let Some(extra) = extra {
        out.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
    }
    out.push_str(&format!("index {index}\n"));
    for hash in proof {
        out.push_str(&format!("{hash}\n"));
    }
    out.push('\n');
    out.push_str(checkpoint_note);
    out
}

/// Checks a proof: it must parse strictly, its checkpoint must be signed by `verifier_key` (other
/// signatures are ignored), and it must prove `leaf_entry` at its index in the checkpoint's tree.
pub fn check_proof(text: &str, verifier_key: &str, leaf_entry: &[u8]) -> Result<ProofInfo> {
    let mut lines = Lines { rest: text, number: 0 };
    let header = lines.next()?;
    if header != PROOF_HEADER {
        return Err(lines.error(format!("expected {PROOF_HEADER:?}")));
    }
    let mut line = lines.next()?;
    let mut extra = None;
    if let Some(data) = line.strip_prefix("extra ") {
        extra = Some(STANDARD.decode(data).map_err(|_| lines.error("the extra data is not standard, padded base64".to_string()))?);
        line = lines.next()?;
    }
    let index = line
        .strip_prefix("index ")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (*n == "0" || !n.starts_with('0')))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| lines.error("expected `index <n>`, n in decimal without leading zeros".to_string()))?;
    let mut proof = Vec::new();
    loop {
        let line = lines.next()?;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LEN {
            return Err(lines.error(format!("more than {MAX_PROOF_LEN} proof hashes")));
        }
        proof.push(Hash::from_base64(line).ok_or_else(|| lines.error("not a hash in standard, padded base64".to_string()))?);
    }
    let checkpoint = open_checkpoint(lines.rest, verifier_key)?;
    check_inclusion(&proof, checkpoint.size, checkpoint.root, index, leaf_entry)?;
    Ok(ProofInfo { checkpoint, index, extra })
}

/// The proof's lines before the checkpoint, each ended by a newline, counted from 1 for errors.
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<&'a str> {
        self.number += 1;
        let (line, rest) =
            self.rest.split_once('\n').ok_or_else(|| self.error("the proof ends before its blank line and checkpoint".to_string()))?;
        self.rest = rest;
        Ok(line)
    }

    fn error(&self, reason: String) -> Error {
        Error::ProofFormat { line: self.number, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::{Log, entry};
    use crate::{SigningKey, inclusion_needs, inclusion_proof, sign_checkpoint};

    struct Fixture {
        log: Log,
        key: SigningKey,
        note: String,
        checkpoint: Checkpoint,
    }

    fn fixture() -> Fixture {
        let log = Log::with_entries((0..300).map(entry));
        let key = SigningKey::generate("pypi.example.org/log").unwrap();
        let checkpoint = Checkpoint { origin: "pypi.example.org/log".to_string(), size: 300, root: log.root(300) };
        let note = sign_checkpoint(&key, &checkpoint).unwrap();
        Fixture { log, key, note, checkpoint }
    }

    impl Fixture {
        fn proof(&self, extra: Option<&[u8]>, index: u64) -> String {
            let hashes = inclusion_proof(index, 300, &self.log.only(&inclusion_needs(index, 300))).unwrap();
            format_proof(extra, index, &hashes, &self.note)
        }
    }

    #[test]
    fn proofs_round_trip() {
        let f = fixture();
        let vkey = f.key.verifier_key();
        for index in [0, 1, 2, 127, 255, 256, 298, 299] {
            let text = f.proof(None, index);
            let info = check_proof(&text, &vkey, &entry(index as usize)).unwrap();
            assert_eq!(info, ProofInfo { checkpoint: f.checkpoint.clone(), index, extra: None });
        }
        let text = f.proof(Some(b"wheel filename.whl"), 42);
        let hashes = inclusion_proof(42, 300, &f.log.store).unwrap();
        let expected = format!(
            "c2sp.org/tlog-proof@v1\nextra {}\nindex 42\n{}\n\n{}",
            STANDARD.encode("wheel filename.whl"),
            hashes.iter().map(Hash::to_base64).collect::<Vec<_>>().join("\n"),
            f.note
        );
        assert_eq!(text, expected);
        let info = check_proof(&text, &vkey, &entry(42)).unwrap();
        assert_eq!(info.extra.as_deref(), Some(&b"wheel filename.whl"[..]));
        // Empty extra data survives the trip too.
        assert_eq!(check_proof(&f.proof(Some(b""), 42), &vkey, &entry(42)).unwrap().extra, Some(Vec::new()));
        // A witness's cosignature after the log's is ignored.
        let witness = SigningKey::generate("witness.example").unwrap();
        let cosigned = format!("{text}{}", sign_checkpoint(&witness, &f.checkpoint).unwrap().split_once("\n\n").unwrap().1);
        assert_eq!(check_proof(&cosigned, &vkey, &entry(42)).unwrap().index, 42);
    }

    #[test]
    fn a_one_entry_log_has_an_empty_proof() {
        let log = Log::with_entries([b"only".to_vec()]);
        let key = SigningKey::generate("one").unwrap();
        let note = sign_checkpoint(&key, &Checkpoint { origin: "one".to_string(), size: 1, root: log.root(1) }).unwrap();
        let text = format_proof(None, 0, &[], &note);
        assert_eq!(text, format!("c2sp.org/tlog-proof@v1\nindex 0\n\n{note}"));
        assert_eq!(check_proof(&text, &key.verifier_key(), b"only").unwrap().index, 0);
        assert!(check_proof(&text, &key.verifier_key(), b"other").is_err());
    }

    #[test]
    fn refused_proofs() {
        let f = fixture();
        let vkey = f.key.verifier_key();
        let text = f.proof(None, 42);
        let not_included = |index| Error::InclusionProof { index, size: 300, root: f.checkpoint.root };
        // Another key, another entry, another index, an altered hash.
        let other = SigningKey::generate("pypi.example.org/log").unwrap();
        assert_eq!(
            check_proof(&text, &other.verifier_key(), &entry(42)),
            Err(Error::NotSigned { key: format!("pypi.example.org/log+{:08x}", other.key_id()) })
        );
        assert_eq!(check_proof(&text, &vkey, &entry(43)), Err(not_included(42)));
        assert_eq!(check_proof(&text.replace("index 42\n", "index 43\n"), &vkey, &entry(42)), Err(not_included(43)));
        assert_eq!(
            check_proof(&text.replace("index 42\n", "index 300\n"), &vkey, &entry(42)),
            Err(Error::IndexOutOfRange { index: 300, size: 300 })
        );
        let hashes = inclusion_proof(42, 300, &f.log.store).unwrap();
        for hash in &hashes {
            let mut altered = *hash;
            altered.0[31] ^= 0x80;
            let bad = text.replacen(&format!("\n{hash}\n"), &format!("\n{altered}\n"), 1);
            assert_ne!(bad, text);
            assert_eq!(check_proof(&bad, &vkey, &entry(42)), Err(not_included(42)));
        }
        let dropped = text.replacen(&format!("{}\n", hashes[0]), "", 1);
        assert_eq!(check_proof(&dropped, &vkey, &entry(42)), Err(not_included(42)));
        // A checkpoint whose size was altered no longer verifies.
        assert_eq!(
            check_proof(&text.replace("\n300\n", "\n301\n"), &vkey, &entry(42)),
            Err(Error::BadSignature { key: format!("pypi.example.org/log+{:08x}", f.key.key_id()) })
        );
    }

    fn check_malformed(text: &str, line: usize, reason: &str) {
        let vkey = "log+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(check_proof(text, vkey, b""), Err(Error::ProofFormat { line, reason: reason.to_string() }), "{text:?}");
    }

    #[test]
    fn malformed_proofs() {
        let hash = Hash::EMPTY.to_base64();
        let index = "expected `index <n>`, n in decimal without leading zeros";
        let ends = "the proof ends before its blank line and checkpoint";
        check_malformed("", 1, ends);
        check_malformed("c2sp.org/tlog-proof@v2\nindex 0\n\n", 1, "expected \"c2sp.org/tlog-proof@v1\"");
        check_malformed("c2sp.org/tlog-proof@v1 \nindex 0\n\n", 1, "expected \"c2sp.org/tlog-proof@v1\"");
        check_malformed("c2sp.org/tlog-proof@v1\r\nindex 0\n\n", 1, "expected \"c2sp.org/tlog-proof@v1\"");
        check_malformed("c2sp.org/tlog-proof@v1\nindex 01\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex -1\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex \n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex  1\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nIndex 1\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex 1\r\n\n", 2, index);
        check_malformed("c2sp.org/tlog-proof@v1\nextra AA==\nextra AA==\nindex 1\n\n", 3, index);
        check_malformed("c2sp.org/tlog-proof@v1\nindex 1\nextra AA==\n\n", 3, "not a hash in standard, padded base64");
        check_malformed("c2sp.org/tlog-proof@v1\nextra AA\nindex 1\n\n", 2, "the extra data is not standard, padded base64");
        check_malformed("c2sp.org/tlog-proof@v1\nextra\nindex 1\n\n", 2, index);
        check_malformed(
            &format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}\n{}\n\n", &hash[1..]),
            4,
            "not a hash in standard, padded base64",
        );
        check_malformed(&format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash} \n\n"), 3, "not a hash in standard, padded base64");
        check_malformed(&format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}\n"), 4, ends);
        check_malformed(&format!("c2sp.org/tlog-proof@v1\nindex 1\n{hash}"), 3, ends);
        let long = format!("c2sp.org/tlog-proof@v1\nindex 1\n{}\n", format!("{hash}\n").repeat(65));
        check_malformed(&long, 67, "more than 64 proof hashes");
    }
}
