//! `palisade`: runs the server and the administrator's commands against a data directory.
//!
//! Exit codes: 0 success, 1 a command failed, 2 usage error (from clap).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use palisade_server::{AppState, Config, admin};
use palisade_store::{Role, now_micros};

mod inspect;
mod scan;

#[derive(Parser)]
#[command(name = "palisade", version, about = "A secure, self-hosted Python package repository")]
struct Cli {
    /// TOML configuration file (see palisade.example.toml).
    #[arg(long, global = true, env = "PALISADE_CONFIG")]
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
    User(UserCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage project roles (owner, maintainer).
    #[command(subcommand)]
    Role(RoleCmd),
    /// Inspect projects and set their status.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Yank a release (or one file of it): installers skip it unless pinned exactly.
    Yank(YankArgs),
    /// Undo a yank.
    Unyank(UnyankArgs),
    /// Remove a file. Its filename stays reserved forever.
    RemoveFile { filename: String },
    /// Scan distribution files or folders for malware, offline (no server or data needed).
    ///
    /// Exit code: 0 when everything is clean, 1 when anything is suspicious or malicious,
    /// 2 on usage errors.
    Scan(ScanArgs),
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
    Rules(RulesCmd),
    /// Review files the scanner held back.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Re-scan stored files with the current rules; new hits are quarantined.
    Rescan {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
    },
    /// Manage trusted publishers (OIDC): CI workflows that may upload without a stored token.
    #[command(subcommand)]
    Publisher(PublisherCmd),
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

#[derive(Subcommand)]
enum PublisherCmd {
    /// Register a trusted publisher for PROJECT (a pending one, with --owner, if PROJECT does not exist yet).
    ///
    /// GitHub Actions: --github OWNER/REPO --workflow FILE [--environment ENV].
    /// GitLab CI: --gitlab NAMESPACE/PROJECT --ci-config PATH [--environment ENV].
    /// Any trusted OIDC issuer: --issuer URL --claim KEY=VALUE ... (exact matches).
    Add {
        project: String,
        #[arg(long, conflicts_with_all = ["gitlab", "issuer"], requires = "workflow")]
        github: Option<String>,
        /// The workflow file name, such as release.yml.
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, conflicts_with = "issuer", requires = "ci_config")]
        gitlab: Option<String>,
        /// GitLab's CI configuration path, such as .gitlab-ci.yml.
        #[arg(long = "ci-config")]
        ci_config: Option<String>,
        /// Only runs in this deployment environment.
        #[arg(long)]
        environment: Option<String>,
        #[arg(long, requires = "claims")]
        issuer: Option<String>,
        /// A claim the ID token must carry with exactly this value (repeatable).
        #[arg(long = "claim", value_name = "KEY=VALUE")]
        claims: Vec<String>,
        /// For a project that does not exist yet: the user who will own it.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List trusted publishers, of one project or all.
    List { project: Option<String> },
    /// Remove a trusted publisher by its id (its live tokens are revoked).
    Remove { id: i64 },
}

#[derive(Subcommand)]
enum QuarantineCmd {
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
    /// Publish a quarantined file (a false positive).
    Release {
        filename: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Confirm a quarantined file as malicious: remove it; the filename stays reserved.
    Confirm {
        filename: String,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Args)]
pub(crate) struct ScanArgs {
    /// Files (.whl, .tar.gz, .zip, .tar.bz2, .egg, ...) or folders to search for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif"])]
    format: String,
    /// Extra folder of YARA rules (repeatable).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// A list of popular project names (one per line) to check typosquatting against.
    #[arg(long)]
    popular: Option<PathBuf>,
    /// Only print files that are not clean (text format).
    #[arg(long)]
    only_flagged: bool,
    /// Threads that analyse the members of one file (as the server does for an upload); files
    /// are scanned in parallel anyway.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    member_threads: u16,
    /// Analyse every file afresh: by default a Python file met again (a wheel repeating its
    /// sdist, a version repeating the last) reuses its analysis, as the server does. Reports
    /// are the same either way; this is for timing first uploads.
    #[arg(long)]
    cold: bool,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Compile the .yar/.yara files of DIR and report errors.
    Check { dir: PathBuf },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account.
    Create {
        name: String,
        /// Make the account an instance administrator.
        #[arg(long)]
        admin: bool,
        /// The account's email address.
        #[arg(long)]
        email: Option<String>,
        /// Vouch for the email address instead of sending a verification link.
        #[arg(long, requires = "email")]
        email_verified: bool,
        /// Read the initial password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password, read from standard input; ends their sessions and revokes their tokens.
    Password { name: String },
    /// Mark a user's current email address as verified.
    VerifyEmail { name: String },
    /// Remove all of a user's second factors and recovery codes and end their sessions, after
    /// checking the person's identity out of band (lost authenticator and recovery codes).
    Reset2fa { name: String },
    /// Disable an account (a compromised or departed user): its sessions end and its tokens stop working.
    Disable { name: String },
    /// Re-enable a disabled account.
    Enable { name: String },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an API token and print it (only the token, on stdout; it is shown once).
    Create {
        #[arg(long)]
        user: String,
        /// Limit the token to this project (repeatable). Without it the token is user-wide.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Limit the token to this action: upload, yank or manage (repeatable). Without it, all.
        #[arg(long = "action", value_parser = ["upload", "yank", "manage"])]
        actions: Vec<String>,
        /// Lifetime such as 90s, 12h, 30d, 2w. Without it the token does not expire.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum RoleCmd {
    /// Give USER a role on PROJECT.
    Add {
        project: String,
        user: String,
        #[arg(long, value_parser = ["owner", "maintainer"])]
        role: String,
    },
    /// Remove USER's role on PROJECT.
    Remove { project: String, user: String },
    /// List roles, of one project or all.
    List { project: Option<String> },
}

#[derive(Subcommand)]
enum ProjectCmd {
    /// List projects.
    List,
    /// Show a project's releases, files and roles.
    Show { name: String },
    /// Set a PEP 792 status: active, archived, quarantined or deprecated.
    Status {
        name: String,
        #[arg(value_parser = ["active", "archived", "quarantined", "deprecated"])]
        status: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Args)]
struct YankArgs {
    project: String,
    version: String,
    /// Only this file of the release.
    file: Option<String>,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
struct UnyankArgs {
    project: String,
    version: String,
    file: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Scanning is offline and needs no configuration, data directory or runtime.
    match &cli.command {
        Command::Scan(args) => return scan::run(args, cli.quiet),
        Command::Inspect { files, json } => return inspect::run(files, *json),
        Command::Rules(RulesCmd::Check { dir }) => return scan::check_rules(dir),
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

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let state =
        AppState::open(config.clone()).await.with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
    let db = &state.db;
    let actor = "cli";
    match cli.command {
        Command::Serve { .. } => {
            let listener =
                tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
            let addr = listener.local_addr()?;
            eprintln!("palisade listening on http://{addr}/ (data in {})", config.data_dir.display());
            palisade_server::serve(state, listener, shutdown_signal()).await?;
        }
        Command::User(UserCmd::Create { name, admin, email, email_verified, password_stdin }) => {
            let password = if password_stdin { Some(read_secret_line()?) } else { None };
            let u = admin::create_user(db, &name, admin, email.as_deref(), email_verified, password.as_deref()).await?;
            cli_event(db, "account_created", Some(u.id), None, serde_json::json!({ "admin": admin, "email": email })).await?;
            eprintln!("created user {}{}", u.name, if u.is_admin { " (administrator)" } else { "" });
        }
        Command::User(UserCmd::Password { name }) => {
            let password = read_secret_line()?;
            let (sessions, tokens) = admin::set_password(db, &name, &password).await?;
            let u = db.user_by_name(&name).await?;
            cli_event(
                db,
                "password_changed",
                Some(u.id),
                None,
                serde_json::json!({ "sessions_ended": sessions, "tokens_revoked": tokens }),
            )
            .await?;
            eprintln!("password of {name} set; {sessions} session(s) ended, {tokens} token(s) revoked");
        }
        Command::User(UserCmd::VerifyEmail { name }) => {
            let u = db.user_by_name(&name).await?;
            let email = u.email.clone().with_context(|| format!("user {name:?} has no email address"))?;
            db.mark_email_verified(u.id, &email).await?;
            cli_event(db, "email_verified", Some(u.id), None, serde_json::json!({ "email": email })).await?;
            eprintln!("{email} of {name} is verified");
        }
        Command::User(cmd @ (UserCmd::Disable { .. } | UserCmd::Enable { .. })) => {
            let (name, disable) = match cmd {
                UserCmd::Disable { name } => (name, true),
                UserCmd::Enable { name } => (name, false),
                _ => unreachable!("matched above"),
            };
            let u = db.user_by_name(&name).await?;
            db.set_disabled(u.id, disable).await?;
            cli_event(db, if disable { "account_disabled" } else { "account_enabled" }, Some(u.id), None, serde_json::Value::Null).await?;
            eprintln!("{name} is {}", if disable { "disabled: sessions ended, tokens refused" } else { "enabled again" });
        }
        Command::User(UserCmd::Reset2fa { name }) => {
            let u = db.user_by_name(&name).await?;
            let n = db.reset_second_factors(u.id).await?;
            cli_event(db, "2fa_removed", Some(u.id), None, serde_json::json!({ "factors": n, "by": "administrator" })).await?;
            eprintln!("removed {n} second factor(s) of {name} and ended their sessions; they must enrol again before publishing");
        }
        Command::User(UserCmd::List) => {
            println!("{:<24} {:<6} {:<4} {:<32} created", "name", "admin", "2fa", "email");
            for u in db.list_users().await? {
                let email = u.email.clone().map(|e| if u.email_verified() { e } else { format!("{e} (unverified)") }).unwrap_or_default();
                println!(
                    "{:<24} {:<6} {:<4} {:<32} {}",
                    u.name,
                    if u.is_admin { "yes" } else { "no" },
                    if u.has_2fa { "yes" } else { "no" },
                    email,
                    time(u.created_at)
                );
            }
        }
        Command::Token(TokenCmd::Create { user, projects, actions, expires, description }) => {
            let expires = expires.as_deref().map(admin::parse_duration).transpose()?;
            let (id, secret) =
                admin::create_token(db, &config.accounts, &user, &projects, &actions, expires, description.as_deref()).await?;
            println!("{secret}");
            let u = db.user_by_name(&user).await?;
            cli_event(
                db,
                "token_created",
                Some(u.id),
                None,
                serde_json::json!({ "token_id": id, "projects": projects, "actions": actions, "via": "cli" }),
            )
            .await?;
            eprintln!("created token {id} for {user}; it is shown only this once");
        }
        Command::Token(TokenCmd::List { user }) => {
            println!(
                "{:<5} {:<16} {:<12} {:<24} {:<20} {:<20} {:<20} state",
                "id", "user", "hint", "projects", "created", "expires", "last used"
            );
            let now = now_micros();
            for t in db.list_tokens(user.as_deref()).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                let projects = t.project_scope().map(|p| p.join(",")).unwrap_or_else(|| "(all)".into());
                let last = t
                    .last_used_at
                    .map(|l| format!("{} {}", time(l), t.last_used_addr.clone().unwrap_or_default()))
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:<5} {:<16} {:<12} {:<24} {:<20} {:<20} {:<20} {state}",
                    t.id,
                    t.user_name,
                    format!("{}…", t.hint),
                    projects,
                    time(t.created_at),
                    t.expires_at.map(time).unwrap_or_else(|| "never".into()),
                    last
                );
            }
        }
        Command::Token(TokenCmd::Revoke { id }) => {
            db.revoke_token(id, "revoked by an administrator").await?;
            let user_id = db.token_by_id(id).await?.and_then(|t| t.user_id);
            cli_event(db, "token_revoked", user_id, None, serde_json::json!({ "token_id": id })).await?;
            eprintln!("revoked token {id}");
        }
        Command::Publisher(cmd) => publisher(&state, cmd).await?,
        Command::Audit { project, user, limit, json } => audit(db, project, user, limit, json).await?,
        Command::Role(RoleCmd::Add { project, user, role }) => {
            let role = Role::parse(&role).context("role must be owner or maintainer")?;
            let normalized = palisade_dist::normalize(&project);
            db.set_role(&normalized, &user, role, actor).await?;
            let (u, p) = (db.user_by_name(&user).await?, db.project(&normalized).await?);
            cli_event(db, "role_changed", Some(u.id), p.map(|p| p.id), serde_json::json!({ "user": user, "to": role.as_str() })).await?;
            eprintln!("{user} is now {} of {project}", role.as_str());
        }
        Command::Role(RoleCmd::Remove { project, user }) => {
            let normalized = palisade_dist::normalize(&project);
            db.remove_role(&normalized, &user, actor).await?;
            let (u, p) = (db.user_by_name(&user).await?, db.project(&normalized).await?);
            cli_event(db, "role_changed", Some(u.id), p.map(|p| p.id), serde_json::json!({ "user": user, "to": null })).await?;
            eprintln!("removed {user}'s role on {project}");
        }
        Command::Role(RoleCmd::List { project }) => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            for r in db.roles(project.as_deref()).await? {
                println!("{:<32} {:<24} {}", r.project, r.user_name, r.role);
            }
        }
        Command::Project(ProjectCmd::List) => {
            println!("{:<32} {:<12} {:<8} created", "name", "status", "serial");
            for p in db.list_projects().await? {
                println!("{:<32} {:<12} {:<8} {}", p.name, p.status, p.last_serial, time(p.created_at));
            }
        }
        Command::Project(ProjectCmd::Show { name }) => show_project(db, &name).await?,
        Command::Project(ProjectCmd::Status { name, status, reason }) => {
            db.set_status(&palisade_dist::normalize(&name), &status, reason.as_deref(), actor).await?;
            eprintln!("{name} is now {status}");
        }
        Command::Yank(a) => {
            let n = db
                .set_yanked(&palisade_dist::normalize(&a.project), &a.version, a.file.as_deref(), true, a.reason.as_deref(), actor)
                .await?;
            let p = db.project(&palisade_dist::normalize(&a.project)).await?;
            cli_event(
                db,
                "release_yanked",
                None,
                p.map(|p| p.id),
                serde_json::json!({ "version": a.version, "file": a.file, "reason": a.reason }),
            )
            .await?;
            eprintln!("yanked {n} file(s) of {} {}", a.project, a.version);
        }
        Command::Unyank(a) => {
            let n = db.set_yanked(&palisade_dist::normalize(&a.project), &a.version, a.file.as_deref(), false, None, actor).await?;
            let p = db.project(&palisade_dist::normalize(&a.project)).await?;
            cli_event(db, "release_unyanked", None, p.map(|p| p.id), serde_json::json!({ "version": a.version, "file": a.file })).await?;
            eprintln!("un-yanked {n} file(s) of {} {}", a.project, a.version);
        }
        Command::Scan(_) | Command::Inspect { .. } | Command::Rules(_) => unreachable!("handled before the data directory is opened"),
        Command::Quarantine(cmd) => quarantine(&state, cmd).await?,
        Command::Rescan { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            let s = admin::rescan(&state, project.as_deref(), actor).await?;
            for (f, why) in &s.newly_quarantined {
                println!("quarantined {f}: {why}");
            }
            for f in &s.missing_blobs {
                eprintln!("warning: the stored file for {f} is missing");
            }
            eprintln!("rescanned {} file(s); {} newly quarantined", s.scanned, s.newly_quarantined.len());
        }
        Command::RemoveFile { filename } => {
            let project_id = db.file(&filename).await?.map(|f| f.project_id);
            db.remove_file(&state.blobs, &filename, actor).await?;
            cli_event(db, "file_removed", None, project_id, serde_json::json!({ "filename": filename })).await?;
            eprintln!("removed {filename}; the filename stays reserved");
        }
    }
    Ok(())
}

/// Records an administrator's CLI action in the security event log.
async fn cli_event(
    db: &palisade_store::Db,
    kind: &str,
    user_id: Option<i64>,
    project_id: Option<i64>,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let operator = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let event = palisade_store::NewEvent {
        kind: kind.into(),
        user_id,
        project_id,
        actor: format!("admin-cli ({operator})"),
        details: Some(details.to_string()),
        ..Default::default()
    };
    db.record_event(&event).await?;
    Ok(())
}

/// The first line of standard input, for passwords (never an argument: those show up in `ps`).
fn read_secret_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!pw.is_empty(), "no password on standard input");
    Ok(pw)
}

