//! PEP 740 attestations stored with their files, and the owner's policy that requires them.

use sqlx::{Any, Row, Transaction};

use super::{Db, journal, project_in};
use crate::StoreError;

/// A verified attestation to store with a new file.
#[derive(Clone, Debug)]
pub struct NewAttestation {
    /// The in-toto predicate type.
    pub predicate_type: String,
    /// The publisher object (JSON, PyPI's shape) of the trusted publisher that signed it.
    pub publisher: String,
    /// The attestation object as the client sent it (JSON).
    pub attestation: String,
    /// When Sigstore's log integrated it (seconds).
    pub integrated_time: i64,
}

/// An attestation as stored.
#[derive(Clone, Debug)]
pub struct StoredAttestation {
    pub predicate_type: String,
    pub publisher: String,
    pub attestation: String,
}

pub(super) async fn insert(tx: &mut Transaction<'static, Any>, file_id: i64, list: &[NewAttestation], now: i64) -> Result<(), StoreError> {
    for a in list {
        sqlx::query(
            "INSERT INTO attestations (file_id, predicate_type, publisher, attestation, integrated_time, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(file_id)
        .bind(&a.predicate_type)
        .bind(&a.publisher)
        .bind(&a.attestation)
        .bind(a.integrated_time)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Db {
    /// The attestations of a file, oldest first.
    pub async fn attestations(&self, file_id: i64) -> Result<Vec<StoredAttestation>, StoreError> {
        let rows = sqlx::query("SELECT predicate_type, publisher, attestation FROM attestations WHERE file_id = $1 ORDER BY id")
            .bind(file_id)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|r| StoredAttestation { predicate_type: r.get(0), publisher: r.get(1), attestation: r.get(2) }).collect())
    }

    /// Turns the project's attestation requirement on or off.
    pub async fn set_require_attestations(&self, normalized: &str, on: bool, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let project = project_in(&mut tx, normalized).await?;
        sqlx::query("UPDATE projects SET require_attestations = $1 WHERE id = $2").bind(on).bind(project.id).execute(&mut *tx).await?;
        let what = if on { "require" } else { "optional" };
        journal(&mut tx, &project, &format!("attestations {what}"), actor).await?;
        super::tlog::append(&mut tx, &["attestations", &project.normalized, what, "by", &super::tlog::actor(actor)], None, None).await?;
        tx.commit().await?;
        Ok(())
    }
}
