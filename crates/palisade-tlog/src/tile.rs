//! [C2SP tlog-tiles]: tile paths, hash tiles built from stored hashes, which tiles a tree has, and
//! entry bundles.
//!
//! Tiles have height 8, the only height the spec allows, so their paths carry no height (unlike
//! Go's `tile/8/...`): `tile/<L>/<N>[.p/<W>]` for hashes and `tile/entries/<N>[.p/<W>]` for
//! entries, with `<N>` in three-digit groups (`x001/x234/067`) and `.p/<W>` only on a partial
//! tile, `<W>` from 1 to 255. A hash tile at level `L` lists up to 256 hashes of complete subtrees
//! of `256^L` entries.
//!
//! Levels stop at [`MAX_TILE_LEVEL`] = 7, below the spec's 63: a level-8 hash would cover 2^64
//! entries, more than a `u64` tree size can count, so a tile above level 7 never exists. Paths are
//! also refused for tiles that no tree of at most [`MAX_TREE_SIZE`](crate::MAX_TREE_SIZE)
//! entries has.
//!
//! [C2SP tlog-tiles]: https://c2sp.org/tlog-tiles

use std::collections::HashMap;

use crate::{Error, Hash, MAX_TREE_SIZE, Result, stored_hash_index};

/// The height of every tile: each lists hashes of one tree level, 8 levels apart.
pub const TILE_HEIGHT: u8 = 8;

/// The width of a full tile or entry bundle: 2^8.
pub const TILE_WIDTH: u32 = 1 << TILE_HEIGHT;

/// The highest tile level: a level-8 tile hash would cover 2^64 entries.
pub const MAX_TILE_LEVEL: u8 = 7;

/// The largest entry an entry bundle can hold, behind its big-endian `u16` length.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Where a tile is served, below the log's prefix: a hash tile or an entry bundle. A full tile has
/// width [`TILE_WIDTH`]; a partial one 1 to 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// `tile/<level>/<index>[.p/<width>]`: `width` hashes at tree level `8 * level`.
    Hash { level: u8, index: u64, width: u32 },
    /// `tile/entries/<index>[.p/<width>]`: the bundle of `width` entries behind level-0 tile
    /// `index`.
    Entries { index: u64, width: u32 },
}

impl TilePath {
    /// Reads a tile path from what follows `tile/` (`0/x001/067.p/5`, `entries/000`), refusing every
    /// spelling but the canonical one: leading zeros, a missing or extra `x`, a `.p/256` or `.p/0`,
    /// a level above [`MAX_TILE_LEVEL`], and a tile no tree of at most
    /// [`MAX_TREE_SIZE`](crate::MAX_TREE_SIZE) entries has.
    pub fn parse(rest: &str) -> Result<TilePath> {
        let refuse = |reason: String| Error::TilePath { path: format!("tile/{rest}"), reason };
        let Some((first, tail)) = rest.split_once('/') else {
            return Err(refuse("expected `<level>/<index>` or `entries/<index>`".to_string()));
        };
        let level = if first == "entries" { None } else { Some(parse_level(first).map_err(refuse)?) };
        let (index_part, width) = match tail.split_once(".p/") {
            Some((index_part, width)) => (index_part, parse_width(width).map_err(refuse)?),
            None => (tail, TILE_WIDTH),
        };
        let index = parse_index(index_part).map_err(refuse)?;
        let path = match level {
            Some(level) => TilePath::Hash { level, index, width },
            None => TilePath::Entries { index, width },
        };
        if !fits(level.unwrap_or(0), index, width) {
            return Err(refuse(format!("no tree of at most {MAX_TREE_SIZE} entries has this tile")));
        }
        // Every part was read in its one canonical spelling, so the path is the same written back.
        debug_assert_eq!(path.path(), format!("tile/{rest}"));
        Ok(path)
    }

    /// The path, `tile/` included: `tile/0/x001/067.p/5`, `tile/entries/000`.
    pub fn path(&self) -> String {
        let (level, index, width) = match *self {
            TilePath::Hash { level, index, width } => (level.to_string(), index, width),
            TilePath::Entries { index, width } => ("entries".to_string(), index, width),
        };
        let mut n = index;
        let mut digits = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            digits = format!("x{:03}/{digits}", n % 1000);
        }
        let partial = if width == TILE_WIDTH { String::new() } else { format!(".p/{width}") };
        format!("tile/{level}/{digits}{partial}")
    }

    /// The number of hashes or entries in the tile.
    pub fn width(&self) -> u32 {
        match *self {
            TilePath::Hash { width, .. } | TilePath::Entries { width, .. } => width,
        }
    }
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'))
}

