//! What [`pull`](super::pull()) reports while it works, so a command line or a log can show
//! which source is being tried and how far the transfer is.

use std::path::PathBuf;

/// What [`pull`](super::pull()) is doing, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The file was already present and verified; nothing is fetched.
    AlreadyPresent {
        /// The verified file.
        path: PathBuf,
    },
    /// Trying a source.
    Trying {
        /// The source, as text.
        source: String,
    },
    /// Bytes received so far from the current source.
    Transferred {
        /// Bytes so far.
        bytes: u64,
        /// Expected total.
        total: u64,
    },
    /// A source failed; the next one is tried.
    SourceFailed {
        /// The source, as text.
        source: String,
        /// Why it failed, as one short line ([`PullError::brief`](super::PullError::brief)).
        reason: String,
    },
    /// The file is in place and verified.
    Done {
        /// The final path.
        path: PathBuf,
    },
}
