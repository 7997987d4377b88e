//! Reading ahead: a client that reads an upstream project's page is about to ask for a file of
//! its newest release, and one that fetches an upstream wheel, or its metadata, is about to ask
//! for that wheel and its dependencies. Where the client's User-Agent describes its environment
//! (pip and uv send Python's version and implementation, the system, the machine and the C
//! library), the mirror fetches and scans those files in the background, `mirror.read_ahead` at a
//! time, so that the first install through a cold mirror waits for upstream and the scanner less.
//!
//! What is read ahead is what a download would fetch, through the same path ([`super::fetch`])
//! and the same decisions: only files the index lists (never a held, blocked or cooling release),
//! only names that go upstream (never a hosted or reserved one). For each dependency that applies
//! to the environment (markers evaluated without extras), the newest final release the
//! requirement accepts is chosen, and of it the wheels that fit the environment best (at most
//! [`FILES_PER_PROJECT`]), else its sdist. A guess that turns out wrong costs upstream traffic and
//! scanner time, never correctness: the client still gets exactly what it asks for.
//!
//! A guess is worked on in two lanes. Its page and the chosen wheel's metadata (upstream's
//! metadata file, or parts of the wheel) are read first, and the dependencies they name are
//! guessed at once: a resolver's whole tree of pages and metadata is ready within a few upstream
//! round trips per level, while the files themselves, each fetched whole and scanned, follow
//! `mirror.read_ahead` at a time. Lookups take twice as many turns: they are small and wait on
//! the network, not on the scanner.
//!
//! The work one request can start is bounded: dependencies are followed a few levels below a
//! file a client asked for (see [`Guess`]), at most
//! [`DEPENDENCIES_PER_FILE`] per file, each guess made once per `mirror.refresh`, and at most
//! [`MAX_QUEUED`] wait for a turn.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use palisade_dist::{Dependency, Libc, Target, Version};

use super::guess::{Guess, PAGE_DEPTH};
use super::{Route, View, fetch, page};
use crate::Core;

/// Files of one project read ahead at most (the best-fitting wheels of one release).
pub const FILES_PER_PROJECT: usize = 2;
/// Read-aheads waiting for a turn in one lane, at most; past it, new ones are dropped.
const MAX_QUEUED: usize = 256;
/// Guesses remembered; past it, expired ones are forgotten, and while none has expired, new
/// guesses are dropped.
const MAX_RECENT: usize = 4096;
/// Dependencies of one file read ahead at most.
const DEPENDENCIES_PER_FILE: usize = 64;
/// The mirror's read-ahead state.
pub(super) struct ReadAhead {
    /// Turns for fetching and scanning files, and for lookups (pages and metadata); none when
    /// reading ahead is off.
    permits: Option<Lanes>,
    /// Jobs waiting or under way, by lane ([`Lane::index`]).
    queued: [AtomicUsize; 2],
    /// Guesses made lately (`page:`, `dep:`, `meta:` and a project), with when: each at most
    /// once within `mirror.refresh`, so that a resolver trying many releases (backtracking)
    /// does not multiply the fetches.
    recent: std::sync::Mutex<HashMap<String, Instant>>,
}

struct Lanes {
    files: Arc<tokio::sync::Semaphore>,
    lookups: Arc<tokio::sync::Semaphore>,
}

/// What a read-ahead job waits on.
#[derive(Clone, Copy)]
enum Lane {
    /// A file fetched whole and scanned.
    File,
    /// A page, and the metadata of the wheel chosen from it.
    Lookup,
}

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::File => 0,
            Lane::Lookup => 1,
        }
    }
}

impl ReadAhead {
    pub(super) fn new(at_once: u32) -> Self {
        let permits = (at_once > 0).then(|| Lanes {
            files: Arc::new(tokio::sync::Semaphore::new(at_once as usize)),
            lookups: Arc::new(tokio::sync::Semaphore::new(2 * at_once as usize)),
        });
        Self { permits, queued: Default::default(), recent: Default::default() }
    }

    pub(super) fn enabled(&self) -> bool {
        self.permits.is_some()
    }

    fn full(&self, lane: Lane) -> bool {
        self.queued[lane.index()].load(Ordering::Relaxed) >= MAX_QUEUED
    }