async fn publisher(state: &AppState, cmd: PublisherCmd) -> anyhow::Result<()> {
    let db = &state.db;
    match cmd {
        PublisherCmd::Add { project, github, workflow, gitlab, ci_config, environment, issuer, claims, owner } => {
            let mut input = palisade_server::publishers::PublisherInput::default();
            if let Some(repository) = github {
                input.github = Some(palisade_server::publishers::GithubInput {
                    repository,
                    workflow: workflow.unwrap_or_default(),
                    environment,
                    owner_id: None,
                    repository_id: None,
                });
            } else if let Some(project) = gitlab {
                input.gitlab =
                    Some(palisade_server::publishers::GitlabInput { project, ci_config_path: ci_config.unwrap_or_default(), environment });
            } else if let Some(issuer) = issuer {
                input.issuer = Some(issuer);
                for c in claims {
                    let (k, v) = c.split_once('=').with_context(|| format!("--claim {c:?}: expected KEY=VALUE"))?;
                    input.claims.insert(k.to_string(), v.to_string());
                }
            } else {
                anyhow::bail!(
                    "describe the publisher with --github OWNER/REPO --workflow FILE, --gitlab NAMESPACE/PROJECT --ci-config PATH, or --issuer URL --claim KEY=VALUE"
                );
            }
            let p = admin::add_publisher(db, &state.config, &project, input, owner.as_deref()).await?;
            println!("{}", palisade_server::publishers::describe(&p));
            eprintln!(
                "added trusted publisher {}{}",
                p.id,
                if p.pending { " (pending: it may create the project on its first upload)" } else { "" }
            );
        }
        PublisherCmd::List { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            for p in db.publishers(project.as_deref()).await? {
                println!("{}", palisade_server::publishers::describe(&p));
            }
        }
        PublisherCmd::Remove { id } => {
            let p = db.publisher(id).await?.with_context(|| format!("no trusted publisher with id {id}"))?;
            db.remove_publisher(id).await?;
            cli_event(db, "publisher_removed", None, p.project_id, serde_json::json!({ "publisher_id": id, "issuer": p.issuer })).await?;
            eprintln!("removed trusted publisher {id} of {}", p.project);
        }
    }
    Ok(())
}

