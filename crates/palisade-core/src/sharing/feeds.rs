//! OSV feeds in: each `[[sharing.feeds]]` is read on its schedule (a durable job, one node at a
//! time) or by `palisade osv sync`, and what it holds replaces what the database held for it.
//!
//! A folder or a zip holds every record (a snapshot: records gone from it are dropped); a URL is
//! another instance's (or an OSV.dev-style) `<ecosystem>/` export, read whole from `all.zip` the
//! first time and then incrementally: `modified_id.csv`, then each record whose `modified`
//! changed. Every record is bounded and checked by `palisade_osv::parse`; one that does not read
//! is skipped and counted, never half-applied; the sync is one write transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_osv::Advisory;
use palisade_store::{FeedChanges, NewAdvisory};
use serde_json::json;

use super::micros_of;
use crate::Core;
use crate::config::FeedConfig;

/// The job kind of a feed's sync (`osv_sync:<name>`).
pub const JOB_PREFIX: &str = "osv_sync:";
/// Above this many changed records, an incremental sync reads `all.zip` instead.
const MAX_INCREMENTAL: usize = 2000;
/// Problems kept for the report (the rest are counted).
const MAX_ERRORS: usize = 20;

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub feed: String,
    /// Records read that name a PyPI package.
    pub records: usize,
    /// Records skipped: unreadable, or about no PyPI package.
    pub skipped: usize,
    /// The first problems met.
    pub errors: Vec<String>,
    pub changes: FeedChanges,
    /// Hosted releases newly blocked: (project, record id, files).
    pub blocked: Vec<(String, String, Vec<String>)>,
}

/// What was read from a source.
#[derive(Default)]
struct Read {
    records: Vec<NewAdvisory>,
    pypi: usize,
    skipped: usize,
    errors: Vec<String>,
    /// Bytes of the records kept, and the most that may be kept (`sharing.max_feed_bytes`): a
    /// zip or folder that inflates beyond it is refused whole.
    bytes: u64,
    max: u64,
    too_large: bool,
}

impl Read {
    fn new(max: u64) -> Self {
        Self { max, ..Self::default() }
    }

    fn take(&mut self, what: &str, raw: &[u8], parsed: Result<Advisory, palisade_osv::OsvError>) {
        if self.too_large {
            return;
        }
        match parsed {
            Ok(a) if a.packages.is_empty() => self.skipped += 1,
            Ok(_) if self.bytes + raw.len() as u64 > self.max => self.too_large = true,
            Ok(a) => match std::str::from_utf8(raw) {
                Ok(text) => {
                    self.pypi += 1;
                    self.bytes += raw.len() as u64;
                    self.records.push(new_advisory(&a, text));
                }
                Err(_) => self.problem(format!("{what}: not UTF-8")),
            },
            Err(e) => self.problem(format!("{what}: {e}")),
        }
    }

    fn problem(&mut self, message: String) {
        self.skipped += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }
}

/// The row to store for a parsed record and its text.
pub fn new_advisory(a: &Advisory, text: &str) -> NewAdvisory {
    let mut names: Vec<String> = a.packages.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names.dedup();
    let mut hashes: Vec<String> = a.packages.iter().flat_map(|p| p.sha256.iter().cloned()).collect();
    hashes.sort();
    hashes.dedup();
    NewAdvisory {
        osv_id: a.id.clone(),
        modified: a.modified.clone(),
        modified_at: micros_of(&a.modified),
        withdrawn: a.withdrawn.is_some(),
        malicious: a.malicious,
        record: text.to_string(),
        names,
        hashes,
    }
}

fn read_folder(dir: &Path, max: u64) -> anyhow::Result<Read> {
    let mut read = Read::new(max);
    palisade_osv::read_folder(dir, |path, raw, parsed| read.take(&path.display().to_string(), raw, parsed))?;
    read.bounded(&dir.display().to_string())
}

fn read_zip(bytes: &[u8], what: &str, max: u64) -> anyhow::Result<Read> {
    let mut read = Read::new(max);
    palisade_osv::read_zip_bytes(bytes, |name, raw, parsed| read.take(&format!("{what}:{name}"), raw, parsed))?;
    read.bounded(what)
}

