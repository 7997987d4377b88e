//! The client's checks of a served log, given an opened checkpoint: that every entry and every
//! hash tile agrees with the checkpoint ([`verify_tree`]), and that a newer checkpoint's tree
//! extends an older one's ([`verify_consistency`]). Fetching is the caller's, through
//! [`TileSource`]; nothing fetched is trusted until it hashes to the checkpoint's root.

use std::cell::RefCell;

use tlog_tiles::{Tile, TileHashReader, TileReader};

use crate::hash::{VecReader, from_tlog_all};
use crate::{
    Checkpoint, Error, Hash, MAX_TILE_LEVEL, MAX_TREE_SIZE, Result, TILE_HEIGHT, TILE_WIDTH, TilePath, check_consistency,
    parse_entry_bundle, stored_hash_index, tile_width,
};

/// Fetches a log's tiles and entry bundles by path below its prefix (`tile/0/x001/067.p/5`,
/// `tile/entries/000`); the error is a message for the user.
pub trait TileSource {
    /// The bytes served at `path`.
    fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String>;
}

fn fetch<S: TileSource + ?Sized>(source: &mut S, path: &str) -> Result<Vec<u8>> {
    source.fetch(path).map_err(|message| Error::Fetch { path: path.to_string(), message })
}

/// Reads the whole log of `checkpoint` and checks it: fetches every entry bundle (the full ones,
/// then the partial last one), recomputes the tree from the entries' leaf hashes and compares its
/// root with the checkpoint's, then fetches every hash tile at every level of that tree and
/// compares each with the recomputed hashes, so that a log serving tiles that disagree with its
/// entries is caught. Returns the entries, in log order.
///
/// Memory grows with the log: the entries and about two hashes per entry are kept.
pub fn verify_tree<S: TileSource + ?Sized>(source: &mut S, checkpoint: &Checkpoint) -> Result<Vec<Vec<u8>>> {
    let size = checkpoint.size;
    if size > MAX_TREE_SIZE {
        return Err(Error::TreeTooLarge { size });
    }
    let mut entries = Vec::new();
    let mut stored = Vec::new();
    for index in 0.. {
        let Some(width) = tile_width(0, index, size) else { break };
        let path = TilePath::Entries { index, width }.path();
        let bundle = parse_entry_bundle(&fetch(source, &path)?).map_err(|e| Error::Served { path: path.clone(), reason: e.to_string() })?;
        if bundle.len() != width as usize {
            let reason = format!("{} entries, but a tree of size {size} has {width} in this bundle", bundle.len());
            return Err(Error::Served { path, reason });
        }
        for entry in bundle {
            let hashes = tlog_tiles::stored_hashes(entries.len() as u64, &entry, &VecReader(&stored))
                .map_err(|e| Error::Internal(format!("recomputing the tree: {e}")))?;
            stored.extend(hashes);
            entries.push(entry);
        }
    }
    let reader = VecReader(&stored);
    let computed = tlog_tiles::tree_hash(size, &reader).map_err(|e| Error::Internal(format!("recomputing the root: {e}")))?;
    let computed = Hash::from_tlog(computed);
    if computed != checkpoint.root {
        return Err(Error::RootMismatch { size, expected: checkpoint.root, computed });
    }
    for level in 0..=MAX_TILE_LEVEL {
        for index in 0.. {
            let Some(width) = tile_width(level, index, size) else { break };
            let path = TilePath::Hash { level, index, width }.path();
            let served = fetch(source, &path)?;
            let expected = Tile::new(TILE_HEIGHT, level, index, width, false)
                .read_data(&reader)
                .map_err(|e| Error::Internal(format!("recomputing {path}: {e}")))?;
            if served.len() != expected.len() {
                let reason = format!("{} bytes, but a tile of width {width} is {} bytes", served.len(), expected.len());
                return Err(Error::Served { path, reason });
            }
            let pairs = served.chunks_exact(32).zip(expected.chunks_exact(32));
            if let Some((position, (s, e))) = pairs.enumerate().find(|(_, (s, e))| s != e) {
                let hash = |bytes: &[u8]| Hash(bytes.try_into().unwrap_or_default());
                return Err(Error::TileMismatch { path, position: position as u32, served: hash(s), computed: hash(e) });
            }
        }
        if tile_width(level, 0, size).is_none() {
            break;
        }
    }
    Ok(entries)
}

