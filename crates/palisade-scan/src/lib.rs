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

mod backend;
mod capabilities;
mod context;
pub mod format;
mod inventory;
mod metadata;
mod package;
mod python;
mod report;
mod reuse;
mod rules;
pub mod typo;

pub use metadata::typosquat_finding;

/// The scanner's readers of hostile bytes, one call each, for fuzz targets (`fuzz/`) and
/// property tests: none may panic or run away on any input. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::{Context, python};

    /// Every analysis of one Python file: the lexical gates, the parse in each context, as a
    /// `.pth` file, and the late parse of package-level facts. Returns the number of findings.
    pub fn python_file(source: &[u8]) -> usize {
        let _ = python::has_sink(source);
        let _ = python::worth_parsing(source);
        let _ = python::imports_of(source);
        let mut findings = 0;
        for ctx in [Context::Install, Context::Import, Context::Module, Context::TestOrDocs] {
            findings += python::analyze("pkg/mod.py", source, ctx, false, true).findings.len();
            let _ = python::parse_module("pkg/mod.py", source, ctx);
        }
        findings + python::analyze("x.pth", source, Context::Install, true, true).findings.len()
    }

    /// The core-metadata reader the scanner uses for typosquatting checks.
    pub fn metadata(raw: &[u8]) -> bool {
        crate::metadata::parse(raw).is_some()
    }
}

use std::path::{Path, PathBuf};
use std::time::Instant;

use palisade_archive::{Walk, WalkLimits};

pub use capabilities::{Capability, CapabilityUse, Earlier, EarlierFile, releases};
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

#[derive(Clone, Debug)]
pub struct ScanConfig {
    pub thresholds: Thresholds,
    /// Folders of extra `.yar`/`.yara` rules compiled next to the shipped pack.
    pub extra_rule_dirs: Vec<PathBuf>,
    /// Popular project names (normalized), most popular first; `None` uses the shipped list.
    pub popular: Option<Vec<String>>,
    pub limits: WalkLimits,
    /// Threads that analyse one archive's members (1: the walking thread alone). The server
    /// uses its cores so that one upload's scan finishes sooner; the CLI scans files in
    /// parallel instead.
    pub member_threads: usize,
    /// Memory for analyses of Python files kept by content and reused when a later scan meets
    /// the same bytes: a release's wheels repeat its sdist's modules, and a new version most of
    /// the last one's (0: every file is analysed afresh). Reports are the same either way.
    pub reuse_bytes: usize,
}

/// The default [`ScanConfig::reuse_bytes`]: a few thousand modules' analyses.
pub const DEFAULT_REUSE_BYTES: usize = 64 << 20;

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            extra_rule_dirs: Vec::new(),
            popular: None,
            limits: WalkLimits::default(),
            member_threads: 0,
            reuse_bytes: DEFAULT_REUSE_BYTES,
        }
    }
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
    reuse: reuse::Reuse,
    config: ScanConfig,
}

impl Scanner {
    pub fn new(config: ScanConfig) -> Result<Self, ScanError> {
        let rules = RuleSet::compile(&config.extra_rule_dirs)?;
        let typo = match &config.popular {
            Some(list) => typo::TypoIndex::new(list.iter().map(String::as_str)),
            None => typo::TypoIndex::shipped(),
        };
        Ok(Self { rules, typo, reuse: reuse::Reuse::new(config.reuse_bytes), config })
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
        let mut acc = Accumulator::new(name);
        let walk = self.walk(&mut acc, |visit| palisade_archive::walk_file(path, name, &self.config.limits, visit));
        self.finish(acc, walk, hosted, started)
    }

    pub fn scan_bytes(&self, data: &[u8], name: &str) -> Report {
        let started = Instant::now();
        let mut acc = Accumulator::new(name);
        let walk = self.walk(&mut acc, |visit| palisade_archive::walk_bytes(data, name, &self.config.limits, visit));
        self.finish(acc, walk, &[], started)
    }

