//! Copying a whole database into an empty one (`palisade migrate`): every table, every row, ids
//! kept, from a snapshot no writer can change while it is read, into a target of either engine.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, Engine};
use crate::StoreError;
use crate::models::Flag;

/// How a column is read and written: the types the schema uses.
#[derive(Clone, Copy)]
enum Ty {
    Int,
    Text,
    Bool,
    Real,
    Bytes,
}

use Ty::*;

/// Every table, parents before children, with its columns. A test checks this against the
/// schema, so a migration that adds a column or table must add it here too.
const TABLES: &[(&str, &[(&str, Ty)])] = &[
    (
        "users",
        &[
            ("id", Int),
            ("name", Text),
            ("is_admin", Bool),
            ("created_at", Int),
            ("email", Text),
            ("email_verified_at", Int),
            ("password_hash", Text),
            ("password_changed_at", Int),
            ("disabled_at", Int),
            ("trusted_reporter", Bool),
            ("webauthn_handle", Text),
        ],
    ),
    (
        "projects",
        &[
            ("id", Int),
            ("name", Text),
            ("normalized", Text),
            ("created_at", Int),
            ("last_serial", Int),
            ("status", Text),
            ("status_reason", Text),
            ("require_attestations", Bool),
            ("critical", Bool),
        ],
    ),
    ("roles", &[("project_id", Int), ("user_id", Int), ("role", Text)]),
    (
        "releases",
        &[
            ("id", Int),
            ("project_id", Int),
            ("version", Text),
            ("canonical_version", Text),
            ("created_at", Int),
            ("metadata", Text),
            ("requires_python", Text),
        ],
    ),
    (
        "publishers",
        &[
            ("id", Int),
            ("project_id", Int),
            ("pending_name", Text),
            ("issuer", Text),
            ("spec", Text),
            ("created_by", Int),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "files",
        &[
            ("id", Int),
            ("release_id", Int),
            ("project_id", Int),
            ("filename", Text),
            ("packagetype", Text),
            ("python_version", Text),
            ("size", Int),
            ("sha256", Text),
            ("blake2b_256", Text),
            ("md5", Text),
            ("upload_time", Int),
            ("requires_python", Text),
            ("core_metadata", Bytes),
            ("metadata_sha256", Text),
            ("yanked", Bool),
            ("yanked_reason", Text),
            ("uploader_id", Int),
            ("status", Text),
            ("publisher_id", Int),
            ("confirmed", Bool),
        ],
    ),
    ("filenames", &[("filename", Text), ("project_id", Int), ("sha256", Text), ("created_at", Int), ("identity", Text)]),
    ("journal", &[("serial", Int), ("project_id", Int), ("project", Text), ("action", Text), ("actor", Text), ("at", Int)]),
    (
        "scan_reports",
        &[
            ("id", Int),
            ("filename", Text),
            ("project", Text),
            ("sha256", Text),
            ("verdict", Text),
            ("score", Real),
            ("report", Text),
            ("outcome", Text),
            ("trigger", Text),
            ("actor", Text),
            ("created_at", Int),
            ("decision", Text),
            ("decided_by", Text),
            ("decided_at", Int),
            ("note", Text),
        ],
    ),
    (
        "second_factors",
        &[
            ("id", Int),
            ("user_id", Int),
            ("kind", Text),
            ("name", Text),
            ("secret", Bytes),
            ("credential", Text),
            ("created_at", Int),
            ("confirmed_at", Int),
            ("last_used_step", Int),
            ("last_used_at", Int),
            ("credential_id", Text),
            ("passkey", Bool),
        ],
    ),
    ("recovery_codes", &[("id", Int), ("user_id", Int), ("hash", Text), ("created_at", Int), ("used_at", Int)]),
    (
        "sessions",
        &[
            ("id", Int),
            ("user_id", Int),
            ("hash", Text),
            ("stage", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("last_seen_at", Int),
            ("addr", Text),
            ("user_agent", Text),
            ("revoked_at", Int),
            ("method", Text),
        ],
    ),
    ("webauthn_ceremonies", &[("id", Text), ("user_id", Int), ("purpose", Text), ("bound", Text), ("state", Text), ("expires_at", Int)]),
    (
        "email_tokens",
        &[("hash", Text), ("user_id", Int), ("purpose", Text), ("email", Text), ("created_at", Int), ("expires_at", Int), ("used_at", Int)],
    ),
    ("oidc_jtis", &[("issuer", Text), ("jti", Text), ("expires_at", Int)]),
    (
        "tokens",
        &[
            ("id", Int),
            ("user_id", Int),
            ("publisher_id", Int),
            ("hash", Text),
            ("hint", Text),
            ("projects", Text),
            ("actions", Text),
            ("description", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("revoked_reason", Text),
            ("last_used_at", Int),
            ("last_used_addr", Text),
        ],
    ),
    ("token_publishers", &[("token_id", Int), ("publisher_id", Int)]),
    (
        "events",
        &[
            ("id", Int),
            ("at", Int),
            ("kind", Text),
            ("user_id", Int),
            ("project_id", Int),
            ("actor", Text),
            ("addr", Text),
            ("user_agent", Text),
            ("details", Text),
        ],
    ),
    ("settings", &[("key", Text), ("value", Text)]),
    ("limiter_events", &[("id", Int), ("node", Text), ("limiter", Text), ("op", Text), ("key1", Text), ("key2", Text), ("at", Int)]),
    (
        "jobs",
        &[
            ("id", Int),
            ("kind", Text),
            ("payload", Text),
            ("created_at", Int),
            ("run_at", Int),
            ("attempts", Int),
            ("max_attempts", Int),
            ("locked_by", Text),
            ("locked_until", Int),
            ("last_error", Text),
            ("state", Text),
            ("finished_at", Int),
        ],
    ),
    (
        "attestations",
        &[
            ("id", Int),
            ("file_id", Int),
            ("predicate_type", Text),
            ("publisher", Text),
            ("attestation", Text),
            ("integrated_time", Int),
            ("created_at", Int),
        ],
    ),
    ("log_entries", &[("idx", Int), ("entry", Text), ("filename", Text), ("sha256", Text), ("created_at", Int)]),
    ("log_hashes", &[("idx", Int), ("hash", Text)]),
    ("log_checkpoints", &[("size", Int), ("root", Text), ("note", Text), ("created_at", Int)]),
    (
        "advisories",
        &[
            ("id", Int),
            ("source", Text),
            ("osv_id", Text),
            ("modified", Text),
            ("modified_at", Int),
            ("withdrawn", Bool),
            ("malicious", Bool),
            ("record", Text),
            ("local_n", Int),
            ("created_at", Int),
        ],
    ),
    ("advisory_names", &[("advisory_id", Int), ("name", Text)]),
    ("advisory_hashes", &[("advisory_id", Int), ("sha256", Text)]),
    ("advisory_waivers", &[("project_id", Int), ("osv_id", Text), ("reason", Text), ("actor", Text), ("created_at", Int)]),
    ("advisory_notices", &[("project_id", Int), ("osv_id", Text), ("created_at", Int)]),
    ("feeds", &[("name", Text), ("synced_at", Int), ("records", Int), ("skipped", Int), ("last_error", Text), ("started_at", Int)]),
    (
        "observations",
        &[
            ("id", Int),
            ("project_id", Int),
            ("version", Text),
            ("kind", Text),
            ("summary", Text),
            ("inspector_url", Text),
            ("reporter_id", Int),
            ("created_at", Int),
            ("action", Text),
            ("outcome", Text),
        ],
    ),
    (
        "mirror_pages",
        &[
            ("project", Text),
            ("upstream", Text),
            ("body", Text),
            ("etag", Text),
            ("missing", Bool),
            ("size", Int),
            ("fetched_at", Int),
            ("checked_at", Int),
            ("error", Text),
        ],
    ),
    (
        "mirror_files",
        &[
            ("filename", Text),
            ("project", Text),
            ("version", Text),
            ("upstream", Text),
            ("sha256", Text),
            ("size", Int),
            ("status", Text),
            ("reason", Text),
            ("report", Text),
            ("provenance", Text),
            ("provenance_error", Text),
            ("fetched_at", Int),
            ("decided_by", Text),
        ],
    ),
    ("mirror_metadata", &[("filename", Text), ("sha256", Text), ("data", Bytes), ("fetched_at", Int)]),
    ("mirror_exemptions", &[("id", Int), ("project", Text), ("until_at", Int), ("reason", Text), ("actor", Text), ("created_at", Int)]),
    ("mirror_shadows", &[("project", Text), ("upstream", Text), ("found_at", Int)]),
];

/// The tables whose first column is an identity (PostgreSQL's sequences must move past the copied
/// ids, or the next insert would collide).
const IDENTITY_TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("projects", "id"),
    ("releases", "id"),
    ("publishers", "id"),
    ("files", "id"),
    ("journal", "serial"),
    ("scan_reports", "id"),
    ("second_factors", "id"),
    ("recovery_codes", "id"),
    ("sessions", "id"),
    ("tokens", "id"),
    ("events", "id"),
    ("advisories", "id"),
    ("observations", "id"),
    ("jobs", "id"),
    ("limiter_events", "id"),
    ("attestations", "id"),
    ("mirror_exemptions", "id"),
];

/// Rows per `SELECT` while copying.
const BATCH: i64 = 1000;

/// How many rows each table holds, in copy order.
pub type Counts = Vec<(&'static str, i64)>;

impl Db {
    /// Whether every table is empty (a target for [`Db::copy_into`]).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        for (table, _) in TABLES {
            // `settings` holds this database's instance id once anything asked for it.
            if *table == "settings" {
                continue;
            }
            let sql = format!("SELECT 1 FROM {table} LIMIT 1");
            if sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&self.reader).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The digests of every stored file (published or held, uploaded or mirrored), each once.
    pub async fn file_digests(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT sha256 FROM files UNION SELECT sha256 FROM mirror_files ORDER BY sha256")
            .fetch_all(&self.reader)
            .await?)
    }

    /// Row counts of every table.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let mut out = Vec::new();
        for (table, _) in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            out.push((*table, sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(&self.reader).await?));
        }
        Ok(out)
    }

    /// Copies every row of this database into `target`, which must be empty, ids included (the
    /// instance id too: the caller renews it once the blobs are handed over). Writes to this
    /// database that need the write lock wait until the copy is over, and it reads one snapshot
    /// throughout (a write transaction on SQLite, REPEATABLE READ on PostgreSQL). `progress` hears each table and how many rows it copied.
    /// Returns the row counts, read from the snapshot.
    pub async fn copy_into(&self, target: &Db, mut progress: impl FnMut(&str, i64)) -> Result<Counts, StoreError> {
        if !target.is_empty().await? {
            return Err(StoreError::Conflict("the target database is not empty; migrate only into a new, empty database".into()));
        }
        let mut source = self.begin_snapshot().await?;
        let mut counts = Vec::new();
        let mut out = target.begin().await?;
        sqlx::query("DELETE FROM settings").execute(&mut *out).await?;
        for (table, columns) in TABLES {
            let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
            let key = names[0];
            let select = format!("SELECT {} FROM {table} ORDER BY {} LIMIT $1 OFFSET $2", names.join(", "), order_by(table, key));
            let overriding = if target.engine == Engine::Postgres && *table == "journal" { " OVERRIDING SYSTEM VALUE" } else { "" };
            let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = format!("INSERT INTO {table} ({}){overriding} VALUES ({})", names.join(", "), params.join(", "));
            let mut copied = 0i64;
            loop {
                let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone())).bind(BATCH).bind(copied).fetch_all(&mut *source).await?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    insert_row(&mut out, &insert, columns, row).await?;
                }
                copied += rows.len() as i64;
                progress(table, copied);
            }
            counts.push((*table, copied));
        }
        if target.engine == Engine::Postgres {
            for (table, column) in IDENTITY_TABLES {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM ({sql}) s"))).execute(&mut *out).await?;
            }
        }
        out.commit().await?;
        source.rollback().await?;
        Ok(counts)
    }
}

