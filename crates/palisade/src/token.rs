//! `palisade token`: API tokens.

use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::tokens::TokenRequest;
use palisade_core::admin::{self, Actor};
use palisade_store::now_micros;

use crate::time;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token and print it (only the token, on stdout; it is shown once).
    Create {
        #[arg(long)]
        user: String,
        /// Limit the token to this project (repeatable). Without it the token is user-wide.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Limit the token to this action: upload, yank, manage or report (repeatable). Without
        /// it, all.
        #[arg(long = "action", value_parser = ["upload", "yank", "manage", "report"])]
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

pub async fn run(core: &Core, cmd: TokenCmd) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match cmd {
        TokenCmd::Create { user, projects, actions, expires, description } => {
            let expires_in = expires.as_deref().map(admin::parse_duration).transpose()?;
            let request = TokenRequest { projects: &projects, actions: &actions, expires_in, description: description.as_deref() };
            let (id, secret) = admin::create_token(core, &actor, &user, request).await?;
            println!("{secret}");
            eprintln!("created token {id} for {user}; it is shown only this once");
        }
        TokenCmd::List { user } => {
            println!(
                "{:<5} {:<16} {:<12} {:<24} {:<20} {:<20} {:<20} state",
                "id", "user", "hint", "projects", "created", "expires", "last used"
            );
            let now = now_micros();
            for t in core.db.list_tokens(user.as_deref()).await? {
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
        TokenCmd::Revoke { id } => {
            admin::revoke_token(core, &actor, id, None, "revoked by an administrator").await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
