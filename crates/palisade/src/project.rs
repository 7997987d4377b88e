//! `palisade project`, `yank`, `unyank` and `remove-file`: projects and their files.

use anyhow::Context;
use clap::{Args, Subcommand};
use palisade_core::Core;
use palisade_core::admin::{self, Actor};
use palisade_store::Project;

use crate::time;

#[derive(Subcommand)]
pub enum ProjectCmd {
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
    /// Refuse uploads without a valid PEP 740 attestation from one of the project's trusted
    /// publishers (`--off` lifts the requirement).
    RequireAttestations {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Mark a project critical: uploading, yanking and managing it then need a WebAuthn security
    /// key or passkey (`accounts.critical_require_webauthn`); `--off` unmarks it. Without a
    /// name, lists the critical projects.
    Critical {
        name: Option<String>,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Args)]
pub struct YankArgs {
    project: String,
    version: String,
    /// Only this file of the release.
    file: Option<String>,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Args)]
pub struct UnyankArgs {
    project: String,
    version: String,
    file: Option<String>,
}

/// The project named `name` (any spelling), or an error saying there is none.
pub async fn existing(core: &Core, name: &str) -> anyhow::Result<Project> {
    let normalized = palisade_dist::normalize(name);
    core.db.project(&normalized).await?.with_context(|| format!("no project named {normalized:?}"))
}

pub async fn run(core: &Core, cmd: ProjectCmd) -> anyhow::Result<()> {
    match cmd {
        ProjectCmd::List => {
            println!("{:<32} {:<12} {:<8} created", "name", "status", "serial");
            for p in core.db.list_projects().await? {
                println!("{:<32} {:<12} {:<8} {}", p.name, p.status, p.last_serial, time(p.created_at));
            }
        }
        ProjectCmd::Show { name } => show(core, &name).await?,
        ProjectCmd::Status { name, status, reason } => {
            admin::set_status(core, &Actor::cli(), &name, &status, reason.as_deref()).await?;
            eprintln!("{name} is now {status}");
        }
        ProjectCmd::RequireAttestations { name, off } => {
            let p = existing(core, &name).await?;
            admin::set_require_attestations(core, &Actor::cli(), &p, !off).await?;
            if off {
                eprintln!("{} accepts uploads without attestations again", p.normalized);
            } else {
                eprintln!("{} now refuses uploads without a valid attestation from one of its trusted publishers", p.normalized);
            }
        }
        ProjectCmd::Critical { name: None, .. } => {
            for p in core.db.critical_projects().await? {
                println!("{}", p.normalized);
            }
        }
        ProjectCmd::Critical { name: Some(name), off } => {
            let p = existing(core, &name).await?;
            admin::set_critical(core, &Actor::cli(), &p, !off).await?;
            if off {
                eprintln!("{} is no longer critical", p.normalized);
            } else if core.config.accounts.critical_require_webauthn {
                eprintln!("{} is critical: its owners and maintainers need a security key or passkey to change it", p.normalized);
            } else {
                eprintln!("{} is critical (accounts.critical_require_webauthn is off: no WebAuthn is required)", p.normalized);
            }
        }
    }
    Ok(())
}

pub async fn yank(core: &Core, a: YankArgs) -> anyhow::Result<()> {
    let p = existing(core, &a.project).await?;
    let n = admin::set_yanked(core, &Actor::cli(), &p, &a.version, a.file.as_deref(), true, a.reason.as_deref()).await?;
    eprintln!("yanked {n} file(s) of {} {}", a.project, a.version);
    Ok(())
}

pub async fn unyank(core: &Core, a: UnyankArgs) -> anyhow::Result<()> {
    let p = existing(core, &a.project).await?;
    let n = admin::set_yanked(core, &Actor::cli(), &p, &a.version, a.file.as_deref(), false, None).await?;
    eprintln!("un-yanked {n} file(s) of {} {}", a.project, a.version);
    Ok(())
}

pub async fn remove_file(core: &Core, filename: &str, malicious: bool, note: Option<&str>) -> anyhow::Result<()> {
    if malicious {
        let id = admin::remove_malicious(core, &Actor::cli(), filename, note).await?;
        eprintln!("removed {filename} as malicious; the filename stays reserved; OSV record:");
        println!("{id}");
    } else {
        admin::remove_file(core, &Actor::cli(), None, filename).await?;
        eprintln!("removed {filename}; the filename stays reserved");
    }
    Ok(())
}

async fn show(core: &Core, name: &str) -> anyhow::Result<()> {
    let p = existing(core, name).await?;
    println!("name:    {}", p.name);
    println!("status:  {}{}", p.status, p.status_reason.clone().map(|r| format!(" ({r})")).unwrap_or_default());
    println!("serial:  {}", p.last_serial);
    if p.critical {
        println!("critical: yes");
    }
    println!("created: {}", time(p.created_at));
    println!("roles:");
    for r in core.db.roles(Some(&p.normalized)).await? {
        println!("  {:<24} {}", r.user_name, r.role);
    }
    println!("files:");
    for f in core.db.project_files(p.id).await? {
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