async fn audit(db: &palisade_store::Db, project: Option<String>, user: Option<String>, limit: i64, json: bool) -> anyhow::Result<()> {
    let project_id = match &project {
        Some(p) => Some(db.project(&palisade_dist::normalize(p)).await?.with_context(|| format!("no project {p:?}"))?.id),
        None => None,
    };
    let user_id = match &user {
        Some(u) => Some(db.user_by_name(u).await?.id),
        None => None,
    };
    for e in db.events(user_id, project_id, limit).await? {
        if json {
            println!("{}", palisade_server::events::to_json(&e));
            continue;
        }
        println!(
            "{}  {:<26} actor={} user={} project={} addr={} ua={:?} {}",
            time(e.at),
            e.kind,
            e.actor,
            e.user_name.as_deref().unwrap_or("-"),
            e.project.as_deref().unwrap_or("-"),
            e.addr.as_deref().unwrap_or("-"),
            e.user_agent.as_deref().unwrap_or("-"),
            e.details.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn quarantine(state: &AppState, cmd: QuarantineCmd) -> anyhow::Result<()> {
    let db = &state.db;
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
            db.release_file(&filename, "cli", note.as_deref()).await?;
            let project_id = db.file(&filename).await?.map(|f| f.project_id);
            cli_event(
                db,
                "quarantine_decision",
                None,
                project_id,
                serde_json::json!({ "filename": filename, "decision": "released", "note": note }),
            )
            .await?;
            eprintln!("released {filename}: it is published now");
        }
        QuarantineCmd::Confirm { filename, note } => {
            let project_id = db.file(&filename).await?.map(|f| f.project_id);
            db.confirm_file(&state.blobs, &filename, "cli", note.as_deref()).await?;
            cli_event(
                db,
                "quarantine_decision",
                None,
                project_id,
                serde_json::json!({ "filename": filename, "decision": "confirmed", "note": note }),
            )
            .await?;
            eprintln!("confirmed {filename} as malicious: removed, and the filename stays reserved");
        }
    }
    Ok(())
}

async fn show_project(db: &palisade_store::Db, name: &str) -> anyhow::Result<()> {
    let normalized = palisade_dist::normalize(name);
    let p = db.project(&normalized).await?.with_context(|| format!("no project named {normalized:?}"))?;
    println!("name:    {}", p.name);
    println!("status:  {}{}", p.status, p.status_reason.map(|r| format!(" ({r})")).unwrap_or_default());
    println!("serial:  {}", p.last_serial);
    println!("created: {}", time(p.created_at));
    println!("roles:");
    for r in db.roles(Some(&normalized)).await? {
        println!("  {:<24} {}", r.user_name, r.role);
    }
    println!("files:");
    for f in db.project_files(p.id).await? {
        let yank = if f.yanked {
            format!("  yanked{}", f.yanked_reason.clone().map(|r| format!(": {r}")).unwrap_or_default())
        } else {
            String::new()
        };
        let held = if f.is_published() { "" } else { "  QUARANTINED" };
        println!("  {:<10} {:<60} {:>10} sha256={}{yank}{held}", f.version, f.filename, f.size, f.sha256);
    }
    Ok(())
}

fn time(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
