//! `palisade osv`: information sharing. Feeds in (`sync`, `feeds`), Palisade's own records out
//! (`list`, `export`), waivers, and the reports users filed.

use std::path::PathBuf;

use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::{self, Actor};

use crate::time;

#[derive(Subcommand)]
pub enum OsvCmd {
    /// Read the configured OSV feeds now (every one, or `--feed NAME`) and enforce what they
    /// hold. Exit code 1 when a feed could not be read.
    Sync {
        #[arg(long)]
        feed: Option<String>,
        /// Apply it even if it would drop most of the feed's records or newly block a large share
        /// of the hosted projects (what a sync refuses otherwise, in case of an accident).
        #[arg(long)]
        force: bool,
    },
    /// Drop every record of a feed (one removed from the configuration; a server also does this
    /// at start for feeds it no longer has).
    Forget { feed: String },
    /// The configured feeds and their last sync.
    Feeds,
    /// Palisade's own records (its malware verdicts), newest change first.
    List {
        /// Print each record's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write Palisade's records in the ossf/malicious-packages layout under DIR
    /// (`osv/malicious/pypi/<name>/<ID>.json`, withdrawn ones under `osv/withdrawn/`).
    Export {
        dir: PathBuf,
        /// Write them as contributions to ossf/malicious-packages: `MAL-0000-<ID>.json`,
        /// without `id` and `summary`, withdrawn ones left out.
        #[arg(long)]
        contribute: bool,
    },
    /// Waive a record for one project (it no longer blocks that project's files), with a
    /// reason; `--off` lifts the waiver. Audited.
    Waive {
        project: String,
        id: String,
        #[arg(long, required_unless_present = "off")]
        reason: Option<String>,
        #[arg(long, conflicts_with = "reason")]
        off: bool,
    },
    /// Waivers in force.
    Waivers,
    /// Reports users filed (the observations API), newest first, with each reporter's record.
    Reports {
        #[arg(long)]
        project: Option<String>,
    },
}

pub async fn run(core: &Core, cmd: OsvCmd) -> anyhow::Result<()> {
    match cmd {
        OsvCmd::Sync { feed, force } => {
            let feeds: Vec<_> = core.config.sharing.feeds.iter().filter(|f| feed.as_ref().is_none_or(|n| &f.name == n)).cloned().collect();
            if feeds.is_empty() {
                anyhow::bail!(match feed {
                    Some(n) => format!("no feed named {n:?} in [[sharing.feeds]]"),
                    None => "no feeds are configured: add [[sharing.feeds]] with name and source (docs/sharing.md)".into(),
                });
            }
            let mut failed = 0;
            for f in feeds {
                match core.sync_feed(&f, force).await {
                    Ok(r) => {
                        eprintln!(
                            "{}: {} record(s) about PyPI packages, {} skipped; {} added, {} changed, {} removed",
                            r.feed, r.records, r.skipped, r.changes.added, r.changes.updated, r.changes.removed
                        );
                        for e in &r.errors {
                            eprintln!("  skipped: {e}");
                        }
                        for (project, id, files) in &r.blocked {
                            println!("{id} blocks {project}: {}", files.join(", "));
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: could not be read: {e:#}", f.name);
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} feed(s) could not be read");
            }
        }
        OsvCmd::Forget { feed } => {
            if core.config.sharing.feeds.iter().any(|f| f.name == feed) {
                anyhow::bail!("{feed:?} is still in [[sharing.feeds]]: remove it there first, or its next sync brings the records back");
            }
            let n = core.db.forget_feed(&feed).await?;
            eprintln!("dropped {n} record(s) of {feed}");
        }
        OsvCmd::Feeds => {
            let synced = core.db.feeds().await?;
            println!("{:<20} {:<8} {:<24} {:>8} {:>8}  source", "feed", "every", "last sync", "records", "skipped");
            for f in &core.config.sharing.feeds {
                let s = synced.iter().find(|s| s.name == f.name);
                println!(
                    "{:<20} {:<8} {:<24} {:>8} {:>8}  {}",
                    f.name,
                    format!("{}s", f.every().as_secs()),
                    s.map(|s| time(s.synced_at)).unwrap_or_else(|| "never".into()),
                    s.map(|s| s.records).unwrap_or(0),
                    s.map(|s| s.skipped).unwrap_or(0),
                    f.source
                );
                if let Some(e) = s.and_then(|s| s.last_error.as_deref()) {
                    println!("  last problem: {e}");
                }
            }
        }
        OsvCmd::List { json } => {
            for r in core.local_records().await? {
                if json {
                    println!("{}", r.record);
                } else {
                    let v: serde_json::Value = serde_json::from_str(&r.record).unwrap_or_default();
                    let name = v["affected"][0]["package"]["name"].as_str().unwrap_or("?");
                    let versions: Vec<&str> =
                        v["affected"][0]["versions"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
                    let state = if r.withdrawn { "withdrawn" } else { "active" };
                    println!("{:<24} {:<10} {:<24} {} {}", r.osv_id, state, r.modified, name, versions.join(","));
                }
            }
        }
        OsvCmd::Export { dir, contribute } => {
            let records = core.local_records().await?;
            let written = palisade_core::sharing::records::export(&records, &dir, contribute)?;
            for p in &written {
                println!("{}", p.display());
            }
            eprintln!("wrote {} record(s) under {}", written.len(), dir.display());
        }
        OsvCmd::Waive { project, id, reason, off } => {
            let reason = if off { None } else { reason };
            let changed = admin::waive(core, &Actor::cli(), &project, &id, reason.as_deref()).await?;
            match (changed, off) {
                (true, false) => eprintln!("{id} no longer blocks {project}"),
                (true, true) => eprintln!("the waiver of {id} for {project} is lifted: it blocks again"),
                (false, _) => eprintln!("nothing changed"),
            }
        }
        OsvCmd::Waivers => {
            for w in core.db.waivers().await? {
                println!("{:<24} {:<24} {:<24} {} ({})", w.project, w.osv_id, time(w.created_at), w.reason, w.actor);
            }
        }
        OsvCmd::Reports { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            for o in core.db.observations(project.as_deref()).await? {
                let (confirmed, released, open) = core.db.reporter_accuracy(o.reporter_id).await?;
                println!(
                    "#{} {} {}{} {} by {}{} ({confirmed} confirmed, {released} released, {open} open) at {}",
                    o.id,
                    o.kind,
                    o.project,
                    o.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                    o.outcome.as_deref().or(o.action.as_deref()).unwrap_or("open"),
                    o.reporter,
                    if o.trusted { " (trusted)" } else { "" },
                    time(o.created_at)
                );
                println!("    {}", o.summary);
                if let Some(u) = &o.inspector_url {
                    println!("    {u}");
                }
            }
        }
    }
    Ok(())
}
