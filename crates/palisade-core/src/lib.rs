//! Palisade's rules, free of any protocol and of SQL: who may do what ([`access`]), the
//! publishing pipeline ([`publish`]) over an [`ecosystem`] (Python's is [`pypi`]), the
//! administrator's operations ([`admin`]), the scanner's policy ([`scanning`]), the security
//! event log ([`events`]), mail ([`mail`]) and the typed configuration ([`config`]). The HTTP server and the CLI both call these, so a rule, an event
//! or a message is the same whichever way an operation arrives.

pub mod access;
pub mod admin;
pub mod config;
pub mod ecosystem;
pub mod error;
pub mod events;
pub mod import;
pub mod jobs;
pub mod mail;
pub mod migrate;
pub mod mirror;
mod net;
pub mod provenance;
pub mod publish;
pub mod publishers;
pub mod pypi;
pub mod scanning;
pub mod sharing;
pub mod tokens;
pub mod transparency;

use std::sync::{Arc, RwLock};

use anyhow::Context;
use palisade_store::{BlobStore, Db};

pub use config::{Config, ConfigError};
pub use error::{Error, Result};

/// Called with a project's normalized name after something about it changed (a cache drops its
/// pages).
pub type ChangeHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The state every operation needs, cheap to clone.
#[derive(Clone)]
pub struct Core {
    pub db: Db,
    pub blobs: BlobStore,
    pub config: Arc<Config>,
    pub scan: Arc<scanning::ScanService>,
    pub mailer: mail::Mailer,
    pub attestations: provenance::Attestations,
    /// The OSV records that block, as this process last loaded them.
    pub sharing: Arc<sharing::Sharing>,
    /// The pull-through mirror's HTTP client, requests in flight and counters.
    pub mirror: Arc<mirror::Mirror>,
    hooks: Arc<RwLock<Vec<ChangeHook>>>,
}

impl Core {
    /// Opens the database where `database.url` says and the blobs where `storage.url` says (by
    /// default the data directory's `palisade.db` and `files/`; a bucket is checked to exist now),
    /// and checks that the blobs belong to this database.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let storage = config.storage.storage(&config.data_dir).map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
        let db = Db::connect(&config.database.url(&config.data_dir)?, config.database.pool_size)
            .await
            .with_context(|| format!("opening the database {}", config.database.display_url(&config.data_dir)))?;
        let blobs = BlobStore::connect(&config.data_dir, &storage).await?;
        blobs.claim(&db.instance_id().await?).await?;
        let scan = Arc::new(scanning::ScanService::new(config.scan.clone()));
        let mailer = mail::Mailer::new(&config.smtp, db.clone())?;
        let attestations = provenance::Attestations::new(&config.attestations)?;
        provenance::warn_about_issuers(&config);
        let mirror = Arc::new(mirror::Mirror::new(&config.mirror)?);
        let core = Self {
            db,
            blobs,
            config: Arc::new(config),
            scan,
            mailer,
            attestations,
            sharing: Default::default(),
            mirror,
            hooks: Default::default(),
        };
        core.refresh_blocks().await.context("loading the OSV records that block")?;
        Ok(core)
    }

    /// Registers `hook` to hear of every change this process makes to a project.
    pub fn on_change(&self, hook: ChangeHook) {
        self.hooks.write().unwrap_or_else(|e| e.into_inner()).push(hook);
    }

    /// Tells the hooks that `project` changed. Other processes learn of it from the journal.
    pub fn changed(&self, project: &str) {
        self.mirror.forget_view(project);
        let hooks = self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for hook in hooks {
            hook(project);
        }
    }
}

/// A time as `yyyy-mm-ddThh:mm:ss.ffffffZ` (PEP 700's upload-time format), from microseconds
/// since the epoch.
pub fn timestamp(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros).map(|t| t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()).unwrap_or_default()
}
