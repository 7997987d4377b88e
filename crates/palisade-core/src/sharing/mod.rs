//! Information sharing (docs/sharing.md): what Palisade learns about malicious packages goes out
//! as OSV records ([`records`]), what others learn comes in as OSV feeds ([`feeds`]) and is
//! enforced, users report projects ([`reports`]), and security teams hear of it all through
//! signed webhooks ([`webhooks`]).
//!
//! Enforcement is one decision, [`Blocks::decide`]: a file is blocked when a malicious, not
//! withdrawn record (from a feed, or Palisade's own) names its project and version or lists its
//! sha256, unless an administrator waived that record for the project. The upload pipeline, the
//! index pages, the JSON API and downloads all ask it, so they never disagree. Each process keeps
//! the records that block in memory ([`Sharing`]) and reloads them when the database's
//! `advisories_serial` moves (every node polls it; see [`Core::watch_blocks`]).

pub mod feeds;
pub mod records;
pub mod reports;
pub mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use palisade_osv::Advisory;
use palisade_store::FileRow;

use crate::Core;

/// The status the index code gives a file a record blocks (it is then not published).
pub const BLOCKED: &str = "blocked";

/// A record that blocks a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The record's id (`MAL-2024-10238`, `x_PALISADE-2026-1`).
    pub id: String,
    /// Its summary, or a standard one.
    pub summary: String,
    /// The feed it came from (`""`: Palisade's own verdict).
    pub source: String,
}

impl Block {
    /// The sentence users see: in a 403's reason phrase and body.
    pub fn message(&self) -> String {
        let from = if self.source.is_empty() { String::new() } else { format!(" (feed {})", self.source) };
        format!("blocked by {}{from}: {}", self.id, self.summary)
    }
}

/// The records that block, indexed by name and file hash, and the waivers.
#[derive(Debug, Default)]
pub struct Blocks {
    advisories: Vec<(Advisory, String)>,
    by_name: HashMap<String, Vec<usize>>,
    by_hash: HashMap<String, Vec<usize>>,
    waived: HashSet<(String, String)>,
    /// The database's `advisories_serial` this was loaded at.
    pub serial: i64,
}

impl Blocks {
    /// Indexes `advisories` (with their source) and `waivers` (project, record id).
    pub fn new(advisories: Vec<(Advisory, String)>, waivers: impl IntoIterator<Item = (String, String)>, serial: i64) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_hash: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (a, _)) in advisories.iter().enumerate() {
            for p in &a.packages {
                by_name.entry(p.name.clone()).or_default().push(i);
                for h in &p.sha256 {
                    by_hash.entry(h.clone()).or_default().push(i);
                }
            }
        }
        for v in by_name.values_mut().chain(by_hash.values_mut()) {
            v.dedup();
        }
        Self { advisories, by_name, by_hash, waived: waivers.into_iter().collect(), serial }
    }

    /// How many records block.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The record that blocks the file `sha256` of `project` (normalized) `version`, if any: the
    /// one decision every path asks. Order-independent (`palisade_osv::blocking` picks the
    /// smallest id among the matches).
    pub fn decide(&self, project: &str, version: &str, sha256: &str) -> Option<Block> {
        let mut candidates: Vec<usize> = Vec::new();
        candidates.extend(self.by_name.get(project).into_iter().flatten());
        candidates.extend(self.by_hash.get(sha256).into_iter().flatten());
        if candidates.is_empty() {
            return None;
        }
        candidates.sort_unstable();
        candidates.dedup();
        let live =
            || candidates.iter().map(|&i| &self.advisories[i].0).filter(|a| !self.waived.contains(&(project.to_string(), a.id.clone())));
        // `pip install foo==1.0` also takes `1.0+anything` (PEP 440): a local version is blocked
        // by what blocks its public version.
        let public = version.split_once('+').map(|(p, _)| p);
        let hit = palisade_osv::blocking(live(), project, version, sha256)
            .or_else(|| public.and_then(|p| palisade_osv::blocking(live(), project, p, sha256)))?;
        let source = candidates
            .iter()
            .find(|&&i| std::ptr::eq(&self.advisories[i].0, hit))
            .map(|&i| self.advisories[i].1.clone())
            .unwrap_or_default();
        Some(Block {
            id: hit.id.clone(),
            summary: hit.summary.clone().unwrap_or_else(|| format!("Malicious code in {project} (PyPI)")),
            source,
        })
    }

    /// The record that blocks a stored file.
    pub fn decide_file(&self, f: &FileRow) -> Option<Block> {
        self.decide(&f.project, &f.version, &f.sha256)
    }

    /// Marks the published files a record blocks as [`BLOCKED`], so the index code, which shows
    /// published files only, leaves them out.
    pub fn hide(&self, files: &mut [FileRow]) {
        if self.is_empty() {
            return;
        }
        for f in files.iter_mut().filter(|f| f.is_published()) {
            if self.decide_file(f).is_some() {
                f.status = BLOCKED.to_string();
            }
        }
    }
}