fn parse_level(text: &str) -> Result<u8, String> {
    if !is_decimal(text) || text.len() > 2 {
        return Err(format!("level {text:?} is not a decimal number from 0 to 63 without leading zeros"));
    }
    let level: u8 = text.parse().map_err(|_| format!("level {text:?} is not a number"))?;
    if level > MAX_TILE_LEVEL {
        return Err(format!(
            "level {level} is above {MAX_TILE_LEVEL}, the highest level any tree has (a level-8 hash covers 2^64 entries)"
        ));
    }
    Ok(level)
}

fn parse_width(text: &str) -> Result<u32, String> {
    if !is_decimal(text) || text.len() > 3 {
        return Err(format!("partial width {text:?} is not a decimal number from 1 to 255 without leading zeros"));
    }
    match text.parse::<u32>() {
        Ok(width @ 1..=255) => Ok(width),
        _ => Err(format!("partial width {text} is not from 1 to 255 (a full tile has no `.p/`)")),
    }
}

/// Reads `x001/x234/067`: groups of three digits, all but the last behind an `x`, and no group of
/// leading zeros.
fn parse_index(text: &str) -> Result<u64, String> {
    let groups: Vec<&str> = text.split('/').collect();
    let last = groups.len() - 1;
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let digits = if i < last {
            group.strip_prefix('x').ok_or_else(|| format!("index group {group:?} is not `x` and three digits"))?
        } else {
            group
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("index group {group:?} is not {}three digits", if i < last { "`x` and " } else { "" }));
        }
        if i == 0 && i < last && digits == "000" {
            return Err(format!("index group {group:?} is a leading zero group"));
        }
        let value: u64 = digits.parse().map_err(|_| format!("index group {group:?} is not a number"))?;
        index = index.checked_mul(1000).and_then(|n| n.checked_add(value)).ok_or_else(|| "index overflows 64 bits".to_string())?;
    }
    Ok(index)
}

/// Whether a tile at `level` with `index` and `width` lies within a tree of [`MAX_TREE_SIZE`]
/// entries: its last hash must cover entries below that size.
fn fits(level: u8, index: u64, width: u32) -> bool {
    let end = index.checked_mul(u64::from(TILE_WIDTH)).and_then(|start| start.checked_add(u64::from(width)));
    level <= MAX_TILE_LEVEL
        && (1..=TILE_WIDTH).contains(&width)
        && end.and_then(|end| end.checked_mul(1 << (u32::from(TILE_HEIGHT) * u32::from(level)))).is_some_and(|e| e <= MAX_TREE_SIZE)
}

/// The width of the hash tile at `level` and `index` (the same as the entry bundle's, at level 0)
/// in a tree of `size` entries: [`TILE_WIDTH`] for a full tile, less for the partial last one, and
/// `None` where the tree has no such tile.
pub fn tile_width(level: u8, index: u64, size: u64) -> Option<u32> {
    if level > MAX_TILE_LEVEL {
        return None;
    }
    let hashes = size >> (u32::from(TILE_HEIGHT) * u32::from(level));
    let start = index.checked_mul(u64::from(TILE_WIDTH))?;
    let width = hashes.checked_sub(start).filter(|&w| w > 0)?;
    Some(width.min(u64::from(TILE_WIDTH)) as u32)
}

/// The stored-hash indexes of the hash tile at `level`, `index` and `width`, in tile order;
/// nothing for a tile that [`hash_tile`] refuses.
pub fn hash_tile_needs(level: u8, index: u64, width: u32) -> Vec<u64> {
    if !fits(level, index, width) {
        return Vec::new();
    }
    let start = index * u64::from(TILE_WIDTH);
    (0..u64::from(width)).map(|i| stored_hash_index(TILE_HEIGHT * level, start + i)).collect()
}

/// The hash tile at `level`, `index` and `width` as served: its hashes concatenated, 32 bytes
/// each. `have` holds (at least) the hashes of [`hash_tile_needs`].
pub fn hash_tile(level: u8, index: u64, width: u32, have: &HashMap<u64, Hash>) -> Result<Vec<u8>> {
    if !fits(level, index, width) {
        let reason = if level > MAX_TILE_LEVEL {
            "the level is above 7"
        } else if !(1..=TILE_WIDTH).contains(&width) {
            "the width is not from 1 to 256"
        } else {
            "no tree of at most 2^62 entries has it"
        };
        return Err(Error::Tile { level, index, width, reason });
    }
    let mut data = Vec::with_capacity(width as usize * 32);
    for i in hash_tile_needs(level, index, width) {
        data.extend_from_slice(&have.get(&i).ok_or(Error::MissingHash { index: i })?.0);
    }
    Ok(data)
}

