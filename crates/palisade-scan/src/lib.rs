//! Static malware scanning of Python distributions.
//!
//! Bytes in, verdict out: nothing from a package is ever executed, imported or built. A scan
//! walks the archive (bounded, through `palisade-archive`), and for every member combines three
//! kinds of evidence into findings:
//!
//! - **archive structure**: unsafe paths, links out of the tree, zip parser confusion, bombs;
//!   an archive that cannot be read completely is never clean (fail closed);
//! - **YARA-X rules** (`rules/*.yar`, plus operator folders): indicators such as hard-coded
//!   webhooks, credential stores, encoded PowerShell, known obfuscators;
//! - **Python-aware heuristics** (`python`): a real parser (tree-sitter) resolves imports and
//!   aliases, classifies calls into capabilities (process, network, dynamic code, decoding, host
//!   information, file writes), follows decode-to-exec chains, and weighs everything by where it
//!   runs: `setup.py` and `.pth` files run at install, package `__init__` at import, tests and
//!   docs hardly matter;
//! - **metadata**: typosquatting against popular and hosted projects, dependency-confusion tells.
//!
//! The verdict comes from the score through thresholds in [`ScanConfig`].

mod context;
pub mod format;
mod metadata;
mod python;
mod report;
mod rules;
pub mod typo;

pub use metadata::typosquat_finding;

use std::path::{Path, PathBuf};
use std::time::Instant;

use palisade_archive::{Walk, WalkLimits};

pub use context::Context;
pub use report::{Finding, Report, Severity, Verdict};
pub use rules::{RuleError, RuleSet, check_rules_dir};

/// Scores at which a report becomes suspicious or malicious.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Thresholds {
    pub suspicious: f64,
    pub malicious: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { suspicious: 5.0, malicious: 10.0 }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ScanConfig {
    pub thresholds: Thresholds,
    /// Folders of extra `.yar`/`.yara` rules compiled next to the shipped pack.
    pub extra_rule_dirs: Vec<PathBuf>,
    /// Popular project names (normalized), most popular first; `None` uses the shipped list.
    pub popular: Option<Vec<String>>,
    pub limits: WalkLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Rules(#[from] RuleError),
}

/// A compiled scanner, built once and shared by all threads.
pub struct Scanner {
    rules: RuleSet,
    typo: typo::TypoIndex,
    config: ScanConfig,
}

impl Scanner {
    pub fn new(config: ScanConfig) -> Result<Self, ScanError> {
        let rules = RuleSet::compile(&config.extra_rule_dirs)?;
        let typo = match &config.popular {
            Some(list) => typo::TypoIndex::new(list.iter().map(String::as_str)),
            None => typo::TypoIndex::shipped(),
        };
        Ok(Self { rules, typo, config })
    }

    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    pub fn rule_count(&self) -> usize {
        self.rules.count()
    }

    /// Scans the distribution at `path`; `name` is its filename (for format and kind).
    pub fn scan_path(&self, path: &Path, name: &str) -> Report {
        self.scan_path_with(path, name, &[])
    }

    /// Like [`Scanner::scan_path`], also checking the project name against `hosted` names
    /// (normalized) for typosquatting.
    pub fn scan_path_with(&self, path: &Path, name: &str, hosted: &[String]) -> Report {
        let started = Instant::now();
        let mut acc = Accumulator::new(self, name);
        let walk = palisade_archive::walk_file(path, name, &self.config.limits, &mut |m| acc.member(m));
        self.finish(acc, walk, hosted, started)
    }

    pub fn scan_bytes(&self, data: &[u8], name: &str) -> Report {
        let started = Instant::now();
        let mut acc = Accumulator::new(self, name);
        let walk = palisade_archive::walk_bytes(data, name, &self.config.limits, &mut |m| acc.member(m));
        self.finish(acc, walk, &[], started)
    }

    fn finish(&self, mut acc: Accumulator, walk: Walk, hosted: &[String], started: Instant) -> Report {
        if !acc.package_has_network {
            for &i in &acc.needs_network {
                if let Some(f) = acc.findings.get_mut(i) {
                    f.severity = Severity::Low;
                    f.weight = Severity::Low.points() * f.context.weight();
                    f.message.push_str(" (nothing in the package uses the network, so weighed low)");
                }
            }
        }
        for a in &walk.anomalies {
            acc.findings.push(report::anomaly_finding(a));
        }
        if !walk.complete {
            acc.findings.push(Finding::new(
                "scan-incomplete",
                Severity::High,
                Context::Install,
                "",
                None,
                "",
                "the archive could not be read completely, so it cannot be called clean",
            ));
        }
        let meta = acc.metadata.take();
        acc.findings.extend(metadata::check(meta.as_ref(), &acc.filename, &self.typo, hosted, &acc.findings));
        let mut report = Report::new(acc.filename, acc.findings, &self.config.thresholds, walk.complete);
        if let Some(m) = meta {
            report.project = Some(m.name);
            report.version = Some(m.version);
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        report
    }
}

/// Collects findings while the archive is walked.
struct Accumulator<'s> {
    scanner: &'s Scanner,
    filename: String,
    is_sdist: bool,
    findings: Vec<Finding>,
    metadata: Option<metadata::Meta>,
    /// Findings of rules that count fully only if the package uses the network somewhere.
    needs_network: Vec<usize>,
    package_has_network: bool,
}

impl<'s> Accumulator<'s> {
    fn new(scanner: &'s Scanner, name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        let is_sdist = lower.ends_with(".tar.gz") || lower.ends_with(".zip") || lower.ends_with(".tar.bz2") || lower.ends_with(".tgz");
        Self {
            scanner,
            filename: name.to_string(),
            is_sdist,
            findings: Vec::new(),
            metadata: None,
            needs_network: Vec::new(),
            package_has_network: false,
        }
    }

    fn member(&mut self, m: &palisade_archive::Member) {
        let ctx = context::classify(m.path, self.is_sdist);
        if metadata::is_metadata_file(m.path) && self.metadata.is_none() {
            self.metadata = metadata::parse(m.data);
        }
        let yara_hits = self.scanner.rules.scan(m.data);
        let is_python = context::is_python(m.path);
        let facts =
            if is_python || context::is_pth(m.path) { Some(python::analyze(m.path, m.data, ctx, context::is_pth(m.path))) } else { None };
        if facts.as_ref().is_some_and(|f| f.has_network()) {
            self.package_has_network = true;
        }
        // Rules that need network use are decided at the end, once the whole package is known:
        // the URL and the request often live in different files.
        for hit in yara_hits {
            if hit.needs_network() {
                self.needs_network.push(self.findings.len());
            }
            self.findings.push(hit.into_finding(m.path, m.data, ctx, true));
        }
        if let Some(f) = facts {
            self.findings.extend(f.findings);
        }
        if self.is_sdist
            && let Some(kind) = context::native_executable(m.data)
        {
            self.findings.push(Finding::new(
                "native-binary-in-sdist",
                Severity::Low,
                ctx,
                m.path,
                None,
                kind,
                "a source distribution ships a compiled executable; sources should be built, not shipped prebuilt",
            ));
        }
    }
}