impl Read {
    fn bounded(self, what: &str) -> anyhow::Result<Self> {
        if self.too_large {
            anyhow::bail!("{what}: its records add up to more than sharing.max_feed_bytes ({} bytes); nothing was applied", self.max);
        }
        Ok(self)
    }
}

/// An HTTP client for feeds: bounded time, no cookies, Palisade's user agent.
fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION"), " (OSV feed)"))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .redirect(crate::net::same_origin_redirects())
        .build()?)
}

/// GETs `url`, refusing an answer other than 200 and a body over `max` bytes.
async fn fetch(client: &reqwest::Client, url: &str, max: u64, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut request = client.get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let mut resp = request.send().await.map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    if resp.status() != reqwest::StatusCode::OK {
        anyhow::bail!("{url}: the server answered {}", resp.status());
    }
    if resp.content_length().is_some_and(|n| n > max) {
        anyhow::bail!("{url}: larger than sharing.max_feed_bytes ({max} bytes)");
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| anyhow::anyhow!("{url}: {e}"))? {
        if body.len() as u64 + chunk.len() as u64 > max {
            anyhow::bail!("{url}: larger than sharing.max_feed_bytes ({max} bytes)");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Core {
    /// Reads every configured feed once, in order.
    pub async fn sync_feeds(&self) -> Vec<(String, anyhow::Result<SyncReport>)> {
        let mut out = Vec::new();
        for feed in self.config.sharing.feeds.clone() {
            let r = self.sync_feed(&feed, false).await;
            out.push((feed.name.clone(), r));
        }
        out
    }

    /// Reads one feed and stores what changed; then this process enforces it at once, other
    /// nodes within their next poll, and the owners of newly blocked releases are told. A sync
    /// that would drop most of what the feed held (an empty or half-pulled checkout), or newly
    /// block a large share of the hosted projects (a hostile feed), is refused unless `force`.
    pub async fn sync_feed(&self, feed: &FeedConfig, force: bool) -> anyhow::Result<SyncReport> {
        let started = std::time::Instant::now();
        let result = self.read_feed(feed).await;
        let result = match result {
            Ok((read, snapshot)) if !force => self.check_sanity(feed, &read, snapshot).await.map(|()| (read, snapshot)),
            other => other,
        };
        let (read, snapshot) = match result {
            Ok(r) => r,
            Err(e) => {
                let message = format!("{e:#}");
                let _ = self.db.record_feed_problem(&feed.name, &message).await;
                tracing::warn!(feed = %feed.name, error = %message, "OSV feed not applied");
                return Err(e);
            }
        };
        let changes = self.db.apply_feed(&feed.name, &read.records, snapshot).await?;
        let error = read.errors.first().map(String::as_str);
        self.db.record_feed_sync(&feed.name, read.pypi as i64, read.skipped as i64, error).await?;
        let mut report = SyncReport {
            feed: feed.name.clone(),
            records: read.pypi,
            skipped: read.skipped,
            errors: read.errors,
            changes,
            blocked: Vec::new(),
        };
        if report.changes.added + report.changes.updated + report.changes.removed > 0 {
            self.refresh_blocks().await?;
            report.blocked = self.announce_blocks(&feed.name, &report.changes.names, &report.changes.hashes).await;
        }
        tracing::info!(
            feed = %feed.name,
            records = report.records,
            skipped = report.skipped,
            added = report.changes.added,
            updated = report.changes.updated,
            removed = report.changes.removed,
            blocked = report.blocked.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "OSV feed synced"
        );
        Ok(report)
    }

    /// Reads a feed's source: the records, and whether they are all it holds.
    async fn read_feed(&self, feed: &FeedConfig) -> anyhow::Result<(Read, bool)> {
        let max = self.config.sharing.max_feed_bytes;
        if !feed.is_url() {
            let path = PathBuf::from(&feed.source);
            let what = feed.source.clone();
            let read = tokio::task::spawn_blocking(move || -> anyhow::Result<Read> {
                let meta = std::fs::metadata(&path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                if meta.is_dir() {
                    read_folder(&path, max)
                } else {
                    if meta.len() > max {
                        anyhow::bail!("{what}: larger than sharing.max_feed_bytes ({max} bytes)");
                    }
                    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                    read_zip(&bytes, &what, max)
                }
            })
            .await??;
            return Ok((read, true));
        }
        let client = client()?;
        let token = feed.token.as_ref().map(|t| t.expose());
        let stored = self.db.feed_modified(&feed.name).await?;
        if !stored.is_empty() {
            let csv = fetch(&client, &format!("{}modified_id.csv", feed.source), max, token).await?;
            let csv = String::from_utf8(csv).map_err(|_| anyhow::anyhow!("{}modified_id.csv: not UTF-8", feed.source))?;
            let listed = palisade_osv::parse_modified_id_csv(&csv).map_err(|e| anyhow::anyhow!("{}modified_id.csv: {e}", feed.source))?;
            // Times compared as instants: an index may write them otherwise than the records do.
            let wanted: Vec<&(String, String)> =
                listed.iter().filter(|(m, id)| stored.get(id).is_none_or(|s| micros_of(s) != micros_of(m) || micros_of(m) == 0)).collect();
            if wanted.len() <= MAX_INCREMENTAL {
                let mut read = Read::new(max);
                for (_, id) in wanted {
                    let url = format!("{}{id}.json", feed.source);
                    match fetch(&client, &url, palisade_osv::MAX_RECORD_BYTES as u64, token).await {
                        Ok(raw) => {
                            let parsed = palisade_osv::parse(&raw).and_then(|a| {
                                if &a.id == id {
                                    Ok(a)
                                } else {
                                    Err(palisade_osv::OsvError::Field {
                                        id: a.id.clone(),
                                        field: "id".into(),
                                        reason: format!("is not {id}, the id {url} names"),
                                    })
                                }
                            });
                            read.take(&url, &raw, parsed);
                        }
                        Err(e) => read.problem(format!("{e:#}")),
                    }
                }
                // Records the index still lists count as read.
                read.pypi += listed.len().saturating_sub(read.records.len() + read.skipped);
                return Ok((read, false));
            }
        }
        let url = format!("{}all.zip", feed.source);
        let bytes = fetch(&client, &url, max, token).await?;
        let read = tokio::task::spawn_blocking(move || read_zip(&bytes, &url, max)).await??;
        Ok((read, true))
    }

    /// After records about `names` changed: a journal entry for each hosted project among them
    /// (pages and mirrors see the change), and, once per project and record, the owners mailed
    /// and the webhooks told of each release a record now blocks.
    async fn announce_blocks(&self, feed: &str, names: &[String], hashes: &[String]) -> Vec<(String, String, Vec<String>)> {
        let blocks = self.blocks();
        let mut out = Vec::new();
        // The projects the records name, and those holding a file they list under another name.
        let mut projects = names.to_vec();
        match self.db.projects_with_files(hashes).await {
            Ok(more) => projects.extend(more),
            Err(e) => tracing::warn!(error = %e, "could not look up files by the digests a feed lists"),
        }
        projects.sort();
        projects.dedup();
        for name in &projects {
            let Ok(Some(project)) = self.db.project(name).await else { continue };
            let files = match self.db.project_files(project.id).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, project = %name, "could not list files to check against a feed");
                    continue;
                }
            };
            if let Err(e) = self.db.journal_advisory(name, &format!("osv feed {feed} changed"), &format!("feed:{feed}")).await {
                tracing::warn!(error = %e, project = %name, "could not journal a feed change");
            }
            self.changed(name);
            let mut hits: BTreeMap<String, (super::Block, Vec<String>)> = BTreeMap::new();
            for f in files.iter().filter(|f| f.is_published()) {
                if let Some(b) = blocks.decide_file(f) {
                    hits.entry(b.id.clone()).or_insert_with(|| (b, Vec::new())).1.push(f.filename.clone());
                }
            }
            for (id, (block, files)) in hits {
                if !matches!(self.db.note_advisory_notice(project.id, &id).await, Ok(true)) {
                    continue;
                }
                let what = format!(
                    "The project {name} has files that the OSV record {id} lists as malicious ({}). They are no longer listed \
                     or served: installers get 403 naming the record. Files: {}.\n\nIf the record is wrong, ask the administrators \
                     of this Palisade instance to waive it for your project, and the record's publisher to withdraw it.",
                    block.summary,
                    files.join(", ")
                );
                self.tell_owners(&project, &format!("{id} blocks files of {name}"), &what).await;
                let details = json!({ "project": name, "record": id, "feed": feed, "summary": block.summary, "files": files });
                crate::events::record(
                    self,
                    "osv_blocked",
                    &format!("feed:{feed}"),
                    None,
                    Some(project.id),
                    &Default::default(),
                    details.clone(),
                )
                .await;
                self.announce("feed_block", details).await;
                out.push((name.clone(), id, files));
            }
        }
        out
    }

    /// Mails a project's owners.
    pub(crate) async fn tell_owners(&self, project: &palisade_store::Project, subject: &str, what: &str) {
        match self.owners(project).await {
            Ok(owners) => {
                for user in owners {
                    crate::mail::notify(&self.mailer, &user, subject, what).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list owners to mail"),
        }
    }

    /// Makes sure every configured feed's sync is queued: to run now, at a server's start, or
    /// within its interval, when checked again later (a queued job is never moved later).
    pub async fn schedule_feeds(&self, now: bool) -> anyhow::Result<()> {
        for feed in &self.config.sharing.feeds {
            let delay = if now { 0 } else { i64::try_from(feed.every().as_micros()).unwrap_or(i64::MAX) };
            let at = jiff::Timestamp::now().as_microsecond().saturating_add(delay);
            self.db.schedule_once(&format!("{JOB_PREFIX}{}", feed.name), at).await?;
        }
        self.mailer.wake.notify_one();
        Ok(())
    }

    /// Drops the records of feeds no longer configured (they would otherwise block for good);
    /// returns each dropped feed with its count of records.
    pub async fn forget_unconfigured_feeds(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for (source, _) in self.db.feed_sources().await? {
            if !self.config.sharing.feeds.iter().any(|f| f.name == source) {
                let n = self.db.forget_feed(&source).await?;
                out.push((source, n));
            }
        }
        if !out.is_empty() {
            self.refresh_blocks().await?;
        }
        Ok(out)
    }

    /// Refuses a sync that looks like an accident or an attack: a snapshot holding under half of
    /// the records the feed had (more than 100 of them), or records newly blocking more than a
    /// quarter of the hosted projects (more than 10 of them). `palisade osv sync --force`
    /// applies it anyway.
    async fn check_sanity(&self, feed: &FeedConfig, read: &Read, snapshot: bool) -> anyhow::Result<()> {
        let stored = self.db.feed_modified(&feed.name).await?;
        if snapshot && stored.len() > 100 && read.records.len() * 2 < stored.len() {
            anyhow::bail!(
                "{} holds {} records where it held {}: not applied, in case it is an incomplete copy (run `palisade osv sync --feed {} --force` if it is right)",
                feed.source,
                read.records.len(),
                stored.len(),
                feed.name
            );
        }
        let hosted: std::collections::HashSet<String> = self.db.project_names().await?.into_iter().collect();
        let mut named: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for a in read.records.iter().filter(|a| a.malicious && !a.withdrawn && stored.get(&a.osv_id) != Some(&a.modified)) {
            named.extend(a.names.iter().map(String::as_str).filter(|n| hosted.contains(*n)));
        }
        if named.len() > 10 && named.len() * 4 > hosted.len() {
            anyhow::bail!(
                "{} would newly block {} of the {} hosted projects: not applied (run `palisade osv sync --feed {} --force` if it is right)",
                feed.source,
                named.len(),
                hosted.len(),
                feed.name
            );
        }
        Ok(())
    }

    /// The job: syncs the feed `name` and queues its next sync.
    pub(crate) async fn run_feed_job(&self, name: &str) -> Result<(), String> {
        let Some(feed) = self.config.sharing.feeds.iter().find(|f| f.name == name).cloned() else {
            // The feed is no longer configured (here): nothing to do, nothing to reschedule.
            return Ok(());
        };
        let result = self.sync_feed(&feed, false).await;
        let next = jiff::Timestamp::now().as_microsecond().saturating_add(i64::try_from(feed.every().as_micros()).unwrap_or(i64::MAX));
        self.db.schedule_once(&format!("{JOB_PREFIX}{name}"), next).await.map_err(|e| e.to_string())?;
        // A failed read is recorded on the feed and tried at the next interval; the job itself
        // is done (its retries would only duplicate the schedule).
        let _ = result;
        Ok(())
    }
}
