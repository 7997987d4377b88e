//! A read-ahead guess: the environment it is made for, and how many more levels of dependencies
//! may be read ahead from a file fetched for it. Whatever a client asks for, the work it starts
//! is bounded. Apart from [`super::ahead`] so that [`super::fetch`], which carries a guess, and
//! the read-ahead, which fetches, do not depend on each other.

use std::sync::Arc;

use palisade_dist::Target;

/// Levels of dependencies read ahead below a file a client asked for.
const CLIENT_DEPTH: u8 = 3;
/// Levels of dependencies read ahead below the file guessed from a page.
pub(super) const PAGE_DEPTH: u8 = 2;

#[derive(Clone, Debug)]
pub struct Guess {
    target: Arc<Target>,
    depth: u8,
}

impl Guess {
    /// For a client's own request for a file or its metadata.
    pub(super) fn client(target: Target) -> Self {
        Self { target: Arc::new(target), depth: CLIENT_DEPTH }
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    pub(super) fn with_depth(&self, depth: u8) -> Self {
        Self { target: self.target.clone(), depth }
    }

    /// For the files of a file's dependencies: one level less, none past the last.
    pub(super) fn deeper(&self) -> Option<Self> {
        self.depth.checked_sub(1).map(|d| self.with_depth(d))
    }
}
