//! The prompt model of Switchboard: a prompt is a named, versioned list of
//! chat messages written as minijinja templates, plus the model alias and
//! parameters it runs with.
//!
//! This crate knows nothing about providers, storage or chat platforms. It
//! parses prompts, renders them in a sandbox, and ships the default prompts
//! in `library/`.

mod library;
mod prompt;
mod render;

pub use library::Library;
pub use prompt::{MessageTemplate, Prompt, PromptParams, TemplateRole};
pub use render::{RenderContext, RenderError, RenderedMessage, Turn};

/// Errors from reading a prompt definition.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A prompt file is not valid TOML or does not have the prompt's shape.
    #[error("prompt file `{file}`: {message}")]
    Parse {
        /// The file (or built-in name) that failed.
        file: String,
        /// What was wrong, from the TOML parser.
        message: String,
    },
    /// A prompt is well-formed TOML but breaks a rule of the prompt model.
    #[error("prompt `{name}`: {message}")]
    Invalid {
        /// The prompt's name.
        name: String,
        /// What to fix.
        message: String,
    },
}