/// Proves that the tree of `new` extends the tree of `old`: fetches the tiles a consistency proof
/// needs, authenticates them against `new`'s root (with `tlog_tiles`' `TileHashReader`), builds
/// the proof from them and checks it against both roots. Refuses checkpoints of different
/// origins, an old tree larger than the new one, and one of the same size with another root.
pub fn verify_consistency<S: TileSource + ?Sized>(source: &mut S, old: &Checkpoint, new: &Checkpoint) -> Result<()> {
    if old.origin != new.origin {
        return Err(Error::OriginMismatch { old: old.origin.clone(), new: new.origin.clone() });
    }
    for size in [old.size, new.size] {
        if size > MAX_TREE_SIZE {
            return Err(Error::TreeTooLarge { size });
        }
    }
    if old.size > new.size {
        return Err(Error::TreeShrank { old_size: old.size, new_size: new.size });
    }
    if old.size == new.size {
        return if old.root == new.root { Ok(()) } else { Err(Error::Fork { size: old.size, old_root: old.root, new_root: new.root }) };
    }
    if old.size == 0 {
        // No tile can say anything about the empty tree; its root is fixed.
        return check_consistency(&[], 0, old.root, new.size, new.root);
    }
    let tiles = SourceTiles { source: RefCell::new(source), failure: RefCell::new(None), fetched: RefCell::new(Vec::new()) };
    let reader = TileHashReader::new(new.size, new.root.to_tlog(), &tiles);
    let proof = tlog_tiles::prove_tree(new.size, old.size, &reader).map_err(|e| {
        tiles.failure.take().unwrap_or_else(|| match e {
            // The tiles that make up the root did not hash to it.
            tlog_tiles::Error::InconsistentTile | tlog_tiles::Error::InvalidTile | tlog_tiles::Error::BadMath => {
                let paths: Vec<String> = tiles.fetched.borrow().iter().map(|(tile, _)| path_of(tile)).collect();
                Error::TilesInconsistent { size: new.size, root: new.root, paths: paths.join(", ") }
            }
            other => Error::Internal(format!("building the consistency proof: {other}")),
        })
    })?;
    check_parents(new.size, &tiles.fetched.borrow())?;
    check_consistency(&from_tlog_all(proof), old.size, old.root, new.size, new.root)
}

fn path_of(tile: &Tile) -> String {
    TilePath::Hash { level: tile.level(), index: tile.level_index(), width: tile.width() }.path()
}

/// Checks each full tile fetched against the hash its parent tile lists for it. `TileHashReader`
/// means to do this, but as in Go's `sumdb/tlog` its loop starts at the count of the root's
/// subtrees rather than of the tiles holding them, so it skips some tiles. The consistency proof is
/// checked against both roots anyway, so a forged tile cannot pass; this check names the tile.
fn check_parents(size: u64, fetched: &[(Tile, Vec<u8>)]) -> Result<()> {
    for (tile, data) in fetched {
        // A partial tile has no entry in its parent; a full level-7 tile would cover 2^64 entries.
        if tile.width() != TILE_WIDTH || tile.level() >= MAX_TILE_LEVEL {
            continue;
        }
        let Some(parent) = tile.parent(1, size) else { continue };
        let Some((_, parent_data)) = fetched.iter().find(|(t, _)| *t == parent) else { continue };
        let position = tile.level_index() % u64::from(TILE_WIDTH);
        let listed = parent
            .hash_at_index(parent_data, stored_hash_index(TILE_HEIGHT * parent.level(), tile.level_index()))
            .map_err(|e| Error::Internal(format!("reading {} from {}: {e}", path_of(tile), path_of(&parent))))?;
        let computed = Tile::subtree_hash(data);
        if listed != computed {
            return Err(Error::TileParentMismatch {
                path: path_of(tile),
                parent: path_of(&parent),
                position: position as u32,
                listed: Hash::from_tlog(listed),
                computed: Hash::from_tlog(computed),
            });
        }
    }
    Ok(())
}

