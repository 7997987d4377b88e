//! `palisade jobs`: the durable job queue (mail), for an administrator to see what failed and
//! run it again.

use clap::Subcommand;
use palisade_core::Core;

use crate::time;

#[derive(Subcommand)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state.
        #[arg(long, value_parser = ["queued", "done", "failed"])]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON object per line (payloads left out: mail bodies carry one-time links).
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed job again, with a fresh set of attempts.
    Retry { id: i64 },
}

pub async fn run(core: &Core, cmd: JobsCmd) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List { state, limit, json } => {
            let jobs = core.db.jobs(state.as_deref(), limit).await?;
            if json {
                for j in jobs {
                    let line = serde_json::json!({
                        "id": j.id, "kind": j.kind, "state": j.state, "attempts": j.attempts, "max_attempts": j.max_attempts,
                        "created_at": palisade_core::timestamp(j.created_at), "run_at": palisade_core::timestamp(j.run_at),
                        "locked_by": j.locked_by, "locked_until": j.locked_until.map(palisade_core::timestamp),
                        "last_error": j.last_error, "finished_at": j.finished_at.map(palisade_core::timestamp),
                    });
                    println!("{line}");
                }
                return Ok(());
            }
            println!("{:>6}  {:<6} {:<7} {:>8}  {:<20} last error", "id", "kind", "state", "attempts", "next run / finished");
            for j in jobs {
                let when = if j.state == "queued" { time(j.run_at) } else { j.finished_at.map(time).unwrap_or_default() };
                println!(
                    "{:>6}  {:<6} {:<7} {:>4}/{:<3}  {:<20} {}",
                    j.id,
                    j.kind,
                    j.state,
                    j.attempts,
                    j.max_attempts,
                    when,
                    j.last_error.unwrap_or_default()
                );
            }
        }
        JobsCmd::Retry { id } => {
            core.retry_job(id).await?;
            println!("job {id} queued again");
        }
    }
    Ok(())
}