    /// Whether the guess `key` was made within `every`.
    fn seen(&self, key: &str, every: std::time::Duration) -> bool {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).get(key).is_some_and(|at| at.elapsed() < every)
    }

    /// Whether the guess `key` was not made within `every`; notes it as made now.
    fn first_in(&self, key: &str, every: std::time::Duration) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.get(key).is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        if recent.len() >= MAX_RECENT {
            recent.retain(|_, at| at.elapsed() < every);
            if recent.len() >= MAX_RECENT {
                return false;
            }
        }
        recent.insert(key.to_string(), Instant::now());
        true
    }
}

/// The environment an installer's User-Agent describes: pip's and uv's `{name}/{version} {json}`
/// (linehaul's format: `python`, `implementation.name`, `system.name`, `cpu`, `distro.libc`).
/// `None` for any other client, which is then not read ahead for.
pub fn target_of(user_agent: &str) -> Option<Target> {
    let (_, json) = user_agent.split_once(' ')?;
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let text = |pointer: &str| v.pointer(pointer).and_then(serde_json::Value::as_str);
    let libc = match (text("/distro/libc/lib"), text("/distro/libc/version").and_then(major_minor)) {
        (Some("glibc"), Some((a, b))) => Some(Libc::Glibc(a, b)),
        (Some("musl"), Some((a, b))) => Some(Libc::Musl(a, b)),
        _ => None,
    };
    Target::new(text("/python")?, text("/implementation/name")?, text("/system/name")?, text("/cpu")?, libc)
}

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The files of `view` a client in `target` asking for `dependency` would most likely fetch.
pub fn choose<'v>(view: &'v View, dependency: &Dependency, target: &Target) -> Vec<&'v page::File> {
    let mut releases: BTreeMap<Version, Vec<(u32, &page::File)>> = BTreeMap::new();
    for f in view.listed() {
        if f.yanked.is_some() || !target.python_ok(f.requires_python.as_deref()) {
            continue;
        }
        let Ok(version) = palisade_dist::parse_version(&f.version) else { continue };
        if version.any_prerelease() || !dependency.versions.contains(&version) {
            continue;
        }
        let rank = match f.filename.strip_suffix(".whl") {
            Some(stem) => {
                let mut tags = stem.rsplitn(4, '-');
                let (Some(platform), Some(abi), Some(python)) = (tags.next(), tags.next(), tags.next()) else { continue };
                match target.wheel_rank(python, abi, platform) {
                    Some(r) => r + 1,
                    None => continue,
                }
            }
            // An sdist, when no wheel fits.
            None => 0,
        };
        releases.entry(version).or_default().push((rank, f));
    }
    let Some((_, files)) = releases.into_iter().next_back() else { return Vec::new() };
    let best = files.iter().map(|(r, _)| *r).max().unwrap_or(0);
    files.into_iter().filter(|(r, _)| *r == best).map(|(_, f)| f).take(FILES_PER_PROJECT).collect()
}

impl Core {
    /// After a client's request for the metadata of `filename`, a file of `project`: fetches the
    /// file itself ahead, the first time the project's metadata is asked for lately (resolvers
    /// ask for the newest release first; one that backtracks asks for many more, each of which
    /// it will not download).
    pub(super) fn read_ahead_file(&self, project: &str, filename: &str, guess: Guess) {
        if self.mirror.ahead.full(Lane::File) || !self.mirror.ahead.first_in(&format!("meta:{project}"), self.config.mirror.refresh_every())
        {
            return;
        }
        self.file_ahead(filename, guess);
    }

    /// Fetches `filename` ahead, in the file lane.
    fn file_ahead(&self, filename: &str, guess: Guess) {
        let (core, filename) = (self.clone(), filename.to_string());
        self.spawn_ahead(Lane::File, async move {
            core.mirror.counters.read_ahead.fetch_add(1, Ordering::Relaxed);
            core.fetch_ahead(&filename, guess).await;
        });
    }

