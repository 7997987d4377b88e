//! `palisade log`: the transparency log. `key` and `audit` are the operator's (they open the
//! data directory); `verify` is anyone's: it reads a Palisade's log over HTTP, checks it the way
//! an auditor would, and needs nothing of the server but its URL and its verifier key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use palisade_core::Core;
use palisade_tlog::{Checkpoint, TileSource};
use sha2::{Digest, Sha256};

#[derive(Subcommand)]
pub enum LogCmd {
    /// Print the log's verifier key (`<name>+<id>+<key>`), the one users pin.
    Key {
        /// Print the private signing key instead, to give another node the same key.
        #[arg(long)]
        private: bool,
    },
    /// Recompute the log against the database and the stored files; exits 1 on any difference.
    Audit,
    /// Check a Palisade's log from outside: the checkpoint's signature, its consistency with the
    /// last one seen, the tree recomputed from the tiles, and that each FILE is in the log.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The instance's base URL (the log is at BASE_URL/log/). Without it, only `--proof` files
    /// are checked, offline.
    #[arg(long, required_unless_present = "proofs")]
    url: Option<String>,
    /// The log's verifier key, as `palisade log key` prints it.
    #[arg(long)]
    key: String,
    /// The log's origin, when it is not the key's name (the default).
    #[arg(long)]
    origin: Option<String>,
    /// A tlog-proof (`/log/proof/<filename>`) to check offline against the key (repeatable); with
    /// FILE arguments, each file must be the one a proof's entry publishes.
    #[arg(long = "proof", value_name = "FILE.tlog-proof")]
    proofs: Vec<PathBuf>,
    /// Where the last verified checkpoint is kept between runs [default: ~/.local/state/palisade-log/<key id>].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Distribution files that must be in the log (matched by their sha256).
    files: Vec<PathBuf>,
}

pub async fn run(core: &Core, cmd: LogCmd) -> anyhow::Result<()> {
    match cmd {
        LogCmd::Key { private } => {
            let log = core.open_log().await?;
            println!("{}", if private { log.private_key_text() } else { log.verifier_key() });
            Ok(())
        }
        LogCmd::Audit => {
            let log = core.open_log().await?;
            // Entries no checkpoint covers yet are checked too; sign for them first when possible.
            core.sequence_log(&log).await?;
            let problems = core.audit_log(&log).await?;
            if problems.is_empty() {
                let size = core.db.latest_checkpoint().await?.map_or(0, |c| c.size);
                eprintln!("the log ({size} entries) agrees with the database and the stored files");
                return Ok(());
            }
            for p in &problems {
                println!("MISMATCH: {p}");
            }
            Err(anyhow!("{} difference(s) between the log and what is stored", problems.len()))
        }
        LogCmd::Verify(_) => unreachable!("verify runs without the data directory"),
    }
}

/// Fetches tiles over HTTP from a blocking thread.
struct Http {
    client: reqwest::Client,
    base: String,
    handle: tokio::runtime::Handle,
}

impl Http {
    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}/log/{path}", self.base);
        self.handle.block_on(async {
            let resp = self.client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: {}", resp.status()));
            }
            let bytes = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
            Ok(bytes.to_vec())
        })
    }
}

impl TileSource for Http {
    fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.get(path)
    }
}

fn default_state(key: &str) -> PathBuf {
    let id = key.split('+').nth(1).unwrap_or("log");
    let home = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    home.join("palisade-log").join(id)
}

fn describe(c: &Checkpoint) -> String {
    format!("{} size {} root {}", c.origin, c.size, c.root.to_base64())
}

