//! The Merkle tree over stored hashes: appending a record, a tree's root, and RFC 6962 inclusion
//! and consistency proofs, each as a `*_needs` function (the stored-hash indexes it reads) and the
//! operation over those hashes.
//!
//! Stored hashes are numbered as in Go's `sumdb/tlog` ([`stored_hash_index`](crate::stored_hash_index)):
//! record `n` adds its leaf hash and the hashes of the subtrees it completes, at consecutive
//! indexes from `stored_hash_index(0, n)`; a tree of `n` records has
//! [`stored_hash_count(n)`](crate::stored_hash_count) of them.

use std::collections::HashMap;

use crate::hash::{MapReader, from_tlog_all, needs, to_tlog_all};
use crate::{Error, Hash, Result, leaf_hash};

/// The largest tree this crate handles: 2^62 entries. Stored-hash indexes grow to about twice the
/// tree size, so this keeps every index, and every sum on the way to one, inside a `u64`; it is
/// also far beyond any log Palisade will keep.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// The longest proof a tree of [`MAX_TREE_SIZE`] can need: one hash per level below the root, and
/// one more for a consistency proof's common subtree.
pub(crate) const MAX_PROOF_LEN: usize = 64;

fn check_size(size: u64) -> Result<()> {
    if size > MAX_TREE_SIZE { Err(Error::TreeTooLarge { size }) } else { Ok(()) }
}

/// The stored hashes [`append`] reads to add record `n`: the roots of the complete subtrees that
/// record `n` closes, at most one per level.
pub fn append_needs(n: u64) -> Vec<u64> {
    if n >= MAX_TREE_SIZE {
        return Vec::new();
    }
    needs(|r| tlog_tiles::stored_hashes(n, b"", r))
}

/// The stored hashes that record `n` with content `entry` adds to the log: its leaf hash first,
/// then the subtree hashes it completes. They go at consecutive indexes starting at
/// [`stored_hash_index(0, n)`](crate::stored_hash_index); `have` holds (at least) the hashes of
/// [`append_needs(n)`](append_needs).
pub fn append(n: u64, entry: &[u8], have: &HashMap<u64, Hash>) -> Result<Vec<Hash>> {
    if n >= MAX_TREE_SIZE {
        return Err(Error::TreeTooLarge { size: n.saturating_add(1) });
    }
    let reader = MapReader::new(have);
    let hashes = tlog_tiles::stored_hashes(n, entry, &reader).map_err(|_| reader.error(|| unreachable_error("append")))?;
    Ok(from_tlog_all(hashes))
}

/// The stored hashes [`tree_hash`] reads for a tree of `size` entries: the roots of its complete
/// subtrees, at most one per level.
pub fn tree_hash_needs(size: u64) -> Vec<u64> {
    if size > MAX_TREE_SIZE {
        return Vec::new();
    }
    needs(|r| tlog_tiles::tree_hash(size, r))
}

/// The root hash of the tree of the first `size` entries ([`Hash::EMPTY`] for none); `have` holds
/// (at least) the hashes of [`tree_hash_needs(size)`](tree_hash_needs).
pub fn tree_hash(size: u64, have: &HashMap<u64, Hash>) -> Result<Hash> {
    check_size(size)?;
    let reader = MapReader::new(have);
    let root = tlog_tiles::tree_hash(size, &reader).map_err(|_| reader.error(|| unreachable_error("tree_hash")))?;
    Ok(Hash::from_tlog(root))
}

/// The stored hashes [`inclusion_proof`] reads to prove entry `index` in the tree of `size`
/// entries; nothing for an index outside the tree.
pub fn inclusion_needs(index: u64, size: u64) -> Vec<u64> {
    if size > MAX_TREE_SIZE || index >= size {
        return Vec::new();
    }
    needs(|r| tlog_tiles::prove_record(size, index, r))
}

/// The RFC 6962 inclusion proof (audit path) of entry `index` in the tree of `size` entries, from
/// the leaf's sibling up to the root's child; `have` holds (at least) the hashes of
/// [`inclusion_needs(index, size)`](inclusion_needs).
pub fn inclusion_proof(index: u64, size: u64, have: &HashMap<u64, Hash>) -> Result<Vec<Hash>> {
    check_size(size)?;
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    let reader = MapReader::new(have);
    let proof = tlog_tiles::prove_record(size, index, &reader).map_err(|_| reader.error(|| unreachable_error("inclusion_proof")))?;
    Ok(from_tlog_all(proof))
}

