//! `palisade migrate --to URL [--storage URL]`: this instance into another database (and blob
//! storage), typically from the embedded layout into PostgreSQL and a bucket.

use palisade_core::Core;
use palisade_core::migrate::{Step, Target};

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The target database, new and empty: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or
    /// `sqlite://PATH`). Palisade creates its tables there.
    #[arg(long)]
    pub to: String,
    /// The target blob storage, empty: `s3://BUCKET[/PREFIX]` (endpoint, region and credentials
    /// from the [storage] settings or the AWS_* variables) or `file://PATH`. Without it, the files
    /// stay where they are and the new database uses them there.
    #[arg(long)]
    pub storage: Option<String>,
}

pub async fn run(core: &Core, args: MigrateArgs, quiet: bool) -> anyhow::Result<()> {
    let storage = match &args.storage {
        Some(url) => {
            let mut settings = core.config.storage.clone();
            settings.url = Some(url.clone());
            Some(settings.storage(&core.config.data_dir).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let target = Target { database_url: args.to.clone(), storage };
    let bar = indicatif::ProgressBar::new_spinner();
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let summary = core
        .migrate_to(&target, &mut |step| match step {
            Step::Rows { table, copied } => bar.set_message(format!("{table}: {copied} rows")),
            Step::Blobs { done, of } => bar.set_message(format!("files: {done} of {of} copied and checked")),
        })
        .await;
    bar.finish_and_clear();
    let summary = summary?;
    for (table, rows) in &summary.counts {
        eprintln!("{table:<18} {rows:>9} rows");
    }
    eprintln!(
        "migrated: {} rows in {} tables, {} files ({} bytes, every sha256 checked); point every node at the new database{} and start them",
        summary.counts.iter().map(|(_, n)| n).sum::<i64>(),
        summary.counts.len(),
        summary.blobs,
        summary.bytes,
        if args.storage.is_some() { " and storage" } else { "" }
    );
    eprintln!(
        "the transparency log's signing key is not in the database: give every node the key this instance signs with \
         (its log-signing.key, or PALISADE_TRANSPARENCY_KEY set to what `palisade log key --private` prints)"
    );
    Ok(())
}
