//! The scanner inside the server: built once in the background at start (rule compilation is
//! kept off the start-up path), used by uploads and rescans, and the policy that turns a verdict
//! into publish, quarantine or reject.

use std::path::Path;
use std::sync::Arc;

use palisade_scan::typo::TypoIndex;
use palisade_scan::{EarlierFile, Report, ScanConfig, Scanner, Thresholds};
use palisade_store::{BlobStore, Db, NewScan};
use tokio::sync::OnceCell;

use crate::config::ScanPolicy;

mod background;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Publish,
    Quarantine,
    Reject,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Publish => "published",
            Outcome::Quarantine => "quarantined",
            Outcome::Reject => "rejected",
        }
    }
}

/// The hosted names, and the id of the last project they include.
struct Hosted {
    index: TypoIndex,
    last_id: i64,
}

pub struct ScanService {
    policy: ScanPolicy,
    scanner: OnceCell<Arc<Scanner>>,
    /// Hosted project names for typosquatting checks, loaded once and then extended with the
    /// projects created since (by any process or node: read from the database by id), so a new
    /// project's check does not reread every name.
    hosted: tokio::sync::Mutex<Option<Hosted>>,
    background: background::Background,
}

impl ScanService {
    pub fn new(policy: ScanPolicy) -> Self {
        Self { policy, scanner: OnceCell::new(), hosted: tokio::sync::Mutex::new(None), background: Default::default() }
    }

    pub fn enabled(&self) -> bool {
        self.policy.enabled
    }

    pub fn policy(&self) -> &ScanPolicy {
        &self.policy
    }

    /// The compiled scanner, built on first use (or by [`ScanService::warm_up`]).
    pub async fn scanner(&self) -> anyhow::Result<Arc<Scanner>> {
        let policy = self.policy.clone();
        let s = self
            .scanner
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || build(&policy)).await.map_err(|e| anyhow::anyhow!("scanner start-up failed: {e}"))?
            })
            .await?;
        Ok(s.clone())
    }

    /// Compiles the rules now, so the first upload does not wait for it.
    pub async fn warm_up(&self) {
        if !self.policy.enabled {
            return;
        }
        let started = std::time::Instant::now();
        match self.scanner().await {
            Ok(_) => tracing::info!(duration_ms = started.elapsed().as_millis() as u64, "malware scanner ready"),
            Err(e) => tracing::error!(error = %e, "the malware scanner could not be built; uploads will be refused until this is fixed"),
        }
    }

    /// Scans a stored or temporary file on a blocking thread.
    pub async fn scan(&self, path: &Path, filename: &str, hosted: Vec<String>) -> anyhow::Result<Report> {
        let scanner = self.scanner().await?;
        let path = path.to_path_buf();
        let filename = filename.to_string();
        Ok(tokio::task::spawn_blocking(move || scanner.scan_path_with(&path, &filename, &hosted)).await?)
    }

    /// Like [`ScanService::scan`], for a file nobody waits for yet (read ahead): at a lower CPU
    /// priority, so that it yields the processor to requests and to scans someone waits on.
    pub async fn scan_in_background(&self, path: &Path, filename: &str) -> anyhow::Result<Report> {
        let scanner = self.scanner().await?;
        let (path, filename) = (path.to_path_buf(), filename.to_string());
        self.background.run(move || scanner.scan_path_with(&path, &filename, &[])).await
    }

    /// Whether `name` (a project about to be created) imitates a hosted project; if so the
    /// finding is added to the report.
    pub async fn check_hosted(&self, db: &Db, name: &str, report: Report) -> anyhow::Result<Report> {
        let mut guard = self.hosted.lock().await;
        let hosted = guard.get_or_insert_with(|| Hosted { index: TypoIndex::new(std::iter::empty()), last_id: 0 });
        for (id, project) in db.projects_created_after(hosted.last_id).await? {
            hosted.index.insert(&project);
            hosted.last_id = id;
        }
        let finding = palisade_scan::typosquat_finding(name, &hosted.index, "hosted", &report.findings);
        Ok(report.with_findings(finding.into_iter().collect(), &self.thresholds()))
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds { suspicious: self.policy.suspicious_score, malicious: self.policy.malicious_score }
    }

    /// Adds to an upload's report what it can do that none of the project's last
    /// [`COMPARED_RELEASES`] releases before it (by version; not yanked, not held) could. The
    /// earlier files' capabilities come from their stored reports; a file scanned before reports
    /// kept them is scanned again from storage.
    pub async fn compare_with_history(
        &self,
        db: &Db,
        blobs: &BlobStore,
        project_id: i64,
        version: &str,
        order: fn(&str, &str) -> Option<std::cmp::Ordering>,
        report: Report,
    ) -> anyhow::Result<Report> {
        let mut files: Vec<palisade_store::FileRow> = db
            .project_files(project_id)
            .await?
            .into_iter()
            .filter(|f| f.status == "published" && !f.yanked && order(&f.version, version) == Some(std::cmp::Ordering::Less))
            .collect();
        if files.is_empty() {
            return Ok(report);
        }
        // Latest release first; a release's files in name order.
        files.sort_by(|a, b| order(&b.version, &a.version).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.filename.cmp(&b.filename)));
        let mut releases: Vec<&str> = Vec::new();
        let mut kept = Vec::new();
        for f in &files {
            if !releases.contains(&f.version.as_str()) {
                if releases.len() == COMPARED_RELEASES {
                    break;
                }
                releases.push(&f.version);
            }
            kept.push(f);
        }
        let mut earlier = Vec::with_capacity(kept.len());
        for f in kept {
            let uses = match stored_capabilities(db, &f.filename).await? {
                Some(uses) => uses,
                None => {
                    let Some(local) = blobs.local(&f.sha256).await? else {
                        tracing::warn!(file = %f.filename, "an earlier release's file is missing from storage; not compared with");
                        continue;
                    };
                    self.scan(local.path(), &f.filename, Vec::new()).await?.capabilities
                }
            };
            earlier.push(EarlierFile { release: f.version.clone(), filename: f.filename.clone(), uses });
        }
        let releases = palisade_scan::releases(&report.file, earlier, COMPARED_RELEASES);
        Ok(report.compared_with(&releases, &self.thresholds()))
    }

    pub fn decide(&self, report: &Report) -> Outcome {
        if self.policy.reject_at.reached_by(report.verdict) {
            Outcome::Reject
        } else if self.policy.quarantine_at.reached_by(report.verdict) {
            Outcome::Quarantine
        } else {
            Outcome::Publish
        }
    }
}