/// Rows in a stable order: by the first column, and for the two-column keys, by both.
fn order_by(table: &str, key: &str) -> String {
    match table {
        "roles" => "project_id, user_id".into(),
        "oidc_jtis" => "issuer, jti".into(),
        "token_publishers" => "token_id, publisher_id".into(),
        _ => key.into(),
    }
}

async fn insert_row(tx: &mut Transaction<'static, Any>, sql: &str, columns: &[(&str, Ty)], row: &AnyRow) -> Result<(), StoreError> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for (i, (_, ty)) in columns.iter().enumerate() {
        q = match ty {
            Int => q.bind(row.try_get::<Option<i64>, _>(i)?),
            Text => q.bind(row.try_get::<Option<String>, _>(i)?),
            Bool => q.bind(row.try_get::<Option<Flag>, _>(i)?.map(bool::from)),
            Real => q.bind(row.try_get::<Option<f64>, _>(i)?),
            Bytes => q.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
        };
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The copy names every column of every table: a migration that adds one must add it here.
    #[tokio::test]
    async fn every_table_and_column_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            // The full-text index (`release_text` and its shadow tables) is not copied: triggers
            // on `releases` fill the target's own.
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' \
             AND name NOT LIKE 'release_text%' ORDER BY name",
        )
        .fetch_all(&db.reader)
        .await
        .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|(t, _)| t.to_string()).collect();
        listed.sort();
        assert_eq!(tables, listed);
        for (table, columns) in TABLES {
            let sql = format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name");
            let actual: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&db.reader).await.unwrap();
            let mut named: Vec<String> = columns.iter().map(|(c, _)| c.to_string()).collect();
            named.sort();
            assert_eq!(actual, named, "columns of {table}");
        }
    }
}
