//! `palisade mirror`: the pull-through mirror's state (`status`), cooldown exemptions, decisions
//! on upstream files the scanner held, and `prefetch`, which warms the cache from a requirements
//! file or a uv lock file (for air-gapped use).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use palisade_core::admin::Actor;
use palisade_core::mirror::Decision;
use palisade_core::{Core, Error};

use crate::time;

#[derive(Subcommand)]
pub enum MirrorCmd {
    /// The upstreams, what is kept, the files held or blocked, releases in their cooldown,
    /// exemptions, and hosted projects whose names exist upstream. Asks no upstream.
    Status,
    /// Let a project's upstream releases through before `mirror.min_age`, until DATE
    /// (`2026-12-31` or an RFC 3339 time), with a reason. Audited.
    Exempt {
        project: String,
        #[arg(long)]
        until: String,
        #[arg(long)]
        reason: String,
    },
    /// Serve an upstream file the scanner held for review (a false positive). Audited.
    Release {
        filename: String,
        #[arg(long)]
        note: String,
    },
    /// Block an upstream file for good (its release leaves the index). Audited.
    Block {
        filename: String,
        #[arg(long)]
        note: String,
    },
    /// Fetch, check and scan now every file a requirements file or a uv lock file names, so
    /// that installs work later without upstream. Exit code 1 when any could not be had.
    Prefetch(PrefetchArgs),
}

#[derive(Args)]
pub struct PrefetchArgs {
    /// A requirements file (`name==version`, optionally with `--hash=sha256:...`; `-r` includes
    /// are followed). An unpinned name takes its newest listed version.
    #[arg(short = 'r', long = "requirement")]
    requirements: Vec<PathBuf>,
    /// A uv lock file (`uv.lock`): every sdist and wheel it lists from a registry.
    #[arg(long)]
    lock: Vec<PathBuf>,
}

pub async fn run(core: &Core, cmd: MirrorCmd, quiet: bool) -> anyhow::Result<()> {
    if !core.config.mirror.enabled() {
        bail!("no upstream is configured: add [[mirror.upstreams]] with name and url (docs/mirror.md)");
    }
    match cmd {
        MirrorCmd::Status => status(core).await,
        MirrorCmd::Exempt { project, until, reason } => {
            let until = parse_until(&until)?;
            let e = core.mirror_exempt(&project, until, &reason, &Actor::cli()).await?;
            eprintln!("{}'s upstream releases skip the cooldown until {} ({})", e.project, time(e.until_at), e.reason);
            Ok(())
        }
        MirrorCmd::Release { filename, note } => {
            let f = core.mirror_decide(&filename, true, &note, &Actor::cli()).await?;
            eprintln!("{} is served", f.filename);
            Ok(())
        }
        MirrorCmd::Block { filename, note } => {
            let f = core.mirror_decide(&filename, false, &note, &Actor::cli()).await?;
            eprintln!("{} is blocked; its release left the index", f.filename);
            Ok(())
        }
        MirrorCmd::Prefetch(args) => prefetch(core, args, quiet).await,
    }
}

/// `2026-12-31` (midnight UTC) or an RFC 3339 time, in microseconds.
fn parse_until(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_microsecond());
    }
    let date: jiff::civil::Date =
        text.parse().with_context(|| format!("--until {text:?}: expected a date (2026-12-31) or an RFC 3339 time"))?;
    Ok(date.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp().as_microsecond())
}

async fn status(core: &Core) -> anyhow::Result<()> {
    let c = &core.config.mirror;
    println!("upstreams:");
    for u in &c.upstreams {
        println!("  {:<16} {}", u.name, u.url);
    }
    println!(
        "policy: min_age {}, upstream_names {}, reserved [{}], merge [{}]",
        c.min_age,
        c.upstream_names,
        c.reserved.join(", "),
        c.merge.join(", ")
    );
    let stats = core.db.mirror_stats().await?;
    println!(
        "pages: {} kept ({} bytes of {}), {} names missing upstream, {} stale{}",
        stats.pages - stats.missing,
        stats.page_bytes,
        c.cache_bytes,
        stats.missing,
        stats.stale,
        if stats.oldest_fetch > 0 { format!(", oldest fetched {}", time(stats.oldest_fetch)) } else { String::new() }
    );
    let files: Vec<String> = stats.files.iter().map(|(s, n, b)| format!("{n} {s} ({b} bytes)")).collect();
    println!("files: {}", if files.is_empty() { "none".to_string() } else { files.join(", ") });
    let refused = core.db.mirror_files_not_published().await?;
    if !refused.is_empty() {
        println!("held or blocked files:");
        for f in refused {
            println!("  {:<60} {:<12} {}", f.filename, f.status, f.reason);
        }
    }
    let mut holds = Vec::new();
    let mut stale = Vec::new();
    for view in core.mirror_kept_views().await? {
        if view.stale {
            stale.push(format!("{} (last asked {})", view.page.name, time(view.checked_at)));
        }
        // By release (canonical version), shown as its first file spells it.
        let mut releases: BTreeMap<String, (String, Option<i64>)> = BTreeMap::new();
        for (f, d) in view.page.files.iter().zip(view.decisions.iter()) {
            if let Decision::TooNew { until } = d {
                let entry = releases.entry(f.release.clone()).or_insert((f.version.clone(), *until));
                entry.1 = entry.1.max(*until);
            }
        }
        for (version, until) in releases.into_values() {
            holds.push(format!(
                "{} {version}: {}",
                view.page.name,
                until.map(|t| format!("until {}", time(t))).unwrap_or_else(|| "no upload time upstream".into())
            ));
        }
    }
    if !stale.is_empty() {
        println!("served stale (upstream failed):\n  {}", stale.join("\n  "));
    }
    if !holds.is_empty() {
        println!("in their cooldown:\n  {}", holds.join("\n  "));
    }
    let exemptions = core.db.exemptions(None, palisade_store::now_micros()).await?;
    if !exemptions.is_empty() {
        println!("exemptions:");
        for e in exemptions {
            println!("  {:<24} until {}  by {}: {}", e.project, time(e.until_at), e.actor, e.reason);
        }
    }
    let shadows = core.db.shadows(None).await?;
    if !shadows.is_empty() {
        println!("hosted projects whose names exist upstream:");
        for s in shadows {
            println!("  {:<24} on {} (found {})", s.project, s.upstream, time(s.found_at));
        }
    }
    Ok(())
}

