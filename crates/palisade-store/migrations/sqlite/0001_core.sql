-- Repository core: accounts, tokens, projects, releases, files and the change journal.
-- Times are microseconds since the Unix epoch, UTC.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    hash           TEXT NOT NULL UNIQUE,      -- sha256 of the whole token; the token itself is never stored
    hint           TEXT NOT NULL,             -- the first characters, to recognise it in listings
    projects       TEXT,                      -- JSON array of normalized names, NULL for user-wide
    description    TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    last_used_at   INTEGER,
    last_used_addr TEXT
);

CREATE TABLE projects (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    normalized     TEXT NOT NULL UNIQUE,
    created_at     INTEGER NOT NULL,
    last_serial    INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived', 'quarantined', 'deprecated')),
    status_reason  TEXT
);

CREATE TABLE roles (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL CHECK (role IN ('owner', 'maintainer')),
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE releases (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL REFERENCES projects(id),
    version            TEXT NOT NULL,         -- as the first upload spelled it (normalized PEP 440)
    canonical_version  TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    metadata           TEXT NOT NULL,         -- JSON of the first upload's core metadata fields
    requires_python    TEXT,
    UNIQUE (project_id, canonical_version)
);

CREATE TABLE files (
    id               INTEGER PRIMARY KEY,
    release_id       INTEGER NOT NULL REFERENCES releases(id),
    project_id       INTEGER NOT NULL REFERENCES projects(id),
    filename         TEXT NOT NULL UNIQUE,
    packagetype      TEXT NOT NULL,
    python_version   TEXT NOT NULL,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    blake2b_256      TEXT NOT NULL,
    md5              TEXT NOT NULL,
    upload_time      INTEGER NOT NULL,
    requires_python  TEXT,
    core_metadata    BLOB NOT NULL,
    metadata_sha256  TEXT NOT NULL,
    yanked           INTEGER NOT NULL DEFAULT 0,
    yanked_reason    TEXT,
    uploader_id      INTEGER REFERENCES users(id)
);
CREATE INDEX files_project ON files(project_id);
CREATE INDEX files_release ON files(release_id);
CREATE INDEX files_sha256 ON files(sha256);

-- Every filename ever accepted, kept after its file is removed so that it is never reused.
CREATE TABLE filenames (
    filename    TEXT PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- One row per change to a project; its serial is PyPI's X-PyPI-Last-Serial and drives cache
-- invalidation in every server process reading this database.
CREATE TABLE journal (
    serial      INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER,
    project     TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,
    at          INTEGER NOT NULL
);
