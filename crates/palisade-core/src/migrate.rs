//! Moving an instance into another database and blob storage (`palisade migrate`): typically
//! from the embedded layout (SQLite and a folder) into the cluster layout (PostgreSQL and a
//! bucket). The target must be empty. The database is copied from one snapshot, ids included;
//! then every blob a copied file references is read from the source, its SHA-256 checked against
//! its name, and written to the target storage; last, the copy gets an instance id of its own and
//! the storage it uses is handed over to it.

use futures_util::StreamExt;
use palisade_dist::Hasher;
use palisade_store::{BlobStore, Counts, Db, Storage};
use tokio::io::AsyncWriteExt;

use crate::Core;

/// Where to.
pub struct Target {
    pub database_url: String,
    /// `None`: the blobs stay where they are, and the target database uses the same storage.
    pub storage: Option<Storage>,
}

/// What a migration reports as it goes.
pub enum Step<'a> {
    Rows { table: &'a str, copied: i64 },
    Blobs { done: usize, of: usize },
}

/// What was copied.
pub struct Summary {
    pub counts: Counts,
    pub blobs: usize,
    pub bytes: u64,
}

impl Core {
    /// Copies this instance into `target` (see the module's documentation). Refuses a target
    /// database or storage that holds anything. Servers on this instance should be stopped
    /// first: their writes wait while the database is copied, and a file removed after that
    /// would leave its blob missing from the copy (reported as an error).
    pub async fn migrate_to(&self, target: &Target, progress: &mut dyn FnMut(Step)) -> anyhow::Result<Summary> {
        let db = Db::connect(&target.database_url, 4).await?;
        anyhow::ensure!(db.is_empty().await?, "the target database is not empty; migrate only into a new, empty database");
        let blobs = match &target.storage {
            Some(storage) => {
                let blobs = BlobStore::connect(&self.config.data_dir, storage).await?;
                anyhow::ensure!(
                    blobs.list().await?.is_empty(),
                    "the target storage {} already holds files; migrate only into empty storage",
                    blobs.location()
                );
                Some(blobs)
            }
            None => None,
        };
        let source_id = self.db.instance_id().await?;
        let counts = self.db.copy_into(&db, |table, copied| progress(Step::Rows { table, copied })).await?;
        let copied = db.counts().await?;
        anyhow::ensure!(copied == counts, "the copy does not hold what was read: {copied:?} instead of {counts:?}");

        let digests = db.file_digests().await?;
        let mut bytes = 0u64;
        for (done, sha256) in digests.iter().enumerate() {
            bytes += self.copy_blob(sha256, blobs.as_ref()).await?;
            progress(Step::Blobs { done: done + 1, of: digests.len() });
        }
        // The copy is another database: it gets its own instance id and the storage it uses
        // names it, so the original (started again by mistake, or to go back) cannot sweep the
        // copy's files from a storage they share.
        let new_id = db.renew_instance_id().await?;
        blobs.as_ref().unwrap_or(&self.blobs).hand_over(&source_id, &new_id).await?;
        db.close().await;
        Ok(Summary { counts, blobs: digests.len(), bytes })
    }

    /// Reads blob `sha256` from this instance's storage, checks its digest, and writes it to
    /// `to` (or, with `None`, only checks it). Returns its size.
    async fn copy_blob(&self, sha256: &str, to: Option<&BlobStore>) -> anyhow::Result<u64> {
        let mut stream = match self.blobs.read(sha256, None).await {
            Ok(s) => s,
            Err(palisade_store::StoreError::NotFound(_)) => {
                anyhow::bail!(
                    "blob {sha256} is referenced by a file but missing from {} (was a file removed during the migration?)",
                    self.blobs.location()
                )
            }
            Err(e) => return Err(e.into()),
        };
        let mut temp = match to {
            Some(to) => Some(to.create_temp().await?),
            None => None,
        };
        let mut hasher = Hasher::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            if let Some(t) = temp.as_mut() {
                t.file.write_all(&chunk).await?;
            }
        }
        let size = hasher.len();
        let actual = hasher.finish().sha256;
        anyhow::ensure!(
            actual == sha256,
            "blob {sha256} in {} holds bytes whose sha256 is {actual}: the source is damaged",
            self.blobs.location()
        );
        if let (Some(to), Some(temp)) = (to, temp) {
            drop(to.persist(temp, sha256).await?);
        }
        Ok(size)
    }
}
