//! Index pages and JSON API answers rendered once per change and served from memory.
//!
//! Every change to a project goes through the journal; whoever writes (this server after an
//! upload, or the admin CLI in another process) bumps the serial. This server invalidates its own
//! entries right after its writes, and a watcher polls the journal for the rest. A render that
//! raced with an invalidation is served but not kept, so a stale page never sticks.
//!
//! Project pages and JSON API answers live in two caches bounded by bytes (quick_cache, which
//! evicts what is least used once full): crawling every release's JSON answer cannot push out the
//! project pages installers need. The root pages (`/simple/`) are two entries, kept aside.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::http::HeaderValue;
use bytes::Bytes;
use palisade_store::Db;
use parking_lot::{Mutex, MutexGuard, RwLock};
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::pypi::render;

/// Which rendering of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Html,
    Json,
}

const KINDS: [Kind; 2] = [Kind::Html, Kind::Json];

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

    /// A page rendered outside this cache (the mirror's), tagged `tag`.
    pub(crate) fn rendered(body: Vec<u8>, tag: &str, serial: i64) -> Self {
        Self::new(body, tag, serial)
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

    /// The memory the page holds in a cache: its bodies, and a rough allowance for the rest (the
    /// page itself, its headers, the cache's slot).
    fn weight(&self) -> usize {
        self.body.len() + self.gzip.as_ref().map_or(0, Bytes::len) + 256
    }
}

/// Memory for cached project pages (both renderings). Today's largest indexes fit many times
/// over; past it, the pages least asked for are rendered again when asked.
const PAGES_BYTES: u64 = 256 << 20;

/// Memory for cached JSON API answers. Their number is bounded by the releases that exist (the
/// key is the canonical version), their size by the description limit; past this budget the
/// answers least asked for are dropped.
const JSON_API_BYTES: u64 = 64 << 20;

/// Each cache is split into this many independently locked shards, each holding a quarter of the
/// bytes: a page larger than (nearly) a quarter of its cache is served but not kept.
const SHARDS: usize = 4;

/// A project page: project and rendering.
type PageKey = (String, Kind);

/// Which per-release document of a project a cached answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Doc {
    /// PyPI's JSON API answer.
    JsonApi,
    /// The web interface's project page.
    WebPage,
    /// How the web interface's lists (start page, search) describe the project: its name,
    /// latest public version and summary (JSON).
    WebCard,
}

/// What a document is about: the document, and the canonical version (`None`: the project's
/// own answer, about its latest release).
type DocId = (Doc, Option<String>);

/// A cached document: project, and which of its documents.
type JsonApiKey = (String, DocId);

/// Weighs entries by the bytes they hold.
#[derive(Clone)]
struct ByBytes;

impl Weighter<PageKey, Arc<Page>> for ByBytes {
    fn weight(&self, (project, _): &PageKey, page: &Arc<Page>) -> u64 {
        (project.len() + page.weight()) as u64
    }
}

impl Weighter<JsonApiKey, Arc<Page>> for ByBytes {
    fn weight(&self, (project, (_, version)): &JsonApiKey, page: &Arc<Page>) -> u64 {
        (project.len() + version.as_ref().map_or(0, String::len) + page.weight()) as u64
    }
}

/// Collects the keys an insertion evicted, so that the index of JSON API answers forgets them.
#[derive(Clone)]
struct ReportEvictions;

impl Lifecycle<JsonApiKey, Arc<Page>> for ReportEvictions {
    type RequestState = Vec<JsonApiKey>;

    fn on_evict(&self, evicted: &mut Vec<JsonApiKey>, key: JsonApiKey, _page: Arc<Page>) {
        evicted.push(key);
    }
}

/// The documents of each project that are cached (JSON API answers and web pages), so that
/// dropping a project's documents touches only them. It lists exactly the keys in the cache: it
/// changes only under its lock, together with the cache.
type JsonApiIndex = HashMap<String, HashSet<DocId>>;

pub struct IndexCache {
    pages: Cache<PageKey, Arc<Page>, ByBytes, DefaultHashBuilder, DefaultLifecycle<PageKey, Arc<Page>>>,
    json_api: Cache<JsonApiKey, Arc<Page>, ByBytes, DefaultHashBuilder, ReportEvictions>,
    root: RwLock<HashMap<Kind, Arc<Page>>>,
    /// Held while a render is checked for freshness and kept, and while entries are dropped: a
    /// render found fresh cannot be kept after an invalidation that began later has dropped
    /// the project's entries.
    keeping: Mutex<JsonApiIndex>,
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

impl Default for IndexCache {
    fn default() -> Self {
        Self::with_bounds(PAGES_BYTES, JSON_API_BYTES)
    }
}

/// A cache of `bytes` whose entries are typically `typical` bytes (which sizes its bookkeeping).
fn bounded<K, L>(bytes: u64, typical: u64, lifecycle: L) -> Cache<K, Arc<Page>, ByBytes, DefaultHashBuilder, L>
where
    K: Eq + std::hash::Hash,
    ByBytes: Weighter<K, Arc<Page>>,
    L: Lifecycle<K, Arc<Page>> + Clone,
{
    let options = OptionsBuilder::new()
        .shards(SHARDS)
        .weight_capacity(bytes)
        .estimated_items_capacity((bytes / typical).max(1) as usize)
        .build()
        .expect("both capacities are set");
    Cache::with_options(options, ByBytes, DefaultHashBuilder::default(), lifecycle)
}

impl IndexCache {
    fn with_bounds(pages_bytes: u64, json_api_bytes: u64) -> Self {
        Self {
            pages: bounded(pages_bytes, 2 << 10, DefaultLifecycle::default()),
            json_api: bounded(json_api_bytes, 8 << 10, ReportEvictions),
            root: Default::default(),
            keeping: Default::default(),
            generation: Default::default(),
            watermarks: Default::default(),
            root_watermark: Default::default(),
            seen_serial: Default::default(),
        }
    }