/// Called after the blocking records were reloaded (the server drops every cached page).
pub type ReloadHook = Arc<dyn Fn() + Send + Sync>;

/// The process's current [`Blocks`], and who hears of a reload.
pub struct Sharing {
    blocks: RwLock<Arc<Blocks>>,
    hooks: RwLock<Vec<ReloadHook>>,
}

impl Default for Sharing {
    /// Nothing loaded yet (serial -1, so the first refresh loads).
    fn default() -> Self {
        Self { blocks: RwLock::new(Arc::new(Blocks { serial: -1, ..Blocks::default() })), hooks: RwLock::default() }
    }
}

impl Sharing {
    pub fn blocks(&self) -> Arc<Blocks> {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs `blocks`, then tells the hooks: a page rendered with the old records after a
    /// hook ran is refused by the cache's generation check (see `IndexCache::keep`).
    fn set(&self, blocks: Blocks) {
        *self.blocks.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(blocks);
        let hooks = self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for hook in hooks {
            hook();
        }
    }
}

impl Core {
    /// The records that block, as this process last loaded them.
    pub fn blocks(&self) -> Arc<Blocks> {
        self.sharing.blocks()
    }

    /// Registers `hook` to run after every reload of the blocking records, whoever caused it.
    pub fn on_blocks_reloaded(&self, hook: ReloadHook) {
        self.sharing.hooks.write().unwrap_or_else(|e| e.into_inner()).push(hook);
    }

    /// Reloads the records that block if the database's serial moved; `true` if it did.
    pub async fn refresh_blocks(&self) -> anyhow::Result<bool> {
        let serial = self.db.advisories_serial().await?;
        if serial == self.sharing.blocks().serial {
            return Ok(false);
        }
        let stored = self.db.blocking_advisories().await?;
        let waivers = self.db.waivers().await?;
        let blocks = tokio::task::spawn_blocking(move || {
            let mut advisories = Vec::with_capacity(stored.len());
            for s in stored {
                match palisade_osv::parse(s.record.as_bytes()) {
                    Ok(a) => advisories.push((a, s.source)),
                    Err(e) => tracing::error!(osv.id = %s.osv_id, error = %e, "a stored record no longer reads; it does not block"),
                }
            }
            Blocks::new(advisories, waivers.into_iter().map(|w| (w.project, w.osv_id)), serial)
        })
        .await?;
        // The first load happens as every command opens the data directory: not worth a line on
        // a CLI's stderr. A reload (another process changed the records) is.
        if self.sharing.blocks().serial < 0 {
            tracing::debug!(records = blocks.len(), serial, "blocking records loaded");
        } else {
            tracing::info!(records = blocks.len(), serial, "blocking records loaded");
        }
        self.sharing.set(blocks);
        Ok(true)
    }

    /// Polls the database's serial every `every` and reloads the records on a change (the
    /// reload hooks run). Runs until the process ends.
    pub async fn watch_blocks(&self, every: Duration) {
        loop {
            if let Err(e) = self.refresh_blocks().await {
                tracing::warn!(error = %e, "could not check the blocking records");
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Now, as OSV writes times (RFC 3339, UTC, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An RFC 3339 time in microseconds since the epoch (0 if it does not parse).
pub fn micros_of(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>().map(|t| t.as_microsecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
