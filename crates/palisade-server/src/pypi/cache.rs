//! Index pages and JSON API answers rendered once per change and served from memory.
//!
//! Every change to a project goes through the journal; whoever writes (this server after an
//! upload, or the admin CLI in another process) bumps the serial. This server invalidates its own
//! entries right after its writes, and a watcher polls the journal for the rest. A render that
//! raced with an invalidation is served but not kept, so a stale page never sticks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::http::HeaderValue;
use bytes::Bytes;
use palisade_store::Db;
use parking_lot::RwLock;

use crate::pypi::render;

/// Which rendering of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Html,
    Json,
}

/// One rendered page. Only the formats clients ask for are rendered and kept.
pub struct Page {
    pub body: Bytes,
    /// The body compressed with gzip, for pages worth compressing (JSON API answers).
    pub gzip: Option<Bytes>,
    pub etag: HeaderValue,
    pub serial: HeaderValue,
    /// The journal serial the page reflects (all changes up to it).
    serial_number: i64,
}

impl Page {
    fn new(body: Vec<u8>, tag: &str, serial: i64) -> Self {
        let digest = palisade_dist::sha256_hex(&body);
        let etag = HeaderValue::from_str(&format!("\"{tag}-{}\"", &digest[..32])).unwrap_or(HeaderValue::from_static("\"x\""));
        Self { body: Bytes::from(body), gzip: None, etag, serial: HeaderValue::from(serial), serial_number: serial }
    }

    /// Adds a gzip copy when the body is large enough for it to matter.
    fn with_gzip(mut self) -> Self {
        use std::io::Write;
        if self.body.len() >= 1024 {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(self.body.len() / 4), flate2::Compression::default());
            if enc.write_all(&self.body).is_ok()
                && let Ok(gz) = enc.finish()
            {
                self.gzip = Some(Bytes::from(gz));
            }
        }
        self
    }

    fn weight(&self) -> usize {
        self.body.len() + self.gzip.as_ref().map_or(0, Bytes::len)
    }
}

/// Memory for cached JSON API answers. Their number is bounded by the releases that exist (the
/// key is the canonical version), their size by the description limit; past this budget entries
/// are evicted to make room.
const JSON_API_BUDGET_BYTES: usize = 64 << 20;

/// A JSON API answer: project, and canonical version (`None`: the project's own answer).
type JsonApiKey = (String, Option<String>);

#[derive(Default)]
pub struct IndexCache {
    projects: RwLock<HashMap<(String, Kind), Arc<Page>>>,
    root: RwLock<HashMap<Kind, Arc<Page>>>,
    json_api: RwLock<JsonApiPages>,
    /// Bumped by this process's own changes: a render that began before one is not kept.
    generation: AtomicU64,
    /// Per project, the newest journal entry the watcher has read: a render that reflects less
    /// is not kept. (The watcher does not bump `generation`: most entries it reads are this
    /// process's own writes, already handled, and renders in flight after them are fresh.)
    watermarks: RwLock<HashMap<String, i64>>,
    /// The newest journal entry the watcher has read, for the root pages.
    root_watermark: AtomicI64,
    /// The journal serial this cache has seen.
    pub seen_serial: AtomicU64,
}

#[derive(Default)]
struct JsonApiPages {
    pages: HashMap<JsonApiKey, Arc<Page>>,
    bytes: usize,
}

impl JsonApiPages {
    /// Drops the project's pages older than `serial` (all of them for `i64::MAX`).
    fn remove_project(&mut self, project: &str, serial: i64) {
        let mut freed = 0;
        self.pages.retain(|(p, _), page| {
            let keep = p != project || page.serial_number >= serial;
            if !keep {
                freed += page.weight();
            }
            keep
        });
        self.bytes -= freed;
    }