    /// Walks the archive, analysing members on the walking thread or, with `member_threads`
    /// above 1, on helper threads too. Results carry their walk index and are merged in walk
    /// order, so the report does not depend on the number of threads.
    fn walk(&self, acc: &mut Accumulator, run: impl FnOnce(&mut dyn FnMut(&palisade_archive::Member)) -> Walk) -> Walk {
        let helpers = self.config.member_threads.saturating_sub(1);
        let is_sdist = acc.is_sdist;
        if helpers == 0 {
            let mut done = Vec::new();
            let walk = run(&mut |m| {
                let admitted = acc.admit(m.path, m.data);
                for (i, path, data, job) in admitted.flushed {
                    done.push((i, analyze_member(self, &path, &data, job, is_sdist)));
                }
                if let Some((i, job)) = admitted.current {
                    done.push((i, analyze_member(self, m.path, m.data, job, is_sdist)));
                }
            });
            for (i, path, data, job) in acc.settle_held() {
                done.push((i, analyze_member(self, &path, &data, job, is_sdist)));
            }
            acc.done.extend(done);
            return walk;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Task>(helpers * 4);
        let rx = std::sync::Mutex::new(rx);
        let results: std::sync::Mutex<Vec<(usize, MemberResult)>> = std::sync::Mutex::new(Vec::new());
        let work = |(index, path, data, job): Task| {
            let done = analyze_member(self, &path, &data, job, is_sdist);
            if let Ok(mut r) = results.lock() {
                r.push((index, done));
            }
        };
        let walk = std::thread::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|| {
                    loop {
                        let task = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok(task) = task else { return };
                        work(task);
                    }
                });
            }
            let walk = run(&mut |m| {
                let admitted = acc.admit(m.path, m.data);
                let current = admitted.current.map(|(i, job)| (i, m.path.to_string(), m.data.to_vec(), job));
                for task in admitted.flushed.into_iter().chain(current) {
                    // When the helpers are busy, the walking thread does the work itself.
                    if let Err(std::sync::mpsc::TrySendError::Full(task)) = tx.try_send(task) {
                        work(task);
                    }
                }
            });
            // Files still held are shared out like the rest.
            for task in acc.settle_held() {
                if let Err(std::sync::mpsc::TrySendError::Full(task)) = tx.try_send(task) {
                    work(task);
                }
            }
            drop(tx);
            // Then the walking thread helps empty the queue instead of waiting for the helpers.
            loop {
                let task = match rx.lock() {
                    Ok(r) => r.try_recv(),
                    Err(_) => break,
                };
                let Ok(task) = task else { break };
                work(task);
            }
            walk
        });
        acc.done.extend(results.into_inner().unwrap_or_default());
        walk
    }

    fn finish(&self, mut acc: Accumulator, walk: Walk, hosted: &[String], started: Instant) -> Report {
        let mut done = std::mem::take(&mut acc.done);
        done.sort_by_key(|(i, _)| *i);
        for (_, r) in done {
            acc.merge(r);
        }
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
        // Fail closed on what can run, not on test data: an archive nested under tests or docs
        // that cannot be read is a finding, unless a file that runs at install or import names it.
        let test_data_only = !walk.complete
            && !walk.failed_outside_nested
            && walk.unread_nested.iter().all(|p| context::classify(p, acc.is_sdist) == Context::TestOrDocs && !acc.entries_name(p));
        if test_data_only {
            for p in &walk.unread_nested {
                acc.findings.push(Finding::new(
                    "unread-test-data",
                    Severity::Low,
                    Context::TestOrDocs,
                    p,
                    None,
                    "",
                    "an archive among the tests or docs could not be read completely; nothing that runs at install or import \
                     names it, so it does not make the package suspicious",
                ));
            }
        } else if !walk.complete {
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
        let complete = walk.complete || test_data_only;
        acc.parse_imported_tests(&self.reuse);
        acc.parse_callers(&self.reuse);
        let py_files = std::mem::take(&mut acc.py_files);
        acc.findings.extend(package::findings(&py_files, acc.is_sdist));
        backend::reweigh(&mut acc.findings, &acc.backend);
        let meta = acc.metadata.take();
        acc.findings.extend(metadata::check(meta.as_ref(), &acc.filename, &self.typo, hosted, &acc.findings));
        acc.capabilities.extend(capabilities::of_findings(&acc.findings));
        let mut report = Report::new(acc.filename, acc.findings, &self.config.thresholds, complete);
        report.capabilities = capabilities::settle(acc.capabilities);
        if let Some(m) = meta {
            report.project = Some(m.name);
            report.version = Some(m.version);
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        report
    }
}

/// How much test and documentation code one package gets parsed (the rest is still matched
/// against the rules): malicious test files are small, honest test suites are large.
const TEST_PARSE_BUDGET: usize = 64 << 10;
/// Test files past the budget kept for a late parse if the package imports them.
const MAX_DEFERRED_BYTES: usize = 16 << 20;
/// Unparsed files kept for a late parse, should they call a function that acts. Reserved in walk
/// order by every file that may end up unparsed (past this, the rest are not kept), so that the
/// report does not depend on which thread finished first.
const MAX_LATER_BYTES: usize = 16 << 20;
/// Python files without a sink held back until the package is known to have one (past this,
/// they are analysed at once, parse included).
const MAX_HELD_BYTES: usize = 64 << 20;

/// Entry files kept to tell whether they name an unread nested archive.
const MAX_ENTRY_TEXT_BYTES: usize = 8 << 20;

/// A member to analyse: its walk index, path, bytes and what the walker decided.
type Task = (usize, String, Vec<u8>, Job);

/// What to analyse once a member is admitted: held files let go (with their bytes), and the
/// member itself unless it is held (its walk index; its bytes are the walker's, not copied).
struct Admitted {
    flushed: Vec<Task>,
    current: Option<(usize, Job)>,
}

/// Collects findings while the archive is walked.
struct Accumulator {
    filename: String,
    is_sdist: bool,
    findings: Vec<Finding>,
    metadata: Option<metadata::Meta>,
    /// Findings of rules that count fully only if the package uses the network somewhere.
    needs_network: Vec<usize>,
    package_has_network: bool,
    /// Python files' behaviour, for the package-level analysis at the end.
    py_files: Vec<package::PyFile>,
    /// Bytes of test and documentation code still to parse.
    test_parse_budget: usize,
    /// Test files not parsed for the budget, and their total size.
    deferred: Vec<(String, Vec<u8>)>,
    deferred_bytes: usize,
    /// Members handed out so far (the next walk index).
    next_index: usize,
    /// Analysed members by walk index, merged in that order at the end.
    done: Vec<(usize, MemberResult)>,
    /// Whether a file outside tests and docs runs programs, uses the network or executes code
    /// (see [`python::has_sink`]): until then Python files are held, unparsed.
    live: bool,
    held: Vec<Task>,
    held_bytes: usize,
    /// Module names of test and documentation files that have a sink.
    test_sinks: Vec<String>,
    /// Files not parsed (index into `py_files`) with their source, for [`Accumulator::parse_callers`].
    later: Vec<(usize, Vec<u8>)>,
    /// Bytes reserved so far for [`Accumulator::later`] (see [`MAX_LATER_BYTES`]).
    later_reserved: usize,
    /// The sdist's in-tree build backend, from its `pyproject.toml` (see [`backend`]).
    backend: Vec<String>,
    /// The files that run at install or import (`setup.py`, `__init__.py`, `.pth`), up to
    /// [`MAX_ENTRY_TEXT_BYTES`], to tell whether they name an archive that could not be read.
    entry_texts: Vec<Vec<u8>>,
    entry_text_bytes: usize,
    /// Some entry file was not kept for the bound: then every name counts as named.
    entry_texts_cut: bool,
    /// What the package can do (see [`capabilities`]).
    capabilities: Vec<CapabilityUse>,
}

impl Accumulator {
    fn new(name: &str) -> Self {
        let is_sdist = is_sdist(name);
        Self {
            filename: name.to_string(),
            is_sdist,
            findings: Vec::new(),
            metadata: None,
            needs_network: Vec::new(),
            package_has_network: false,
            py_files: Vec::new(),
            test_parse_budget: TEST_PARSE_BUDGET,
            deferred: Vec::new(),
            deferred_bytes: 0,
            next_index: 0,
            done: Vec::new(),
            live: false,
            held: Vec::new(),
            held_bytes: 0,
            test_sinks: Vec::new(),
            later: Vec::new(),
            later_reserved: 0,
            backend: Vec::new(),
            entry_texts: Vec::new(),
            entry_text_bytes: 0,
            entry_texts_cut: false,
            capabilities: Vec::new(),
        }
    }

    /// Takes one member in walk order and says what to analyse now: the order-dependent
    /// decisions (the metadata file, the test parse budget, holding files back) are made here;
    /// the analysis itself may run on another thread.
    fn admit(&mut self, path: &str, data: &[u8]) -> Admitted {
        let ctx = context::classify(path, self.is_sdist);
        if matches!(ctx, Context::Install | Context::Import) && (context::is_python(path) || context::is_pth(path)) {
            if self.entry_text_bytes + data.len() <= MAX_ENTRY_TEXT_BYTES {
                self.entry_text_bytes += data.len();
                self.entry_texts.push(data.to_vec());
            } else {
                self.entry_texts_cut = true;
            }
        }
        if metadata::is_metadata_file(path) && self.metadata.is_none() {
            self.metadata = metadata::parse(data);
            self.capabilities.extend(capabilities::of_metadata(path, data));
        }
        if backend::is_pyproject(path, self.is_sdist) && data.len() <= backend::MAX_PYPROJECT_BYTES {
            self.backend = backend::backend_paths(path, data);
        }
        // Tests and documentation weigh a fifth of runtime code, and large packages carry huge
        // test suites: past a budget their files get the rules and text checks, not the parse.
        let parse_allowed = ctx != Context::TestOrDocs || self.test_parse_budget >= data.len();
        if ctx == Context::TestOrDocs && context::is_python(path) {
            if parse_allowed {
                self.test_parse_budget -= data.len();
            } else if self.deferred_bytes + data.len() <= MAX_DEFERRED_BYTES {
                // Kept in case the package's own code imports it (a payload hidden as a test
                // module): then it is parsed at the end after all.
                self.deferred_bytes += data.len();
                self.deferred.push((path.to_string(), data.to_vec()));
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        // A module that imports and may go unparsed reserves room to be kept for a late parse
        // (entry files that import are always parsed).
        let may_keep = parse_allowed
            && context::is_python(path)
            && !matches!(ctx, Context::Install | Context::Import)
            && self.later_reserved + data.len() <= MAX_LATER_BYTES
            && memchr::memmem::find(data, b"import").is_some();
        if may_keep {
            self.later_reserved += data.len();
        }
        let job = Job { ctx, parse_allowed, may_keep };
        let now = Admitted { flushed: Vec::new(), current: Some((index, job)) };
        // Once the package can act nothing is held, and sinks no longer matter.
        if self.live {
            return now;
        }
        if !context::is_python(path) {
            // A `.pth` file runs at every interpreter start: with a sink, the package can act.
            if context::is_pth(path) && python::has_sink(data) {
                return self.go_live(now);
            }
            return now;
        }
        // Most small packages never run a program, open a connection or execute code: their
        // files cannot show behaviour, and parsing them is most of a scan's time. They are
        // held until a file with a sink shows up, then analysed in full after all.
        if python::has_sink(data) {
            if ctx == Context::TestOrDocs {
                self.test_sinks.push(path.to_string());
                return now;
            }
            return self.go_live(now);
        }
        if !parse_allowed || self.held_bytes + data.len() > MAX_HELD_BYTES {
            return now;
        }
        self.held_bytes += data.len();
        self.held.push((index, path.to_string(), data.to_vec(), job));
        Admitted { flushed: Vec::new(), current: None }
    }

    /// Whether a file that runs at install or import names the file at `path` (by its file
    /// name, as `open(...)`, `zipfile.ZipFile(...)` or a data-file lookup would).
    fn entries_name(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path).as_bytes();
        self.entry_texts_cut || name.is_empty() || self.entry_texts.iter().any(|t| memchr::memmem::find(t, name).is_some())
    }

    /// The package can act: the held files are analysed after all, before the current member.
    fn go_live(&mut self, now: Admitted) -> Admitted {
        self.live = true;
        self.held_bytes = 0;
        Admitted { flushed: std::mem::take(&mut self.held), ..now }
    }

    /// The files still held once the walk is over, to analyse: parsed if the package turned out
    /// to have a sink after all (a test module with one that an entry file reaches through
    /// imports), otherwise with the rules and text checks only, since nothing in them can act.
    fn settle_held(&mut self) -> Vec<Task> {
        if self.held.is_empty() {
            return Vec::new();
        }
        if !self.live && !self.test_sinks.is_empty() {
            // A test or documentation module with a sink counts if the package's entry files
            // reach it through imports, as the package-level analysis would follow them.
            let mut files: Vec<package::PyFile> = self
                .held
                .iter()
                .map(|(_, path, data, job)| package::PyFile {
                    path: path.clone(),
                    ctx: job.ctx,
                    facts: python::ModuleFacts { imports: python::imports_of(data), ..Default::default() },
                })
                .collect();
            let first_sink = files.len();
            files.extend(self.test_sinks.iter().map(|path| package::PyFile {
                path: path.clone(),
                ctx: Context::TestOrDocs,
                facts: python::ModuleFacts::default(),
            }));
            self.live = package::entries_reach(&files, first_sink, self.is_sdist);
        }
        let live = self.live;
        let mut held = std::mem::take(&mut self.held);
        for (_, _, _, job) in &mut held {
            job.parse_allowed &= live;
        }
        held
    }

    /// Parses the test files left out for the budget that the package's entry files import
    /// (by module name), so that a payload cannot hide behind a large test suite.
    fn parse_imported_tests(&mut self, reuse: &reuse::Reuse) {
        if self.deferred.is_empty() {
            return;
        }
        let mut imported: std::collections::HashSet<String> = std::collections::HashSet::new();
        for f in self.py_files.iter().filter(|f| matches!(f.ctx, Context::Install | Context::Import)) {
            for imp in &f.facts.imports {
                imported.extend(imp.module.rsplit('.').next().map(str::to_string));
                imported.extend(imp.names.iter().cloned());
            }
        }
        for (path, data) in std::mem::take(&mut self.deferred) {
            if !imported.contains(module_stem(&path)) {
                continue;
            }
            let facts = reuse.analyze(&path, &data, Context::TestOrDocs, false, true);
            // The text checks ran already, with the rules, when the file was walked.
            self.findings.extend(facts.findings.into_iter().filter(|f| !matches!(f.rule.as_str(), "py-long-line" | "py-hidden-code")));
            if facts.has_network {
                self.package_has_network = true;
            }
            if let Some(module) = facts.module {
                self.py_files.push(package::PyFile { path, ctx: Context::TestOrDocs, facts: module });
            }
        }
    }

    /// Adds one member's results (in walk order).
    fn merge(&mut self, done: MemberResult) {
        self.capabilities.extend(done.uses);
        if done.has_network {
            self.package_has_network = true;
        }
        // Rules that need network use are decided at the end, once the whole package is known:
        // the URL and the request often live in different files.
        for (finding, needs_network) in done.findings {
            if needs_network {
                self.needs_network.push(self.findings.len());
            }
            self.findings.push(finding);
        }
        if done.module.is_some()
            && let Some(src) = done.later
        {
            self.later.push((self.py_files.len(), src));
        }
        self.py_files.extend(done.module);
    }

    /// Parses the files left unparsed, since nothing in them can act, whose top level an entry
    /// file runs (it imports them) and that name a function of the package that does: the call
    /// may run with it (`__init__` imports `engine`, whose top level calls `driver.start()`).
    fn parse_callers(&mut self, reuse: &reuse::Reuse) {
        if self.later.is_empty() {
            return;
        }
        let acts = |caps: &Vec<python::Cap>| {
            caps.iter().any(|c| {
                matches!(
                    c,
                    python::Cap::Network | python::Cap::Process | python::Cap::DynamicExec | python::Cap::HostInfo | python::Cap::EnvAccess
                )
            })
        };
        let names: std::collections::HashSet<String> =
            self.py_files.iter().flat_map(|f| f.facts.fn_caps.iter()).filter(|(_, caps)| acts(caps)).map(|(n, _)| n.clone()).collect();
        if names.is_empty() {
            return;
        }
        let reached = package::reached_from_entries(&self.py_files, self.is_sdist);
        for (i, src) in std::mem::take(&mut self.later) {
            if !reached.contains(&i) || !python::any_word(&src, |w| std::str::from_utf8(w).is_ok_and(|w| names.contains(w))) {
                continue;
            }
            let Some(f) = self.py_files.get_mut(i) else { continue };
            if let Some(module) = reuse.parse_module(&f.path, &src, f.ctx) {
                f.facts = module;
            }
        }
    }
}

/// Whether a distribution's file name is a source distribution's (`.tar.gz`, `.zip`, ...),
/// as opposed to a wheel or an egg.
pub fn is_sdist(filename: &str) -> bool {
    let lower = filename.to_ascii_lowercase();
    lower.ends_with(".tar.gz") || lower.ends_with(".zip") || lower.ends_with(".tar.bz2") || lower.ends_with(".tgz")
}

/// The last part of a Python file's module name: `pkg/util.py` is `util`, and a package's
/// `pkg/tests/__init__.py` is `tests`.
fn module_stem(path: &str) -> &str {
    let mut parts = path.rsplit('/');
    let file = parts.next().unwrap_or(path);
    let stem = file.strip_suffix(".py").or_else(|| file.strip_suffix(".pyw")).unwrap_or(file);
    match (stem, parts.next()) {
        ("__init__", Some(dir)) => dir,
        _ => stem,
    }
}

/// What the walker decided about a member before handing it to be analysed.
#[derive(Clone, Copy)]
struct Job {
    ctx: Context,
    parse_allowed: bool,
    /// Whether the source may be kept for a late parse, should it go unparsed.
    may_keep: bool,
}

/// One member's findings (each with whether it counts only if the package uses the network),
/// its behaviour for the package-level analysis, and whether it uses the network.
struct MemberResult {
    findings: Vec<(Finding, bool)>,
    /// What the member shows the package can do.
    uses: Vec<CapabilityUse>,
    module: Option<package::PyFile>,
    has_network: bool,
    /// The source of a file left unparsed that imports, in case it calls a function that acts.
    later: Option<Vec<u8>>,
}

fn analyze_member(scanner: &Scanner, path: &str, data: &[u8], job: Job, is_sdist: bool) -> MemberResult {
    let Job { ctx, parse_allowed, may_keep } = job;
    let mut out = MemberResult {
        findings: Vec::new(),
        uses: capabilities::of_member(path, data, ctx, is_sdist),
        module: None,
        has_network: false,
        later: None,
    };
    let facts = (context::is_python(path) || context::is_pth(path))
        .then(|| scanner.reuse.analyze(path, data, ctx, context::is_pth(path), parse_allowed));
    let file_uses_network = facts.as_ref().is_some_and(|f| f.has_network);
    let file_runs_programs = facts.as_ref().is_some_and(|f| f.runs_programs);
    for hit in scanner.rules.scan(data) {
        let needs = hit.needs_network();
        let mut f = hit.into_finding(path, data, ctx, true);
        // A credential store read, or persistence set up, by a file that also uses the network:
        // a stealer or an implant, whatever file of the package it sits in.
        let raise_to = match f.rule.as_str() {
            "cred-browser-store" | "cred-discord-token" | "cred-crypto-wallet" if file_uses_network => Some(Severity::Critical),
            "win-persistence" if file_uses_network => Some(Severity::High),
            // A PowerShell stager kept by a file that starts programs: it runs it.
            "win-powershell-encoded" if file_runs_programs => Some(Severity::Critical),
            _ => None,
        };
        if let Some(sev) = raise_to
            && f.severity < sev
        {
            f.severity = sev;
            f.weight = sev.points() * ctx.weight();
            f.message.push_str(" (by a file that also uses the network, so weighed higher)");
        }
        // Protected code is a product's business in its modules; in code that runs at install
        // or import, nobody can read what it does there. A program that makes itself start at
        // login may offer that as a setting; an install or an import that does it asked nobody.
        if matches!(f.rule.as_str(), "obf-pyarmor" | "win-persistence")
            && matches!(ctx, Context::Install | Context::Import)
            && f.severity < Severity::High
        {
            f.severity = Severity::High;
            f.weight = Severity::High.points() * ctx.weight();
            f.message.push_str(" (in code that runs at install or import, so weighed high)");
        }
        out.findings.push((f, needs));
    }
    if let Some(facts) = facts {
        out.has_network = facts.has_network;
        out.findings.extend(facts.findings.into_iter().map(|f| (f, false)));
        out.module = facts.module.map(|module| package::PyFile { path: path.to_string(), ctx, facts: module });
        if facts.parse_later && may_keep {
            out.later = Some(data.to_vec());
        }
    }
    if is_sdist && let Some(kind) = context::native_executable(data) {
        out.findings.push((
            Finding::new(
                "native-binary-in-sdist",
                Severity::Low,
                ctx,
                path,
                None,
                kind,
                "a source distribution ships a compiled executable; sources should be built, not shipped prebuilt",
            ),
            false,
        ));
    }
    out
}
