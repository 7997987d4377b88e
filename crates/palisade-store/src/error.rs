//! The store's error type.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("blob storage error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0}")]
    Conflict(String),
    /// Stored data contradicts itself (the transparency log's rows, say): never the caller's fault.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// Another writer has held the database's write lock for too long; worth retrying later.
    #[error("the database is busy with another write; try again shortly")]
    Busy,
    /// The filename, or another spelling of the same file, is reserved by an earlier upload.
    #[error("file {:?} is already reserved", .0.filename)]
    Reserved(crate::Reservation),
}

impl StoreError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}
