//! `palisade role`: who may publish a project.

use anyhow::Context;
use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::{self, Actor};
use palisade_store::Role;

#[derive(Subcommand)]
pub enum RoleCmd {
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

pub async fn run(core: &Core, cmd: RoleCmd) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match cmd {
        RoleCmd::Add { project, user, role } => {
            let role = Role::parse(&role).context("role must be owner or maintainer")?;
            let p = crate::project::existing(core, &project).await?;
            admin::set_role(core, &actor, &p, &user, role).await?;
            eprintln!("{user} is now {} of {project}", role.as_str());
        }
        RoleCmd::Remove { project, user } => {
            let p = crate::project::existing(core, &project).await?;
            admin::remove_role(core, &actor, &p, &user).await?;
            eprintln!("removed {user}'s role on {project}");
        }
        RoleCmd::List { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            for r in core.db.roles(project.as_deref()).await? {
                println!("{:<32} {:<24} {}", r.project, r.user_name, r.role);
            }
        }
    }
    Ok(())
}
