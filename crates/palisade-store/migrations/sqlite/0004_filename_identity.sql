-- Filenames are reserved by what an installer takes them to be, not by their spelling:
-- tapir_index-1.0-py3-none-any.whl and Tapir_Index-1.0.0-py3-none-any.whl are one file to pip.
-- `identity` is palisade_dist::DistFilename::identity (normalized name, canonical version, build
-- tag and sorted wheel tags). SQL cannot compute it, so Db::open fills it in for rows that lack
-- it (rows written before this migration), in short transactions, before anything else runs.
-- Where old rows already collide, the first one keeps the identity and the others get
-- '<identity>#<filename>', which reserves nothing more than their own spelling.
ALTER TABLE filenames ADD COLUMN identity TEXT;
CREATE UNIQUE INDEX filenames_identity ON filenames(identity);