/// Checks that `proof` shows `leaf_entry` as entry `index` of the tree of `size` entries whose
/// root is `root`.
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf_entry: &[u8]) -> Result<()> {
    check_size(size)?;
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    // A longer proof cannot be right, and tlog_tiles copies the proof once per level it walks.
    if proof.len() > MAX_PROOF_LEN {
        return Err(Error::InclusionProof { index, size, root });
    }
    tlog_tiles::check_record(&to_tlog_all(proof), size, root.to_tlog(), index, leaf_hash(leaf_entry).to_tlog())
        .map_err(|_| Error::InclusionProof { index, size, root })
}

/// The stored hashes [`consistency_proof`] reads to prove that the tree of `new_size` entries
/// extends the tree of `old_size`; nothing when the sizes are out of order or `old_size` is 0
/// (the empty tree needs no proof).
pub fn consistency_needs(old_size: u64, new_size: u64) -> Vec<u64> {
    if new_size > MAX_TREE_SIZE || old_size > new_size || old_size == 0 {
        return Vec::new();
    }
    needs(|r| tlog_tiles::prove_tree(new_size, old_size, r))
}

/// The RFC 6962 consistency proof that the tree of `new_size` entries has the tree of `old_size`
/// entries as its prefix: empty when the sizes are equal or `old_size` is 0. `have` holds (at
/// least) the hashes of [`consistency_needs(old_size, new_size)`](consistency_needs).
pub fn consistency_proof(old_size: u64, new_size: u64, have: &HashMap<u64, Hash>) -> Result<Vec<Hash>> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(Error::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 {
        return Ok(Vec::new());
    }
    let reader = MapReader::new(have);
    let proof = tlog_tiles::prove_tree(new_size, old_size, &reader).map_err(|_| reader.error(|| unreachable_error("consistency_proof")))?;
    Ok(from_tlog_all(proof))
}

/// Checks that `proof` shows the tree of `new_size` entries with root `new_root` extending the
/// tree of `old_size` entries with root `old_root`. Every tree extends the empty one, whose root
/// must then be [`Hash::EMPTY`] and whose proof is empty; a tree of the same size extends only
/// itself.
pub fn check_consistency(proof: &[Hash], old_size: u64, old_root: Hash, new_size: u64, new_root: Hash) -> Result<()> {
    check_size(new_size)?;
    if old_size > new_size {
        return Err(Error::SizesOutOfOrder { old_size, new_size });
    }
    let refused = Error::ConsistencyProof { old_size, old_root, new_size, new_root };
    if old_size == 0 {
        return if proof.is_empty() && old_root == Hash::EMPTY { Ok(()) } else { Err(refused) };
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(refused);
    }
    tlog_tiles::check_tree(&to_tlog_all(proof), new_size, new_root.to_tlog(), old_size, old_root.to_tlog()).map_err(|_| refused)
}

