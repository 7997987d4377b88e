//! `palisade scan` and `palisade rules check`: the scanner as an offline command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use palisade_scan::{ScanConfig, Scanner, Verdict, format};
use rayon::prelude::*;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ScanArgs {
    /// Files (.whl, .tar.gz, .zip, .tar.bz2, .egg, ...) or folders to search for them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "sarif"])]
    format: String,
    /// Extra folder of YARA rules (repeatable).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// A list of popular project names (one per line) to check typosquatting against.
    #[arg(long)]
    popular: Option<PathBuf>,
    /// Only print files that are not clean (text format).
    #[arg(long)]
    only_flagged: bool,
    /// Threads that analyse the members of one file (as the server does for an upload); files
    /// are scanned in parallel anyway.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    member_threads: u16,
    /// Analyse every file afresh: by default a Python file met again (a wheel repeating its
    /// sdist, a version repeating the last) reuses its analysis, as the server does. Reports
    /// are the same either way; this is for timing first uploads.
    #[arg(long)]
    cold: bool,
    /// A file of an earlier release to compare with (repeatable, latest release first): each
    /// scanned file gets findings for what it can do that none of these releases could
    /// (install-time code, network, programs, dynamic code, obfuscation, credentials, new
    /// dependencies, entry points, .pth files), as the server compares an upload with the
    /// project's last three releases.
    #[arg(long = "against", value_name = "OLD_FILE")]
    against: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Compile the .yar/.yara files of DIR and report errors.
    Check { dir: PathBuf },
}

const DIST_SUFFIXES: &[&str] = &[".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".egg", ".tar"];

fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
                let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                found.sort();
                for f in found {
                    if f.is_dir() {
                        stack.push(f);
                    } else if f
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| DIST_SUFFIXES.iter().any(|s| n.to_ascii_lowercase().ends_with(s)))
                    {
                        out.push(f);
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    Ok(out)
}

pub fn run(args: &ScanArgs, quiet: bool) -> ExitCode {
    let files = match collect(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let popular = match &args.popular {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let scanner = match Scanner::new(ScanConfig {
        extra_rule_dirs: args.rules.clone(),
        popular,
        member_threads: usize::from(args.member_threads),
        reuse_bytes: if args.cold { 0 } else { palisade_scan::DEFAULT_REUSE_BYTES },
        ..ScanConfig::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut earlier = Vec::new();
    for f in &args.against {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !f.is_file() {
            eprintln!("error: {} is not a file", f.display());
            return ExitCode::from(2);
        }
        let r = scanner.scan_path(f, name);
        earlier.push(palisade_scan::EarlierFile {
            release: r.version.clone().unwrap_or_else(|| name.to_string()),
            filename: name.to_string(),
            uses: r.capabilities,
        });
    }
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    if files.len() < 2 || quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reports: Vec<(String, palisade_scan::Report)> = files
        .par_iter()
        .map(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let mut r = scanner.scan_path(f, name);
            if !earlier.is_empty() {
                let releases = palisade_scan::releases(name, earlier.clone(), usize::MAX);
                r = r.compared_with(&releases, &scanner.config().thresholds);
            }
            bar.inc(1);
            (f.display().to_string(), r)
        })
        .collect();
    bar.finish_and_clear();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let flagged = reports.iter().filter(|(_, r)| r.verdict != Verdict::Clean).count();
    let result = match args.format.as_str() {
        "json" => reports.iter().try_for_each(|(p, r)| writeln!(out, "{}", format::json(p, r))),
        "sarif" => writeln!(out, "{}", serde_json::to_string_pretty(&format::sarif(&reports)).unwrap_or_default()),
        _ => reports
            .iter()
            .filter(|(_, r)| !args.only_flagged || r.verdict != Verdict::Clean)
            .try_for_each(|(p, r)| write!(out, "{}", format::text(p, r))),
    };
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if !quiet && args.format == "text" {
        eprintln!("scanned {} file(s): {} clean, {flagged} flagged", reports.len(), reports.len() - flagged);
    }
    if flagged > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

pub fn check_rules(dir: &Path) -> ExitCode {
    match palisade_scan::check_rules_dir(dir) {
        Ok(n) => {
            println!("{n} rule(s) in {} compile", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
