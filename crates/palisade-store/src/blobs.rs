//! The blob folder: file contents addressed by sha256, written through a temporary file that is
//! synced and renamed into place, so a blob path either holds the whole file or does not exist.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use crate::StoreError;

#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// A file being received. Dropped without [`BlobStore::persist`], it deletes itself.
pub struct TempBlob {
    pub file: tokio::fs::File,
    path: PathBuf,
    keep: bool,
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
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Opens (creating) `files/` and `tmp/` below `data_dir`, and empties `tmp/`: whatever is
    /// there belongs to uploads that were never acknowledged.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let root = data_dir.join("files");
        let tmp = data_dir.join("tmp");
        for dir in [&root, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let store = Self { root, tmp };
        store.clean_tmp()?;
        Ok(store)
    }

    fn clean_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp).map_err(|e| StoreError::io(&self.tmp, e))? {
            let entry = entry.map_err(|e| StoreError::io(&self.tmp, e))?;
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub async fn create_temp(&self) -> Result<TempBlob, StoreError> {
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(|e| StoreError::io(&self.tmp, std::io::Error::other(e.to_string())))?;
        let path = self.tmp.join(format!("upload-{}", hex::encode(name)));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(TempBlob { file, path, keep: false })
    }

    /// Where the blob with this sha256 lives: `files/ab/cd/abcd…`.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        let s = sha256.get(..4).unwrap_or("0000");
        self.root.join(&s[..2]).join(&s[2..4]).join(sha256)
    }

    pub fn exists(&self, sha256: &str) -> bool {
        self.path_for(sha256).is_file()
    }

    /// Moves a synced temporary file into its content address and syncs the directory, so the
    /// rename itself survives a crash. An existing blob with the same digest is kept as it is.
    pub async fn persist(&self, mut temp: TempBlob, sha256: &str) -> Result<PathBuf, StoreError> {
        temp.sync().await?;
        let dest = self.path_for(sha256);
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(&dir, e))?;
        if !dest.exists() {
            tokio::fs::rename(&temp.path, &dest).await.map_err(|e| StoreError::io(&dest, e))?;
            temp.keep = true;
            sync_dir(&dir).await?;
        }
        Ok(dest)
    }

    pub async fn remove(&self, sha256: &str) -> Result<(), StoreError> {
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

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = tokio::fs::File::open(dir).await.map_err(|e| StoreError::io(dir, e))?;
    d.sync_all().await.map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn persist_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut t = store.create_temp().await.unwrap();
        t.file.write_all(b"hello").await.unwrap();
        let tmp_path = t.path().to_path_buf();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let dest = store.persist(t, sha).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert!(!tmp_path.exists());
        assert_eq!(store.list().unwrap(), vec![sha.to_string()]);

        // A dropped temp file leaves nothing behind.
        let t = store.create_temp().await.unwrap();
        let p = t.path().to_path_buf();
        drop(t);
        assert!(!p.exists());

        // Leftovers in tmp/ are removed on open.
        std::fs::write(dir.path().join("tmp/upload-stale"), b"x").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        store.remove(sha).await.unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
