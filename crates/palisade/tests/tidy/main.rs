//! Tidy: checks of the workspace's shape that `cargo test` runs, so that what ARCHITECTURE.md says
//! about the code stays true (the idea is rust-analyzer's `tidy` test). Each check reads the
//! workspace from source, says what it guards, and when it fails names the file to change.
//!
//! - `no_module_cycles`: no crate's modules depend on each other in a loop.
//! - `crate_graph_matches_architecture`: the crate graph in ARCHITECTURE.md is the manifests'.
//! - `no_unused_dependencies`: every declared dependency is named by the code that gets it.
//!
//! The source is read by a small lexer (`lex`), not a parser: it skips comments and literals and
//! sees paths, `mod` and `use` items, which is all these checks need.

mod deps;
mod lex;
mod modules;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use deps::{Member, Workspace};
use modules::{Tree, cycles};

/// Dependencies that a crate declares without naming them in its code, each with the reason:
/// `(crate, dependency key, why)`. Keep it short; the check fails on an entry that is no longer
/// needed.
const ALLOWED_UNUSED: &[(&str, &str, &str)] = &[];

/// How many of the places that make an edge a cycle report shows, by file and line.
const SITES_SHOWN: usize = 5;

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn workspace() -> Workspace {
    Workspace::load(&workspace_root()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every `.rs` file under `dirs` of a member, sorted, with paths relative to the workspace root.
fn rust_files(root: &Path, member: &Member, dirs: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        walk(&root.join(&member.dir).join(dir), &mut files);
    }
    files.sort();
    files.into_iter().map(|f| f.strip_prefix(root).map(Path::to_path_buf).unwrap_or(f)).collect()
}

/// The roots of a member's crate targets, as Cargo finds them without `[[bin]]`-style tables:
/// the library, the binaries, and each integration test, benchmark and example.
fn crate_roots(root: &Path, member: &Member) -> Vec<PathBuf> {
    let dir = root.join(&member.dir);
    let mut roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"].iter().map(|p| dir.join(p)).filter(|p| p.is_file()).collect();
    for folder in ["src/bin", "tests", "benches", "examples"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else { continue };
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "rs") {
                roots.push(path);
            } else if path.join("main.rs").is_file() {
                roots.push(path.join("main.rs"));
            }
        }
    }
    roots.sort();
    roots.into_iter().map(|f| f.strip_prefix(root).map(Path::to_path_buf).unwrap_or(f)).collect()
}

/// Guards: no module cycles, in any crate target of the workspace. Modules that depend on each
/// other in a loop cannot be understood, tested or moved into their own crate one at a time, and
/// a cycle is how a layer starts to know about the layer above it. Edges are counted between
/// siblings, rust-analyzer style (see `modules`): `crate::a::x` using `crate::b::y` is `a -> b`; a
/// child using its parent through `super::` is not an edge. To break a cycle, move what the
/// lower module needs down (into it, or into a module both use), or pass it in.
#[test]
fn no_module_cycles() {
    let root = workspace_root();
    let read = |path: &Path| std::fs::read_to_string(root.join(path)).ok();
    let mut report = String::new();
    for member in &workspace().members {
        for crate_root in crate_roots(&root, member) {
            let tree = Tree::load(&crate_root, &read).unwrap_or_else(|e| panic!("{e}"));
            let edges = tree.edges();
            let found = cycles(&edges);
            if found.is_empty() {
                continue;
            }
            let _ = writeln!(report, "\nmodule cycles in {} ({}):", member.name, crate_root.display());
            for cycle in &found {
                let _ = writeln!(report, "  {}", cycle.join(" -> "));
            }
            // Every place that makes an edge of a cycle: breaking the edge means changing all of them.
            let on_cycles: BTreeSet<(&String, &String)> = found.iter().flat_map(|c| c.iter().zip(c.iter().skip(1))).collect();
            let _ = writeln!(report, "  made by:");
            for (from, to) in on_cycles {
                let mut sites = edges[&(from.clone(), to.clone())].clone();
                sites.sort();
                sites.dedup();
                let _ = writeln!(report, "    {from} -> {to}:");
                for site in sites.iter().take(SITES_SHOWN) {
                    let _ = writeln!(report, "      {}:{} {}", site.file.display(), site.line, site.path);
                }
                if let Some(more) = sites.len().checked_sub(SITES_SHOWN).filter(|&n| n > 0) {
                    let _ = writeln!(report, "      and {more} more");
                }
            }
        }
    }
    assert!(report.is_empty(), "modules that depend on each other in a loop:\n{report}");
}

