//! The receiving end of a generation: the events a slot streams back ([`GenEvent`]), the
//! finished answer they add up to ([`Completion`]), and the [`Generation`] handle whose drop
//! cancels the work.

use tokio::sync::mpsc;

use super::GenerateError;

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced its end-of-generation token.
    Stop,
    /// `max_tokens` tokens were generated.
    Length,
    /// One of the request's stop sequences was produced.
    StopSequence,
}

/// An event of a streaming generation.
#[derive(Debug)]
pub enum GenEvent {
    /// More text of the answer (whole UTF-8 characters).
    Token(String),
    /// The generation finished; no event follows.
    Done {
        /// Tokens of the rendered prompt.
        prompt_tokens: u32,
        /// Tokens generated (the end-of-generation token is not counted).
        completion_tokens: u32,
        /// Why it ended.
        finish_reason: FinishReason,
    },
    /// The generation failed; no event follows.
    Error(GenerateError),
}

/// A finished generation, gathered by [`Generation::collect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The whole answer.
    pub text: String,
    /// Tokens of the rendered prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// The receiving end of a streaming generation.
///
/// Read events with [`next`](Self::next) (async) or [`blocking_next`](Self::blocking_next).
/// Dropping it cancels the generation: the slot notices before its next token (or next prompt
/// chunk) and moves on to the next request.
#[derive(Debug)]
pub struct Generation {
    pub(super) rx: mpsc::UnboundedReceiver<GenEvent>,
    pub(super) prompt_tokens: u32,
    pub(super) dropped_turns: usize,
}

impl Generation {
    /// Waits for the next event; `None` after `Done` or `Error`.
    pub async fn next(&mut self) -> Option<GenEvent> {
        self.rx.recv().await
    }

    /// Blocks the current thread for the next event; `None` after `Done` or `Error`.
    ///
    /// # Panics
    ///
    /// When called from inside an async runtime (use [`next`](Self::next) there).
    pub fn blocking_next(&mut self) -> Option<GenEvent> {
        self.rx.blocking_recv()
    }

    /// Tokens of the rendered prompt (after any trimming).
    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// How many of the oldest turns were dropped to fit the context window.
    pub fn dropped_turns(&self) -> usize {
        self.dropped_turns
    }

    /// Waits for the whole answer.
    ///
    /// # Errors
    ///
    /// The generation's error, or [`GenerateError::Shutdown`] if it ended without a result.
    pub async fn collect(mut self) -> Result<Completion, GenerateError> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            if let Some(done) = gather(&mut text, event)? {
                return Ok(done);
            }
        }
        Err(GenerateError::Shutdown)
    }

    /// Blocks the current thread for the whole answer.
    ///
    /// # Errors
    ///
    /// As [`collect`](Self::collect).
    ///
    /// # Panics
    ///
    /// When called from inside an async runtime.
    pub fn blocking_collect(mut self) -> Result<Completion, GenerateError> {
        let mut text = String::new();
        while let Some(event) = self.blocking_next() {
            if let Some(done) = gather(&mut text, event)? {
                return Ok(done);
            }
        }
        Err(GenerateError::Shutdown)
    }
}

fn gather(text: &mut String, event: GenEvent) -> Result<Option<Completion>, GenerateError> {
    match event {
        GenEvent::Token(t) => {
            text.push_str(&t);
            Ok(None)
        }
        GenEvent::Done {
            prompt_tokens,
            completion_tokens,
            finish_reason,
        } => Ok(Some(Completion {
            text: std::mem::take(text),
            prompt_tokens,
            completion_tokens,
            finish_reason,
        })),
        GenEvent::Error(e) => Err(e),
    }
}