    /// Inserts `page`, evicting others (in no particular order) until it fits the budget; a
    /// page larger than a quarter of the budget is served but not kept.
    fn insert(&mut self, key: JsonApiKey, page: Arc<Page>) {
        let weight = page.weight();
        if weight > JSON_API_BUDGET_BYTES / 4 {
            return;
        }
        while self.bytes + weight > JSON_API_BUDGET_BYTES {
            let Some(victim) = self.pages.keys().next().cloned() else { break };
            if let Some(old) = self.pages.remove(&victim) {
                self.bytes -= old.weight();
            }
        }
        if let Some(old) = self.pages.insert(key, page) {
            self.bytes -= old.weight();
        }
        self.bytes += weight;
    }
}

impl IndexCache {
    /// Drops every page of `project` and the root pages: this process just changed it. Renders
    /// in flight began before the change, so they are not kept either.
    pub fn invalidate(&self, project: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.projects.write().retain(|(p, _), _| p != project);
        self.json_api.write().remove_project(project, i64::MAX);
        self.root.write().clear();
    }

    /// Drops the pages of `project`, and the root pages, that do not yet reflect the journal
    /// entry `serial`. The watcher calls this for entries it reads, some of which this process
    /// wrote and already dropped; the pages rendered since then are kept.
    fn invalidate_before(&self, project: &str, serial: i64) {
        {
            let mut marks = self.watermarks.write();
            let mark = marks.entry(project.to_string()).or_insert(serial);
            *mark = (*mark).max(serial);
        }
        self.root_watermark.fetch_max(serial, Ordering::SeqCst);
        self.projects.write().retain(|(p, _), page| p != project || page.serial_number >= serial);
        self.json_api.write().remove_project(project, serial);
        self.root.write().retain(|_, page| page.serial_number >= serial);
    }

    /// Whether a page of `project` rendered at `serial` reflects every entry the watcher read.
    fn fresh(&self, project: &str, serial: i64) -> bool {
        self.watermarks.read().get(project).is_none_or(|mark| serial >= *mark)
    }

    pub fn invalidate_all(&self) {
        // Called when the watcher fell too far behind to read every entry.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.projects.write().clear();
        *self.json_api.write() = JsonApiPages::default();
        self.root.write().clear();
    }

