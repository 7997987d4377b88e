//! The blob folder: file contents addressed by sha256, received into a temporary file in `tmp/`
//! that is synced and then linked into place, so a blob path either holds the whole file or does
//! not exist.
//!
//! Two rules keep the folder consistent with the database when several processes (the server,
//! the CLI) share one data directory:
//!
//! - A blob is deleted only by [`crate::Db`], inside a write transaction, after checking that no
//!   file references it (see `Db::remove_blob_if_unreferenced`). `BlobStore` itself offers no
//!   public way to delete one.
//! - An upload keeps its own link to its bytes (the temporary file) until the transaction that
//!   publishes it has committed, and that transaction puts the blob back in place if a removal
//!   deleted it meanwhile (see [`StoredBlob`]).
//!
//! Temporary files are locked (`flock`) by the process writing them for as long as they exist, so
//! that the server's clean-up at start ([`BlobStore::clean_stale_tmp`]) can tell the abandoned ones
//! (their process is gone, and the kernel dropped its lock) from the in-flight uploads of another
//! process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::StoreError;

/// On a filesystem without file locks, how old an unlocked temporary file must be before the
/// clean-up at start takes it for abandoned. Uploads have time limits far below this.
const STALE_WITHOUT_LOCKS: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// A file being received, locked by this process. Dropped, it deletes itself.
pub struct TempBlob {
    pub file: tokio::fs::File,
    path: PathBuf,
}

