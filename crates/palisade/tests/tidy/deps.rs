//! The workspace's manifests: which crates depend on which, the crate graph ARCHITECTURE.md
//! documents, and the names a crate's sources use as path roots.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::lex::{Kind, Token};
use crate::modules::use_tree;

/// Packages whose library is not named after the package, so that their code says another name.
/// The name to look for otherwise is the package's with `-` turned into `_`.
const LIB_NAMES: &[(&str, &str)] = &[("md-5", "md5")];

/// One `[dependencies]` (or dev-, or target-specific) entry of a member's manifest.
#[derive(Debug, Clone)]
pub struct Dep {
    /// The key in the manifest: the name the code uses when the entry renames its package.
    pub key: String,
    /// The package it stands for (`package = ".."`, here or in `[workspace.dependencies]`).
    pub package: String,
}

impl Dep {
    /// The name a source file uses for this dependency: `tokio::`, `use md5`, `extern crate foo`.
    pub fn rust_name(&self) -> String {
        if self.key == self.package
            && let Some((_, lib)) = LIB_NAMES.iter().find(|(package, _)| *package == self.package)
        {
            return lib.to_string();
        }
        self.key.replace('-', "_")
    }
}

/// A workspace member, from its `Cargo.toml`.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    /// The member's folder, relative to the workspace root (`crates/palisade-store`).
    pub dir: PathBuf,
    /// `[dependencies]`, including `[target.'cfg(..)'.dependencies]`.
    pub deps: Vec<Dep>,
    pub dev_deps: Vec<Dep>,
    /// Every dependency key in any section, build-dependencies too: what the member takes from
    /// `[workspace.dependencies]`.
    pub all_keys: BTreeSet<String>,
}

pub struct Workspace {
    pub root: PathBuf,
    pub members: Vec<Member>,
    /// The keys of the root manifest's `[workspace.dependencies]`.
    pub workspace_deps: BTreeSet<String>,
}

