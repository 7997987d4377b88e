//! What an advisory affects: a release by name and version, or a file by its sha256.
//!
//! Ranges follow OSV's evaluation algorithm (<https://ossf.github.io/osv-schema/#evaluation>):
//! a version is affected when it is listed in `versions` or lies in any range. Within a range the
//! events are sorted by version and walked in order: an `introduced` at or below the version turns
//! the range on, a `fixed` at or below it turns it off, a `last_affected` strictly below it turns
//! it off; and when the range has `limit` events the version must lie below one of them. Versions
//! are ordered by PEP 440 for both `ECOSYSTEM` and `SEMVER` ranges.
//!
//! Versions that do not parse as PEP 440 are handled conservatively in both directions:
//! - an event version that does not parse makes its range affect nothing, since its place in the
//!   order is unknown (`introduced: "0"` is the beginning and `limit: "*"` no limit, both always
//!   understood);
//! - a queried version that does not parse is affected only by an exact string in `versions` and
//!   by a range that covers the whole package (`introduced: "0"` and nothing else).
//!
//! A withdrawn advisory answers truthfully here; [`crate::decide`] is where withdrawal counts.

use std::cmp::Ordering;

use palisade_dist::{Version, normalize, parse_version};

use crate::read::{Advisory, Affected, Event, Range};

impl Advisory {
    /// Whether this advisory affects release `version` of project `name` (compared after PEP 503
    /// normalisation).
    pub fn affects(&self, name: &str, version: &str) -> bool {
        let name = normalize(name.trim());
        self.packages.iter().any(|p| p.name == name && p.affects_version(version))
    }

    /// Whether this advisory lists a file with this sha256 digest (hex, either case) among its
    /// affected entries' `package_integrity`.
    pub fn lists_file(&self, sha256: &str) -> bool {
        let sha256 = sha256.trim().to_ascii_lowercase();
        !sha256.is_empty() && self.packages.iter().any(|p| p.sha256.contains(&sha256))
    }

    /// The versions that fix this advisory for project `name`: each range's `fixed` events, in
    /// record order without repeats, as PyPI's JSON API shows in `vulnerabilities[].fixed_in`.
    pub fn fixed_in(&self, name: &str) -> Vec<String> {
        let name = normalize(name.trim());
        let mut out: Vec<String> = Vec::new();
        let fixed =
            self.packages.iter().filter(|p| p.name == name).flat_map(|p| &p.ranges).flat_map(|r| &r.events).filter_map(|e| match e {
                Event::Fixed(v) => Some(v),
                _ => None,
            });
        for v in fixed {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }
}

impl Affected {
    /// Whether `version` of this package is affected: listed in `versions` (PEP 440 equality
    /// when both parse, so `1.0` is `1.0.0`; exact text otherwise) or inside any range.
    pub fn affects_version(&self, version: &str) -> bool {
        let version = version.trim();
        let parsed = parse_version(version).ok();
        let listed = self.versions.iter().any(|v| match (&parsed, parse_version(v)) {
            (Some(a), Ok(b)) => a.cmp(&b) == Ordering::Equal,
            _ => v.trim() == version,
        });
        listed || self.ranges.iter().any(|r| r.contains(parsed.as_ref()))
    }
}

/// A point an event sits at: the beginning of time, or a version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    Zero,
    At(Version),
}

impl Range {
    /// Whether the range covers `version` (`None` when the queried version did not parse).
    fn contains(&self, version: Option<&Version>) -> bool {
        let Some(version) = version else {
            return self.is_whole_package();
        };
        // Place every event; one that cannot be placed makes the range unusable.
        let mut events: Vec<(Point, u8, &Event)> = Vec::with_capacity(self.events.len());
        let mut limits: Vec<Version> = Vec::new();
        for event in &self.events {
            let text = event.version().trim();
            match event {
                Event::Limit(_) if text == "*" => continue,
                Event::Limit(_) => match parse_version(text) {
                    Ok(v) => limits.push(v),
                    Err(_) => return false,
                },
                _ => {
                    let point = match (event, text) {
                        (Event::Introduced(_), "0") => Point::Zero,
                        _ => match parse_version(text) {
                            Ok(v) => Point::At(v),
                            Err(_) => return false,
                        },
                    };
                    // At one version an introduction is applied before the end that meets it, so
                    // `introduced: X, fixed: X` is empty and the order written does not matter.
                    let rank = if matches!(event, Event::Introduced(_)) { 0 } else { 1 };
                    events.push((point, rank, event));
                }
            }
        }
        if !limits.is_empty() && !limits.iter().any(|l| version < l) {
            return false;
        }
        events.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let here = Point::At(version.clone());
        let mut affected = false;
        for (point, _, event) in &events {
            match event {
                Event::Introduced(_) if here >= *point => affected = true,
                Event::Fixed(_) if here >= *point => affected = false,
                Event::LastAffected(_) if here > *point => affected = false,
                _ => {}
            }
        }
        affected
    }

