//! Why a registry lookup or change failed: [`RegistryError`], whose messages name the prompt,
//! label or version involved and what to do instead.

use prompts::ValidationError;

use crate::store::StoreError;

/// Why a registry lookup or change failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such prompt.
    #[error("unknown prompt `{name}`; prompts: {}", known.join(", "))]
    UnknownPrompt {
        /// What was asked for.
        name: String,
        /// What exists.
        known: Vec<String>,
    },
    /// The prompt has no such label.
    #[error("prompt `{name}` has no label `{label}`; its labels: {}; promote a version to it first", labels.join(", "))]
    UnknownLabel {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// The labels it has.
        labels: Vec<String>,
    },
    /// The prompt has no such version.
    #[error("prompt `{name}` has no version {version}; its newest is v{latest}")]
    UnknownVersion {
        /// The prompt.
        name: String,
        /// The version asked for.
        version: i64,
        /// The newest version.
        latest: i64,
    },
    /// A version failed validation; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The edit started from a version that is no longer the newest.
    #[error(
        "prompt `{name}`: your edit starts from v{base}, but v{current} was saved since; nothing was stored. Re-apply your change to v{current}. What changed from v{current} to your edit:\n{diff}"
    )]
    Stale {
        /// The prompt.
        name: String,
        /// The version the edit started from.
        base: i64,
        /// The newest version now.
        current: i64,
        /// Unified diff from the newest version to the edit.
        diff: String,
    },
    /// `create` for a prompt that exists.
    #[error("prompt `{name}` already exists (newest v{latest}); use edit to add a version")]
    Exists {
        /// The prompt.
        name: String,
        /// Its newest version.
        latest: i64,
    },
    /// A stored version does not compile any more (an included prompt changed).
    #[error("prompt `{name}` v{version} cannot be used: {message}")]
    Broken {
        /// The prompt.
        name: String,
        /// The version.
        version: i64,
        /// Why.
        message: String,
    },
    /// A label name that cannot be used.
    #[error(
        "`{0}` cannot be used as a label: use letters, digits, `-` and `_`; `latest` always follows the newest version and cannot be moved"
    )]
    BadLabel(String),
    /// A split that cannot be used.
    #[error("invalid split: {0}")]
    BadSplit(String),
    /// A scope key that cannot be parsed.
    #[error(
        "invalid scope `{0}`: use `global`, `platform/workspace`, `platform/workspace/channel` or `platform/workspace/channel/thread` (`-` for no workspace)"
    )]
    BadScope(String),
    /// A prompt file or folder problem (import, export).
    #[error("{0}")]
    Files(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
