//! Accounts: passwords, email addresses, sessions, second factors, recovery codes, trusted
//! publishers, the OIDC replay cache and the security event log. Everything that must not race
//! (a one-time code, a TOTP step, an email link) is consumed with one conditional UPDATE, so two
//! concurrent requests cannot both use it.

use sqlx::Row;

use super::{Db, TOKEN_COLUMNS, TOKEN_FROM, USER_COLUMNS, now_micros};
use crate::StoreError;
use crate::models::*;

const PUBLISHER_COLUMNS: &str = "pb.id, pb.project_id, COALESCE(p.normalized, pb.pending_name) AS project, (pb.project_id IS NULL) AS pending, \
     pb.issuer, pb.spec, pb.created_by, u.name AS created_by_name, pb.created_at, pb.expires_at";
/// Publishers that count: ordinary ones, and pending ones that have not expired (bind `now` as
/// parameter `$n`).
fn publisher_live(n: usize) -> String {
    format!("(pb.expires_at IS NULL OR pb.expires_at > ${n})")
}
const PUBLISHER_FROM: &str = "publishers pb LEFT JOIN projects p ON p.id = pb.project_id LEFT JOIN users u ON u.id = pb.created_by";
const EVENT_COLUMNS: &str = "e.id, e.at, e.kind, u.name AS user_name, p.normalized AS project, e.actor, e.addr, e.user_agent, e.details";
const SESSION_COLUMNS: &str = "id, user_id, stage, created_at, expires_at, last_seen_at, addr, user_agent, revoked_at, method";

impl Db {
    // ---- users -------------------------------------------------------------------------------

