//! Persistence for Palisade: the metadata database and the blobs.
//!
//! The database (SQLite in WAL mode, or PostgreSQL for several nodes) is the source of truth for what is published; the blobs
//! (a folder, or an S3-compatible bucket) hold file contents addressed by sha256. The ordering rule that keeps the two
//! consistent: a blob is fully written and synced *before* the transaction that makes it visible
//! commits, so a crash can leave an unreferenced blob (swept later) but never a visible file
//! without its bytes.

mod blobs;
mod db;
mod error;
mod models;
#[doc(hidden)]
pub mod testing;

pub use blobs::{BlobInfo, BlobStore, BlobStream, BucketConfig, LocalBlob, Storage, StoredBlob, TempBlob};
pub use db::{
    Counts, Db, Engine, Exemption, FeedChanges, FeedRow, LimiterEvent, LogEntry, MirrorFile, MirrorPage, MirrorStats, MirrorVerdict,
    NewAdvisory, NewAttestation, NewFile, NewObservation, NewScan, Observation, ProjectCard, PublishOutcome, Shadow, StoredAdvisory,
    StoredAttestation, StoredCheckpoint, Waiver, now_micros, sqlite_url,
};
pub use error::StoreError;
pub use models::*;
