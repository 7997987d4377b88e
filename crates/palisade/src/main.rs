//! `palisade`: runs the server and the administrator's commands against a data directory.
//!
//! Exit codes: 0 success, 1 a command failed, 2 usage error (from clap).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use palisade_core::{Config, Core};

mod audit;
mod import;
mod inspect;
mod jobs;
mod log;
mod migrate;
mod mirror;
mod osv;
mod project;
mod publisher;
mod quarantine;
mod role;
mod scan;
mod serve;
mod token;
mod user;

#[derive(Parser)]
#[command(name = "palisade", version, about = "A secure, self-hosted Python package repository")]
struct Cli {
    /// TOML configuration file (see palisade.example.toml).
    #[arg(long, global = true, env = palisade_core::config::env::PALISADE_CONFIG)]
    config: Option<PathBuf>,
    /// Data directory holding the database and files [default: ./palisade-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// More log output.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage accounts.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Manage project roles (owner, maintainer).
    #[command(subcommand)]
    Role(role::RoleCmd),
    /// Inspect projects and set their status.
    #[command(subcommand)]
    Project(project::ProjectCmd),
    /// Yank a release (or one file of it): installers skip it unless pinned exactly.
    Yank(project::YankArgs),
    /// Undo a yank.
    Unyank(project::UnyankArgs),
    /// Remove a file. Its filename stays reserved forever.
    RemoveFile {
        filename: String,
        /// Remove it as malicious: an OSV record of the verdict is written first (and printed).
        #[arg(long)]
        malicious: bool,
        /// The reviewer's note, for the record.
        #[arg(long, requires = "malicious")]
        note: Option<String>,
    },
    /// Scan distribution files or folders for malware, offline (no server or data needed).
    ///
    /// Exit code: 0 when everything is clean, 1 when anything is suspicious or malicious,
    /// 2 on usage errors.
    Scan(scan::ScanArgs),
    /// List what installers would extract from distribution files: every file under each path
    /// it will have (links followed), with size and SHA-256, and the archive's anomalies
    /// (offline).
    ///
    /// Exit code: 0 when every archive means the same to every extractor, 1 when one does not
    /// (the scanner never calls it clean), 2 on usage errors.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per file.
        #[arg(long)]
        json: bool,
    },
    /// Work with YARA rule folders.
    #[command(subcommand)]
    Rules(scan::RulesCmd),
    /// Review files the scanner held back.
    #[command(subcommand)]
    Quarantine(quarantine::QuarantineCmd),
    /// Load a folder of distributions (pypiserver's flat or per-project layout) through the
    /// publishing pipeline: every file is validated and scanned as an upload is; what an upload
    /// would be refused is reported and skipped. Exit code 1 when any file was refused.
    Import(import::ImportArgs),
    /// Copy this instance into a new, empty database (and blob storage): from the embedded
    /// layout into PostgreSQL and a bucket. Stop the servers first.
    Migrate(migrate::MigrateArgs),
    /// The durable job queue (mail): list jobs, retry failed ones.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Re-scan stored files with the current rules; new hits are quarantined.
    Rescan {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
    },
    /// Manage trusted publishers (OIDC): CI workflows that may upload without a stored token.
    #[command(subcommand)]
    Publisher(publisher::PublisherCmd),
    /// The transparency log: its key, an audit against what is stored, and a client's check.
    #[command(subcommand)]
    Log(log::LogCmd),
    /// Information sharing: OSV feeds, Palisade's own records, waivers and reports.
    #[command(subcommand)]
    Osv(osv::OsvCmd),
    /// The pull-through mirror: status, cooldown exemptions, held upstream files, prefetch.
    #[command(subcommand)]
    Mirror(mirror::MirrorCmd),
    /// Read the security event log, newest first.
    Audit {
        /// Only events about this project.
        #[arg(long)]
        project: Option<String>,
        /// Only events about this user.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Scanning is offline and needs no configuration, data directory or runtime.
    match &cli.command {
        Command::Scan(args) => return scan::run(args, cli.quiet),
        Command::Inspect { files, json } => return inspect::run(files, *json),
        Command::Rules(scan::RulesCmd::Check { dir }) => return scan::check_rules(dir),
        // A client's check of a remote log: no data directory either.
        Command::Log(log::LogCmd::Verify(args)) => return log::verify(args),
        _ => {}
    }
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => return report(e),
    };
    init_logging(&config, &cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return report(e.into()),
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

/// Runs a command that needs the data directory. Only `serve` starts the HTTP server; the others
/// open the core (database and files) and call its operations.
async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    if let Command::Serve { .. } = cli.command {
        return serve::run(config).await;
    }
    let core = Core::open(config.clone()).await?;
    let result = match cli.command {
        Command::User(cmd) => user::run(&core, cmd).await,
        Command::Token(cmd) => token::run(&core, cmd).await,
        Command::Role(cmd) => role::run(&core, cmd).await,
        Command::Project(cmd) => project::run(&core, cmd).await,
        Command::Yank(args) => project::yank(&core, args).await,
        Command::Unyank(args) => project::unyank(&core, args).await,
        Command::RemoveFile { filename, malicious, note } => project::remove_file(&core, &filename, malicious, note.as_deref()).await,
        Command::Osv(cmd) => osv::run(&core, cmd).await,
        Command::Mirror(cmd) => mirror::run(&core, cmd, cli.quiet).await,
        Command::Publisher(cmd) => publisher::run(&core, cmd).await,
        Command::Audit { project, user, limit, json } => audit::run(&core, project, user, limit, json).await,
        Command::Quarantine(cmd) => quarantine::run(&core, cmd).await,
        Command::Rescan { project } => quarantine::rescan(&core, project).await,
        Command::Import(args) => import::run(&core, args, cli.quiet).await,
        Command::Jobs(cmd) => jobs::run(&core, cmd).await,
        Command::Migrate(args) => migrate::run(&core, args, cli.quiet).await,
        Command::Log(cmd) => log::run(&core, cmd).await,
        Command::Serve { .. } | Command::Scan(_) | Command::Inspect { .. } | Command::Rules(_) => {
            unreachable!("handled before the data directory is opened")
        }
    };
    // Operations queue mail (a new token, a changed role) in the background: send it before the
    // process ends.
    core.run_own_jobs(std::time::Duration::from_secs(30)).await;
    result
}

fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let text = match &cli.config {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?,
        None => String::new(),
    };
    let mut config = Config::load(&text, |k| std::env::var(k).ok())?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if let Command::Serve { listen: Some(l) } = &cli.command {
        anyhow::ensure!(l.parse::<std::net::SocketAddr>().is_ok(), "--listen {l:?}: expected an address such as 127.0.0.1:8080");
        config.listen = l.clone();
    }
    Ok(config)
}

fn init_logging(config: &Config, cli: &Cli) {
    let filter = if cli.verbose {
        "debug".to_string()
    } else if cli.quiet {
        "warn".to_string()
    } else {
        config.log.clone()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// The first line of standard input, for passwords (never an argument: those show up in `ps`).
fn read_secret_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!pw.is_empty(), "no password on standard input");
    Ok(pw)
}

fn time(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}