    /// A user by name or (case-insensitively) by email address, for login and password reset.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        // By email only when verified: an unverified address proves nothing about who holds it.
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1 OR (u.email_verified_at IS NOT NULL AND lower(u.email) = lower($2)) \
             ORDER BY u.name = $3 DESC LIMIT 1"
        );
        Ok(sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql)).bind(login).bind(login).bind(login).fetch_optional(&self.writer).await?)
    }

    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.writer)
            .await?
            .and_then(|r| r.get::<Option<String>, _>(0)))
    }

    /// Sets a new password and, in the same transaction, ends every session and revokes every
    /// API token of the user: whoever knew the old password must not keep a way in.
    pub async fn set_password(&self, user_id: i64, hash: &str) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_micros();
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let sessions = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let tokens =
            sqlx::query("UPDATE tokens SET revoked_at = $1, revoked_reason = 'password changed' WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Outstanding reset links die with the password they were meant to replace.
        sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = 'reset' AND used_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((sessions, tokens))
    }

    /// Changes the address (unverified until the new address is confirmed).
    pub async fn set_email(&self, user_id: i64, email: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(now_micros())
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        let res = sqlx::query("UPDATE users SET email = $1, email_verified_at = NULL WHERE id = $2")
            .bind(email)
            .bind(user_id)
            .execute(&self.writer)
            .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists("a user with this email address".into())),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Marks `email` verified if it is still the user's address. Two accounts may name the same
    /// unverified address, but only one can verify it.
    pub async fn mark_email_verified(&self, user_id: i64, email: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND lower(email) = lower($3)")
            .bind(now_micros())
            .bind(user_id)
            .bind(email)
            .execute(&self.writer)
            .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Exists("a verified account with this email address".into()))
            }
            other => Ok(other?.rows_affected() == 1),
        }
    }

    /// Removes every second factor and recovery code of a user and ends their sessions (an
    /// administrator's recovery step after checking the person's identity out of band).
    pub async fn reset_second_factors(&self, user_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM second_factors WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Disables (or re-enables) an account. Disabling ends its sessions; its tokens stop working
    /// while it is disabled.
    pub async fn set_disabled(&self, user_id: i64, disabled: bool) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_micros();
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled.then_some(now))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if disabled {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_admin(&self, user_id: i64, is_admin: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2").bind(is_admin).bind(user_id).execute(&self.writer).await?;
        Ok(())
    }

    // ---- email links -------------------------------------------------------------------------

    pub async fn create_email_token(
        &self,
        hash: &str,
        user_id: i64,
        purpose: &str,
        email: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO email_tokens (hash, user_id, purpose, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(hash)
            .bind(user_id)
            .bind(purpose)
            .bind(email)
            .bind(now_micros())
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Consumes a one-time email link: `None` if it is unknown, used, expired or for another purpose.
    pub async fn use_email_token(&self, hash: &str, purpose: &str) -> Result<Option<EmailToken>, StoreError> {
        let now = now_micros();
        Ok(sqlx::query_as::<_, EmailToken>(
            "UPDATE email_tokens SET used_at = $1 WHERE hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4 \
             RETURNING user_id, purpose, email, expires_at, used_at",
        )
        .bind(now)
        .bind(hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Follows an email-verification link, in one transaction: uses the link up and marks its
    /// address verified if it is still the account's address. When another account has verified
    /// the same address, the transaction is rolled back and the link stays usable: the request
    /// could not succeed, and whoever holds the link has shown they read that address's mail, so
    /// keeping it gives nothing away and lets them finish once the other account lets go of it.
    pub async fn verify_email_link(&self, hash: &str) -> Result<EmailVerification, StoreError> {
        let mut tx = self.begin().await?;
        let now = now_micros();
        let token = sqlx::query_as::<_, EmailToken>(
            "UPDATE email_tokens SET used_at = $1 WHERE hash = $2 AND purpose = 'verify' AND used_at IS NULL AND expires_at > $3 \
             RETURNING user_id, purpose, email, expires_at, used_at",
        )
        .bind(now)
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(token) = token else { return Ok(EmailVerification::NoSuchLink) };
        let res = sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND lower(email) = lower($3)")
            .bind(now)
            .bind(token.user_id)
            .bind(&token.email)
            .execute(&mut *tx)
            .await;
        let verified = match res {
            // Dropping `tx` rolls back the link's use.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(EmailVerification::TakenByAnother(token)),
            other => other?.rows_affected() == 1,
        };
        tx.commit().await?;
        Ok(if verified { EmailVerification::Verified(token) } else { EmailVerification::AddressChanged(token) })
    }

    /// Makes a consumed email link usable again (the reset failed for a reason that was not
    /// the link's fault).
    pub async fn restore_email_token(&self, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE email_tokens SET used_at = NULL WHERE hash = $1").bind(hash).execute(&self.writer).await?;
        Ok(())
    }

    // ---- sessions ----------------------------------------------------------------------------

    pub async fn create_session(&self, new: NewSession<'_>) -> Result<i64, StoreError> {
        let now = now_micros();
        let row = sqlx::query(
            "INSERT INTO sessions (user_id, hash, stage, created_at, expires_at, last_seen_at, addr, user_agent, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(new.user_id)
        .bind(new.hash)
        .bind(new.stage)
        .bind(now)
        .bind(new.expires_at)
        .bind(now)
        .bind(new.addr)
        .bind(new.user_agent)
        .bind(new.method)
        .fetch_one(&self.writer)
        .await?;
        Ok(row.get(0))
    }

    /// A live session (not revoked, not expired) by the hash of its secret.
    pub async fn session_by_hash(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE hash = $1 AND revoked_at IS NULL AND expires_at > $2");
        Ok(sqlx::query_as::<_, Session>(sqlx::AssertSqlSafe(sql)).bind(hash).bind(now_micros()).fetch_optional(&self.writer).await?)
    }

    /// How a session's login was made (`None` for sessions older than the column).
    pub async fn session_method(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT method FROM sessions WHERE id = $1").bind(id).fetch_optional(&self.writer).await?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    pub async fn touch_session(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2").bind(now_micros()).bind(id).execute(&self.writer).await?;
        Ok(())
    }

    /// Ends one session of `user_id`; false if there was no such live session.
    pub async fn revoke_session(&self, id: i64, user_id: i64) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(id)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Ends every session of a user except `keep`.
    pub async fn revoke_sessions(&self, user_id: i64, keep: Option<i64>) -> Result<u64, StoreError> {
        let res = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $4)")
            .bind(now_micros())
            .bind(user_id)
            .bind(keep)
            .bind(keep)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected())
    }

    pub async fn sessions(&self, user_id: i64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND stage = 'active' AND revoked_at IS NULL AND expires_at > $2 ORDER BY id"
        );
        Ok(sqlx::query_as::<_, Session>(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(now_micros()).fetch_all(&self.reader).await?)
    }

    // ---- second factors ----------------------------------------------------------------------

    /// Adds an unconfirmed TOTP factor.
    pub async fn add_totp(&self, user_id: i64, name: &str, secret: &[u8]) -> Result<i64, StoreError> {
        // Abandoned enrolments are replaced, not accumulated.
        sqlx::query("DELETE FROM second_factors WHERE user_id = $1 AND confirmed_at IS NULL").bind(user_id).execute(&self.writer).await?;
        let row = sqlx::query(
            "INSERT INTO second_factors (user_id, kind, name, secret, created_at) VALUES ($1, 'totp', $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(secret)
        .bind(now_micros())
        .fetch_one(&self.writer)
        .await?;
        Ok(row.get(0))
    }

    /// The user's TOTP factors (confirmed ones, plus the unconfirmed `pending` one if given).
    pub async fn totp_factors(&self, user_id: i64, pending: Option<i64>) -> Result<Vec<TotpFactor>, StoreError> {
        Ok(sqlx::query_as::<_, TotpFactor>(
            "SELECT id, secret, confirmed_at, last_used_step FROM second_factors \
             WHERE user_id = $1 AND kind = 'totp' AND secret IS NOT NULL AND (confirmed_at IS NOT NULL OR id = $2) ORDER BY id",
        )
        .bind(user_id)
        .bind(pending)
        .fetch_all(&self.writer)
        .await?)
    }

    /// Records that the code of time step `step` was used; false if that step or a later one was
    /// already used (a replay), so a code works once even under concurrent requests.
    pub async fn use_totp_step(&self, factor_id: i64, step: i64, confirm: bool) -> Result<bool, StoreError> {
        let now = now_micros();
        let res = sqlx::query(
            "UPDATE second_factors SET last_used_step = $1, last_used_at = $2, confirmed_at = CASE WHEN $3 THEN COALESCE(confirmed_at, $4) ELSE confirmed_at END \
             WHERE id = $5 AND (last_used_step IS NULL OR last_used_step < $6)",
        )
        .bind(step)
        .bind(now)
        .bind(confirm)
        .bind(now)
        .bind(factor_id)
        .bind(step)
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn second_factors(&self, user_id: i64) -> Result<Vec<SecondFactor>, StoreError> {
        Ok(sqlx::query_as::<_, SecondFactor>(
            "SELECT id, user_id, CASE WHEN kind = 'webauthn' AND passkey THEN 'passkey' WHEN kind = 'webauthn' THEN 'security_key' ELSE kind END AS kind, \
             name, created_at, confirmed_at, last_used_at FROM second_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Removes a factor; when it was the last one, the recovery codes go with it.
    pub async fn remove_second_factor(&self, id: i64, user_id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let res = sqlx::query("DELETE FROM second_factors WHERE id = $1 AND user_id = $2").bind(id).bind(user_id).execute(&mut *tx).await?;
        let left = sqlx::query("SELECT 1 FROM second_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL LIMIT 1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if left.is_none() {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    // ---- WebAuthn ----------------------------------------------------------------------------

    /// The user's WebAuthn user handle, made from `fresh` at the first call.
    pub async fn webauthn_handle(&self, user_id: i64, fresh: &str) -> Result<String, StoreError> {
        sqlx::query("UPDATE users SET webauthn_handle = $1 WHERE id = $2 AND webauthn_handle IS NULL")
            .bind(fresh)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        let row = sqlx::query("SELECT webauthn_handle FROM users WHERE id = $1").bind(user_id).fetch_one(&self.writer).await?;
        Ok(row.get::<Option<String>, _>(0).unwrap_or_default())
    }

    /// Adds a confirmed WebAuthn credential. A credential id registered before (to anyone) is
    /// refused: an authenticator's credential belongs to one account.
    pub async fn add_webauthn(
        &self,
        user_id: i64,
        name: &str,
        credential_id: &str,
        passkey: bool,
        credential: &str,
    ) -> Result<i64, StoreError> {
        let now = now_micros();
        let res = sqlx::query(
            "INSERT INTO second_factors (user_id, kind, name, credential, credential_id, passkey, created_at, confirmed_at) \
             VALUES ($1, 'webauthn', $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(credential)
        .bind(credential_id)
        .bind(passkey)
        .bind(now)
        .bind(now)
        .fetch_one(&self.writer)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists("this authenticator's credential".into())),
            other => Ok(other?.get(0)),
        }
    }

    const WEBAUTHN_COLUMNS: &str = "id, user_id, name, passkey, credential_id, credential";

    /// The user's WebAuthn credentials.
    pub async fn webauthn_credentials(&self, user_id: i64) -> Result<Vec<WebauthnCredential>, StoreError> {
        let sql = format!(
            "SELECT {} FROM second_factors WHERE user_id = $1 AND kind = 'webauthn' AND confirmed_at IS NOT NULL AND credential IS NOT NULL ORDER BY id",
            Self::WEBAUTHN_COLUMNS
        );
        Ok(sqlx::query_as::<_, WebauthnCredential>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(&self.writer).await?)
    }

    /// The WebAuthn credential with this id (base64url), whoever holds it.
    pub async fn webauthn_by_credential_id(&self, credential_id: &str) -> Result<Option<WebauthnCredential>, StoreError> {
        let sql = format!(
            "SELECT {} FROM second_factors WHERE credential_id = $1 AND kind = 'webauthn' AND confirmed_at IS NOT NULL AND credential IS NOT NULL",
            Self::WEBAUTHN_COLUMNS
        );
        Ok(sqlx::query_as::<_, WebauthnCredential>(sqlx::AssertSqlSafe(sql)).bind(credential_id).fetch_optional(&self.writer).await?)
    }

    /// Records a use of a WebAuthn credential, with its updated stored form (sign count) if any.
    pub async fn use_webauthn(&self, id: i64, credential: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE second_factors SET last_used_at = $1, credential = COALESCE($2, credential) WHERE id = $3")
            .bind(now_micros())
            .bind(credential)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Keeps the server's half of a ceremony under the hash of the browser's handle.
    pub async fn put_ceremony(
        &self,
        id: &str,
        user_id: Option<i64>,
        purpose: &str,
        bound: Option<&str>,
        state: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Ceremonies nobody finished go when new ones begin.
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1").bind(now_micros()).execute(&self.writer).await?;
        sqlx::query("INSERT INTO webauthn_ceremonies (id, user_id, purpose, bound, state, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(user_id)
            .bind(purpose)
            .bind(bound)
            .bind(state)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Takes (deletes and returns) a live ceremony of `purpose`: each is answered at most once.
    pub async fn take_ceremony(&self, id: &str, purpose: &str) -> Result<Option<Ceremony>, StoreError> {
        Ok(sqlx::query_as::<_, Ceremony>(
            "DELETE FROM webauthn_ceremonies WHERE id = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id, bound, state",
        )
        .bind(id)
        .bind(purpose)
        .bind(now_micros())
        .fetch_optional(&self.writer)
        .await?)
    }

    // ---- recovery codes ----------------------------------------------------------------------

    /// Replaces all recovery codes of a user with these hashes.
    pub async fn replace_recovery_codes(&self, user_id: i64, hashes: &[String]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        let now = now_micros();
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, hash, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(h)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Consumes a recovery code; false if it is unknown or already used.
    pub async fn use_recovery_code(&self, user_id: i64, hash: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND hash = $3 AND used_at IS NULL")
            .bind(now_micros())
            .bind(user_id)
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(&self.writer)
            .await?
            .get(0))
    }

    // ---- tokens ------------------------------------------------------------------------------

    pub async fn user_tokens(&self, user_id: i64) -> Result<Vec<Token>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM} WHERE t.user_id = $1 ORDER BY t.id");
        Ok(sqlx::query_as::<_, Token>(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_all(&self.reader).await?)
    }

    pub async fn token_by_id(&self, id: i64) -> Result<Option<Token>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM {TOKEN_FROM} WHERE t.id = $1");
        Ok(sqlx::query_as::<_, Token>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.writer).await?)
    }

    /// Revokes a token by the hash of its secret (secret-scanning disclosures). Returns the token
    /// as it was if it was live.
    pub async fn revoke_token_by_hash(&self, hash: &str, reason: &str) -> Result<Option<Token>, StoreError> {
        let Some(token) = self.token_by_hash(hash).await? else { return Ok(None) };
        let res = sqlx::query("UPDATE tokens SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(reason)
            .bind(token.id)
            .execute(&self.writer)
            .await?;
        Ok((res.rows_affected() == 1).then_some(token))
    }

    // ---- trusted publishers ------------------------------------------------------------------

    /// Registers a publisher for an existing project, or a pending one for a name (which stops
    /// counting at `expires_at`). An identical publisher for the same project or name is refused;
    /// so is a pending one for a name another user has a live pending publisher for, and, with
    /// `max_pending`, one past that many live pending publishers of `created_by`: checked in the
    /// same transaction, so concurrent requests cannot slip past either rule.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_publisher(
        &self,
        project_id: Option<i64>,
        pending_name: Option<&str>,
        issuer: &str,
        spec: &str,
        created_by: Option<i64>,
        expires_at: Option<i64>,
        max_pending: Option<u64>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(name) = pending_name {
            let now = now_micros();
            let taken = sqlx::query(
                "SELECT 1 FROM publishers WHERE project_id IS NULL AND pending_name = $1 AND created_by IS DISTINCT FROM $2 \
                 AND (expires_at IS NULL OR expires_at > $3) LIMIT 1",
            )
            .bind(name)
            .bind(created_by)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "another user has a pending publisher for {name:?}; the name is reserved for them until it expires or is used"
                )));
            }
            if let (Some(max), Some(user)) = (max_pending, created_by) {
                let live: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM publishers WHERE project_id IS NULL AND created_by = $1 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(user)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                if live as u64 >= max {
                    return Err(StoreError::Conflict(format!(
                        "the user already has {live} pending publishers, the most this instance allows ([oidc] max_pending_publishers = {max})"
                    )));
                }
            }
        }
        let dup = sqlx::query("SELECT 1 FROM publishers WHERE issuer = $1 AND spec = $2 AND (project_id IS NOT DISTINCT FROM $3 AND pending_name IS NOT DISTINCT FROM $4) LIMIT 1")
            .bind(issuer)
            .bind(spec)
            .bind(project_id)
            .bind(pending_name)
            .fetch_optional(&mut *tx)
            .await?;
        if dup.is_some() {
            return Err(StoreError::Exists("an identical trusted publisher".into()));
        }
        let row = sqlx::query(
            "INSERT INTO publishers (project_id, pending_name, issuer, spec, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(project_id)
        .bind(pending_name)
        .bind(issuer)
        .bind(spec)
        .bind(created_by)
        .bind(now_micros())
        .bind(if project_id.is_some() { None } else { expires_at })
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.get(0);
        let name: String = match (project_id, pending_name) {
            (Some(p), _) => sqlx::query_scalar("SELECT normalized FROM projects WHERE id = $1").bind(p).fetch_one(&mut *tx).await?,
            (None, Some(n)) => n.to_owned(),
            (None, None) => "-".into(),
        };
        let event = if project_id.is_some() { "add" } else { "add-pending" };
        let spec_digest = format!("spec-sha256:{}", palisade_dist::sha256_hex(spec.as_bytes()));
        super::tlog::append(&mut tx, &["publisher", &name, event, &id.to_string(), issuer, &spec_digest], None, None).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn publisher(&self, id: i64) -> Result<Option<Publisher>, StoreError> {
        let sql = format!("SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} WHERE pb.id = $1");
        Ok(sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.writer).await?)
    }

    /// Every publisher whose issuer is `issuer`: ordinary ones and pending ones not expired.
    pub async fn publishers_for_issuer(&self, issuer: &str) -> Result<Vec<Publisher>, StoreError> {
        let sql = format!("SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} WHERE pb.issuer = $1 AND {} ORDER BY pb.id", publisher_live(2));
        Ok(sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql)).bind(issuer).bind(now_micros()).fetch_all(&self.writer).await?)
    }

    /// The publishers of a project, or with `None` all of them; pending ones included (expired
    /// ones too, until they are swept: see [`Publisher::expired`]).
    pub async fn publishers(&self, project: Option<&str>) -> Result<Vec<Publisher>, StoreError> {
        let sql = format!(
            "SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} WHERE ($1 IS NULL OR COALESCE(p.normalized, pb.pending_name) = $2) ORDER BY pb.id"
        );
        Ok(sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql)).bind(project).bind(project).fetch_all(&self.reader).await?)
    }

    /// The live pending publishers a user registered.
    pub async fn pending_publishers_of(&self, user_id: i64) -> Result<Vec<Publisher>, StoreError> {
        let sql = format!(
            "SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} WHERE pb.project_id IS NULL AND pb.created_by = $1 AND {} ORDER BY pb.id",
            publisher_live(2)
        );
        Ok(sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(now_micros()).fetch_all(&self.writer).await?)
    }

    /// Removes a publisher. Tokens it minted lose it: a token that covered only publishers
    /// being removed is deleted, one that covers others too keeps them (another owner's
    /// publisher is none of this one's business). Files it uploaded keep their history in the
    /// event log but no longer point at it.
    pub async fn remove_publisher(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let existed = drop_publisher(&mut tx, id).await?;
        tx.commit().await?;
        Ok(existed)
    }

    /// Removes the pending publishers that expired; returns them.
    pub async fn sweep_expired_publishers(&self) -> Result<Vec<Publisher>, StoreError> {
        let sql =
            format!("SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} WHERE pb.project_id IS NULL AND pb.expires_at <= $1 ORDER BY pb.id");
        let expired = sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql)).bind(now_micros()).fetch_all(&self.writer).await?;
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut tx = self.begin().await?;
        let now = now_micros();
        let mut removed = Vec::new();
        for p in expired {
            // Re-checked inside the transaction: it may have been used meanwhile.
            let still = sqlx::query("SELECT 1 FROM publishers WHERE id = $1 AND project_id IS NULL AND expires_at <= $2")
                .bind(p.id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if still.is_some() && drop_publisher(&mut tx, p.id).await? {
                removed.push(p);
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Stores the short-lived upload token of a trusted-publishing exchange, bound to every
    /// publisher in `publisher_ids` (the first is the token's `publisher_id`). Publishers removed
    /// since they matched are left out; `None` if none is left.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_publisher_token(
        &self,
        publisher_ids: &[i64],
        hash: &str,
        hint: &str,
        projects: &[String],
        description: &str,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let mut live = Vec::new();
        for &id in publisher_ids {
            if sqlx::query("SELECT 1 FROM publishers WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?.is_some() {
                live.push(id);
            }
        }
        let Some(&first) = live.first() else { return Ok(None) };
        let actions = ["upload".to_string()];
        let row = sqlx::query(
            "INSERT INTO tokens (user_id, publisher_id, hash, hint, projects, actions, description, created_at, expires_at) VALUES (NULL, $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(first)
        .bind(hash)
        .bind(hint)
        .bind(to_string_array(projects))
        .bind(to_string_array(&actions))
        .bind(description)
        .bind(now_micros())
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let token_id: i64 = row.get(0);
        for id in live {
            sqlx::query("INSERT INTO token_publishers (token_id, publisher_id) VALUES ($1, $2)")
                .bind(token_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(token_id))
    }

    /// The publisher through which a publisher token may upload to project `normalized`: one
    /// registered for the existing project, or else a live pending one for the name.
    pub async fn publisher_for_token(&self, token_id: i64, normalized: &str) -> Result<Option<Publisher>, StoreError> {
        let sql = format!(
            "SELECT {PUBLISHER_COLUMNS} FROM {PUBLISHER_FROM} JOIN token_publishers tp ON tp.publisher_id = pb.id \
             WHERE tp.token_id = $1 AND (p.normalized = $2 OR (pb.pending_name = $3 AND {})) \
             ORDER BY pb.project_id IS NULL, pb.id LIMIT 1",
            publisher_live(4)
        );
        Ok(sqlx::query_as::<_, Publisher>(sqlx::AssertSqlSafe(sql))
            .bind(token_id)
            .bind(normalized)
            .bind(normalized)
            .bind(now_micros())
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Binds a publisher's spec to the immutable ids seen in its first token.
    pub async fn update_publisher_spec(&self, id: i64, spec: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE publishers SET spec = $1 WHERE id = $2 RETURNING (SELECT COALESCE(p.normalized, publishers.pending_name) FROM projects p WHERE p.id = publishers.project_id)",
        )
        .bind(spec)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        let spec_digest = format!("spec-sha256:{}", palisade_dist::sha256_hex(spec.as_bytes()));
        super::tlog::append(&mut tx, &["publisher", name.as_deref().unwrap_or("-"), "bind-ids", &id.to_string(), &spec_digest], None, None)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an OIDC token id; false if it was already used (a replay).
    pub async fn use_jti(&self, issuer: &str, jti: &str, expires_at: i64) -> Result<bool, StoreError> {
        let now = now_micros();
        sqlx::query("DELETE FROM oidc_jtis WHERE expires_at < $1").bind(now).execute(&self.writer).await?;
        let res = sqlx::query("INSERT INTO oidc_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (issuer, jti) DO NOTHING")
            .bind(issuer)
            .bind(jti)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    // ---- the security event log --------------------------------------------------------------

    pub async fn record_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO events (at, kind, user_id, project_id, actor, addr, user_agent, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(now_micros())
        .bind(&e.kind)
        .bind(e.user_id)
        .bind(e.project_id)
        .bind(&e.actor)
        .bind(&e.addr)
        .bind(&e.user_agent)
        .bind(&e.details)
        .fetch_one(&self.writer)
        .await?;
        Ok(row.get(0))
    }

    /// Events about a user and/or a project (both `None`: all), newest first.
    pub async fn events(&self, user_id: Option<i64>, project_id: Option<i64>, limit: i64) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e LEFT JOIN users u ON u.id = e.user_id LEFT JOIN projects p ON p.id = e.project_id \
             WHERE ($1 IS NULL OR e.user_id = $2) AND ($3 IS NULL OR e.project_id = $4) ORDER BY e.id DESC LIMIT $5"
        );
        Ok(sqlx::query_as::<_, Event>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(user_id)
            .bind(project_id)
            .bind(project_id)
            .bind(limit)
            .fetch_all(&self.writer)
            .await?)
    }

    /// Whether this user completed a login (every factor) from `addr` at or after `since`
    /// (microseconds): such an address is not locked out by other people's guesses.
    pub async fn logged_in_from(&self, user_id: i64, addr: &str, since: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM events WHERE user_id = $1 AND kind = 'login' AND addr = $2 AND at >= $3 LIMIT 1")
            .bind(user_id)
            .bind(addr)
            .bind(since)
            .fetch_optional(&self.reader)
            .await?
            .is_some())
    }

    /// Whether this user has logged in before from this address with this user agent.
    pub async fn known_client(&self, user_id: i64, addr: Option<&str>, user_agent: Option<&str>) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM events WHERE user_id = $1 AND kind = 'login' AND addr IS NOT DISTINCT FROM $2 AND user_agent IS NOT DISTINCT FROM $3 LIMIT 1")
            .bind(user_id)
            .bind(addr)
            .bind(user_agent)
            .fetch_optional(&self.writer)
            .await?
            .is_some())
    }
}

/// Removes publisher `id` inside a transaction (see [`Db::remove_publisher`]); false if there was
/// no such publisher.
pub(crate) async fn drop_publisher(conn: &mut sqlx::AnyConnection, id: i64) -> Result<bool, StoreError> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT COALESCE(p.normalized, pb.pending_name) FROM publishers pb LEFT JOIN projects p ON p.id = pb.project_id WHERE pb.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    // A token whose first publisher goes but that covers others is re-pointed at the next one.
    sqlx::query(
        "UPDATE tokens SET publisher_id = (SELECT MIN(tp.publisher_id) FROM token_publishers tp WHERE tp.token_id = tokens.id AND tp.publisher_id <> $1) \
         WHERE publisher_id = $2 AND EXISTS (SELECT 1 FROM token_publishers tp WHERE tp.token_id = tokens.id AND tp.publisher_id <> $3)",
    )
    .bind(id)
    .bind(id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // Tokens that covered only this publisher could upload nowhere else: they go.
    sqlx::query("DELETE FROM tokens WHERE publisher_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM token_publishers WHERE publisher_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("UPDATE files SET publisher_id = NULL WHERE publisher_id = $1").bind(id).execute(&mut *conn).await?;
    let res = sqlx::query("DELETE FROM publishers WHERE id = $1").bind(id).execute(&mut *conn).await?;
    let existed = res.rows_affected() == 1;
    if existed {
        super::tlog::append(conn, &["publisher", name.as_deref().unwrap_or("-"), "remove", &id.to_string()], None, None).await?;
    }
    Ok(existed)
}
