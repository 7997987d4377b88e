-- Account security: passwords, verified email, second factors, sessions, action-scoped and
-- short-lived publisher tokens, trusted publishers and the security event log.

ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
ALTER TABLE users ADD COLUMN password_hash TEXT;          -- argon2id PHC string; NULL: cannot log in
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- Only one account can hold a verified address; unverified ones may collide (no squatting).
CREATE UNIQUE INDEX users_email ON users(lower(email)) WHERE email IS NOT NULL AND email_verified_at IS NOT NULL;

-- Several second factors per user: TOTP now, WebAuthn credentials later.
CREATE TABLE second_factors (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id),
    kind            TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn')),
    name            TEXT NOT NULL,
    secret          BLOB,                 -- the TOTP shared secret
    credential      TEXT,                 -- a WebAuthn credential (later)
    created_at      INTEGER NOT NULL,
    confirmed_at    INTEGER,              -- NULL until the user proved they hold it
    last_used_step  INTEGER,              -- the TOTP time step last accepted: no replays
    last_used_at    INTEGER
);
CREATE INDEX second_factors_user ON second_factors(user_id);

CREATE TABLE recovery_codes (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    hash        TEXT NOT NULL,            -- sha256 of the normalized code
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- A session is 'second_factor' after the password and before the second factor, then 'active'.
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    hash          TEXT NOT NULL UNIQUE,   -- sha256 of the session secret
    stage         TEXT NOT NULL CHECK (stage IN ('second_factor', 'active')),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    addr          TEXT,
    user_agent    TEXT,
    revoked_at    INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);

-- One-time links sent by email: address verification and password reset.
CREATE TABLE email_tokens (
    hash        TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    email       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);

-- Trusted publishers. A pending publisher names a project that does not exist yet and may
-- create it on its first publish; it then becomes an ordinary one.
CREATE TABLE publishers (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER REFERENCES projects(id),
    pending_name  TEXT,                   -- normalized name, for pending publishers
    issuer        TEXT NOT NULL,
    spec          TEXT NOT NULL,          -- JSON: the claims to match (palisade_auth::PublisherSpec)
    created_by    INTEGER REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    CHECK ((project_id IS NULL) <> (pending_name IS NULL))
);
CREATE INDEX publishers_project ON publishers(project_id);
CREATE INDEX publishers_issuer ON publishers(issuer);

-- OIDC token ids already exchanged, kept until the token would have expired anyway.
CREATE TABLE oidc_jtis (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);

-- Tokens gain action scopes, a revocation reason, and may belong to a trusted publisher
-- instead of a user (the short-lived tokens minted by the OIDC exchange).
CREATE TABLE tokens_new (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER REFERENCES users(id),
    publisher_id    INTEGER REFERENCES publishers(id),
    hash            TEXT NOT NULL UNIQUE,
    hint            TEXT NOT NULL,
    projects        TEXT,                 -- JSON array of normalized names, NULL for user-wide
    actions         TEXT,                 -- JSON array of upload|yank|manage, NULL for all
    description     TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    revoked_reason  TEXT,
    last_used_at    INTEGER,
    last_used_addr  TEXT,
    CHECK ((user_id IS NULL) <> (publisher_id IS NULL))
);
INSERT INTO tokens_new (id, user_id, hash, hint, projects, description, created_at, expires_at, revoked_at, last_used_at, last_used_addr)
    SELECT id, user_id, hash, hint, projects, description, created_at, expires_at, revoked_at, last_used_at, last_used_addr FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE INDEX tokens_user ON tokens(user_id);

ALTER TABLE files ADD COLUMN publisher_id INTEGER REFERENCES publishers(id);

-- The security event log: who did what, from where, to which account or project.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    user_id     INTEGER REFERENCES users(id),      -- the account the event concerns
    project_id  INTEGER REFERENCES projects(id),   -- the project it concerns
    actor       TEXT NOT NULL,                     -- user name, publisher:N, admin-cli, anonymous
    addr        TEXT,
    user_agent  TEXT,
    details     TEXT                               -- JSON object
);
CREATE INDEX events_user ON events(user_id, id);
CREATE INDEX events_project ON events(project_id, id);