/// The error for a failure of `tlog_tiles` that the checks before the call rule out: the only
/// other way these operations fail is a hash missing from the caller's map.
fn unreachable_error(operation: &str) -> Error {
    Error::Internal(format!("tlog_tiles refused the input of {operation}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stored_hash_index;

    /// The root of the leaves by RFC 6962 section 2.1's recursion, written without `tlog_tiles`:
    /// the oracle the stored-hash arithmetic is checked against.
    pub(crate) fn oracle_root(leaves: &[Hash]) -> Hash {
        use sha2::{Digest, Sha256};
        match leaves.len() {
            0 => Hash(Sha256::digest([]).into()),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n);
                let mut hasher = Sha256::new();
                hasher.update([1u8]);
                hasher.update(oracle_root(&leaves[..k]).0);
                hasher.update(oracle_root(&leaves[k..]).0);
                Hash(hasher.finalize().into())
            }
        }
    }

    /// The largest power of two strictly below `n` (n >= 2), computed by doubling so that the
    /// oracle shares no arithmetic with the code under test.
    fn largest_power_of_two_below(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub(crate) fn oracle_leaf(entry: &[u8]) -> Hash {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(entry);
        Hash(hasher.finalize().into())
    }

    /// A log grown through the needs/append API, with its stored hashes in a map as the server
    /// keeps them in its database.
    pub(crate) struct Log {
        pub(crate) entries: Vec<Vec<u8>>,
        pub(crate) store: HashMap<u64, Hash>,
    }

    impl Log {
        pub(crate) fn new() -> Log {
            Log { entries: Vec::new(), store: HashMap::new() }
        }

        pub(crate) fn with_entries(entries: impl IntoIterator<Item = Vec<u8>>) -> Log {
            let mut log = Log::new();
            for entry in entries {
                log.push(entry);
            }
            log
        }

        pub(crate) fn push(&mut self, entry: Vec<u8>) {
            let n = self.entries.len() as u64;
            let have: HashMap<u64, Hash> = append_needs(n).into_iter().map(|i| (i, self.store[&i])).collect();
            let hashes = append(n, &entry, &have).unwrap();
            let start = stored_hash_index(0, n);
            for (i, hash) in hashes.into_iter().enumerate() {
                assert!(self.store.insert(start + i as u64, hash).is_none(), "record {n} overwrote stored hash {}", start + i as u64);
            }
            self.entries.push(entry);
        }

        pub(crate) fn size(&self) -> u64 {
            self.entries.len() as u64
        }

        /// Only the hashes that `wanted` lists, so that a `*_needs` function that lists too few
        /// makes its operation fail.
        pub(crate) fn only(&self, wanted: &[u64]) -> HashMap<u64, Hash> {
            wanted.iter().map(|i| (*i, self.store[i])).collect()
        }

        pub(crate) fn root(&self, size: u64) -> Hash {
            tree_hash(size, &self.only(&tree_hash_needs(size))).unwrap()
        }
    }

    pub(crate) fn entry(i: usize) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    #[test]
    fn appended_log_matches_the_rfc_6962_recursion() {
        let mut log = Log::new();
        let mut leaves = Vec::new();
        assert_eq!(log.root(0), oracle_root(&[]));
        assert_eq!(oracle_root(&[]), Hash::EMPTY);
        for i in 0..1000 {
            let before = log.store.len() as u64;
            log.push(entry(i));
            leaves.push(oracle_leaf(&entry(i)));
            let size = log.size();
            assert_eq!(log.store.len() as u64, crate::stored_hash_count(size));
            assert_eq!(log.store[&stored_hash_index(0, i as u64)], leaves[i], "leaf hash of record {i}");
            assert!(log.store.len() as u64 > before);
            assert_eq!(log.root(size), oracle_root(&leaves), "root of size {size}");
        }
    }

    #[test]
    fn needs_list_exactly_what_is_read() {
        let log = Log::with_entries((0..300).map(entry));
        for n in [0, 1, 2, 3, 7, 8, 255, 256, 299] {
            let needs = append_needs(n);
            // Record n closes one subtree per trailing one bit of n.
            assert_eq!(needs.len() as u32, n.trailing_ones(), "append_needs({n})");
            let mut fewer = log.only(&needs);
            if let Some(first) = needs.first() {
                fewer.remove(first);
                assert_eq!(append(n, b"x", &fewer), Err(Error::MissingHash { index: *first }));
            }
        }
        for size in [1, 2, 5, 256, 257, 300] {
            let needs = tree_hash_needs(size);
            assert_eq!(needs.len() as u32, size.count_ones(), "tree_hash_needs({size})");
            let mut fewer = log.only(&needs);
            fewer.remove(&needs[0]);
            assert_eq!(tree_hash(size, &fewer), Err(Error::MissingHash { index: needs[0] }));
        }
        assert_eq!(tree_hash_needs(0), Vec::<u64>::new());
        assert_eq!(tree_hash(0, &HashMap::new()), Ok(Hash::EMPTY));
    }

    #[test]
    fn refused_sizes_and_indexes() {
        let empty = HashMap::new();
        assert_eq!(inclusion_needs(5, 5), Vec::<u64>::new());
        assert_eq!(inclusion_proof(5, 5, &empty), Err(Error::IndexOutOfRange { index: 5, size: 5 }));
        assert_eq!(check_inclusion(&[], 5, Hash::EMPTY, 7, b""), Err(Error::IndexOutOfRange { index: 7, size: 5 }));
        assert_eq!(consistency_needs(6, 5), Vec::<u64>::new());
        assert_eq!(consistency_proof(6, 5, &empty), Err(Error::SizesOutOfOrder { old_size: 6, new_size: 5 }));
        let too_large = MAX_TREE_SIZE + 1;
        assert_eq!(tree_hash_needs(too_large), Vec::<u64>::new());
        assert_eq!(tree_hash(too_large, &empty), Err(Error::TreeTooLarge { size: too_large }));
        assert_eq!(append_needs(MAX_TREE_SIZE), Vec::<u64>::new());
        assert_eq!(append(MAX_TREE_SIZE, b"", &empty), Err(Error::TreeTooLarge { size: too_large }));
        assert_eq!(inclusion_needs(0, u64::MAX), Vec::<u64>::new());
        assert_eq!(consistency_needs(1, u64::MAX), Vec::<u64>::new());
        // The largest tree is handled: its needs are listed without overflowing.
        assert_eq!(tree_hash_needs(MAX_TREE_SIZE).len(), 1);
        assert_eq!(inclusion_needs(MAX_TREE_SIZE - 1, MAX_TREE_SIZE).len(), 62);
    }

    /// Flips one bit of each proof hash in turn, and adds and drops a hash: each must be refused.
    fn tampered(proof: &[Hash]) -> Vec<Vec<Hash>> {
        let mut out = Vec::new();
        for i in 0..proof.len() {
            let mut p = proof.to_vec();
            p[i].0[i % 32] ^= 1;
            out.push(p);
        }
        let mut longer = proof.to_vec();
        longer.push(Hash::EMPTY);
        out.push(longer);
        if !proof.is_empty() {
            out.push(proof[..proof.len() - 1].to_vec());
        }
        out
    }

    #[test]
    fn inclusion_proofs() {
        let log = Log::with_entries((0..300).map(entry));
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for size in 1..=40 {
            pairs.extend((0..size).map(|i| (i, size)));
        }
        for size in [255, 256, 257, 300] {
            pairs.extend([0, 1, 127, 128, 254, size - 2, size - 1].into_iter().map(|i| (i, size)));
        }
        for (index, size) in pairs {
            let root = log.root(size);
            let proof = inclusion_proof(index, size, &log.only(&inclusion_needs(index, size))).unwrap();
            let leaf = &log.entries[index as usize];
            check_inclusion(&proof, size, root, index, leaf).unwrap_or_else(|e| panic!("({index}, {size}): {e}"));
            for bad in tampered(&proof) {
                assert!(check_inclusion(&bad, size, root, index, leaf).is_err(), "tampered proof accepted for ({index}, {size})");
            }
            assert!(check_inclusion(&proof, size, root, index, b"another entry").is_err());
            if size > 1 {
                let other = (index + 1) % size;
                assert!(check_inclusion(&proof, size, root, other, leaf).is_err(), "({index}, {size}) accepted at {other}");
            }
            assert_eq!(
                check_inclusion(&proof, size, Hash::EMPTY, index, leaf),
                Err(Error::InclusionProof { index, size, root: Hash::EMPTY })
            );
        }
    }

    #[test]
    fn consistency_proofs() {
        let log = Log::with_entries((0..300).map(entry));
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for new in 1..=40 {
            pairs.extend((0..=new).map(|old| (old, new)));
        }
        for new in [255, 256, 257, 300] {
            pairs.extend([1, 2, 100, 128, 255, new - 1, new].into_iter().map(|old| (old, new)));
        }
        for (old, new) in pairs {
            let (old_root, new_root) = (log.root(old), log.root(new));
            let proof = consistency_proof(old, new, &log.only(&consistency_needs(old, new))).unwrap();
            check_consistency(&proof, old, old_root, new, new_root).unwrap_or_else(|e| panic!("({old}, {new}): {e}"));
            for bad in tampered(&proof) {
                assert!(check_consistency(&bad, old, old_root, new, new_root).is_err(), "tampered proof accepted for ({old}, {new})");
            }
            let wrong = leaf_hash(b"wrong");
            assert!(check_consistency(&proof, old, wrong, new, new_root).is_err(), "({old}, {new}) with a wrong old root");
            // Every tree extends the empty one, so from size 0 nothing ties the new root down.
            let with_wrong_new_root = check_consistency(&proof, old, old_root, new, wrong);
            assert_eq!(with_wrong_new_root.is_ok(), old == 0, "({old}, {new}) with a wrong new root");
        }
        // A history rewritten at entry 3 is not an extension of the original.
        let rewritten = Log::with_entries((0..300).map(|i| if i == 3 { b"rewritten".to_vec() } else { entry(i) }));
        for (old, new) in [(4, 10), (5, 300), (100, 257)] {
            let proof = consistency_proof(old, new, &rewritten.only(&consistency_needs(old, new))).unwrap();
            assert_eq!(
                check_consistency(&proof, old, log.root(old), new, rewritten.root(new)),
                Err(Error::ConsistencyProof { old_size: old, old_root: log.root(old), new_size: new, new_root: rewritten.root(new) })
            );
        }
    }
}
