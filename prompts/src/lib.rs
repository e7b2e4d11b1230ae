//! The prompt model of Switchboard: a prompt is a named, versioned list of
//! chat messages written as minijinja templates, plus the model alias and
//! parameters it runs with.
//!
//! This crate knows nothing about providers, storage or chat platforms. It
//! parses prompts, validates and compiles them, renders them in a sandbox,
//! diffs versions, assigns users to A/B splits, and ships the default
//! prompts in `library/`. The registry that stores versions and labels
//! lives in the gateway.

mod context;
mod diff;
mod library;
mod prompt;
mod render;
mod split;
mod validate;

pub use context::{CONTEXT_VARIABLES, is_context_variable};
pub use diff::diff;
pub use library::Library;
pub use prompt::{
    AssistantPane, MessageTemplate, Prompt, PromptCache, PromptParams, Retrieval, SearchMode,
    SuggestedPrompt, TemplateRole, is_source_name,
};
pub use render::{
    Compiled, FUEL, IncludeSource, MAX_MESSAGE_BYTES, RenderContext, RenderError, RenderedMessage,
    Turn, include_names, include_text,
};
pub use split::{Arm, assign};
pub use validate::{ValidationError, sample_context, validate};

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
