//! The transparency log of everything Palisade publishes (docs/transparency.md).
//!
//! The store appends an entry in the write transaction of every change to what is served (a file
//! published or held, yanks, quarantine decisions, removals, project status, roles, publishers).
//! Here: the log's identity (its origin, fixed when the log is created, and its Ed25519 signing
//! key, kept outside the database), the sequencer that stores the Merkle hashes of new entries
//! and signs a checkpoint for them (through the store's write lock, so that no two nodes ever sign
//! inconsistent checkpoints), what the tiles, checkpoints and proofs are made of, and the audit
//! that recomputes the log against the database and the stored bytes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use palisade_store::StoredCheckpoint;
use palisade_tlog::{Checkpoint, Hash, SigningKey, TilePath};
use sha2::{Digest, Sha256};

use crate::Core;
use crate::error::{Result, internal, not_found};

/// Entries one sequencer pass takes at most (the rest wait for the next pass).
const BATCH: usize = 4096;

/// The log's signing identity, loaded once per process.
#[derive(Clone)]
pub struct Log {
    key: Arc<SigningKey>,
    origin: String,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("origin", &self.origin).field("key", &self.key.verifier_key()).finish()
    }
}

/// A hash tile, entry bundle, or why there is none.
pub enum Tile {
    Bytes(Vec<u8>),
    /// Beyond the newest checkpoint (a later one may cover it).
    NotYet,
}

/// A proof for a file's entry, or why there is none yet.
pub enum Proof {
    Text(String),
    /// The entry exists but no checkpoint covers it yet.
    NotYet,
}

impl Log {
    /// The verifier key users pin: `<name>+<hex id>+<base64>`.
    pub fn verifier_key(&self) -> String {
        self.key.verifier_key()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The private key's text, for `palisade log key --private` (to give other nodes the key).
    pub fn private_key_text(&self) -> String {
        self.key.to_text()
    }

    fn sign(&self, size: u64, root: Hash) -> std::result::Result<String, String> {
        palisade_tlog::sign_checkpoint(&self.key, &Checkpoint { origin: self.origin.clone(), size, root }).map_err(|e| e.to_string())
    }
}

/// The origin a new log takes: `[transparency] origin`, or `public_url`'s host and path plus `/log`, or
/// the listening address plus `/log`.
fn default_origin(config: &crate::Config) -> String {
    if let Some(o) = &config.transparency.origin {
        return o.clone();
    }
    if let Some(u) = config.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
        let host = u.host_str().unwrap_or("palisade");
        let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
        return format!("{host}{port}{}/log", u.path().trim_end_matches('/'));
    }
    format!("{}/log", config.listen)
}

