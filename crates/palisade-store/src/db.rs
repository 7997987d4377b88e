//! The metadata database: SQLite in WAL mode (the embedded default) or PostgreSQL (several nodes),
//! through sqlx's `Any` driver, so that every query is written once, in the SQL both understand
//! (`$N` parameters, `TRUE`/`FALSE`, `ON CONFLICT`, `IS NOT DISTINCT FROM`).
//!
//! Writes are serialised, as the invariants that a check followed by a write relies on need:
//! on SQLite, one writer connection inside this process and SQLite's file lock (with a busy
//! timeout) across processes (the admin CLI); on PostgreSQL, a transaction-scoped advisory lock
//! that every write transaction takes first, across every node. Reads have a pool of their own,
//! so they never wait for a connection behind writers queued for the lock.
//! Unique indexes and checks hold the same rules in both schemas, so a single statement outside
//! a transaction is safe too.

use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::Pool;
use sqlx::{Any, Executor, Row, Transaction};

use crate::models::*;
use crate::{BlobStore, StoreError, StoredBlob};

// Tolerating migrations this build does not know: during a rolling upgrade a newer node may have
// migrated the schema (migrations only add) while older nodes still run and restart.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator { ignore_missing: true, ..sqlx::migrate!("./migrations/sqlite") };
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate::Migrator { ignore_missing: true, ..sqlx::migrate!("./migrations/postgres") };

/// The advisory lock key every PostgreSQL write transaction takes: `palisade` in ASCII.
const WRITE_LOCK: i64 = 0x7061_6c69_7361_6465;
/// How long a PostgreSQL writer waits for the lock before it gives up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Which database engine a [`Db`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    reader: Pool<Any>,
    writer: Pool<Any>,
    engine: Engine,
}

/// Whether `e` is the violation of the unique index `index` (PostgreSQL names it) on `columns`
/// (SQLite names those: `UNIQUE constraint failed: files.release_id`).
pub(crate) fn violates(e: &dyn sqlx::error::DatabaseError, index: &str, columns: &str) -> bool {
    e.is_unique_violation() && (e.constraint() == Some(index) || e.message().contains(columns))
}

/// Whether a blob is referenced: by an uploaded file, or by a file the mirror fetched.
const REFERENCED: &str = "SELECT 1 FROM files WHERE sha256 = $1 UNION ALL SELECT 1 FROM mirror_files WHERE sha256 = $1 LIMIT 1";

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// A file that passed validation and whose blob is already stored.
#[derive(Clone, Debug)]
pub struct NewFile {
    /// The project name as the core metadata spells it (used when the project is created).
    pub project_name: String,
    pub normalized: String,
    pub version: String,
    pub canonical_version: String,
    /// JSON of the core metadata fields, stored on the release the first time it is seen.
    pub metadata_json: String,
    pub requires_python: Option<String>,
    pub filename: String,
    /// What the filename reserves beyond its own spelling, from the file's ecosystem: another
    /// spelling with the same identity names the same file to an installer.
    pub identity: String,
    pub packagetype: String,
    pub python_version: String,
    pub size: i64,
    pub sha256: String,
    pub blake2b_256: String,
    pub md5: String,
    pub core_metadata: Vec<u8>,
    pub metadata_sha256: String,
    /// The uploading user; `None` when a trusted publisher uploads.
    pub uploader_id: Option<i64>,
    /// The trusted publisher whose short-lived token was used.
    pub publisher_id: Option<i64>,
    pub uploader_name: String,
    /// Administrators may upload to any project.
    pub uploader_is_admin: bool,
    /// `published` or `quarantined`.
    pub status: String,
    /// The scanner's report, recorded with the file.
    pub scan: Option<NewScan>,
    /// Verified PEP 740 attestations, stored with the file.
    pub attestations: Vec<NewAttestation>,
    /// Who published, as the transparency log names them: `user:NAME`, or the trusted
    /// publisher's kind and identity, such as `github:OWNER/REPO/WORKFLOW` (see `db/tlog.rs`).
    pub log_actor: String,
}

/// A scan report to record.
#[derive(Clone, Debug)]
pub struct NewScan {
    pub verdict: String,
    pub score: f64,
    pub report_json: String,
    pub outcome: String,
    pub trigger: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The file is now visible; `serial` is the journal entry that announced it.
    Published { serial: i64, created_project: bool },
    /// The same filename with the same sha256 already exists: an idempotent re-upload.
    Identical,
}

pub(crate) const TOKEN_COLUMNS: &str = "t.id, t.user_id, t.publisher_id, COALESCE(u.name, 'publisher:' || t.publisher_id) AS user_name, \
     COALESCE(u.is_admin, FALSE) AS user_is_admin, \
     EXISTS (SELECT 1 FROM second_factors s WHERE s.user_id = t.user_id AND s.confirmed_at IS NOT NULL) AS user_has_2fa, \
     EXISTS (SELECT 1 FROM second_factors s WHERE s.user_id = t.user_id AND s.kind = 'webauthn' AND s.confirmed_at IS NOT NULL) AS user_has_webauthn, \
     (u.email IS NOT NULL AND u.email_verified_at IS NOT NULL) AS user_email_verified, (u.disabled_at IS NOT NULL) AS user_disabled, \
     t.hint, t.projects, t.actions, t.description, t.created_at, t.expires_at, t.revoked_at, t.revoked_reason, t.last_used_at, t.last_used_addr";
pub(crate) const TOKEN_FROM: &str = "tokens t LEFT JOIN users u ON u.id = t.user_id";
pub(crate) const USER_COLUMNS: &str = "u.id, u.name, u.is_admin, u.created_at, u.email, u.email_verified_at, u.disabled_at, \
     EXISTS (SELECT 1 FROM second_factors s WHERE s.user_id = u.id AND s.confirmed_at IS NOT NULL) AS has_2fa, \
     (u.password_hash IS NOT NULL) AS has_password, \
     EXISTS (SELECT 1 FROM second_factors s WHERE s.user_id = u.id AND s.kind = 'webauthn' AND s.confirmed_at IS NOT NULL) AS has_webauthn";
