//! Typosquatting: is a project name a near miss of a popular (or already hosted) name?
//!
//! The checks follow what attackers do: one edit (a missing, doubled, swapped or changed
//! letter), separators moved or dropped (`python-dateutil` → `pythondateutil`), confusable
//! characters (`l`/`1`, `o`/`0`), and prefixes or suffixes (`python-`, `py-`, `-py`, `-python`,
//! `2`, `3`, `-lib`). A name that is itself popular is never a squat.

use std::collections::{HashMap, HashSet};

const SHIPPED: &str = include_str!("../data/popular.txt");

/// Affix squats are only checked against the most popular names: many honest projects are
/// called `something-py`.
const AFFIX_TOP: usize = 1000;
/// One-edit squats need a name of at least this length; shorter names are too close to
/// everything.
const MIN_EDIT_LEN: usize = 5;

pub struct TypoIndex {
    popular: HashSet<String>,
    /// Names by length, with their popularity rank.
    by_len: HashMap<usize, Vec<(String, usize)>>,
    squashed: HashMap<String, String>,
    /// Every name with one character deleted, mapped to the names it came from: two names one
    /// edit apart (insertion, deletion, substitution or transposition) always share such a
    /// variant, so a look-up costs the length of the name, not the size of the list.
    deletions: HashMap<String, Vec<u32>>,
    names: Vec<String>,
}

fn one_deletions(name: &str) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = name.chars().collect();
    (0..chars.len()).map(move |i| chars.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Squat {
    pub target: String,
    pub how: &'static str,
}

fn without_digits(name: &str) -> String {
    name.chars().filter(|c| !c.is_ascii_digit()).collect()
}

fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| match c {
            'l' | 'i' => '1',
            'o' => '0',
            c => c,
        })
        .collect()
}

impl TypoIndex {
    pub fn shipped() -> Self {
        Self::new(SHIPPED.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')))
    }

    /// Builds the index from names, most popular first.
    pub fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut idx = Self {
            popular: HashSet::new(),
            by_len: HashMap::new(),
            squashed: HashMap::new(),
            deletions: HashMap::new(),
            names: Vec::new(),
        };
        for raw in names {
            idx.insert(raw);
        }
        idx
    }

    /// Adds a name (ranked after those already present): the server adds each new project.
    pub fn insert(&mut self, raw: &str) {
        let n = palisade_dist::normalize(raw);
        let rank = self.popular.len();
        if !self.popular.insert(n.clone()) {
            return;
        }
        self.squashed.entry(squash(&n)).or_insert_with(|| n.clone());
        let id = self.names.len() as u32;
        self.deletions.entry(n.clone()).or_default().push(id);
        for d in one_deletions(&n) {
            self.deletions.entry(d).or_default().push(id);
        }
        self.names.push(n.clone());
        self.by_len.entry(n.len()).or_default().push((n, rank));
    }

    /// Names within one edit of `n`, found through the deletion index.
    fn one_edit_candidates(&self, n: &str) -> Vec<&str> {
        let mut ids: Vec<u32> = Vec::new();
        if let Some(v) = self.deletions.get(n) {
            ids.extend(v);
        }
        for d in one_deletions(n) {
            if let Some(v) = self.deletions.get(&d) {
                ids.extend(v);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().filter_map(|i| self.names.get(i as usize).map(String::as_str)).collect()
    }

    pub fn len(&self) -> usize {
        self.popular.len()
    }

    pub fn is_empty(&self) -> bool {
        self.popular.is_empty()
    }

    pub fn is_popular(&self, name: &str) -> bool {
        self.popular.contains(&palisade_dist::normalize(name))
    }

    /// The popular name `name` imitates, if any.
    pub fn check(&self, name: &str) -> Option<Squat> {
        let n = palisade_dist::normalize(name);
        if self.popular.contains(&n) {
            return None;
        }
        if let Some(t) = self.squashed.get(&squash(&n)) {
            return Some(Squat { target: t.clone(), how: "separator or look-alike character variant" });
        }
        {
            for p in self.one_edit_candidates(&n) {
                // Names that differ only in digits are a numbered family (`svc-1`, `svc-2`), not a
                // squat of each other.
                if p.len() >= MIN_EDIT_LEN && strsim::damerau_levenshtein(&n, p) == 1 && without_digits(&n) != without_digits(p) {
                    return Some(Squat { target: p.to_string(), how: "one letter added, removed, changed or swapped" });
                }
            }
        }
        for (pre, suf) in [
            ("python-", ""),
            ("py-", ""),
            ("py", ""),
            ("", "-py"),
            ("", "-python"),
            ("", "2"),
            ("", "3"),
            ("", "-lib"),
            ("", "-dev"),
            ("", "-sdk"),
        ] {
            if let Some(base) = n.strip_prefix(pre).and_then(|b| b.strip_suffix(suf))
                && base.len() >= 4
                && base != n
                && let Some((_, rank)) = self.by_len.get(&base.len()).into_iter().flatten().find(|(p, _)| p == base)
                && *rank < AFFIX_TOP
            {
                return Some(Squat { target: base.to_string(), how: "a popular name with a prefix or suffix added" });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx() -> TypoIndex {
        TypoIndex::new(["requests", "python-dateutil", "numpy", "django", "boto3", "colorama", "six"].into_iter())
    }

    fn check(name: &str, target: Option<&str>) {
        assert_eq!(idx().check(name).map(|s| s.target), target.map(str::to_string), "{name}");
    }

    #[test]
    fn squats() {
        check("reqeusts", Some("requests"));
        check("requestss", Some("requests"));
        check("reqests", Some("requests"));
        check("requets", Some("requests"));
        check("pythondateutil", Some("python-dateutil"));
        check("python_dateutil", None); // the same project, normalized
        check("co1orama", Some("colorama"));
        check("python-numpy", Some("numpy"));
        check("django-py", Some("django"));
        check("numpy2", Some("numpy"));
    }

    #[test]
    fn honest_names() {
        check("requests", None);
        check("Requests", None);
        check("sox", None); // too short for one-edit checks
        check("my-own-tool", None);
        check("numba", None); // two edits from numpy
        let family = TypoIndex::new(["benchpkg-00001", "team-svc-1", "boto3"].into_iter());
        assert_eq!(family.check("benchpkg-00002"), None);
        assert_eq!(family.check("team-svc-2"), None);
        assert_eq!(family.check("boto2"), None);
        assert_eq!(family.check("team-svx-1").map(|s| s.target), Some("team-svc-1".into()));
    }

    #[test]
    fn look_ups_do_not_scan_the_whole_list() {
        let names: Vec<String> = (0..20_000).map(|i| format!("internal-pkg-{i:05}")).collect();
        let idx = TypoIndex::new(names.iter().map(String::as_str));
        // Same length as every name in the index, yet only true one-edit neighbours are compared.
        assert!(idx.one_edit_candidates("internal-pkg-0000x").len() < 100);
        assert_eq!(idx.check("internal-pkq-00042").map(|s| s.target), Some("internal-pkg-00042".into()));
        assert_eq!(idx.check("internal-pkg-20001"), None);
    }

    #[test]
    fn shipped_list_loads() {
        let i = TypoIndex::shipped();
        assert!(i.is_popular("boto3") && i.is_popular("requests"));
        assert_eq!(i.check("reqeusts").map(|s| s.target), Some("requests".into()));
    }
}