impl Workspace {
    /// Reads the root manifest and every `crates/*/Cargo.toml` (the root's `members = ["crates/*"]`).
    pub fn load(root: &Path) -> Result<Workspace, String> {
        let root_manifest = read_toml(&root.join("Cargo.toml"))?;
        let members_glob = root_manifest.get("workspace").and_then(|w| w.get("members")).and_then(|m| m.as_array());
        let expected = [toml::Value::from("crates/*")];
        if members_glob.map(|m| m.as_slice()) != Some(&expected[..]) {
            return Err("Cargo.toml: the tidy test reads members from `crates/*`; teach it the new `members` list".to_string());
        }
        let ws_table = root_manifest.get("workspace").and_then(|w| w.get("dependencies")).and_then(|d| d.as_table());
        let ws_table = ws_table.cloned().unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
            .map_err(|e| format!("crates/: {e}"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.join("Cargo.toml").is_file())
            .collect();
        dirs.sort();
        let mut members = Vec::new();
        for dir in dirs {
            let manifest = read_toml(&dir.join("Cargo.toml"))?;
            let dir = dir.strip_prefix(root).unwrap_or(&dir).to_path_buf();
            let name = manifest.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
            let name = name.ok_or_else(|| format!("{}/Cargo.toml: no package name", dir.display()))?.to_string();
            let mut deps = entries(manifest.get("dependencies"), &ws_table);
            let mut dev_deps = entries(manifest.get("dev-dependencies"), &ws_table);
            let mut all_keys = BTreeSet::new();
            all_keys.extend(entries(manifest.get("build-dependencies"), &ws_table).into_iter().map(|d| d.key));
            for target in manifest.get("target").and_then(|t| t.as_table()).into_iter().flat_map(|t| t.values()) {
                deps.extend(entries(target.get("dependencies"), &ws_table));
                dev_deps.extend(entries(target.get("dev-dependencies"), &ws_table));
                all_keys.extend(entries(target.get("build-dependencies"), &ws_table).into_iter().map(|d| d.key));
            }
            all_keys.extend(deps.iter().chain(&dev_deps).map(|d| d.key.clone()));
            members.push(Member { name, dir, deps, dev_deps, all_keys });
        }
        Ok(Workspace { root: root.to_path_buf(), members, workspace_deps: ws_table.keys().cloned().collect() })
    }

    /// The normal dependencies between members: `palisade-store -> {palisade-dist}`. Every member
    /// is a key, leaves with an empty set.
    pub fn crate_graph(&self) -> Graph {
        let names: BTreeSet<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        self.members
            .iter()
            .map(|m| {
                let deps = m.deps.iter().filter(|d| names.contains(d.package.as_str())).map(|d| d.package.clone()).collect();
                (m.name.clone(), deps)
            })
            .collect()
    }
}

fn read_toml(path: &Path) -> Result<toml::Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The entries of one dependency table, with the package each stands for.
fn entries(table: Option<&toml::Value>, workspace: &toml::Table) -> Vec<Dep> {
    let package_of = |key: &str, value: &toml::Value| {
        let own = value.get("package").and_then(|p| p.as_str());
        let inherited = || workspace.get(key).and_then(|w| w.get("package")).and_then(|p| p.as_str());
        let from_workspace = value.get("workspace").and_then(|w| w.as_bool()) == Some(true);
        own.or_else(|| if from_workspace { inherited() } else { None }).unwrap_or(key).to_string()
    };
    let Some(table) = table.and_then(|t| t.as_table()) else { return Vec::new() };
    table.iter().map(|(key, value)| Dep { key: key.clone(), package: package_of(key, value) }).collect()
}

/// Which crates depend on which: crate name to the names of its dependencies.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The words introducing the crate graph in ARCHITECTURE.md, under `## Code map`.
pub const GRAPH_INTRO: &str = "The crate graph, checked by the tidy test:";

/// Reads the fenced block that follows [`GRAPH_INTRO`] in the `## Code map` section: one line per
/// crate, `crate -> dep, dep`, with nothing after `->` for a crate that depends on no other.
pub fn documented_graph(markdown: &str) -> Result<Graph, String> {
    let mut lines = markdown.lines().enumerate().skip_while(|(_, l)| l.trim() != "## Code map");
    if lines.next().is_none() {
        return Err("ARCHITECTURE.md has no `## Code map` section".to_string());
    }
    let mut lines = lines.take_while(|(_, l)| !l.starts_with("## "));
    if !lines.any(|(_, l)| l.trim() == GRAPH_INTRO) {
        return Err(format!("ARCHITECTURE.md: no line {GRAPH_INTRO:?} in `## Code map`, followed by the crate graph in a fenced block"));
    }
    let mut lines = lines.skip_while(|(_, l)| l.trim().is_empty());
    if !lines.next().is_some_and(|(_, l)| l.trim_start().starts_with("```")) {
        return Err(format!("ARCHITECTURE.md: a fenced block (```) must follow {GRAPH_INTRO:?}"));
    }
    let mut graph = Graph::new();
    let mut closed = false;
    for (n, line) in lines {
        let line_no = n + 1;
        if line.trim_start().starts_with("```") {
            closed = true;
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, deps)) = line.split_once("->") else {
            return Err(format!("ARCHITECTURE.md:{line_no}: expected `crate -> dep, dep`, found {line:?}"));
        };
        let deps: BTreeSet<String> = deps.split(',').map(str::trim).filter(|d| !d.is_empty()).map(String::from).collect();
        if graph.insert(name.trim().to_string(), deps).is_some() {
            return Err(format!("ARCHITECTURE.md:{line_no}: {} is listed twice in the crate graph", name.trim()));
        }
    }
    if !closed {
        return Err("ARCHITECTURE.md: the crate graph's fenced block is not closed".to_string());
    }
    Ok(graph)
}

/// Every difference between the documented graph and the manifests, as a sentence that says
/// where to fix it. `manifest_of` names the member's manifest (`crates/x/Cargo.toml`).
pub fn compare_graphs(documented: &Graph, actual: &Graph, manifest_of: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut problems = Vec::new();
    let where_doc = "ARCHITECTURE.md's crate graph (the block under `## Code map`)";
    for name in documented.keys().filter(|n| !actual.contains_key(*n)) {
        problems.push(format!("{where_doc} lists {name}, which is not a workspace crate: remove its line"));
    }
    for (name, deps) in actual {
        let Some(listed) = documented.get(name) else {
            let line = format!("{name} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "));
            problems.push(format!("{where_doc} has no line for {name}: add `{}`", line.trim_end()));
            continue;
        };
        for dep in deps.difference(listed) {
            problems.push(format!(
                "{name} -> {dep} is missing from {where_doc}: {} depends on {dep} under [dependencies]; \
                 add the edge to the `{name} -> ..` line (and to the diagram), or remove the dependency",
                manifest_of(name)
            ));
        }
        for dep in listed.difference(deps) {
            problems.push(format!(
                "{name} -> {dep} is in {where_doc}, but {} has no such [dependencies] entry; \
                 remove the edge from the `{name} -> ..` line (and from the diagram), or add the dependency",
                manifest_of(name)
            ));
        }
    }
    problems
}

