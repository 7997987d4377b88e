//! Scans nobody waits for yet (upstream files read ahead for a client) run on threads of their
//! own at a lower CPU priority (10 `nice` levels below the server's, on Linux), so that
//! speculative work yields the
//! processor to the requests being served and to the scans a client or an uploader waits on.
//! The threads that analyse one archive's members are started by these threads and inherit
//! their priority. On a machine with idle cores they run as fast as any other scan.
//!
//! A client that asks for a file while its background scan runs does not wait on the low
//! priority: the mirror then races that scan with one at normal priority (`mirror::fetch`).

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

/// How many `nice` levels below the server's the background threads run: CFS gives a thread 10
/// levels below another about a tenth of its processor time when both want it.
const NICE: i32 = 10;
/// The lowest priority there is.
#[cfg(target_os = "linux")]
const LOWEST: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// The background scan threads, started on the first job: one per core, since every scan uses
/// helper threads of its own for an archive's members.
#[derive(Default)]
pub(super) struct Background {
    jobs: Mutex<Option<Sender<Job>>>,
}

impl Background {
    /// Runs `work` on a background thread and returns its result.
    pub(super) async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.sender()?.send(job).map_err(|_| anyhow::anyhow!("the background scan threads have stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("a background scan ended without a result"))
    }

    fn sender(&self) -> anyhow::Result<Sender<Job>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = jobs.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("scan-background-{i}")).spawn(move || {
                lower_priority();
                loop {
                    // The lock is held only while waiting for a job, not while running it.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking scan fails its own job (its sender is dropped), not the thread.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                }
            })?;
        }
        *jobs = Some(tx.clone());
        Ok(tx)
    }
}

/// Lowers the calling thread's priority by [`NICE`] levels, never past the lowest (and that of
/// the threads it starts).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = Some(rustix::thread::gettid());
        let lowered = rustix::process::getpriority_process(tid)
            .and_then(|now| rustix::process::setpriority_process(tid, now.saturating_add(NICE).min(LOWEST)));
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "could not lower the priority of a background scan thread; it runs at the server's");
        }
    }
}

/// This thread's `nice` value (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
fn priority() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_at_a_lower_priority_and_returns_its_result() {
        let background = Background::default();
        assert_eq!(background.run(|| 6 * 7).await.unwrap(), 42);
        #[cfg(target_os = "linux")]
        {
            // The threads are started by the first job, from this thread's priority.
            let here = priority();
            let (there, helper) = background.run(|| (priority(), std::thread::spawn(priority).join().unwrap())).await.unwrap();
            assert_eq!(there, (here + NICE).min(LOWEST), "background {there}, caller {here}");
            assert_eq!(helper, there, "a thread a background scan starts inherits its priority");
        }
        // A job that panics fails alone; the threads keep working.
        assert!(background.run(|| -> i32 { panic!("a scan bug") }).await.is_err());
        assert_eq!(background.run(|| 1).await.unwrap(), 1);
    }
}
