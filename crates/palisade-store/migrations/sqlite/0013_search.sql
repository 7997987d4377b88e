-- Full-text search of releases' summaries and keywords for the web's /search/ (FTS5, Porter
-- stemming). The index is derived from `releases.metadata` and kept by triggers, so every way a
-- release is written (an upload, `palisade migrate`) fills it; which releases a search may show
-- (a published file, a project not quarantined) is decided when it runs.
CREATE VIRTUAL TABLE release_text USING fts5(summary, keywords, tokenize = 'porter unicode61');
INSERT INTO release_text (rowid, summary, keywords)
    SELECT id,
           CASE WHEN json_valid(metadata) THEN COALESCE(json_extract(metadata, '$.summary'), '') ELSE '' END,
           CASE WHEN json_valid(metadata) THEN COALESCE(json_extract(metadata, '$.keywords'), '') ELSE '' END
    FROM releases;
CREATE TRIGGER release_text_insert AFTER INSERT ON releases BEGIN
    INSERT INTO release_text (rowid, summary, keywords) VALUES (
        new.id,
        CASE WHEN json_valid(new.metadata) THEN COALESCE(json_extract(new.metadata, '$.summary'), '') ELSE '' END,
        CASE WHEN json_valid(new.metadata) THEN COALESCE(json_extract(new.metadata, '$.keywords'), '') ELSE '' END);
END;
CREATE TRIGGER release_text_delete AFTER DELETE ON releases BEGIN
    DELETE FROM release_text WHERE rowid = old.id;
END;
