//! The seam between the publishing pipeline and a package ecosystem.
//!
//! [`Core::publish`](crate::Core::publish) runs the same steps for every ecosystem: the caller's
//! permission and the instance's policy, reuse of a reserved filename, the scanner's verdict,
//! storing, publishing, the event log and mail. What differs from one ecosystem to the next is
//! behind [`Ecosystem`]: how a file is named and which project it belongs to, what the client
//! may claim about it, how its metadata is read from inside the archive, and which two files
//! installers would take for the same one. Python's implementation is [`crate::pypi::Python`];
//! an npm `PUT` or a `cargo publish` would bring another, and its own protocol layer that turns
//! a request into an [`Upload`](crate::publish::Upload).

use std::future::Future;

use palisade_dist::Digests;
use palisade_store::{Reservation, TempBlob};

use crate::Core;
use crate::error::{Error, Result};

/// A file as it arrived: on disk in a temporary blob, with its digests and size. `F` is the
/// ecosystem's identity of the file, parsed from its name.
pub struct Received<F> {
    /// The name the client gave it, already checked to be a bare filename.
    pub filename: String,
    pub file: F,
    pub blob: TempBlob,
    pub digests: Digests,
    pub size: u64,
}

/// One ecosystem's rules for the files it publishes.
pub trait Ecosystem: Send + Sync + 'static {
    /// A file's identity, parsed from its name by the protocol layer before the body is read
    /// (Python: the distribution filename's project, version and tags).
    type File: Send + Sync + 'static;
    /// What the client said about the file beside its bytes; each claim present must agree
    /// with the file.
    type Claims: Send + Sync + 'static;

    /// The normalized project name: the key of permissions, policy and the index.
    fn project(file: &Self::File) -> &str;

    /// The version the file's name gives (what feeds' records name).
    fn version(file: &Self::File) -> String;

    /// How two versions of a project order (`None` when either does not parse): the scanner
    /// compares an upload with the releases before it.
    fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering>;

    /// What a published filename reserves beyond its own spelling: two files with the same key
    /// are the same file to an installer, so the second is refused even under another spelling.
    fn reservation_key(file: &Self::File) -> String;

    /// Checks the claims against the file's name and digests, before the archive is opened.
    fn check_claims(claims: &Self::Claims, file: &Received<Self::File>) -> Result<()>;

    /// Reads the metadata from inside the archive and checks it against the file's name, within
    /// the instance's limits.
    fn describe(core: &Core, file: &Received<Self::File>) -> impl Future<Output = Result<Description>> + Send;

    /// The refusal of a file whose name, or key, an earlier upload reserved: worded so the
    /// ecosystem's clients recognise it (twine's `--skip-existing` looks for its own words).
    fn reused(filename: &str, digests: &Digests, reservation: &Reservation) -> Error;
}

/// What the ecosystem read from inside a file, in the forms the store keeps and the indexes serve.
#[derive(Clone, Debug)]
pub struct Description {
    /// The project name as the metadata spells it (the display name of a new project).
    pub name: String,
    pub version: String,
    /// The version in the form that orders and compares releases.
    pub canonical_version: String,
    /// The file's kind within its release (Python: `sdist` or `bdist_wheel`).
    pub kind: String,
    /// What the file is built for (Python: `source`, or the wheel's Python tag).
    pub target: String,
    /// The runtime constraint an installer checks before choosing the file (Python:
    /// Requires-Python).
    pub requires: Option<String>,
    /// The parsed metadata fields, as JSON (the JSON API serves them).
    pub fields_json: String,
    /// The metadata file's bytes, served beside the file (Python: PEP 658's `.metadata`).
    pub metadata: Vec<u8>,
}
