//! What a release can do, and what a new release can do that the last ones could not.
//!
//! A trusted project that suddenly gains a payload (a stolen token, a poisoned build: the
//! ultralytics and LiteLLM incidents) looks like any other release of it to rules that judge one
//! file at a time. Its capabilities change, though: code that runs at install, the network,
//! programs, dynamic code, obfuscation or credential stores where there were none, a new
//! dependency, a new entry point, a new `.pth` file. Every scan takes an inventory of them
//! ([`CapabilityUse`], kept in the report); [`changes`] turns what is new against the last
//! releases into findings, each naming the files. Such findings can make a release
//! `suspicious` (quarantine for review), never `malicious` on their own: they are news, not
//! evidence of intent.

use std::collections::BTreeMap;

use crate::Thresholds;
use crate::context::{self, Context};
pub use crate::inventory::{Capability, CapabilityUse};
use crate::python::{self, SinkKind};
use crate::report::{Finding, Report, Severity, clip};

fn use_at(capability: Capability, item: &str, path: &str, data: &[u8], offset: Option<usize>) -> CapabilityUse {
    let (line, excerpt) = match offset {
        Some(at) => {
            let (line, text) = crate::rules::line_at(data, at);
            (Some(line), clip(&text, 160))
        }
        None => (None, String::new()),
    };
    CapabilityUse { capability, item: item.to_string(), path: path.to_string(), line, excerpt }
}

/// Files named per capability (and item), at most: enough to point a reviewer at them.
const MAX_USES_PER_KEY: usize = 20;

/// Distinct items (dependencies, entry points, `.pth` files) kept per capability: a hostile
/// metadata file with a hundred thousand `Requires-Dist` lines must not become a report of that
/// size, nor a comparison of as many findings.
const MAX_ITEMS_PER_CAPABILITY: usize = 256;

/// Files and markers that give away a reach for credentials: key stores, token files, browser
/// password databases. Naming one is not an attack (deploy tools read `~/.ssh`), but a release
/// that starts to is news.
const CREDENTIAL_MARKERS: &[&[u8]] = &[
    b".ssh/id_",
    b"id_rsa",
    b"id_ed25519",
    b".aws/credentials",
    b".pypirc",
    b".git-credentials",
    b".docker/config.json",
    b".kube/config",
    b".npmrc",
    b"Login Data",
    b"wallet.dat",
    b"AWS_SECRET_ACCESS_KEY",
    b"GITHUB_TOKEN",
];

/// Rules whose findings in code that runs (not tests or docs) mean obfuscated or hidden code.
const OBFUSCATION_RULES: &[&str] = &[
    "py-hidden-code",
    "py-packed-exec",
    "py-decode-exec",
    "py-hidden-command",
    "py-hidden-endpoint",
    "py-unicode-identifiers",
    "py-confusable-names",
    "py-hidden-import",
    "obf-exec-import-chain",
];

fn is_obfuscation_rule(rule: &str) -> bool {
    OBFUSCATION_RULES.contains(&rule) || rule.starts_with("obf-")
}

fn is_credential_rule(rule: &str) -> bool {
    rule.starts_with("cred-") || rule == "py-exfil-secret"
}