/// How many earlier releases an upload is compared with: a capability any of them had is not
/// news.
pub const COMPARED_RELEASES: usize = 3;

/// The capabilities a file's latest stored report lists; `None` when that report predates
/// the inventory (or there is none).
async fn stored_capabilities(db: &Db, filename: &str) -> anyhow::Result<Option<Vec<palisade_scan::CapabilityUse>>> {
    let Some(latest) = db.reports(filename).await?.into_iter().next() else { return Ok(None) };
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&latest.report) else { return Ok(None) };
    let Some(caps) = value.get_mut("capabilities").map(serde_json::Value::take) else { return Ok(None) };
    Ok(serde_json::from_value(caps).ok())
}

/// Builds a scanner from the policy (the CLI's rescan uses this too).
pub fn build(policy: &ScanPolicy) -> anyhow::Result<Arc<Scanner>> {
    let popular = match &policy.popular_list {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read scan.popular_list {}: {e}", p.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let config = ScanConfig {
        thresholds: Thresholds { suspicious: policy.suspicious_score, malicious: policy.malicious_score },
        extra_rule_dirs: policy.rules_dirs.clone(),
        popular,
        // One upload's scan uses the machine's cores (at most four), so that it adds little
        // to the upload's time.
        member_threads: std::thread::available_parallelism().map(|n| n.get().min(4)).unwrap_or(1),
        reuse_bytes: usize::try_from(policy.reuse_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        ..ScanConfig::default()
    };
    Ok(Arc::new(Scanner::new(config)?))
}

/// The stored form of a report.
pub fn record(report: &Report, outcome: Outcome, trigger: &str) -> NewScan {
    NewScan {
        verdict: report.verdict.as_str().to_string(),
        score: report.score,
        report_json: serde_json::to_string(report).unwrap_or_else(|_| "{}".into()),
        outcome: outcome.as_str().to_string(),
        trigger: trigger.to_string(),
    }
}

/// One line naming the strongest findings, for the 4xx a refused upload gets.
pub fn summary(report: &Report) -> String {
    let mut seen = std::collections::HashSet::new();
    let parts: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.weight > 0.0 && seen.insert(f.rule.clone()))
        .take(5)
        .map(|f| match f.line {
            Some(l) if !f.path.is_empty() => format!("{} ({}:{l})", f.rule, f.path),
            _ if !f.path.is_empty() => format!("{} ({})", f.rule, f.path),
            _ => f.rule.clone(),
        })
        .collect();
    parts.join(", ")
}
