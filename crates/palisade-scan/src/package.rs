//! Package-level analysis: what runs when a package installs or is imported is not only the
//! code of `setup.py` and `__init__.py`. Importing a module runs its top level, and calling an
//! imported function runs its body. This follows both, from each entry file (setup.py at
//! install, every `__init__.py` at import) through the package's own modules, and judges the
//! combined behaviour with the same rules as a single file.

use std::collections::{HashMap, HashSet};

use crate::Context;
use crate::python::{Cap, Ev, ModuleFacts, behaviour};
use crate::report::Finding;

/// One Python file of the archive, after its own analysis.
pub struct PyFile {
    pub path: String,
    pub ctx: Context,
    pub facts: ModuleFacts,
}

/// How far imports are followed from an entry file, and how many modules at most.
const MAX_DEPTH: usize = 4;
const MAX_MODULES: usize = 64;

/// Findings for behaviour that only shows when the package's modules are put together.
pub fn findings(files: &[PyFile], is_sdist: bool) -> Vec<Finding> {
    let modules = ModuleMap::new(files, is_sdist);
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if f.ctx != Context::Install && f.ctx != Context::Import {
            continue;
        }
        if f.path.contains('!') {
            continue;
        }
        let install = f.ctx == Context::Install;
        let reached = modules.reached_from(files, i, install);
        // The entry's own calls that run now (all of setup.py; the top level of `__init__`).
        let own: Vec<(Vec<Cap>, Ev)> = f
            .facts
            .calls
            .iter()
            .filter(|c| install || c.top_level)
            .map(|c| (c.caps.clone(), ev(&f.path, c.line, &c.excerpt, c.indirect, &c.caps, c.hidden)))
            .collect();
        // What each other module contributes: its top level if the entry imports it (directly
        // or not), and the functions of it that the entry or an imported top level calls. Each
        // module is judged together with the entry, never with a third module: behaviour is
        // one piece of code, and unrelated corners of a large package must not add up.
        let mut contributions: HashMap<usize, Vec<(Vec<Cap>, Ev)>> = HashMap::new();
        for &m in &reached {
            let mf = &files[m];
            for c in mf.facts.calls.iter().filter(|c| c.top_level) {
                contributions.entry(m).or_default().push((c.caps.clone(), ev(&mf.path, c.line, &c.excerpt, c.indirect, &c.caps, c.hidden)));
            }
        }
        for &caller in std::iter::once(&i).chain(reached.iter()) {
            let cf = &files[caller];
            for (name, line, top) in &cf.facts.called {
                // All of setup.py runs; elsewhere only calls at the top level.
                let runs = *top || (install && caller == i);
                if !runs {
                    continue;
                }
                if let Some((m, caps)) = modules.function(files, caller, name) {
                    let excerpt =
                        cf.facts.calls.iter().find(|c| c.line == *line).map(|c| c.excerpt.clone()).unwrap_or_else(|| format!("{name}()"));
                    contributions.entry(m).or_default().push((caps.clone(), ev(&cf.path, *line, &excerpt, true, caps, false)));
                }
            }
        }
        let mut best: Vec<Finding> = Vec::new();
        let mut order: Vec<usize> = contributions.keys().copied().collect();
        order.sort_unstable();
        for m in order {
            let theirs = &contributions[&m];
            let pick = |cap: Cap| -> Option<(Ev, bool)> {
                let mut hits = own
                    .iter()
                    .map(|(c, e)| (c, e, false))
                    .chain(theirs.iter().map(|(c, e)| (c, e, true)))
                    .filter(|(c, _, _)| c.contains(&cap));
                let first = hits.next();
                first
                    .filter(|(_, e, _)| !e.indirect)
                    .or_else(|| hits.find(|(_, e, _)| !e.indirect))
                    .or(first)
                    .map(|(_, e, t)| (e.clone(), t))
            };
            let net = pick(Cap::Network);
            let run = pick(Cap::Process).or_else(|| pick(Cap::DynamicExec));
            let host = pick(Cap::HostInfo).or_else(|| pick(Cap::EnvAccess));
            // Only what the other module adds: the entry's own findings stand already.
            if ![&net, &run, &host].iter().any(|e| e.as_ref().is_some_and(|(_, theirs)| *theirs)) {
                continue;
            }
            for finding in
                behaviour(f.ctx, &f.path, net.map(|x| x.0), run.map(|x| x.0), host.map(|x| x.0), false, Some(files[m].path.as_str()))
            {
                // The heaviest finding of each rule, over the modules reached.
                match best.iter_mut().find(|b| b.rule == finding.rule) {
                    Some(b) if finding.weight > b.weight => *b = finding,
                    Some(_) => {}
                    None => best.push(finding),
                }
            }
        }
        out.extend(best);
    }
    out
}

