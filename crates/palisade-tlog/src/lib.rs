//! The mechanics of Palisade's transparency log: an append-only [RFC 6962] Merkle log served as
//! [C2SP tlog-tiles], with [C2SP signed-note] checkpoints signed with Ed25519 ([C2SP
//! tlog-checkpoint]), [C2SP tlog-proof] offline proofs, and the verification a client runs
//! against a served log.
//!
//! The hashing, proofs and note signatures are those of `tlog_tiles` and `signed_note`, Cloudflare's
//! ports of Go's `golang.org/x/mod/sumdb/tlog` and `sumdb/note`; this crate is the glue that gives
//! them Palisade's shape.
//!
//! Everything here is pure and synchronous: no I/O, no async, no network, no database and no
//! clock (key generation reads the operating system's randomness). The server keeps the log's
//! stored hashes in a database and reads them asynchronously, so every operation that reads stored
//! hashes comes in two halves: a `*_needs` function that lists the stored-hash indexes the
//! operation will read (see [`stored_hash_index`]), and the operation itself, which takes those
//! hashes in a `HashMap<u64, Hash>` and fails with [`Error::MissingHash`] on one that is absent.
//! For input the operation refuses (an index outside the tree, say), `*_needs` lists nothing and
//! the operation says why.
//!
//! The client side ([`verify_tree`], [`verify_consistency`]) reads a served log through a
//! [`TileSource`] that the caller implements, so that fetching stays outside this crate.
//!
//! Trees hold at most [`MAX_TREE_SIZE`] entries (2^62); larger sizes are refused wherever they
//! appear, so that the stored-hash arithmetic (about two hashes per entry, as `u64` indexes) never
//! overflows.
//!
//! [RFC 6962]: https://www.rfc-editor.org/rfc/rfc6962.html
//! [C2SP tlog-tiles]: https://c2sp.org/tlog-tiles
//! [C2SP signed-note]: https://c2sp.org/signed-note
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint
//! [C2SP tlog-proof]: https://c2sp.org/tlog-proof

mod hash;
mod note;
mod proof;
mod tile;
mod tree;
mod verify;

pub use hash::{Hash, leaf_hash};
pub use note::{Checkpoint, SigningKey, open_checkpoint, sign_checkpoint};
pub use proof::{PROOF_HEADER, ProofInfo, check_proof, format_proof};
pub use tile::{
    MAX_ENTRY_SIZE, MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, TilePath, entry_bundle, hash_tile, hash_tile_needs, parse_entry_bundle,
    tile_width,
};
pub use tlog_tiles::{stored_hash_count, stored_hash_index};
pub use tree::{
    MAX_TREE_SIZE, append, append_needs, check_consistency, check_inclusion, consistency_needs, consistency_proof, inclusion_needs,
    inclusion_proof, tree_hash, tree_hash_needs,
};
pub use verify::{TileSource, verify_consistency, verify_tree};

/// The result of this crate's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The error type lives at the crate root so that every module can name it without the modules
// depending on each other in a loop (the tidy test's module-cycle check).

