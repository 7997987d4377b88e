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
    /// The instance's base URL (the log is at BASE_URL/log/).
    #[arg(long)]
    url: String,
    /// The log's verifier key, as `palisade log key` prints it.
    #[arg(long)]
    key: String,
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
            let problems = core.audit_log().await?;
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
/// checkpoint). Exit 1 otherwise for a file not in the log or an unreachable server.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = runtime.handle().clone();
    let base = args.url.trim_end_matches('/').to_owned();
    let client = match reqwest::Client::builder().user_agent(concat!("palisade-log-verify/", env!("CARGO_PKG_VERSION"))).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut source = Http { client, base, handle };
    let state = args.state.clone().unwrap_or_else(|| default_state(&args.key));
    let outcome = runtime.block_on(async {
        let args_key = args.key.clone();
        let files = args.files.clone();
        tokio::task::spawn_blocking(move || check(&mut source, &args_key, &state, &files)).await
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failure::Security(msg))) => {
            eprintln!("SECURITY ERROR: {msg}");
            ExitCode::FAILURE
        }
        Ok(Err(Failure::Other(e))) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
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

fn check(source: &mut Http, key: &str, state: &Path, files: &[PathBuf]) -> Result<(), Failure> {
    let note = String::from_utf8(source.get("checkpoint").map_err(|e| anyhow!(e))?).map_err(|_| anyhow!("the checkpoint is not text"))?;
    let new = palisade_tlog::open_checkpoint(&note, key)
        .map_err(|e| Failure::Security(format!("the served checkpoint does not verify with the pinned key: {e}\n{note}")))?;
    eprintln!("checkpoint: {} (signature verified)", describe(&new));

    // Consistency with the checkpoint this machine saw last.
    let state_file = state.join("checkpoint");
    if let Ok(old_note) = std::fs::read_to_string(&state_file) {
        let old = palisade_tlog::open_checkpoint(&old_note, key)
            .with_context(|| format!("the saved checkpoint {} does not verify with this key", state_file.display()))?;
        if old.origin != new.origin {
            return Err(Failure::Security(format!(
                "the log's origin changed\n  seen before: {}\n  served now:  {}",
                describe(&old),
                describe(&new)
            )));
        }
        if let Err(e) = palisade_tlog::verify_consistency(source, &old, &new) {
            return Err(Failure::Security(format!(
                "the log is not consistent with the checkpoint seen before ({e}): a fork or a rewritten history\n  seen before:\n{old_note}\n  served now:\n{note}"
            )));
        }
        eprintln!("consistent with the checkpoint seen before ({})", describe(&old));
    }

    // The whole tree, from the tiles and entries, against the signed root.
    let entries = palisade_tlog::verify_tree(source, &new)
        .map_err(|e| Failure::Security(format!("the log's tiles do not match its signed checkpoint: {e}\n{note}")))?;
    eprintln!("recomputed the tree from {} entries: it matches the checkpoint", entries.len());

    let mut missing = 0;
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let digest = format!("sha256:{}", hex_lower(&Sha256::digest(&bytes)));
        let found = entries.iter().enumerate().find(|(_, e)| {
            let text = String::from_utf8_lossy(e);
            let words: Vec<&str> = text.split(' ').collect();
            matches!(words.get(1), Some(&"publish") | Some(&"hold")) && words.contains(&digest.as_str())
        });
        match found {
            Some((i, e)) => println!("OK {}: entry {i}: {}", file.display(), String::from_utf8_lossy(e)),
            None => {
                println!("NOT IN LOG {}: no entry publishes {digest}", file.display());
                missing += 1;
            }
        }
    }
    std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
    let tmp = state.join("checkpoint.tmp");
    std::fs::write(&tmp, &note)
        .and_then(|_| std::fs::rename(&tmp, &state_file))
        .with_context(|| format!("saving {}", state_file.display()))?;
    if missing > 0 {
        return Err(Failure::Other(anyhow!("{missing} file(s) not in the log")));
    }
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
