//! The transparency log's rows: entries appended by the write transactions that make the changes
//! they record, the Merkle hashes a sequencer stores for them, and the signed checkpoints.
//!
//! Every entry is one line of text, `pypi <event> <project> ...`, whose words never contain a
//! space (normalized names, versions, filenames, user names and publisher identities have none);
//! docs/transparency.md lists them. Entries are numbered from 0 in commit order: the number is
//! taken inside the write transaction, which runs alone on every engine and node.

use std::collections::HashMap;

use palisade_tlog::Hash;
use sqlx::{Any, Row, Transaction};

use crate::db::now_micros;
use crate::{Db, StoreError};

/// The words of an entry: anything with a space or a control character is replaced, so that an
/// entry stays one line of space-separated words whatever a caller passes.
fn word(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect()
}

/// How the log names an actor: a user as `user:NAME`, the administrator's CLI as
/// `cli:OPERATOR` (the account that ran it), trusted publishers as their callers name them.
pub(crate) fn actor(name: &str) -> String {
    if let Some(operator) = name.strip_prefix("admin-cli (").and_then(|n| n.strip_suffix(')')) {
        format!("cli:{}", word(operator))
    } else if name.starts_with("publisher:") || name.starts_with("github:") || name.starts_with("gitlab:") || name.starts_with("oidc:") {
        word(name)
    } else {
        format!("user:{}", word(name))
    }
}

#[cfg(test)]
mod tests {
    use super::{actor, word};

    #[test]
    fn actors_and_words() {
        assert_eq!(actor("alice"), "user:alice");
        assert_eq!(actor("admin-cli (root)"), "cli:root");
        assert_eq!(actor("publisher:7"), "publisher:7");
        assert_eq!(actor("github:o/r/release.yml#3"), "github:o/r/release.yml#3");
        assert_eq!(word("two words\nand a line"), "two_words_and_a_line");
        assert_eq!(word(""), "-");
    }
}

/// The longest entry: far above any real one (a filename is at most a few hundred bytes), far
/// below what an entry bundle holds (64 KiB).
const MAX_ENTRY_BYTES: usize = 4096;

/// Appends one entry, inside the caller's write transaction; returns its index.
pub(crate) async fn append(
    conn: &mut sqlx::AnyConnection,
    words: &[&str],
    filename: Option<&str>,
    sha256: Option<&str>,
) -> Result<i64, StoreError> {
    let entry = std::iter::once("pypi".to_owned()).chain(words.iter().map(|w| word(w))).collect::<Vec<_>>().join(" ");
    if entry.len() > MAX_ENTRY_BYTES {
        return Err(StoreError::Conflict(format!(
            "this change would make a transparency log entry of {} bytes; at most {MAX_ENTRY_BYTES} are allowed",
            entry.len()
        )));
    }
    let idx: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries").fetch_one(&mut *conn).await?;
    sqlx::query("INSERT INTO log_entries (idx, entry, filename, sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(idx)
        .bind(&entry)
        .bind(filename)
        .bind(sha256)
        .bind(now_micros())
        .execute(&mut *conn)
        .await?;
    Ok(idx)
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
    pub created_at: i64,
}

/// A log entry as stored.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub idx: u64,
    pub entry: String,
    pub filename: Option<String>,
    pub sha256: Option<String>,
}

fn parse_hash(hex_text: &str) -> Result<Hash, StoreError> {
    let bytes = hex::decode(hex_text).map_err(|_| StoreError::Corrupt(format!("log hash {hex_text:?} is not hex")))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt("a log hash is not 32 bytes".into()))?;
    Ok(Hash(arr))
}

async fn read_hashes(tx: &mut Transaction<'static, Any>, idxs: &[u64], into: &mut HashMap<u64, Hash>) -> Result<(), StoreError> {
    for idx in idxs {
        if into.contains_key(idx) {
            continue;
        }
        let h: Option<String> =
            sqlx::query_scalar("SELECT hash FROM log_hashes WHERE idx = $1").bind(*idx as i64).fetch_optional(&mut **tx).await?;
        let h = h.ok_or_else(|| StoreError::Corrupt(format!("log hash {idx} is missing")))?;
        into.insert(*idx, parse_hash(&h)?);
    }
    Ok(())
}

fn tlog_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("transparency log: {e}"))
}