/// `palisade log verify`. Exit 0: all checks passed. Exit 1 with `SECURITY ERROR`: the log
/// contradicts itself or what it showed before (a fork, a rewritten history, a forged
/// checkpoint, a proof that does not check). Exit 1 otherwise: a file not in the log (or removed
/// from it since), an unreachable server, unreadable input.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let outcome = (|| -> Result<(), Failure> {
        let origin = args.origin.clone().unwrap_or_else(|| args.key.split('+').next().unwrap_or_default().to_owned());
        let mut files = args.files.iter().map(|f| digest_of(f).map(|d| (f.clone(), d))).collect::<Result<Vec<_>, _>>()?;
        for proof in &args.proofs {
            check_proof_file(proof, &args.key, &origin, &mut files)?;
        }
        let Some(url) = &args.url else {
            if let Some((f, _)) = files.first() {
                return Err(Failure::Other(anyhow!("{} matches none of the proofs given", f.display())));
            }
            return Ok(());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(anyhow::Error::from)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("palisade-log-verify/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(anyhow::Error::from)?;
        let mut source = Http { client, base: url.trim_end_matches('/').to_owned(), handle: runtime.handle().clone() };
        let state = args.state.clone().unwrap_or_else(|| default_state(&args.key));
        let key = args.key.clone();
        runtime
            .block_on(async move { tokio::task::spawn_blocking(move || check(&mut source, &key, &origin, &state, &files)).await })
            .map_err(|e| Failure::Other(e.into()))?
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Security(msg)) => {
            eprintln!("SECURITY ERROR: {msg}");
            ExitCode::FAILURE
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// The log is not what it claims, or not what it was.
    Security(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// A failure of the log's evidence is a security error; one of fetching it is not.
fn judged(e: palisade_tlog::Error, what: impl FnOnce(&palisade_tlog::Error) -> String) -> Failure {
    match e {
        palisade_tlog::Error::Fetch { .. } => Failure::Other(anyhow!("{e}")),
        other => Failure::Security(what(&other)),
    }
}

fn digest_of(file: &Path) -> Result<String, Failure> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(format!("sha256:{}", hex_lower(&Sha256::digest(&bytes))))
}

/// The words of an entry that publishes or holds a file: (event, filename, `sha256:<hex>`).
fn file_entry(entry: &str) -> Option<(&str, &str, &str)> {
    let words: Vec<&str> = entry.split(' ').collect();
    match words.as_slice() {
        ["pypi", event @ ("publish" | "hold"), _project, _version, filename, digest, ..] => Some((event, filename, digest)),
        ["pypi", event @ ("remove" | "confirm" | "quarantine" | "release"), _project, filename, digest, ..] => {
            Some((event, filename, digest))
        }
        _ => None,
    }
}

/// Checks one tlog-proof offline: its checkpoint's signature and origin, and the inclusion of the
/// entry its `extra` line carries. Files whose sha256 the entry publishes are checked off.
fn check_proof_file(path: &Path, key: &str, origin: &str, files: &mut Vec<(PathBuf, String)>) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("extra "))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .ok_or_else(|| anyhow!("{}: a Palisade proof carries its entry on an `extra` line; this one has none", path.display()))?;
    let info = palisade_tlog::check_proof(&text, key, &entry)
        .map_err(|e| Failure::Security(format!("{}: the proof does not check: {e}", path.display())))?;
    if info.checkpoint.origin != origin {
        return Err(Failure::Security(format!(
            "{}: the proof's checkpoint is for the log {:?}, not {origin:?}",
            path.display(),
            info.checkpoint.origin
        )));
    }
    let entry = String::from_utf8_lossy(&entry).into_owned();
    println!("OK proof {}: entry {} of the log at size {}: {entry}", path.display(), info.index, info.checkpoint.size);
    if let Some((event, _, digest)) = file_entry(&entry)
        && event == "publish"
    {
        files.retain(|(f, d)| {
            let matched = d == digest;
            if matched {
                println!("OK {}: published by entry {}", f.display(), info.index);
            }
            !matched
        });
    }
    Ok(())
}

fn check(source: &mut Http, key: &str, origin: &str, state: &Path, files: &[(PathBuf, String)]) -> Result<(), Failure> {
    let note = String::from_utf8(source.get("checkpoint").map_err(|e| anyhow!(e))?).map_err(|_| anyhow!("the checkpoint is not text"))?;
    let new = palisade_tlog::open_checkpoint(&note, key)
        .map_err(|e| Failure::Security(format!("the served checkpoint does not verify with the pinned key: {e}\n{note}")))?;
    if new.origin != origin {
        return Err(Failure::Security(format!(
            "the served checkpoint is for the log {:?}, not {origin:?} (pass --origin when a log's origin is not its key's name)\n{note}",
            new.origin
        )));
    }
    eprintln!("checkpoint: {} (signature verified)", describe(&new));

    // Consistency with the checkpoint this machine saw last.
    let state_file = state.join("checkpoint");
    match std::fs::read_to_string(&state_file) {
        Ok(old_note) => {
            let old = palisade_tlog::open_checkpoint(&old_note, key)
                .with_context(|| format!("the saved checkpoint {} does not verify with this key", state_file.display()))?;
            if old.origin != new.origin {
                return Err(Failure::Security(format!(
                    "the log's origin changed\n  seen before: {}\n  served now:  {}",
                    describe(&old),
                    describe(&new)
                )));
            }
            palisade_tlog::verify_consistency(source, &old, &new).map_err(|e| {
                judged(e, |e| {
                    format!(
                        "the log is not consistent with the checkpoint seen before ({e}): a fork or a rewritten history\n  seen before:\n{old_note}\n  served now:\n{note}"
                    )
                })
            })?;
            eprintln!("consistent with the checkpoint seen before ({})", describe(&old));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("no checkpoint seen before in {}: this one is kept for the next run", state.display())
        }
        Err(e) => return Err(Failure::Other(anyhow::Error::from(e).context(format!("reading {}", state_file.display())))),
    }

    // The whole tree, from the tiles and entries, against the signed root.
    let entries = palisade_tlog::verify_tree(source, &new)
        .map_err(|e| judged(e, |e| format!("the log's tiles do not match its signed checkpoint: {e}\n{note}")))?;
    eprintln!("recomputed the tree from {} entries: it matches the checkpoint", entries.len());

    // Each file: published by an entry, and not removed, confirmed or quarantined since.
    let mut problems = 0;
    for (file, digest) in files {
        match file_status(&entries, digest) {
            Status::Missing => {
                println!("NOT IN LOG {}: no entry publishes {digest}", file.display());
                problems += 1;
            }
            Status::Served(i, e) => println!("OK {}: entry {i}: {e}", file.display()),
            Status::NotServed { published: (i, e), since: (j, later) } => {
                println!("NOT SERVED {}: published by entry {i} ({e}), then entry {j}: {later}", file.display());
                problems += 1;
            }
        }
    }
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let tmp = state.join("checkpoint.tmp");
    std::fs::write(&tmp, &note)
        .and_then(|_| std::fs::rename(&tmp, &state_file))
        .with_context(|| format!("saving {}", state_file.display()))?;
    if problems > 0 {
        return Err(Failure::Other(anyhow!("{problems} file(s) not in the log as served")));
    }
    Ok(())
}