/// The capabilities one member shows by its bytes: programs, the network and dynamic code in
/// Python files that run (not tests or docs), code run at install, credential markers, `.pth`
/// files and entry points.
pub(crate) fn of_member(path: &str, data: &[u8], ctx: Context, is_sdist: bool) -> Vec<CapabilityUse> {
    let mut out = Vec::new();
    if context::is_pth(path) && ctx != Context::TestOrDocs && !path.contains('!') {
        let name = path.rsplit('/').next().unwrap_or(path);
        out.push(use_at(Capability::PthFile, name, path, data, None));
        // `site` executes the lines of a `.pth` file that start with `import`.
        let exec_line = data.split(|b| *b == b'\n').scan(0usize, |at, l| {
            let start = *at;
            *at += l.len() + 1;
            Some((start, l))
        });
        for (start, l) in exec_line {
            if l.starts_with(b"import ") || l.starts_with(b"import\t") {
                out.push(use_at(Capability::InstallExec, "", path, data, Some(start)));
                break;
            }
        }
        return out;
    }
    if is_entry_points_file(path, is_sdist) {
        out.extend(entry_points_ini(path, data));
        return out;
    }
    if crate::backend::is_pyproject(path, is_sdist) {
        if data.len() <= crate::backend::MAX_PYPROJECT_BYTES {
            out.extend(entry_points_pyproject(path, data));
        }
        return out;
    }
    if !context::is_python(path) || ctx == Context::TestOrDocs {
        return out;
    }
    let kinds = python::sink_kinds(data);
    for &(kind, at) in &kinds {
        let capability = match kind {
            SinkKind::Process => Capability::Process,
            SinkKind::Network => Capability::Network,
            SinkKind::DynamicCode => Capability::DynamicCode,
        };
        out.push(use_at(capability, "", path, data, Some(at)));
    }
    if ctx == Context::Install
        && let Some(&(_, at)) = kinds.iter().min_by_key(|(_, at)| *at)
    {
        out.push(use_at(Capability::InstallExec, "", path, data, Some(at)));
    }
    if let Some(at) = CREDENTIAL_MARKERS.iter().filter_map(|m| memchr::memmem::find(data, m)).min() {
        out.push(use_at(Capability::CredentialAccess, "", path, data, Some(at)));
    }
    out
}

/// `*.dist-info/entry_points.txt` of a wheel, `*.egg-info/entry_points.txt` of an sdist.
fn is_entry_points_file(path: &str, is_sdist: bool) -> bool {
    if path.contains('!') {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    match (is_sdist, parts.as_slice()) {
        (false, [d, "entry_points.txt"]) => d.ends_with(".dist-info"),
        (true, [_, d, "entry_points.txt"]) | (true, [_, _, d, "entry_points.txt"]) => d.ends_with(".egg-info"),
        _ => false,
    }
}

/// Entry points of the INI form: `[group]` then `name = object` lines.
fn entry_points_ini(path: &str, data: &[u8]) -> Vec<CapabilityUse> {
    let mut out = Vec::new();
    let mut group = String::new();
    let mut offset = 0usize;
    for raw in data.split(|b| *b == b'\n') {
        let start = offset;
        offset += raw.len() + 1;
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = g.trim().to_string();
            continue;
        }
        if let Some((name, _)) = line.split_once('=')
            && !group.is_empty()
        {
            let item = format!("{group}: {}", name.trim());
            out.push(use_at(Capability::EntryPoint, &item, path, data, Some(start)));
        }
    }
    out
}

/// Entry points declared in an sdist's `pyproject.toml`: `[project.scripts]`,
/// `[project.gui-scripts]`, `[project.entry-points.GROUP]`.
fn entry_points_pyproject(path: &str, data: &[u8]) -> Vec<CapabilityUse> {
    let Ok(text) = std::str::from_utf8(data) else { return Vec::new() };
    let Ok(doc) = text.parse::<toml::Table>() else { return Vec::new() };
    let Some(project) = doc.get("project").and_then(|p| p.as_table()) else { return Vec::new() };
    let mut groups: Vec<(String, &toml::Table)> = Vec::new();
    for (key, group) in [("scripts", "console_scripts"), ("gui-scripts", "gui_scripts")] {
        if let Some(t) = project.get(key).and_then(|t| t.as_table()) {
            groups.push((group.to_string(), t));
        }
    }
    if let Some(eps) = project.get("entry-points").and_then(|t| t.as_table()) {
        for (g, t) in eps {
            if let Some(t) = t.as_table() {
                groups.push((g.clone(), t));
            }
        }
    }
    let mut out = Vec::new();
    for (group, table) in groups {
        for name in table.keys() {
            let offset = memchr::memmem::find(data, name.as_bytes());
            out.push(use_at(Capability::EntryPoint, &format!("{group}: {name}"), path, data, offset));
        }
    }
    out
}

/// The dependencies a metadata file declares (`Requires-Dist`), by normalized name.
pub(crate) fn of_metadata(path: &str, data: &[u8]) -> Vec<CapabilityUse> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    for raw in data.split(|b| *b == b'\n') {
        let start = offset;
        offset += raw.len() + 1;
        // The headers end at the first blank line; the description follows.
        if raw.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        let line = String::from_utf8_lossy(raw);
        let Some((key, value)) = line.split_once(':') else { continue };
        if !key.trim().eq_ignore_ascii_case("requires-dist") {
            continue;
        }
        let name: String = value.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
        if name.is_empty() {
            continue;
        }
        let item = palisade_dist::normalize(&name);
        if !out.iter().any(|u: &CapabilityUse| u.item == item) {
            out.push(use_at(Capability::Dependency, &item, path, data, Some(start)));
        }
    }
    out
}

