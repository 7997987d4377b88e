//! What extracting an archive leaves on disk: which content each path names afterwards.
//!
//! An index must judge a distribution by what installers will see, and installers see the
//! extracted tree, not the list of members. The two differ when members are links (a `setup.py`
//! that is a symlink to `docs/notes.txt` runs the notes), when a name repeats (the last copy
//! wins), and when a member is written through a link to a directory. This module replays the
//! members in archive order on a model of the extraction folder, the way Python's `tarfile` with
//! the `data` filter and GNU tar do, and refuses everything on which extractors could disagree:
//!
//! - a path that repeats, in any combination of types (only a directory may be stated twice);
//! - a member below a path that is a file, or below a symlink (written through the link);
//! - a symlink whose target, resolved component by component the way `realpath` does, leaves
//!   the root, at the moment it is extracted or once everything is (`up -> ..`,
//!   `up2 -> up/..` chains included), or that loops;
//! - a hard link that does not name an earlier file inside the root;
//! - two files whose paths differ only in ASCII case (one file on macOS and Windows).
//!
//! What is left is a tree in which every path has one meaning. [`Tree::aliases`] then lists
//! every other path under which a file's content can be opened (through symlinks and hard
//! links), so that the content is also judged by those names.

use std::collections::{BTreeMap, HashMap};

use crate::anomaly::Anomaly;

/// The most symlinks one path resolution may follow, as Linux's `ELOOP` limit.
const MAX_HOPS: usize = 40;
/// The most path components one resolution walks, links expanded (a link of `a/../` repeated
/// would otherwise cost time quadratic in its length).
const MAX_STEPS: usize = 4096;
/// Memory for the paths of the model: a deep path stores each of its folders.
const MAX_PATH_BYTES: usize = 64 << 20;

/// What a member is, as the extractor will create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A symbolic link and its target as stored (relative to the link's folder).
    Symlink(String),
    /// A hard link and the archive path of the file it links to.
    Hardlink(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// A folder, stated as a member or implied by a member below it.
    Dir,
    /// A file with the content of member `member` (the walk index of a regular member). `own`
    /// is false for a hard link, whose content is another member's.
    File {
        member: usize,
        own: bool,
    },
    Symlink {
        target: String,
    },
}

/// A path under which a member's content can be opened, other than the member's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub path: String,
    /// The index passed to [`Tree::insert`] for the regular member whose content this is.
    pub member: usize,
}

/// The extraction folder as members are added.
#[derive(Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    /// Paths of files and links by their ASCII-lowercase form.
    folded: HashMap<String, String>,
    links: usize,
    /// Bytes of paths stored (see [`MAX_PATH_BYTES`]).
    bytes: usize,
}

/// Normalizes a member name as extractors join it to the destination: empty and `.` components
/// dropped (`./a//b/` is `a/b`). `None` for a name that is absolute, climbs with `..`, or is
/// empty once normalized: those are refused before they reach the tree.
pub fn normalize(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lexical,
    Strict,
}

/// Where a resolution ended.
enum Resolved {
    /// Through a missing folder or a file: the path opens nothing.
    Nowhere,
    /// Inside the root, at this physical path (empty: the root itself).
    Inside(String),
    /// Above the root.
    Outside,
    /// More than [`MAX_HOPS`] links followed.
    Loop,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    fn grow(&mut self, n: usize) -> Result<(), Anomaly> {
        self.bytes += n;
        if self.bytes > MAX_PATH_BYTES {
            return Err(Anomaly::TooManyPaths { limit: MAX_PATH_BYTES as u64 });
        }
        Ok(())
    }

    /// Whether `path` is a regular file (or a hard link to one).
    pub fn is_file(&self, path: &str) -> bool {
        matches!(self.nodes.get(path), Some(Node::File { .. }))
    }

