//! Findings, reports and verdicts.

use std::collections::BTreeMap;

use palisade_archive::Anomaly;
use serde::{Deserialize, Serialize};

use crate::inventory::CapabilityUse;
use crate::{Context, Thresholds};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn points(self) -> f64 {
        match self {
            Severity::Info => 0.0,
            Severity::Low => 1.0,
            Severity::Medium => 3.0,
            Severity::High => 6.0,
            Severity::Critical => 10.0,
        }
    }

    /// One step less severe (info stays info).
    pub fn lower(self) -> Self {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium => Severity::Low,
            Severity::Low | Severity::Info => Severity::Info,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Clean,
    Suspicious,
    Malicious,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    /// Member path inside the archive ("" for the archive as a whole).
    pub path: String,
    pub line: Option<u32>,
    pub excerpt: String,
    pub message: String,
    /// Where the member runs (install, import, module, test/docs); scales the weight.
    pub context: Context,
    /// Points this finding contributes: severity points times the context's weight.
    pub weight: f64,
    /// Behaviour with no benign reading (see [`decisive`]): only such a finding lets a report
    /// reach `malicious`, the verdict that refuses an upload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decisive: bool,
}

impl Finding {
    pub fn new(rule: &str, severity: Severity, context: Context, path: &str, line: Option<u32>, excerpt: &str, message: &str) -> Self {
        Self {
            rule: rule.to_string(),
            severity,
            path: path.to_string(),
            line,
            excerpt: clip(excerpt, 200),
            message: message.to_string(),
            context,
            weight: severity.points() * context.weight(),
            decisive: false,
        }
    }
}

/// One line of at most `max` characters, for excerpts.
pub fn clip(s: &str, max: usize) -> String {
    let one: String = s.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one.chars().count() <= max { one } else { format!("{}…", one.chars().take(max).collect::<String>()) }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub file: String,
    pub verdict: Verdict,
    pub score: f64,
    pub findings: Vec<Finding>,
    pub project: Option<String>,
    pub version: Option<String>,
    /// Every member was read, but for archives among the tests or docs that nothing run at
    /// install or import names (an `unread-test-data` finding each).
    pub complete: bool,
    pub duration_ms: f64,
    /// What the distribution can do, for comparing a release with the ones before it
    /// ([`Report::compared_with`]). Always written, empty or not: reports stored before
    /// December 2026 lack the field, and the server scans such files again when it compares.
    #[serde(default)]
    pub capabilities: Vec<CapabilityUse>,
}

impl Report {
    /// The score counts each rule once, at its heaviest finding, so that a pattern repeated in
    /// a hundred files does not outweigh two different behaviours. `malicious` needs the
    /// malicious score and a [`decisive`] finding; short of that, a report is at most
    /// `suspicious` (quarantine for review), where a mistake costs a release, not a refusal.
    pub fn new(file: String, mut findings: Vec<Finding>, t: &Thresholds, complete: bool) -> Self {
        for f in &mut findings {
            f.decisive = decisive(f);
        }
        findings.sort_by(|a, b| b.weight.total_cmp(&a.weight).then_with(|| a.rule.cmp(&b.rule)).then_with(|| a.path.cmp(&b.path)));
        let mut best: BTreeMap<&str, f64> = BTreeMap::new();
        for f in &findings {
            let e = best.entry(f.rule.as_str()).or_insert(0.0);
            *e = e.max(f.weight);
        }
        // `+ 0.0` turns the empty sum's -0.0 into 0.0.
        let score = (best.values().sum::<f64>() * 100.0).round() / 100.0 + 0.0;
        let mut verdict = if score >= t.malicious && findings.iter().any(|f| f.decisive) {
            Verdict::Malicious
        } else if score >= t.suspicious.min(t.malicious) {
            Verdict::Suspicious
        } else {
            Verdict::Clean
        };
        if !complete && verdict == Verdict::Clean {
            verdict = Verdict::Suspicious;
        }
        Self { file, verdict, score, findings, project: None, version: None, complete, duration_ms: 0.0, capabilities: Vec::new() }
    }
}

/// Rules whose finding means behaviour with no benign reading wherever code runs (not in tests
/// or docs): secrets or a decoded command sent or run, what was downloaded executed, a shell
/// handed to a socket, malware obfuscators, Windows defence evasion.
const DECISIVE_ANYWHERE: &[&str] = &[
    "py-exfil-secret",
    "py-hidden-command",
    "py-network-exec",
    "py-drop-run",
    "py-remote-command",
    "dropper-reverse-shell",
    "obf-known-obfuscator",
    "win-uac-bypass",
    "win-defender-evasion",
];

/// Rules whose finding has no benign reading when the code runs at install or import, without
/// anyone calling it: host details sent out, a decoded payload executed, data posted to a bare
/// IP address or an interaction-catching service, remote code executed, a chat webhook's or
/// bot's secret token in `setup.py` or an `__init__`, browser password stores decrypted.
const DECISIVE_AT_INSTALL_OR_IMPORT: &[&str] = &[
    "py-install-exfil-hostinfo",
    "py-import-exfil-hostinfo",
    "py-decode-exec",
    "py-packed-exec",
    "py-exfil-raw-ip",
    "py-exfil-oob",
    "dropper-exec-remote-code",
    "win-powershell-encoded",
    "py-shell-download-exec",
    "exfil-discord-webhook",
    "exfil-telegram-bot",
    "cred-browser-store",
];

