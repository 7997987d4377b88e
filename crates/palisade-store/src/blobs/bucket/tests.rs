//! The bucket backend against a real S3-compatible server: the test script starts `moto` in
//! server mode and sets `PALISADE_TEST_S3_ENDPOINT`; without it these tests say so and skip.

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::super::{BlobStore, BlobStream, Storage};
use super::BucketConfig;
use crate::StoreError;

/// The endpoint, or `None` after printing why the test skips.
fn endpoint() -> Option<String> {
    let e = std::env::var("PALISADE_TEST_S3_ENDPOINT").ok().filter(|s| !s.is_empty());
    if e.is_none() {
        eprintln!("skipped: PALISADE_TEST_S3_ENDPOINT is not set (scripts/test starts moto and sets it)");
    }
    e
}

fn config(endpoint: &str, bucket: &str) -> BucketConfig {
    BucketConfig {
        bucket: bucket.into(),
        prefix: "blobs".into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        allow_http: Some(true),
        presigned_downloads: None,
    }
}

/// Creates a bucket with a fresh name (moto does not check signatures on bucket creation).
async fn new_bucket(endpoint: &str) -> String {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).unwrap();
    let name = format!("palisade-test-{}", hex::encode(id));
    let r = reqwest::Client::new().put(format!("{endpoint}/{name}")).send().await.unwrap();
    assert!(r.status().is_success(), "creating bucket {name}: {}", r.status());
    name
}

async fn collect(mut s: BlobStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn sha256(data: &[u8]) -> String {
    palisade_dist::sha256_hex(data)
}

async fn put(store: &BlobStore, data: &[u8]) -> crate::StoredBlob {
    let mut t = store.create_temp().await.unwrap();
    t.file.write_all(data).await.unwrap();
    store.persist(t, &sha256(data)).await.unwrap()
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error_at_start() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Bucket(config(&endpoint, "palisade-no-such-bucket"));
    let err = BlobStore::connect(dir.path(), &storage).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("s3://palisade-no-such-bucket/blobs") && msg.contains("does not exist"), "{msg}");
}

#[tokio::test]
async fn blobs_round_trip_through_a_bucket() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = new_bucket(&endpoint).await;
    let store = BlobStore::connect(dir.path(), &Storage::Bucket(config(&endpoint, &bucket))).await.unwrap();
    assert_eq!(store.location(), format!("s3://{bucket}/blobs"));
    assert_eq!(store.path_for("ab"), None);

    // A small file (one PUT) and one above the part size (a multipart upload).
    let small = b"hello, bucket".to_vec();
    let big: Vec<u8> = (0..(super::SINGLE_PUT + 3 * 1024 * 1024)).map(|i| (i * 7 % 251) as u8).collect();
    for data in [&small, &big] {
        let sha = sha256(data);
        assert!(!store.exists(&sha).await.unwrap());
        let stored = put(&store, data).await;
        assert!(store.exists(&sha).await.unwrap());
        drop(stored);
        assert_eq!(collect(store.read(&sha, None).await.unwrap()).await, *data);
        assert_eq!(collect(store.read(&sha, Some(3..9)).await.unwrap()).await, data[3..9]);
        let local = store.local(&sha).await.unwrap().expect("a local copy");
        assert_eq!(std::fs::read(local.path()).unwrap(), *data);
    }
    let mut listed: Vec<String> = store.list().await.unwrap().into_iter().map(|b| b.sha256).collect();
    listed.sort();
    let mut want = vec![sha256(&small), sha256(&big)];
    want.sort();
    assert_eq!(listed, want);

    // Removal, and an upload's own copy putting back what a removal took.
    let stored = put(&store, &small).await;
    store.remove(&sha256(&small)).await.unwrap();
    assert!(!store.exists(&sha256(&small)).await.unwrap());
    assert!(stored.ensure_in_place().await.unwrap(), "the blob was missing and had to be put back");
    assert!(!stored.ensure_in_place().await.unwrap());
    assert_eq!(collect(store.read(&sha256(&small), None).await.unwrap()).await, small);
    drop(stored);

    // Reading a blob that is not there is NotFound, not an I/O error; so is a local copy of it.
    let missing = sha256(b"nothing");
    assert!(matches!(store.read(&missing, None).await, Err(StoreError::NotFound(_))));
    assert!(store.local(&missing).await.unwrap().is_none());
    // Temporary files (the uploads' and the local copies') are all gone.
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn presigned_downloads_serve_the_bytes_under_the_files_name() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = new_bucket(&endpoint).await;
    let mut c = config(&endpoint, &bucket);
    let plain = BlobStore::connect(dir.path(), &Storage::Bucket(c.clone())).await.unwrap();
    c.presigned_downloads = Some(std::time::Duration::from_secs(60));
    let store = BlobStore::connect(dir.path(), &Storage::Bucket(c)).await.unwrap();
    let data = b"presigned bytes".to_vec();
    drop(put(&store, &data).await);
    assert_eq!(plain.presigned_url(&sha256(&data), "demo-1.0.tar.gz").await.unwrap(), None, "off unless enabled");
    let url = store.presigned_url(&sha256(&data), "demo-1.0.tar.gz").await.unwrap().expect("a URL");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let r = reqwest::get(&url).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let disposition = r.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(disposition.as_deref(), Some("attachment; filename=\"demo-1.0.tar.gz\""));
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
}

/// Two databases on one prefix would sweep each other's blobs as orphans: the second is stopped.
#[tokio::test]
async fn a_prefix_belongs_to_one_database() {
    let Some(endpoint) = endpoint() else { return };
    let bucket = new_bucket(&endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let first = BlobStore::connect(dir.path(), &Storage::Bucket(config(&endpoint, &bucket))).await.unwrap();
    first.claim("instance-a").await.unwrap();
    first.claim("instance-a").await.unwrap();
    let second = BlobStore::connect(dir.path(), &Storage::Bucket(config(&endpoint, &bucket))).await.unwrap();
    let err = second.claim("instance-b").await.unwrap_err().to_string();
    assert!(err.contains("belongs to another Palisade database") && err.contains("instance-a"), "{err}");
    // Another prefix of the same bucket is another place.
    let mut other = config(&endpoint, &bucket);
    other.prefix = "elsewhere".into();
    BlobStore::connect(dir.path(), &Storage::Bucket(other)).await.unwrap().claim("instance-b").await.unwrap();
    // The marker is not a blob.
    assert!(first.list().await.unwrap().is_empty());
}