    /// Adds the member at the normalized path `path` (see [`normalize`]), with the walk index
    /// `member` of its content if it is a regular file. On a problem nothing is added and the
    /// anomaly says what extractors would disagree on; `display` is the member's name in it.
    /// `Ok(Some(first))` when a regular file repeats the regular file `first`: the two are one
    /// file only if their contents are equal, which the caller must check (else it is an
    /// [`Anomaly::Duplicate`]).
    pub fn insert(&mut self, path: &str, kind: Kind, member: usize, display: &str) -> Result<Option<usize>, Anomaly> {
        // The same path in another case is one file on macOS and Windows: whichever comes last
        // replaces the other's content there.
        if kind != Kind::Dir {
            let folded = path.to_ascii_lowercase();
            if let Some(other) = self.folded.get(&folded)
                && other != path
            {
                return Err(Anomaly::CaseCollision { path: display.to_string(), other: other.clone() });
            }
            self.folded.insert(folded, path.to_string());
        }
        self.grow(2 * path.len())?;
        // Every folder above the member must be a folder: not a file (the extraction fails or
        // depends on the order), and not a symlink (the member would be written through it).
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            match self.nodes.get(parent) {
                Some(Node::Dir) => {}
                Some(Node::File { .. }) => return Err(Anomaly::Duplicate { path: display.to_string() }),
                Some(Node::Symlink { target }) => {
                    return Err(Anomaly::ThroughLink { path: display.to_string(), link: format!("{parent} -> {target}") });
                }
                None => {
                    self.grow(parent.len())?;
                    self.nodes.insert(parent.to_string(), Node::Dir);
                }
            }
            end += i + 1;
        }
        let node = match kind {
            Kind::Dir => Node::Dir,
            Kind::File => Node::File { member, own: true },
            Kind::Symlink(target) => {
                let at = parent_of(path);
                match self.resolve(&join(at, &target), true, Mode::Lexical) {
                    _ if target.starts_with('/') || target.is_empty() => {
                        return Err(Anomaly::LinkOutside { path: display.to_string(), target });
                    }
                    Resolved::Outside => return Err(Anomaly::LinkOutside { path: display.to_string(), target }),
                    Resolved::Loop => return Err(Anomaly::LinkLoop { path: display.to_string(), target }),
                    Resolved::Inside(_) | Resolved::Nowhere => Node::Symlink { target },
                }
            }
            Kind::Hardlink(target) => {
                // A hard link names its target from the root of the archive, and the target must
                // already be there: extractors link to what is on disk.
                // The target itself is not followed (link(2) links a symlink, not what it names),
                // and a hard link to a symlink is refused below.
                let file = match normalize(&target) {
                    Some(t) => match self.resolve(&t, false, Mode::Strict) {
                        Resolved::Inside(p) => self.nodes.get(&p).cloned(),
                        Resolved::Nowhere => None,
                        Resolved::Outside => return Err(Anomaly::LinkOutside { path: display.to_string(), target }),
                        Resolved::Loop => return Err(Anomaly::LinkLoop { path: display.to_string(), target }),
                    },
                    None => return Err(Anomaly::LinkOutside { path: display.to_string(), target }),
                };
                match file {
                    Some(Node::File { member, .. }) => Node::File { member, own: false },
                    _ => return Err(Anomaly::BrokenHardlink { path: display.to_string(), target }),
                }
            }
        };
        if matches!(node, Node::Symlink { .. }) || matches!(node, Node::File { own: false, .. }) {
            self.links += 1;
        }
        match self.nodes.get(path) {
            None => {
                self.nodes.insert(path.to_string(), node);
                Ok(None)
            }
            // A folder may be stated again (or after members below it implied it).
            Some(Node::Dir) if node == Node::Dir => Ok(None),
            // A file stated again is harmless only with the same content (some build tools
            // append a second LICENSE); the caller compares them. The last copy is extracted.
            Some(&Node::File { member: first, own: true }) if matches!(node, Node::File { own: true, .. }) => {
                self.nodes.insert(path.to_string(), node);
                Ok(Some(first))
            }
            Some(_) => Err(Anomaly::Duplicate { path: display.to_string() }),
        }
    }

    /// Resolves `path` against the tree: symlinks followed (the last component too when
    /// `follow_last`), `..` taken physically. `Lexical` keeps missing components as they are, as
    /// `realpath` does (what tarfile's `data` filter checks links with); `Strict` is what the
    /// kernel opens: every component before the last must be an existing folder, or the path
    /// leads nowhere.
    fn resolve(&self, path: &str, follow_last: bool, mode: Mode) -> Resolved {
        let meaningful = |c: &str| !c.is_empty() && c != ".";
        let mut pending: Vec<&str> = path.split('/').rev().collect();
        let mut left = pending.iter().filter(|c| meaningful(c)).count();
        // The physical path so far, and where each of its components starts.
        let mut here = String::new();
        let mut starts: Vec<usize> = Vec::new();
        let (mut hops, mut steps) = (0, 0);
        while let Some(c) = pending.pop() {
            if !meaningful(c) {
                continue;
            }
            left -= 1;
            steps += 1;
            if steps > MAX_STEPS {
                return Resolved::Loop;
            }
            if c == ".." {
                match starts.pop() {
                    Some(at) => here.truncate(at.saturating_sub(1)),
                    None => return Resolved::Outside,
                }
                continue;
            }
            starts.push(if here.is_empty() { 0 } else { here.len() + 1 });
            if !here.is_empty() {
                here.push('/');
            }
            here.push_str(c);
            let is_last = left == 0;
            if is_last && !follow_last {
                continue;
            }
            match self.nodes.get(&here) {
                Some(Node::Symlink { target }) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Resolved::Loop;
                    }
                    if target.starts_with('/') {
                        return Resolved::Outside;
                    }
                    let at = starts.pop().unwrap_or(0);
                    here.truncate(at.saturating_sub(1));
                    for t in target.split('/').rev() {
                        if meaningful(t) {
                            left += 1;
                        }
                        pending.push(t);
                    }
                }
                Some(Node::Dir) => {}
                _ if mode == Mode::Strict && !is_last => return Resolved::Nowhere,
                _ => {}
            }
        }
        Resolved::Inside(here)
    }

    /// Checks every symlink against the finished tree (a later member can change where an
    /// earlier link leads), and lists every path other than a member's own under which a file
    /// can be opened: symlinks to files, hard links, and the files below symlinks to folders.
    /// At most `max` aliases are listed; past that the archive is refused as a link bomb.
    pub fn aliases(&self, max: usize) -> Result<Vec<Alias>, Anomaly> {
        let mut out = Vec::new();
        if self.links == 0 {
            return Ok(out);
        }
        // Every link against the finished tree, as the data filter checks each one.
        for (path, node) in &self.nodes {
            if let Node::Symlink { target } = node {
                match self.resolve(&join(parent_of(path), target), true, Mode::Lexical) {
                    Resolved::Outside => return Err(Anomaly::LinkOutside { path: path.clone(), target: target.clone() }),
                    Resolved::Loop => return Err(Anomaly::LinkLoop { path: path.clone(), target: target.clone() }),
                    _ => {}
                }
            }
        }
        // Paths visited through links, aliases or not: links to empty folders cost work too.
        let mut steps = 0usize;
        for (path, node) in &self.nodes {
            match node {
                Node::File { member, own: false } => out.push(Alias { path: path.clone(), member: *member }),
                Node::Symlink { target } => {
                    let mut expanding = Vec::new();
                    self.expand(path, target, &mut expanding, &mut out, &mut steps, max)?;
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Adds the aliases that the symlink at virtual path `path` opens, following folders.
    /// `expanding` holds the physical folders being listed through links, to catch cycles.
    fn expand(
        &self,
        path: &str,
        target: &str,
        expanding: &mut Vec<String>,
        out: &mut Vec<Alias>,
        steps: &mut usize,
        max: usize,
    ) -> Result<(), Anomaly> {
        *steps += 1;
        if out.len() > max || *steps > max.saturating_mul(4) {
            return Err(Anomaly::TooManyEntries { limit: max as u64 });
        }
        let link_dir = match self.resolve(parent_of(path), true, Mode::Strict) {
            Resolved::Inside(p) => p,
            Resolved::Nowhere => return Ok(()),
            _ => return Err(Anomaly::LinkOutside { path: path.to_string(), target: target.to_string() }),
        };
        // What opening the path gives: the kernel's resolution.
        let physical = match self.resolve(&join(&link_dir, target), true, Mode::Strict) {
            Resolved::Inside(p) => p,
            Resolved::Nowhere => return Ok(()),
            Resolved::Outside => return Err(Anomaly::LinkOutside { path: path.to_string(), target: target.to_string() }),
            Resolved::Loop => return Err(Anomaly::LinkLoop { path: path.to_string(), target: target.to_string() }),
        };
        match self.nodes.get(&physical) {
            Some(Node::File { member, .. }) => {
                out.push(Alias { path: path.to_string(), member: *member });
            }
            Some(Node::Dir) => {
                // A link to a folder that contains the link itself makes an endless tree.
                if physical.is_empty() || expanding.contains(&physical) || is_within(&link_dir, &physical) {
                    return Err(Anomaly::LinkLoop { path: path.to_string(), target: target.to_string() });
                }
                expanding.push(physical.clone());
                let prefix = format!("{physical}/");
                for (sub, node) in self.nodes.range(prefix.clone()..) {
                    let Some(rest) = sub.strip_prefix(&prefix) else { break };
                    let virt = format!("{path}/{rest}");
                    *steps += 1;
                    match node {
                        Node::File { member, .. } => out.push(Alias { path: virt, member: *member }),
                        Node::Symlink { target } => self.expand(&virt, target, expanding, out, steps, max)?,
                        Node::Dir => {}
                    }
                    if out.len() > max || *steps > max.saturating_mul(4) {
                        return Err(Anomaly::TooManyEntries { limit: max as u64 });
                    }
                }
                expanding.pop();
            }
            // The root holds the link itself.
            None if physical.is_empty() => return Err(Anomaly::LinkLoop { path: path.to_string(), target: target.to_string() }),
            // Dangling: nothing to open.
            _ => {}
        }
        if out.len() > max {
            return Err(Anomaly::TooManyEntries { limit: max as u64 });
        }
        Ok(())
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() { rel.to_string() } else { format!("{dir}/{rel}") }
}

/// Whether `path` is `dir` or below it (`dir` empty is the root, which holds everything).
fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(members: &[(&str, Kind)]) -> Result<Tree, Anomaly> {
        let mut t = Tree::new();
        for (i, (p, k)) in members.iter().enumerate() {
            let n = normalize(p).expect("safe test path");
            // Repeated files count as different here; the walker compares contents.
            if t.insert(&n, k.clone(), i, p)?.is_some() {
                return Err(Anomaly::Duplicate { path: p.to_string() });
            }
        }
        Ok(t)
    }

    fn aliases(members: &[(&str, Kind)]) -> Result<Vec<(String, usize)>, &'static str> {
        let t = build(members).map_err(|a| a.id())?;
        t.aliases(1000).map(|v| v.into_iter().map(|a| (a.path, a.member)).collect()).map_err(|a| a.id())
    }

    fn sym(t: &str) -> Kind {
        Kind::Symlink(t.to_string())
    }

    #[test]
    fn normalizes_like_extractors_join() {
        assert_eq!(normalize("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("a/../b"), None);
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize("./"), None);
    }

    #[test]
    fn a_symlinked_setup_py_is_an_alias_of_its_target() {
        let got = aliases(&[("p-1.0/docs/notes.txt", Kind::File), ("p-1.0/setup.py", sym("docs/notes.txt"))]);
        assert_eq!(got, Ok(vec![("p-1.0/setup.py".to_string(), 0)]));
        // The link may come before its target.
        let got = aliases(&[("p-1.0/setup.py", sym("docs/notes.txt")), ("p-1.0/docs/notes.txt", Kind::File)]);
        assert_eq!(got, Ok(vec![("p-1.0/setup.py".to_string(), 1)]));
    }

    #[test]
    fn a_hardlinked_setup_py_is_an_alias_of_its_target() {
        let got = aliases(&[("p-1.0/docs/notes.txt", Kind::File), ("p-1.0/setup.py", Kind::Hardlink("p-1.0/docs/notes.txt".into()))]);
        assert_eq!(got, Ok(vec![("p-1.0/setup.py".to_string(), 0)]));
        // A hard link to nothing, or to a later member, is refused: extractors link to what is there.
        assert_eq!(
            aliases(&[("p-1.0/setup.py", Kind::Hardlink("p-1.0/x".into())), ("p-1.0/x", Kind::File)]),
            Err("archive-broken-hardlink")
        );
        assert_eq!(aliases(&[("p-1.0/setup.py", Kind::Hardlink("../x".into()))]), Err("archive-link-outside"));
    }

    #[test]
    fn a_regular_file_then_a_link_of_the_same_name_is_a_duplicate() {
        let got = aliases(&[("p-1.0/docs/n.txt", Kind::File), ("p-1.0/setup.py", Kind::File), ("p-1.0/setup.py", sym("docs/n.txt"))]);
        assert_eq!(got, Err("archive-duplicate-member"));
        assert_eq!(aliases(&[("p/a", Kind::File), ("p/a", Kind::File)]), Err("archive-duplicate-member"));
        assert_eq!(aliases(&[("p/a", Kind::Dir), ("p/a", Kind::File)]), Err("archive-duplicate-member"));
        // A file below a file, or a file where a folder was implied.
        assert_eq!(aliases(&[("p/a", Kind::File), ("p/a/b", Kind::File)]), Err("archive-duplicate-member"));
        assert_eq!(aliases(&[("p/a/b", Kind::File), ("p/a", Kind::File)]), Err("archive-duplicate-member"));
        // Folders may be stated again, before or after their content.
        assert_eq!(aliases(&[("p", Kind::Dir), ("p/a", Kind::File), ("p", Kind::Dir)]), Ok(vec![]));
    }

    #[test]
    fn link_chains_that_climb_out_are_refused() {
        // up -> .. stays inside (it names the root, so it loops), up2 -> up/.. climbs above it.
        assert_eq!(aliases(&[("p/up", sym(".."))]), Err("archive-link-loop"));
        assert_eq!(aliases(&[("p/up", sym("..")), ("p/up2", sym("up/.."))]), Err("archive-link-outside"));
        assert_eq!(
            aliases(&[("p/up", sym("..")), ("p/up2", sym("up/..")), ("p/up3", sym("up2/..")), ("p/up3/escaped.txt", Kind::File)]),
            Err("archive-link-outside")
        );
        assert_eq!(aliases(&[("p/abs", sym("/etc/passwd"))]), Err("archive-link-outside"));
        assert_eq!(aliases(&[("p/deep", sym("../../x"))]), Err("archive-link-outside"));
    }

    #[test]
    fn a_link_made_to_climb_out_by_a_later_link_is_refused() {
        // When `a` is added, `x` does not exist and `x/..` is `p`; once `x -> ..` exists it is
        // the parent of the root.
        let t = build(&[("p/a", sym("x/../..")), ("p/x", sym(".."))]);
        let t = t.expect("each link is inside when it is added");
        assert_eq!(t.aliases(100).map_err(|a| a.id()), Err("archive-link-outside"));
    }

    #[test]
    fn members_written_through_a_link_are_refused() {
        assert_eq!(aliases(&[("p/src", Kind::Dir), ("p/lib", sym("src")), ("p/lib/x.py", Kind::File)]), Err("archive-through-link"));
    }

    #[test]
    fn links_to_folders_alias_everything_below() {
        let got = aliases(&[("p/src/a.py", Kind::File), ("p/src/sub/b.py", Kind::File), ("p/pkg", sym("src"))]);
        assert_eq!(got, Ok(vec![("p/pkg/a.py".to_string(), 0), ("p/pkg/sub/b.py".to_string(), 1)]));
        // Through two links.
        let got = aliases(&[("p/src/a.py", Kind::File), ("p/mid", sym("src")), ("p/top", sym("mid"))]);
        assert_eq!(got, Ok(vec![("p/mid/a.py".to_string(), 0), ("p/top/a.py".to_string(), 0)]));
    }

    #[test]
    fn a_repeated_file_is_reported_to_the_caller_with_its_first_copy() {
        let mut t = Tree::new();
        assert_eq!(t.insert("p/LICENSE", Kind::File, 3, "p/LICENSE"), Ok(None));
        assert_eq!(t.insert("p/LICENSE", Kind::File, 7, "p/LICENSE"), Ok(Some(3)));
        // The last copy is the one extracted, so a link to it names member 7.
        t.insert("p/COPYING", Kind::Hardlink("p/LICENSE".into()), 8, "p/COPYING").unwrap();
        assert_eq!(t.aliases(10).unwrap(), vec![Alias { path: "p/COPYING".into(), member: 7 }]);
    }

    #[test]
    fn links_that_loop_are_refused() {
        assert_eq!(aliases(&[("p/a", sym("b")), ("p/b", sym("a"))]), Err("archive-link-loop"));
        assert_eq!(aliases(&[("p/x.py", Kind::File), ("p/self", sym("."))]), Err("archive-link-loop"));
        assert_eq!(aliases(&[("p/q/x.py", Kind::File), ("p/q/up", sym(".."))]), Err("archive-link-loop"));
        // A link to a sibling folder is not a loop.
        assert!(aliases(&[("p/a/x.py", Kind::File), ("p/b/to_a", sym("../a"))]).is_ok());
    }

    #[test]
    fn alias_counts_are_bounded() {
        // Each level links twice to the one below: 2^n paths from n members.
        let mut members = vec![("p/l0/x.py".to_string(), Kind::File)];
        for i in 1..20 {
            members.push((format!("p/l{i}/a"), sym(&format!("../l{}", i - 1))));
            members.push((format!("p/l{i}/b"), sym(&format!("../l{}", i - 1))));
        }
        let members: Vec<(&str, Kind)> = members.iter().map(|(p, k)| (p.as_str(), k.clone())).collect();
        let t = build(&members).unwrap();
        assert_eq!(t.aliases(10_000).map_err(|a| a.id()), Err("archive-too-many-members"));
        // The same shape over empty folders lists nothing, and must still stop.
        let mut members = vec![("p/l0".to_string(), Kind::Dir)];
        for i in 1..40 {
            members.push((format!("p/l{i}/a"), sym(&format!("../l{}", i - 1))));
            members.push((format!("p/l{i}/b"), sym(&format!("../l{}", i - 1))));
        }
        let members: Vec<(&str, Kind)> = members.iter().map(|(p, k)| (p.as_str(), k.clone())).collect();
        let t = build(&members).unwrap();
        assert_eq!(t.aliases(10_000).map_err(|a| a.id()), Err("archive-too-many-members"));
    }

    #[test]
    fn names_that_differ_only_in_case_collide() {
        assert_eq!(aliases(&[("p/setup.py", Kind::File), ("p/SETUP.PY", Kind::File)]), Err("archive-case-collision"));
        assert_eq!(aliases(&[("p/Setup.py", sym("x")), ("p/setup.py", Kind::File)]), Err("archive-case-collision"));
        // Folders may differ in case; the files in them are compared by their whole path.
        assert_eq!(aliases(&[("p/Docs/a.txt", Kind::File), ("p/docs/b.txt", Kind::File)]), Ok(vec![]));
        assert_eq!(aliases(&[("p/Docs/a.txt", Kind::File), ("p/docs/A.txt", Kind::File)]), Err("archive-case-collision"));
    }

    #[test]
    fn long_link_targets_resolve_in_linear_time() {
        // `a/../` 30,000 times: each step used to rescan and rejoin the whole path.
        let target = "a/../".repeat(30_000);
        let started = std::time::Instant::now();
        assert_eq!(aliases(&[("p/a/x", Kind::File), ("p/l", Kind::Symlink(target))]), Err("archive-link-loop"));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn deep_paths_are_bounded_in_memory() {
        let mut t = Tree::new();
        let deep = "a/".repeat(2000);
        let mut refused = false;
        for i in 0..10_000 {
            if let Err(a) = t.insert(&format!("{i}/{deep}x"), Kind::File, i, "x") {
                assert_eq!(a.id(), "archive-too-many-paths");
                refused = true;
                break;
            }
        }
        assert!(refused);
        assert!(t.bytes <= MAX_PATH_BYTES + 2 * 4096 * 2001);
    }

    #[test]
    fn dangling_links_open_nothing() {
        assert_eq!(aliases(&[("p/a", sym("missing"))]), Ok(vec![]));
        // `c/../a` opens nothing while `c` does not exist, though realpath says `a`.
        assert_eq!(aliases(&[("p/a", Kind::File), ("p/x.pth", sym("c/../a"))]), Ok(vec![]));
        assert_eq!(
            aliases(&[("p/a", Kind::File), ("p/c/d", Kind::File), ("p/x.pth", sym("c/../a"))]),
            Ok(vec![("p/x.pth".to_string(), 0)])
        );
        // Nor through a file.
        assert_eq!(aliases(&[("p/a", Kind::File), ("p/f", Kind::File), ("p/x.pth", sym("f/../a"))]), Ok(vec![]));
    }
}