    /// Drops every page of `project` and the root pages: this process just changed it. Renders
    /// in flight began before the change, so they are not kept either.
    pub fn invalidate(&self, project: &str) {
        let mut index = self.keeping.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        for kind in KINDS {
            self.pages.remove(&(project.to_string(), kind));
        }
        for version in index.remove(project).unwrap_or_default() {
            self.json_api.remove(&(project.to_string(), version));
        }
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
        let mut index = self.keeping.lock();
        let stale = |page: &Arc<Page>| page.serial_number < serial;
        for kind in KINDS {
            self.pages.remove_if(&(project.to_string(), kind), stale);
        }
        if let Some(versions) = index.get_mut(project) {
            versions.retain(|version| {
                let key = (project.to_string(), version.clone());
                self.json_api.remove_if(&key, stale).is_none() && self.json_api.contains_key(&key)
            });
            if versions.is_empty() {
                index.remove(project);
            }
        }
        self.root.write().retain(|_, page| page.serial_number >= serial);
    }

    /// Whether a page of `project` rendered at `serial` reflects every entry the watcher read.
    fn fresh(&self, project: &str, serial: i64) -> bool {
        self.watermarks.read().get(project).is_none_or(|mark| serial >= *mark)
    }

    /// The lock to keep a render under, if the render (begun at `generation`, reflecting
    /// `serial` of `project`, or of the whole index for `None`) is still fresh.
    fn keep(&self, generation: u64, project: Option<&str>, serial: i64) -> Option<MutexGuard<'_, JsonApiIndex>> {
        let index = self.keeping.lock();
        let fresh = match project {
            Some(project) => self.fresh(project, serial),
            None => serial >= self.root_watermark.load(Ordering::SeqCst),
        };
        (self.generation.load(Ordering::SeqCst) == generation && fresh).then_some(index)
    }

    pub fn invalidate_all(&self) {
        // Called when the watcher fell too far behind to read every entry.
        let mut index = self.keeping.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.pages.clear();
        self.json_api.clear();
        index.clear();
        self.root.write().clear();
    }