impl TempBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the data to disk.
    pub async fn sync(&mut self) -> Result<(), StoreError> {
        self.file.flush().await.map_err(|e| StoreError::io(&self.path, e))?;
        self.file.sync_all().await.map_err(|e| StoreError::io(&self.path, e))
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        // The name goes before the descriptor (and with it the lock), so the clean-up at start
        // never sees this file unlocked.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A received file placed at its content address, with the upload's own link to the bytes.
///
/// Pass it to [`crate::Db::publish`]: inside the publishing transaction the blob is checked, and
/// restored from this link if a removal deleted it after [`BlobStore::persist`]. Drop it once
/// the publishing transaction is over (the temporary name goes with it).
pub struct StoredBlob {
    temp: TempBlob,
    dest: PathBuf,
    sha256: String,
    store: BlobStore,
    /// Whether this upload linked the blob itself (and synced its folder). If another upload of
    /// the same bytes did, that one may not have synced yet: `ensure_in_place` syncs for it.
    placed: bool,
}

impl StoredBlob {
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The blob's address under `files/`.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Makes sure the blob is at its address, putting it back (synced) from the upload's own
    /// link if it is missing; `true` if it had to. Called by `Db::publish` under the write lock,
    /// where no removal can run, so what it finds holds until the commit.
    pub(crate) async fn ensure_in_place(&self) -> Result<bool, StoreError> {
        match tokio::fs::metadata(&self.dest).await {
            Ok(m) if m.is_file() => {
                if !self.placed
                    && let Some(dir) = self.dest.parent()
                {
                    sync_dir(dir).await?;
                }
                Ok(false)
            }
            Ok(_) => Err(StoreError::io(&self.dest, std::io::Error::other("the blob path is not a file"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.store.place(&self.temp.path, &self.dest).await?;
                Ok(true)
            }
            Err(e) => Err(StoreError::io(&self.dest, e)),
        }
    }
}

impl BlobStore {
    /// Opens (creating) `files/` and `tmp/` below `data_dir`. Deletes nothing: the CLI opens the
    /// folder while a server may be receiving uploads into `tmp/`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let root = data_dir.join("files");
        let tmp = data_dir.join("tmp");
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(Self { root, tmp })
    }

    /// Removes the temporary files that no live process is writing: those left by a crash or a
    /// `kill -9`. For the server to call at start. A file is abandoned when its lock can be
    /// taken, since every writer holds the lock until it has removed the file and the kernel
    /// drops it when the writer dies; this holds across processes and whatever the upload's
    /// duration, which an age threshold would not. Where the filesystem has no locks, only files
    /// untouched for a day are removed. Returns how many were.
    pub fn clean_stale_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp).map_err(|e| StoreError::io(&self.tmp, e))? {
            let entry = entry.map_err(|e| StoreError::io(&self.tmp, e))?;
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            // If the lock is ours, no live process is writing the file: a writer locks it from
            // creation until removal, and one that finds it taken gives the name up.
            let Ok(file) = std::fs::File::open(&path) else { continue };
            let abandoned = match file.try_lock() {
                Ok(()) => true,
                Err(std::fs::TryLockError::WouldBlock) => false,
                Err(std::fs::TryLockError::Error(_)) => {
                    file.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_WITHOUT_LOCKS)
                }
            };
            if abandoned && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Creates a temporary file in `tmp/`, locked by this process until the `TempBlob` is dropped.
    pub async fn create_temp(&self) -> Result<TempBlob, StoreError> {
        let tmp = self.tmp.clone();
        let (file, path) = tokio::task::spawn_blocking(move || create_locked(&tmp))
            .await
            .map_err(|e| StoreError::io(&self.tmp, std::io::Error::other(e.to_string())))??;
        Ok(TempBlob { file: tokio::fs::File::from_std(file), path })
    }

    /// Where the blob with this sha256 lives: `files/ab/cd/abcd…`.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        let s = sha256.get(..4).unwrap_or("0000");
        self.root.join(&s[..2]).join(&s[2..4]).join(sha256)
    }

    pub fn exists(&self, sha256: &str) -> bool {
        self.path_for(sha256).is_file()
    }

    /// Syncs a temporary file and links it to its content address, syncing the directory so the
    /// link survives a crash. An existing blob with the same digest is kept as it is. The
    /// temporary file stays (in the returned [`StoredBlob`]) until the caller has published.
    pub async fn persist(&self, mut temp: TempBlob, sha256: &str) -> Result<StoredBlob, StoreError> {
        temp.sync().await?;
        let dest = self.path_for(sha256);
        let placed = !dest.is_file();
        if placed {
            self.place(&temp.path, &dest).await?;
        }
        Ok(StoredBlob { temp, dest, sha256: sha256.to_string(), store: self.clone(), placed })
    }

    /// Puts the synced file `src` at `dest` as a second link to the same bytes (or, where the
    /// filesystem has no hard links, as a synced copy renamed into place), and syncs the folder.
    async fn place(&self, src: &Path, dest: &Path) -> Result<(), StoreError> {
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        if !dir.is_dir() {
            tokio::fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(&dir, e))?;
            // New folders (`ab/`, `ab/cd/`) must survive a crash too: sync each parent up to the root.
            let mut child = dir.as_path();
            while child != self.root.as_path()
                && let Some(parent) = child.parent()
            {
                sync_dir(parent).await?;
                child = parent;
            }
        }
        match tokio::fs::hard_link(src, dest).await {
            Ok(()) => {}
            // Another upload of the same bytes placed it first; its link may not be synced yet.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                let mut copy = self.create_temp().await?;
                let mut from = tokio::fs::File::open(src).await.map_err(|e| StoreError::io(src, e))?;
                tokio::io::copy(&mut from, &mut copy.file).await.map_err(|e| StoreError::io(&copy.path, e))?;
                copy.sync().await?;
                tokio::fs::rename(&copy.path, dest).await.map_err(|e| StoreError::io(dest, e))?;
            }
        }
        sync_dir(&dir).await
    }

    /// Deletes a blob. Only `Db` calls this, under its write lock, after checking that no file
    /// references the digest.
    pub(crate) async fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        let path = self.path_for(sha256);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Every blob digest in the folder (for the orphan sweep).
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                let ty = entry.file_type().map_err(|e| StoreError::io(&entry.path(), e))?;
                if ty.is_dir() {
                    stack.push(entry.path());
                } else if let Some(name) = entry.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// Creates `tmp/upload-<random>` and locks it. The clean-up at start may take the lock between