/// Guards: the crate graph documented in ARCHITECTURE.md (the block under `## Code map`) is the
/// one the manifests declare, edge for edge, so that the map a newcomer reads is the real one and
/// a new dependency between crates is a visible, reviewed change. Dev-dependencies are left out:
/// a test may use a crate above it.
#[test]
fn crate_graph_matches_architecture() {
    let ws = workspace();
    let doc_path = ws.root.join("ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    let documented = deps::documented_graph(&doc).unwrap_or_else(|e| panic!("{e}"));
    let manifest_of = |name: &str| {
        let member = ws.members.iter().find(|m| m.name == name);
        member.map_or_else(|| format!("{name}'s Cargo.toml"), |m| m.dir.join("Cargo.toml").display().to_string())
    };
    let problems = deps::compare_graphs(&documented, &ws.crate_graph(), &manifest_of);
    assert!(problems.is_empty(), "ARCHITECTURE.md and the manifests disagree:\n- {}", problems.join("\n- "));
}

/// Guards: every entry under a member's `[dependencies]` is named (`name::`, `use name`,
/// `extern crate name`) somewhere in its `src/`, and every `[dev-dependencies]` entry somewhere in
/// `src/`, `tests/`, `benches/` or `examples/`; and every `[workspace.dependencies]` entry is used by
/// a member. An unused dependency costs build time and widens what can break or be attacked
/// through the supply chain, and nothing else notices it. A dependency kept only for its features
/// goes on `ALLOWED_UNUSED` with the reason.
#[test]
fn no_unused_dependencies() {
    let ws = workspace();
    let mut problems = Vec::new();
    let roots_of = |member: &Member, dirs: &[&str]| -> BTreeSet<String> {
        let mut roots = BTreeSet::new();
        for file in rust_files(&ws.root, member, dirs) {
            let src = std::fs::read_to_string(ws.root.join(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let tokens = lex::tokenize(&src).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            roots.extend(deps::path_roots(&tokens).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
        }
        roots
    };
    let mut allowed_and_unused = BTreeSet::new();
    for member in &ws.members {
        let manifest = member.dir.join("Cargo.toml");
        let in_src = roots_of(member, &["src"]);
        let in_tests = roots_of(member, &["tests", "benches", "examples"]);
        let allowed = |key: &str| ALLOWED_UNUSED.iter().any(|(c, d, _)| *c == member.name && *d == key);
        for (section, list, used) in
            [("dependencies", &member.deps, &in_src), ("dev-dependencies", &member.dev_deps, &(&in_src | &in_tests))]
        {
            for dep in list {
                let name = dep.rust_name();
                if used.contains(&name) {
                    continue;
                }
                if allowed(&dep.key) {
                    allowed_and_unused.insert((member.name.clone(), dep.key.clone()));
                    continue;
                }
                let hint = if section == "dependencies" && in_tests.contains(&name) {
                    "only tests, benchmarks or examples name it: move it to [dev-dependencies]".to_string()
                } else {
                    "remove it, or, if it is there only for its features, add it to ALLOWED_UNUSED in crates/palisade/tests/tidy/main.rs with the reason".to_string()
                };
                problems.push(format!(
                    "{}: [{section}] {} is never used (no `{name}::`, `use {name}` or `extern crate {name}`): {hint}",
                    manifest.display(),
                    dep.key
                ));
            }
        }
    }
    for (krate, key, _) in ALLOWED_UNUSED {
        if !allowed_and_unused.contains(&(krate.to_string(), key.to_string())) {
            problems.push(format!("ALLOWED_UNUSED in crates/palisade/tests/tidy/main.rs lists {krate}: {key}, which {krate} now names in its code or no longer declares: remove the entry"));
        }
    }
    let used_keys: BTreeSet<&String> = ws.members.iter().flat_map(|m| &m.all_keys).collect();
    for key in ws.workspace_deps.iter().filter(|k| !used_keys.contains(k)) {
        problems.push(format!("Cargo.toml: [workspace.dependencies] {key} is used by no member: remove it"));
    }
    assert!(problems.is_empty(), "declared dependencies that nothing uses:\n- {}", problems.join("\n- "));
}
