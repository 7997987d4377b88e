//! The pull-through mirror's tables: upstream pages as kept (`mirror_pages`), upstream files
//! fetched and scanned (`mirror_files`, whose bytes are blobs like any uploaded file's), PEP 658
//! metadata (`mirror_metadata`), cooldown exemptions and the hosted projects whose names exist
//! upstream (`mirror_shadows`). Nothing here decides anything: palisade-core's `mirror` does.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::models::Flag;
use crate::{StoreError, StoredBlob};

/// An upstream's answer about one project, as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorPage {
    /// PEP 503 normalized.
    pub project: String,
    /// The upstream's configured name.
    pub upstream: String,
    /// Palisade's form of the page (JSON; palisade-core's `mirror::page`).
    pub body: String,
    pub etag: Option<String>,
    /// No upstream has the name (remembered for `mirror.negative`).
    pub missing: bool,
    /// When upstream last answered with the page (micros).
    pub fetched_at: i64,
    /// When upstream was last asked (micros).
    pub checked_at: i64,
    /// Why the last refresh failed, while the page is served stale.
    pub error: Option<String>,
}

/// An upstream file fetched, checked and scanned.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorFile {
    pub filename: String,
    pub project: String,
    pub version: String,
    pub upstream: String,
    pub sha256: String,
    pub size: i64,
    /// `published`, `quarantined` or `malicious`.
    pub status: String,
    /// Why it is held or blocked (the scanner's findings, or an administrator's note).
    pub reason: String,
    /// The scan report (JSON).
    pub report: String,
    /// The upstream's PEP 740 provenance object, kept only when every attestation verified.
    pub provenance: Option<String>,
    pub provenance_error: Option<String>,
    pub fetched_at: i64,
    /// Who last decided its status by hand.
    pub decided_by: Option<String>,
}

/// A fetched file's verdict, without its report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorVerdict {
    pub filename: String,
    pub version: String,
    pub status: String,
    pub reason: String,
    /// Whether verified provenance is kept.
    pub provenance: bool,
}

/// A cooldown exemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemption {
    pub id: i64,
    pub project: String,
    pub until_at: i64,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

/// A hosted project whose name exists upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadow {
    pub project: String,
    pub upstream: String,
    pub found_at: i64,
}

/// What the mirror holds, for `palisade mirror status` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    pub pages: i64,
    pub page_bytes: i64,
    /// Names remembered as missing upstream.
    pub missing: i64,
    /// Pages whose last refresh failed (served stale).
    pub stale: i64,
    /// When the least recently fetched page was fetched (micros; 0 with no page).
    pub oldest_fetch: i64,
    /// Files by status: (status, count, bytes).
    pub files: Vec<(String, i64, i64)>,
}

const PAGE_COLUMNS: &str = "project, upstream, body, etag, missing, fetched_at, checked_at, error";
const FILE_COLUMNS: &str =
    "filename, project, version, upstream, sha256, size, status, reason, report, provenance, provenance_error, fetched_at, decided_by";

fn page(r: &AnyRow) -> Result<MirrorPage, sqlx::Error> {
    Ok(MirrorPage {
        project: r.try_get(0)?,
        upstream: r.try_get(1)?,
        body: r.try_get(2)?,
        etag: r.try_get(3)?,
        missing: r.try_get::<Flag, _>(4)?.into(),
        fetched_at: r.try_get(5)?,
        checked_at: r.try_get(6)?,
        error: r.try_get(7)?,
    })
}

fn file(r: &AnyRow) -> Result<MirrorFile, sqlx::Error> {
    Ok(MirrorFile {
        filename: r.try_get(0)?,
        project: r.try_get(1)?,
        version: r.try_get(2)?,
        upstream: r.try_get(3)?,
        sha256: r.try_get(4)?,
        size: r.try_get(5)?,
        status: r.try_get(6)?,
        reason: r.try_get(7)?,
        report: r.try_get(8)?,
        provenance: r.try_get(9)?,
        provenance_error: r.try_get(10)?,
        fetched_at: r.try_get(11)?,
        decided_by: r.try_get(12)?,
    })
}

