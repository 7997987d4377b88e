//! `palisade quarantine` and `palisade rescan`: files the scanner held back.

use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::{self, Actor};

use crate::time;

#[derive(Subcommand)]
pub enum QuarantineCmd {
    /// List files waiting for review.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// List recently refused uploads.
    Rejected {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show a file's scan reports.
    Show {
        filename: String,
        /// Print the stored JSON reports.
        #[arg(long)]
        json: bool,
    },
    /// Publish a quarantined file (a false positive), or one confirmed as malicious (the decision
    /// undone): Palisade's OSV records that list it are withdrawn.
    Release {
        filename: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Confirm a quarantined file as malicious: it is never served again (administrators can
    /// still fetch it), the filename stays reserved, and an OSV record is written; `palisade
    /// remove-file` deletes its bytes.
    Confirm {
        filename: String,
        #[arg(long)]
        note: Option<String>,
    },
}

pub async fn run(core: &Core, cmd: QuarantineCmd) -> anyhow::Result<()> {
    let db = &core.db;
    match cmd {
        QuarantineCmd::List { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            println!("{:<60} {:<24} {:<11} {:>6}  uploaded", "file", "project", "verdict", "score");
            for f in db.quarantined(project.as_deref()).await? {
                let r = db.reports(&f.filename).await?.into_iter().next();
                println!(
                    "{:<60} {:<24} {:<11} {:>6.1}  {}",
                    f.filename,
                    f.project,
                    r.as_ref().map(|r| r.verdict.as_str()).unwrap_or("?"),
                    r.as_ref().map(|r| r.score).unwrap_or(0.0),
                    time(f.upload_time)
                );
                let open: Vec<_> = db.observations(Some(&f.project)).await?.into_iter().filter(|o| o.outcome.is_none()).collect();
                if !open.is_empty() {
                    let by: Vec<String> =
                        open.iter().map(|o| format!("{}{}", o.reporter, if o.trusted { " (trusted)" } else { "" })).collect();
                    println!("    {} open report(s) by {} (palisade osv reports --project {})", open.len(), by.join(", "), f.project);
                }
            }
        }
        QuarantineCmd::Rejected { limit } => {
            println!("{:<60} {:<24} {:<11} {:>6}  when", "file", "project", "verdict", "score");
            for r in db.rejections(limit).await? {
                println!(
                    "{:<60} {:<24} {:<11} {:>6.1}  {} by {}",
                    r.filename,
                    r.project,
                    r.verdict,
                    r.score,
                    time(r.created_at),
                    r.actor.unwrap_or_default()
                );
            }
        }
        QuarantineCmd::Show { filename, json } => {
            let reports = db.reports(&filename).await?;
            anyhow::ensure!(!reports.is_empty(), "no scan report for {filename:?}");
            for r in reports {
                if json {
                    println!("{}", r.report);
                    continue;
                }
                println!(
                    "{} ({}): {} score {:.1} -> {} at {} ({})",
                    r.filename,
                    r.project,
                    r.verdict,
                    r.score,
                    r.outcome,
                    time(r.created_at),
                    r.trigger
                );
                if let Some(d) = &r.decision {
                    println!(
                        "  decision: {d} by {} at {}{}",
                        r.decided_by.clone().unwrap_or_default(),
                        r.decided_at.map(time).unwrap_or_default(),
                        r.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
                    );
                }
                if let Ok(report) = serde_json::from_str::<palisade_scan::Report>(&r.report) {
                    print!("{}", palisade_scan::format::text(&r.filename, &report));
                }
            }
        }
        QuarantineCmd::Release { filename, note } => {
            let withdrawn = admin::release(core, &Actor::cli(), &filename, note.as_deref()).await?;
            eprintln!("released {filename}: it is published now");
            for id in withdrawn {
                eprintln!("withdrew the OSV record {id}");
            }
        }
        QuarantineCmd::Confirm { filename, note } => {
            let osv = admin::confirm(core, &Actor::cli(), &filename, note.as_deref()).await?;
            eprintln!("confirmed {filename} as malicious: no longer served, and the filename stays reserved");
            match osv {
                Some(id) => println!("{id}"),
                None => eprintln!("warning: the OSV record could not be written (see the log)"),
            }
        }
    }
    Ok(())
}

pub async fn rescan(core: &Core, project: Option<String>) -> anyhow::Result<()> {
    let project = project.map(|p| palisade_dist::normalize(&p));
    let s = admin::rescan(core, &Actor::cli(), project.as_deref()).await?;
    for (f, why) in &s.newly_quarantined {
        println!("quarantined {f}: {why}");
    }
    for f in &s.missing_blobs {
        eprintln!("warning: the stored file for {f} is missing");
    }
    eprintln!("rescanned {} file(s); {} newly quarantined", s.scanned, s.newly_quarantined.len());
    Ok(())
}