impl Db {
    /// Stores the hashes of the entries no checkpoint covers yet (at most `max`) and a checkpoint
    /// for the grown tree, signed by `sign(size, root)`, in one write transaction: checkpoints are
    /// made one at a time across every node, so no two can disagree. Also makes the first,
    /// empty checkpoint of a new log. `None` when there was nothing to do.
    pub async fn integrate_log(
        &self,
        max: usize,
        sign: &(dyn Fn(u64, Hash) -> Result<String, String> + Sync),
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        // Every node runs this every second: with nothing new, a read answers, and the write lock
        // (SQLite's one writer, PostgreSQL's advisory lock) is left to the writers. What is read
        // here is checked again under the lock.
        let (entries, signed): (i64, Option<i64>) =
            sqlx::query_as("SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries), (SELECT MAX(size) FROM log_checkpoints)")
                .fetch_one(&self.reader)
                .await?;
        if signed.is_some_and(|size| size >= entries) {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM log_checkpoints").fetch_one(&mut *tx).await?;
        let old = latest.unwrap_or(0) as u64;
        let rows = sqlx::query("SELECT idx, entry FROM log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2")
            .bind(old as i64)
            .bind(max as i64)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() && latest.is_some() {
            return Ok(None);
        }
        let mut known = HashMap::new();
        let mut size = old;
        for row in rows {
            let (idx, entry): (i64, String) = (row.get(0), row.get(1));
            if idx as u64 != size {
                return Err(StoreError::Corrupt(format!("log entry {size} is missing (found {idx})")));
            }
            read_hashes(&mut tx, &palisade_tlog::append_needs(size), &mut known).await?;
            let hashes = palisade_tlog::append(size, entry.as_bytes(), &known).map_err(tlog_error)?;
            let first = palisade_tlog::stored_hash_index(0, size);
            for (i, h) in hashes.into_iter().enumerate() {
                let at = first + i as u64;
                sqlx::query("INSERT INTO log_hashes (idx, hash) VALUES ($1, $2)")
                    .bind(at as i64)
                    .bind(hex::encode(h.0))
                    .execute(&mut *tx)
                    .await?;
                known.insert(at, h);
            }
            size += 1;
        }
        read_hashes(&mut tx, &palisade_tlog::tree_hash_needs(size), &mut known).await?;
        let root = palisade_tlog::tree_hash(size, &known).map_err(tlog_error)?;
        let note = sign(size, root).map_err(|e| StoreError::Corrupt(format!("signing the checkpoint: {e}")))?;
        let now = now_micros();
        sqlx::query("INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)")
            .bind(size as i64)
            .bind(hex::encode(root.0))
            .bind(&note)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(StoredCheckpoint { size, root, note, created_at: now }))
    }

    /// A setting of the log (`log_origin`, `log_verifier_key`): stores `value` the first time,
    /// then returns what was stored first, whatever is passed later.
    pub async fn log_setting(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&self.writer).await?)
    }

    /// A log setting as stored, if it is.
    pub async fn log_setting_stored(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.writer).await?)
    }

    /// Every checkpoint, oldest first (for the audit).
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows = sqlx::query("SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size").fetch_all(&self.reader).await?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredCheckpoint {
                    size: r.get::<i64, _>(0) as u64,
                    root: parse_hash(&r.get::<String, _>(1))?,
                    note: r.get(2),
                    created_at: r.get(3),
                })
            })
            .collect()
    }

    /// The newest checkpoint, if the log has one.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row = sqlx::query("SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| {
            Ok(StoredCheckpoint {
                size: r.get::<i64, _>(0) as u64,
                root: parse_hash(&r.get::<String, _>(1))?,
                note: r.get(2),
                created_at: r.get(3),
            })
        })
        .transpose()
    }

    /// How many entries the log has, checkpointed or not.
    pub async fn log_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries").fetch_one(&self.reader).await?;
        Ok(n as u64)
    }

    /// Stored hashes by index; an index not stored yet is an error.
    pub async fn log_hashes(&self, idxs: &[u64]) -> Result<HashMap<u64, Hash>, StoreError> {
        let mut out = HashMap::with_capacity(idxs.len());
        for chunk in idxs.chunks(256) {
            let list = chunk.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT idx, hash FROM log_hashes WHERE idx IN ({list})")))
                .fetch_all(&self.reader)
                .await?;
            for r in rows {
                out.insert(r.get::<i64, _>(0) as u64, parse_hash(&r.get::<String, _>(1))?);
            }
        }
        if let Some(missing) = idxs.iter().find(|i| !out.contains_key(i)) {
            return Err(StoreError::NotFound(format!("log hash {missing}")));
        }
        Ok(out)
    }

    /// Entries `start..end`, in order.
    pub async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query("SELECT idx, entry, filename, sha256 FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx")
            .bind(start as i64)
            .bind(end as i64)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(entry_row).collect())
    }

    /// The entry that published (or held) `filename`: the first entry naming the file.
    pub async fn log_entry_for_file(&self, filename: &str) -> Result<Option<LogEntry>, StoreError> {
        let row = sqlx::query("SELECT idx, entry, filename, sha256 FROM log_entries WHERE filename = $1 ORDER BY idx LIMIT 1")
            .bind(filename)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(entry_row))
    }
}

fn entry_row(r: sqlx::any::AnyRow) -> LogEntry {
    LogEntry { idx: r.get::<i64, _>(0) as u64, entry: r.get(1), filename: r.get(2), sha256: r.get(3) }
}