/// What to fetch for one project: named files (by hash or filename), a pinned version, or the
/// newest listed version.
#[derive(Debug, Default)]
struct Want {
    versions: Vec<String>,
    hashes: Vec<String>,
    filenames: Vec<String>,
    newest: bool,
}

async fn prefetch(core: &Core, args: PrefetchArgs, quiet: bool) -> anyhow::Result<()> {
    if args.requirements.is_empty() && args.lock.is_empty() {
        bail!("name a requirements file (-r) or a uv lock file (--lock)");
    }
    let mut wants: BTreeMap<String, Want> = BTreeMap::new();
    for path in &args.requirements {
        read_requirements(path, &mut wants, 0)?;
    }
    for path in &args.lock {
        read_lock(path, &mut wants)?;
    }
    // The files, project by project.
    let mut files: Vec<(String, String)> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for (project, want) in &wants {
        let view = match core.mirror_route(project).await? {
            palisade_core::mirror::Route::Local => {
                problems.push(format!("{project}: hosted here or reserved, not mirrored"));
                continue;
            }
            _ => core.mirror_view(project).await,
        };
        let view = match view {
            Ok(Some(v)) => v,
            Ok(None) => {
                problems.push(format!("{project}: no upstream has it"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{project}: {e}"));
                continue;
            }
        };
        let newest = view
            .listed()
            .filter_map(|f| palisade_dist::parse_version(&f.version).ok().map(|v| (v, f.release.clone())))
            .filter(|(v, _)| !v.any_prerelease())
            .max()
            .map(|(_, r)| r);
        let canonical: Vec<String> = want
            .versions
            .iter()
            .filter_map(|v| palisade_dist::parse_version(v).ok())
            .map(|v| palisade_dist::canonical_version(&v))
            .collect();
        let mut matched = 0;
        for (f, d) in view.page.files.iter().zip(view.decisions.iter()) {
            let wanted = if !want.hashes.is_empty() || !want.filenames.is_empty() {
                want.hashes.contains(&f.sha256) || want.filenames.contains(&f.filename)
            } else if want.newest {
                newest.as_deref() == Some(f.release.as_str())
            } else {
                canonical.contains(&f.release)
            };
            if !wanted {
                continue;
            }
            matched += 1;
            match d.message(&f.filename, &core.config.mirror.min_age) {
                None => files.push((project.clone(), f.filename.clone())),
                Some(why) => problems.push(why),
            }
        }
        if matched == 0 {
            problems.push(format!("{project}: no listed file matches what was asked"));
        }
    }
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut done = 0;
    for (_, filename) in &files {
        bar.set_message(filename.clone());
        match core.mirror_download(filename, None).await {
            Ok(_) => done += 1,
            Err(e @ (Error::Forbidden(_) | Error::NotFound(_) | Error::BadGateway(_))) => {
                bar.suspend(|| eprintln!("{e}"));
                problems.push(e.to_string());
            }
            Err(e) => {
                bar.abandon();
                bail!("stopped at {filename}: {e}");
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("{done} file(s) of {} project(s) are cached, checked and scanned", wants.len());
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  {p}");
        }
        bail!("{} problem(s): installs of these will fail without upstream", problems.len());
    }
    Ok(())
}

/// Reads a requirements file: `name==version`, `name[extra]==version ; marker`, `--hash=sha256:`
/// options, `\` continuations, comments, and `-r`/`-c` includes (relative to the file).
fn read_requirements(path: &Path, wants: &mut BTreeMap<String, Want>, depth: usize) -> anyhow::Result<()> {
    if depth > 10 {
        bail!("{}: includes nest too deep", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for (n, raw) in joined.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some(include) = first.strip_prefix("-r").or_else(|| first.strip_prefix("--requirement")).or_else(|| first.strip_prefix("-c"))
        {
            let target = include.trim_start_matches('=').trim();
            let target = if target.is_empty() { words.next().unwrap_or("") } else { target };
            let base = path.parent().unwrap_or(Path::new("."));
            read_requirements(&base.join(target), wants, depth + 1)?;
            continue;
        }
        if first.starts_with('-') {
            // Index options and the like: not for the mirror to act on.
            continue;
        }
        let spec = line.split(';').next().unwrap_or("").split(" --").next().unwrap_or("").trim();
        let end = spec.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))).unwrap_or(spec.len());
        let (name, mut rest) = (&spec[..end], spec[end..].trim_start());
        if rest.starts_with('[') {
            rest = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
        }
        let version = match rest.strip_prefix("===").or_else(|| rest.strip_prefix("==")) {
            Some(v) if !v.contains([',', '*']) => Some(v.trim().to_string()),
            _ => None,
        };
        let operator = ["===", "==", ">=", "<=", "!=", "~=", ">", "<"].iter().any(|op| rest.starts_with(op));
        if palisade_dist::ProjectName::new(name).is_err() || !(rest.is_empty() || operator) {
            bail!("{}:{}: cannot read {raw:?} (expected name==version)", path.display(), n + 1);
        }
        let want = wants.entry(palisade_dist::normalize(name)).or_default();
        for h in line.split_whitespace().filter_map(|w| w.strip_prefix("--hash=sha256:")) {
            want.hashes.push(h.to_ascii_lowercase());
        }
        match version {
            Some(v) => want.versions.push(v),
            None => want.newest = true,
        }
    }
    Ok(())
}

/// Reads a uv lock file: the sdists and wheels of every package from a registry.
fn read_lock(path: &Path, wants: &mut BTreeMap<String, Want>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lock: toml::Table = text.parse().with_context(|| format!("{} is not TOML", path.display()))?;
    let packages = lock.get("package").and_then(|p| p.as_array()).with_context(|| format!("{}: no [[package]] entries", path.display()))?;
    for p in packages {
        let Some(name) = p.get("name").and_then(|n| n.as_str()) else { continue };
        if p.get("source").and_then(|s| s.get("registry")).is_none() {
            continue;
        }
        let want = wants.entry(palisade_dist::normalize(name)).or_default();
        let mut add = |entry: &toml::Value| {
            if let Some(h) = entry.get("hash").and_then(|h| h.as_str()).and_then(|h| h.strip_prefix("sha256:")) {
                want.hashes.push(h.to_ascii_lowercase());
            }
            if let Some(u) = entry.get("url").and_then(|u| u.as_str()).and_then(|u| u.rsplit('/').next()) {
                want.filenames.push(percent_decode(u));
            }
        };
        if let Some(sdist) = p.get("sdist") {
            add(sdist);
        }
        for w in p.get("wheels").and_then(|w| w.as_array()).into_iter().flatten() {
            add(w);
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_files_are_read_as_pip_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("more.txt"), "six\n").unwrap();
        let main = dir.path().join("req.txt");
        std::fs::write(
            &main,
            "# compiled\n--index-url https://x/simple/\nRequests[socks]==2.31.0 ; python_version >= \"3.8\" \\\n    --hash=sha256:ABCD \\\n    --hash=sha256:ef01\nidna>=3  # newest\n-r more.txt\n",
        )
        .unwrap();
        let mut wants = BTreeMap::new();
        read_requirements(&main, &mut wants, 0).unwrap();
        assert_eq!(wants["requests"].versions, vec!["2.31.0"]);
        assert_eq!(wants["requests"].hashes, vec!["abcd", "ef01"]);
        assert!(wants["idna"].newest);
        assert!(wants["six"].newest);
        std::fs::write(&main, "not a requirement!!\n").unwrap();
        assert!(read_requirements(&main, &mut BTreeMap::new(), 0).is_err());
    }

    #[test]
    fn lock_files_name_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("uv.lock");
        std::fs::write(
            &lock,
            r#"version = 1
[[package]]
name = "Demo"
version = "1.0"
source = { registry = "http://127.0.0.1/simple/" }
sdist = { url = "http://127.0.0.1/files/demo-1.0.tar.gz", hash = "sha256:AA", size = 1 }
wheels = [{ url = "http://127.0.0.1/files/demo-1.0-py3-none-any.whl", hash = "sha256:bb" }]
[[package]]
name = "local"
version = "0.1"
source = { editable = "." }
"#,
        )
        .unwrap();
        let mut wants = BTreeMap::new();
        read_lock(&lock, &mut wants).unwrap();
        assert_eq!(wants["demo"].hashes, vec!["aa", "bb"]);
        assert_eq!(wants["demo"].filenames, vec!["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl"]);
        assert!(!wants.contains_key("local"));
    }

    #[test]
    fn until_reads_dates_and_times() {
        assert_eq!(parse_until("2026-12-31").unwrap(), parse_until("2026-12-31T00:00:00Z").unwrap());
        assert!(parse_until("soon").is_err());
    }
}
