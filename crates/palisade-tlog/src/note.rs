//! Log keys and checkpoints: Ed25519 note keys in Go's text formats, and [C2SP tlog-checkpoint]
//! bodies signed and opened as [C2SP signed-note]s, through `signed_note` and `tlog_tiles`.
//!
//! A private key is `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>` and its verifier key
//! `<name>+<id>+<base64(0x01 || public key)>`, where `<id>` is eight hex digits of
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]`. By convention a log's key name is its
//! origin, but nothing here requires it.
//!
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [C2SP signed-note]: https://c2sp.org/signed-note

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use signed_note::{Note, NoteError, Signer as _, StandardSigner, StandardVerifier, Verifier as _, VerifierList};

use crate::{Error, Hash, MAX_TREE_SIZE, Result};

/// The note signature algorithm byte of Ed25519, the only one there is.
const ALG_ED25519: u8 = 1;

/// A log's Ed25519 signing key with its name. `Debug` shows the name and key id, never the key.
#[derive(Clone)]
pub struct SigningKey {
    signer: StandardSigner,
    /// The private key text, canonical (lower-case id), as [`SigningKey::to_text`] gives it.
    text: String,
    verifier: String,
}

impl SigningKey {
    /// A new key named `name` from the operating system's randomness. Pass the log's origin as the
    /// name, by convention.
    pub fn generate(name: &str) -> Result<SigningKey> {
        check_key_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Randomness(e.to_string()))?;
        SigningKey::from_text(&private_text(name, &ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Reads a private key in Go's note format, `PRIVATE+KEY+<name>+<hex id>+<base64>`, refusing
    /// one whose id is not its public key's. The text is taken as is: trim a file's line ending
    /// first.
    pub fn from_text(text: &str) -> Result<SigningKey> {
        let fields: Vec<&str> = text.splitn(5, '+').collect();
        let [private, key, name, _id, data] = fields[..] else {
            return Err(Error::PrivateKey("not of the form PRIVATE+KEY+<name>+<hex id>+<base64 key>"));
        };
        if private != "PRIVATE" || key != "KEY" {
            return Err(Error::PrivateKey("not of the form PRIVATE+KEY+<name>+<hex id>+<base64 key>"));
        }
        check_key_name(name)?;
        let signer = StandardSigner::new(text).map_err(|e| {
            Error::PrivateKey(match e {
                signed_note::SignerError::Alg => "not an Ed25519 key (algorithm 1)",
                signed_note::SignerError::Id => "its key id is not the one its public key gives",
                signed_note::SignerError::Format => "the id is not eight hex digits, or the key is not 33 bytes of base64",
            })
        })?;
        // StandardSigner has checked that the data is the algorithm byte and a 32-byte seed.
        let seed = STANDARD
            .decode(data)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.get(1..)?).ok())
            .ok_or(Error::PrivateKey("the key is not 33 bytes of base64"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let verifier = signed_note::new_ed25519_verifier_key(name, &key.verifying_key());
        Ok(SigningKey { signer, text: private_text(name, &key), verifier })
    }

    /// The private key in Go's note format, `PRIVATE+KEY+<name>+<hex id>+<base64>`. It is a secret.
    pub fn to_text(&self) -> String {
        self.text.clone()
    }

    /// The verifier (public) key, `<name>+<hex id>+<base64(0x01 || public key)>`, which clients
    /// pass to [`open_checkpoint`].
    pub fn verifier_key(&self) -> String {
        self.verifier.clone()
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        self.signer.name()
    }

    /// The key's 32-bit id, as its texts and signatures carry it.
    pub fn key_id(&self) -> u32 {
        self.signer.key_id()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}+{:08x}, private key redacted)", self.name(), self.key_id())
    }
}

/// Go's private key text for `key` under `name`; signed_note writes the same in `generate_key`,
/// which wants a `rand_core` generator instead of a seed.
fn private_text(name: &str, key: &ed25519_dalek::SigningKey) -> String {
    let public = [&[ALG_ED25519][..], key.verifying_key().as_bytes()].concat();
    let private = [&[ALG_ED25519][..], key.as_bytes()].concat();
    format!("PRIVATE+KEY+{name}+{:08x}+{}", signed_note::key_id(name, &public), STANDARD.encode(private))
}

fn check_key_name(name: &str) -> Result<()> {
    if signed_note::is_key_name_valid(name) { Ok(()) } else { Err(Error::KeyName(name.to_string())) }
}

/// A log's tree head: its origin (the log's name), the number of entries, and the root hash of
/// the tree of those entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The C2SP tlog-checkpoint body: `<origin>\n<size>\n<base64 root>\n`, the text a note signs.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root)
    }
}

/// Signs `checkpoint` with `key`: the complete signed note, its body followed by a blank line and
/// the line `— <key name> <base64(key id || signature)>`. Refuses an origin the body cannot carry
/// (empty, or with a newline or another control character) and a size over [`MAX_TREE_SIZE`].
pub fn sign_checkpoint(key: &SigningKey, checkpoint: &Checkpoint) -> Result<String> {
    let origin = &checkpoint.origin;
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(Error::Origin(origin.clone()));
    }
    if checkpoint.size > MAX_TREE_SIZE {
        return Err(Error::TreeTooLarge { size: checkpoint.size });
    }
    let mut note = Note::new(checkpoint.body().as_bytes(), &[]).map_err(|e| Error::Sign(e.to_string()))?;
    note.add_sigs(&[&key.signer]).map_err(|e| Error::Sign(e.to_string()))?;
    String::from_utf8(note.to_bytes()).map_err(|e| Error::Sign(e.to_string()))
}

/// Reads a signed checkpoint, accepting it only if it carries a valid signature by
/// `verifier_key`. Signatures by other keys (a witness's cosignature, say) are ignored, as the
/// signed-note spec asks; extension lines after the root are allowed and dropped.
pub fn open_checkpoint(note: &str, verifier_key: &str) -> Result<Checkpoint> {
    let verifier = StandardVerifier::new(verifier_key).map_err(|e| Error::VerifierKey {
        key: verifier_key.to_string(),
        reason: match e {
            signed_note::VerifierError::Alg => "not an Ed25519 key (algorithm 1)",
            signed_note::VerifierError::Id => "its key id is not the one its public key gives",
            signed_note::VerifierError::Format => "not of the form <name>+<eight hex digits>+<base64 key>",
        },
    })?;
    let key = format!("{}+{:08x}", verifier.name(), verifier.key_id());
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| {
        Error::Note(
            "not a text of non-empty lines, a blank line and signature lines `— <name> <base64>` (at most 100), within 1 MB and without control characters",
        )
    })?;
    match parsed.verify(&VerifierList::new(vec![Box::new(verifier)])) {
        Ok(_) => {}
        Err(NoteError::InvalidSignature { .. }) => return Err(Error::BadSignature { key }),
        Err(_) => return Err(Error::NotSigned { key }),
    }
    let body = tlog_tiles::Checkpoint::from_bytes(parsed.text())
        .map_err(|_| Error::CheckpointBody("not an origin line, a decimal size and a base64 root hash, then extension lines"))?;
    if body.size() > MAX_TREE_SIZE {
        return Err(Error::TreeTooLarge { size: body.size() });
    }
    Ok(Checkpoint { origin: body.origin().to_string(), size: body.size(), root: Hash::from_tlog(*body.hash()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;

    /// The key of the example in Go's `sumdb/note` documentation, with its verifier key.
    const PETER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint { origin: "pypi.example.org/log".to_string(), size, root: leaf_hash(format!("root {size}").as_bytes()) }
    }

    /// Recomputes a verifier key's id by the C2SP signed-note rule, with sha2 rather than
    /// signed_note: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
    fn c2sp_key_id(verifier: &str) -> (String, String) {
        use sha2::{Digest, Sha256};
        let [name, id, data] = verifier.splitn(3, '+').collect::<Vec<_>>()[..] else { panic!("{verifier}") };
        let public = STANDARD.decode(data).unwrap();
        assert_eq!(public.len(), 33);
        assert_eq!(public[0], 0x01);
        let digest = Sha256::new().chain_update(name).chain_update([0x0a]).chain_update(&public).finalize();
        (id.to_string(), hex::encode(&digest[..4]))
    }

    #[test]
    fn generated_keys_round_trip() {
        let key = SigningKey::generate("pypi.example.org/log").unwrap();
        assert_eq!(key.name(), "pypi.example.org/log");
        let text = key.to_text();
        assert!(text.starts_with(&format!("PRIVATE+KEY+pypi.example.org/log+{:08x}+", key.key_id())), "{text}");
        let again = SigningKey::from_text(&text).unwrap();
        assert_eq!(again.to_text(), text);
        assert_eq!(again.verifier_key(), key.verifier_key());
        let verifier = key.verifier_key();
        assert!(verifier.starts_with(&format!("pypi.example.org/log+{:08x}+", key.key_id())), "{verifier}");
        let (id, computed) = c2sp_key_id(&verifier);
        assert_eq!(id, computed);
        // Two generated keys differ.
        assert_ne!(SigningKey::generate("pypi.example.org/log").unwrap().to_text(), text);
        // Debug never shows the private key.
        let debug = format!("{key:?}");
        assert!(!debug.contains(&text[text.rfind('+').unwrap() + 1..]), "{debug}");
        assert_eq!(debug, format!("SigningKey(pypi.example.org/log+{:08x}, private key redacted)", key.key_id()));
    }

    #[test]
    fn go_documentation_key() {
        let key = SigningKey::from_text(PETER).unwrap();
        assert_eq!(key.verifier_key(), PETER_VERIFIER);
        assert_eq!(key.to_text(), PETER);
        assert_eq!(key.key_id(), 0xc74f20a3);
        let (id, computed) = c2sp_key_id(PETER_VERIFIER);
        assert_eq!((id.as_str(), computed.as_str()), ("c74f20a3", "c74f20a3"));
        // An upper-case id is read, and written back in lower case.
        assert_eq!(SigningKey::from_text(&PETER.replace("c74f20a3", "C74F20A3")).unwrap().to_text(), PETER);
    }

    fn check_refused_key(text: &str, expected: Error) {
        assert_eq!(SigningKey::from_text(text).map(|k| k.to_text()), Err(expected), "{text:?}");
    }

    #[test]
    fn refused_keys() {
        check_refused_key(PETER_VERIFIER, Error::PrivateKey("not of the form PRIVATE+KEY+<name>+<hex id>+<base64 key>"));
        check_refused_key("", Error::PrivateKey("not of the form PRIVATE+KEY+<name>+<hex id>+<base64 key>"));
        check_refused_key(
            &PETER.replace("PRIVATE+KEY", "PUBLIC+KEY"),
            Error::PrivateKey("not of the form PRIVATE+KEY+<name>+<hex id>+<base64 key>"),
        );
        check_refused_key(&PETER.replace("c74f20a3", "c74f20a4"), Error::PrivateKey("its key id is not the one its public key gives"));
        check_refused_key(
            &PETER.replace("PeterNeumann", "PeterNeumann2"),
            Error::PrivateKey("its key id is not the one its public key gives"),
        );
        check_refused_key(
            &PETER.replace("c74f20a3", "c74f20a"),
            Error::PrivateKey("the id is not eight hex digits, or the key is not 33 bytes of base64"),
        );
        check_refused_key(
            &PETER.replace("AYEK", "AYE"),
            Error::PrivateKey("the id is not eight hex digits, or the key is not 33 bytes of base64"),
        );
        check_refused_key(&PETER.replace("AYEK", "AoEK"), Error::PrivateKey("not an Ed25519 key (algorithm 1)"));
        check_refused_key(&format!("{PETER}\n"), Error::PrivateKey("the id is not eight hex digits, or the key is not 33 bytes of base64"));
        check_refused_key(&PETER.replace("PeterNeumann", "Peter Neumann"), Error::KeyName("Peter Neumann".to_string()));
        check_refused_key(&PETER.replace("PeterNeumann", ""), Error::KeyName(String::new()));
    }

    #[test]
    fn refused_key_names() {
        for name in ["", "a b", "a+b", "tab\there", "line\nbreak", "no-break\u{a0}space"] {
            assert_eq!(SigningKey::generate(name).map(|k| k.to_text()), Err(Error::KeyName(name.to_string())));
        }
        for name in ["a", "pypi.example.org/log", "ünïcode"] {
            assert_eq!(SigningKey::generate(name).unwrap().name(), name);
        }
    }

    #[test]
    fn checkpoints_sign_and_open() {
        let key = SigningKey::from_text(PETER).unwrap();
        let cp = checkpoint(1234);
        let note = sign_checkpoint(&key, &cp).unwrap();
        let (body, signature) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), format!("pypi.example.org/log\n1234\n{}\n", cp.root));
        assert!(signature.starts_with("— PeterNeumann ") && signature.ends_with('\n') && signature.lines().count() == 1, "{signature}");
        // Ed25519 is deterministic, so the note is too: the key id, then the 64-byte signature.
        assert_eq!(sign_checkpoint(&key, &cp).unwrap(), note);
        let sig = STANDARD.decode(signature.trim_end().rsplit_once(' ').unwrap().1).unwrap();
        assert_eq!((sig.len(), &sig[..4]), (68, &[0xc7, 0x4f, 0x20, 0xa3][..]));
        assert_eq!(open_checkpoint(&note, PETER_VERIFIER), Ok(cp.clone()));

        let generated = SigningKey::generate("pypi.example.org/log").unwrap();
        let note = sign_checkpoint(&generated, &checkpoint(0)).unwrap();
        assert_eq!(open_checkpoint(&note, &generated.verifier_key()), Ok(checkpoint(0)));
    }

    #[test]
    fn unknown_signatures_and_extensions_are_tolerated() {
        let key = SigningKey::from_text(PETER).unwrap();
        let witness = SigningKey::generate("witness.example").unwrap();
        let cp = checkpoint(7);
        let note = sign_checkpoint(&key, &cp).unwrap();
        let cosigned = format!("{note}{}", sign_checkpoint(&witness, &cp).unwrap().split_once("\n\n").unwrap().1);
        assert_eq!(cosigned.lines().filter(|l| l.starts_with('—')).count(), 2);
        assert_eq!(open_checkpoint(&cosigned, PETER_VERIFIER), Ok(cp.clone()));
        assert_eq!(open_checkpoint(&cosigned, &witness.verifier_key()), Ok(cp.clone()));
        // A body with an extension line, signed by hand through signed_note.
        let mut extended = Note::new(format!("{}extension line\n", cp.body()).as_bytes(), &[]).unwrap();
        extended.add_sigs(&[&key.signer]).unwrap();
        assert_eq!(open_checkpoint(&String::from_utf8(extended.to_bytes()).unwrap(), PETER_VERIFIER), Ok(cp));
    }

    fn check_refused_note(note: &str, verifier: &str, expected: Error) {
        assert_eq!(open_checkpoint(note, verifier), Err(expected), "{note:?}");
    }

    #[test]
    fn refused_checkpoints() {
        let key = SigningKey::from_text(PETER).unwrap();
        let other = SigningKey::generate("PeterNeumann").unwrap();
        let cp = checkpoint(1234);
        let note = sign_checkpoint(&key, &cp).unwrap();
        let peter = "PeterNeumann+c74f20a3".to_string();
        let bad_signature = Error::BadSignature { key: peter.clone() };
        check_refused_note(&note.replace("\n1234\n", "\n1235\n"), PETER_VERIFIER, bad_signature.clone());
        check_refused_note(&note.replace("pypi.example.org", "pypi.example.net"), PETER_VERIFIER, bad_signature);
        // Signed by another key of the same name.
        let other_id = format!("PeterNeumann+{:08x}", other.key_id());
        check_refused_note(&note, &other.verifier_key(), Error::NotSigned { key: other_id });
        check_refused_note(&sign_checkpoint(&other, &cp).unwrap(), PETER_VERIFIER, Error::NotSigned { key: peter.clone() });
        // No signature at all.
        let malformed = Error::Note(
            "not a text of non-empty lines, a blank line and signature lines `— <name> <base64>` (at most 100), within 1 MB and without control characters",
        );
        check_refused_note(&cp.body(), PETER_VERIFIER, malformed.clone());
        check_refused_note(&format!("{}\n", cp.body()), PETER_VERIFIER, malformed.clone());
        check_refused_note(&note.replace('\n', "\r\n"), PETER_VERIFIER, malformed);
        check_refused_note(
            &note,
            "PeterNeumann+c74f20a3",
            Error::VerifierKey {
                key: "PeterNeumann+c74f20a3".to_string(),
                reason: "not of the form <name>+<eight hex digits>+<base64 key>",
            },
        );
        check_refused_note(
            &note,
            &PETER_VERIFIER.replace("c74f20a3", "c74f20a4"),
            Error::VerifierKey {
                key: PETER_VERIFIER.replace("c74f20a3", "c74f20a4"),
                reason: "its key id is not the one its public key gives",
            },
        );
        // Well signed, but not checkpoints.
        let body = Error::CheckpointBody("not an origin line, a decimal size and a base64 root hash, then extension lines");
        for text in [
            "just one line\n".to_string(),
            format!("origin\n01234\n{}\n", cp.root),
            format!("origin\n-1\n{}\n", cp.root),
            format!("origin\n18446744073709551616\n{}\n", cp.root),
            "origin\n12\nnot base64\n".to_string(),
            format!("origin\n12\n{}\n", &cp.root.to_base64()[..40]),
        ] {
            let mut n = Note::new(text.as_bytes(), &[]).unwrap();
            n.add_sigs(&[&key.signer]).unwrap();
            check_refused_note(&String::from_utf8(n.to_bytes()).unwrap(), PETER_VERIFIER, body.clone());
        }
        // A size past what this crate handles.
        let mut n = Note::new(format!("origin\n{}\n{}\n", MAX_TREE_SIZE + 1, cp.root).as_bytes(), &[]).unwrap();
        n.add_sigs(&[&key.signer]).unwrap();
        check_refused_note(&String::from_utf8(n.to_bytes()).unwrap(), PETER_VERIFIER, Error::TreeTooLarge { size: MAX_TREE_SIZE + 1 });
    }

    #[test]
    fn refused_origins() {
        let key = SigningKey::from_text(PETER).unwrap();
        for origin in ["", "two\nlines", "nul\0", "tab\t"] {
            let cp = Checkpoint { origin: origin.to_string(), ..checkpoint(1) };
            assert_eq!(sign_checkpoint(&key, &cp), Err(Error::Origin(origin.to_string())));
        }
        let cp = Checkpoint { size: MAX_TREE_SIZE + 1, ..checkpoint(1) };
        assert_eq!(sign_checkpoint(&key, &cp), Err(Error::TreeTooLarge { size: MAX_TREE_SIZE + 1 }));
    }
}
