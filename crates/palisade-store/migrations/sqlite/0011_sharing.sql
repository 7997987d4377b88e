-- Information sharing (OSV). `advisories` holds every OSV record Palisade enforces, shows or
-- publishes: `source` is the name of the feed it came from, or '' for Palisade's own verdicts
-- (numbered by `local_n`, served under /osv/). `record` is the record's JSON as read (or, for
-- our own, as served). A withdrawn record stays, marked; a record that disappears from a
-- snapshot feed (a folder, a zip) is deleted with its rows below. `malicious` says whether it
-- blocks (a MAL record, CWE-506) or is only shown (PYSEC, GHSA: vulnerabilities).
CREATE TABLE advisories (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    osv_id      TEXT NOT NULL,
    modified    TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    withdrawn   INTEGER NOT NULL DEFAULT 0,
    malicious   INTEGER NOT NULL DEFAULT 0,
    record      TEXT NOT NULL,
    local_n     INTEGER,
    created_at  INTEGER NOT NULL,
    UNIQUE (source, osv_id)
);
CREATE UNIQUE INDEX advisories_local_n ON advisories(local_n);
-- The PEP 503 names and file sha256s each record names, for looking records up.
CREATE TABLE advisory_names (
    advisory_id INTEGER NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    name        TEXT NOT NULL
);
CREATE INDEX advisory_names_name ON advisory_names(name);
CREATE INDEX advisory_names_advisory ON advisory_names(advisory_id);
CREATE TABLE advisory_hashes (
    advisory_id INTEGER NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL
);
CREATE INDEX advisory_hashes_sha256 ON advisory_hashes(sha256);
CREATE INDEX advisory_hashes_advisory ON advisory_hashes(advisory_id);
-- An administrator's decision that a record does not apply to one project.
CREATE TABLE advisory_waivers (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    osv_id     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, osv_id)
);
-- Owners told once that a feed's record blocks their release.
CREATE TABLE advisory_notices (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    osv_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, osv_id)
);
-- Each feed's last sync.
CREATE TABLE feeds (
    name       TEXT PRIMARY KEY,
    synced_at  INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    skipped    INTEGER NOT NULL,
    last_error TEXT,
    -- Set while a sync writes its batches; still set at the next sync: that one was cut short.
    started_at INTEGER
);
-- Reports of projects (PyPI's observations), and what became of them.
CREATE TABLE observations (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    version       TEXT,
    kind          TEXT NOT NULL,
    summary       TEXT NOT NULL,
    inspector_url TEXT,
    reporter_id   INTEGER NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    action        TEXT,
    outcome       TEXT
);
CREATE INDEX observations_project ON observations(project_id);
ALTER TABLE users ADD COLUMN trusted_reporter INTEGER NOT NULL DEFAULT 0;
-- A held file an administrator confirmed as malicious: still held (never served but to
-- administrators, its bytes kept as evidence), out of the review queue; a release undoes it.
ALTER TABLE files ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