/// the creation and ours and remove the name; the name is then checked to still be this file,
/// and on a loss another name is tried.
fn create_locked(tmp: &Path) -> Result<(std::fs::File, PathBuf), StoreError> {
    for _ in 0..8 {
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(|e| StoreError::io(tmp, std::io::Error::other(e.to_string())))?;
        let path = tmp.join(format!("upload-{}", hex::encode(name)));
        let file = std::fs::OpenOptions::new().write(true).read(true).create_new(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            // The clean-up holds it and is about to remove it.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            // No locks on this filesystem: the clean-up goes by age instead.
            Err(std::fs::TryLockError::Error(_)) => return Ok((file, path)),
        }
        if names_file(&path, &file) {
            return Ok((file, path));
        }
    }
    Err(StoreError::io(tmp, std::io::Error::other("could not create a temporary file that stays in place")))
}

#[cfg(unix)]
fn names_file(path: &Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(not(unix))]
fn names_file(path: &Path, _file: &std::fs::File) -> bool {
    // Elsewhere an open file cannot be removed, so the name still holds it.
    path.is_file()
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = tokio::fs::File::open(dir).await.map_err(|e| StoreError::io(dir, e))?;
    d.sync_all().await.map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn tmp_entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir.join("tmp")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn persist_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut t = store.create_temp().await.unwrap();
        t.file.write_all(b"hello").await.unwrap();
        let tmp_path = t.path().to_path_buf();
        let stored = store.persist(t, HELLO).await.unwrap();
        assert_eq!(std::fs::read(stored.path()).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![HELLO.to_string()]);
        // The upload keeps its own link until it is done publishing.
        assert!(tmp_path.exists());
        drop(stored);
        assert!(!tmp_path.exists());
        assert_eq!(std::fs::read(store.path_for(HELLO)).unwrap(), b"hello");

        // A dropped temp file leaves nothing behind.
        let t = store.create_temp().await.unwrap();
        let p = t.path().to_path_buf();
        drop(t);
        assert!(!p.exists());

        store.remove(HELLO).await.unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    /// The bytes stay reachable through the upload's link: a blob deleted after `persist` is put
    /// back, synced, by `ensure_in_place`.
    #[tokio::test]
    async fn stored_blob_restores_a_deleted_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut t = store.create_temp().await.unwrap();
        t.file.write_all(b"hello").await.unwrap();
        let stored = store.persist(t, HELLO).await.unwrap();
        assert!(!stored.ensure_in_place().await.unwrap());
        store.remove(HELLO).await.unwrap();
        assert!(stored.ensure_in_place().await.unwrap());
        drop(stored);
        assert_eq!(std::fs::read(store.path_for(HELLO)).unwrap(), b"hello");
        assert!(tmp_entries(dir.path()).is_empty());
    }

    /// Issue 13: every CLI command opened the blob folder through `BlobStore::open`, which emptied
    /// `tmp/` and so deleted the uploads a server on the same data directory was receiving.
    #[tokio::test]
    async fn cli_open_keeps_in_flight_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let server = BlobStore::open(dir.path()).unwrap();
        let mut upload = server.create_temp().await.unwrap();
        upload.file.write_all(b"half an upl").await.unwrap();
        upload.file.flush().await.unwrap();

        // What a CLI command does.
        BlobStore::open(dir.path()).unwrap();
        assert!(upload.path().exists(), "BlobStore::open deleted an in-flight upload");

        // Nor does the server's clean-up at start (another server on the same folder) touch it:
        // only what no live process holds goes.
        std::fs::write(dir.path().join("tmp/upload-left-by-a-crash"), b"x").unwrap();
        let other = BlobStore::open(dir.path()).unwrap();
        assert_eq!(other.clean_stale_tmp().unwrap(), 1);
        assert!(upload.path().exists());
        assert_eq!(tmp_entries(dir.path()), vec![upload.path().file_name().unwrap().to_string_lossy().into_owned()]);
        upload.file.write_all(b"oad").await.unwrap();
        let stored = server.persist(upload, "a").await.unwrap();
        drop(stored);
        assert_eq!(std::fs::read(server.path_for("a")).unwrap(), b"half an upload");
        assert!(tmp_entries(dir.path()).is_empty());
    }
}
