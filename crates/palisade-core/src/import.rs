//! Loading distributions that exist as files (a pypiserver folder, an export of another index)
//! through the same pipeline as an upload: each file is named, checked, scanned and published,
//! or refused with the reason an upload would get, on behalf of the user who will own it.

use std::path::Path;

use palisade_dist::{DistFilename, Hasher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Core;
use crate::access::{Credential, Origin, Principal};
use crate::error::{Result, forbidden, internal, invalid};
use crate::publish::{Published, Received, Upload};
use crate::pypi::{Claims, Python};

impl Core {
    /// The principal an import publishes as: `owner`, vouched for by the operator at the console.
    /// New projects are owned by `owner`; existing ones take files only where `owner` is an owner
    /// or maintainer, even when `owner` is an administrator: an import adds to what the owner
    /// holds, it does not reach into other people's projects.
    pub async fn console_principal(&self, owner: &str) -> Result<Principal> {
        let user = self.db.user_by_name(owner).await?;
        if user.disabled_at.is_some() {
            return Err(forbidden(format!("user {owner:?} is disabled")));
        }
        Ok(Principal {
            user_id: Some(user.id),
            user_name: user.name.clone(),
            is_admin: false,
            has_2fa: user.has_2fa,
            email_verified: user.email_verified(),
            phishing_resistant: user.has_webauthn,
            authenticated_at: None,
            scope: None,
            credential: Credential::Console,
        })
    }

    /// Publishes the distribution at `path` as `principal` (see [`Core::console_principal`]).
    /// The file is read into a temporary blob while it is hashed, within `max_upload_bytes`, and
    /// then goes through [`Core::publish`] as an upload would.
    pub async fn import_file(&self, principal: &Principal, origin: &Origin, path: &Path) -> Result<Published> {
        let filename = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| invalid("the file name is not UTF-8"))?.to_string();
        let dist = DistFilename::parse(&filename).map_err(|e| invalid(e.to_string()))?;
        let mut src = open_regular(path).await?;
        let max = self.config.max_upload_bytes;
        let mut blob = self.blobs.create_temp().await?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = src.read(&mut buf).await.map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            if hasher.len().saturating_add(n as u64) > max {
                return Err(invalid(format!("{filename:?} is larger than this server's limit of {max} bytes per file (max_upload_bytes)")));
            }
            hasher.update(&buf[..n]);
            blob.file.write_all(&buf[..n]).await.map_err(internal)?;
        }
        if hasher.is_empty() {
            return Err(invalid(format!("{filename:?} is empty")));
        }
        blob.file.flush().await.map_err(internal)?;
        let size = hasher.len();
        let digests = hasher.finish();
        // Read from disk here, so the digest is the file's own.
        let claims = Claims { sha256: Some(digests.sha256.clone()), ..Claims::default() };
        let file = Received { filename, file: dist, blob, digests, size };
        self.publish(principal.clone(), origin, Upload::<Python> { file, claims, attestations: None }).await
    }
}

/// Opens `path` only if it is a regular file, and the file opened is the one that was checked: a
/// name swapped for a symbolic link, a FIFO or a device between the walk and the read is refused
/// instead of followed or waited on.
async fn open_regular(path: &Path) -> Result<tokio::fs::File> {
    let cannot = |e: std::io::Error| invalid(format!("cannot read {}: {e}", path.display()));
    let before = tokio::fs::symlink_metadata(path).await.map_err(cannot)?;
    if !before.file_type().is_file() {
        return Err(invalid(format!("{} is not a regular file", path.display())));
    }
    let file = tokio::fs::File::open(path).await.map_err(cannot)?;
    let after = file.metadata().await.map_err(cannot)?;
    if !after.is_file() || !same_file(&before, &after) {
        return Err(invalid(format!("{} changed while it was being read", path.display())));
    }
    Ok(file)
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len()
}
