//! Background work from the durable job queue in the database (`palisade_store::Db::claim_job`):
//! each job is claimed by one worker at a time under a lease, so it runs once across processes
//! and nodes; a failure is retried with backoff, and a job whose worker died is run again by
//! another once the lease has run out. Every `palisade serve` runs a worker; a CLI command runs
//! the jobs it queued itself before it ends (they wait for a server if that fails).

use std::time::Duration;

use futures_util::FutureExt;
use palisade_store::Job;

use crate::Core;
use crate::mail;

/// Workers per server process.
pub const WORKERS: usize = 4;

/// The job kind of the orphan sweep (see [`Core::sweep_orphans`]).
pub const SWEEP: &str = "sweep_orphans";
/// How often the orphan sweep runs (and at every start of a server).
const SWEEP_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The name a worker claims jobs under: the host, the process and a random tag.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{host}:{}:{}", std::process::id(), palisade_auth::random_token("", 6))
}

/// How long after the `attempts`-th failure a job is tried again: 15 s, doubling, at most 4 h.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    Duration::from_secs(15u64.saturating_mul(1 << exp).min(4 * 3600))
}

impl Core {
    fn lease_micros(&self) -> i64 {
        i64::try_from(self.config.jobs.lease_secs).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000)
    }

    /// Claims and runs one due job (or the job `only`); `false` if there was none to claim.
    pub async fn run_one_job(&self, worker: &str, only: Option<i64>) -> anyhow::Result<bool> {
        let Some(job) = self.db.claim_job(worker, self.lease_micros(), only).await? else { return Ok(false) };
        // A job that panics fails like one that errs; the worker lives on.
        let outcome = std::panic::AssertUnwindSafe(self.perform(&job))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err("the job panicked (a bug: see the server log)".into()));
        match outcome {
            Ok(()) => {
                if !self.db.finish_job(job.id, worker).await? {
                    tracing::warn!(job.id = job.id, "a job ran past its lease; another worker may run it again");
                }
            }
            Err(e) => {
                let retry = jiff::Timestamp::now().as_microsecond().saturating_add(backoff(job.attempts).as_micros() as i64);
                let last = job.attempts >= job.max_attempts;
                tracing::warn!(job.id = job.id, job.kind = %job.kind, attempt = job.attempts, error = %e, gave_up = last, "job failed");
                let kept = if last && job.kind == mail::JOB {
                    serde_json::from_str::<mail::Queued>(&job.payload).ok().and_then(|q| q.kept_after_failure())
                } else {
                    None
                };
                self.db.fail_job(job.id, worker, &e, retry, kept.as_deref()).await?;
            }
        }
        Ok(true)
    }

    async fn perform(&self, job: &Job) -> Result<(), String> {
        match job.kind.as_str() {
            mail::JOB => {
                let queued: mail::Queued = serde_json::from_str(&job.payload).map_err(|e| format!("unreadable mail job: {e}"))?;
                self.mailer.deliver(&queued).await
            }
            SWEEP => {
                let removed = self.sweep_orphans().await.map_err(|e| e.to_string())?;
                if removed > 0 {
                    tracing::warn!(count = removed, "removed unreferenced blobs left by an interrupted upload");
                }
                self.schedule_sweep(SWEEP_EVERY).await.map_err(|e| e.to_string())
            }
            crate::sharing::webhooks::JOB => self.deliver_webhook(&job.payload).await,
            kind if kind.starts_with(crate::sharing::feeds::JOB_PREFIX) => {
                self.run_feed_job(&kind[crate::sharing::feeds::JOB_PREFIX.len()..]).await
            }
            other => Err(format!("unknown job kind {other:?} (written by a newer Palisade?)")),
        }
    }

    /// Runs jobs as they fall due, until the process ends: woken at once when this process
    /// queues one (or another worker found one), and every `poll` for other processes' jobs and
    /// retries.
    pub async fn work(&self, worker: String, poll: Duration) {
        loop {
            // A server's workers run every job; the list is for a CLI command's own.
            drop(self.mailer.take_queued());
            match self.run_one_job(&worker, None).await {
                // There may be more: let another worker look too.
                Ok(true) => {
                    self.mailer.wake.notify_one();
                    continue;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "the job queue could not be read"),
            }
            let _ = tokio::time::timeout(poll, self.mailer.wake.notified()).await;
        }
    }

    /// Makes sure the orphan sweep runs within `after` (one node runs it for all).
    pub async fn schedule_sweep(&self, after: Duration) -> anyhow::Result<()> {
        let at = jiff::Timestamp::now().as_microsecond().saturating_add(i64::try_from(after.as_micros()).unwrap_or(i64::MAX));
        self.db.schedule_once(SWEEP, at).await?;
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Removes blobs that no file references: what a crash between "blob stored" and
    /// "transaction committed" leaves. Recently written blobs (`BlobStore::sweep_grace`) are left
    /// alone, because an upload may be about to commit them (unless `sweep_young_blobs`). Each
    /// removal re-checks under the write lock. Returns how many went.
    pub async fn sweep_orphans(&self) -> anyhow::Result<usize> {
        let mut removed = 0;
        for blob in self.blobs.list().await? {
            if blob.age < self.blobs.sweep_grace() && !self.config.sweep_young_blobs {
                continue;
            }
            if !self.db.blob_referenced(&blob.sha256).await? && self.db.remove_blob_if_unreferenced(&self.blobs, &blob.sha256).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Queues a failed job again with a fresh set of attempts (an administrator's decision).
    pub async fn retry_job(&self, id: i64) -> crate::Result<()> {
        match self.db.job(id).await? {
            None => Err(crate::error::not_found(format!("job {id} not found"))),
            Some(j) if j.state != "failed" => Err(crate::error::invalid(format!("job {id} is {}, not failed", j.state))),
            // Erased when it failed (or when its worker died on every attempt): nothing to send.
            Some(j) if j.kind == mail::JOB && serde_json::from_str::<mail::Queued>(&j.payload).map_or(true, |q| q.erased) => {
                Err(crate::error::invalid(format!(
                    "job {id} was a message with a one-time link, erased when it failed; the user can ask for a new one"
                )))
            }
            Some(_) => {
                if !self.db.retry_job(id).await? {
                    return Err(crate::error::invalid(format!("job {id} is no longer failed")));
                }
                self.mailer.wake.notify_one();
                Ok(())
            }
        }
    }

    /// Runs the jobs this process queued (a CLI command, before it ends), for at most `limit`.
    /// What is not done by then, or fails, stays queued for a server's worker.
    pub async fn run_own_jobs(&self, limit: Duration) {
        let ids = self.mailer.take_queued();
        if ids.is_empty() {
            return;
        }
        let worker = worker_name();
        let run = async {
            for id in &ids {
                if let Err(e) = self.run_one_job(&worker, Some(*id)).await {
                    tracing::warn!(error = %e, job.id = id, "could not run a queued job");
                }
            }
        };
        if tokio::time::timeout(limit, run).await.is_err() {
            tracing::warn!("queued mail was still being sent when the command ended; a server will send it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_secs(15));
        assert_eq!(backoff(2), Duration::from_secs(30));
        assert_eq!(backoff(5), Duration::from_secs(240));
        assert_eq!(backoff(40), Duration::from_secs(4 * 3600));
        assert_eq!(backoff(0), Duration::from_secs(15));
    }
}
