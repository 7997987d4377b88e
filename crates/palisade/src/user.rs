//! `palisade user`: accounts.

use clap::Subcommand;
use palisade_core::Core;
use palisade_core::admin::users::NewAccount;
use palisade_core::admin::{self, Actor};

use crate::{read_secret_line, time};

#[derive(Subcommand)]
pub enum UserCmd {
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
    /// Mark a user as a trusted reporter (their malware reports can quarantine at once), or
    /// not (`--off`).
    TrustReporter {
        name: String,
        #[arg(long)]
        off: bool,
    },
}

pub async fn run(core: &Core, cmd: UserCmd) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match cmd {
        UserCmd::Create { name, admin: is_admin, email, email_verified, password_stdin } => {
            let password = if password_stdin { Some(read_secret_line()?) } else { None };
            let new = NewAccount { name: &name, admin: is_admin, email: email.as_deref(), email_verified, password: password.as_deref() };
            let u = admin::create_user(core, &actor, new).await?;
            eprintln!("created user {}{}", u.name, if u.is_admin { " (administrator)" } else { "" });
        }
        UserCmd::Password { name } => {
            let password = read_secret_line()?;
            let (sessions, tokens) = admin::set_password(core, &actor, &name, &password).await?;
            eprintln!("password of {name} set; {sessions} session(s) ended, {tokens} token(s) revoked");
        }
        UserCmd::VerifyEmail { name } => {
            let email = admin::verify_email(core, &actor, &name).await?;
            eprintln!("{email} of {name} is verified");
        }
        UserCmd::Disable { name } => {
            admin::set_disabled(core, &actor, &name, true).await?;
            eprintln!("{name} is disabled: sessions ended, tokens refused");
        }
        UserCmd::Enable { name } => {
            admin::set_disabled(core, &actor, &name, false).await?;
            eprintln!("{name} is enabled again");
        }
        UserCmd::Reset2fa { name } => {
            let n = admin::reset_second_factors(core, &actor, &name).await?;
            eprintln!("removed {n} second factor(s) of {name} and ended their sessions; they must enrol again before publishing");
        }
        UserCmd::TrustReporter { name, off } => {
            admin::set_trusted_reporter(core, &actor, &name, !off).await?;
            eprintln!("{name} is {}a trusted reporter", if off { "no longer " } else { "" });
        }
        UserCmd::List => {
            println!("{:<24} {:<6} {:<4} {:<32} created", "name", "admin", "2fa", "email");
            for u in core.db.list_users().await? {
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
    }
    Ok(())
}