impl Db {
    pub async fn mirror_page(&self, project: &str) -> Result<Option<MirrorPage>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PAGE_COLUMNS} FROM mirror_pages WHERE project = $1")))
            .bind(project)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(page).transpose()?)
    }

    /// The kept page of `project` without its body (`body` is empty): enough to tell whether it
    /// is fresh, and which version of it a parsed copy is.
    pub async fn mirror_page_head(&self, project: &str) -> Result<Option<MirrorPage>, StoreError> {
        let row =
            sqlx::query("SELECT project, upstream, '', etag, missing, fetched_at, checked_at, error FROM mirror_pages WHERE project = $1")
                .bind(project)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.as_ref().map(page).transpose()?)
    }

    /// The verdicts on a project's fetched files (no reports): what the index needs per request.
    pub async fn mirror_verdicts(&self, project: &str) -> Result<Vec<MirrorVerdict>, StoreError> {
        let rows = sqlx::query(
            "SELECT filename, version, status, reason, CASE WHEN provenance IS NULL THEN 0 ELSE 1 END FROM mirror_files WHERE project = $1",
        )
        .bind(project)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MirrorVerdict {
                    filename: r.try_get(0)?,
                    version: r.try_get(1)?,
                    status: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    provenance: r.try_get::<i64, _>(4)? == 1,
                })
            })
            .collect()
    }

    /// Every kept page (not the names remembered as missing), by name.
    pub async fn mirror_pages_kept(&self) -> Result<Vec<MirrorPage>, StoreError> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PAGE_COLUMNS} FROM mirror_pages WHERE missing = FALSE ORDER BY project")))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(page).collect::<Result<_, _>>()?)
    }

    /// Stores an upstream's answer (replacing the last), drops the "missing upstream" rows
    /// checked before `forget_missing_before` (expired: asked again anyway), then the pages
    /// checked longest ago while the kept pages add up to more than `cache_bytes`.
    pub async fn put_mirror_page(&self, p: &MirrorPage, cache_bytes: i64, forget_missing_before: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM mirror_pages WHERE missing = TRUE AND checked_at < $1 AND project <> $2")
            .bind(forget_missing_before)
            .bind(&p.project)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO mirror_pages (project, upstream, body, etag, missing, size, fetched_at, checked_at, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (project) DO UPDATE SET upstream = excluded.upstream, \
             body = excluded.body, etag = excluded.etag, missing = excluded.missing, size = excluded.size, \
             fetched_at = excluded.fetched_at, checked_at = excluded.checked_at, error = excluded.error",
        )
        .bind(&p.project)
        .bind(&p.upstream)
        .bind(&p.body)
        .bind(&p.etag)
        .bind(p.missing)
        .bind(p.body.len() as i64)
        .bind(p.fetched_at)
        .bind(p.checked_at)
        .bind(&p.error)
        .execute(&mut *tx)
        .await?;
        let total: i64 =
            sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM mirror_pages").fetch_one(&mut *tx).await?.try_get(0)?;
        if total > cache_bytes {
            let rows = sqlx::query("SELECT project, size FROM mirror_pages WHERE project <> $1 ORDER BY checked_at, project")
                .bind(&p.project)
                .fetch_all(&mut *tx)
                .await?;
            let mut over = total - cache_bytes;
            for r in rows {
                if over <= 0 {
                    break;
                }
                let (project, size): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
                sqlx::query("DELETE FROM mirror_pages WHERE project = $1").bind(&project).execute(&mut *tx).await?;
                over -= size.max(1);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that upstream was asked about `project` at `at`: unchanged (`error` None; a 304),
    /// or failed (the page stays, served stale).
    pub async fn mirror_page_checked(&self, project: &str, at: i64, error: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE mirror_pages SET checked_at = $1, error = $2 WHERE project = $3")
            .bind(at)
            .bind(error)
            .bind(project)
            .execute(&mut *tx)
            .await?;
        if error.is_none() {
            sqlx::query("UPDATE mirror_pages SET fetched_at = $1 WHERE project = $2").bind(at).bind(project).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn mirror_file(&self, filename: &str) -> Result<Option<MirrorFile>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLUMNS} FROM mirror_files WHERE filename = $1")))
            .bind(filename)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(file).transpose()?)
    }

    /// Every fetched file of a project.
    pub async fn mirror_project_files(&self, project: &str) -> Result<Vec<MirrorFile>, StoreError> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLUMNS} FROM mirror_files WHERE project = $1 ORDER BY filename")))
                .bind(project)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(file).collect::<Result<_, _>>()?)
    }

    /// Fetched files that are held or blocked, newest first.
    pub async fn mirror_files_not_published(&self) -> Result<Vec<MirrorFile>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FILE_COLUMNS} FROM mirror_files WHERE status <> 'published' ORDER BY fetched_at DESC"
        )))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(file).collect::<Result<_, _>>()?)
    }

    /// Records a fetched file whose blob is stored, making sure inside the transaction that the
    /// blob is in place (a sweep cannot have taken it). The first record of a filename wins:
    /// the row stored is returned.
    pub async fn record_mirror_file(&self, f: &MirrorFile, blob: &StoredBlob) -> Result<MirrorFile, StoreError> {
        if blob.sha256() != f.sha256 {
            let e = std::io::Error::other(format!("the stored blob is not the bytes of {:?}", f.filename));
            return Err(StoreError::io(std::path::Path::new(blob.sha256()), e));
        }
        let mut tx = self.begin().await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLUMNS} FROM mirror_files WHERE filename = $1")))
            .bind(&f.filename)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = existing {
            tx.commit().await?;
            return Ok(file(&row)?);
        }
        blob.ensure_in_place().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mirror_files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(&f.filename)
        .bind(&f.project)
        .bind(&f.version)
        .bind(&f.upstream)
        .bind(&f.sha256)
        .bind(f.size)
        .bind(&f.status)
        .bind(&f.reason)
        .bind(&f.report)
        .bind(&f.provenance)
        .bind(&f.provenance_error)
        .bind(f.fetched_at)
        .bind(&f.decided_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(f.clone())
    }

    /// An administrator's decision on a fetched file: `published` (released) or `malicious`.
    pub async fn decide_mirror_file(&self, filename: &str, status: &str, reason: &str, actor: &str) -> Result<MirrorFile, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE mirror_files SET status = $1, reason = $2, decided_by = $3 WHERE filename = $4")
            .bind(status)
            .bind(reason)
            .bind(actor)
            .bind(filename)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("mirrored file {filename:?}")));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {FILE_COLUMNS} FROM mirror_files WHERE filename = $1")))
            .bind(filename)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(file(&row)?)
    }

    /// The PEP 658 metadata kept for an upstream file: (its sha256, the bytes).
    pub async fn mirror_metadata(&self, filename: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row =
            sqlx::query("SELECT sha256, data FROM mirror_metadata WHERE filename = $1").bind(filename).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Keeps the metadata of an upstream file: replacing what is kept with `replace`, else only
    /// if none is.
    pub async fn put_mirror_metadata(&self, filename: &str, sha256: &str, data: &[u8], at: i64, replace: bool) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(if replace {
            "INSERT INTO mirror_metadata (filename, sha256, data, fetched_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (filename) DO UPDATE SET sha256 = excluded.sha256, data = excluded.data, fetched_at = excluded.fetched_at"
        } else {
            "INSERT INTO mirror_metadata (filename, sha256, data, fetched_at) VALUES ($1, $2, $3, $4) ON CONFLICT (filename) DO NOTHING"
        })
        .bind(filename)
        .bind(sha256)
        .bind(data)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_exemption(&self, project: &str, until_at: i64, reason: &str, actor: &str, at: i64) -> Result<Exemption, StoreError> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO mirror_exemptions (project, until_at, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(project)
        .bind(until_at)
        .bind(reason)
        .bind(actor)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(Exemption { id, project: project.into(), until_at, reason: reason.into(), actor: actor.into(), created_at: at })
    }

    /// The exemptions that have not expired at `now` (of one project, or all), soonest to end last.
    pub async fn exemptions(&self, project: Option<&str>, now: i64) -> Result<Vec<Exemption>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, project, until_at, reason, actor, created_at FROM mirror_exemptions \
             WHERE until_at > $1 AND ($2 IS NULL OR project = $2) ORDER BY project, until_at",
        )
        .bind(now)
        .bind(project)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Exemption {
                    id: r.try_get(0)?,
                    project: r.try_get(1)?,
                    until_at: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn put_shadow(&self, project: &str, upstream: &str, at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO mirror_shadows (project, upstream, found_at) VALUES ($1, $2, $3) ON CONFLICT (project) DO NOTHING")
            .bind(project)
            .bind(upstream)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The hosted projects whose names exist upstream (of one project, or all).
    pub async fn shadows(&self, project: Option<&str>) -> Result<Vec<Shadow>, StoreError> {
        let rows =
            sqlx::query("SELECT project, upstream, found_at FROM mirror_shadows WHERE ($1 IS NULL OR project = $1) ORDER BY project")
                .bind(project)
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(|r| Ok(Shadow { project: r.try_get(0)?, upstream: r.try_get(1)?, found_at: r.try_get(2)? })).collect()
    }

    pub async fn mirror_stats(&self) -> Result<MirrorStats, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT), COALESCE(SUM(CASE WHEN missing THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END), 0), COALESCE(MIN(CASE WHEN missing THEN NULL ELSE fetched_at END), 0) \
             FROM mirror_pages",
        )
        .fetch_one(&self.reader)
        .await?;
        let files = sqlx::query(
            "SELECT status, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM mirror_files GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|f| Ok((f.try_get(0)?, f.try_get(1)?, f.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        Ok(MirrorStats {
            pages: r.try_get(0)?,
            page_bytes: r.try_get(1)?,
            missing: r.try_get(2)?,
            stale: r.try_get(3)?,
            oldest_fetch: r.try_get(4)?,
            files,
        })
    }
}
