//! Blobs: file contents addressed by sha256, in a folder on this machine (the default) or in an
//! S3-compatible bucket ([`bucket`]). Either way a file is received into a temporary file in this
//! node's `tmp/` while it is hashed, then synced and put in place whole: in the folder, linked
//! to `files/ab/cd/<sha256>`, so a blob path either holds the whole file or does not exist; in a
//! bucket, written as one object, which S3 makes visible only once complete.
//!
//! Two rules keep the blobs consistent with the database when several processes (the server,
//! the CLI) share them:
//!
//! - A blob is deleted only by [`crate::Db`], inside a write transaction, after checking that no
//!   file references it (see `Db::remove_blob_if_unreferenced`). `BlobStore` itself offers no
//!   public way to delete one.
//! - An upload keeps its own copy of its bytes (the temporary file) until the transaction that
//!   publishes it has committed, and that transaction puts the blob back in place if a removal
//!   deleted it meanwhile (see [`StoredBlob`]).
//!
//! Temporary files are locked (`flock`) by the process writing them for as long as they exist, so
//! that the server's clean-up at start ([`BlobStore::clean_stale_tmp`]) can tell the abandoned ones
//! (their process is gone, and the kernel dropped its lock) from the in-flight uploads of another
//! process.

mod bucket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

pub use bucket::BucketConfig;

use crate::StoreError;

/// On a filesystem without file locks, how old an unlocked temporary file must be before the
/// clean-up at start takes it for abandoned. Uploads have time limits far below this.
const STALE_WITHOUT_LOCKS: Duration = Duration::from_secs(24 * 3600);

/// Where blobs are kept.
#[derive(Clone, Debug)]
pub enum Storage {
    /// A folder on this machine (`file://PATH`).
    Folder(PathBuf),
    /// An S3-compatible bucket (`s3://BUCKET[/PREFIX]`).
    Bucket(BucketConfig),
}

/// A blob's bytes, as they are read.
pub type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A stored blob, as a listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub sha256: String,
    /// Since it was last written.
    pub age: Duration,
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    backend: Backend,
    tmp: PathBuf,
}

#[derive(Clone, Debug)]
enum Backend {
    Folder(PathBuf),
    Bucket(Arc<bucket::Bucket>),
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

