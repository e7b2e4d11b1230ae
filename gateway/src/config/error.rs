//! Why the configuration could not be used: [`ConfigError`], whose every variant names the
//! key or file to fix, and the lookup that quotes the offending value in a type error.

use std::path::PathBuf;

/// Why the configuration could not be used. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file `{path}` is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a value that is not allowed.
    #[error("config key `{key}`{}: {message}", value.as_ref().map(|v| format!(" = {v}")).unwrap_or_default())]
    Key {
        /// The dotted key path.
        key: String,
        /// The offending value, when there is one.
        value: Option<String>,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl ConfigError {
    /// A bad value at `key`, with what is wrong and what is allowed.
    pub(super) fn key(
        key: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Key {
            key: key.into(),
            value,
            message: message.into(),
        }
    }
}

/// The value at a serde path, if it is a scalar worth quoting in an error.
pub(super) fn scalar_at(root: &toml::Value, path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut current = root;
    for segment in path.iter() {
        current = match segment {
            Segment::Map { key } => current.get(key.as_str())?,
            Segment::Seq { index } => current.get(*index)?,
            _ => return None,
        };
    }
    match current {
        toml::Value::Table(_) | toml::Value::Array(_) => None,
        toml::Value::String(s) => Some(format!("{s:?}")),
        other => Some(other.to_string()),
    }
}
