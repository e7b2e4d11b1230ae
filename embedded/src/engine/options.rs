//! How an [`Engine`](super::Engine) runs its model: threads, context size, the slot pool and
//! what happens to conversations that do not fit, and the limits those options must respect.

use std::thread;

use super::LoadError;

/// What to do when a conversation does not fit in the context window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest turns (never a system turn, never the last user turn) until the prompt
    /// plus `max_tokens` fits.
    #[default]
    TrimOldest,
    /// Refuse the request with [`GenerateError::ContextOverflow`](super::GenerateError::ContextOverflow).
    Refuse,
}

/// How an [`Engine`](super::Engine) runs its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// CPU threads per generation. Default: the number of cores minus one, at least 1 (a
    /// second busy process on a small host makes two threads far slower than one).
    pub threads: usize,
    /// Context window in tokens: prompt plus generated tokens of one generation.
    pub context_tokens: u32,
    /// Generations that may run at the same time (each has its own context and thread).
    pub slots: usize,
    /// Requests that may wait for a free slot; past `slots + queue`, `generate` answers
    /// [`GenerateError::Busy`](super::GenerateError::Busy).
    pub queue: usize,
    /// What to do with conversations longer than the context window.
    pub overflow: Overflow,
}

impl Default for EngineOptions {
    fn default() -> Self {
        let cores = thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            threads: cores.saturating_sub(1).max(1),
            context_tokens: 2048,
            slots: 1,
            queue: 8,
            overflow: Overflow::TrimOldest,
        }
    }
}

/// Refuses options the engine cannot run with.
pub(super) fn validate_options(opts: &EngineOptions) -> Result<(), LoadError> {
    if opts.threads == 0 || opts.threads > 512 {
        return Err(LoadError::InvalidOptions(format!(
            "threads must be between 1 and 512, not {}",
            opts.threads
        )));
    }
    if opts.slots == 0 || opts.slots > 64 {
        return Err(LoadError::InvalidOptions(format!(
            "slots must be between 1 and 64, not {}",
            opts.slots
        )));
    }
    if opts.context_tokens < 64 {
        return Err(LoadError::InvalidOptions(format!(
            "context_tokens must be at least 64, not {}",
            opts.context_tokens
        )));
    }
    Ok(())
}