    /// Makes sure the blob is in place, putting it back (synced) from the upload's own copy if
    /// it is missing; `true` if it had to. Called by `Db::publish` under the write lock, where no
    /// removal can run, so what it finds holds until the commit.
    pub(crate) async fn ensure_in_place(&self) -> Result<bool, StoreError> {
        let root = match &self.store.backend {
            Backend::Folder(root) => root,
            Backend::Bucket(bucket) => {
                if bucket.exists(&self.sha256).await? {
                    return Ok(false);
                }
                bucket.put(&self.temp.path, &self.sha256).await?;
                return Ok(true);
            }
        };
        let dest = folder_path(root, &self.sha256);
        match tokio::fs::metadata(&dest).await {
            Ok(m) if m.is_file() => {
                if !self.placed
                    && let Some(dir) = dest.parent()
                {
                    sync_dir(dir).await?;
                }
                Ok(false)
            }
            Ok(_) => Err(StoreError::io(&dest, std::io::Error::other("the blob path is not a file"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.store.place(root, &self.temp.path, &dest).await?;
                Ok(true)
            }
            Err(e) => Err(StoreError::io(&dest, e)),
        }
    }
}

impl BlobStore {
    /// Opens (creating) `files/` and `tmp/` below `data_dir`: the embedded default. Deletes
    /// nothing: the CLI opens the folder while a server may be receiving uploads into `tmp/`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_folder(data_dir, data_dir.join("files"))
    }

    fn open_folder(data_dir: &Path, root: PathBuf) -> Result<Self, StoreError> {
        let tmp = data_dir.join("tmp");
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(Self { backend: Backend::Folder(root), tmp })
    }

    /// A folder the operator named (`file://PATH`), perhaps on another filesystem than the data
    /// directory or shared by several nodes: it must exist (a missing mount is an error, not an
    /// empty repository), and uploads are received in its own `.tmp/`, so that placing a blob is
    /// a link or a rename within one filesystem.
    fn open_named_folder(root: PathBuf) -> Result<Self, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::io(
                &root,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "storage.url names a folder that does not exist (creating it is the operator's job)",
                ),
            ));
        }
        let tmp = root.join(".tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        Ok(Self { backend: Backend::Folder(root), tmp })
    }

    /// Opens `storage`, with this node's temporary folder in `data_dir/tmp/`. A bucket is checked
    /// to exist and be readable now, so a mistake stops the start with a clear message.
    pub async fn connect(data_dir: &Path, storage: &Storage) -> Result<Self, StoreError> {
        match storage {
            Storage::Folder(root) if *root == data_dir.join("files") => Self::open_folder(data_dir, root.clone()),
            Storage::Folder(root) => Self::open_named_folder(root.clone()),
            Storage::Bucket(config) => {
                let bucket = bucket::Bucket::connect(config).await?;
                let tmp = data_dir.join("tmp");
                std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
                Ok(Self { backend: Backend::Bucket(Arc::new(bucket)), tmp })
            }
        }
    }

    /// Marks the storage as belonging to the database whose instance id is `instance` (see
    /// `Db::instance_id`), or checks that it already does. Two databases on one folder or bucket
    /// prefix would each take the other's blobs for orphans and sweep them; this stops the second
    /// at start instead. The check is a read then a write, so two databases started at the very
    /// same moment on an empty prefix are not caught.
    pub async fn claim(&self, instance: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Folder(root) => {
                let marker = root.join(MARKER);
                match std::fs::read_to_string(&marker) {
                    Ok(found) => check_claim(&marker.display().to_string(), found.trim(), instance),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let mut temp = self.create_temp().await?;
                        temp.file.write_all(instance.as_bytes()).await.map_err(|e| StoreError::io(&temp.path, e))?;
                        temp.sync().await?;
                        tokio::fs::rename(&temp.path, &marker).await.map_err(|e| StoreError::io(&marker, e))?;
                        sync_dir(root).await
                    }
                    Err(e) => Err(StoreError::io(&marker, e)),
                }
            }
            Backend::Bucket(b) => match b.marker().await? {
                Some(found) => check_claim(b.url(), found.trim(), instance),
                None => b.set_marker(instance).await,
            },
        }
    }

    /// Hands the storage over from the database whose instance id is `from` to the one whose id
    /// is `to` (after `palisade migrate`): the marker must be absent or name `from`. The old
    /// database is then refused here, so that it cannot sweep the new one's files.
    pub async fn hand_over(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let found = match &self.backend {
            Backend::Folder(root) => match std::fs::read_to_string(root.join(MARKER)) {
                Ok(found) => Some(found.trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(StoreError::io(&root.join(MARKER), e)),
            },
            Backend::Bucket(b) => b.marker().await?.map(|m| m.trim().to_string()),
        };
        if let Some(found) = found {
            check_claim(&self.location(), &found, from)?;
        }
        match &self.backend {
            Backend::Folder(root) => {
                let marker = root.join(MARKER);
                let mut temp = self.create_temp().await?;
                temp.file.write_all(to.as_bytes()).await.map_err(|e| StoreError::io(&temp.path, e))?;
                temp.sync().await?;
                tokio::fs::rename(&temp.path, &marker).await.map_err(|e| StoreError::io(&marker, e))?;
                sync_dir(root).await
            }
            Backend::Bucket(b) => b.set_marker(to).await,
        }
    }

    /// How long a blob must have been left alone before the orphan sweep may take it for one: an
    /// upload writes its blob before the transaction that publishes it, and in a bucket the
    /// write's time is the server's clock, not this node's.
    pub fn sweep_grace(&self) -> Duration {
        match &self.backend {
            Backend::Folder(_) => Duration::from_secs(60),
            Backend::Bucket(_) => Duration::from_secs(3600),
        }
    }

    /// Where the blobs are, for messages: a folder's path or `s3://BUCKET[/PREFIX]`.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Folder(root) => root.display().to_string(),
            Backend::Bucket(b) => b.url().to_string(),
        }
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

    /// Where the blob with this sha256 lives when blobs are in a folder: `files/ab/cd/abcd…`.
    /// `None` for a bucket.
    pub fn path_for(&self, sha256: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Folder(root) => Some(folder_path(root, sha256)),
            Backend::Bucket(_) => None,
        }
    }

    pub async fn exists(&self, sha256: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Folder(root) => Ok(folder_path(root, sha256).is_file()),
            Backend::Bucket(b) => b.exists(sha256).await,
        }
    }

    /// Syncs a temporary file and puts it in place: in a folder, linked to its content address
    /// with the directory synced so the link survives a crash (an existing blob with the same
    /// digest is kept as it is); in a bucket, written as one object. The temporary file stays
    /// (in the returned [`StoredBlob`]) until the caller has published.
    pub async fn persist(&self, mut temp: TempBlob, sha256: &str) -> Result<StoredBlob, StoreError> {
        temp.sync().await?;
        let placed = match &self.backend {
            Backend::Folder(root) => {
                let dest = folder_path(root, sha256);
                let placed = !dest.is_file();
                if placed {
                    self.place(root, &temp.path, &dest).await?;
                }
                placed
            }
            Backend::Bucket(b) => {
                b.put(&temp.path, sha256).await?;
                true
            }
        };
        Ok(StoredBlob { temp, sha256: sha256.to_string(), store: self.clone(), placed })
    }

    /// The blob's bytes, or `range` of them (first byte, one past the last; within the blob).
    pub async fn read(&self, sha256: &str, range: Option<std::ops::Range<u64>>) -> Result<BlobStream, StoreError> {
        match &self.backend {
            Backend::Folder(root) => {
                let path = folder_path(root, sha256);
                let mut f = tokio::fs::File::open(&path).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {sha256}")),
                    _ => StoreError::io(&path, e),
                })?;
                let (start, len) = match range {
                    Some(r) => (r.start, r.end.saturating_sub(r.start)),
                    None => (0, u64::MAX),
                };
                if start > 0 {
                    f.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| StoreError::io(&path, e))?;
                }
                use tokio::io::AsyncReadExt;
                Ok(tokio_util::io::ReaderStream::with_capacity(f.take(len), 64 * 1024).boxed())
            }
            Backend::Bucket(b) => b.read(sha256, range).await,
        }
    }

    /// A short-lived URL to send the client to instead of streaming the blob, when the storage
    /// offers one and the operator enabled it (`storage.presigned_downloads_secs`).
    pub async fn presigned_url(&self, sha256: &str, filename: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Folder(_) => Ok(None),
            Backend::Bucket(b) => b.presigned_url(sha256, filename).await,
        }
    }

    /// The blob as a file on this machine, for readers that need a path (the scanner): the blob
    /// itself in a folder, a temporary copy from a bucket. `None` if there is no such blob.
    pub async fn local(&self, sha256: &str) -> Result<Option<LocalBlob>, StoreError> {
        if let Backend::Folder(root) = &self.backend {
            let path = folder_path(root, sha256);
            return Ok(path.is_file().then_some(LocalBlob::Stored(path)));
        }
        let mut stream = match self.read(sha256, None).await {
            Ok(s) => s,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut temp = self.create_temp().await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::io(&temp.path, e))?;
            temp.file.write_all(&chunk).await.map_err(|e| StoreError::io(&temp.path, e))?;
        }
        temp.file.flush().await.map_err(|e| StoreError::io(&temp.path, e))?;
        Ok(Some(LocalBlob::Copy(temp)))
    }

    /// Puts the synced file `src` at `dest` as a second link to the same bytes (or, where the
    /// filesystem has no hard links, as a synced copy renamed into place), and syncs the folder.
    async fn place(&self, root: &Path, src: &Path, dest: &Path) -> Result<(), StoreError> {
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
        if !dir.is_dir() {
            tokio::fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(&dir, e))?;
            // New folders (`ab/`, `ab/cd/`) must survive a crash too: sync each parent up to the root.
            let mut child = dir.as_path();
            while child != root
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
        let root = match &self.backend {
            Backend::Folder(root) => root,
            Backend::Bucket(b) => return b.remove(sha256).await,
        };
        let path = folder_path(root, sha256);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Every stored blob, with its age (for the orphan sweep).
    pub async fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        match &self.backend {
            Backend::Folder(root) => {
                let root = root.clone();
                tokio::task::spawn_blocking(move || list_folder(&root))
                    .await
                    .map_err(|e| StoreError::io(Path::new("files"), std::io::Error::other(e.to_string())))?
            }
            Backend::Bucket(b) => b.list().await,
        }
    }
}

