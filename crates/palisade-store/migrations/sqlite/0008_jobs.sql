-- Background work that must survive a restart and run once across processes and nodes: mail
-- now; later checkpoint signing, feed sync and mirror refresh. A worker claims a job by taking a
-- lease (locked_until); a worker that dies loses its lease, and another runs the job again.
-- A job that fails is retried with backoff until max_attempts, then kept as 'failed' for an
-- administrator (`palisade jobs list|retry`). A done job's payload is erased: mail bodies carry
-- one-time links.
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  INTEGER,
    last_error    TEXT,
    state         TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'failed')),
    finished_at   INTEGER
);
CREATE INDEX jobs_due ON jobs(run_at) WHERE state = 'queued';
CREATE INDEX jobs_state ON jobs(state, id);
