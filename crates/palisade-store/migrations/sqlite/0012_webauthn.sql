-- WebAuthn: security keys (a second factor after the password) and passkeys (discoverable,
-- user-verifying credentials that log in alone). Each is a `second_factors` row of kind
-- 'webauthn' whose `credential` holds webauthn-rs's stored credential (public key, sign count);
-- `credential_id` (base64url) finds it from an assertion and is unique across all accounts.
ALTER TABLE second_factors ADD COLUMN credential_id TEXT;
ALTER TABLE second_factors ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX second_factors_credential ON second_factors(credential_id) WHERE credential_id IS NOT NULL;

-- The user handle authenticators keep with a passkey: random, set at the first registration.
ALTER TABLE users ADD COLUMN webauthn_handle TEXT;

-- A ceremony in progress (five minutes): the server's half of a challenge sent to a browser.
-- `id` is the SHA-256 of the handle the browser holds; taking a ceremony deletes it, so each
-- challenge is answered once. `bound` ties it to what began it (a login ticket, a session).
CREATE TABLE webauthn_ceremonies (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id),
    purpose     TEXT NOT NULL,
    bound       TEXT,
    state       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies(expires_at);

-- How a session was authenticated: 'password', 'totp', 'recovery_code', 'security_key',
-- 'passkey'. The critical-project policy asks for the last two.
ALTER TABLE sessions ADD COLUMN method TEXT;

-- Projects an administrator marked critical: their owners and maintainers need a WebAuthn
-- second factor, and must have used it, to change them.
ALTER TABLE projects ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