    /// A range that says "every version": `introduced: "0"` with no end (a `limit: "*"` is no end).
    fn is_whole_package(&self) -> bool {
        self.events.iter().all(|e| match e {
            Event::Introduced(v) => v.trim() == "0",
            Event::Limit(v) => v.trim() == "*",
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::RangeKind;

    fn event(text: &str) -> Event {
        let (kind, v) = text.split_once(' ').unwrap();
        let v = v.to_string();
        match kind {
            "introduced" => Event::Introduced(v),
            "fixed" => Event::Fixed(v),
            "last_affected" => Event::LastAffected(v),
            "limit" => Event::Limit(v),
            _ => unreachable!(),
        }
    }

    /// `ranges` is a list of ranges, each a list of `"<kind> <version>"` events; `expected` lists
    /// `(version, affected)` pairs.
    fn check(versions: &[&str], ranges: &[&[&str]], expected: &[(&str, bool)]) {
        let affected = Affected {
            name: "demo".into(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            ranges: ranges
                .iter()
                .map(|events| Range { kind: RangeKind::Ecosystem, events: events.iter().map(|e| event(e)).collect() })
                .collect(),
            sha256: vec![],
        };
        for (version, want) in expected {
            assert_eq!(affected.affects_version(version), *want, "version {version} with versions {versions:?} ranges {ranges:?}");
        }
    }

    #[test]
    fn exact_versions_use_pep440_equality() {
        check(&["1.0"], &[], &[("1.0", true), ("1.0.0", true), ("v1.0", true), ("1.0.1", false), ("1.0rc1", false)]);
        check(&["1.0.0"], &[], &[("1", true), ("1.0.post1", false)]);
        // Text that is not PEP 440 matches itself only.
        check(&["not-a-version"], &[], &[("not-a-version", true), ("1.0", false)]);
    }

    #[test]
    fn whole_package() {
        let all = &[("0.0.1", true), ("99", true), ("1.0a1", true), ("1.0.dev0", true), ("garbage version", true)];
        check(&[], &[&["introduced 0"]], all);
        check(&[], &[&["introduced 0", "limit *"]], all);
    }

    #[test]
    fn introduced_and_fixed() {
        check(
            &[],
            &[&["introduced 1.0", "fixed 2.0"]],
            &[("0.9", false), ("1.0", true), ("1.5", true), ("2.0rc1", true), ("2.0", false), ("2.1", false), ("garbage", false)],
        );
        check(&[], &[&["introduced 0", "fixed 1.0"]], &[("0.1", true), ("1.0.dev1", true), ("1.0", false)]);
    }

    #[test]
    fn last_affected_is_inclusive() {
        check(&[], &[&["introduced 1.0", "last_affected 1.2"]], &[("1.2", true), ("1.2.0", true), ("1.2.post1", false), ("1.3", false)]);
    }

    #[test]
    fn limit_bounds_the_range() {
        check(&[], &[&["introduced 0", "limit 2.0"]], &[("1.9", true), ("2.0", false), ("3", false)]);
        // Several limits: below any one of them is enough.
        check(&[], &[&["introduced 1.0", "limit 2.0", "limit 3.0"]], &[("2.5", true), ("3.0", false)]);
    }

    #[test]
    fn multiple_ranges_and_unsorted_events() {
        // Events are sorted before the walk, whatever order the record wrote them in.
        let events: &[&str] = &["fixed 1.5", "introduced 3.0", "introduced 1.0", "fixed 3.2"];
        let expected = [("0.5", false), ("1.2", true), ("1.5", false), ("2.0", false), ("3.1", true), ("3.2", false)];
        check(&[], &[events], &expected);
        check(&[], &[&["introduced 1.0", "fixed 1.5"], &["introduced 3.0", "fixed 3.2"]], &expected);
        // An empty range (introduced and fixed at one version) affects nothing.
        check(&[], &[&["fixed 1.0", "introduced 1.0"]], &[("1.0", false), ("2.0", false)]);
    }

    #[test]
    fn pre_and_post_releases_order_by_pep440() {
        check(
            &[],
            &[&["introduced 2.0a1", "fixed 2.0.post1"]],
            &[("2.0.dev1", false), ("2.0a1", true), ("2.0b3", true), ("2.0", true), ("2.0+local", true), ("2.0.post1", false)],
        );
    }

    #[test]
    fn unparsable_event_versions_make_the_range_affect_nothing() {
        check(&[], &[&["introduced 0", "fixed banana"]], &[("1.0", false), ("banana", false)]);
        check(&["1.0"], &[&["introduced x.y", "fixed 2.0"]], &[("1.0", true), ("1.5", false)]);
    }

    #[test]
    fn names_digests_and_fixed_in() {
        let a = crate::parse(
            br#"{"id":"PYSEC-1","modified":"2024-01-01T00:00:00Z","affected":[
                {"package":{"ecosystem":"PyPI","name":"Foo.Bar"},
                 "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2"}]},
                           {"type":"SEMVER","events":[{"introduced":"2.0.0"},{"fixed":"2.1.0"}]},
                           {"type":"ECOSYSTEM","events":[{"introduced":"3"},{"fixed":"1.2"}]}],
                 "database_specific":{"indicators":{"package_integrity":[{"hashes":{"sha256":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"}}]}}}]}"#,
        )
        .unwrap();
        assert!(a.affects("foo_bar", "1.0") && a.affects("FOO-BAR", "2.0.5"));
        assert!(!a.affects("foo-bar", "1.2") && !a.affects("foobar", "1.0"));
        assert!(a.lists_file(&"ab".repeat(32)) && a.lists_file(&"AB".repeat(32)));
        assert!(!a.lists_file(&"cd".repeat(32)) && !a.lists_file(""));
        assert_eq!(a.fixed_in("foo.bar"), ["1.2", "2.1.0"]);
        assert!(a.fixed_in("other").is_empty());
    }
}
