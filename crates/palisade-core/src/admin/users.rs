//! Accounts, as the administrator manages them.

use palisade_store::{StoreError, User};
use serde_json::json;

use super::Actor;
use crate::Core;
use crate::error::{Error, Result, invalid};
use crate::events::record;

/// Account names: ASCII letters, digits, `.`, `_`, `-`; 1 to 50 characters.
pub fn validate_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 50 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(invalid(format!("invalid user name {name:?}: use 1 to 50 ASCII letters, digits, '.', '_' or '-'"))) }
}

/// An email address as mail can be sent to it: `local@domain`, checked by `lettre`, at most 254
/// bytes (RFC 5321's path limit).
pub fn validate_email(email: &str) -> Result<()> {
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(invalid(format!("invalid email address {email:?}")));
    }
    Ok(())
}

/// What a new account starts with.
#[derive(Clone, Debug, Default)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub admin: bool,
    pub email: Option<&'a str>,
    /// The administrator vouches for the address, which skips the verification mail.
    pub email_verified: bool,
    /// Checked for strength as at registration.
    pub password: Option<&'a str>,
}

/// Creates an account.
pub async fn create_user(core: &Core, actor: &Actor, new: NewAccount<'_>) -> Result<User> {
    validate_user_name(new.name)?;
    if let Some(e) = new.email {
        validate_email(e)?;
    }
    let hash = match new.password {
        Some(pw) => Some(strong_hash(pw, new.name, new.email).await?),
        None => None,
    };
    let user = core.db.create_user(new.name, new.admin, new.email, new.email_verified, hash.as_deref()).await?;
    record(core, "account_created", &actor.name, Some(user.id), None, &actor.origin, json!({ "admin": new.admin, "email": new.email }))
        .await;
    Ok(user)
}

/// Sets a user's password; ends their sessions and revokes their tokens. Returns how many of each.
pub async fn set_password(core: &Core, actor: &Actor, name: &str, password: &str) -> Result<(u64, u64)> {
    let user = core.db.user_by_name(name).await?;
    let hash = strong_hash(password, name, user.email.as_deref()).await?;
    let (sessions, tokens) = core.db.set_password(user.id, &hash).await?;
    let details = json!({ "sessions_ended": sessions, "tokens_revoked": tokens });
    record(core, "password_changed", &actor.name, Some(user.id), None, &actor.origin, details).await;
    Ok((sessions, tokens))
}

/// Marks the user's address verified, as if they had followed the link; returns the address.
pub async fn verify_email(core: &Core, actor: &Actor, name: &str) -> Result<String> {
    let user = core.db.user_by_name(name).await?;
    let email = user.email.clone().ok_or_else(|| invalid(format!("user {name:?} has no email address")))?;
    match core.db.mark_email_verified(user.id, &email).await {
        Ok(true) => {}
        Ok(false) => return Err(invalid(format!("the address of user {name:?} changed meanwhile; try again"))),
        Err(StoreError::Exists(_)) => {
            return Err(Error::Exists(format!("{email} is already the verified address of another account")));
        }
        Err(e) => return Err(e.into()),
    }
    record(core, "email_verified", &actor.name, Some(user.id), None, &actor.origin, json!({ "email": email })).await;
    Ok(email)
}

/// Disables an account (its sessions end, its tokens are refused) or enables it again.
pub async fn set_disabled(core: &Core, actor: &Actor, name: &str, disabled: bool) -> Result<()> {
    let user = core.db.user_by_name(name).await?;
    core.db.set_disabled(user.id, disabled).await?;
    let kind = if disabled { "account_disabled" } else { "account_enabled" };
    record(core, kind, &actor.name, Some(user.id), None, &actor.origin, serde_json::Value::Null).await;
    Ok(())
}

/// Removes every second factor and recovery code of a user (who lost them) and ends their
/// sessions; returns how many factors there were.
pub async fn reset_second_factors(core: &Core, actor: &Actor, name: &str) -> Result<u64> {
    let user = core.db.user_by_name(name).await?;
    let n = core.db.reset_second_factors(user.id).await?;
    record(core, "2fa_removed", &actor.name, Some(user.id), None, &actor.origin, json!({ "factors": n, "by": "administrator" })).await;
    Ok(n)
}

/// Checks `password`'s strength, counting the account's own name and address (and the address's
/// local part) as guessable.
pub fn check_strength(password: &str, name: &str, email: Option<&str>) -> Result<()> {
    let mut inputs = vec![name];
    if let Some(e) = email {
        inputs.push(e);
        inputs.extend(e.split('@').next());
    }
    palisade_auth::check_strength(password, &inputs).map_err(|e| invalid(e.to_string()))
}

/// Hashes a password off the async threads: argon2id takes tens of milliseconds on purpose.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || palisade_auth::hash_password(&password))
        .await
        .map_err(crate::error::internal)?
        .map_err(crate::error::internal)
}

/// [`check_strength`], then [`hash_password`].
pub async fn strong_hash(password: &str, name: &str, email: Option<&str>) -> Result<String> {
    check_strength(password, name, email)?;
    hash_password(password).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(validate_user_name("alice.b-c_1").is_ok());
        for bad in ["", "a b", "ä", &"a".repeat(51)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_addresses() {
        for good in ["alice@example.test", "a.b+c@sub.example.org"] {
            assert!(validate_email(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.test", "a".repeat(250));
        for bad in ["", "alice", "@example.test", "alice@", "al ice@example.test", "alice@exa mple.test", &long] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