/// The caller's [`TileSource`] as the `TileReader` that `TileHashReader` wants, keeping the error
/// that `tlog_tiles::Error` cannot carry and the tiles fetched.
struct SourceTiles<'s, S: ?Sized> {
    source: RefCell<&'s mut S>,
    failure: RefCell<Option<Error>>,
    fetched: RefCell<Vec<(Tile, Vec<u8>)>>,
}

impl<S: TileSource + ?Sized> TileReader for SourceTiles<'_, S> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(tiles.len());
        for tile in tiles {
            let path = path_of(tile);
            let result = fetch(&mut **self.source.borrow_mut(), &path);
            let failure = match result {
                Ok(data) if data.len() == tile.width() as usize * 32 => {
                    self.fetched.borrow_mut().push((*tile, data.clone()));
                    out.push(data);
                    continue;
                }
                Ok(data) => {
                    let reason = format!("{} bytes, but a tile of width {} is {} bytes", data.len(), tile.width(), tile.width() * 32);
                    Error::Served { path, reason }
                }
                Err(error) => error,
            };
            *self.failure.borrow_mut() = Some(failure);
            return Err(tlog_tiles::Error::InvalidTile);
        }
        Ok(out)
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::tree::tests::{Log, entry};
    use crate::{entry_bundle, hash_tile, hash_tile_needs};

    /// A served log in memory: every path a log of some size serves, and the paths asked for.
    struct Served {
        files: BTreeMap<String, Vec<u8>>,
        asked: Vec<String>,
    }

    impl TileSource for Served {
        fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
            self.asked.push(path.to_string());
            self.files.get(path).cloned().ok_or_else(|| "404 Not Found".to_string())
        }
    }

    /// What a log server serves for `log` at `size`, built through the crate's own API.
    fn serve(log: &Log, size: u64) -> Served {
        let mut files = BTreeMap::new();
        for level in 0..=MAX_TILE_LEVEL {
            for index in 0.. {
                let Some(width) = tile_width(level, index, size) else { break };
                let tile = hash_tile(level, index, width, &log.only(&hash_tile_needs(level, index, width))).unwrap();
                files.insert(TilePath::Hash { level, index, width }.path(), tile);
                if level == 0 {
                    let start = (index * 256) as usize;
                    let bundle = entry_bundle(&log.entries[start..start + width as usize]).unwrap();
                    files.insert(TilePath::Entries { index, width }.path(), bundle);
                }
            }
        }
        Served { files, asked: Vec::new() }
    }

    fn checkpoint(log: &Log, size: u64) -> Checkpoint {
        Checkpoint { origin: "pypi.example.org/log".to_string(), size, root: log.root(size) }
    }

    #[test]
    fn verify_a_served_tree() {
        let log = Log::with_entries((0..600).map(entry));
        let mut served = serve(&log, 600);
        assert_eq!(verify_tree(&mut served, &checkpoint(&log, 600)), Ok(log.entries.clone()));
        let expected = [
            "tile/entries/000",
            "tile/entries/001",
            "tile/entries/002.p/88",
            "tile/0/000",
            "tile/0/001",
            "tile/0/002.p/88",
            "tile/1/000.p/2",
        ];
        assert_eq!(served.asked, expected);
        // Every prefix of the log verifies from what the log serves at that size.
        for size in [0, 1, 2, 255, 256, 257, 512, 513] {
            let mut served = serve(&log, size);
            assert_eq!(verify_tree(&mut served, &checkpoint(&log, size)).unwrap().len() as u64, size, "size {size}");
        }
    }

    #[test]
    fn verify_tree_catches_a_changed_entry() {
        let log = Log::with_entries((0..600).map(entry));
        let changed = Log::with_entries((0..600).map(|i| if i == 300 { b"changed".to_vec() } else { entry(i) }));
        // The log serves the changed entries but signs the original root.
        let mut served = serve(&changed, 600);
        assert_eq!(
            verify_tree(&mut served, &checkpoint(&log, 600)),
            Err(Error::RootMismatch { size: 600, expected: log.root(600), computed: changed.root(600) })
        );
        // Or keeps the original tiles but serves one changed bundle.
        let mut served = serve(&log, 600);
        served.files.insert("tile/entries/001".to_string(), serve(&changed, 600).files["tile/entries/001"].clone());
        assert_eq!(
            verify_tree(&mut served, &checkpoint(&log, 600)),
            Err(Error::RootMismatch { size: 600, expected: log.root(600), computed: changed.root(600) })
        );
    }

    #[test]
    fn verify_tree_catches_a_changed_tile() {
        let log = Log::with_entries((0..600).map(entry));
        for (path, byte) in [("tile/0/001", 32 * 5 + 3), ("tile/0/002.p/88", 32 * 87), ("tile/1/000.p/2", 32 + 31)] {
            let mut served = serve(&log, 600);
            let computed = Hash(served.files[path][byte / 32 * 32..][..32].try_into().unwrap());
            served.files.get_mut(path).unwrap()[byte] ^= 0x40;
            let altered = Hash(served.files[path][byte / 32 * 32..][..32].try_into().unwrap());
            assert_eq!(
                verify_tree(&mut served, &checkpoint(&log, 600)),
                Err(Error::TileMismatch { path: path.to_string(), position: (byte / 32) as u32, served: altered, computed })
            );
        }
        let mut served = serve(&log, 600);
        served.files.get_mut("tile/1/000.p/2").unwrap().push(0);
        assert_eq!(
            verify_tree(&mut served, &checkpoint(&log, 600)),
            Err(Error::Served { path: "tile/1/000.p/2".to_string(), reason: "65 bytes, but a tile of width 2 is 64 bytes".to_string() })
        );
    }

    #[test]
    fn verify_tree_refuses_other_roots_and_bad_bundles() {
        let log = Log::with_entries((0..600).map(entry));
        let other = Checkpoint { root: log.root(599), ..checkpoint(&log, 600) };
        assert_eq!(
            verify_tree(&mut serve(&log, 600), &other),
            Err(Error::RootMismatch { size: 600, expected: log.root(599), computed: log.root(600) })
        );
        let empty = Checkpoint { root: log.root(1), ..checkpoint(&log, 0) };
        assert_eq!(
            verify_tree(&mut serve(&log, 0), &empty),
            Err(Error::RootMismatch { size: 0, expected: log.root(1), computed: Hash::EMPTY })
        );
        // The partial bundle of a smaller tree.
        let mut served = serve(&log, 600);
        served.files.insert("tile/entries/002.p/88".to_string(), serve(&log, 599).files["tile/entries/002.p/87"].clone());
        assert_eq!(
            verify_tree(&mut served, &checkpoint(&log, 600)),
            Err(Error::Served {
                path: "tile/entries/002.p/88".to_string(),
                reason: "87 entries, but a tree of size 600 has 88 in this bundle".to_string()
            })
        );
        let mut served = serve(&log, 600);
        served.files.get_mut("tile/entries/000").unwrap().pop();
        assert!(matches!(verify_tree(&mut served, &checkpoint(&log, 600)), Err(Error::Served { path, .. }) if path == "tile/entries/000"));
        // A log that stopped serving its partial tiles.
        let mut served = serve(&log, 600);
        served.files.remove("tile/1/000.p/2");
        assert_eq!(
            verify_tree(&mut served, &checkpoint(&log, 600)),
            Err(Error::Fetch { path: "tile/1/000.p/2".to_string(), message: "404 Not Found".to_string() })
        );
    }

    #[test]
    fn verify_consistency_of_a_grown_log() {
        let log = Log::with_entries((0..1000).map(entry));
        for new in [2, 256, 257, 600, 1000] {
            let mut served = serve(&log, new);
            for old in [0, 1, 2, 100, 255, 256, 300, 599, 600, 999, 1000].into_iter().filter(|&old| old <= new) {
                verify_consistency(&mut served, &checkpoint(&log, old), &checkpoint(&log, new))
                    .unwrap_or_else(|e| panic!("({old}, {new}): {e}"));
            }
        }
        // A consistency check reads a few tiles, not the log.
        let mut served = serve(&log, 1000);
        verify_consistency(&mut served, &checkpoint(&log, 300), &checkpoint(&log, 1000)).unwrap();
        assert!(served.asked.iter().all(|p| !p.starts_with("tile/entries/")) && served.asked.len() <= 6, "{:?}", served.asked);
    }

    #[test]
    fn verify_consistency_refuses_a_rewritten_history() {
        let log = Log::with_entries((0..600).map(entry));
        let rewritten = Log::with_entries((0..600).map(|i| if i == 3 { b"rewritten".to_vec() } else { entry(i) }));
        let new = checkpoint(&rewritten, 600);
        for old in [4, 100, 300, 599] {
            let old = checkpoint(&log, old);
            assert_eq!(
                verify_consistency(&mut serve(&rewritten, 600), &old, &new),
                Err(Error::ConsistencyProof { old_size: old.size, old_root: old.root, new_size: 600, new_root: new.root })
            );
        }
        // Before the rewritten entry, the two histories agree.
        verify_consistency(&mut serve(&rewritten, 600), &checkpoint(&log, 3), &new).unwrap();
        // Tiles of the rewritten log do not authenticate against the original's checkpoint.
        let err = verify_consistency(&mut serve(&rewritten, 600), &checkpoint(&log, 300), &checkpoint(&log, 600)).unwrap_err();
        assert!(
            matches!(&err, Error::TilesInconsistent { size: 600, root, paths } if *root == log.root(600) && paths.contains("tile/1/000.p/2")),
            "{err}"
        );
    }

    #[test]
    fn verify_consistency_refusals() {
        let log = Log::with_entries((0..600).map(entry));
        let (old, new) = (checkpoint(&log, 300), checkpoint(&log, 600));
        let mut served = serve(&log, 600);
        assert_eq!(verify_consistency(&mut served, &new, &old), Err(Error::TreeShrank { old_size: 600, new_size: 300 }));
        let forked = Checkpoint { root: log.root(301), ..old.clone() };
        assert_eq!(
            verify_consistency(&mut served, &old, &forked),
            Err(Error::Fork { size: 300, old_root: old.root, new_root: forked.root })
        );
        verify_consistency(&mut served, &old, &old).unwrap();
        let elsewhere = Checkpoint { origin: "other.example/log".to_string(), ..new.clone() };
        assert_eq!(
            verify_consistency(&mut served, &old, &elsewhere),
            Err(Error::OriginMismatch { old: old.origin.clone(), new: "other.example/log".to_string() })
        );
        let bad_empty = Checkpoint { root: log.root(1), ..checkpoint(&log, 0) };
        assert_eq!(
            verify_consistency(&mut served, &bad_empty, &new),
            Err(Error::ConsistencyProof { old_size: 0, old_root: log.root(1), new_size: 600, new_root: new.root })
        );
        assert!(served.asked.is_empty(), "{:?}", served.asked);
        let mut missing = serve(&log, 600);
        missing.files.remove("tile/0/001");
        assert_eq!(
            verify_consistency(&mut missing, &old, &new),
            Err(Error::Fetch { path: "tile/0/001".to_string(), message: "404 Not Found".to_string() })
        );
        let mut short = serve(&log, 600);
        short.files.get_mut("tile/0/001").unwrap().truncate(100);
        assert_eq!(
            verify_consistency(&mut short, &old, &new),
            Err(Error::Served { path: "tile/0/001".to_string(), reason: "100 bytes, but a tile of width 256 is 8192 bytes".to_string() })
        );
        // A full tile that its parent does not list: TileHashReader lets this one through.
        let mut altered = serve(&log, 600);
        let listed = Hash(altered.files["tile/1/000.p/2"][32..64].try_into().unwrap());
        altered.files.get_mut("tile/0/001").unwrap()[40] ^= 1;
        let computed = Hash::from_tlog(Tile::subtree_hash(&altered.files["tile/0/001"]));
        assert_eq!(
            verify_consistency(&mut altered, &old, &new),
            Err(Error::TileParentMismatch {
                path: "tile/0/001".to_string(),
                parent: "tile/1/000.p/2".to_string(),
                position: 1,
                listed,
                computed
            })
        );
        // A tile that makes up the root.
        let mut altered = serve(&log, 600);
        altered.files.get_mut("tile/0/002.p/88").unwrap()[40] ^= 1;
        assert_eq!(
            verify_consistency(&mut altered, &old, &new),
            Err(Error::TilesInconsistent { size: 600, root: new.root, paths: "tile/1/000.p/2, tile/0/002.p/88, tile/0/001".to_string() })
        );
    }
}