/// What the log says of a file with `digest` (`sha256:<hex>`).
#[derive(Debug, PartialEq, Eq)]
enum Status {
    /// No entry publishes or holds it.
    Missing,
    /// Published by entry `.0`, and nothing since took it away.
    Served(usize, String),
    /// Published (or held) by one entry, then held, quarantined, removed or confirmed by another
    /// that no release undid.
    NotServed { published: (usize, String), since: (usize, String) },
}

fn file_status(entries: &[Vec<u8>], digest: &str) -> Status {
    let mut found: Option<(usize, String)> = None;
    let mut since: Vec<(usize, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let text = String::from_utf8_lossy(e);
        match file_entry(&text) {
            Some((event @ ("publish" | "hold"), _, d)) if d == digest && found.is_none() => {
                found = Some((i, text.to_string()));
                if event == "hold" {
                    since.push((i, text.to_string()));
                }
            }
            // A release serves a held, quarantined or confirmed file again (a confirmation can be
            // undone); removals are for good.
            Some(("release", _, d)) if d == digest => since.retain(|(_, t)| t.starts_with("pypi remove ")),
            Some(("remove" | "confirm" | "quarantine", _, d)) if d == digest && found.is_some() => since.push((i, text.to_string())),
            _ => {}
        }
    }
    match (found, since.pop()) {
        (None, _) => Status::Missing,
        (Some(p), None) => Status::Served(p.0, p.1),
        (Some(p), Some(s)) => Status::NotServed { published: p, since: s },
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{Status, file_status};

    fn log(lines: &[&str]) -> Vec<Vec<u8>> {
        lines.iter().map(|l| l.as_bytes().to_vec()).collect()
    }

    #[test]
    fn what_the_log_says_of_a_file() {
        let d = "sha256:aa";
        let publish = "pypi publish p 1.0 p-1.0.tar.gz sha256:aa by user:x";
        let hold = "pypi hold p 1.0 p-1.0.tar.gz sha256:aa by user:x";
        let quarantine = "pypi quarantine p p-1.0.tar.gz sha256:aa by cli:root";
        let release = "pypi release p p-1.0.tar.gz sha256:aa by cli:root";
        let remove = "pypi remove p p-1.0.tar.gz sha256:aa by cli:root";
        assert_eq!(file_status(&log(&[]), d), Status::Missing);
        // Another file's digest in another position is no match.
        assert_eq!(file_status(&log(&["pypi publish p 1.0 sha256:aa sha256:bb by user:x"]), d), Status::Missing);
        assert_eq!(file_status(&log(&[publish]), d), Status::Served(0, publish.into()));
        assert_eq!(file_status(&log(&[publish, "pypi yank p 1.0 * by user:x"]), d), Status::Served(0, publish.into()));
        assert!(matches!(file_status(&log(&[publish, quarantine]), d), Status::NotServed { since: (1, _), .. }));
        assert_eq!(file_status(&log(&[publish, quarantine, release]), d), Status::Served(0, publish.into()));
        assert!(matches!(file_status(&log(&[hold]), d), Status::NotServed { since: (0, _), .. }));
        assert_eq!(file_status(&log(&[hold, release]), d), Status::Served(0, hold.into()));
        assert!(matches!(file_status(&log(&[publish, remove, release]), d), Status::NotServed { since: (1, _), .. }));
        let confirm = "pypi confirm p p-1.0.tar.gz sha256:aa by cli:root";
        assert!(matches!(file_status(&log(&[hold, confirm]), d), Status::NotServed { since: (1, _), .. }));
        assert_eq!(file_status(&log(&[hold, confirm, release]), d), Status::Served(0, hold.into()));
    }
}
