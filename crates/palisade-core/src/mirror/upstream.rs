//! Talking to an upstream index: its PEP 691 pages (conditional requests), files streamed into a
//! temporary blob while hashed, metadata and provenance documents. Every answer is bounded in
//! size and time; a redirect may only stay on the same origin.

use std::time::Duration;

use palisade_store::{BlobStore, TempBlob};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// PEP 691's JSON media type.
const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";

/// What an upstream said about a project page.
pub enum PageAnswer {
    Page { body: Vec<u8>, etag: Option<String>, url: url::Url },
    NotModified,
    Missing,
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION"), " (mirror)"))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(crate::net::same_origin_redirects())
        .build()?)
}

/// Asks for `{base}{project}/` as PEP 691 JSON.
pub async fn page(client: &reqwest::Client, base: &str, project: &str, etag: Option<&str>, max: u64) -> Result<PageAnswer, String> {
    let base_url = url::Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
    let mut url = base_url.clone();
    url.path_segments_mut().map_err(|()| format!("{base}: not a base URL"))?.pop_if_empty().push(project).push("");
    if url.origin() != base_url.origin() {
        return Err(format!("{project:?} is not a name to ask {base} about"));
    }
    let mut request = client.get(url.clone()).header(reqwest::header::ACCEPT, JSON_V1).timeout(Duration::from_secs(60));
    if let Some(tag) = etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, tag);
    }
    let mut resp = request.send().await.map_err(|e| format!("{url}: {}", without_url(&e)))?;
    match resp.status() {
        reqwest::StatusCode::NOT_MODIFIED => return Ok(PageAnswer::NotModified),
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::GONE => return Ok(PageAnswer::Missing),
        reqwest::StatusCode::OK => {}
        other => return Err(format!("{url}: upstream answered {other}")),
    }
    let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with(JSON_V1) {
        return Err(format!("{url}: upstream answered {content_type:?}, not PEP 691 JSON ({JSON_V1})"));
    }
    let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
    let final_url = resp.url().clone();
    let body = bounded(&mut resp, max, &url).await?;
    Ok(PageAnswer::Page { body, etag, url: final_url })
}

/// GETs a small document (metadata, provenance), refusing other answers than 200 and more than
/// `max` bytes.
pub async fn document(client: &reqwest::Client, url: &str, max: u64) -> Result<Vec<u8>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let mut resp =
        client.get(parsed.clone()).timeout(Duration::from_secs(60)).send().await.map_err(|e| format!("{url}: {}", without_url(&e)))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("{url}: upstream answered {}", resp.status()));
    }
    bounded(&mut resp, max, &parsed).await
}

/// The core metadata of the wheel at `url` (`size` bytes, as its page says), read out of it with
/// range requests: its end first, then what the zip's central directory points at; more than
/// `max` bytes in all is given up. Returns the metadata, the requests made and the bytes read.
/// An upstream that does not answer range requests is an error (the caller fetches the file).
pub async fn wheel_metadata(
    client: &reqwest::Client,
    url: &str,
    size: u64,
    filename: &palisade_dist::DistFilename,
    limits: &palisade_archive::Limits,
    max: u64,
) -> (Result<Vec<u8>, PartsError>, u64, u64) {
    use palisade_archive::partial::{MIN_PART, Parts, Step, wheel_metadata};
    let mut parts = Parts::new(size);
    let (mut start, mut end) = parts.tail(MIN_PART);
    let mut requests = 0;
    while requests < 8 {
        if parts.held() + (end - start) > max {
            return (Err(PartsError::Other(format!("{url}: its metadata is more than {max} bytes into the file"))), requests, parts.held());
        }
        requests += 1;
        match range(client, url, start, end, size).await {
            Ok(bytes) => parts.add(start, bytes),
            Err(e) => return (Err(e), requests, parts.held()),
        }
        match wheel_metadata(&parts, filename, url, limits) {
            Ok(Step::Metadata(data)) => return (Ok(data), requests, parts.held()),
            Ok(Step::Need { start: s, end: e }) => (start, end) = (s, e),
            Err(e) => return (Err(PartsError::Other(e.to_string())), requests, parts.held()),
        }
    }
    (Err(PartsError::Other(format!("{url}: its metadata was not found in {requests} parts"))), requests, parts.held())
}