/// Roles with their project's and user's names (`RoleRow`), to be filtered.
const ROLE_ROWS: &str = "SELECT p.normalized AS project, u.name AS user_name, r.role FROM roles r JOIN projects p ON p.id = r.project_id JOIN users u ON u.id = r.user_id";
const PROJECT_COLUMNS: &str = "id, name, normalized, created_at, last_serial, status, status_reason, require_attestations, critical";
const REPORT_COLUMNS: &str =
    "id, filename, project, sha256, verdict, score, report, outcome, trigger, actor, created_at, decision, decided_by, decided_at, note";
const FILE_COLUMNS: &str = "f.id, f.release_id, f.project_id, r.version, f.filename, f.packagetype, f.python_version, f.size, f.sha256, f.blake2b_256, f.md5, f.upload_time, f.requires_python, f.metadata_sha256, f.yanked, f.yanked_reason, p.status AS project_status, CASE WHEN f.confirmed THEN 'malicious' ELSE f.status END AS status, p.normalized AS project, EXISTS (SELECT 1 FROM attestations a WHERE a.file_id = f.id) AS has_provenance";

impl Db {
    /// Opens (creating) `palisade.db` in `data_dir` and applies migrations: the embedded default.
    pub async fn open(data_dir: &std::path::Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        Self::connect(&sqlite_url(&data_dir.join("palisade.db"))?, 4).await
    }

    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and applies the migrations.
    /// `pool_size` is the number of connections for reads; writes have their own (one on
    /// SQLite, half as many, at least two, on PostgreSQL).
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let pool_size = pool_size.max(1);
        let db = if url.starts_with("sqlite:") {
            let (path, _) = url.split_once('?').unwrap_or((url, ""));
            let writer = AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL is a property of the file, set once by the writer; FULL: a commit is
                        // on disk before the client hears "200 OK".
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_with(format!("{path}?mode=rwc").parse::<AnyConnectOptions>()?)
                .await?;
            SQLITE_MIGRATOR.run(&writer).await?;
            let reader = AnyPoolOptions::new()
                .max_connections(pool_size)
                .min_connections(1)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON").await?;
                        Ok(())
                    })
                })
                .connect_with(format!("{path}?mode=ro").parse::<AnyConnectOptions>()?)
                .await?;
            Self { reader, writer, engine: Engine::Sqlite }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Two pools, as on SQLite: writers queue for the advisory lock holding a connection, and
            // must not take every connection reads need (index pages, tokens, `/healthz`).
            let options = url.parse::<AnyConnectOptions>()?;
            let pool = |size: u32| AnyPoolOptions::new().max_connections(size).acquire_timeout(Duration::from_secs(10));
            let writer = pool(pool_size.div_ceil(2).max(2)).connect_with(options.clone()).await?;
            POSTGRES_MIGRATOR.run(&writer).await?;
            let reader = pool(pool_size).connect_with(options).await?;
            Self { reader, writer, engine: Engine::Postgres }
        } else {
            return Err(StoreError::Conflict(format!(
                "database.url must start with sqlite:// or postgres://, not {:?}",
                url.split(':').next().unwrap_or_default()
            )));
        };
        db.backfill_identities().await?;
        Ok(db)
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Computes the identity of reserved filenames that have none (written before migration 0004).
    /// Idempotent and crash-safe: each batch commits on its own and only touches rows still
    /// without one, so an interrupted run, or two processes opening the database at once, simply
    /// continue. When old rows collide, the earliest keeps the identity.
    async fn backfill_identities(&self) -> Result<(), StoreError> {
        loop {
            let mut tx = self.begin().await?;
            let rows = sqlx::query("SELECT filename FROM filenames WHERE identity IS NULL ORDER BY created_at, filename LIMIT 500")
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                return Ok(());
            }
            for row in rows {
                let filename: String = row.get(0);
                let identity = match identity_of(&filename) {
                    Some(identity) => {
                        let holder = sqlx::query("SELECT filename FROM filenames WHERE identity = $1")
                            .bind(&identity)
                            .fetch_optional(&mut *tx)
                            .await?;
                        match holder {
                            None => identity,
                            Some(holder) => {
                                let holder: String = holder.get(0);
                                tracing::warn!(file.filename = %filename, other = %holder, "two reserved filenames name the same file; the earlier one keeps the reservation, review both");
                                format!("{identity}#{filename}")
                            }
                        }
                    }
                    None => {
                        tracing::warn!(file.filename = %filename, "a reserved filename does not parse; it reserves only its own spelling");
                        format!("unparsed#{filename}")
                    }
                };
                sqlx::query("UPDATE filenames SET identity = $1 WHERE filename = $2 AND identity IS NULL")
                    .bind(identity)
                    .bind(&filename)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }

    /// This database's instance id: random, drawn the first time it is asked for, then fixed.
    pub async fn instance_id(&self) -> Result<String, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| StoreError::Conflict(format!("no randomness for the instance id: {e}")))?;
        sqlx::query("INSERT INTO settings (key, value) VALUES ('instance_id', $1) ON CONFLICT (key) DO NOTHING")
            .bind(hex::encode(id))
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = 'instance_id'").fetch_one(&self.writer).await?)
    }

    /// A write transaction, serialised with every other one (see the module's documentation).
    /// On PostgreSQL: READ COMMITTED whatever the server's default, so that each statement after
    /// the lock sees what the writers before committed; a writer that waits longer than
    /// [`LOCK_WAIT`] for the lock gives up with [`StoreError::Busy`] rather than queueing forever.
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.engine {
            Engine::Sqlite => Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?),
            Engine::Postgres => self.begin_postgres("BEGIN ISOLATION LEVEL READ COMMITTED").await,
        }
    }

    /// A write transaction that reads one snapshot throughout (for copying the whole database):
    /// on PostgreSQL REPEATABLE READ, since writes that need no lock (a new session, an event)
    /// go on meanwhile; SQLite's write transaction already sees only itself.
    pub(crate) async fn begin_snapshot(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.engine {
            Engine::Sqlite => self.begin().await,
            Engine::Postgres => self.begin_postgres("BEGIN ISOLATION LEVEL REPEATABLE READ").await,
        }
    }

    /// Gives this database a new instance id (a copy must not pass for its original: see
    /// `BlobStore::claim`); returns it.
    pub async fn renew_instance_id(&self) -> Result<String, StoreError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| StoreError::Conflict(format!("no randomness for the instance id: {e}")))?;
        let id = hex::encode(id);
        sqlx::query("INSERT INTO settings (key, value) VALUES ('instance_id', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(&id)
            .execute(&self.writer)
            .await?;
        Ok(id)
    }

    async fn begin_postgres(&self, statement: &'static str) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.writer.begin_with(statement).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL lock_timeout = '{}s'", LOCK_WAIT.as_secs()))).execute(&mut *tx).await?;
        match sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await {
            Ok(_) => Ok(tx),
            // lock_not_available: the lock holder is stuck (a storage call that hangs, say).
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => Err(StoreError::Busy),
            Err(e) => Err(e.into()),
        }
    }

    // ---- users -------------------------------------------------------------------------------

    /// Creates a user. `password_hash` is an argon2id PHC string (or `None`: the user cannot log
    /// in until a password is set); `email_verified` is for administrators vouching for an address.
    pub async fn create_user(
        &self,
        name: &str,
        is_admin: bool,
        email: Option<&str>,
        email_verified: bool,
        password_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        let now = now_micros();
        let res = sqlx::query(
            "INSERT INTO users (name, is_admin, created_at, email, email_verified_at, password_hash, password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(name)
        .bind(is_admin)
        .bind(now)
        .bind(email)
        .bind((email.is_some() && email_verified).then_some(now))
        .bind(password_hash)
        .bind(password_hash.map(|_| now))
        .fetch_one(&self.writer)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists(if e.message().contains("email") {
                "a user with this email address".into()
            } else {
                format!("user {name:?}")
            })),
            Err(e) => Err(e.into()),
            Ok(row) => self.user_by_id(row.get(0)).await,
        }
    }

    pub async fn user_by_name(&self, name: &str) -> Result<User, StoreError> {
        sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1")))
            .bind(name)
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {name:?}")))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<User, StoreError> {
        sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1")))
            .bind(id)
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Ok(sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name")))
            .fetch_all(&self.reader)
            .await?)
    }

    // ---- tokens ------------------------------------------------------------------------------

    /// Stores a user's token (`publisher_id = None`) or a trusted publisher's (`user_id = None`).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        user_id: Option<i64>,
        publisher_id: Option<i64>,
        hash: &str,
        hint: &str,
        projects: Option<&[String]>,
        actions: Option<&[String]>,
        description: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        let projects = projects.map(to_string_array);
        let actions = actions.map(to_string_array);
        let row = sqlx::query("INSERT INTO tokens (user_id, publisher_id, hash, hint, projects, actions, description, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
            .bind(user_id)
            .bind(publisher_id)
            .bind(hash)
            .bind(hint)
            .bind(projects)
            .bind(actions)
            .bind(description)
            .bind(now_micros())
            .bind(expires_at)
            .fetch_one(&self.writer)
            .await?;
        Ok(row.get(0))
    }

    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM} WHERE t.hash = $1");
        Ok(sqlx::query_as::<_, Token>(sqlx::AssertSqlSafe(sql)).bind(hash).fetch_optional(&self.reader).await?)
    }

    pub async fn list_tokens(&self, user: Option<&str>) -> Result<Vec<Token>, StoreError> {
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM} WHERE t.user_id IS NOT NULL AND ($1 IS NULL OR u.name = $2) ORDER BY t.id");
        Ok(sqlx::query_as::<_, Token>(sqlx::AssertSqlSafe(sql)).bind(user).bind(user).fetch_all(&self.reader).await?)
    }

    pub async fn revoke_token(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        let res = sqlx::query("UPDATE tokens SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(reason)
            .bind(id)
            .execute(&self.writer)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("active token {id}")));
        }
        Ok(())
    }

    pub async fn touch_token(&self, id: i64, addr: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET last_used_at = $1, last_used_addr = $2 WHERE id = $3")
            .bind(now_micros())
            .bind(addr)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    // ---- projects and roles ------------------------------------------------------------------

    pub async fn project(&self, normalized: &str) -> Result<Option<Project>, StoreError> {
        Ok(sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE normalized = $1")))
            .bind(normalized)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Marks a project critical (or not); false if there is no such project.
    pub async fn set_project_critical(&self, normalized: &str, on: bool) -> Result<bool, StoreError> {
        let res =
            sqlx::query("UPDATE projects SET critical = $1 WHERE normalized = $2").bind(on).bind(normalized).execute(&self.writer).await?;
        Ok(res.rows_affected() == 1)
    }

    /// Whether the user has a role on a project marked critical.
    pub async fn has_critical_role(&self, user_id: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM roles r JOIN projects p ON p.id = r.project_id WHERE r.user_id = $1 AND p.critical LIMIT 1")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    /// The projects marked critical.
    pub async fn critical_projects(&self) -> Result<Vec<Project>, StoreError> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE critical ORDER BY normalized");
        Ok(sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?)
    }

    pub async fn list_projects(&self) -> Result<Vec<Project>, StoreError> {
        Ok(sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY normalized")))
            .fetch_all(&self.reader)
            .await?)
    }

    pub async fn releases(&self, project_id: i64) -> Result<Vec<Release>, StoreError> {
        Ok(sqlx::query_as::<_, Release>("SELECT id, project_id, version, canonical_version, created_at, metadata, requires_python FROM releases WHERE project_id = $1 ORDER BY id")
            .bind(project_id)
            .fetch_all(&self.reader)
            .await?)
    }

    pub async fn project_files(&self, project_id: i64) -> Result<Vec<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN releases r ON r.id = f.release_id JOIN projects p ON p.id = f.project_id WHERE f.project_id = $1 ORDER BY f.filename"
        );
        Ok(sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql)).bind(project_id).fetch_all(&self.reader).await?)
    }

    pub async fn file(&self, filename: &str) -> Result<Option<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN releases r ON r.id = f.release_id JOIN projects p ON p.id = f.project_id WHERE f.filename = $1"
        );
        Ok(sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql)).bind(filename).fetch_optional(&self.reader).await?)
    }

    pub async fn core_metadata(&self, filename: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT core_metadata FROM files WHERE filename = $1").bind(filename).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// What reserves `filename`, if anything: the same spelling, or another spelling with the
    /// same `identity` (the file's ecosystem says what that is), live or removed.
    pub async fn reservation(&self, filename: &str, identity: &str) -> Result<Option<Reservation>, StoreError> {
        reservation(&self.reader, filename, identity).await
    }

    pub async fn role(&self, project_id: i64, user_id: i64) -> Result<Option<Role>, StoreError> {
        let row = sqlx::query("SELECT role FROM roles WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.and_then(|r| Role::parse(r.get::<String, _>(0).as_str())))
    }

    pub async fn roles(&self, project: Option<&str>) -> Result<Vec<RoleRow>, StoreError> {
        Ok(sqlx::query_as::<_, RoleRow>(sqlx::AssertSqlSafe(format!(
            "{ROLE_ROWS} WHERE ($1 IS NULL OR p.normalized = $2) ORDER BY p.normalized, u.name"
        )))
        .bind(project)
        .bind(project)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The roles one user holds, by project name.
    pub async fn user_roles(&self, user_id: i64) -> Result<Vec<RoleRow>, StoreError> {
        Ok(sqlx::query_as::<_, RoleRow>(sqlx::AssertSqlSafe(format!("{ROLE_ROWS} WHERE r.user_id = $1 ORDER BY p.normalized")))
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?)
    }

    pub async fn set_role(&self, normalized: &str, user: &str, role: Role, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let project = project_in(&mut tx, normalized).await?;
        let user_id: i64 = sqlx::query("SELECT id FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user:?}")))?
            .get(0);
        let before: Option<String> = sqlx::query_scalar("SELECT role FROM roles WHERE project_id = $1 AND user_id = $2")
            .bind(project.id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO roles (project_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role")
            .bind(project.id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        // A demotion is checked here, in the write transaction, so that two owners demoting each
        // other at once cannot both see the other still an owner.
        if before.as_deref() == Some("owner") && role != Role::Owner {
            keeps_an_owner(&mut tx, &project, user).await?;
        }
        journal(&mut tx, &project, &format!("add {} {user}", role.as_str()), actor).await?;
        tlog::append(&mut tx, &["role", &project.normalized, "set", role.as_str(), user, "by", &tlog::actor(actor)], None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_role(&self, normalized: &str, user: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let project = project_in(&mut tx, normalized).await?;
        let removed: String = sqlx::query_scalar(
            "DELETE FROM roles WHERE project_id = $1 AND user_id = (SELECT id FROM users WHERE name = $2) RETURNING role",
        )
        .bind(project.id)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("a role for {user:?} on {normalized:?}")))?;
        if removed == "owner" {
            keeps_an_owner(&mut tx, &project, user).await?;
        }
        journal(&mut tx, &project, &format!("remove role {user}"), actor).await?;
        tlog::append(&mut tx, &["role", &project.normalized, "remove", &removed, user, "by", &tlog::actor(actor)], None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_status(&self, normalized: &str, status: &str, reason: Option<&str>, actor: &str) -> Result<(), StoreError> {
        if !PROJECT_STATUSES.contains(&status) {
            return Err(StoreError::Conflict(format!("unknown project status {status:?}; use one of {}", PROJECT_STATUSES.join(", "))));
        }
        if let Some(r) = reason {
            palisade_dist::check_text("status reason", r).map_err(|e| StoreError::Conflict(e.to_string()))?;
        }
        let mut tx = self.begin().await?;
        let project = project_in(&mut tx, normalized).await?;
        sqlx::query("UPDATE projects SET status = $1, status_reason = $2 WHERE id = $3")
            .bind(status)
            .bind(reason)
            .bind(project.id)
            .execute(&mut *tx)
            .await?;
        journal(&mut tx, &project, &format!("set status {status}"), actor).await?;
        tlog::append(&mut tx, &["status", &project.normalized, status, "by", &tlog::actor(actor)], None, None).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- publishing --------------------------------------------------------------------------

    /// Makes an uploaded file visible, in one transaction: creates the project (with the
    /// uploader as owner) and the release if they are new, and records the file, its reserved
    /// filename and a journal entry. Permission is re-checked here so that a project created
    /// concurrently by someone else is not written to.
    ///
    /// `blob` is the file's bytes, already persisted. Before committing, under the write lock
    /// that every blob removal also takes, the blob is put back from the upload's own link if a
    /// removal deleted it since (it found no file referencing the digest then), so a committed
    /// file always has its bytes.
    pub async fn publish(&self, f: &NewFile, blob: &StoredBlob) -> Result<PublishOutcome, StoreError> {
        if blob.sha256() != f.sha256 {
            let e = std::io::Error::other(format!("the stored blob is not the bytes of {:?} (sha256 {})", f.filename, f.sha256));
            return Err(StoreError::io(std::path::Path::new(blob.sha256()), e));
        }
        let mut tx = self.begin().await?;
        if let Some(r) = reservation(&mut *tx, &f.filename, &f.identity).await? {
            if r.filename == f.filename && r.sha256 == f.sha256 && r.live {
                return Ok(PublishOutcome::Identical);
            }
            return Err(StoreError::Reserved(r));
        }
        let now = now_micros();
        let (project, created_project) = match sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE normalized = $1"
        )))
        .bind(&f.normalized)
        .fetch_optional(&mut *tx)
        .await?
        {
            Some(p) => {
                if let Some(publisher) = f.publisher_id {
                    let bound = sqlx::query("SELECT 1 FROM publishers WHERE id = $1 AND project_id = $2")
                        .bind(publisher)
                        .bind(p.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if bound.is_none() {
                        return Err(StoreError::Conflict(format!(
                            "forbidden: this trusted publisher is not registered for project {:?}",
                            p.normalized
                        )));
                    }
                } else if !f.uploader_is_admin {
                    let role = sqlx::query("SELECT role FROM roles WHERE project_id = $1 AND user_id = $2")
                        .bind(p.id)
                        .bind(f.uploader_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if role.is_none() {
                        return Err(StoreError::Conflict(format!(
                            "forbidden: user {:?} is not an owner or maintainer of project {:?}",
                            f.uploader_name, p.normalized
                        )));
                    }
                }
                if p.status == "archived" || p.status == "quarantined" {
                    return Err(StoreError::Conflict(format!("project {:?} is {} and accepts no uploads", p.normalized, p.status)));
                }
                (p, false)
            }
            None => {
                // A user creates a project and owns it; a trusted publisher may create only the
                // project it is pending for, and the user who registered it becomes the owner.
                let owner = match f.publisher_id {
                    None => f.uploader_id,
                    Some(publisher) => sqlx::query(
                        "SELECT created_by FROM publishers WHERE id = $1 AND pending_name = $2 AND (expires_at IS NULL OR expires_at > $3)",
                    )
                    .bind(publisher)
                    .bind(&f.normalized)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Conflict(format!(
                            "forbidden: this trusted publisher may not create project {:?}; register a pending publisher for it first",
                            f.normalized
                        ))
                    })?
                    .get::<Option<i64>, _>(0),
                };
                let p = sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO projects (name, normalized, created_at) VALUES ($1, $2, $3) RETURNING {PROJECT_COLUMNS}"
                )))
                .bind(&f.project_name)
                .bind(&f.normalized)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(owner) = owner {
                    sqlx::query("INSERT INTO roles (project_id, user_id, role) VALUES ($1, $2, 'owner')")
                        .bind(p.id)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                    let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1").bind(owner).fetch_one(&mut *tx).await?;
                    tlog::append(&mut tx, &["role", &p.normalized, "set", "owner", &name, "by", &f.log_actor], None, None).await?;
                }
                if let Some(publisher) = f.publisher_id {
                    // The pending publisher becomes an ordinary one of the new project.
                    // It, and the same user's other pending publishers for the name, become
                    // ordinary publishers of the new project. (A project a user creates with a
                    // token binds none: as on PyPI, a pending publisher is for creating the
                    // project, and the token exchange skips it once the project exists.)
                    sqlx::query(
                        "UPDATE publishers SET project_id = $1, pending_name = NULL, expires_at = NULL WHERE pending_name = $2 AND (expires_at IS NULL OR expires_at > $3) AND (id = $4 OR created_by IS NOT DISTINCT FROM $5)",
                    )
                    .bind(p.id)
                    .bind(&f.normalized)
                    .bind(now)
                    .bind(publisher)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                    let bound: Vec<i64> = sqlx::query_scalar("SELECT id FROM publishers WHERE project_id = $1 ORDER BY id")
                        .bind(p.id)
                        .fetch_all(&mut *tx)
                        .await?;
                    for id in bound {
                        tlog::append(&mut tx, &["publisher", &p.normalized, "bind", &id.to_string()], None, None).await?;
                    }
                    // Anyone else's pending publishers for the name (and expired ones) lost
                    // the race; tokens that covered only them go with them.
                    let losers: Vec<i64> = sqlx::query_scalar("SELECT id FROM publishers WHERE pending_name = $1")
                        .bind(&f.normalized)
                        .fetch_all(&mut *tx)
                        .await?;
                    for id in losers {
                        accounts::drop_publisher(&mut tx, id).await?;
                    }
                }
                journal(&mut tx, &p, "create", &f.uploader_name).await?;
                (p, true)
            }
        };
        let release_id: i64 = match sqlx::query("SELECT id FROM releases WHERE project_id = $1 AND canonical_version = $2")
            .bind(project.id)
            .bind(&f.canonical_version)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => r.get(0),
            None => {
                let id: i64 = sqlx::query("INSERT INTO releases (project_id, version, canonical_version, created_at, metadata, requires_python) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
                    .bind(project.id)
                    .bind(&f.version)
                    .bind(&f.canonical_version)
                    .bind(now)
                    .bind(&f.metadata_json)
                    .bind(&f.requires_python)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                journal(&mut tx, &project, &format!("new release {}", f.version), &f.uploader_name).await?;
                id
            }
        };
        // One sdist per release is the unique index `files_one_sdist_per_release` (migration 0006).
        let inserted = sqlx::query(
            "INSERT INTO files (release_id, project_id, filename, packagetype, python_version, size, sha256, blake2b_256, md5, upload_time, requires_python, core_metadata, metadata_sha256, uploader_id, publisher_id, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(release_id)
        .bind(project.id)
        .bind(&f.filename)
        .bind(&f.packagetype)
        .bind(&f.python_version)
        .bind(f.size)
        .bind(&f.sha256)
        .bind(&f.blake2b_256)
        .bind(&f.md5)
        .bind(now)
        .bind(&f.requires_python)
        .bind(&f.core_metadata)
        .bind(&f.metadata_sha256)
        .bind(f.uploader_id)
        .bind(f.publisher_id)
        .bind(&f.status)
        .fetch_one(&mut *tx)
        .await;
        let file_id: i64 = match inserted {
            Err(sqlx::Error::Database(e)) if violates(&*e, "files_one_sdist_per_release", "files.release_id") => {
                // PostgreSQL refuses any further statement in a transaction that failed one: name
                // the sdist that holds the release from outside it, after the rollback (should a
                // removal slip in between, the message says "another sdist").
                tx.rollback().await?;
                let other: String = sqlx::query_scalar("SELECT filename FROM files WHERE release_id = $1 AND packagetype = 'sdist'")
                    .bind(release_id)
                    .fetch_optional(&self.reader)
                    .await?
                    .unwrap_or_else(|| "another sdist".into());
                return Err(StoreError::Conflict(format!("only one sdist may be uploaded per release; this release already has {other}")));
            }
            other => other?.get(0),
        };
        provenance::insert(&mut tx, file_id, &f.attestations, now).await?;
        if let Some(scan) = &f.scan {
            insert_report(&mut tx, &f.filename, &project.normalized, &f.sha256, scan, &f.uploader_name).await?;
        }
        sqlx::query("INSERT INTO filenames (filename, project_id, sha256, created_at, identity) VALUES ($1, $2, $3, $4, $5)")
            .bind(&f.filename)
            .bind(project.id)
            .bind(&f.sha256)
            .bind(now)
            .bind(&f.identity)
            .execute(&mut *tx)
            .await?;
        let action = if f.status == "quarantined" { format!("quarantine file {}", f.filename) } else { format!("add file {}", f.filename) };
        let serial = journal(&mut tx, &project, &action, &f.uploader_name).await?;
        let event = if f.status == "quarantined" { "hold" } else { "publish" };
        tlog::append(
            &mut tx,
            &[event, &project.normalized, &f.version, &f.filename, &format!("sha256:{}", f.sha256), "by", &f.log_actor],
            Some(&f.filename),
            Some(&f.sha256),
        )
        .await?;
        if blob.ensure_in_place().await? {
            tracing::info!(file.filename = %f.filename, "put back the blob a concurrent removal deleted");
        }
        tx.commit().await?;
        Ok(PublishOutcome::Published { serial, created_project })
    }

    /// Yanks (or with `yank = false` un-yanks) a release, or one file of it.
    pub async fn set_yanked(
        &self,
        normalized: &str,
        version: &str,
        filename: Option<&str>,
        yank: bool,
        reason: Option<&str>,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let project = project_in(&mut tx, normalized).await?;
        let canonical = palisade_dist::parse_version(version)
            .map(|v| palisade_dist::canonical_version(&v))
            .map_err(|e| StoreError::NotFound(format!("version {version:?} ({e})")))?;
        let release_id: i64 = sqlx::query("SELECT id FROM releases WHERE project_id = $1 AND canonical_version = $2")
            .bind(project.id)
            .bind(&canonical)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("release {version} of {normalized:?}")))?
            .get(0);
        let reason = if yank { reason.filter(|r| !r.is_empty()) } else { None };
        if let Some(r) = reason {
            palisade_dist::check_text("yank reason", r).map_err(|e| StoreError::Conflict(e.to_string()))?;
        }
        let res = sqlx::query("UPDATE files SET yanked = $1, yanked_reason = $2 WHERE release_id = $3 AND ($4 IS NULL OR filename = $5)")
            .bind(yank)
            .bind(reason)
            .bind(release_id)
            .bind(filename)
            .bind(filename)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("file {:?} in release {version} of {normalized:?}", filename.unwrap_or("*"))));
        }
        let what = filename.map(|f| f.to_string()).unwrap_or_else(|| format!("release {version}"));
        journal(&mut tx, &project, &format!("{} {what}", if yank { "yank" } else { "unyank" }), actor).await?;
        let event = if yank { "yank" } else { "unyank" };
        tlog::append(&mut tx, &[event, &project.normalized, version, filename.unwrap_or("*"), "by", &tlog::actor(actor)], filename, None)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    /// Removes a file, and its blob unless another file has the same bytes; `true` when the blob
    /// was deleted. The filename stays reserved. This is the only way to remove a file, so that
    /// no caller deletes a blob outside [`Db::remove_blob_if_unreferenced`].
    ///
    /// A failure to delete the blob once the file is gone is logged, not returned: the file is
    /// removed either way, and the unreferenced blob is swept at the next start.
    pub async fn remove_file(&self, blobs: &BlobStore, filename: &str, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let row =
            sqlx::query("SELECT f.id, f.sha256, p.normalized FROM files f JOIN projects p ON p.id = f.project_id WHERE f.filename = $1")
                .bind(filename)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("file {filename:?}")))?;
        let (id, sha, normalized): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        sqlx::query("DELETE FROM attestations WHERE file_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM files WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let project = project_in(&mut tx, &normalized).await?;
        journal(&mut tx, &project, &format!("remove file {filename}"), actor).await?;
        let digest = format!("sha256:{sha}");
        tlog::append(&mut tx, &["remove", &project.normalized, filename, &digest, "by", &tlog::actor(actor)], Some(filename), Some(&sha))
            .await?;
        // The row goes first, in its own transaction: deleting the blob before a commit that
        // then failed would leave a file without its bytes.
        tx.commit().await?;
        match self.remove_blob_if_unreferenced(blobs, &sha).await {
            Ok(removed) => Ok(removed),
            Err(e) => {
                tracing::warn!(file.filename = %filename, error = %e, "removed the file but not its blob; the sweep at the next start will");
                Ok(false)
            }
        }
    }

    /// Deletes the blob with this digest if no file references it; `true` if it did. The check
    /// and the deletion happen inside a write transaction (`BEGIN IMMEDIATE`, which serialises
    /// writers across processes), and `publish` makes sure of its blob inside its own, so a
    /// file committed before the check keeps the blob, and one committed after puts it back.
    pub async fn remove_blob_if_unreferenced(&self, blobs: &BlobStore, sha256: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let referenced = sqlx::query(REFERENCED).bind(sha256).fetch_optional(&mut *tx).await?.is_some();
        if !referenced {
            blobs.remove(sha256).await?;
        }
        // Nothing was written; the commit ends the transaction, and with it the lock.
        tx.commit().await?;
        Ok(!referenced)
    }

    /// Whether any live file has this sha256 (a cheap read before [`Db::remove_blob_if_unreferenced`]).
    pub async fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(REFERENCED).bind(sha256).fetch_optional(&self.reader).await?.is_some())
    }

    // ---- scanning and quarantine --------------------------------------------------------------

    /// Records the report of an upload that was refused (nothing else is stored).
    pub async fn record_rejection(
        &self,
        filename: &str,
        project: &str,
        sha256: &str,
        scan: &NewScan,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let id = insert_report(&mut tx, filename, project, sha256, scan, actor).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Files waiting for review, oldest first.
    pub async fn quarantined(&self, project: Option<&str>) -> Result<Vec<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN releases r ON r.id = f.release_id JOIN projects p ON p.id = f.project_id WHERE f.status = 'quarantined' AND f.confirmed = FALSE AND ($1 IS NULL OR p.normalized = $2) ORDER BY f.upload_time"
        );
        Ok(sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql)).bind(project).bind(project).fetch_all(&self.reader).await?)
    }

    /// Every report recorded for a filename, newest first.
    pub async fn reports(&self, filename: &str) -> Result<Vec<ScanReportRow>, StoreError> {
        Ok(sqlx::query_as::<_, ScanReportRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM scan_reports WHERE filename = $1 ORDER BY id DESC"
        )))
        .bind(filename)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Recent rejected uploads.
    pub async fn rejections(&self, limit: i64) -> Result<Vec<ScanReportRow>, StoreError> {
        Ok(sqlx::query_as::<_, ScanReportRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM scan_reports WHERE outcome = 'rejected' ORDER BY id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Publishes a quarantined file after review.
    pub async fn release_file(&self, filename: &str, actor: &str, note: Option<&str>) -> Result<(), StoreError> {
        self.decide(filename, "released", actor, note).await
    }

    /// Confirms a quarantined file as malicious: it becomes `malicious`, served to no one but
    /// administrators, its bytes kept as evidence (and so that a wrong decision can be undone by
    /// a release) until an administrator removes it; its name stays reserved either way.
    pub async fn confirm_file(&self, filename: &str, actor: &str, note: Option<&str>) -> Result<(), StoreError> {
        self.decide(filename, "confirmed", actor, note).await
    }

    async fn decide(&self, filename: &str, decision: &str, actor: &str, note: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT p.normalized, f.sha256, f.confirmed FROM files f JOIN projects p ON p.id = f.project_id WHERE f.filename = $1 AND f.status = 'quarantined'",
        )
        .bind(filename)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("quarantined file {filename:?}")))?;
        let (normalized, sha): (String, String) = (row.get(0), row.get(1));
        let confirmed: bool = row.try_get::<crate::models::Flag, _>(2)?.into();
        // A confirmed file can be released (the decision undone), not confirmed again.
        if decision == "confirmed" && confirmed {
            return Err(StoreError::Conflict(format!("{filename:?} is already confirmed as malicious")));
        }
        // Confirmed: still held (`status`), and marked, so it leaves the review queue and reads as
        // `malicious` (see FILE_COLUMNS).
        let (status, confirmed) = if decision == "released" { ("published", false) } else { ("quarantined", true) };
        sqlx::query("UPDATE files SET status = $1, confirmed = $2 WHERE filename = $3")
            .bind(status)
            .bind(confirmed)
            .bind(filename)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE scan_reports SET decision = $1, decided_by = $2, decided_at = $3, note = $4 WHERE id = (SELECT MAX(id) FROM scan_reports WHERE filename = $5)")
            .bind(decision)
            .bind(actor)
            .bind(now_micros())
            .bind(note)
            .bind(filename)
            .execute(&mut *tx)
            .await?;
        let project = project_in(&mut tx, &normalized).await?;
        journal(&mut tx, &project, &format!("{decision} quarantined file {filename}"), actor).await?;
        let event = if decision == "released" { "release" } else { "confirm" };
        let digest = format!("sha256:{sha}");
        tlog::append(&mut tx, &[event, &project.normalized, filename, &digest, "by", &tlog::actor(actor)], Some(filename), Some(&sha))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves a published file into quarantine after a rescan flagged it, recording the report.
    pub async fn quarantine_file(&self, filename: &str, scan: &NewScan, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT p.normalized, f.sha256 FROM files f JOIN projects p ON p.id = f.project_id WHERE f.filename = $1")
            .bind(filename)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("file {filename:?}")))?;
        let (normalized, sha): (String, String) = (row.get(0), row.get(1));
        sqlx::query("UPDATE files SET status = 'quarantined' WHERE filename = $1").bind(filename).execute(&mut *tx).await?;
        insert_report(&mut tx, filename, &normalized, &sha, scan, actor).await?;
        let project = project_in(&mut tx, &normalized).await?;
        journal(&mut tx, &project, &format!("quarantine file {filename} after rescan"), actor).await?;
        let digest = format!("sha256:{sha}");
        tlog::append(
            &mut tx,
            &["quarantine", &project.normalized, filename, &digest, "by", &tlog::actor(actor)],
            Some(filename),
            Some(&sha),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every stored file, for rescans.
    pub async fn all_files(&self, project: Option<&str>) -> Result<Vec<FileRow>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f JOIN releases r ON r.id = f.release_id JOIN projects p ON p.id = f.project_id WHERE ($1 IS NULL OR p.normalized = $2) ORDER BY f.id"
        );
        Ok(sqlx::query_as::<_, FileRow>(sqlx::AssertSqlSafe(sql)).bind(project).bind(project).fetch_all(&self.reader).await?)
    }

    /// Normalized names of all hosted projects (for typosquatting checks).
    /// The projects created after the one with id `after` (0: all), with their ids, oldest first:
    /// what another process created since this one last looked.
    pub async fn projects_created_after(&self, after: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query("SELECT id, normalized FROM projects WHERE id > $1 ORDER BY id")
            .bind(after)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    pub async fn project_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query("SELECT normalized FROM projects ORDER BY normalized")
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    // ---- journal -----------------------------------------------------------------------------

    pub async fn last_serial(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COALESCE(MAX(serial), 0) FROM journal").fetch_one(&self.reader).await?.get(0))
    }

    pub async fn journal_since(&self, serial: i64, limit: i64) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(sqlx::query_as::<_, JournalEntry>(
            "SELECT serial, project, action, actor, at FROM journal WHERE serial > $1 ORDER BY serial LIMIT $2",
        )
        .bind(serial)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

/// The identity of a Python distribution's filename: only for filenames reserved before
/// migration 0004, which were all Python's; `None` if it is not a distribution filename. New
/// files bring their identity from their ecosystem.
fn identity_of(filename: &str) -> Option<String> {
    palisade_dist::DistFilename::parse(filename).ok().map(|d| d.identity())
}

/// The reservation of `filename` or of its identity; the exact spelling first.
async fn reservation<'e>(
    db: impl sqlx::Executor<'e, Database = Any>,
    filename: &str,
    identity: &str,
) -> Result<Option<Reservation>, StoreError> {
    Ok(sqlx::query_as::<_, Reservation>(
        "SELECT n.filename, n.sha256, EXISTS (SELECT 1 FROM files f WHERE f.filename = n.filename) AS live \
         FROM filenames n WHERE n.filename = $1 OR n.identity = $2 ORDER BY n.filename = $3 DESC LIMIT 1",
    )
    .bind(filename)
    .bind(identity)
    .bind(filename)
    .fetch_optional(db)
    .await?)
}

async fn insert_report(
    tx: &mut Transaction<'static, Any>,
    filename: &str,
    project: &str,
    sha256: &str,
    scan: &NewScan,
    actor: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO scan_reports (filename, project, sha256, verdict, score, report, outcome, trigger, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(filename)
    .bind(project)
    .bind(sha256)
    .bind(&scan.verdict)
    .bind(scan.score)
    .bind(&scan.report_json)
    .bind(&scan.outcome)
    .bind(&scan.trigger)
    .bind(actor)
    .bind(now_micros())
    .fetch_one(&mut **tx)
    .await?
    .get(0))
}

async fn project_in(tx: &mut Transaction<'static, Any>, normalized: &str) -> Result<Project, StoreError> {
    sqlx::query_as::<_, Project>(sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE normalized = $1")))
        .bind(normalized)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project {normalized:?}")))
}

/// Refuses the demotion or removal of an owner that leaves the project without one; called inside
/// the change's transaction, after it. (A project a trusted publisher created for no registered
/// user has no owner to begin with; other role changes there stay possible.)
async fn keeps_an_owner(tx: &mut Transaction<'static, Any>, project: &Project, user: &str) -> Result<(), StoreError> {
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE project_id = $1 AND role = 'owner'")
        .bind(project.id)
        .fetch_one(&mut **tx)
        .await?;
    if owners == 0 {
        return Err(StoreError::Conflict(format!(
            "{user:?} is the last owner of {:?}; a project must keep at least one owner, add another owner first",
            project.normalized
        )));
    }
    Ok(())
}

/// Appends a journal entry and moves the project's serial to it.
async fn journal(tx: &mut Transaction<'static, Any>, project: &Project, action: &str, actor: &str) -> Result<i64, StoreError> {
    let serial: i64 =
        sqlx::query("INSERT INTO journal (project_id, project, action, actor, at) VALUES ($1, $2, $3, $4, $5) RETURNING serial")
            .bind(project.id)
            .bind(&project.normalized)
            .bind(action)
            .bind(actor)
            .bind(now_micros())
            .fetch_one(&mut **tx)
            .await?
            .get(0);
    sqlx::query("UPDATE projects SET last_serial = $1 WHERE id = $2").bind(serial).bind(project.id).execute(&mut **tx).await?;
    Ok(serial)
}

mod accounts;
mod browse;
pub use browse::ProjectCard;
mod copy;
pub use copy::Counts;
mod jobs;
mod limits;
mod mirror;
pub use mirror::{Exemption, MirrorFile, MirrorPage, MirrorStats, MirrorVerdict, Shadow};
mod provenance;
pub use provenance::{NewAttestation, StoredAttestation};
mod sharing;
pub use sharing::{FeedChanges, FeedRow, NewAdvisory, NewObservation, Observation, StoredAdvisory, Waiver};
mod tlog;
pub use limits::LimiterEvent;
pub use tlog::{LogEntry, StoredCheckpoint};

#[cfg(test)]
mod tests;

/// `sqlite://PATH`, with the characters a URL would read otherwise escaped.
pub fn sqlite_url(path: &std::path::Path) -> Result<String, StoreError> {
    // Absolute: a relative path's first part would be read as the URL's host.
    let path = std::path::absolute(path).map_err(|e| StoreError::io(path, e))?;
    let path = path.to_str().ok_or_else(|| StoreError::Conflict(format!("the database path {} is not UTF-8", path.display())))?;
    Ok(format!("sqlite://{}", path.replace('%', "%25").replace('?', "%3F").replace('#', "%23")))
}
