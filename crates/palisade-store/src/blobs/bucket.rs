//! Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS's S3 API), through the
//! `object_store` crate. Objects are named as in the folder: `PREFIX/ab/cd/<sha256>`.
//!
//! An object is written whole or not at all (a single `PUT`, or a multipart upload that only
//! becomes visible when completed), with its SHA-256 sent along so the server refuses bytes that
//! changed on the way. Every upload writes its object again, even when one with the same digest
//! is there: the bytes are the same, and the fresh modification time tells a sweep that an upload
//! of that content may still be about to commit.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{BlobInfo, BlobStream};
use crate::StoreError;

/// Files up to this size go up in one `PUT`; larger ones as a multipart upload.
const SINGLE_PUT: usize = 8 << 20;
/// S3's smallest part (but the last) and its most parts per upload.
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// Parts on the way at once: with the one being filled, what an upload holds in memory.
const PARTS_IN_FLIGHT: usize = 1;

/// Where the bucket is and how to reach it. Unset fields come from the standard `AWS_*`
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, ...).
#[derive(Clone, Default)]
pub struct BucketConfig {
    pub bucket: String,
    /// Folder inside the bucket, without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (a private network, a local test server).
    pub allow_http: Option<bool>,
    /// Answer downloads with a redirect to a presigned URL valid this long, instead of streaming
    /// the bytes through the node.
    pub presigned_downloads: Option<Duration>,
}

impl fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "[redacted]"))
            .field("allow_http", &self.allow_http)
            .field("presigned_downloads", &self.presigned_downloads)
            .finish()
    }
}

impl BucketConfig {
    /// `s3://BUCKET[/PREFIX]`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() { format!("s3://{}", self.bucket) } else { format!("s3://{}/{}", self.bucket, self.prefix) }
    }
}

#[derive(Debug)]
pub(super) struct Bucket {
    store: Arc<AmazonS3>,
    prefix: String,
    url: String,
    presigned: Option<Duration>,
}

fn error(what: impl fmt::Display, e: impl fmt::Display) -> StoreError {
    StoreError::Io { path: what.to_string(), source: std::io::Error::other(e.to_string()) }
}

impl Bucket {
    /// Connects and checks that the bucket exists and can be listed: a missing bucket or wrong
    /// credentials stop the start, not the first upload.
    pub(super) async fn connect(config: &BucketConfig) -> Result<Self, StoreError> {
        let url = config.url();
        // Bounded: a request that hangs would hold an upload (and, when a removal restores a blob,
        // the database's write lock) for as long as it hangs.
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(15), ..RetryConfig::default() };
        // Set key by key: `with_client_options` would replace what `from_env` read (AWS_ALLOW_HTTP).
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(retry)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s");
        if let Some(v) = &config.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &config.region {
            b = b.with_region(v);
        }
        if let Some(v) = &config.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &config.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = config.allow_http {
            b = b.with_allow_http(v);
        }
        let store = b.build().map_err(|e| error(&url, format!("cannot use this bucket: {e}")))?;
        let bucket = Self { store: Arc::new(store), prefix: config.prefix.clone(), url, presigned: config.presigned_downloads };
        let probe = ObjectPath::from(format!("{}/", bucket.prefix).trim_start_matches('/'));
        bucket.store.list_with_delimiter(Some(&probe)).await.map_err(|e| {
            error(
                &bucket.url,
                format!("the bucket does not exist or cannot be read with these credentials (creating it is the operator's job): {e}"),
            )
        })?;
        Ok(bucket)
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, sha256: &str) -> ObjectPath {
        let s = sha256.get(..4).filter(|s| s.is_ascii()).unwrap_or("0000");
        let rel = format!("{}/{}/{sha256}", &s[..2], &s[2..4]);
        if self.prefix.is_empty() { ObjectPath::from(rel) } else { ObjectPath::from(format!("{}/{rel}", self.prefix)) }
    }

    fn marker_key(&self) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(super::MARKER)
        } else {
            ObjectPath::from(format!("{}/{}", self.prefix, super::MARKER))
        }
    }

    /// The instance id written by [`super::BlobStore::claim`], if any.
    pub(super) async fn marker(&self) -> Result<Option<String>, StoreError> {
        let key = self.marker_key();
        match self.store.get(&key).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| error(&key, e))?;
                Ok(Some(String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(error(&key, e)),
        }
    }

    pub(super) async fn set_marker(&self, instance: &str) -> Result<(), StoreError> {
        let key = self.marker_key();
        self.store.put(&key, PutPayload::from(instance.to_string().into_bytes())).await.map_err(|e| error(&key, e))?;
        Ok(())
    }

    /// Writes the file at `src` as the object for `sha256`.
    pub(super) async fn put(&self, src: &Path, sha256: &str) -> Result<(), StoreError> {
        let key = self.key(sha256);
        let mut file = tokio::fs::File::open(src).await.map_err(|e| StoreError::io(src, e))?;
        let size = file.metadata().await.map_err(|e| StoreError::io(src, e))?.len();
        if size <= SINGLE_PUT as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(|e| StoreError::io(src, e))?;
            self.store.put(&key, PutPayload::from(buf)).await.map_err(|e| error(&key, e))?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&key).await.map_err(|e| error(&key, e))?;
        // As small as S3 allows, so that memory stays small; larger only for files that would
        // otherwise need more parts than S3 takes.
        let part = MIN_PART.max(size.div_ceil(MAX_PARTS - 1));
        let mut writer = WriteMultipart::new_with_chunk_size(upload, usize::try_from(part).unwrap_or(usize::MAX));
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::io(src, e));
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(error(&key, e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| error(&key, e))?;
        Ok(())
    }

    pub(super) async fn exists(&self, sha256: &str) -> Result<bool, StoreError> {
        let key = self.key(sha256);
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(error(&key, e)),
        }
    }

    pub(super) async fn remove(&self, sha256: &str) -> Result<(), StoreError> {
        let key = self.key(sha256);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(error(&key, e)),
        }
    }

    /// The object's bytes, or `range` of them (first byte, one past the last).
    pub(super) async fn read(&self, sha256: &str, range: Option<std::ops::Range<u64>>) -> Result<BlobStream, StoreError> {
        let key = self.key(sha256);
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let got = self.store.get_opts(&key, options).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(format!("blob {sha256}")),
            e => error(&key, e),
        })?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// A URL the client may download the object from for a while, when the operator enabled it.
    /// `filename` is what the client should save it as.
    pub(super) async fn presigned_url(&self, sha256: &str, filename: &str) -> Result<Option<String>, StoreError> {
        let Some(ttl) = self.presigned else { return Ok(None) };
        let key = self.key(sha256);
        let disposition = format!("attachment; filename=\"{}\"", filename.replace(['"', '\\'], "_"));
        let options = SignedUrlOptions::new().with_query([("response-content-disposition", disposition)]);
        let url = self.store.signed_url_opts(Method::GET, &key, ttl, &options).await.map_err(|e| error(&key, e))?;
        Ok(Some(url.to_string()))
    }

    /// Every object under the prefix that is named like a blob, with its age.
    pub(super) async fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let mut stream = self.store.list(prefix.as_ref());
        let now = jiff::Timestamp::now().as_second();
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| error(&self.url, e))?;
            let Some(name) = meta.location.filename() else { continue };
            if super::is_digest(name) {
                let age = u64::try_from(now.saturating_sub(meta.last_modified.timestamp())).unwrap_or(0);
                out.push(BlobInfo { sha256: name.to_string(), age: Duration::from_secs(age) });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
