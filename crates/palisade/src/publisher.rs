//! `palisade publisher`: trusted publishers.

use anyhow::Context;
use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::{self, Actor, PublisherTarget};

#[derive(Subcommand)]
pub enum PublisherCmd {
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

pub async fn run(core: &Core, cmd: PublisherCmd) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match cmd {
        PublisherCmd::Add { project, github, workflow, gitlab, ci_config, environment, issuer, claims, owner } => {
            let mut input = palisade_core::publishers::PublisherInput::default();
            if let Some(repository) = github {
                input.github = Some(palisade_core::publishers::GithubInput {
                    repository,
                    workflow: workflow.unwrap_or_default(),
                    environment,
                    owner_id: None,
                    repository_id: None,
                });
            } else if let Some(project) = gitlab {
                input.gitlab =
                    Some(palisade_core::publishers::GitlabInput { project, ci_config_path: ci_config.unwrap_or_default(), environment });
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
            let p = match core.db.project(&palisade_dist::normalize(&project)).await? {
                Some(existing) => admin::add_publisher(core, &actor, PublisherTarget::Project(&existing), input).await?,
                None => {
                    let owner = owner.with_context(|| {
                        format!(
                            "project {project:?} does not exist; to let the publisher create it, name its future owner with --owner USER"
                        )
                    })?;
                    let owner = core.db.user_by_name(&owner).await?;
                    let target = PublisherTarget::Pending { name: &project, owner: &owner, limit: None };
                    admin::add_publisher(core, &actor, target, input).await?
                }
            };
            println!("{}", palisade_core::publishers::describe(&p));
            eprintln!(
                "added trusted publisher {}{}",
                p.id,
                if p.pending { " (pending: it may create the project on its first upload)" } else { "" }
            );
        }
        PublisherCmd::List { project } => {
            let project = project.map(|p| palisade_dist::normalize(&p));
            for p in core.db.publishers(project.as_deref()).await? {
                println!("{}", palisade_core::publishers::describe(&p));
            }
        }
        PublisherCmd::Remove { id } => {
            let p = core.db.publisher(id).await?.with_context(|| format!("no trusted publisher with id {id}"))?;
            admin::remove_publisher(core, &actor, &p).await?;
            eprintln!("removed trusted publisher {id} of {}", p.project);
        }
    }
    Ok(())
}