/// Why a wheel's metadata was not read from parts of it.
pub enum PartsError {
    /// The upstream answers range requests with the whole file.
    NoRanges(String),
    Other(String),
}

impl From<String> for PartsError {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

/// The bytes `start..end` of the file at `url`, whose size is `size` (a 206 answer, exactly them).
async fn range(client: &reqwest::Client, url: &str, start: u64, end: u64, size: u64) -> Result<Vec<u8>, PartsError> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let last = end.saturating_sub(1);
    let mut resp = client
        .get(parsed.clone())
        .header(reqwest::header::RANGE, format!("bytes={start}-{last}"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("{url}: {}", without_url(&e)))?;
    match resp.status() {
        reqwest::StatusCode::PARTIAL_CONTENT => {
            let want = format!("bytes {start}-{last}/{size}");
            let got = resp.headers().get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if got != want {
                return Err(PartsError::Other(format!("{url}: upstream answered the range {got:?} where {want:?} was asked for")));
            }
            let body = bounded(&mut resp, end - start, &parsed).await?;
            if body.len() as u64 != end - start {
                return Err(PartsError::Other(format!("{url}: upstream sent {} bytes of a {}-byte range", body.len(), end - start)));
            }
            Ok(body)
        }
        reqwest::StatusCode::OK => Err(PartsError::NoRanges(format!("{url}: upstream answered a range request with the whole file"))),
        other => Err(PartsError::Other(format!("{url}: upstream answered {other} to a range request"))),
    }
}

async fn bounded(resp: &mut reqwest::Response, max: u64, url: &url::Url) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(format!("{url}: larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {}", without_url(&e)))? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(format!("{url}: larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a file fetch failed: upstream (unreachable, an error status: worth retrying) or its bytes
/// (not what the page promised: never served).
pub enum FileError {
    Upstream(String),
    Mismatch(String),
    Local(anyhow::Error),
}

/// Streams `url` into a temporary blob, hashing as it goes, and checks the bytes against
/// upstream's sha256 and size before returning them.
pub async fn file(
    client: &reqwest::Client,
    blobs: &BlobStore,
    url: &str,
    sha256: &str,
    size: Option<u64>,
    max: u64,
) -> Result<TempBlob, FileError> {
    let mut resp = client.get(url).send().await.map_err(|e| FileError::Upstream(format!("{url}: {}", without_url(&e))))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(FileError::Upstream(format!("{url}: upstream answered {}", resp.status())));
    }
    let limit = size.unwrap_or(max).min(max);
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(FileError::Mismatch(format!("{url}: larger than {limit} bytes")));
    }
    let mut temp = blobs.create_temp().await.map_err(|e| FileError::Local(e.into()))?;
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(|e| FileError::Upstream(format!("{url}: {}", without_url(&e))))? {
        read += chunk.len() as u64;
        if read > limit {
            return Err(FileError::Mismatch(format!("{url}: larger than {limit} bytes")));
        }
        hasher.update(&chunk);
        temp.file.write_all(&chunk).await.map_err(|e| FileError::Local(e.into()))?;
    }
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(FileError::Mismatch(format!("upstream sent bytes with sha256 {got}, but its page says {sha256}")));
    }
    if size.is_some_and(|s| s != read) {
        return Err(FileError::Mismatch(format!("upstream sent {read} bytes, but its page says {}", size.unwrap_or(0))));
    }
    temp.sync().await.map_err(|e| FileError::Local(e.into()))?;
    Ok(temp)
}

/// reqwest's error text with its causes (a refused connection, a time-out).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