/// The names that `tokens` use as the first segment of a path: `name::..` in code, `use name..`
/// (in every branch of a `use` tree) and `extern crate name`. A dependency that is not among them
/// is not used by that source.
pub fn path_roots(tokens: &[Token]) -> Result<BTreeSet<String>, String> {
    let mut roots = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        let next = |n: usize| tokens.get(i + n);
        if t.is_ident("use") && !next(1).is_some_and(|t| t.is_punct("<")) {
            let end = (i..tokens.len()).find(|&j| tokens[j].is_punct(";")).ok_or_else(|| format!("line {}: `use` without `;`", t.line))?;
            let paths = use_tree(&tokens[i + 1..end]).map_err(|e| format!("line {}: {e}", t.line))?;
            for (path, _) in paths {
                let first = path.iter().find(|s| *s != "::");
                roots.extend(first.cloned());
            }
            i = end + 1;
            continue;
        }
        if t.is_ident("extern")
            && next(1).is_some_and(|t| t.is_ident("crate"))
            && let Some(name) = next(2).filter(|t| t.kind == Kind::Ident)
        {
            roots.insert(name.text.to_string());
        }
        let is_head = i == 0 || !tokens[i - 1].is_punct("::");
        // `name::item`, but not a turbofish (`x.parse::<T>()`): a crate takes no generic arguments.
        if t.kind == Kind::Ident && is_head && next(1).is_some_and(|t| t.is_punct("::")) && next(2).is_some_and(|t| t.kind == Kind::Ident) {
            roots.insert(t.text.to_string());
        }
        i += 1;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::tokenize;

    fn check_graph(markdown: &str, expected: &str) {
        let shown = match documented_graph(markdown) {
            Ok(graph) => graph
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.iter().cloned().collect::<Vec<_>>().join(" ")))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(shown, expected.trim());
    }

    #[test]
    fn graph_block() {
        let doc = "# A\n## Code map\n\n```\ndiagram\n```\n\nThe crate graph, checked by the tidy test:\n\n```text\nbin -> lib, core\nlib -> core\n\ncore ->\n```\n## Next\n";
        check_graph(doc, "bin: core lib\ncore: \nlib: core");
        check_graph(
            "## Code map\n```\nx -> y\n```\n",
            "error: ARCHITECTURE.md: no line \"The crate graph, checked by the tidy test:\" in `## Code map`, followed by the crate graph in a fenced block",
        );
        check_graph(
            "## Code map\nThe crate graph, checked by the tidy test:\n```\nx -> y\nx ->\n```\n",
            "error: ARCHITECTURE.md:5: x is listed twice in the crate graph",
        );
        check_graph(
            "## Code map\nThe crate graph, checked by the tidy test:\n```\nx, y\n```\n",
            "error: ARCHITECTURE.md:4: expected `crate -> dep, dep`, found \"x, y\"",
        );
    }

    #[test]
    fn graph_differences_name_the_edge_and_the_file() {
        let graph = |lines: &[(&str, &[&str])]| -> Graph {
            lines.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
        };
        let documented = graph(&[("bin", &["lib"]), ("lib", &[]), ("gone", &[])]);
        let actual = graph(&[("bin", &["core"]), ("lib", &[]), ("core", &[])]);
        let problems = compare_graphs(&documented, &actual, &|name| format!("crates/{name}/Cargo.toml"));
        let problems = problems.join("\n");
        for expected in [
            "lists gone, which is not a workspace crate",
            "has no line for core: add `core ->`",
            "bin -> core is missing from ARCHITECTURE.md's crate graph (the block under `## Code map`): crates/bin/Cargo.toml depends on core",
            "bin -> lib is in ARCHITECTURE.md's crate graph (the block under `## Code map`), but crates/bin/Cargo.toml has no such",
        ] {
            assert!(problems.contains(expected), "{expected:?} not in:\n{problems}");
        }
    }

    fn check_roots(src: &str, expected: &[&str]) {
        let tokens = tokenize(src).unwrap();
        let roots = path_roots(&tokens).unwrap();
        assert_eq!(roots.iter().map(String::as_str).collect::<Vec<_>>(), expected, "roots of {src:?}");
    }

    #[test]
    fn roots() {
        check_roots("use serde::{Deserialize, Serialize}; use ::md5; extern crate alloc;", &["alloc", "md5", "serde"]);
        check_roots("use {tokio::spawn, hex};", &["hex", "tokio"]);
        check_roots("fn f() { tracing::info!(\"x\"); a::b::c(); x.y::<T>(); }", &["a", "tracing"]);
        check_roots("// rayon::join\nlet s = \"toml::from_str\";", &[]);
        check_roots("fn f() -> impl Sized + use<> { std::iter::empty::<u8>() }", &["std"]);
    }

    #[test]
    fn rust_names() {
        let dep = |key: &str, package: &str| Dep { key: key.to_string(), package: package.to_string() }.rust_name();
        assert_eq!(dep("tower-http", "tower-http"), "tower_http");
        assert_eq!(dep("md-5", "md-5"), "md5");
        assert_eq!(dep("digest-md5", "md-5"), "digest_md5");
    }
}
