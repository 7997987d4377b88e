//! The durable job queue (see migration 0008): enqueue, claim with a lease, finish or fail with
//! backoff, and what an administrator needs to see failed jobs and run them again.

use sqlx::Row;

use super::{Db, Engine, now_micros};
use crate::StoreError;
use crate::models::Job;

const JOB_COLUMNS: &str =
    "id, kind, payload, created_at, run_at, attempts, max_attempts, locked_by, locked_until, last_error, state, finished_at";

impl Db {
    /// Queues a job of `kind` with its JSON `payload`, to be tried at most `max_attempts` times.
    pub async fn enqueue_job(&self, kind: &str, payload: &str, max_attempts: i64) -> Result<i64, StoreError> {
        let now = now_micros();
        Ok(sqlx::query("INSERT INTO jobs (kind, payload, created_at, run_at, max_attempts) VALUES ($1, $2, $3, $3, $4) RETURNING id")
            .bind(kind)
            .bind(payload)
            .bind(now)
            .bind(max_attempts.max(1))
            .fetch_one(&self.writer)
            .await?
            .get(0))
    }

    /// Makes sure one job of `kind` is queued to run no later than `run_at`: moves an idle queued
    /// one earlier, or queues one. For recurring housekeeping (the orphan sweep), which every node
    /// asks for and one runs. A job being run now does not count: it is about to be done.
    pub async fn schedule_once(&self, kind: &str, run_at: i64) -> Result<i64, StoreError> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE kind = $1 AND state = 'queued' AND (locked_until IS NULL OR locked_until < $2) ORDER BY run_at LIMIT 1",
        )
        .bind(kind)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE jobs SET run_at = CASE WHEN run_at > $1 THEN $1 ELSE run_at END WHERE id = $2")
                    .bind(run_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                sqlx::query_scalar(
                    "INSERT INTO jobs (kind, payload, created_at, run_at, max_attempts) VALUES ($1, '{}', $2, $3, 3) RETURNING id",
                )
                .bind(kind)
                .bind(now)
                .bind(run_at)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    /// Claims the job that is due soonest, or the job `only` when given, for `worker` until
    /// `lease_micros` from now: one statement, so two workers never claim the same job (on
    /// PostgreSQL, rows other workers are claiming are skipped, not waited for).
    pub async fn claim_job(&self, worker: &str, lease_micros: i64, only: Option<i64>) -> Result<Option<Job>, StoreError> {
        let now = now_micros();
        // A job whose lease ran out on its last attempt lost its worker every time (a crash, a
        // kill, a hang): it is failed, not run again, and its payload goes (it may carry a
        // secret, such as a mailed one-time link; nothing will run it now).
        sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = $1, locked_by = NULL, locked_until = NULL, \
             last_error = COALESCE(last_error || '; ', '') || 'its worker stopped before finishing, on every attempt', \
             payload = '{}' \
             WHERE state = 'queued' AND locked_until < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(&self.writer)
        .await?;
        let skip_locked = if self.engine == Engine::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1 WHERE id = (\
               SELECT id FROM jobs WHERE state = 'queued' AND run_at <= $3 AND (locked_until IS NULL OR locked_until < $3) \
               AND attempts < max_attempts AND ($4 IS NULL OR id = $4) ORDER BY run_at, id LIMIT 1{skip_locked}) \
             AND state = 'queued' RETURNING {JOB_COLUMNS}"
        );
        Ok(sqlx::query_as::<_, Job>(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now.saturating_add(lease_micros))
            .bind(now)
            .bind(only)
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Marks a claimed job done and erases its payload. `false` if `worker` no longer holds it
    /// (its lease ran out and another worker took it).
    pub async fn finish_job(&self, id: i64, worker: &str) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE jobs SET state = 'done', payload = '{}', finished_at = $1, locked_by = NULL, locked_until = NULL, last_error = NULL \
             WHERE id = $2 AND locked_by = $3 AND state = 'queued'",
        )
        .bind(now_micros())
        .bind(id)
        .bind(worker)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Records a failed attempt: the job runs again at `retry_at` (microseconds), or, when it
    /// has used all its attempts, is kept as failed for an administrator, its payload replaced by
    /// `kept` when given (what must not outlive the job, such as a one-time link, goes).
    pub async fn fail_job(&self, id: i64, worker: &str, error: &str, retry_at: i64, kept: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET last_error = $1, locked_by = NULL, locked_until = NULL, run_at = $2, \
             state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             finished_at = CASE WHEN attempts >= max_attempts THEN $3 ELSE NULL END, \
             payload = CASE WHEN attempts >= max_attempts AND $6 IS NOT NULL THEN $6 ELSE payload END \
             WHERE id = $4 AND locked_by = $5 AND state = 'queued'",
        )
        .bind(error)
        .bind(retry_at)
        .bind(now_micros())
        .bind(id)
        .bind(worker)
        .bind(kept)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Jobs, newest first: all, or those in `state` (`queued`, `done`, `failed`).
    pub async fn jobs(&self, state: Option<&str>, limit: i64) -> Result<Vec<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC LIMIT $2");
        Ok(sqlx::query_as::<_, Job>(sqlx::AssertSqlSafe(sql)).bind(state).bind(limit).fetch_all(&self.reader).await?)
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        Ok(sqlx::query_as::<_, Job>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.writer).await?)
    }

    /// Queues a failed job again, with a fresh set of attempts. `false` if it is not failed.
    pub async fn retry_job(&self, id: i64) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, finished_at = NULL, locked_by = NULL, locked_until = NULL \
             WHERE id = $2 AND state = 'failed'",
        )
        .bind(now_micros())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }
}