/// An entry bundle: each entry behind its length as a big-endian `u16`. A bundle holds 1 to 256
/// entries of at most [`MAX_ENTRY_SIZE`] bytes each.
pub fn entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>> {
    if entries.is_empty() || entries.len() > TILE_WIDTH as usize {
        return Err(Error::Bundle(format!("{} entries; a bundle holds 1 to {TILE_WIDTH}", entries.len())));
    }
    let mut out = Vec::with_capacity(entries.iter().map(|e| 2 + e.as_ref().len()).sum());
    for (position, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| Error::EntryTooLarge { position, len: entry.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// The entries of a bundle, refusing a truncated one, an empty one, and one of more than 256
/// entries.
pub fn parse_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>> {
    if data.is_empty() {
        return Err(Error::Bundle(format!("empty; a bundle holds 1 to {TILE_WIDTH} entries")));
    }
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let offset = data.len() - rest.len();
        if entries.len() == TILE_WIDTH as usize {
            return Err(Error::Bundle(format!("more than {TILE_WIDTH} entries: bytes remain at offset {offset}")));
        }
        let Some((len, after)) = rest.split_first_chunk::<2>() else {
            return Err(Error::Bundle(format!("truncated: entry {} at offset {offset} has 1 byte of its 2-byte length", entries.len())));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if after.len() < len {
            return Err(Error::Bundle(format!(
                "truncated: entry {} at offset {offset} is {len} bytes long, but {} remain",
                entries.len(),
                after.len()
            )));
        }
        entries.push(after[..len].to_vec());
        rest = &after[len..];
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::MapReader;
    use crate::tree::tests::{Log, entry, oracle_root};
    use crate::{leaf_hash, stored_hash_count};

    fn check(rest: &str, expected: TilePath) {
        assert_eq!(TilePath::parse(rest), Ok(expected), "{rest:?}");
        assert_eq!(expected.path(), format!("tile/{rest}"));
    }

    #[test]
    fn tile_paths() {
        check("0/000", TilePath::Hash { level: 0, index: 0, width: 256 });
        check("0/001.p/5", TilePath::Hash { level: 0, index: 1, width: 5 });
        check("0/x001/067.p/5", TilePath::Hash { level: 0, index: 1067, width: 5 });
        check("3/x001/x234/067", TilePath::Hash { level: 3, index: 1_234_067, width: 256 });
        check("7/000.p/64", TilePath::Hash { level: 7, index: 0, width: 64 });
        check("entries/000", TilePath::Entries { index: 0, width: 256 });
        check("entries/999.p/255", TilePath::Entries { index: 999, width: 255 });
        check("entries/x001/000.p/1", TilePath::Entries { index: 1000, width: 1 });
    }

    fn check_refused(rest: &str, reason: &str) {
        let path = format!("tile/{rest}");
        assert_eq!(TilePath::parse(rest), Err(Error::TilePath { path, reason: reason.to_string() }), "{rest:?}");
    }

    #[test]
    fn refused_tile_paths() {
        check_refused("", "expected `<level>/<index>` or `entries/<index>`");
        check_refused("0", "expected `<level>/<index>` or `entries/<index>`");
        check_refused("00/000", "level \"00\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("01/000", "level \"01\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("-1/000", "level \"-1\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("+1/000", "level \"+1\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("100/000", "level \"100\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("8/000", "level 8 is above 7, the highest level any tree has (a level-8 hash covers 2^64 entries)");
        check_refused("63/000", "level 63 is above 7, the highest level any tree has (a level-8 hash covers 2^64 entries)");
        check_refused("data/000", "level \"data\" is not a decimal number from 0 to 63 without leading zeros");
        check_refused("8/0/000", "level 8 is above 7, the highest level any tree has (a level-8 hash covers 2^64 entries)");
        check_refused("0/1", "index group \"1\" is not three digits");
        check_refused("0/0001", "index group \"0001\" is not three digits");
        check_refused("0/x001", "index group \"x001\" is not three digits");
        check_refused("0/001/067", "index group \"001\" is not `x` and three digits");
        check_refused("0/x1/067", "index group \"x1\" is not `x` and three digits");
        check_refused("0/x000/067", "index group \"x000\" is a leading zero group");
        check_refused("0/x000/x001/067", "index group \"x000\" is a leading zero group");
        check_refused("0/x001/x067", "index group \"x067\" is not three digits");
        check_refused("0/", "index group \"\" is not three digits");
        check_refused("0/000/", "index group \"000\" is not `x` and three digits");
        check_refused("0/+12", "index group \"+12\" is not three digits");
        check_refused("0/000.p/0", "partial width 0 is not from 1 to 255 (a full tile has no `.p/`)");
        check_refused("0/000.p/256", "partial width 256 is not from 1 to 255 (a full tile has no `.p/`)");
        check_refused("0/000.p/05", "partial width \"05\" is not a decimal number from 1 to 255 without leading zeros");
        check_refused("0/000.p/", "partial width \"\" is not a decimal number from 1 to 255 without leading zeros");
        check_refused("0/000.p/1000", "partial width \"1000\" is not a decimal number from 1 to 255 without leading zeros");
        check_refused("0/000.p/5/6", "partial width \"5/6\" is not a decimal number from 1 to 255 without leading zeros");
        check_refused("0/000.p5", "index group \"000.p5\" is not three digits");
        check_refused("0/000.q/5", "index group \"000.q\" is not `x` and three digits");
        check_refused("entries/000.p/5.p/6", "partial width \"5.p/6\" is not a decimal number from 1 to 255 without leading zeros");
        check_refused("0/x001/x002/x003/x004/x005/x006/x007/000", "index overflows 64 bits");
        // Level 7 holds 64 hashes at most in a tree of 2^62 entries; entries stop at 2^62.
        check_refused("7/000.p/65", "no tree of at most 4611686018427387904 entries has this tile");
        check_refused("7/001.p/1", "no tree of at most 4611686018427387904 entries has this tile");
        check_refused("entries/x018/x014/x398/x509/x481/984", "no tree of at most 4611686018427387904 entries has this tile");
        // The last entry bundle of the largest tree is still a tile.
        check("entries/x018/x014/x398/x509/x481/983", TilePath::Entries { index: (MAX_TREE_SIZE >> 8) - 1, width: 256 });
    }

    #[test]
    fn tile_widths() {
        // The spec's example: a tree of 70,000 entries has 273 full level-0 tiles, one of width 112,
        // one full level-1 tile, one of width 17, and one level-2 tile of width 1.
        let size = 70_000;
        assert_eq!((0..273).map(|n| tile_width(0, n, size)).collect::<Vec<_>>(), vec![Some(256); 273]);
        assert_eq!(tile_width(0, 273, size), Some(112));
        assert_eq!(tile_width(0, 274, size), None);
        assert_eq!((tile_width(1, 0, size), tile_width(1, 1, size), tile_width(1, 2, size)), (Some(256), Some(17), None));
        assert_eq!((tile_width(2, 0, size), tile_width(3, 0, size)), (Some(1), None));
        // A tree of 256 entries is one full level-0 tile and a level-1 tile of width 1.
        assert_eq!((tile_width(0, 0, 256), tile_width(0, 1, 256), tile_width(1, 0, 256)), (Some(256), None, Some(1)));
        assert_eq!(tile_width(0, 0, 0), None);
        assert_eq!(tile_width(7, 0, MAX_TREE_SIZE), Some(64));
        assert_eq!(tile_width(8, 0, u64::MAX), None);
        assert_eq!(tile_width(0, u64::MAX, u64::MAX), None);
        // The same tiles as tlog_tiles lists for a tree grown from empty.
        for size in [1, 255, 256, 257, 600, 65_535, 65_536, 70_000] {
            let mut ours = Vec::new();
            for level in 0..=MAX_TILE_LEVEL {
                ours.extend((0..).map_while(|n| tile_width(level, n, size).map(|w| (level, n, w))));
            }
            let theirs: Vec<_> =
                tlog_tiles::Tile::new_tiles(TILE_HEIGHT, 0, size).iter().map(|t| (t.level(), t.level_index(), t.width())).collect();
            assert_eq!(ours, theirs, "size {size}");
        }
    }

    #[test]
    fn hash_tiles_match_tlog_tiles() {
        let log = Log::with_entries((0..600).map(entry));
        let reader = MapReader::new(&log.store);
        assert_eq!(log.store.len() as u64, stored_hash_count(600));
        for (level, index) in [(0, 0), (0, 1), (0, 2), (1, 0)] {
            let width = tile_width(level, index, 600).unwrap();
            let needs = hash_tile_needs(level, index, width);
            assert_eq!(needs.len(), width as usize);
            let ours = hash_tile(level, index, width, &log.only(&needs)).unwrap();
            let theirs = tlog_tiles::Tile::new(TILE_HEIGHT, level, index, width, false).read_data(&reader).unwrap();
            assert_eq!(ours, theirs, "level {level}, index {index}, width {width}");
            // A partial tile is a prefix of the full one that replaces it.
            if width > 1 {
                assert_eq!(hash_tile(level, index, width - 1, &log.store).unwrap(), ours[..ours.len() - 32]);
            }
        }
        // Level-0 tiles list leaf hashes; level-1 tiles the roots of whole level-0 tiles.
        let level0 = hash_tile(0, 2, 88, &log.store).unwrap();
        assert_eq!(level0[..32], leaf_hash(&entry(512)).0);
        let level1 = hash_tile(1, 0, 2, &log.store).unwrap();
        let leaves: Vec<Hash> = log.entries.iter().map(|e| leaf_hash(e)).collect();
        assert_eq!(level1[32..], oracle_root(&leaves[256..512]).0);
        // A hash the tile needs but the map lacks is named.
        let mut fewer = log.only(&hash_tile_needs(0, 1, 256));
        let missing = stored_hash_index(0, 300);
        fewer.remove(&missing);
        assert_eq!(hash_tile(0, 1, 256, &fewer), Err(Error::MissingHash { index: missing }));
        // Tiles that no tree has are refused, and need nothing.
        for (level, index, width, reason) in
            [(8, 0, 1, "the level is above 7"), (0, 0, 0, "the width is not from 1 to 256"), (0, 0, 257, "the width is not from 1 to 256")]
        {
            assert_eq!(hash_tile_needs(level, index, width), Vec::<u64>::new());
            assert_eq!(hash_tile(level, index, width, &log.store), Err(Error::Tile { level, index, width, reason }));
        }
        assert_eq!(hash_tile_needs(0, u64::MAX, 1), Vec::<u64>::new());
    }

    #[test]
    fn entry_bundles() {
        let entries: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![0xff; 300], vec![7; MAX_ENTRY_SIZE]];
        let bundle = entry_bundle(&entries).unwrap();
        assert_eq!(&bundle[..7], b"\x00\x03one\x00\x00");
        assert_eq!(&bundle[7..9], &[0x01, 0x2c]);
        assert_eq!(bundle.len(), entries.iter().map(|e| 2 + e.len()).sum::<usize>());
        assert_eq!(parse_entry_bundle(&bundle), Ok(entries.clone()));
        let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        assert_eq!(entry_bundle(&slices), Ok(bundle.clone()));
        let full: Vec<Vec<u8>> = (0..256).map(entry).collect();
        assert_eq!(parse_entry_bundle(&entry_bundle(&full).unwrap()), Ok(full.clone()));

        // Every truncation is refused, at any byte.
        for cut in 1..bundle.len() {
            let parsed = parse_entry_bundle(&bundle[..cut]);
            let at_boundary = [5, 7, 309].contains(&cut);
            assert_eq!(parsed.is_ok(), at_boundary, "cut at {cut}: {parsed:?}");
        }
        assert_eq!(
            parse_entry_bundle(b"\x00\x03on"),
            Err(Error::Bundle("truncated: entry 0 at offset 0 is 3 bytes long, but 2 remain".to_string()))
        );
        assert_eq!(
            parse_entry_bundle(b"\x00\x03one\x00"),
            Err(Error::Bundle("truncated: entry 1 at offset 5 has 1 byte of its 2-byte length".to_string()))
        );
        assert_eq!(parse_entry_bundle(b""), Err(Error::Bundle("empty; a bundle holds 1 to 256 entries".to_string())));
        let mut too_many = entry_bundle(&full).unwrap();
        too_many.extend_from_slice(b"\x00\x00");
        let offset = too_many.len() - 2;
        assert_eq!(parse_entry_bundle(&too_many), Err(Error::Bundle(format!("more than 256 entries: bytes remain at offset {offset}"))));

        assert_eq!(entry_bundle(&[vec![0u8; MAX_ENTRY_SIZE + 1]]), Err(Error::EntryTooLarge { position: 0, len: 65_536 }));
        assert_eq!(entry_bundle(&[&b"a"[..], &[0u8; 70_000][..]]), Err(Error::EntryTooLarge { position: 1, len: 70_000 }));
        assert_eq!(entry_bundle::<&[u8]>(&[]), Err(Error::Bundle("0 entries; a bundle holds 1 to 256".to_string())));
        let many: Vec<&[u8]> = vec![&b"x"[..]; 257];
        assert_eq!(entry_bundle(&many), Err(Error::Bundle("257 entries; a bundle holds 1 to 256".to_string())));
    }
}
