//! Runs a GGUF chat model on the CPU and streams its answers.
//!
//! The gateway needs a model that works with no network and no GPU. This module wraps
//! llama.cpp (through `llama-cpp-2`) behind a small, safe surface: load a file once, then ask
//! for chat completions that stream tokens over a channel. Generations run on dedicated OS
//! threads — one per slot, each owning its own llama.cpp context — so the async runtime is
//! never blocked, the number of concurrent generations is bounded, and an overloaded engine
//! answers `Busy` at once instead of queueing without limit.
//!
//! This file holds the [`Engine`] itself: loading a model and handing requests to its slots.
//! The rest lives beside it by concern: `options` and `request` (what callers set), `error`,
//! `model_file` (opening and checking the file), `prompt` (chat templating and trimming),
//! `admission` (the `slots + queue` bound), `slot` (the threads), `decode` (one generation's
//! loop), `sampling`, and `generation` (the caller's end of the stream).

mod admission;
mod decode;
mod error;
mod generation;
mod model_file;
mod options;
mod prompt;
mod request;
mod sampling;
mod slot;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use tokio::sync::mpsc;

pub use error::{GenerateError, LoadError};
pub use generation::{Completion, FinishReason, GenEvent, Generation};
pub use options::{EngineOptions, Overflow};
pub use request::{
    ChatTurn, DEFAULT_REPEAT_LAST_N, DEFAULT_REPEAT_PENALTY, GenerateRequest, check_repeat_penalty,
};

use options::validate_options;
use prompt::token_count;
use request::validate_request;
use sampling::Sampling;
use slot::Job;

/// A loaded model with its pool of generation slots. Cheap to clone; the model is freed when
/// the last clone is dropped and running generations have ended.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.shared.path)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// What every clone of an [`Engine`] holds.
struct Shared {
    path: PathBuf,
    options: EngineOptions,
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    jobs: Mutex<Option<std_mpsc::Sender<Job>>>,
    in_flight: Arc<AtomicUsize>,
}

impl Engine {
    /// Loads a GGUF model for CPU inference and starts its slot threads.
    ///
    /// The file is checked (GGUF magic, header consistency, size) before llama.cpp reads it;
    /// on any error nothing stays loaded.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] naming the file and how to fix it.
    pub fn load(path: &Path, opts: EngineOptions) -> Result<Engine, LoadError> {
        validate_options(&opts)?;
        let model = model_file::open(path)?;
        let template = prompt::chat_template(&model, path)?;
        let model = Arc::new(model);
        let job_tx = slot::start(&model, &opts, path)?;
        tracing::info!(
            path = %path.display(),
            threads = opts.threads,
            context_tokens = opts.context_tokens,
            slots = opts.slots,
            "embedded model loaded"
        );

        Ok(Engine {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                options: opts,
                model,
                template,
                jobs: Mutex::new(Some(job_tx)),
                in_flight: Arc::new(AtomicUsize::new(0)),
            }),
        })
    }

    /// The model file this engine runs.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &EngineOptions {
        &self.shared.options
    }

    /// Renders and tokenizes a conversation the way [`generate`](Self::generate) would, and
    /// returns its token count (without trimming).
    ///
    /// # Errors
    ///
    /// [`GenerateError::InvalidRequest`] or [`GenerateError::Template`].
    pub fn count_prompt_tokens(&self, messages: &[ChatTurn]) -> Result<u32, GenerateError> {
        let turns: Vec<&ChatTurn> = messages.iter().collect();
        Ok(token_count(self.render(&turns)?.len()))
    }

    /// Starts a chat completion and returns its event stream at once.
    ///
    /// The conversation is rendered with the model's own chat template and tokenized on the
    /// calling thread (well under a millisecond for typical chats); generation then runs on a
    /// slot thread.
    ///
    /// # Errors
    ///
    /// [`GenerateError::Busy`] when `slots + queue` requests are already admitted,
    /// [`GenerateError::ContextOverflow`] when the conversation cannot fit, and
    /// [`GenerateError::InvalidRequest`] or [`GenerateError::Template`] for bad input.
    pub fn generate(&self, req: GenerateRequest) -> Result<Generation, GenerateError> {
        validate_request(&req)?;
        let permit = self.admit()?;
        let (tokens, dropped_turns) = self.prepare(&req)?;
        let prompt_tokens = token_count(tokens.len());
        let (tx, rx) = mpsc::unbounded_channel();
        let job = Job {
            tokens,
            max_tokens: req.max_tokens,
            sampling: Sampling {
                temperature: req.temperature,
                top_p: req.top_p,
                top_k: req.top_k,
                seed: req.seed,
                repeat_penalty: req.repeat_penalty,
                repeat_last_n: req.repeat_last_n,
            },
            stop: req.stop,
            tx,
            permit,
        };
        let jobs = self
            .shared
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.as_ref()
            .ok_or(GenerateError::Shutdown)?
            .send(job)
            .map_err(|_| GenerateError::Shutdown)?;
        Ok(Generation {
            rx,
            prompt_tokens,
            dropped_turns,
        })
    }

    /// Stops accepting requests; slots finish their current generation and exit. Also happens
    /// when the last clone is dropped.
    pub fn shutdown(&self) {
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Requests admitted and not yet finished: generating, or waiting for a
    /// free slot.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }
}
