-- Guessing rate limits shared by several nodes: each node counts wrong passwords, codes and
-- secrets in memory, writes what it counted here, and applies what the other nodes wrote, so a
-- lockout holds on every node within about a second. Kept only as long as a lockout can last.
CREATE TABLE limiter_events (
    id       INTEGER PRIMARY KEY,
    node     TEXT NOT NULL,
    limiter  TEXT NOT NULL,
    op       TEXT NOT NULL,
    key1     TEXT NOT NULL,
    key2     TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX limiter_events_at ON limiter_events(at);
