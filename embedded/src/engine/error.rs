//! The engine's two failure types: a model that cannot be made ready ([`LoadError`]) and a
//! generation that cannot start or fails while running ([`GenerateError`]). Each message
//! names the file or setting involved and the way out.

use std::path::PathBuf;

/// The command that downloads and verifies the default model, named in error messages.
const PULL_HINT: &str = "switchboard models pull";

/// A model file could not be made ready to generate.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist.
    #[error("model file {} does not exist; download it with `{PULL_HINT}`", .path.display())]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read model file {}: {source}; check its permissions, or download it again with `{PULL_HINT}`", .path.display())]
    Unreadable {
        /// The model file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF model.
    #[error("{} is not a GGUF model file ({detail}); download the model with `{PULL_HINT}`", .path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The file is shorter than its header says: an interrupted download or copy.
    #[error("model file {} is truncated: it has {size} bytes but {detail}; download it again with `{PULL_HINT}`", .path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size on disk.
        size: u64,
        /// What is missing.
        detail: String,
    },
    /// The header is inconsistent.
    #[error("model file {} is corrupt: {detail}; download it again with `{PULL_HINT}`", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// llama.cpp refused the file (damaged tensors, unsupported architecture, …).
    #[error("llama.cpp could not load {}: {detail}; the file may be damaged or of an unsupported architecture, download it again with `{PULL_HINT}`", .path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// llama.cpp's last error message.
        detail: String,
    },
    /// The model has no chat template that llama.cpp can apply.
    #[error("model {} has no usable chat template ({detail}); use an instruct model with a chat template, such as the default one from `{PULL_HINT}`", .path.display())]
    ChatTemplate {
        /// The file.
        path: PathBuf,
        /// Why the template cannot be used.
        detail: String,
    },
    /// A context for a slot could not be created (usually memory).
    #[error("could not create an inference context for {}: {detail}; lower `context_tokens` or `slots`", .path.display())]
    Context {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The options cannot work.
    #[error("invalid embedded model options: {0}")]
    InvalidOptions(String),
    /// llama.cpp itself failed to initialise.
    #[error("the llama.cpp backend failed to start: {0}")]
    Backend(String),
    /// A slot thread could not be started.
    #[error("could not start a model thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A generation could not be started, or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Every slot is generating and the waiting queue is full.
    #[error(
        "the embedded model is busy ({slots} generations running, {queue} waiting); retry shortly or raise `slots`/`queue`"
    )]
    Busy {
        /// Concurrent generations allowed.
        slots: usize,
        /// Waiting requests allowed.
        queue: usize,
    },
    /// The prompt plus `max_tokens` does not fit in the context window.
    #[error(
        "the conversation needs {prompt_tokens} prompt tokens plus up to {max_tokens} new ones, more than the {context}-token context; shorten it, lower `max_tokens`, raise `context_tokens`, or use the trim-oldest overflow policy"
    )]
    ContextOverflow {
        /// Tokens of the (possibly trimmed) prompt.
        prompt_tokens: u32,
        /// The request's `max_tokens`.
        max_tokens: u32,
        /// The context window.
        context: u32,
    },
    /// The request is malformed.
    #[error("invalid generation request: {0}")]
    InvalidRequest(String),
    /// The model's chat template could not render the conversation.
    #[error("the model's chat template could not render the conversation: {0}")]
    Template(String),
    /// llama.cpp failed while evaluating tokens.
    #[error("the embedded model failed while generating: {0}")]
    Decode(String),
    /// The engine has shut down.
    #[error("the embedded model has shut down")]
    Shutdown,
}
