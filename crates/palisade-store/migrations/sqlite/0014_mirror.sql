-- The pull-through mirror (docs/mirror.md).
--
-- `mirror_pages`: an upstream's answer about one project, as Palisade keeps it (the files with
-- their hashes, sizes, upstream upload times, Requires-Python, yanks, metadata hashes and
-- provenance links; JSON written by palisade-core's mirror::page). `missing` remembers that no
-- upstream has the name; `error` the last failed refresh (the page is then served stale).
CREATE TABLE mirror_pages (
    project     TEXT PRIMARY KEY,
    upstream    TEXT NOT NULL,
    body        TEXT NOT NULL,
    etag        TEXT,
    missing     INTEGER NOT NULL DEFAULT 0,
    size        INTEGER NOT NULL,
    fetched_at  INTEGER NOT NULL,
    checked_at  INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX mirror_pages_checked ON mirror_pages(checked_at);

-- An upstream file fetched, checked against upstream's sha256 and scanned: its bytes are a blob
-- like any uploaded file's (the sweep keeps blobs either table references). `status` is
-- 'published' (served), 'quarantined' (held for review) or 'malicious' (blocked); `reason` says
-- why for the 403. `provenance` holds the upstream's PEP 740 provenance object when every
-- attestation in it verified; `provenance_error` why it did not.
CREATE TABLE mirror_files (
    filename         TEXT PRIMARY KEY,
    project          TEXT NOT NULL,
    version          TEXT NOT NULL,
    upstream         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size             INTEGER NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    report           TEXT NOT NULL,
    provenance       TEXT,
    provenance_error TEXT,
    fetched_at       INTEGER NOT NULL,
    decided_by       TEXT
);
CREATE INDEX mirror_files_sha256 ON mirror_files(sha256);
CREATE INDEX mirror_files_project ON mirror_files(project);

-- PEP 658 metadata of upstream files, checked against the hash upstream's page gives.
CREATE TABLE mirror_metadata (
    filename    TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    data        BLOB NOT NULL,
    fetched_at  INTEGER NOT NULL
);

-- Cooldown exemptions: a project's upstream releases are listed before min_age until `until_at`.
CREATE TABLE mirror_exemptions (
    id          INTEGER PRIMARY KEY,
    project     TEXT NOT NULL,
    until_at    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX mirror_exemptions_project ON mirror_exemptions(project);

-- Projects hosted here whose name also exists upstream (found at their first upload).
CREATE TABLE mirror_shadows (
    project     TEXT PRIMARY KEY,
    upstream    TEXT NOT NULL,
    found_at    INTEGER NOT NULL
);