    /// A JSON API answer from memory, or built by `build` (which returns the body and the
    /// project's serial) and kept. Errors (404s) are not kept.
    pub async fn json_api<E, F>(&self, project: &str, version: Option<&str>, build: impl FnOnce() -> F) -> Result<(Arc<Page>, bool), E>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, i64), E>>,
    {
        let key = (project.to_string(), version.map(str::to_string));
        if let Some(p) = self.json_api.read().pages.get(&key) {
            return Ok((p.clone(), true));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let (body, serial) = build().await?;
        let page = Arc::new(Page::new(body, "a", serial).with_gzip());
        if self.generation.load(Ordering::SeqCst) == generation && self.fresh(project, serial) {
            self.json_api.write().insert(key, page.clone());
        }
        Ok((page, false))
    }

    /// The project page, rendered if needed; `None` if there is no such project.
    pub async fn project(&self, db: &Db, normalized: &str, kind: Kind) -> Result<Option<(Arc<Page>, bool)>, palisade_store::StoreError> {
        let key = (normalized.to_string(), kind);
        if let Some(p) = self.projects.read().get(&key) {
            return Ok(Some((p.clone(), true)));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(project) = db.project(normalized).await? else { return Ok(None) };
        let releases = db.releases(project.id).await?;
        let files = db.project_files(project.id).await?;
        let body = match kind {
            Kind::Html => render::project_html(&project, &releases, &files).into_bytes(),
            Kind::Json => serde_json::to_vec(&render::project_json(&project, &releases, &files)).unwrap_or_default(),
        };
        let page = Arc::new(Page::new(body, tag(kind), project.last_serial));
        if self.generation.load(Ordering::SeqCst) == generation && self.fresh(normalized, project.last_serial) {
            self.projects.write().insert(key, page.clone());
        }
        Ok(Some((page, false)))
    }

    pub async fn root(&self, db: &Db, kind: Kind) -> Result<(Arc<Page>, bool), palisade_store::StoreError> {
        if let Some(p) = self.root.read().get(&kind) {
            return Ok((p.clone(), true));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let serial = db.last_serial().await?;
        let projects = db.list_projects().await?;
        let body = match kind {
            Kind::Html => render::root_html(&projects, serial).into_bytes(),
            Kind::Json => serde_json::to_vec(&render::root_json(&projects, serial)).unwrap_or_default(),
        };
        let page = Arc::new(Page::new(body, tag(kind), serial));
        if self.generation.load(Ordering::SeqCst) == generation && serial >= self.root_watermark.load(Ordering::SeqCst) {
            self.root.write().insert(kind, page.clone());
        }
        Ok((page, false))
    }
}

fn tag(kind: Kind) -> &'static str {
    if kind == Kind::Json { "j" } else { "h" }
}

/// Polls the journal and invalidates what other processes changed. Runs until the process ends.
pub async fn watch_journal(db: Db, cache: Arc<IndexCache>, every: std::time::Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let seen = cache.seen_serial.load(Ordering::SeqCst) as i64;
        let last = match db.last_serial().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "journal poll failed");
                continue;
            }
        };
        if last <= seen {
            continue;
        }
        match db.journal_since(seen, 10_000).await {
            Ok(entries) if entries.len() < 10_000 => {
                for e in &entries {
                    cache.invalidate_before(&e.project, e.serial);
                }
            }
            Ok(_) => cache.invalidate_all(),
            Err(e) => {
                tracing::warn!(error = %e, "journal read failed");
                continue;
            }
        }
        cache.seen_serial.store(last as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(cache: &IndexCache, project: &str, serial: i64) -> bool {
        let built: Result<_, ()> = cache.json_api(project, None, || async move { Ok((b"{}".to_vec(), serial)) }).await;
        built.unwrap().1
    }

    #[tokio::test]
    async fn the_watcher_keeps_pages_that_already_reflect_an_entry() {
        let cache = IndexCache::default();
        assert!(!answer(&cache, "demo", 7).await, "first answer is rendered");
        assert!(answer(&cache, "demo", 7).await, "second answer is served from memory");
        // The entry that made serial 7 was written by this process; the watcher reads it later.
        cache.invalidate_before("demo", 7);
        assert!(answer(&cache, "demo", 7).await, "a page at serial 7 already reflects entry 7");
        cache.invalidate_before("other", 9);
        assert!(answer(&cache, "demo", 7).await, "another project's entry leaves this page");
        cache.invalidate_before("demo", 8);
        assert!(!answer(&cache, "demo", 7).await, "a newer entry drops the page");
        cache.invalidate("demo");
        assert!(!answer(&cache, "demo", 8).await, "a local change drops every page of the project");
        assert!(answer(&cache, "demo", 8).await, "and the next render is kept");
    }

    /// The watcher reading an entry while a page is being rendered: a render that reflects the
    /// entry is kept, one that does not is served but not kept.
    #[tokio::test]
    async fn renders_racing_the_watcher_are_kept_only_when_fresh() {
        let cache = IndexCache::default();
        let built: Result<_, ()> = cache
            .json_api("demo", None, || async {
                cache.invalidate_before("demo", 5);
                Ok((b"{}".to_vec(), 5))
            })
            .await;
        assert!(!built.unwrap().1);
        assert!(answer(&cache, "demo", 5).await, "a render at the entry's serial is kept");
        cache.invalidate("demo");
        let built: Result<_, ()> = cache
            .json_api("demo", None, || async {
                cache.invalidate_before("demo", 9);
                Ok((b"{}".to_vec(), 6))
            })
            .await;
        assert!(!built.unwrap().1);
        assert!(!answer(&cache, "demo", 9).await, "a render older than the entry was not kept");
        assert!(answer(&cache, "demo", 9).await);
    }
}
