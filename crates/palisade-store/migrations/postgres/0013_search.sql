-- Full-text search of releases' summaries and keywords for the web's /search/: an index on the
-- text search vector (English stemming) of the metadata's summary and keywords. Which releases
-- a search may show (a published file, a project not quarantined) is decided when it runs.
CREATE INDEX releases_text ON releases USING GIN (
    to_tsvector('english', COALESCE(metadata::json ->> 'summary', '') || ' ' || COALESCE(metadata::json ->> 'keywords', ''))
);
