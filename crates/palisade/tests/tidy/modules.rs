//! The module graph of one crate target, read from its source text, and the cycles in it.
//!
//! The tree comes from `mod` items (`mod a;` finds `a.rs` or `a/mod.rs`; `mod a { .. }` is inline).
//! Every path a module writes is a reference: `use` trees (`use crate::a::{b, c::d}`) and paths in
//! code (`crate::a::f(..)`, `super::b::T`, `config::load()` after `use crate::config`). A reference
//! is resolved the way rustc would for the simple cases: `crate`, `self` and `super` first, then
//! child modules and the names a module imports (globs included), one segment at a time; a path
//! into another crate resolves to nothing.
//!
//! Granularity, as in rust-analyzer: a reference from module `x` to module `y` counts as an edge
//! between the two siblings under their closest common ancestor that contain them. So
//! `crate::a::p` using `crate::b::q` is the edge `a -> b` in the crate root's graph, and
//! `crate::a::p` using `crate::a::q` the edge `p -> q` in `a`'s graph. A module using its own
//! descendants, or a child using its ancestors (`super::`, `crate::AppState` defined at the root),
//! is no edge: that is how a module tree is meant to be read.
//!
//! Not seen: paths that macros build, and paths inside strings (`#[serde(with = "crate::x")]`).
//! `#[path]` on a module is refused rather than guessed at.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use crate::lex::{Kind, Token, tokenize};

/// One module of the tree; index 0 is the crate root.
#[derive(Debug)]
struct Module {
    name: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    imports: Vec<Import>,
    refs: Vec<Ref>,
}

/// A name a `use` item brings into its module: `binding` is `None` for a glob (`use a::*`).
#[derive(Debug)]
struct Import {
    binding: Option<String>,
    path: Vec<String>,
}

/// A path written in a module's source, with where it was written.
#[derive(Debug)]
struct Ref {
    path: Vec<String>,
    file: PathBuf,
    line: usize,
}

/// Where an edge was seen, to tell whoever breaks the cycle which line to change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
}

/// The module tree of one crate target, with every reference each module makes.
#[derive(Debug)]
pub struct Tree {
    modules: Vec<Module>,
}

/// An edge between two sibling modules, and every place that makes it.
pub type Edges = BTreeMap<(String, String), Vec<Site>>;