/// Whether a finding is decisive: a rule of the lists above, in code that runs where the list
/// says, at high severity or above once weighed (a rule lowered for lack of network use, or in
/// a build backend, is not).
pub fn decisive(f: &Finding) -> bool {
    if f.severity < Severity::High || f.weight <= 0.0 {
        return false;
    }
    match f.context {
        Context::TestOrDocs => false,
        Context::Install | Context::Import => {
            DECISIVE_ANYWHERE.contains(&f.rule.as_str()) || DECISIVE_AT_INSTALL_OR_IMPORT.contains(&f.rule.as_str())
        }
        Context::Module => DECISIVE_ANYWHERE.contains(&f.rule.as_str()),
    }
}

impl Report {
    /// Adds findings made outside the scanner (the server's check against hosted names) and
    /// recomputes score and verdict.
    /// The report without the findings of `rules`, its verdict recomputed.
    pub fn without_rules(self, rules: &[&str], t: &Thresholds) -> Self {
        if !self.findings.iter().any(|f| rules.contains(&f.rule.as_str())) {
            return self;
        }
        let findings = self.findings.into_iter().filter(|f| !rules.contains(&f.rule.as_str())).collect();
        let mut r = Report::new(self.file, findings, t, self.complete);
        r.project = self.project;
        r.version = self.version;
        r.duration_ms = self.duration_ms;
        r.capabilities = self.capabilities;
        r
    }

    pub fn with_findings(self, extra: Vec<Finding>, t: &Thresholds) -> Self {
        if extra.is_empty() {
            return self;
        }
        let mut findings = self.findings;
        findings.extend(extra);
        let mut r = Report::new(self.file, findings, t, self.complete);
        r.project = self.project;
        r.version = self.version;
        r.duration_ms = self.duration_ms;
        r.capabilities = self.capabilities;
        r
    }
}

pub fn anomaly_finding(a: &Anomaly) -> Finding {
    use Anomaly::*;
    let severity = match a {
        // What extractors would disagree on is how a payload hides from an index.
        UnsafePath { .. } | LinkOutside { .. } | HeaderMismatch { .. } | Bomb { .. } => Severity::High,
        Duplicate { .. }
        | CaseCollision { .. }
        | ThroughLink { .. }
        | LinkLoop { .. }
        | BrokenHardlink { .. }
        | TrailingData { .. }
        | TarHeader { .. } => Severity::High,
        SpecialFile { .. } | UndecodableName { .. } | Encrypted { .. } | TooDeep { .. } => Severity::Medium,
        TooManyEntries { .. } | TooManyPaths { .. } | TooLarge { .. } | Unreadable { .. } => Severity::Medium,
        // Content that disguises its format is an evasion technique, not an accident.
        FormatMismatch { .. } => Severity::High,
        Link { .. } => Severity::Low,
    };
    // Inside a nested archive (test fixtures of archive libraries ship hostile ones) nothing is
    // extracted by installers: an ambiguity there is worth noting, not weighing.
    let nested_ambiguity = a.path().contains('!')
        && matches!(
            a,
            UnsafePath { .. }
                | LinkOutside { .. }
                | LinkLoop { .. }
                | BrokenHardlink { .. }
                | ThroughLink { .. }
                | SpecialFile { .. }
                | TarHeader { .. }
                | Duplicate { .. }
                | CaseCollision { .. }
                | HeaderMismatch { .. }
                | UndecodableName { .. }
                | TrailingData { .. }
        );
    let severity = if nested_ambiguity { Severity::Low } else { severity };
    // Anomalies of members under tests/ or docs/ (fixture archives) weigh as those members do.
    let ctx = if a.path().is_empty() {
        Context::Install
    } else {
        match crate::context::classify(a.path(), false) {
            Context::TestOrDocs => Context::TestOrDocs,
            _ => Context::Install,
        }
    };
    Finding::new(a.id(), severity, ctx, a.path(), None, "", &a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rule: &str, sev: Severity, ctx: Context) -> Finding {
        Finding::new(rule, sev, ctx, "p", None, "", "m")
    }

    #[test]
    fn score_counts_each_rule_once() {
        let t = Thresholds::default();
        let r = Report::new("x".into(), vec![f("a", Severity::High, Context::Install), f("a", Severity::High, Context::Install)], &t, true);
        assert_eq!(r.score, 6.0);
        assert_eq!(r.verdict, Verdict::Suspicious);
        let r =
            Report::new("x".into(), vec![f("a", Severity::High, Context::Install), f("b", Severity::Medium, Context::Import)], &t, true);
        assert_eq!(r.verdict, Verdict::Suspicious);
        // A score past the malicious threshold without a decisive finding quarantines.
        let r = Report::new("x".into(), vec![f("a", Severity::Critical, Context::Install)], &t, true);
        assert_eq!(r.verdict, Verdict::Suspicious);
        let r = Report::new("x".into(), vec![f("py-decode-exec", Severity::Critical, Context::Import)], &t, true);
        assert_eq!(r.verdict, Verdict::Malicious);
        assert!(r.findings[0].decisive);
        // The same rule in library code has a benign reading (code generators).
        let r = Report::new(
            "x".into(),
            vec![f("py-decode-exec", Severity::Critical, Context::Module), f("b", Severity::High, Context::Install)],
            &t,
            true,
        );
        assert_eq!(r.verdict, Verdict::Suspicious);
        let r = Report::new(
            "x".into(),
            vec![f("py-exfil-secret", Severity::Critical, Context::Module), f("b", Severity::High, Context::Install)],
            &t,
            true,
        );
        assert_eq!(r.verdict, Verdict::Malicious);
        let r = Report::new("x".into(), vec![f("a", Severity::High, Context::TestOrDocs)], &t, true);
        assert_eq!(r.verdict, Verdict::Clean);
    }

    #[test]
    fn incomplete_is_never_clean() {
        let r = Report::new("x".into(), vec![], &Thresholds::default(), false);
        assert_eq!(r.verdict, Verdict::Suspicious);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip(&"x".repeat(300), 5), "xxxxx…");
    }
}