/// Whether an entry file (setup.py, an `__init__.py`) reaches any of the files from index
/// `targets_from` on through imports, as far as [`findings`] follows them.
pub fn entries_reach(files: &[PyFile], targets_from: usize, is_sdist: bool) -> bool {
    reached_from_entries(files, is_sdist).iter().any(|&m| m >= targets_from)
}

/// The files whose top level runs when an entry file (setup.py, an `__init__.py`) runs, through
/// imports, as far as [`findings`] follows them.
pub fn reached_from_entries(files: &[PyFile], is_sdist: bool) -> HashSet<usize> {
    let modules = ModuleMap::new(files, is_sdist);
    files
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.ctx, Context::Install | Context::Import))
        .flat_map(|(i, f)| modules.reached_from(files, i, f.ctx == Context::Install))
        .collect()
}

fn ev(path: &str, line: u32, excerpt: &str, indirect: bool, caps: &[Cap], hidden: bool) -> Ev {
    Ev { path: path.to_string(), line, excerpt: excerpt.to_string(), indirect, process: caps.contains(&Cap::Process), hidden }
}

/// The archive's Python files by dotted module name.
struct ModuleMap {
    by_name: HashMap<String, usize>,
    /// Each file's own module name, and whether it is a package (`__init__.py`).
    names: Vec<Option<(String, bool)>>,
}