    /// A client in `client` was served the page of the upstream project `normalized`: the files
    /// it will most likely ask for next (the newest final release's best files for it) are read
    /// ahead, unless the project was guessed as a dependency lately. pip asks for the pages of
    /// all the requirements it is given before it downloads the first file, so their files are
    /// fetched and scanned side by side rather than one by one.
    pub fn mirror_read_ahead_page(&self, normalized: &str, client: Option<Target>) {
        let Some(guess) = self.ahead_for(client) else { return };
        let (ahead, every) = (&self.mirror.ahead, self.config.mirror.refresh_every());
        // A project reached as a dependency was guessed with its requirement, a better guess
        // than the newest release.
        if ahead.full(Lane::Lookup)
            || ahead.seen(&format!("dep:{normalized}"), every)
            || !ahead.first_in(&format!("page:{normalized}"), every)
        {
            return;
        }
        let dependency = Dependency { name: normalized.to_string(), versions: palisade_dist::VersionSpecifiers::empty() };
        let core = self.clone();
        self.spawn_ahead(Lane::Lookup, async move { core.read_ahead_project(&dependency, guess.with_depth(PAGE_DEPTH)).await });
    }

    /// The dependencies `requires_dist` names that apply to the guess's environment, each
    /// fetched ahead one level down (none past the guess's depth; at most
    /// [`DEPENDENCIES_PER_FILE`]).
    pub(super) fn read_ahead_dependencies(&self, requires_dist: &[String], guess: &Guess) {
        let Some(next) = guess.deeper() else { return };
        let ahead = &self.mirror.ahead;
        let every = self.config.mirror.refresh_every();
        let dependencies = requires_dist.iter().filter_map(|line| next.target().dependency(line)).take(DEPENDENCIES_PER_FILE);
        for dependency in dependencies {
            if ahead.full(Lane::Lookup) {
                tracing::debug!("read-ahead queue full; guesses dropped");
                break;
            }
            if !ahead.first_in(&format!("dep:{}", dependency.name), every) {
                continue;
            }
            let (core, next) = (self.clone(), next.clone());
            self.spawn_ahead(Lane::Lookup, async move { core.read_ahead_project(&dependency, next).await });
        }
    }

    /// In the lookup lane: the project's page, the files chosen from it, and the first chosen
    /// wheel's metadata, whose dependencies are guessed at once; the files are queued in the file
    /// lane.
    async fn read_ahead_project(&self, dependency: &Dependency, guess: Guess) {
        let name = dependency.name.as_str();
        match self.mirror_route(name).await {
            Ok(Route::Mirror | Route::Merged) => {}
            Ok(Route::Local) => return,
            Err(e) => return tracing::debug!(project = name, error = %e, "read-ahead: no route"),
        }
        let view = match self.mirror_view(name).await {
            Ok(Some(view)) => view,
            Ok(None) => return,
            Err(e) => return tracing::debug!(project = name, error = %e, "read-ahead: no page"),
        };
        let chosen = choose(&view, dependency, guess.target());
        for file in &chosen {
            self.file_ahead(&file.filename, guess.clone());
        }
        // The wheels chosen are one release's: one's dependencies are the others'.
        if let Some(wheel) = chosen.iter().find(|f| f.filename.ends_with(".whl")) {
            match self.metadata_ahead(wheel).await {
                Ok(Some(data)) => match palisade_dist::CoreMetadata::read_fields(&data) {
                    Ok(fields) => self.read_ahead_dependencies(&fields.requires_dist, &guess),
                    Err(e) => tracing::debug!(file = %wheel.filename, error = %e, "read-ahead: unreadable metadata"),
                },
                // Only the whole file tells: its fetch reads the dependencies ahead.
                Ok(None) => {}
                Err(e) => tracing::debug!(file = %wheel.filename, error = %e, "read-ahead: no metadata"),
            }
        }
    }

