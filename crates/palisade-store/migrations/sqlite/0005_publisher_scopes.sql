-- Trusted publishers that cannot interfere with each other (issue 12, item 5).
--
-- A token minted by the OIDC exchange covers every publisher that matched the job's claims,
-- whoever registered them (PyPI's semantics), instead of failing when more than one matched.
-- `tokens.publisher_id` stays the first of them (a publisher token must name one); this table
-- holds them all, and an upload is bound to the one registered for its project.
CREATE TABLE token_publishers (
    token_id      INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    publisher_id  INTEGER NOT NULL REFERENCES publishers(id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, publisher_id)
);
CREATE INDEX token_publishers_publisher ON token_publishers(publisher_id);
INSERT INTO token_publishers (token_id, publisher_id) SELECT id, publisher_id FROM tokens WHERE publisher_id IS NOT NULL;

-- Pending publishers expire (they reserve a name against other users until then); ordinary
-- ones do not (NULL). Pending publishers that exist at the upgrade get the default 30 days from now.
ALTER TABLE publishers ADD COLUMN expires_at INTEGER;
UPDATE publishers SET expires_at = (CAST(strftime('%s', 'now') AS INTEGER) + 30 * 86400) * 1000000 WHERE project_id IS NULL;
CREATE INDEX publishers_expires ON publishers(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX publishers_pending ON publishers(pending_name) WHERE pending_name IS NOT NULL;
