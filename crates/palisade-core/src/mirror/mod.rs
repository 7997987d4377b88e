//! The pull-through mirror (docs/mirror.md): names not hosted here are served from the
//! configured upstream indexes, through the same checks as uploads.
//!
//! - [`names`]: which names go upstream (never a hosted one unless merged, never a reserved one).
//! - [`page`]: an upstream's PEP 691 page, read strictly into the form kept in the database.
//! - [`decide`]: the one decision per file (cooldown, scanner verdicts, OSV records) that both the
//!   index pages and downloads take.
//! - [`upstream`]: the HTTP side, bounded.
//! - [`fetch`]: a file's first download: fetched, checked against upstream's sha256, scanned with
//!   the upload policy, its provenance verified, stored; only then served.
//! - [`ahead`]: reading ahead: the files a client will ask for next (the newest release after a
//!   page, a wheel's dependencies, for the environment its User-Agent describes), fetched the
//!   same way before it asks; [`guess`] bounds how far.
//!
//! Pages are refreshed after `mirror.refresh`, with the upstream's ETag, in the background while
//! the kept page is served (until twice `refresh`, when a request waits for upstream); a failed
//! refresh serves the kept page (stale-if-error). Concurrent requests for one uncached page or
//! file wait for one upstream request (per process; each node of a cluster fetches at most once).

pub mod ahead;
pub mod decide;
mod fetch;
mod guess;
pub mod names;
pub mod page;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_dist::Target;
use palisade_store::{MirrorFile, MirrorPage};
use serde_json::json;

pub use ahead::target_of;
pub use decide::Decision;
pub use names::Route;
pub use page::Page;

use crate::Core;
use crate::admin::Actor;
use crate::config::UpstreamNames;
use crate::error::{Error, Result};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub page_requests: AtomicU64,
    pub file_requests: AtomicU64,
    pub other_requests: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub stale_served: AtomicU64,
    pub files_fetched: AtomicU64,
    pub files_refused: AtomicU64,
    /// Bytes received from upstreams (pages, files, metadata, provenance).
    pub upstream_bytes: AtomicU64,
    /// Time spent scanning upstream files, in microseconds.
    pub scan_micros: AtomicU64,
    /// Files chosen to be fetched ahead of the clients (fetched unless already kept).
    pub read_ahead: AtomicU64,
}

/// The mirror's process state: the HTTP client, the requests in flight (for coalescing), counters.
pub struct Mirror {
    client: reqwest::Client,
    inflight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Kept pages already parsed, by project, with the `fetched_at` of the version parsed: a
    /// request reads the page's head, not its body (megabytes for the largest projects).
    parsed: std::sync::Mutex<HashMap<String, (i64, Arc<Page>)>>,
    ahead: ahead::ReadAhead,
    /// Views decided lately, by project, with when: a resolver asks for many files of one project
    /// at once, and a large project's view (thousands of files) is not decided again for each.
    /// Used for [`VIEW_FRESH`] (never longer than `mirror.refresh`), dropped when the project
    /// changes ([`Mirror::forget_view`]).
    views: std::sync::Mutex<HashMap<String, (std::time::Instant, View)>>,
    view_fresh: std::time::Duration,
    /// Bumped by every [`Mirror::forget_view`]: a view decided before it is not kept.
    views_generation: AtomicU64,
    /// Pages being refreshed in the background.
    revalidating: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Upstream file hosts that answered a range request with the whole file, and when: not
    /// asked for parts again for [`NO_RANGES_FOR`].
    no_ranges: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Files being fetched ahead, and whether a client waits for one.
    waiting: fetch::Waiting,
    pub counters: Counters,
}

/// Parsed pages kept in memory, at most; past it, the map starts again.
const PARSED_PAGES: usize = 1024;

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").finish_non_exhaustive()
    }
}

impl Mirror {
    pub fn new(config: &crate::config::MirrorConfig) -> anyhow::Result<Self> {
        Ok(Self {
            client: upstream::client()?,
            inflight: Default::default(),
            parsed: Default::default(),
            ahead: ahead::ReadAhead::new(config.read_ahead),
            views: Default::default(),
            view_fresh: VIEW_FRESH.min(config.refresh_every()),
            views_generation: AtomicU64::new(0),
            revalidating: Default::default(),
            no_ranges: Default::default(),
            waiting: Default::default(),
            counters: Counters::default(),
        })
    }