    /// Fetches `filename` as a download would, deciding on it now (the decision a job queued
    /// earlier saw may have changed: a file of the release was just blocked).
    async fn fetch_ahead(&self, filename: &str, guess: Guess) {
        let fetched = match self.mirror_file_decision(filename).await {
            Ok((file, view)) => fetch::file(self, &view, &file, Some(guess), fetch::For::ReadAhead).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = fetched {
            tracing::debug!(file = filename, error = %e, "read-ahead fetch not done");
        }
    }

    /// Runs `work` when a turn in `lane` is free; drops it when too many wait.
    fn spawn_ahead(&self, lane: Lane, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let ahead = &self.mirror.ahead;
        let Some(lanes) = &ahead.permits else { return };
        let permits = match lane {
            Lane::File => lanes.files.clone(),
            Lane::Lookup => lanes.lookups.clone(),
        };
        let queued = &ahead.queued[lane.index()];
        if queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
            queued.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!("read-ahead queue full; a guess is dropped");
            return;
        }
        let mirror = self.mirror.clone();
        tokio::spawn(async move {
            if let Ok(_turn) = permits.acquire_owned().await {
                work.await;
            }
            mirror.ahead.queued[lane.index()].fetch_sub(1, Ordering::Relaxed);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIP: &str = r#"pip/26.3 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc","version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"26.3"},"openssl_version":"OpenSSL 3.0.11 19 Sep 2023","python":"3.11.7","system":{"name":"Linux","release":"6.1.0"}}"#;

    #[test]
    fn pip_describes_its_environment_and_other_clients_do_not() {
        let t = target_of(PIP).expect("pip's user agent describes an environment");
        assert!(t.wheel_rank("cp311", "cp311", "manylinux_2_28_x86_64").is_some());
        assert!(t.wheel_rank("cp311", "cp311", "manylinux_2_38_x86_64").is_none(), "glibc 2.36 was read");
        assert!(target_of("curl/8.5.0").is_none());
        assert!(target_of("Mozilla/5.0 (X11; Linux x86_64)").is_none());
        assert!(target_of(r#"pip/26.3 {"python":"3.11.7"}"#).is_none());
    }

    fn file(filename: &str, version: &str) -> page::File {
        page::File {
            filename: filename.into(),
            version: version.into(),
            release: version.into(),
            url: format!("https://files.example/{filename}"),
            sha256: "0".repeat(64),
            size: Some(1),
            upload_time: Some(0),
            requires_python: None,
            yanked: None,
            metadata_sha256: None,
            provenance: None,
        }
    }

    fn view(files: Vec<page::File>) -> View {
        let decisions = vec![super::super::Decision::Listed; files.len()].into();
        let page = page::Page { name: "demo".into(), files, ..Default::default() };
        View { upstream: "up".into(), page: Arc::new(page), decisions, provenance: Default::default(), stale: false, checked_at: 0 }
    }

    #[test]
    fn the_newest_accepted_release_and_its_best_wheels() {
        let t = target_of(PIP).unwrap();
        let mut newer = file("demo-3.0-cp311-cp311-manylinux_2_17_x86_64.whl", "3.0");
        newer.requires_python = Some(">=3.12".into());
        let mut yanked = file("demo-2.5-py3-none-any.whl", "2.5");
        yanked.yanked = Some(String::new());
        let v = view(vec![
            file("demo-1.0-py3-none-any.whl", "1.0"),
            file("demo-2.0.tar.gz", "2.0"),
            file("demo-2.0-py3-none-any.whl", "2.0"),
            file("demo-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "2.0"),
            file("demo-2.0-cp311-cp311-win_amd64.whl", "2.0"),
            yanked,
            file("demo-2.6b1-py3-none-any.whl", "2.6b1"),
            newer,
        ]);
        let any = t.dependency("demo").unwrap();
        let names = |files: Vec<&page::File>| files.iter().map(|f| f.filename.clone()).collect::<Vec<_>>();
        assert_eq!(names(choose(&v, &any, &t)), ["demo-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]);
        let old = t.dependency("demo<2").unwrap();
        assert_eq!(names(choose(&v, &old, &t)), ["demo-1.0-py3-none-any.whl"]);
        let none = t.dependency("demo>=4").unwrap();
        assert!(choose(&v, &none, &t).is_empty());
        // Only an sdist: the sdist.
        let sdist = view(vec![file("demo-1.5.tar.gz", "1.5"), file("demo-1.5-cp311-cp311-win_amd64.whl", "1.5")]);
        assert_eq!(names(choose(&sdist, &any, &t)), ["demo-1.5.tar.gz"]);
    }

    #[test]
    fn files_the_index_does_not_list_are_never_chosen() {
        let t = target_of(PIP).unwrap();
        let mut v = view(vec![file("demo-1.0-py3-none-any.whl", "1.0"), file("demo-2.0-py3-none-any.whl", "2.0")]);
        v.decisions = vec![super::super::Decision::Listed, super::super::Decision::TooNew { until: None }].into();
        let names: Vec<_> = choose(&v, &t.dependency("demo").unwrap(), &t).iter().map(|f| f.filename.clone()).collect();
        assert_eq!(names, ["demo-1.0-py3-none-any.whl"]);
    }
}
