-- Malware scanning: every upload's report, and quarantine.

-- 'published' files are in the indexes; 'quarantined' ones wait for review and are served only to
-- the project's owners and administrators.
ALTER TABLE files ADD COLUMN status TEXT NOT NULL DEFAULT 'published' CHECK (status IN ('published', 'quarantined'));
CREATE INDEX files_status ON files(status) WHERE status <> 'published';

CREATE TABLE scan_reports (
    id            INTEGER PRIMARY KEY,
    filename      TEXT NOT NULL,
    project       TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    verdict       TEXT NOT NULL CHECK (verdict IN ('clean', 'suspicious', 'malicious')),
    score         REAL NOT NULL,
    report        TEXT NOT NULL,          -- the scanner's JSON report
    outcome       TEXT NOT NULL,          -- published, quarantined, rejected (at upload or rescan)
    trigger       TEXT NOT NULL,          -- upload or rescan
    actor         TEXT,
    created_at    INTEGER NOT NULL,
    decision      TEXT,                   -- released or confirmed, after review
    decided_by    TEXT,
    decided_at    INTEGER,
    note          TEXT
);
CREATE INDEX scan_reports_filename ON scan_reports(filename);