/// The capabilities that findings show: obfuscation and reaches for credentials, in code that
/// runs.
pub(crate) fn of_findings(findings: &[Finding]) -> Vec<CapabilityUse> {
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| f.context != Context::TestOrDocs && !f.path.is_empty()) {
        let capability = if is_obfuscation_rule(&f.rule) {
            Capability::Obfuscation
        } else if is_credential_rule(&f.rule) {
            Capability::CredentialAccess
        } else {
            continue;
        };
        out.push(CapabilityUse { capability, item: String::new(), path: f.path.clone(), line: f.line, excerpt: f.excerpt.clone() });
    }
    out
}

/// Sorts the inventory, one use per file and key, at most [`MAX_USES_PER_KEY`] files per key.
pub(crate) fn settle(mut uses: Vec<CapabilityUse>) -> Vec<CapabilityUse> {
    uses.sort_by(|a, b| a.key().cmp(&b.key()).then_with(|| a.path.cmp(&b.path)).then_with(|| a.line.cmp(&b.line)));
    uses.dedup_by(|a, b| a.key() == b.key() && a.path == b.path);
    let mut per_key: BTreeMap<(Capability, String), usize> = BTreeMap::new();
    uses.retain(|u| {
        let n = per_key.entry((u.capability, u.item.clone())).or_insert(0);
        *n += 1;
        *n <= MAX_USES_PER_KEY
    });
    // Sorted by capability then item, so each capability's items come together.
    let mut items: BTreeMap<Capability, (usize, String)> = BTreeMap::new();
    uses.retain(|u| {
        let (count, last) = items.entry(u.capability).or_insert((0, String::new()));
        if *count == 0 || *last != u.item {
            *count += 1;
            last.clone_from(&u.item);
        }
        *count <= MAX_ITEMS_PER_CAPABILITY
    });
    uses
}

/// An earlier release the new one is compared with: a label for messages (its version) and its
/// inventory (the union over the files compared).
pub struct Earlier {
    pub label: String,
    pub uses: Vec<CapabilityUse>,
}

/// One distribution of an earlier release, for [`releases`].
#[derive(Clone, Debug)]
pub struct EarlierFile {
    /// The release it belongs to (its version), the label of messages.
    pub release: String,
    pub filename: String,
    pub uses: Vec<CapabilityUse>,
}

/// The earlier releases to compare a new distribution with, in the order their files come
/// (latest first), at most `keep`. Like is compared with like: an sdist with the sdists of a
/// release (its `setup.py` and tests are in no wheel), a wheel with the wheels, and with all of
/// a release's files only when it has none of the new one's kind.
pub fn releases(new_filename: &str, files: Vec<EarlierFile>, keep: usize) -> Vec<Earlier> {
    let sdist = crate::is_sdist(new_filename);
    let mut order: Vec<String> = Vec::new();
    let mut by_release: BTreeMap<String, Vec<EarlierFile>> = BTreeMap::new();
    for f in files {
        if !order.contains(&f.release) {
            order.push(f.release.clone());
        }
        by_release.entry(f.release.clone()).or_default().push(f);
    }
    order
        .into_iter()
        .take(keep)
        .map(|release| {
            let files = by_release.remove(&release).unwrap_or_default();
            let same_kind = files.iter().any(|f| crate::is_sdist(&f.filename) == sdist);
            let uses = files.into_iter().filter(|f| !same_kind || crate::is_sdist(&f.filename) == sdist).flat_map(|f| f.uses).collect();
            Earlier { label: release, uses }
        })
        .collect()
}

impl Report {
    /// The report with findings for what this release can do that none of `earlier` (the last
    /// releases, latest first) could; score and verdict recomputed. Such findings can make a
    /// report `suspicious`, never `malicious` (none is decisive).
    pub fn compared_with(self, earlier: &[Earlier], t: &Thresholds) -> Self {
        let news = changes(&self.capabilities, earlier);
        self.with_findings(news, t)
    }
}