/// A blob as a file on this machine (see [`BlobStore::local`]).
pub enum LocalBlob {
    /// The stored file itself.
    Stored(PathBuf),
    /// A copy, removed when dropped.
    Copy(TempBlob),
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        match self {
            LocalBlob::Stored(p) => p,
            LocalBlob::Copy(t) => t.path(),
        }
    }
}

/// The file (in a folder) or object (in a bucket, under the prefix) naming the database the
/// blobs belong to.
const MARKER: &str = "palisade-instance";

fn check_claim(location: &str, found: &str, instance: &str) -> Result<(), StoreError> {
    if found == instance {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "{location} belongs to another Palisade database (instance {found}, this one is {instance}); each database needs its own folder or bucket prefix, or each would sweep the other's files as orphans"
    )))
}

/// A blob's name: 64 lowercase hex digits.
pub(crate) fn is_digest(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn folder_path(root: &Path, sha256: &str) -> PathBuf {
    let s = sha256.get(..4).filter(|s| s.is_ascii()).unwrap_or("0000");
    root.join(&s[..2]).join(&s[2..4]).join(sha256)
}

fn list_folder(root: &Path) -> Result<Vec<BlobInfo>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let ty = entry.file_type().map_err(|e| StoreError::io(&entry.path(), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if ty.is_dir() {
                // `.tmp/` of a named folder, and anything else hidden, holds no blobs.
                if !name.starts_with('.') {
                    stack.push(entry.path());
                }
            } else if ty.is_file() && is_digest(name) {
                // A blob whose time cannot be read counts as new: the sweep leaves it alone.
                let age = entry.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default()).unwrap_or_default();
                out.push(BlobInfo { sha256: name.to_string(), age });
            }
        }
    }
    Ok(out)
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

    async fn names(store: &BlobStore) -> Vec<String> {
        store.list().await.unwrap().into_iter().map(|b| b.sha256).collect()
    }

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
        assert_eq!(std::fs::read(store.path_for(HELLO).unwrap()).unwrap(), b"hello");
        assert_eq!(names(&store).await, vec![HELLO.to_string()]);
        // The upload keeps its own link until it is done publishing.
        assert!(tmp_path.exists());
        drop(stored);
        assert!(!tmp_path.exists());
        assert_eq!(std::fs::read(store.path_for(HELLO).unwrap()).unwrap(), b"hello");

        // A dropped temp file leaves nothing behind.
        let t = store.create_temp().await.unwrap();
        let p = t.path().to_path_buf();
        drop(t);
        assert!(!p.exists());

        store.remove(HELLO).await.unwrap();
        assert!(names(&store).await.is_empty());
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
        assert_eq!(std::fs::read(store.path_for(HELLO).unwrap()).unwrap(), b"hello");
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
        assert_eq!(std::fs::read(server.path_for("a").unwrap()).unwrap(), b"half an upload");
        assert!(tmp_entries(dir.path()).is_empty());
    }

    /// A folder the operator names must be there (a missing mount is not an empty repository);
    /// uploads are received inside it, so placing a blob never crosses filesystems; what is not a
    /// blob in it is never listed (so never swept).
    #[tokio::test]
    async fn a_named_folder_must_exist_and_keeps_its_own_tmp() {
        let data = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let missing = elsewhere.path().join("not-mounted");
        let err = BlobStore::connect(data.path(), &Storage::Folder(missing.clone())).await.unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!missing.exists());

        let store = BlobStore::connect(data.path(), &Storage::Folder(elsewhere.path().to_path_buf())).await.unwrap();
        let t = store.create_temp().await.unwrap();
        assert!(t.path().starts_with(elsewhere.path().join(".tmp")), "{}", t.path().display());
        let mut t = t;
        t.file.write_all(b"hello").await.unwrap();
        drop(store.persist(t, HELLO).await.unwrap());
        store.claim("instance-a").await.unwrap();
        std::fs::write(elsewhere.path().join("notes.txt"), b"x").unwrap();
        std::fs::create_dir_all(elsewhere.path().join("ab/cd")).unwrap();
        std::fs::write(elsewhere.path().join("ab/cd/README"), b"x").unwrap();
        assert_eq!(names(&store).await, vec![HELLO.to_string()]);
        assert!(!data.path().join("tmp").exists());
    }

    /// After a migration the storage names the copy, and the original is refused there.
    #[tokio::test]
    async fn a_handed_over_folder_refuses_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        store.claim("original").await.unwrap();
        let err = store.hand_over("someone-else", "copy").await.unwrap_err().to_string();
        assert!(err.contains("belongs to another Palisade database"), "{err}");
        store.hand_over("original", "copy").await.unwrap();
        store.claim("copy").await.unwrap();
        let err = store.claim("original").await.unwrap_err().to_string();
        assert!(err.contains("belongs to another Palisade database") && err.contains("copy"), "{err}");
        assert!(names(&store).await.is_empty() && tmp_entries(dir.path()).is_empty());
    }

    /// The default folder, like a bucket prefix, is claimed by one database.
    #[tokio::test]
    async fn a_folder_belongs_to_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        store.claim("instance-a").await.unwrap();
        store.claim("instance-a").await.unwrap();
        let err = BlobStore::open(dir.path()).unwrap().claim("instance-b").await.unwrap_err().to_string();
        assert!(err.contains("belongs to another Palisade database"), "{err}");
        assert!(names(&store).await.is_empty());
    }
}
