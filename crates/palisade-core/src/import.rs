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
    /// or maintainer.
    pub async fn console_principal(&self, owner: &str) -> Result<Principal> {
        let user = self.db.user_by_name(owner).await?;
        if user.disabled_at.is_some() {
            return Err(forbidden(format!("user {owner:?} is disabled")));
        }
        Ok(Principal {
            user_id: Some(user.id),
            user_name: user.name.clone(),
            is_admin: user.is_admin,
            has_2fa: user.has_2fa,
            email_verified: user.email_verified(),
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
        let mut src = tokio::fs::File::open(path).await.map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
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
        self.publish(principal.clone(), origin, Upload::<Python> { file, claims }).await
    }
}
