//! Information sharing: the OSV records Palisade enforces, shows and publishes (`advisories`,
//! with the names and file hashes each one names), waivers, each feed's last sync, and the
//! reports users file about projects (`observations`). Every change to what blocks moves the
//! `advisories_serial` setting, which every node polls to reload its decisions.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::{Db, journal, project_in};
use crate::StoreError;
use crate::db::now_micros;
use crate::models::Flag;

/// The setting every change to the advisories moves.
const SERIAL: &str = "advisories_serial";
/// Records a feed sync writes per transaction.
const FEED_BATCH: usize = 500;

/// An OSV record to store, with what it names.
#[derive(Clone, Debug)]
pub struct NewAdvisory {
    pub osv_id: String,
    /// As written in the record (RFC 3339).
    pub modified: String,
    /// The same, in microseconds since the epoch (for ordering).
    pub modified_at: i64,
    pub withdrawn: bool,
    pub malicious: bool,
    /// The record's JSON.
    pub record: String,
    /// PEP 503 names of the PyPI packages it affects.
    pub names: Vec<String>,
    /// sha256 digests (hex) of the files it lists.
    pub hashes: Vec<String>,
}

/// An OSV record as stored.
#[derive(Clone, Debug)]
pub struct StoredAdvisory {
    /// The feed's name, or `""` for Palisade's own.
    pub source: String,
    pub osv_id: String,
    pub modified: String,
    pub modified_at: i64,
    pub withdrawn: bool,
    pub malicious: bool,
    pub record: String,
}

/// What a feed sync changed: the records added, changed or gone, with the names each named
/// (before and after).
#[derive(Clone, Debug, Default)]
pub struct FeedChanges {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Names of the packages whose records changed (sorted, unique).
    pub names: Vec<String>,
    /// File digests the changed records list (sorted, unique): files of other names they block.
    pub hashes: Vec<String>,
    /// Whether a record that blocks (malware), before or after, changed.
    pub blocking: bool,
}

/// A feed's last sync.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FeedRow {
    pub name: String,
    pub synced_at: i64,
    pub records: i64,
    pub skipped: i64,
    pub last_error: Option<String>,
}

/// A waiver: the record does not apply to the project.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Waiver {
    pub project: String,
    pub osv_id: String,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

/// A report about a project.
#[derive(Clone, Debug)]
pub struct NewObservation {
    pub project_id: i64,
    pub version: Option<String>,
    pub kind: String,
    pub summary: String,
    pub inspector_url: Option<String>,
    pub reporter_id: i64,
}

/// A report as stored, with its reporter.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Observation {
    pub id: i64,
    pub project: String,
    pub version: Option<String>,
    pub kind: String,
    pub summary: String,
    pub inspector_url: Option<String>,
    pub reporter: String,
    pub reporter_id: i64,
    #[sqlx(try_from = "Flag")]
    pub trusted: bool,
    pub created_at: i64,
    /// What Palisade did on it (`quarantined-project`, `quarantined-release`), if anything.
    pub action: Option<String>,
    /// What the administrator decided (`confirmed`, `released`), once decided.
    pub outcome: Option<String>,
}

const ADVISORY_COLUMNS: &str = "source, osv_id, modified, modified_at, withdrawn, malicious, record";

fn advisory(row: &sqlx::any::AnyRow) -> Result<StoredAdvisory, StoreError> {
    Ok(StoredAdvisory {
        source: row.try_get(0)?,
        osv_id: row.try_get(1)?,
        modified: row.try_get(2)?,
        modified_at: row.try_get(3)?,
        withdrawn: row.try_get::<Flag, _>(4)?.into(),
        malicious: row.try_get::<Flag, _>(5)?.into(),
        record: row.try_get(6)?,
    })
}

