//! Why a model could not be fetched or verified ([`PullError`]), with each failed source kept
//! ([`SourceFailure`]) so the final error lists them all. Messages name the file and the way
//! out.

use std::io;
use std::path::PathBuf;

/// The command that fetches the default model, named in error messages.
const PULL_HINT: &str = "switchboard models pull";

/// One source's failure, kept for the final error.
#[derive(Debug)]
pub struct SourceFailure {
    /// The source, as text.
    pub source: String,
    /// What went wrong.
    pub error: PullError,
}

/// A model could not be fetched or verified.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The spec itself is unusable.
    #[error("invalid model spec `{name}`: {detail}")]
    InvalidSpec {
        /// The spec's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The file is not there.
    #[error("model file {} does not exist; download it with `{PULL_HINT}`", .path.display())]
    Missing {
        /// The expected path.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}; check free space and permissions", .path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file has the wrong size.
    #[error("{} has {actual} bytes, expected {expected}; it is incomplete or a different file — delete it and run `{PULL_HINT}`", .path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Expected size.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// The file has the wrong checksum.
    #[error("checksum mismatch for {}: expected sha256 {expected}, got {actual}; the download is damaged or the source serves a different file — run `{PULL_HINT}` again or use another source", .path.display())]
    ChecksumMismatch {
        /// The file that was checked.
        path: PathBuf,
        /// Expected SHA-256.
        expected: String,
        /// SHA-256 found.
        actual: String,
    },
    /// A helper program is not installed.
    #[error(
        "`{tool}` is needed to fetch from {source_text} but is not installed; install it, or copy the model file into the models directory"
    )]
    MissingTool {
        /// The program, e.g. `curl`.
        tool: &'static str,
        /// The source that needed it.
        source_text: String,
    },
    /// A helper program failed.
    #[error("`{tool}` failed for {source_text}: {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// The source.
        source_text: String,
        /// Its error output, shortened.
        detail: String,
    },
    /// Every source failed.
    #[error("could not fetch model `{model}` into {} from any source; check the network or copy the file there by hand, then run `{PULL_HINT}` again:{}", .path.display(), list_failures(.failures))]
    AllSourcesFailed {
        /// The spec's name.
        model: String,
        /// The final path that was to be written.
        path: PathBuf,
        /// Each source's failure, in order.
        failures: Vec<SourceFailure>,
    },
}

fn list_failures(failures: &[SourceFailure]) -> String {
    if failures.is_empty() {
        return " the spec lists no sources".into();
    }
    failures
        .iter()
        .map(|f| format!("\n  - {}: {}", f.source, f.error))
        .collect()
}

/// The longest [`PullError::brief`] text, in characters.
const BRIEF_CHARS: usize = 100;

impl PullError {
    /// One short line saying why a source failed, without repeating the
    /// source (the caller shows it): for progress displays and logs, where a
    /// source that failed before a later one succeeded is worth one line, not
    /// a paragraph. The full text stays in [`PullError::AllSourcesFailed`].
    pub fn brief(&self) -> String {
        let text = match self {
            PullError::Tool { tool, detail, .. } => {
                let last = detail.rsplit(" | ").next().unwrap_or(detail);
                if last.starts_with(tool) {
                    last.to_string()
                } else {
                    format!("{tool}: {last}")
                }
            }
            PullError::MissingTool { tool, .. } => format!("`{tool}` is not installed"),
            other => other.to_string(),
        };
        let line = text.lines().next().unwrap_or_default().trim();
        match line.char_indices().nth(BRIEF_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        }
    }
}
