-- Settings of this database, one row each. `instance_id` names the database: the blob storage
-- records it (BlobStore::claim), so that a second database pointed at the same folder or bucket
-- prefix is stopped at start instead of sweeping the first one's files as orphans.
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