/// Findings for the capabilities of `new` that none of `earlier` shows (the latest first). A
/// capability present in any of them is not news. Nothing is raised without an earlier release.
pub fn changes(new: &[CapabilityUse], earlier: &[Earlier]) -> Vec<Finding> {
    if earlier.is_empty() {
        return Vec::new();
    }
    let known: std::collections::HashSet<(Capability, &str)> = earlier.iter().flat_map(|e| e.uses.iter().map(CapabilityUse::key)).collect();
    let mut fresh: BTreeMap<(Capability, &str), Vec<&CapabilityUse>> = BTreeMap::new();
    for u in new.iter().filter(|u| !known.contains(&u.key())) {
        fresh.entry(u.key()).or_default().push(u);
    }
    let labels: Vec<&str> = earlier.iter().map(|e| e.label.as_str()).collect();
    let since = match labels.as_slice() {
        [one] => format!("release {one}"),
        many => format!("releases {}", many.join(", ")),
    };
    fresh
        .into_iter()
        .map(|((capability, item), uses)| {
            let first = uses[0];
            let files: Vec<&str> = uses.iter().take(5).map(|u| u.path.as_str()).collect();
            let more = if uses.len() > files.len() { format!(" and {} more", uses.len() - files.len()) } else { String::new() };
            let what = if item.is_empty() { capability.describe().to_string() } else { format!("{} ({item})", capability.describe()) };
            let message = format!(
                "new since {since}: this release {what}, which none of them did; in {}{more}. A trusted project that suddenly \
                 gains a capability is how a stolen account or a poisoned build shows",
                files.join(", ")
            );
            let points = capability.points();
            let severity = if points >= Severity::Medium.points() { Severity::Medium } else { Severity::Low };
            let ctx = match capability {
                Capability::InstallExec | Capability::PthFile => Context::Install,
                _ => Context::Import,
            };
            let mut f = Finding::new(&capability.rule(), severity, ctx, &first.path, first.line, &first.excerpt, &message);
            f.weight = points;
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(uses: &[CapabilityUse]) -> Vec<(Capability, String)> {
        uses.iter().map(|u| (u.capability, u.item.clone())).collect()
    }

    #[test]
    fn members_show_what_they_do() {
        let setup = b"import subprocess\nsubprocess.run(['make'])\n";
        let u = of_member("p-1.0/setup.py", setup, Context::Install, true);
        assert_eq!(caps(&u), vec![(Capability::Process, String::new()), (Capability::InstallExec, String::new())]);
        assert_eq!(u[0].line, Some(1));
        let lib = b"import requests\n\ndef f():\n    return open(os.path.expanduser('~/.aws/credentials')).read()\n";
        let u = of_member("pkg/mod.py", lib, Context::Module, false);
        assert_eq!(caps(&u), vec![(Capability::Network, String::new()), (Capability::CredentialAccess, String::new())]);
        assert_eq!(u[1].line, Some(4));
        // Tests and docs do not count.
        assert!(of_member("pkg/tests/test_x.py", lib, Context::TestOrDocs, false).is_empty());
        let pth = of_member("evil.pth", b"/some/path\nimport os; os.system('x')\n", Context::Install, false);
        assert_eq!(caps(&pth), vec![(Capability::PthFile, "evil.pth".to_string()), (Capability::InstallExec, String::new())]);
        assert_eq!(pth[1].line, Some(2));
    }

    #[test]
    fn entry_points_and_dependencies() {
        let eps = b"[console_scripts]\ntool = pkg.cli:main\n\n[pkg.plugins]\nx = pkg.x\n";
        let u = of_member("pkg-1.0.dist-info/entry_points.txt", eps, Context::TestOrDocs, false);
        assert_eq!(
            caps(&u),
            vec![(Capability::EntryPoint, "console_scripts: tool".into()), (Capability::EntryPoint, "pkg.plugins: x".into())]
        );
        let py = b"[project]\nname = \"p\"\n[project.scripts]\ntool = \"p:main\"\n[project.entry-points.\"p.hooks\"]\nh = \"p:h\"\n";
        let u = of_member("p-1.0/pyproject.toml", py, Context::Module, true);
        assert_eq!(caps(&u), vec![(Capability::EntryPoint, "console_scripts: tool".into()), (Capability::EntryPoint, "p.hooks: h".into())]);
        let meta = b"Metadata-Version: 2.1\nName: p\nRequires-Dist: Requests (>=2)\nRequires-Dist: foo_bar; extra == 'x'\n\nRequires-Dist: not-a-header\n";
        let u = of_metadata("p-1.0.dist-info/METADATA", meta);
        assert_eq!(caps(&u), vec![(Capability::Dependency, "requests".into()), (Capability::Dependency, "foo-bar".into())]);
    }

    fn used(capability: Capability, item: &str, path: &str) -> CapabilityUse {
        CapabilityUse { capability, item: item.into(), path: path.into(), line: Some(3), excerpt: "x".into() }
    }

    #[test]
    fn only_what_no_recent_release_had_is_news() {
        let old = vec![used(Capability::Network, "", "p/net.py"), used(Capability::Dependency, "requests", "METADATA")];
        let older = vec![used(Capability::Process, "", "p/run.py")];
        let new = vec![
            used(Capability::Network, "", "p/other.py"),
            used(Capability::Process, "", "p/run.py"),
            used(Capability::DynamicCode, "", "p/a.py"),
            used(Capability::DynamicCode, "", "p/b.py"),
            used(Capability::Dependency, "requests", "METADATA"),
            used(Capability::Dependency, "evil", "METADATA"),
        ];
        let earlier = [Earlier { label: "1.1".into(), uses: old }, Earlier { label: "1.0".into(), uses: older }];
        let f = changes(&new, &earlier);
        let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, vec!["release-new-dynamic-code", "release-new-dependency"]);
        assert!(f[0].message.contains("p/a.py, p/b.py") && f[0].message.contains("releases 1.1, 1.0"), "{}", f[0].message);
        assert!(f[1].message.contains("(evil)"), "{}", f[1].message);
        assert_eq!(f[0].weight, 2.0);
        // The first release has nothing to be compared with.
        assert!(changes(&new, &[]).is_empty());
    }

    #[test]
    fn releases_compare_like_with_like() {
        let file = |release: &str, filename: &str, path: &str| EarlierFile {
            release: release.into(),
            filename: filename.into(),
            uses: vec![used(Capability::Network, "", path)],
        };
        let files = vec![
            file("2.0", "p-2.0-py3-none-any.whl", "w2"),
            file("2.0", "p-2.0.tar.gz", "s2"),
            file("1.9", "p-1.9-py3-none-any.whl", "w19"),
            file("1.8", "p-1.8.tar.gz", "s18"),
            file("1.7", "p-1.7.tar.gz", "s17"),
        ];
        let paths = |e: &Earlier| e.uses.iter().map(|u| u.path.clone()).collect::<Vec<_>>();
        let r = releases("p-2.1.tar.gz", files, 3);
        assert_eq!(r.iter().map(|e| e.label.as_str()).collect::<Vec<_>>(), vec!["2.0", "1.9", "1.8"]);
        // The sdist of 2.0; 1.9 has no sdist, so its wheel; 1.8's sdist.
        assert_eq!(paths(&r[0]), vec!["s2"]);
        assert_eq!(paths(&r[1]), vec!["w19"]);
        assert_eq!(paths(&r[2]), vec!["s18"]);
    }

    #[test]
    fn settle_keeps_one_use_per_file_and_bounds_the_list() {
        let mut uses: Vec<CapabilityUse> = (0..30).map(|i| used(Capability::Network, "", &format!("p/m{i:02}.py"))).collect();
        uses.push(used(Capability::Network, "", "p/m00.py"));
        let s = settle(uses);
        assert_eq!(s.len(), MAX_USES_PER_KEY);
        assert_eq!(s[0].path, "p/m00.py");
        // A hostile metadata file's thousands of dependencies are cut to a bounded list.
        let meta: String = (0..5000).map(|i| format!("Requires-Dist: dep{i:05}\n")).collect();
        let deps = settle(of_metadata("p-1.0.dist-info/METADATA", format!("Name: p\n{meta}").as_bytes()));
        assert_eq!(deps.len(), MAX_ITEMS_PER_CAPABILITY);
        assert_eq!(deps[0].item, "dep00000");
        let mixed = settle(vec![used(Capability::Network, "", "a.py"), used(Capability::Dependency, "x", "M")]);
        assert_eq!(mixed.len(), 2);
    }
}