impl ModuleMap {
    fn new(files: &[PyFile], is_sdist: bool) -> Self {
        let mut by_name = HashMap::new();
        let mut names = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let name = module_name(&f.path, is_sdist);
            if let Some((n, _)) = &name {
                // src/ and lib/ layouts import without the folder; keep the shortest spelling.
                for alias in [n.strip_prefix("src."), n.strip_prefix("lib."), Some(n.as_str())].into_iter().flatten() {
                    by_name.entry(alias.to_string()).or_insert(i);
                }
            }
            names.push(name);
        }
        Self { by_name, names }
    }

    fn name_of(&self, i: usize) -> Option<&str> {
        let (n, _) = self.names[i].as_ref()?;
        Some(n.strip_prefix("src.").or_else(|| n.strip_prefix("lib.")).unwrap_or(n))
    }

    /// The package a file's relative imports start from.
    fn package_of(&self, i: usize) -> Option<String> {
        let (_, is_pkg) = self.names[i].as_ref()?;
        let n = self.name_of(i)?;
        if *is_pkg { Some(n.to_string()) } else { Some(n.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default()) }
    }

    /// The module an import in file `from` names (`.x`, `..y.z`, `pkg.mod`), if it is part of the archive.
    fn resolve(&self, from: usize, module: &str) -> Option<usize> {
        let dots = module.len() - module.trim_start_matches('.').len();
        let rest = &module[dots..];
        let full = if dots == 0 {
            rest.to_string()
        } else {
            let mut base = self.package_of(from)?;
            for _ in 1..dots {
                base = base.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
            }
            match (base.is_empty(), rest.is_empty()) {
                (true, _) => rest.to_string(),
                (false, true) => base,
                (false, false) => format!("{base}.{rest}"),
            }
        };
        self.by_name.get(&full).copied().filter(|&m| m != from).or_else(|| {
            // An absolute import of a sibling, as setup.py and scripts do.
            if dots == 0 {
                let pkg = self.package_of(from)?;
                if pkg.is_empty() { None } else { self.by_name.get(&format!("{pkg}.{rest}")).copied().filter(|&m| m != from) }
            } else {
                None
            }
        })
    }

    /// Modules whose top level runs when file `entry` runs: what it imports (at its top level,
    /// or anywhere in setup.py), and what those import at theirs.
    fn reached_from(&self, files: &[PyFile], entry: usize, install: bool) -> Vec<usize> {
        let mut seen: HashSet<usize> = HashSet::from([entry]);
        let mut out = Vec::new();
        let mut frontier = vec![entry];
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for &m in &frontier {
                for imp in files[m].facts.imports.iter().filter(|imp| imp.top || (install && m == entry)) {
                    let mut targets: Vec<usize> = self.resolve(m, &imp.module).into_iter().collect();
                    // `from . import x` / `from pkg import x` may import the submodule x.
                    for n in imp.names.iter().filter(|n| n.as_str() != "*") {
                        let sub = if imp.module.ends_with('.') { format!("{}{n}", imp.module) } else { format!("{}.{n}", imp.module) };
                        targets.extend(self.resolve(m, &sub));
                    }
                    for t in targets {
                        if out.len() < MAX_MODULES && seen.insert(t) {
                            out.push(t);
                            next.push(t);
                        }
                    }
                }
            }
            frontier = next;
        }
        out
    }

    /// The module and summary of an imported function that file `caller` calls as `name`
    /// (`mod.f` after alias resolution, or a bare `f` from a star import).
    fn function<'f>(&self, files: &'f [PyFile], caller: usize, name: &str) -> Option<(usize, &'f Vec<Cap>)> {
        let lookup = |m: usize, f: &str| files[m].facts.fn_caps.get(f).map(|caps| (m, caps));
        if let Some((module, f)) = name.rsplit_once('.') {
            // After alias resolution `from .m import f` reads `m.f`, without the dots.
            for candidate in [module.to_string(), format!(".{module}")] {
                if let Some(m) = self.resolve(caller, &candidate)
                    && let Some(hit) = lookup(m, f)
                {
                    return Some(hit);
                }
            }
            return None;
        }
        files[caller]
            .facts
            .imports
            .iter()
            .filter(|imp| imp.names.iter().any(|n| n == "*"))
            .filter_map(|imp| self.resolve(caller, &imp.module))
            .find_map(|m| lookup(m, name))
    }
}

/// The dotted module name of an archive member, and whether it is a package's `__init__`.
/// Members of nested archives and non-identifier paths have none.
fn module_name(path: &str, is_sdist: bool) -> Option<(String, bool)> {
    if path.contains('!') {
        return None;
    }
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if is_sdist && parts.len() > 1 {
        parts.remove(0);
    }
    let file = parts.pop()?;
    let stem = file.strip_suffix(".py")?;
    let is_pkg = stem == "__init__";
    if !is_pkg {
        parts.push(stem);
    }
    if parts.is_empty() {
        // A package `__init__.py` at the root of a wheel imports as the empty name.
        return is_pkg.then(|| (String::new(), true));
    }
    let identifier = |p: &&str| !p.starts_with(|c: char| c.is_ascii_digit()) && p.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !parts.iter().all(identifier) {
        return None;
    }
    Some((parts.join("."), is_pkg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name("demo-1.0/demo/__init__.py", true), Some(("demo".into(), true)));
        assert_eq!(module_name("demo-1.0/src/demo/util.py", true), Some(("src.demo.util".into(), false)));
        assert_eq!(module_name("demo/util.py", false), Some(("demo.util".into(), false)));
        assert_eq!(module_name("demo-1.0/setup.py", true), Some(("setup".into(), false)));
        assert_eq!(module_name("demo-1.0/demo/data-files/x.py", true), None);
        assert_eq!(module_name("demo-1.0/a.zip!b.py", true), None);
    }
}