    fn fresh_view(&self, project: &str) -> Option<View> {
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.get(project).filter(|(at, _)| at.elapsed() < self.view_fresh).map(|(_, v)| v.clone())
    }

    fn keep_view(&self, project: &str, view: &View, generation: u64) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if self.views_generation.load(Ordering::Acquire) != generation {
            return;
        }
        if views.len() >= PARSED_PAGES {
            views.retain(|_, (at, _)| at.elapsed() < self.view_fresh);
        }
        if views.len() < PARSED_PAGES {
            views.insert(project.to_string(), (std::time::Instant::now(), view.clone()));
        }
    }

    /// Drops the view of `project` (a file of it was blocked, an exemption added, a decision
    /// taken): the next request decides again.
    pub fn forget_view(&self, project: &str) {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        self.views_generation.fetch_add(1, Ordering::AcqRel);
        views.remove(project);
    }

    fn answers_ranges(&self, host: &str) -> bool {
        let mut hosts = self.no_ranges.lock().unwrap_or_else(|e| e.into_inner());
        hosts.retain(|_, at| at.elapsed() < NO_RANGES_FOR);
        !hosts.contains_key(host)
    }

    fn parsed(&self, project: &str, fetched_at: i64) -> Option<Arc<Page>> {
        let map = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        map.get(project).filter(|(at, _)| *at == fetched_at).map(|(_, p)| p.clone())
    }

    fn keep_parsed(&self, project: &str, fetched_at: i64, page: Arc<Page>) {
        let mut map = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PARSED_PAGES && !map.contains_key(project) {
            map.clear();
        }
        map.insert(project.to_string(), (fetched_at, page));
    }

    /// Waits for the right to fetch `key`: one holder at a time; the rest find its result.
    async fn one_at_a_time(self: &Arc<Self>, key: &str) -> Coalesced {
        let lock = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_string()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Coalesced { mirror: self.clone(), key: key.to_string(), lock, _guard: guard }
    }

    /// The turn for `key` if nobody holds it now.
    fn try_one_at_a_time(self: &Arc<Self>, key: &str) -> Option<Coalesced> {
        let lock = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).entry(key.to_string()).or_default().clone();
        let guard = lock.clone().try_lock_owned().ok()?;
        Some(Coalesced { mirror: self.clone(), key: key.to_string(), lock, _guard: guard })
    }
}

/// Held while one request fetches a key; forgets the key when the last waiter is done.
struct Coalesced {
    mirror: Arc<Mirror>,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Coalesced {
    fn drop(&mut self) {
        let mut map = self.mirror.inflight.lock().unwrap_or_else(|e| e.into_inner());
        // The map's copy, this one and the guard's: nobody else waits.
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.key);
        }
    }
}

/// An upstream project as clients see it through this index.
#[derive(Clone, Debug)]
pub struct View {
    pub upstream: String,
    pub page: Arc<Page>,
    /// Per file of `page`, in order.
    pub decisions: Arc<[Decision]>,
    /// Fetched files with verified provenance.
    pub provenance: Arc<std::collections::HashSet<String>>,
    /// Whether the page is served stale (the last refresh failed).
    pub stale: bool,
    /// When upstream was last asked (micros).
    pub checked_at: i64,
}

impl View {
    /// The files listed, with their decisions' agreement: exactly those downloads serve.
    pub fn listed(&self) -> impl Iterator<Item = &page::File> {
        self.page.files.iter().zip(self.decisions.iter()).filter(|(_, d)| **d == Decision::Listed).map(|(f, _)| f)
    }

    pub fn decision(&self, filename: &str) -> Option<(&page::File, &Decision)> {
        self.page.files.iter().zip(self.decisions.iter()).find(|(f, _)| f.filename == filename)
    }
}

fn now() -> i64 {
    palisade_store::now_micros()
}

