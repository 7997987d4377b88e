-- PEP 740 attestations, verified at upload and served through the Integrity API. One row per
-- attestation object, kept as the client sent it; `publisher` is the publisher object (PyPI's
-- shape) of the trusted publisher that signed it, so the provenance groups by it. Rows go with
-- their file.
CREATE TABLE attestations (
    id              INTEGER PRIMARY KEY,
    file_id         INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    predicate_type  TEXT NOT NULL,
    publisher       TEXT NOT NULL,
    attestation     TEXT NOT NULL,
    integrated_time INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX attestations_file ON attestations(file_id);

-- An owner's policy: refuse uploads without a valid attestation from a registered publisher.
ALTER TABLE projects ADD COLUMN require_attestations INTEGER NOT NULL DEFAULT 0;

-- The transparency log. Entries are appended, in order, by the write transaction that makes the
-- change they describe (so their order is the commit order on every engine and node); a
-- sequencer later stores their Merkle hashes (by tlog's stored-hash index, hex) and signs a
-- checkpoint. Nothing here is ever updated or deleted.
CREATE TABLE log_entries (
    idx        INTEGER PRIMARY KEY,
    entry      TEXT NOT NULL,
    filename   TEXT,
    sha256     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX log_entries_filename ON log_entries(filename);
CREATE INDEX log_entries_sha256 ON log_entries(sha256);
CREATE TABLE log_hashes (
    idx  INTEGER PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE log_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