/// Reads the signing key from `[transparency] key`, or from `key_file` (default `log-signing.key` in the
/// data directory), creating the file with a new key (mode 0600) when it does not exist and the
/// log has no key yet (`existing`: the verifier key the log was created with, if it was).
fn load_key(config: &crate::Config, origin: &str, existing: Option<&str>) -> anyhow::Result<SigningKey> {
    if let Some(secret) = &config.transparency.key {
        return SigningKey::from_text(secret.expose().trim()).map_err(|e| anyhow::anyhow!("transparency.key: {e}"));
    }
    let path: PathBuf = config.transparency.key_file.clone().unwrap_or_else(|| config.data_dir.join("log-signing.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => SigningKey::from_text(text.trim()).map_err(|e| anyhow::anyhow!("the log signing key {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(existing) = existing {
                bail!(
                    "the log signing key {} does not exist, and this log was created with the key {existing}: give this node \
                     that key (copy the first node's log-signing.key to this path, set [transparency] key_file, or set \
                     PALISADE_TRANSPARENCY_KEY to what `palisade log key --private` prints there)",
                    path.display()
                );
            }
            let key = SigningKey::generate(origin).map_err(|e| anyhow::anyhow!("generating the log signing key: {e}"))?;
            write_new_secret(&path, &key.to_text()).with_context(|| format!("writing the log signing key {}", path.display()))?;
            tracing::info!(path = %path.display(), verifier_key = %key.verifier_key(), "created the transparency log's signing key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the log signing key {}", path.display())),
    }
}

fn write_new_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

impl Core {
    /// The log's identity: the origin stored when the log was created (or now), and the signing
    /// key, which must be the one the log was created with. Refuses a configured origin other
    /// than the stored one: a new origin is a new log.
    pub async fn open_log(&self) -> anyhow::Result<Log> {
        let wanted = default_origin(&self.config);
        let origin = self.db.log_setting("log_origin", &wanted).await?;
        if self.config.transparency.origin.as_deref().is_some_and(|o| o != origin) {
            bail!(
                "transparency.origin is {wanted:?}, but this log was created as {origin:?}; the origin cannot change (a new origin is a new log)"
            );
        }
        let existing = self.db.log_setting_stored("log_verifier_key").await?;
        let key = load_key(&self.config, &origin, existing.as_deref())?;
        let stored = self.db.log_setting("log_verifier_key", &key.verifier_key()).await?;
        if stored != key.verifier_key() {
            bail!(
                "the log signing key ({}) is not the key this log was created with ({stored}); give every node the same key \
                 ([transparency] key_file or key)",
                key.verifier_key()
            );
        }
        Ok(Log { key: Arc::new(key), origin })
    }

    /// One sequencer pass: hashes the new entries and signs a checkpoint for them.
    pub async fn sequence_log(&self, log: &Log) -> Result<Option<StoredCheckpoint>> {
        let log = log.clone();
        Ok(self.db.integrate_log(BATCH, &move |size, root| log.sign(size, root)).await?)
    }

    /// The sequencer, for `serve`: a pass every `transparency.sequence_ms`, on every node (the store's
    /// write lock makes them take turns; a pass with nothing to do only reads).
    pub async fn run_sequencer(self, log: Log) {
        let every = Duration::from_millis(self.config.transparency.sequence_ms);
        loop {
            match self.sequence_log(&log).await {
                Ok(Some(c)) => tracing::debug!(size = c.size, "signed a transparency log checkpoint"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the transparency log's sequencer failed; retrying"),
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The newest signed checkpoint's note.
    pub async fn log_checkpoint(&self) -> Result<Option<String>> {
        Ok(self.db.latest_checkpoint().await?.map(|c| c.note))
    }

    /// A hash tile or entry bundle, as tlog-tiles serves it, within the newest checkpoint.
    pub async fn log_tile(&self, path: &TilePath) -> Result<Tile> {
        let Some(latest) = self.db.latest_checkpoint().await? else { return Ok(Tile::NotYet) };
        let size = latest.size;
        match *path {
            TilePath::Hash { level, index, width } => {
                if palisade_tlog::tile_width(level, index, size).is_none_or(|w| w < width) {
                    return Ok(Tile::NotYet);
                }
                let have = self.db.log_hashes(&palisade_tlog::hash_tile_needs(level, index, width)).await?;
                Ok(Tile::Bytes(palisade_tlog::hash_tile(level, index, width, &have).map_err(internal)?))
            }
            TilePath::Entries { index, width } => {
                if palisade_tlog::tile_width(0, index, size).is_none_or(|w| w < width) {
                    return Ok(Tile::NotYet);
                }
                let start = index * 256;
                let entries = self.db.log_entries(start, start + width as u64).await?;
                let bytes: Vec<&[u8]> = entries.iter().map(|e| e.entry.as_bytes()).collect();
                Ok(Tile::Bytes(palisade_tlog::entry_bundle(&bytes).map_err(internal)?))
            }
        }
    }

    /// A C2SP tlog-proof of the entry that published `filename`, against the newest checkpoint;
    /// its `extra` line is the entry's text.
    pub async fn log_proof(&self, filename: &str) -> Result<Proof> {
        let entry = self.db.log_entry_for_file(filename).await?.ok_or_else(|| not_found(format!("no log entry for {filename:?}")))?;
        let Some(latest) = self.db.latest_checkpoint().await? else { return Ok(Proof::NotYet) };
        if entry.idx >= latest.size {
            return Ok(Proof::NotYet);
        }
        let have = self.db.log_hashes(&palisade_tlog::inclusion_needs(entry.idx, latest.size)).await?;
        let proof = palisade_tlog::inclusion_proof(entry.idx, latest.size, &have).map_err(internal)?;
        Ok(Proof::Text(palisade_tlog::format_proof(Some(entry.entry.as_bytes()), entry.idx, &proof, &latest.note)))
    }

    /// Recomputes the log and compares it with the database and the stored bytes: every signed
    /// checkpoint (its note's signature, size and root) against the tree the entries give, and
    /// what the entries' text says of each file against the database and the bytes. Returns
    /// every difference found, each a sentence; empty when all agree.
    pub async fn audit_log(&self, log: &Log) -> anyhow::Result<Vec<String>> {
        let mut problems = Vec::new();
        let len = self.db.log_len().await?;
        let entries = self.db.log_entries(0, len).await?;
        if entries.len() as u64 != len || entries.iter().enumerate().any(|(i, e)| e.idx != i as u64) {
            problems.push(format!("the log's entries are not numbered 0 to {} without gaps", len.saturating_sub(1)));
        }
        // The tree, recomputed from the entries, against every signed checkpoint.
        let mut hashes = std::collections::HashMap::new();
        let mut roots = Vec::with_capacity(entries.len() + 1);
        roots.push(palisade_tlog::tree_hash(0, &hashes).map_err(anyhow::Error::msg)?);
        for (n, e) in entries.iter().enumerate() {
            let n = n as u64;
            let new = palisade_tlog::append(n, e.entry.as_bytes(), &hashes).map_err(anyhow::Error::msg)?;
            let first = palisade_tlog::stored_hash_index(0, n);
            for (i, h) in new.into_iter().enumerate() {
                hashes.insert(first + i as u64, h);
            }
            roots.push(palisade_tlog::tree_hash(n + 1, &hashes).map_err(anyhow::Error::msg)?);
        }
        let key = log.verifier_key();
        for c in self.db.checkpoints().await? {
            let signed = match palisade_tlog::open_checkpoint(&c.note, &key) {
                Ok(signed) => signed,
                Err(e) => {
                    problems.push(format!("the checkpoint of size {} does not verify with the log's key: {e}", c.size));
                    continue;
                }
            };
            if signed.size != c.size || signed.root != c.root || signed.origin != log.origin() {
                problems.push(format!(
                    "the checkpoint row of size {} (root {}) differs from its signed note ({} size {} root {})",
                    c.size,
                    c.root.to_base64(),
                    signed.origin,
                    signed.size,
                    signed.root.to_base64()
                ));
            }
            match roots.get(signed.size as usize) {
                Some(r) if *r == signed.root => {}
                Some(r) => problems.push(format!(
                    "the checkpoint of size {} signs root {}, but the entries give {}",
                    signed.size,
                    signed.root.to_base64(),
                    r.to_base64()
                )),
                None => problems.push(format!("the checkpoint of size {} covers entries the log does not have ({len})", signed.size)),
            }
        }
        // What the entries' text says of each file (the signed data, not the columns beside it),
        // against the database and the bytes.
        let mut recorded: std::collections::HashMap<String, (String, u64)> = Default::default();
        let mut gone: std::collections::HashSet<String> = Default::default();
        for e in &entries {
            let words: Vec<&str> = e.entry.split(' ').collect();
            let (event, filename, digest) = match words.as_slice() {
                ["pypi", ev @ ("publish" | "hold"), _, _, f, d, ..] => (*ev, *f, *d),
                ["pypi", ev @ ("remove" | "confirm" | "quarantine" | "release"), _, f, d, ..] => (*ev, *f, *d),
                _ => continue,
            };
            let Some(sha) = digest.strip_prefix("sha256:") else {
                problems.push(format!("log entry {} has no sha256: {}", e.idx, e.entry));
                continue;
            };
            if e.filename.as_deref() != Some(filename) || e.sha256.as_deref() != Some(sha) {
                problems.push(format!("log entry {}: its filename and sha256 columns differ from its text ({})", e.idx, e.entry));
            }
            match event {
                "publish" | "hold" => {
                    recorded.entry(filename.to_owned()).or_insert((sha.to_owned(), e.idx));
                }
                "remove" | "confirm" => {
                    gone.insert(filename.to_owned());
                }
                _ => {}
            }
        }
        let files = self.db.all_files(None).await?;
        let live: std::collections::HashSet<&str> = files.iter().map(|f| f.filename.as_str()).collect();
        for f in &files {
            match recorded.get(&f.filename) {
                None => problems.push(format!("{} is in the database but has no log entry", f.filename)),
                Some((sha, idx)) if *sha != f.sha256 => {
                    problems.push(format!("{}: the database says sha256 {}, but log entry {idx} recorded {sha}", f.filename, f.sha256))
                }
                Some(_) => {}
            }
            // The bytes are checked against what the log recorded when it has the file.
            let want = recorded.get(&f.filename).map_or(f.sha256.as_str(), |(sha, _)| sha.as_str());
            match self.blob_sha256(&f.sha256).await {
                Ok(Some(actual)) if actual != want => {
                    problems.push(format!("{}: the stored bytes have sha256 {actual}, not {want}: they changed", f.filename))
                }
                Ok(Some(_)) => {}
                Ok(None) => problems.push(format!("{}: its bytes ({}) are missing from storage", f.filename, f.sha256)),
                Err(e) => problems.push(format!("{}: its bytes could not be read: {e}", f.filename)),
            }
        }
        for (filename, (_, idx)) in &recorded {
            if !live.contains(filename.as_str()) && !gone.contains(filename) {
                problems.push(format!("log entry {idx} records {filename}, which is gone with no removal entry"));
            }
        }
        problems.sort();
        Ok(problems)
    }

    async fn blob_sha256(&self, sha256: &str) -> anyhow::Result<Option<String>> {
        let mut stream = match self.blobs.read(sha256, None).await {
            Ok(s) => s,
            Err(palisade_store::StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut h = Sha256::new();
        while let Some(chunk) = stream.next().await {
            h.update(&chunk?);
        }
        Ok(Some(hex::encode(h.finalize())))
    }
}

/// A tile path as it follows `tile/`, parsed: a refusal is the client's fault (`400`).
pub fn parse_tile(path: &str) -> Result<TilePath> {
    TilePath::parse(path).map_err(|e| crate::error::invalid(format!("invalid tile path {path:?}: {e}")))
}