async fn bump(tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, '1') ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)")
        .bind(SERIAL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn hashes_of(tx: &mut Transaction<'static, Any>, source: &str, osv_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT h.sha256 FROM advisory_hashes h JOIN advisories a ON a.id = h.advisory_id WHERE a.source = $1 AND a.osv_id = $2",
    )
    .bind(source)
    .bind(osv_id)
    .fetch_all(&mut **tx)
    .await?)
}

async fn names_of(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT name FROM advisory_names WHERE advisory_id = $1").bind(id).fetch_all(&mut **tx).await?)
}

async fn insert_rows(tx: &mut Transaction<'static, Any>, id: i64, a: &NewAdvisory) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM advisory_names WHERE advisory_id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM advisory_hashes WHERE advisory_id = $1").bind(id).execute(&mut **tx).await?;
    for n in &a.names {
        sqlx::query("INSERT INTO advisory_names (advisory_id, name) VALUES ($1, $2)").bind(id).bind(n).execute(&mut **tx).await?;
    }
    for h in &a.hashes {
        sqlx::query("INSERT INTO advisory_hashes (advisory_id, sha256) VALUES ($1, $2)").bind(id).bind(h).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts or replaces `a` under `source`; `Some(names before and after)` when it changed.
async fn upsert(
    tx: &mut Transaction<'static, Any>,
    source: &str,
    a: &NewAdvisory,
    local_n: Option<i64>,
) -> Result<Option<(bool, Vec<String>)>, StoreError> {
    let existing = sqlx::query("SELECT id, modified, withdrawn, malicious, record FROM advisories WHERE source = $1 AND osv_id = $2")
        .bind(source)
        .bind(&a.osv_id)
        .fetch_optional(&mut **tx)
        .await?;
    match existing {
        Some(row) => {
            let id: i64 = row.try_get(0)?;
            let same = row.try_get::<String, _>(1)? == a.modified
                && bool::from(row.try_get::<Flag, _>(2)?) == a.withdrawn
                && bool::from(row.try_get::<Flag, _>(3)?) == a.malicious
                && row.try_get::<String, _>(4)? == a.record;
            if same {
                return Ok(None);
            }
            let mut names = names_of(tx, id).await?;
            sqlx::query("UPDATE advisories SET modified = $1, modified_at = $2, withdrawn = $3, malicious = $4, record = $5 WHERE id = $6")
                .bind(&a.modified)
                .bind(a.modified_at)
                .bind(a.withdrawn)
                .bind(a.malicious)
                .bind(&a.record)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            insert_rows(tx, id, a).await?;
            names.extend(a.names.iter().cloned());
            Ok(Some((false, names)))
        }
        None => {
            let id: i64 = sqlx::query(
                "INSERT INTO advisories (source, osv_id, modified, modified_at, withdrawn, malicious, record, local_n, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(source)
            .bind(&a.osv_id)
            .bind(&a.modified)
            .bind(a.modified_at)
            .bind(a.withdrawn)
            .bind(a.malicious)
            .bind(&a.record)
            .bind(local_n)
            .bind(now_micros())
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
            insert_rows(tx, id, a).await?;
            Ok(Some((true, a.names.clone())))
        }
    }
}

impl Db {
    /// The serial that moves with every change to the advisories or waivers (0 before any).
    pub async fn advisories_serial(&self) -> Result<i64, StoreError> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1").bind(SERIAL).fetch_optional(&self.reader).await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Stores what a feed holds: records new or changed since the last sync are written (in
    /// transactions of [`FEED_BATCH`]); with `snapshot` (a folder or a zip, which hold every
    /// record), the records of `source` that are no longer there are then deleted.
    pub async fn apply_feed(&self, source: &str, records: &[NewAdvisory], snapshot: bool) -> Result<FeedChanges, StoreError> {
        // What is unchanged is found before the write lock is taken, so that a sync of a large
        // feed that changed little holds up other writers (uploads, on every node) only for its
        // changes. The transaction still compares each row it writes, so a concurrent sync of
        // the same feed cannot be undone by this one's stale view.
        let stored: HashMap<String, (String, bool, bool, String)> =
            sqlx::query("SELECT osv_id, modified, withdrawn, malicious, record FROM advisories WHERE source = $1")
                .bind(source)
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| -> Result<_, StoreError> {
                    let flags: (Flag, Flag) = (r.try_get(2)?, r.try_get(3)?);
                    Ok((r.try_get(0)?, (r.try_get(1)?, flags.0.into(), flags.1.into(), r.try_get(4)?)))
                })
                .collect::<Result<_, _>>()?;
        let changed: Vec<&NewAdvisory> = records
            .iter()
            .filter(|a| stored.get(&a.osv_id) != Some(&(a.modified.clone(), a.withdrawn, a.malicious, a.record.clone())))
            .collect();
        let mut changes = FeedChanges::default();
        let mut names = Vec::new();
        let mut hashes = Vec::new();
        // Marked as under way: a sync cut short is noticed by the next, which then makes every
        // node reload even if it finds nothing left to write.
        let interrupted = {
            let mut tx = self.begin().await?;
            let before: Option<Option<i64>> =
                sqlx::query_scalar("SELECT started_at FROM feeds WHERE name = $1").bind(source).fetch_optional(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO feeds (name, synced_at, records, skipped, started_at) VALUES ($1, 0, 0, 0, $2) \
                 ON CONFLICT (name) DO UPDATE SET started_at = $2",
            )
            .bind(source)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            before.flatten().is_some()
        };
        // In transactions of a bounded size, so that other writers wait a fraction of a second
        // even when a whole feed changes (its first sync); each record is written whole. The
        // serial moves once, at the end, so that nodes reload once.
        let mut blocking = interrupted;
        for batch in changed.chunks(FEED_BATCH) {
            let mut tx = self.begin().await?;
            for a in batch {
                let was_blocking = stored.get(&a.osv_id).is_some_and(|(_, withdrawn, malicious, _)| *malicious && !*withdrawn);
                if was_blocking {
                    hashes.extend(hashes_of(&mut tx, source, &a.osv_id).await?);
                }
                if let Some((added, n)) = upsert(&mut tx, source, a, None).await? {
                    if added {
                        changes.added += 1;
                    } else {
                        changes.updated += 1;
                    }
                    blocking |= was_blocking || (a.malicious && !a.withdrawn);
                    names.extend(n);
                    hashes.extend(a.hashes.iter().cloned());
                }
            }
            tx.commit().await?;
        }
        let mut tx = self.begin().await?;
        if snapshot {
            let present: std::collections::HashSet<&str> = records.iter().map(|a| a.osv_id.as_str()).collect();
            // Only when something the snapshot lacks was stored (known from the read above) is the
            // source's list read again, under the lock.
            if stored.keys().any(|id| !present.contains(id.as_str())) {
                let ids: Vec<(i64, String)> = sqlx::query("SELECT id, osv_id FROM advisories WHERE source = $1")
                    .bind(source)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                for (id, osv_id) in ids.into_iter().filter(|(_, o)| !present.contains(o.as_str())) {
                    names.extend(names_of(&mut tx, id).await?);
                    hashes.extend(hashes_of(&mut tx, source, &osv_id).await?);
                    blocking |= stored.get(&osv_id).is_some_and(|(_, withdrawn, malicious, _)| *malicious && !*withdrawn);
                    sqlx::query("DELETE FROM advisories WHERE id = $1").bind(id).execute(&mut *tx).await?;
                    changes.removed += 1;
                }
            }
        }
        // Only a change to what blocks makes every node reload; vulnerability records are read
        // where they are shown (their projects' pages are dropped through the journal).
        if blocking {
            bump(&mut tx).await?;
        }
        sqlx::query("UPDATE feeds SET started_at = NULL WHERE name = $1").bind(source).execute(&mut *tx).await?;
        tx.commit().await?;
        changes.blocking = blocking;
        names.sort();
        names.dedup();
        hashes.sort();
        hashes.dedup();
        changes.names = names;
        changes.hashes = hashes;
        Ok(changes)
    }

    /// The `modified` time of each record `source` holds (for an incremental sync).
    pub async fn feed_modified(&self, source: &str) -> Result<HashMap<String, String>, StoreError> {
        Ok(sqlx::query("SELECT osv_id, modified FROM advisories WHERE source = $1")
            .bind(source)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Records a feed's sync.
    pub async fn record_feed_sync(&self, name: &str, records: i64, skipped: i64, error: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO feeds (name, synced_at, records, skipped, last_error) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET synced_at = $2, records = $3, skipped = $4, last_error = $5",
        )
        .bind(name)
        .bind(now_micros())
        .bind(records)
        .bind(skipped)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records why a feed's sync was not applied, keeping what its last sync found.
    pub async fn record_feed_problem(&self, name: &str, error: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO feeds (name, synced_at, records, skipped, last_error) VALUES ($1, 0, 0, 0, $2) \
             ON CONFLICT (name) DO UPDATE SET last_error = $2",
        )
        .bind(name)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Each feed's last sync.
    pub async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError> {
        Ok(sqlx::query_as::<_, FeedRow>("SELECT name, synced_at, records, skipped, last_error FROM feeds ORDER BY name")
            .fetch_all(&self.reader)
            .await?)
    }

    /// The records that block: malicious and not withdrawn, from every source.
    pub async fn blocking_advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError> {
        let sql = format!("SELECT {ADVISORY_COLUMNS} FROM advisories WHERE malicious = TRUE AND withdrawn = FALSE ORDER BY osv_id");
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?.iter().map(advisory).collect()
    }

    /// Every record that names `name` (for the JSON API's vulnerabilities), from every source.
    pub async fn advisories_naming(&self, name: &str) -> Result<Vec<StoredAdvisory>, StoreError> {
        let sql = format!(
            "SELECT {ADVISORY_COLUMNS} FROM advisories WHERE id IN (SELECT advisory_id FROM advisory_names WHERE name = $1) ORDER BY osv_id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_all(&self.reader).await?.iter().map(advisory).collect()
    }

    // ---- Palisade's own records ----------------------------------------------------------------

    /// Palisade's own records, newest change first.
    pub async fn local_advisories(&self) -> Result<Vec<StoredAdvisory>, StoreError> {
        let sql = format!("SELECT {ADVISORY_COLUMNS} FROM advisories WHERE source = '' ORDER BY modified_at DESC, osv_id");
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?.iter().map(advisory).collect()
    }

    /// One of Palisade's own records.
    pub async fn local_advisory(&self, osv_id: &str) -> Result<Option<StoredAdvisory>, StoreError> {
        let sql = format!("SELECT {ADVISORY_COLUMNS} FROM advisories WHERE source = '' AND osv_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(osv_id).fetch_optional(&self.reader).await?.as_ref().map(advisory).transpose()
    }

    /// Palisade's own records that name `name` or list the file `sha256`.
    pub async fn local_advisories_about(&self, name: &str, sha256: Option<&str>) -> Result<Vec<StoredAdvisory>, StoreError> {
        let sql = format!(
            "SELECT {ADVISORY_COLUMNS} FROM advisories WHERE source = '' AND (id IN (SELECT advisory_id FROM advisory_names WHERE name = $1) \
             OR id IN (SELECT advisory_id FROM advisory_hashes WHERE sha256 = $2)) ORDER BY local_n"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(sha256.unwrap_or(""))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(advisory)
            .collect()
    }

    /// Changes Palisade's own records in one write transaction: `change` gets those that name
    /// `project` or list the file `sha256`, as they are under the write lock, and the number a
    /// new record would take, and returns the records to write (changed or new, the new one
    /// with that number). So two decisions at once never both start a record for one release,
    /// nor lose each other's files. Returns what was written.
    pub async fn change_local_advisories(
        &self,
        project: &str,
        sha256: Option<&str>,
        actor: &str,
        change: impl FnOnce(Vec<StoredAdvisory>, i64) -> Vec<NewAdvisory>,
    ) -> Result<Vec<NewAdvisory>, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT {ADVISORY_COLUMNS} FROM advisories WHERE source = '' AND (id IN (SELECT advisory_id FROM advisory_names WHERE name = $1) \
             OR id IN (SELECT advisory_id FROM advisory_hashes WHERE sha256 = $2)) ORDER BY local_n"
        );
        let current: Vec<StoredAdvisory> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(project)
            .bind(sha256.unwrap_or(""))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(advisory)
            .collect::<Result<_, _>>()?;
        let n: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(local_n), 0) + 1 FROM advisories").fetch_one(&mut *tx).await?;
        let known: std::collections::HashSet<String> = current.iter().map(|a| a.osv_id.clone()).collect();
        let written = change(current, n);
        let mut any = false;
        for a in &written {
            let local_n = (!known.contains(&a.osv_id)).then_some(n);
            if upsert(&mut tx, "", a, local_n).await?.is_some() {
                any = true;
                if let Ok(p) = project_in(&mut tx, project).await {
                    let what = if a.withdrawn {
                        "withdraw"
                    } else if local_n.is_some() {
                        "record"
                    } else {
                        "update"
                    };
                    journal(&mut tx, &p, &format!("osv {what} {}", a.osv_id), actor).await?;
                }
            }
        }
        if any {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Drops every record of a feed (one no longer configured); returns how many went.
    pub async fn forget_feed(&self, source: &str) -> Result<u64, StoreError> {
        if source.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM advisories WHERE source = $1").bind(source).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM feeds WHERE name = $1").bind(source).execute(&mut *tx).await?;
        if n > 0 {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The feeds that have records stored, with how many.
    pub async fn feed_sources(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query("SELECT source, COUNT(*) FROM advisories WHERE source <> '' GROUP BY source ORDER BY source")
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Projects that have a file with one of these digests (blocked by hash, under any name).
    pub async fn projects_with_files(&self, sha256s: &[String]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for chunk in sha256s.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT DISTINCT p.normalized FROM files f JOIN projects p ON p.id = f.project_id WHERE f.sha256 IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for h in chunk {
                q = q.bind(h);
            }
            out.extend(q.fetch_all(&self.reader).await?.into_iter().map(|r| r.get::<String, _>(0)));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    // ---- waivers and notices -------------------------------------------------------------------

    /// Every waiver.
    pub async fn waivers(&self) -> Result<Vec<Waiver>, StoreError> {
        Ok(sqlx::query_as::<_, Waiver>(
            "SELECT p.normalized AS project, w.osv_id, w.reason, w.actor, w.created_at FROM advisory_waivers w JOIN projects p ON p.id = w.project_id ORDER BY p.normalized, w.osv_id",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    /// Waives `osv_id` for `project` (with a reason), or lifts the waiver (`None`). Returns
    /// whether anything changed.
    pub async fn set_waiver(&self, project: &str, osv_id: &str, reason: Option<&str>, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let p = project_in(&mut tx, project).await?;
        let changed = match reason {
            Some(reason) => {
                sqlx::query(
                    "INSERT INTO advisory_waivers (project_id, osv_id, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (project_id, osv_id) DO UPDATE SET reason = $3, actor = $4, created_at = $5",
                )
                .bind(p.id)
                .bind(osv_id)
                .bind(reason)
                .bind(actor)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0
            }
            None => {
                sqlx::query("DELETE FROM advisory_waivers WHERE project_id = $1 AND osv_id = $2")
                    .bind(p.id)
                    .bind(osv_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
            }
        };
        if changed {
            let what = if reason.is_some() { "waive" } else { "unwaive" };
            journal(&mut tx, &p, &format!("osv {what} {osv_id}"), actor).await?;
            super::tlog::append(&mut tx, &[what, &p.normalized, osv_id, "by", &super::tlog::actor(actor)], None, None).await?;
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Notes that the owners of `project` were told of `osv_id`; `false` if they already were.
    pub async fn note_advisory_notice(&self, project_id: i64, osv_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO advisory_notices (project_id, osv_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (project_id, osv_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(osv_id)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Writes a journal entry for `project` (a feed's record now blocks or no longer blocks one
    /// of its releases), so every node's index pages and mirrors see the change.
    pub async fn journal_advisory(&self, project: &str, action: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if let Ok(p) = project_in(&mut tx, project).await {
            journal(&mut tx, &p, action, actor).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- reports -------------------------------------------------------------------------------

    /// Stores a report.
    pub async fn add_observation(&self, o: &NewObservation) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO observations (project_id, version, kind, summary, inspector_url, reporter_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(o.project_id)
        .bind(&o.version)
        .bind(&o.kind)
        .bind(&o.summary)
        .bind(&o.inspector_url)
        .bind(o.reporter_id)
        .bind(now_micros())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// Reports, newest first: of one project, or all.
    pub async fn observations(&self, project: Option<&str>) -> Result<Vec<Observation>, StoreError> {
        Ok(sqlx::query_as::<_, Observation>(
            "SELECT o.id, p.normalized AS project, o.version, o.kind, o.summary, o.inspector_url, u.name AS reporter, u.id AS reporter_id, \
             u.trusted_reporter AS trusted, o.created_at, o.action, o.outcome \
             FROM observations o JOIN projects p ON p.id = o.project_id JOIN users u ON u.id = o.reporter_id \
             WHERE ($1 IS NULL OR p.normalized = $2) ORDER BY o.id DESC",
        )
        .bind(project)
        .bind(project)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Records what Palisade did on the reports of `project` not yet acted on.
    pub async fn set_observations_action(&self, project_id: i64, action: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE observations SET action = $1 WHERE project_id = $2 AND action IS NULL AND kind = 'is_malware'")
            .bind(action)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an administrator's decision on the open malware reports of `project` (of
    /// `version`, or of the whole project): `confirmed` or `released`, for reporter accuracy.
    pub async fn set_observations_outcome(&self, project_id: i64, version: Option<&str>, outcome: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE observations SET outcome = $1 WHERE project_id = $2 AND outcome IS NULL AND kind = 'is_malware' AND (version IS NULL OR $3 IS NULL OR version = $4)",
        )
        .bind(outcome)
        .bind(project_id)
        .bind(version)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// How many reports `reporter_id` filed since `since` (microseconds).
    pub async fn reports_since(&self, reporter_id: i64, since: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM observations WHERE reporter_id = $1 AND created_at >= $2")
            .bind(reporter_id)
            .bind(since)
            .fetch_one(&self.reader)
            .await?)
    }

    /// Marks a user as a trusted reporter, or not; `false` if there is no such user.
    pub async fn set_trusted_reporter(&self, user: &str, trusted: bool) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE users SET trusted_reporter = $1 WHERE name = $2")
            .bind(trusted)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Whether the user is a trusted reporter.
    pub async fn is_trusted_reporter(&self, user_id: i64) -> Result<bool, StoreError> {
        let v: Option<Flag> =
            sqlx::query_scalar("SELECT trusted_reporter FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.reader).await?;
        Ok(v.is_some_and(bool::from))
    }

    /// A reporter's malware reports by outcome: (confirmed, released, undecided).
    pub async fn reporter_accuracy(&self, user_id: i64) -> Result<(i64, i64, i64), StoreError> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN outcome = 'confirmed' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN outcome = 'released' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN outcome IS NULL THEN 1 ELSE 0 END), 0) FROM observations WHERE reporter_id = $1 AND kind = 'is_malware'",
        )
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }
}