/// Why an operation of this crate failed. Each message names what was refused and, for what a
/// log served, what differed: sizes, roots and hashes in base64, and the tile path. No message
/// ever contains a private key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A key name that a signed note cannot carry.
    #[error("invalid key name {0:?}: a note key name is non-empty and has no whitespace and no '+'")]
    KeyName(String),
    /// A private key text that does not parse; the text itself is never repeated.
    #[error("malformed private key: {0}")]
    PrivateKey(&'static str),
    /// A verifier key text that does not parse.
    #[error("malformed verifier key {key:?}: {reason}")]
    VerifierKey { key: String, reason: &'static str },
    /// The operating system's random number generator failed.
    #[error("could not read the operating system's randomness: {0}")]
    Randomness(String),
    /// Signing failed, or the checkpoint cannot be written as a note.
    #[error("could not sign the checkpoint: {0}")]
    Sign(String),
    /// A checkpoint origin that the checkpoint format cannot carry.
    #[error("invalid checkpoint origin {0:?}: an origin is non-empty and on one line, without control characters")]
    Origin(String),
    /// Text that is not a signed note.
    #[error("malformed signed note: {0}")]
    Note(&'static str),
    /// A note that carries no signature by the expected key.
    #[error("the checkpoint is not signed by key {key}")]
    NotSigned { key: String },
    /// A note with a signature by the expected key that does not verify.
    #[error("the checkpoint's signature by key {key} does not verify")]
    BadSignature { key: String },
    /// A signed note whose text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    CheckpointBody(&'static str),
    /// A tree larger than this crate handles.
    #[error("tree size {size} is larger than the {max} entries this log handles", max = crate::MAX_TREE_SIZE)]
    TreeTooLarge { size: u64 },
    /// A stored hash that an operation needed was not among those given.
    #[error("stored hash {index} is needed but was not given")]
    MissingHash { index: u64 },
    /// An entry index outside the tree.
    #[error("entry {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof asked between sizes in the wrong order.
    #[error("a tree of size {old_size} cannot be a prefix of a tree of size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    /// An inclusion proof that does not lead to the root.
    #[error("the inclusion proof for entry {index} does not lead to root {root} of the tree of size {size}")]
    InclusionProof { index: u64, size: u64, root: Hash },
    /// A consistency proof that does not link the two roots.
    #[error(
        "the consistency proof does not show the tree of size {new_size} (root {new_root}) extending the tree of size {old_size} (root {old_root})"
    )]
    ConsistencyProof { old_size: u64, old_root: Hash, new_size: u64, new_root: Hash },
    /// A tile path that is not the canonical path of a tile.
    #[error("invalid tile path {path:?}: {reason}")]
    TilePath { path: String, reason: String },
    /// Tile coordinates that name no tile of any tree this crate handles.
    #[error("no tile at level {level}, index {index}, width {width}: {reason}")]
    Tile { level: u8, index: u64, width: u32, reason: &'static str },
    /// An entry too long for an entry bundle's 16-bit length prefix.
    #[error("entry {position} is {len} bytes; an entry bundle holds entries of at most {max} bytes", max = crate::MAX_ENTRY_SIZE)]
    EntryTooLarge { position: usize, len: usize },
    /// An entry bundle that does not parse, or a list of entries that makes none.
    #[error("malformed entry bundle: {0}")]
    Bundle(String),
    /// A tlog-proof that does not parse; `line` counts from 1.
    #[error("malformed tlog-proof, line {line}: {reason}")]
    ProofFormat { line: usize, reason: String },
    /// The [`TileSource`](crate::TileSource) failed to fetch a path.
    #[error("could not fetch {path}: {message}")]
    Fetch { path: String, message: String },
    /// A tile or bundle the log served is not the shape the checkpoint requires.
    #[error("{path}: {reason}")]
    Served { path: String, reason: String },
    /// A hash tile the log served disagrees with the hashes of the entries it served.
    #[error("{path}: hash {position} is {served}, but the log's entries give {computed}")]
    TileMismatch { path: String, position: u32, served: Hash, computed: Hash },
    /// A full tile the log served does not hash to what its parent tile lists for it.
    #[error("{path} hashes to {computed}, but {parent} lists {listed} for it (hash {position})")]
    TileParentMismatch { path: String, parent: String, position: u32, listed: Hash, computed: Hash },
    /// The entries a log served do not hash to its checkpoint's root.
    #[error("the {size} entries served hash to root {computed}, but the checkpoint's root is {expected}")]
    RootMismatch { size: u64, expected: Hash, computed: Hash },
    /// The tiles a log served do not hash to its checkpoint's root.
    #[error("the tiles served for tree size {size} do not hash to the checkpoint's root {root} (fetched: {paths})")]
    TilesInconsistent { size: u64, root: Hash, paths: String },
    /// An old checkpoint whose tree is larger than the new one's.
    #[error("the old checkpoint's tree (size {old_size}) is larger than the new one's (size {new_size})")]
    TreeShrank { old_size: u64, new_size: u64 },
    /// Two checkpoints of one size with different roots: a forked log.
    #[error("two checkpoints for tree size {size} with different roots: {old_root} and {new_root}")]
    Fork { size: u64, old_root: Hash, new_root: Hash },
    /// A failure that the checks of this crate should have ruled out.
    #[error("internal error: {0}")]
    Internal(String),
    /// Checkpoints of two different logs.
    #[error("the checkpoints are of different logs: origin {old:?} and origin {new:?}")]
    OriginMismatch { old: String, new: String },
}