    /// A JSON API answer from memory, or built by `build` (which returns the body and the
    /// project's serial) and kept. Errors (404s) are not kept.
    pub async fn json_api<E, F>(&self, project: &str, version: Option<&str>, build: impl FnOnce() -> F) -> Result<(Arc<Page>, bool), E>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, i64), E>>,
    {
        self.document(Doc::JsonApi, project, version, build).await
    }

    /// A project's document (JSON API answer or web page) about `version` (canonical; `None`: the
    /// latest) from memory, or built by `build` (which returns the body and the project's serial)
    /// and kept, with a gzip copy. Errors (404s) are not kept.
    pub async fn document<E, F>(
        &self,
        doc: Doc,
        project: &str,
        version: Option<&str>,
        build: impl FnOnce() -> F,
    ) -> Result<(Arc<Page>, bool), E>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, i64), E>>,
    {
        let key = (project.to_string(), (doc, version.map(str::to_string)));
        if let Some(p) = self.json_api.get(&key) {
            return Ok((p, true));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let (body, serial) = build().await?;
        let tag = match doc {
            Doc::JsonApi => "a",
            Doc::WebPage => "w",
            Doc::WebCard => "c",
        };
        let page = Arc::new(Page::new(body, tag, serial).with_gzip());
        self.keep_json_api(generation, key, page.clone());
        Ok((page, false))
    }

    fn keep_json_api(&self, generation: u64, key: JsonApiKey, page: Arc<Page>) {
        let Some(mut index) = self.keep(generation, Some(&key.0), page.serial_number) else { return };
        index.entry(key.0.clone()).or_default().insert(key.1.clone());
        // What the insertion evicts (the new answer itself, when it is too large to keep).
        let mut evicted = Vec::new();
        self.json_api.insert_with_lifecycle(key, page, &mut evicted);
        for (project, doc) in evicted {
            if let Some(versions) = index.get_mut(&project) {
                versions.remove(&doc);
                if versions.is_empty() {
                    index.remove(&project);
                }
            }
        }
    }

    /// The project page, rendered if needed; `None` if there is no such project.
    pub async fn project(
        &self,
        db: &Db,
        normalized: &str,
        kind: Kind,
        links: &render::Links,
        blocks: impl FnOnce() -> Arc<palisade_core::sharing::Blocks>,
    ) -> Result<Option<(Arc<Page>, bool)>, palisade_store::StoreError> {
        let key = (normalized.to_string(), kind);
        if let Some(p) = self.pages.get(&key) {
            return Ok(Some((p, true)));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        // Read after the generation: records reloaded since drop every page (a hook), so a page
        // rendered with the records before them is not kept (`keep`).
        let blocks = blocks();
        let Some(project) = db.project(normalized).await? else { return Ok(None) };
        let releases = db.releases(project.id).await?;
        let mut files = db.project_files(project.id).await?;
        blocks.hide(&mut files);
        let body = match kind {
            Kind::Html => render::project_html(&project, &releases, &files, links).into_bytes(),
            Kind::Json => serde_json::to_vec(&render::project_json(&project, &releases, &files, links)).unwrap_or_default(),
        };
        let page = Arc::new(Page::new(body, tag(kind), project.last_serial));
        if let Some(_kept) = self.keep(generation, Some(normalized), project.last_serial) {
            self.pages.insert(key, page.clone());
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
        if let Some(_kept) = self.keep(generation, None, serial) {
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

    /// Project pages follow the same rules as JSON API answers (they are rendered from the
    /// database, so they are put in by hand here).
    #[test]
    fn project_pages_are_dropped_like_answers() {
        let cache = IndexCache::default();
        let page = |serial| Arc::new(Page::new(b"<html>".to_vec(), "h", serial));
        let kept = |project: &str, kind| cache.pages.contains_key(&(project.to_string(), kind));
        for kind in KINDS {
            cache.pages.insert(("demo".into(), kind), page(7));
        }
        cache.pages.insert(("other".into(), Kind::Html), page(3));
        cache.invalidate_before("demo", 7);
        assert!(kept("demo", Kind::Html) && kept("demo", Kind::Json), "pages at serial 7 reflect entry 7");
        cache.invalidate_before("demo", 8);
        assert!(!kept("demo", Kind::Html) && !kept("demo", Kind::Json), "a newer entry drops both renderings");
        assert!(kept("other", Kind::Html), "another project's page stays");
        cache.pages.insert(("demo".into(), Kind::Json), page(8));
        cache.invalidate("demo");
        assert!(!kept("demo", Kind::Json) && kept("other", Kind::Html));
        cache.invalidate_all();
        assert_eq!(cache.pages.len(), 0);
    }

    /// Bytes that gzip cannot shrink, so that a page weighs about twice its body.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_byte_bound() {
        const BOUND: u64 = 256 << 10;
        let cache = IndexCache::with_bounds(BOUND, BOUND);
        // 200 answers of about 16 KiB each, 3 MiB in all, for ten projects.
        for i in 0..200u64 {
            let (project, version) = (format!("p{}", i % 10), i.to_string());
            let built: Result<_, ()> = cache.json_api(&project, Some(&version), || async move { Ok((noise(8 << 10, i), 1)) }).await;
            assert!(!built.unwrap().1);
            cache.pages.insert((format!("p{i}"), Kind::Html), Arc::new(Page::new(noise(8 << 10, i), "h", 1)));
        }
        for (what, weight, len) in
            [("JSON API", cache.json_api.weight(), cache.json_api.len()), ("pages", cache.pages.weight(), cache.pages.len())]
        {
            assert!(weight <= BOUND, "{what}: {weight} bytes kept, bound {BOUND}");
            assert!(len > 4 && len < 200, "{what}: {len} entries kept");
        }
        // The index lists exactly what the cache holds, evictions included.
        let listed: usize = cache.keeping.lock().values().map(HashSet::len).sum();
        assert_eq!(listed, cache.json_api.len());
        // Dropping a project drops all of its answers and only those.
        let before = cache.json_api.len();
        let of_p3 = cache.keeping.lock().get("p3").map_or(0, HashSet::len);
        cache.invalidate("p3");
        assert_eq!(cache.json_api.len(), before - of_p3);
        assert!((0..200).all(|i| !cache.json_api.contains_key(&("p3".to_string(), (Doc::JsonApi, Some(i.to_string()))))));
        assert!(!cache.keeping.lock().contains_key("p3"));
    }

    #[tokio::test]
    async fn an_answer_too_large_for_the_cache_is_served_but_not_kept() {
        let cache = IndexCache::with_bounds(64 << 10, 64 << 10);
        for _ in 0..2 {
            let built: Result<_, ()> = cache.json_api("big", None, || async { Ok((noise(64 << 10, 7), 1)) }).await;
            let (page, hit) = built.unwrap();
            assert!(!hit);
            assert_eq!(page.body.len(), 64 << 10);
        }
        assert_eq!(cache.json_api.len(), 0);
        assert!(cache.keeping.lock().is_empty(), "the index forgets an answer the cache refused");
    }
}