impl Tree {
    /// Reads the crate whose root is `root` (`src/lib.rs`, `tests/api.rs`, ...); `read` gives a
    /// file's text, or `None` when there is no such file.
    pub fn load(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Result<Tree, String> {
        let mut tree = Tree { modules: vec![Module::new("crate", None)] };
        let src = read(root).ok_or_else(|| format!("{}: cannot read the crate root", root.display()))?;
        let dir = root.parent().unwrap_or(Path::new("")).to_path_buf();
        tree.parse_file(root, &src, 0, &dir, read)?;
        Ok(tree)
    }

    fn parse_file(
        &mut self,
        file: &Path,
        src: &str,
        module: usize,
        dir: &Path,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Result<(), String> {
        let tokens = tokenize(src).map_err(|e| format!("{}: {e}", file.display()))?;
        self.parse_items(&tokens, module, file, dir, read)
    }

    /// Records the children, imports and references of `module` from its body; `dir` is where its
    /// `mod a;` children live.
    fn parse_items(
        &mut self,
        tokens: &[Token],
        module: usize,
        file: &Path,
        dir: &Path,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Result<(), String> {
        let at = |line: usize| format!("{}:{line}", file.display());
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            let next = |n: usize| tokens.get(i + n).copied();
            if t.is_punct("#") && next(1).is_some_and(|t| t.is_punct("[")) && next(2).is_some_and(|t| t.is_ident("path")) {
                return Err(format!(
                    "{}: `#[path]` modules are not understood by the tidy test; name the file after the module",
                    at(t.line)
                ));
            }
            if t.is_ident("mod")
                && let Some(name) = next(1).filter(|n| n.kind == Kind::Ident)
            {
                let child_dir = dir.join(name.text);
                if next(2).is_some_and(|t| t.is_punct(";")) {
                    let child = self.add_child(module, name.text, &at(t.line))?;
                    let flat = dir.join(format!("{}.rs", name.text));
                    let nested = child_dir.join("mod.rs");
                    let (path, src) = match (read(&flat), read(&nested)) {
                        (Some(src), _) => (flat, src),
                        (None, Some(src)) => (nested, src),
                        (None, None) => {
                            return Err(format!(
                                "{}: no file for `mod {}` ({} or {})",
                                at(t.line),
                                name.text,
                                flat.display(),
                                nested.display()
                            ));
                        }
                    };
                    self.parse_file(&path, &src, child, &child_dir, read)?;
                    i += 3;
                    continue;
                }
                if next(2).is_some_and(|t| t.is_punct("{")) {
                    let child = self.add_child(module, name.text, &at(t.line))?;
                    let end = matching_brace(tokens, i + 2).ok_or_else(|| format!("{}: unclosed `mod {}`", at(t.line), name.text))?;
                    self.parse_items(&tokens[i + 3..end], child, file, &child_dir, read)?;
                    i = end + 1;
                    continue;
                }
            }
            // `use<'a, T>` is a precise-capturing bound, not an import.
            if t.is_ident("use") && !next(1).is_some_and(|t| t.is_punct("<")) {
                let end =
                    (i..tokens.len()).find(|&j| tokens[j].is_punct(";")).ok_or_else(|| format!("{}: `use` without `;`", at(t.line)))?;
                for (path, binding) in use_tree(&tokens[i + 1..end]).map_err(|e| format!("{}: {e}", at(t.line)))? {
                    self.modules[module].refs.push(Ref { path: path.clone(), file: file.to_path_buf(), line: t.line });
                    if let Some(binding) = binding {
                        let binding = if binding == "*" { None } else { Some(binding) };
                        self.modules[module].imports.push(Import { binding, path });
                    }
                }
                i = end + 1;
                continue;
            }
            let is_head = i == 0 || !tokens[i - 1].is_punct("::");
            if t.kind == Kind::Ident
                && is_head
                && let Some((path, len)) = code_path(&tokens[i..])
            {
                self.modules[module].refs.push(Ref { path, file: file.to_path_buf(), line: t.line });
                i += len;
                continue;
            }
            i += 1;
        }
        Ok(())
    }

    fn add_child(&mut self, parent: usize, name: &str, at: &str) -> Result<usize, String> {
        if self.modules[parent].children.contains_key(name) {
            return Err(format!("{at}: a second `mod {name}` in the same module"));
        }
        let id = self.modules.len();
        self.modules.push(Module::new(name, Some(parent)));
        self.modules[parent].children.insert(name.to_string(), id);
        Ok(id)
    }

    /// The module a path written in `module` leads to (the deepest module it names; the item
    /// after it does not matter), and whether every segment was a module. `None` when the path
    /// starts outside this crate.
    fn resolve(&self, module: usize, path: &[String], depth: usize) -> Option<(usize, bool)> {
        let (first, rest) = path.split_first()?;
        let mut current = match first.as_str() {
            "crate" => 0,
            "self" => module,
            "super" => self.modules[module].parent?,
            name => self.lookup(module, name, depth)?,
        };
        for segment in rest {
            match segment.as_str() {
                "super" => current = self.modules[current].parent?,
                "self" => {}
                name => match self.lookup(current, name, depth) {
                    Some(next) => current = next,
                    None => return Some((current, false)),
                },
            }
        }
        Some((current, true))
    }

    /// The module that `name`, seen from inside `module`, stands for: a child, or an import
    /// (named, or through a glob) that leads to a module of this crate.
    fn lookup(&self, module: usize, name: &str, depth: usize) -> Option<usize> {
        // Imports can lead back to themselves (`use super::*` in both directions); rustc would
        // reject a real loop, so a few steps are enough for any real program.
        if depth > 8 {
            return None;
        }
        let m = &self.modules[module];
        if let Some(&child) = m.children.get(name) {
            return Some(child);
        }
        for import in m.imports.iter().filter(|i| i.binding.as_deref() == Some(name)) {
            if let Some((target, _)) = self.resolve(module, &import.path, depth + 1) {
                return Some(target);
            }
        }
        for import in m.imports.iter().filter(|i| i.binding.is_none()) {
            if let Some((target, true)) = self.resolve(module, &import.path, depth + 1)
                && target != module
                && let Some(found) = self.lookup(target, name, depth + 1)
            {
                return Some(found);
            }
        }
        None
    }

    /// `crate`, `a`, `a::b`: the module's path from the crate root.
    fn display(&self, module: usize) -> String {
        let mut names = Vec::new();
        let mut m = Some(module);
        while let Some(id) = m {
            names.push(self.modules[id].name.as_str());
            m = self.modules[id].parent;
        }
        names.pop();
        names.reverse();
        if names.is_empty() { "crate".to_string() } else { names.join("::") }
    }

    fn ancestors(&self, module: usize) -> Vec<usize> {
        let mut chain = vec![module];
        while let Some(parent) = self.modules[*chain.last().unwrap_or(&0)].parent {
            chain.push(parent);
        }
        chain.reverse();
        chain
    }

    /// Every edge between siblings, named by the siblings' paths (`a -> b`, `a::p -> a::q`).
    pub fn edges(&self) -> Edges {
        let mut edges = Edges::new();
        for (id, module) in self.modules.iter().enumerate() {
            let from_chain = self.ancestors(id);
            for r in &module.refs {
                let Some((target, _)) = self.resolve(id, &r.path, 0) else { continue };
                let to_chain = self.ancestors(target);
                let common = from_chain.iter().zip(&to_chain).take_while(|(a, b)| a == b).count();
                // One chain inside the other: a module using its ancestor or its descendant.
                let (Some(&from), Some(&to)) = (from_chain.get(common), to_chain.get(common)) else { continue };
                let site = Site { file: r.file.clone(), line: r.line, path: r.path.join("::") };
                edges.entry((self.display(from), self.display(to))).or_default().push(site);
            }
        }
        edges
    }
}

impl Module {
    fn new(name: &str, parent: Option<usize>) -> Module {
        Module { name: name.to_string(), parent, children: BTreeMap::new(), imports: Vec::new(), refs: Vec::new() }
    }
}

/// The index of the `}` closing the `{` at `open`.
fn matching_brace(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        if t.is_punct("{") {
            depth += 1;
        } else if t.is_punct("}") {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// A path in code that starts at `tokens[0]`: `a::b::c`, at least two segments, ending before
/// `::<` or `::{`. Returns the segments and how many tokens they took.
fn code_path(tokens: &[Token]) -> Option<(Vec<String>, usize)> {
    let mut path = vec![tokens.first()?.text.to_string()];
    let mut i = 1;
    while tokens.get(i).is_some_and(|t| t.is_punct("::"))
        && let Some(segment) = tokens.get(i + 1).filter(|t| t.kind == Kind::Ident)
    {
        path.push(segment.text.to_string());
        i += 2;
    }
    (path.len() > 1).then_some((path, i))
}

/// One path of a `use` item and the name it binds: the last segment, the `as` name, `"*"` for a
/// glob, or `None` for `as _`.
pub type UsePath = (Vec<String>, Option<String>);

/// The paths a `use` item names; `tokens` is what lies between `use` and `;`.
pub fn use_tree(tokens: &[Token]) -> Result<Vec<UsePath>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    use_subtree(tokens, &mut pos, Vec::new(), &mut out)?;
    match tokens.get(pos) {
        None => Ok(out),
        Some(t) => Err(format!("unexpected `{}` in a `use` item", t.text)),
    }
}

fn use_subtree(tokens: &[Token], pos: &mut usize, mut path: Vec<String>, out: &mut Vec<UsePath>) -> Result<(), String> {
    // `use ::name` names an external crate; keep the marker so that it never resolves here.
    if tokens.get(*pos).is_some_and(|t| t.is_punct("::")) {
        path.push("::".to_string());
        *pos += 1;
    }
    loop {
        let Some(t) = tokens.get(*pos) else { return Err("unfinished `use` item".to_string()) };
        *pos += 1;
        match t.kind {
            Kind::Ident => {
                path.push(t.text.to_string());
                if tokens.get(*pos).is_some_and(|t| t.is_punct("::")) {
                    *pos += 1;
                    continue;
                }
                if path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                let mut binding = path.last().cloned();
                if tokens.get(*pos).is_some_and(|t| t.is_ident("as")) {
                    let alias = tokens.get(*pos + 1).ok_or("`as` without a name")?;
                    binding = (alias.text != "_").then(|| alias.text.to_string());
                    *pos += 2;
                }
                out.push((path, binding));
                return Ok(());
            }
            Kind::Punct if t.text == "*" => {
                out.push((path, Some("*".to_string())));
                return Ok(());
            }
            Kind::Punct if t.text == "{" => loop {
                if tokens.get(*pos).is_some_and(|t| t.is_punct("}")) {
                    *pos += 1;
                    return Ok(());
                }
                use_subtree(tokens, pos, path.clone(), out)?;
                if tokens.get(*pos).is_some_and(|t| t.is_punct(",")) {
                    *pos += 1;
                }
            },
            _ => return Err(format!("unexpected `{}` in a `use` item", t.text)),
        }
    }
}

/// A cycle among the siblings of one module, as the names in order, the first repeated last.
pub type Cycle = Vec<String>;

/// The cycles in a graph, as `a -> b -> a` paths: for every module on a cycle, the shortest
/// cycle through it, each reported once and starting from its alphabetically first module.
/// Breaking each of them and running the test again will show whether others remain.
pub fn cycles(edges: &Edges) -> Vec<Cycle> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().insert(to);
    }
    let mut found = BTreeSet::new();
    for &start in next.keys() {
        // Breadth first from `start`, remembering how each module was reached.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut closed = None;
        'search: while let Some(at) = queue.pop_front() {
            for &to in next.get(at).into_iter().flatten() {
                if to == start {
                    closed = Some(at);
                    break 'search;
                }
                if !came_from.contains_key(to) {
                    came_from.insert(to, at);
                    queue.push_back(to);
                }
            }
        }
        let Some(mut at) = closed else { continue };
        let mut cycle = vec![at];
        while at != start {
            at = came_from[at];
            cycle.push(at);
        }
        cycle.reverse();
        let first = cycle.iter().enumerate().min_by_key(|(_, name)| **name).map_or(0, |(i, _)| i);
        cycle.rotate_left(first);
        let mut cycle: Cycle = cycle.iter().map(|s| s.to_string()).collect();
        cycle.push(cycle[0].clone());
        found.insert(cycle);
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads a crate from `files` (`lib.rs` is the root) and compares its edges, one `from -> to`
    /// a line, with `expected`.
    fn check(files: &[(&str, &str)], expected: &str) {
        let edges = load(files);
        let shown: Vec<String> = edges.keys().map(|(from, to)| format!("{from} -> {to}")).collect();
        assert_eq!(shown.join("\n"), expected.trim(), "edges of {files:?}");
    }

    fn load(files: &[(&str, &str)]) -> Edges {
        let files: BTreeMap<PathBuf, String> = files.iter().map(|(p, s)| (PathBuf::from(p), s.to_string())).collect();
        let tree = Tree::load(Path::new("lib.rs"), &|p| files.get(p).cloned()).unwrap();
        tree.edges()
    }

    #[test]
    fn use_trees() {
        let tokens = tokenize("crate::{a, b::{self as bee, c::*}, d as _}, ::ext::x").unwrap();
        // The top-level `,` is not valid Rust; a group is.
        assert!(use_tree(&tokens).is_err());
        let tokens = tokenize("crate::{a, b::{self as bee, c::*}, d as _, e::f}").unwrap();
        let shown: Vec<String> = use_tree(&tokens).unwrap().into_iter().map(|(p, b)| format!("{} as {b:?}", p.join("::"))).collect();
        assert_eq!(
            shown,
            [
                "crate::a as Some(\"a\")",
                "crate::b as Some(\"bee\")",
                "crate::b::c as Some(\"*\")",
                "crate::d as None",
                "crate::e::f as Some(\"f\")"
            ]
        );
    }

    #[test]
    fn use_items_make_edges() {
        check(
            &[
                ("lib.rs", "mod a; mod b; mod c; mod d;"),
                ("a.rs", "use crate::b::X;"),
                ("b.rs", "use crate::{c, d::Y};"),
                ("c.rs", ""),
                ("d.rs", ""),
            ],
            "a -> b\nb -> c\nb -> d",
        );
    }

    #[test]
    fn code_paths_make_edges() {
        check(
            &[("lib.rs", "mod a; mod b; mod c;"), ("a.rs", "fn f() { crate::b::g(); let x: super::c::T; }"), ("b.rs", ""), ("c.rs", "")],
            "a -> b\na -> c",
        );
    }

    #[test]
    fn comments_and_strings_make_no_edges() {
        check(
            &[("lib.rs", "mod a; mod b;"), ("a.rs", "/// Calls [`crate::b::g`].\nfn f() { let s = \"crate::b::g\"; }"), ("b.rs", "")],
            "",
        );
    }

    #[test]
    fn parents_and_children_make_no_edges() {
        // The root uses its child, the child its parent: that is the tree, not a cycle.
        check(
            &[("lib.rs", "mod a; pub struct State; fn f() { a::g() }"), ("a.rs", "use super::State; use crate::State as S; fn g() {}")],
            "",
        );
        // Nor does a module using its own descendant.
        check(&[("lib.rs", "mod a;"), ("a.rs", "mod inner; use self::inner::X; use crate::a::inner::Y;"), ("a/inner.rs", "")], "");
    }

    #[test]
    fn imported_names_lead_to_their_modules() {
        check(
            &[
                ("lib.rs", "mod a; mod b; mod c; pub use c::Config;"),
                // `b` as imported; `crate::Config` re-exported from `c` at the root.
                ("a.rs", "use crate::b; fn f() { b::g(); let _ = crate::Config::default(); }"),
                ("b.rs", ""),
                ("c.rs", ""),
            ],
            "a -> b\na -> c",
        );
    }

    #[test]
    fn globs_lead_to_their_modules() {
        // The tests module sees the parent's imports through `use super::*`.
        check(
            &[
                ("lib.rs", "mod a; mod b;"),
                ("a.rs", "use crate::b; #[cfg(test)] mod tests { use super::*; fn t() { b::g(); } }"),
                ("b.rs", ""),
            ],
            "a -> b",
        );
    }

    #[test]
    fn nested_modules_have_their_own_graph() {
        check(
            &[
                ("lib.rs", "mod a; mod b;"),
                ("a.rs", "mod p; mod q;"),
                ("a/p.rs", "use super::q::X; use crate::b::Y;"),
                ("a/q/mod.rs", "use super::super::b;"),
                ("b.rs", "mod inline { use crate::a::p; }"),
            ],
            "a -> b\na::p -> a::q\nb -> a",
        );
    }

    #[test]
    fn external_crates_make_no_edges() {
        // Without `crate::` or `super::`, a sibling's name is not in scope: `b::g` is a crate `b`.
        check(
            &[("lib.rs", "mod a; mod b;"), ("a.rs", "use std::fmt; use ::b::x; fn f() { serde_json::json!(1); b::g() }"), ("b.rs", "")],
            "",
        );
    }

    #[test]
    fn cycles_are_reported_from_their_first_module() {
        let edges = load(&[
            ("lib.rs", "mod admin; mod accounts; mod config; mod oidc; mod leaf;"),
            ("accounts.rs", "use crate::admin; use crate::leaf;"),
            ("admin.rs", "use crate::config;"),
            ("config.rs", "fn f() { crate::oidc::check() }"),
            ("oidc.rs", "use crate::accounts::count; use crate::config::X;"),
            ("leaf.rs", ""),
        ]);
        let shown: Vec<String> = cycles(&edges).iter().map(|c| c.join(" -> ")).collect();
        assert_eq!(shown, ["accounts -> admin -> config -> oidc -> accounts", "config -> oidc -> config"]);
    }

    #[test]
    fn path_attributes_are_refused() {
        let files: BTreeMap<PathBuf, String> = [(PathBuf::from("lib.rs"), "#[path = \"x.rs\"] mod a;".to_string())].into();
        let err = Tree::load(Path::new("lib.rs"), &|p| files.get(p).cloned()).unwrap_err();
        assert!(err.contains("#[path]"), "{err}");
    }
}