/// Whether a kept page (or "no such project") is still within `refresh` (`negative`).
fn page_fresh(config: &crate::config::MirrorConfig, p: &MirrorPage) -> bool {
    let ttl = if p.missing { config.negative_for() } else { config.refresh_every() };
    p.checked_at.saturating_add(micros(ttl)) > now()
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Core {
    /// Where the page of `normalized` comes from.
    pub async fn mirror_route(&self, normalized: &str) -> Result<Route> {
        let config = &self.config.mirror;
        if !config.enabled() || !names::valid(normalized) {
            return Ok(Route::Local);
        }
        let hosted = self.db.project(normalized).await?.is_some();
        Ok(names::route(config, normalized, hosted))
    }

    /// The kept page of `normalized`, refreshed from upstream when older than `mirror.refresh`;
    /// `None` when no upstream has it.
    async fn mirror_page(&self, normalized: &str) -> Result<Option<(MirrorPage, Arc<Page>)>> {
        let config = &self.config.mirror;
        let fresh = |p: &MirrorPage| page_fresh(config, p);
        if let Some(head) = self.db.mirror_page_head(normalized).await? {
            if fresh(&head) {
                return self.read_kept(head).await;
            }
            // Stale while revalidating: a kept page checked less than twice `refresh` ago is
            // served as it is while one background request asks upstream; an older one waits.
            if !head.missing && head.checked_at.saturating_add(2 * micros(config.refresh_every())) > now() {
                self.revalidate(normalized);
                return self.read_kept(head).await;
            }
        }
        self.fetch_page(normalized).await
    }

    /// Asks upstream for the page of `normalized` in the background, once at a time.
    fn revalidate(&self, normalized: &str) {
        if !self.mirror.revalidating.lock().unwrap_or_else(|e| e.into_inner()).insert(normalized.to_string()) {
            return;
        }
        let (core, name) = (self.clone(), normalized.to_string());
        tokio::spawn(async move {
            if let Err(e) = core.fetch_page(&name).await {
                tracing::debug!(project = %name, error = %e, "background page refresh failed");
            }
            core.mirror.revalidating.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);
        });
    }

    /// The page of `normalized` from upstream, unless another request refreshed it meanwhile.
    async fn fetch_page(&self, normalized: &str) -> Result<Option<(MirrorPage, Arc<Page>)>> {
        let config = &self.config.mirror;
        let fresh = |p: &MirrorPage| page_fresh(config, p);
        let _turn = self.mirror.one_at_a_time(&format!("page:{normalized}")).await;
        let kept = self.db.mirror_page_head(normalized).await?;
        if let Some(head) = &kept
            && fresh(head)
        {
            return self.read_kept(head.clone()).await;
        }
        let at = now();
        let counters = &self.mirror.counters;
        for u in &config.upstreams {
            let etag = kept.as_ref().filter(|p| p.upstream == u.name && !p.missing).and_then(|p| p.etag.as_deref());
            counters.page_requests.fetch_add(1, Ordering::Relaxed);
            match upstream::page(&self.mirror.client, &u.url, normalized, etag, config.max_page_bytes).await {
                Ok(upstream::PageAnswer::Missing) => continue,
                Ok(upstream::PageAnswer::NotModified) => {
                    // Only a request with the kept page's ETag may be answered 304.
                    let Some(mut p) = kept.clone().filter(|_| etag.is_some()) else {
                        let e = format!("upstream {}: answered 304 Not Modified to a request without an ETag", u.name);
                        return self.stale_or(normalized, kept, at, e).await;
                    };
                    self.db.mirror_page_checked(normalized, at, None).await?;
                    // Unchanged: a parsed copy stays good under the new fetch time.
                    if let Some(parsed) = self.mirror.parsed(normalized, p.fetched_at) {
                        self.mirror.keep_parsed(normalized, at, parsed);
                    }
                    (p.checked_at, p.fetched_at, p.error) = (at, at, None);
                    return self.read_kept(p).await;
                }
                Ok(upstream::PageAnswer::Page { body, etag, url }) => {
                    counters.upstream_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    let parsed = page::parse(normalized, &body, &url, &u.file_hosts);
                    match parsed {
                        Ok(parsed) => {
                            if !parsed.skipped.is_empty() {
                                tracing::info!(project = normalized, upstream = %u.name, skipped = ?parsed.skipped, "upstream file entries left out");
                            }
                            let row = MirrorPage {
                                project: normalized.to_string(),
                                upstream: u.name.clone(),
                                body: serde_json::to_string(&parsed).map_err(crate::error::internal)?,
                                etag,
                                missing: false,
                                fetched_at: at,
                                checked_at: at,
                                error: None,
                            };
                            self.db
                                .put_mirror_page(
                                    &row,
                                    i64::try_from(config.cache_bytes).unwrap_or(i64::MAX),
                                    at - micros(config.negative_for()),
                                )
                                .await?;
                            let parsed = Arc::new(parsed);
                            self.mirror.keep_parsed(normalized, at, parsed.clone());
                            return Ok(Some((row, parsed)));
                        }
                        Err(e) => return self.stale_or(normalized, kept, at, format!("upstream {}: {e}", u.name)).await,
                    }
                }
                // An upstream that fails is not passed over for the next: that one could serve
                // another project of the same name.
                Err(e) => return self.stale_or(normalized, kept, at, format!("upstream {}: {e}", u.name)).await,
            }
        }
        let row = MirrorPage {
            project: normalized.to_string(),
            upstream: String::new(),
            body: String::new(),
            etag: None,
            missing: true,
            fetched_at: at,
            checked_at: at,
            error: None,
        };
        self.db.put_mirror_page(&row, i64::try_from(config.cache_bytes).unwrap_or(i64::MAX), at - micros(config.negative_for())).await?;
        Ok(None)
    }

    /// A kept page (its head), parsed: from memory when this version was parsed before.
    async fn read_kept(&self, head: MirrorPage) -> Result<Option<(MirrorPage, Arc<Page>)>> {
        if head.missing {
            return Ok(None);
        }
        if let Some(page) = self.mirror.parsed(&head.project, head.fetched_at) {
            return Ok(Some((head, page)));
        }
        let Some(full) = self.db.mirror_page(&head.project).await? else { return Ok(None) };
        if full.missing {
            return Ok(None);
        }
        let page: Page =
            serde_json::from_str(&full.body).map_err(|e| crate::error::internal(format!("kept page of {}: {e}", head.project)))?;
        let page = Arc::new(page);
        self.mirror.keep_parsed(&head.project, full.fetched_at, page.clone());
        Ok(Some((head, page)))
    }

    /// A failed refresh: the kept page if there is one (stale-if-error), else the failure.
    async fn stale_or(
        &self,
        normalized: &str,
        kept: Option<MirrorPage>,
        at: i64,
        error: String,
    ) -> Result<Option<(MirrorPage, Arc<Page>)>> {
        let counters = &self.mirror.counters;
        counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(project = normalized, error = %error, "upstream page refresh failed");
        match kept.filter(|p| !p.missing) {
            Some(mut p) => {
                self.db.mirror_page_checked(normalized, at, Some(&error)).await?;
                counters.stale_served.fetch_add(1, Ordering::Relaxed);
                (p.checked_at, p.error) = (at, Some(error));
                self.read_kept(p).await
            }
            None => Err(Error::BadGateway(error)),
        }
    }

    /// The upstream project `normalized` as this index serves it, with every file's decision;
    /// `None` when no upstream has it. The caller checked the route.
    pub async fn mirror_view(&self, normalized: &str) -> Result<Option<View>> {
        if let Some(view) = self.mirror.fresh_view(normalized) {
            return Ok(Some(view));
        }
        let generation = self.mirror.views_generation.load(Ordering::Acquire);
        let Some((row, page)) = self.mirror_page(normalized).await? else { return Ok(None) };
        let view = self.view_of(row, page).await?;
        self.mirror.keep_view(normalized, &view, generation);
        Ok(Some(view))
    }

    /// Every kept upstream page as clients would see it now, without asking upstream (for
    /// `palisade mirror status`).
    pub async fn mirror_kept_views(&self) -> Result<Vec<View>> {
        let mut out = Vec::new();
        for row in self.db.mirror_pages_kept().await? {
            let page: Page = serde_json::from_str(&row.body).map_err(crate::error::internal)?;
            out.push(self.view_of(row, Arc::new(page)).await?);
        }
        Ok(out)
    }

    async fn view_of(&self, row: MirrorPage, page: Arc<Page>) -> Result<View> {
        let normalized = page.name.clone();
        let normalized = normalized.as_str();
        let at = now();
        let fetched = self.db.mirror_verdicts(normalized).await?;
        let exempt = !self.db.exemptions(Some(normalized), at).await?.is_empty();
        let blocks = self.blocks();
        let osv = page
            .files
            .iter()
            .filter_map(|f| blocks.decide(normalized, &f.version, &f.sha256).map(|b| (f.filename.clone(), b.message())))
            .collect();
        let inputs = decide::Inputs {
            now: at,
            min_age: self.config.mirror.min_age_micros(),
            exempt,
            verdicts: fetched
                .iter()
                .filter(|f| f.status != "published")
                .filter_map(|f| {
                    let release = palisade_dist::canonical_version(&palisade_dist::parse_version(&f.version).ok()?);
                    Some((release, (f.status.clone(), f.reason.clone())))
                })
                .collect(),
            max_bytes: self.config.max_upload_bytes,
            osv,
        };
        let decisions = decide::decide(&page, &inputs).into();
        let provenance = Arc::new(fetched.iter().filter(|f| f.provenance && f.status == "published").map(|f| f.filename.clone()).collect());
        Ok(View { upstream: row.upstream, page, decisions, provenance, stale: row.error.is_some(), checked_at: row.checked_at })
    }

    /// The upstream file `filename` for a download: fetched, checked and scanned on its first
    /// request. A file the decision does not list is refused (`Forbidden`, naming why). `client`:
    /// the environment the client described, whose next files a first fetch reads ahead.
    pub async fn mirror_download(&self, filename: &str, client: Option<Target>) -> Result<MirrorFile> {
        let (file, view) = self.mirror_file_decision(filename).await?;
        fetch::file(self, &view, &file, self.ahead_for(client), fetch::For::Client).await
    }

    pub(super) fn ahead_for(&self, client: Option<Target>) -> Option<guess::Guess> {
        client.filter(|_| self.mirror.ahead.enabled()).map(guess::Guess::client)
    }

    /// The PEP 658 metadata of an upstream file: upstream's, checked against the hash its page
    /// gives; for a wheel upstream serves none for, read out of the wheel (see
    /// [`Core::wheel_metadata`]). With `client`, the file itself and the dependencies the
    /// metadata names are read ahead.
    pub async fn mirror_metadata(&self, filename: &str, client: Option<Target>) -> Result<Vec<u8>> {
        let (file, view) = self.mirror_file_decision(filename).await?;
        let guess = self.ahead_for(client);
        let data = match &file.metadata_sha256 {
            Some(want) => self.upstream_metadata(&file, want).await?,
            None => self.wheel_metadata(&view, &file, guess.clone()).await?,
        };
        if let Some(guess) = guess
            && self.db.mirror_file(filename).await?.is_none()
        {
            if let Ok(fields) = palisade_dist::CoreMetadata::read_fields(&data) {
                self.read_ahead_dependencies(&fields.requires_dist, &guess);
            }
            self.read_ahead_file(&view.page.name, filename, guess);
        }
        Ok(data)
    }

    /// The metadata of a wheel whose upstream serves no PEP 658 file: kept from an earlier read;
    /// else the stored file's, when it was fetched already; else read out of upstream's file by
    /// range requests (its end, then the member); else (a file of unknown size, an upstream that
    /// answers no range requests, parts that do not make a wheel of this release) the whole file's,
    /// fetched, checked and scanned as a download would. Parts of a file cannot be checked
    /// against its sha256: metadata read from them is upstream's word, as a PEP 658 file would
    /// be, and is replaced by the whole file's own when that is fetched.
    async fn wheel_metadata(&self, view: &View, file: &page::File, ahead: Option<guess::Guess>) -> Result<Vec<u8>> {
        let filename = file.filename.as_str();
        let missing = || Error::NotFound(format!("no metadata file for {filename:?}"));
        if !filename.ends_with(".whl") {
            return Err(missing());
        }
        if let Some((_, data)) = self.db.mirror_metadata(filename).await? {
            return Ok(data);
        }
        // Held to the end: requests that wait find the metadata kept, whichever way it was read.
        let _turn = self.mirror.one_at_a_time(&format!("metadata:{filename}")).await;
        if let Some(data) = self.wheel_metadata_unfetched(file).await? {
            return Ok(data);
        }
        let row = fetch::file(self, view, file, ahead, fetch::For::Client).await?;
        match self.db.mirror_metadata(filename).await? {
            Some((_, data)) => Ok(data),
            None => fetch::stored_metadata(self, &row, file).await?.ok_or_else(missing),
        }
    }

    /// The metadata of a wheel upstream serves no metadata file for, without fetching the file
    /// whole: kept; else the stored file's; else read from parts of upstream's file. `None` when
    /// only the whole file would tell. The caller holds the file's `metadata:` turn.
    async fn wheel_metadata_unfetched(&self, file: &page::File) -> Result<Option<Vec<u8>>> {
        let filename = file.filename.as_str();
        if let Some((_, data)) = self.db.mirror_metadata(filename).await? {
            return Ok(Some(data));
        }
        if let Some(row) = self.db.mirror_file(filename).await? {
            return match fetch::stored_metadata(self, &row, file).await? {
                Some(data) => Ok(Some(data)),
                None => Err(Error::NotFound(format!("no metadata file for {filename:?}"))),
            };
        }
        // Even a small file is read in parts rather than fetched and scanned: a resolver waits
        // for its metadata, not for the scan (reading ahead, or the download, fetches the file).
        let host = url::Url::parse(&file.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let Some(size) = file.size.filter(|_| self.mirror.answers_ranges(&host)) else { return Ok(None) };
        match self.metadata_from_parts(file, size).await {
            Ok(data) => {
                // Kept unless the whole file's own was kept meanwhile.
                self.db.put_mirror_metadata(filename, &palisade_dist::sha256_hex(&data), &data, now(), false).await?;
                Ok(Some(self.db.mirror_metadata(filename).await?.map_or(data, |(_, kept)| kept)))
            }
            Err(upstream::PartsError::NoRanges(e)) => {
                tracing::warn!(host = %host, error = %e, "an upstream host answers range requests with whole files; its wheels without metadata files are fetched whole for an hour");
                self.mirror.no_ranges.lock().unwrap_or_else(|e| e.into_inner()).insert(host, std::time::Instant::now());
                Ok(None)
            }
            Err(upstream::PartsError::Other(e)) => {
                self.mirror.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                tracing::info!(file = filename, error = %e, "metadata not read from parts of the file; fetching it whole");
                Ok(None)
            }
        }
    }

    /// The metadata of a listed wheel, for reading ahead: upstream's metadata file, or read from
    /// parts of the wheel; `None` when only fetching the whole file would tell (that is the
    /// file read-ahead's work, not this one's), or when someone is reading it now (a client,
    /// whose request reads its dependencies ahead, or a whole fetch, which does too): a lookup
    /// never waits behind a fetch.
    pub(super) async fn metadata_ahead(&self, file: &page::File) -> Result<Option<Vec<u8>>> {
        if !file.filename.ends_with(".whl") {
            return Ok(None);
        }
        if let Some((sha, data)) = self.db.mirror_metadata(&file.filename).await?
            && file.metadata_sha256.as_ref().is_none_or(|want| &sha == want)
        {
            return Ok(Some(data));
        }
        if let Some(want) = &file.metadata_sha256 {
            return self.upstream_metadata(file, want).await.map(Some);
        }
        let Some(_turn) = self.mirror.try_one_at_a_time(&format!("metadata:{}", file.filename)) else { return Ok(None) };
        self.wheel_metadata_unfetched(file).await
    }

    /// A wheel's metadata read out of parts of upstream's file, if it is that of the release
    /// the filename names.
    async fn metadata_from_parts(&self, file: &page::File, size: u64) -> std::result::Result<Vec<u8>, upstream::PartsError> {
        let other = |e: String| upstream::PartsError::Other(format!("{}: {e}", file.filename));
        let dist = palisade_dist::DistFilename::parse(&file.filename).map_err(|e| other(e.to_string()))?;
        let limits = fetch::limits(self);
        let counters = &self.mirror.counters;
        let (read, requests, bytes) = upstream::wheel_metadata(&self.mirror.client, &file.url, size, &dist, &limits, PARTS_BYTES).await;
        counters.other_requests.fetch_add(requests, Ordering::Relaxed);
        counters.upstream_bytes.fetch_add(bytes, Ordering::Relaxed);
        let data = read?;
        let parsed = palisade_dist::CoreMetadata::parse(&data).map_err(|e| other(e.to_string()))?;
        if parsed.normalized_name != dist.normalized_name || parsed.version != dist.version {
            return Err(other(format!("its metadata names {} {}", parsed.normalized_name, parsed.version)));
        }
        Ok(data)
    }

    async fn upstream_metadata(&self, file: &page::File, want: &String) -> Result<Vec<u8>> {
        let filename = file.filename.as_str();
        if let Some((sha, data)) = self.db.mirror_metadata(filename).await?
            && &sha == want
        {
            return Ok(data);
        }
        let _turn = self.mirror.one_at_a_time(&format!("metadata:{filename}")).await;
        if let Some((sha, data)) = self.db.mirror_metadata(filename).await?
            && &sha == want
        {
            return Ok(data);
        }
        self.mirror.counters.other_requests.fetch_add(1, Ordering::Relaxed);
        let metadata_url = match url::Url::parse(&file.url) {
            Ok(mut u) => {
                let path = format!("{}.metadata", u.path());
                u.set_path(&path);
                u.to_string()
            }
            Err(e) => return Err(Error::BadGateway(format!("{}: {e}", file.url))),
        };
        let data = upstream::document(&self.mirror.client, &metadata_url, METADATA_BYTES).await.map_err(|e| {
            self.mirror.counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
            Error::BadGateway(e)
        })?;
        self.mirror.counters.upstream_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let got = palisade_dist::sha256_hex(&data);
        if &got != want {
            return Err(Error::BadGateway(format!("upstream sent metadata with sha256 {got}, but its page says {want}")));
        }
        self.db.put_mirror_metadata(filename, want, &data, now(), true).await?;
        Ok(data)
    }

    /// The verified provenance object of a fetched upstream file, if it has one and is served.
    pub async fn mirror_provenance(&self, filename: &str) -> Result<Option<String>> {
        // Only what is listed (the same decision as a download) has its provenance served.
        self.mirror_file_decision(filename).await?;
        Ok(self.db.mirror_file(filename).await?.filter(|f| f.status == "published").and_then(|f| f.provenance))
    }

    /// The page entry of `filename` and the view it is decided in, if it is listed.
    async fn mirror_file_decision(&self, filename: &str) -> Result<(page::File, View)> {
        let missing = || Error::NotFound(format!("no file named {filename:?}"));
        let (project, _) = page::identify(filename).ok_or_else(missing)?;
        if self.mirror_route(&project).await? == Route::Local {
            return Err(missing());
        }
        let view = self.mirror_view(&project).await?.ok_or_else(missing)?;
        let (file, decision) = view.decision(filename).ok_or_else(missing)?;
        if let Some(why) = decision.message(filename, &self.config.mirror.min_age) {
            return Err(Error::Forbidden(why));
        }
        let file = file.clone();
        Ok((file, view))
    }

    /// Lifts the cooldown for `project`'s upstream releases until `until` (micros), recorded with
    /// its reason and who asked.
    pub async fn mirror_exempt(&self, project: &str, until: i64, reason: &str, actor: &Actor) -> Result<palisade_store::Exemption> {
        let normalized = palisade_dist::normalize(project);
        if palisade_dist::ProjectName::new(project).is_err() {
            return Err(Error::Invalid(format!("{project:?} is not a project name")));
        }
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid("say why the exemption is needed (--reason)".into()));
        }
        palisade_dist::check_text("reason", reason).map_err(|e| Error::Invalid(e.to_string()))?;
        let at = now();
        if until <= at {
            return Err(Error::Invalid("the exemption must end in the future (--until)".into()));
        }
        let e = self.db.add_exemption(&normalized, until, reason, &actor.name, at).await?;
        crate::events::record(
            self,
            "mirror_exemption",
            &actor.name,
            actor.user_id,
            None,
            &actor.origin,
            json!({"project": normalized, "until": crate::timestamp(until), "reason": reason}),
        )
        .await;
        self.changed(&normalized);
        Ok(e)
    }

    /// An administrator's decision on a fetched upstream file that the scanner held or blocked:
    /// `release` serves it, otherwise it is blocked.
    pub async fn mirror_decide(&self, filename: &str, release: bool, note: &str, actor: &Actor) -> Result<MirrorFile> {
        let note = note.trim();
        if note.is_empty() {
            return Err(Error::Invalid("say why (--note)".into()));
        }
        palisade_dist::check_text("note", note).map_err(|e| Error::Invalid(e.to_string()))?;
        let (status, reason) = if release { ("published", format!("released: {note}")) } else { ("malicious", note.to_string()) };
        let f = self.db.decide_mirror_file(filename, status, &reason, &actor.name).await?;
        crate::events::record(
            self,
            if release { "mirror_file_released" } else { "mirror_file_blocked" },
            &actor.name,
            actor.user_id,
            None,
            &actor.origin,
            json!({"project": f.project, "filename": filename, "note": note}),
        )
        .await;
        self.changed(&f.project);
        Ok(f)
    }

    /// Before the first upload of `normalized` creates it here: whether its name exists upstream
    /// (the upstream's name), by `mirror.upstream_names`. With `refuse`, an upstream that has the
    /// name refuses the upload (409); with `allow` the check runs after the upload (see
    /// [`Core::note_shadow`]). Reserved and merged names are not looked up.
    pub async fn check_new_name(&self, normalized: &str) -> Result<()> {
        let config = &self.config.mirror;
        if !config.enabled() || config.upstream_names != UpstreamNames::Refuse || names::route(config, normalized, true) != Route::Local {
            return Ok(());
        }
        if names::reserved(config, normalized) {
            return Ok(());
        }
        match self.upstream_has(normalized).await {
            Ok(Some(upstream)) => Err(Error::Exists(format!(
                "a project named {normalized:?} exists on the upstream index {upstream:?}; this index refuses new projects with public names (mirror.upstream_names = \"refuse\"): ask an administrator to reserve the name"
            ))),
            Ok(None) => Ok(()),
            Err(e) => Err(Error::Unavailable(format!(
                "cannot tell whether {normalized:?} exists upstream ({e}); try again later (mirror.upstream_names = \"refuse\")"
            ))),
        }
    }

    /// After the first upload of `normalized` created it: if its name exists upstream (and is
    /// neither reserved nor merged), the project is flagged and its owners are mailed.
    pub async fn note_shadow(&self, normalized: &str) {
        let config = &self.config.mirror;
        if !config.enabled() || names::reserved(config, normalized) || names::route(config, normalized, true) != Route::Local {
            return;
        }
        match self.upstream_has(normalized).await {
            Ok(Some(upstream)) => {
                if let Err(e) = self.db.put_shadow(normalized, &upstream, now()).await {
                    tracing::error!(project = normalized, error = %e, "could not flag a project whose name exists upstream");
                    return;
                }
                tracing::warn!(project = normalized, upstream = %upstream, "a new project's name exists upstream");
                // Its page says so from now on.
                self.changed(normalized);
                let subject = format!("{normalized} also exists on {upstream}");
                let body = format!(
                    "The project {normalized} was just created on this index, and a project of the same name exists on the upstream index {upstream}.\n\n\
                     This index serves only its own {normalized}: clients that install through it never get the upstream one. \
                     Clients that also use the upstream directly (pip's --extra-index-url) may get the upstream one instead, \
                     whichever has the higher version: that is how dependency-confusion attacks work.\n\n\
                     If the name is meant to be private, ask an administrator to add it (or its prefix) to mirror.reserved.\n"
                );
                if let Err(e) = self.mail_owners(normalized, &subject, &body).await {
                    tracing::warn!(project = normalized, error = %e, "could not mail the owners about an upstream name");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(project = normalized, error = %e, "could not ask upstream whether a new project's name exists there"),
        }
    }

    /// Mails the owners of a hosted project.
    async fn mail_owners(&self, normalized: &str, subject: &str, body: &str) -> Result<()> {
        let Some(project) = self.db.project(normalized).await? else { return Ok(()) };
        for user in self.owners(&project).await? {
            if let Some(email) = &user.email {
                self.mailer.send(email, &format!("[Palisade] {subject}"), format!("Hello {},\n\n{body}", user.name)).await;
            }
        }
        Ok(())
    }

    /// The first upstream that has a project named `normalized`.
    async fn upstream_has(&self, normalized: &str) -> std::result::Result<Option<String>, String> {
        for u in &self.config.mirror.upstreams {
            self.mirror.counters.page_requests.fetch_add(1, Ordering::Relaxed);
            match upstream::page(&self.mirror.client, &u.url, normalized, None, self.config.mirror.max_page_bytes).await {
                Ok(upstream::PageAnswer::Missing) => continue,
                Ok(_) => return Ok(Some(u.name.clone())),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// The largest PEP 658 metadata file fetched.
const METADATA_BYTES: u64 = 16 << 20;
/// The most read of a wheel by range requests to find its metadata.
const PARTS_BYTES: u64 = 8 << 20;
/// How long a decided view is reused (the rendered pages are kept 5 s).
const VIEW_FRESH: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a file host that answered a range request with the whole file is not asked again.
const NO_RANGES_FOR: std::time::Duration = std::time::Duration::from_secs(3600);
