//! `palisade import`: a folder of distributions, as pypiserver keeps them, through the publishing
//! pipeline.

use std::path::{Path, PathBuf};

use anyhow::bail;
use palisade_core::access::Origin;
use palisade_core::publish::Published;
use palisade_core::{Core, Error};
use palisade_dist::{DistFilename, DistKind};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// A folder of distributions: flat, or one folder per project (pypiserver's layouts); read
    /// recursively, without following symbolic links.
    pub dir: PathBuf,
    /// The user who owns the projects the import creates, on whose behalf every file is
    /// published. An existing project takes files only if this user is one of its owners or
    /// maintainers.
    #[arg(long)]
    pub owner: String,
}

/// What the walk found.
#[derive(Default)]
struct Found {
    dists: Vec<(DistFilename, PathBuf)>,
    /// Not distributions (by name), with why.
    skipped: Vec<(PathBuf, String)>,
}

fn walk(dir: &Path, found: &mut Found) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_symlink() {
            found.skipped.push((path, "a symbolic link (not followed)".into()));
        } else if ty.is_dir() {
            walk(&path, found)?;
        } else if ty.is_file() {
            match DistFilename::parse(&name) {
                Ok(d) => found.dists.push((d, path)),
                Err(e) => found.skipped.push((path, format!("not a distribution: {e}"))),
            }
        } else {
            found.skipped.push((path, "not a regular file (a FIFO, socket or device)".into()));
        }
    }
    Ok(())
}

pub async fn run(core: &Core, args: ImportArgs, quiet: bool) -> anyhow::Result<()> {
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    let principal = core.console_principal(&args.owner).await?;
    let mut found = Found::default();
    walk(&args.dir, &mut found)?;
    // Oldest first, sdists before wheels, so the index grows as it did where the files came from.
    found.dists.sort_by(|(a, pa), (b, pb)| {
        let kind = |d: &DistFilename| matches!(d.kind, DistKind::Wheel);
        (&a.normalized_name, &a.version, kind(a), pa).cmp(&(&b.normalized_name, &b.version, kind(b), pb))
    });
    let origin = Origin { addr: None, user_agent: Some(format!("palisade import ({})", std::env::var("USER").unwrap_or_default())) };
    let bar = indicatif::ProgressBar::new(found.dists.len() as u64);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut published, mut quarantined, mut present, mut refused) = (0, 0, 0, Vec::new());
    for (_, path) in &found.dists {
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        match core.import_file(&principal, &origin, path).await {
            Ok(Published::Published) => published += 1,
            Ok(Published::Quarantined) => {
                quarantined += 1;
                bar.suspend(|| eprintln!("quarantined for review: {}", path.display()));
            }
            Ok(Published::Identical) => present += 1,
            // The store or the scanner failing is not about this file: stop, so that a rerun
            // (which skips what is already in) picks up from here.
            Err(e @ (Error::Internal(_) | Error::Unavailable(_))) => {
                bar.abandon();
                bail!("stopped at {}: {e}", path.display());
            }
            Err(e) => {
                bar.suspend(|| eprintln!("refused {}: {e}", path.display()));
                refused.push((path.clone(), e.to_string()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (path, why) in &found.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    for (path, why) in &refused {
        println!("refused\t{}\t{why}", path.display());
    }
    eprintln!(
        "imported {} file(s) ({quarantined} of them held for review), {present} already present, {} refused, {} skipped",
        published + quarantined,
        refused.len(),
        found.skipped.len()
    );
    if !refused.is_empty() {
        bail!("{} file(s) were refused; the rest were imported", refused.len());
    }
    Ok(())
}
