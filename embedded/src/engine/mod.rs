//! Runs a GGUF chat model on the CPU and streams its answers.
//!
//! The gateway needs a model that works with no network and no GPU. This module wraps
//! llama.cpp (through `llama-cpp-2`) behind a small, safe surface: load a file once, then ask
//! for chat completions that stream tokens over a channel. Generations run on dedicated OS
//! threads — one per slot, each owning its own llama.cpp context — so the async runtime is
//! never blocked, the number of concurrent generations is bounded, and an overloaded engine
//! answers `Busy` at once instead of queueing without limit.

use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::backend;
use crate::gguf::{self, GgufError};
use crate::stream::{Filtered, StopFilter, Utf8Assembler};

/// Prompt tokens handed to llama.cpp per decode call. The prompt pass is split so that a
/// cancelled generation stops within one chunk instead of after the whole prompt.
const PROMPT_CHUNK: usize = 256;

/// The command that downloads and verifies the default model, named in error messages.
const PULL_HINT: &str = "switchboard models pull";

/// What to do when a conversation does not fit in the context window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest turns (never a system turn, never the last user turn) until the prompt
    /// plus `max_tokens` fits.
    #[default]
    TrimOldest,
    /// Refuse the request with [`GenerateError::ContextOverflow`].
    Refuse,
}

/// How an [`Engine`] runs its model.
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
    /// [`GenerateError::Busy`].
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

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    /// `system`, `user` or `assistant` (passed to the model's chat template as is).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatTurn {
    /// A turn with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` turn.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatTurn>,
    /// Most tokens to generate (at least 1).
    pub max_tokens: u32,
    /// Sampling temperature; 0 means greedy (deterministic).
    pub temperature: f32,
    /// Nucleus sampling threshold; 1 disables it. Ignored when greedy.
    pub top_p: f32,
    /// Keep only the `top_k` likeliest tokens; 0 or less disables it. Ignored when greedy.
    pub top_k: i32,
    /// Seed of the random sampler. Ignored when greedy.
    pub seed: u32,
    /// Strings that end the generation; they are never emitted, not even in part.
    pub stop: Vec<String>,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

impl GenerateRequest {
    /// A greedy request for these messages with the default limits.
    pub fn new(messages: Vec<ChatTurn>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

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

/// The receiving end of a streaming generation.
///
/// Read events with [`next`](Self::next) (async) or [`blocking_next`](Self::blocking_next).
/// Dropping it cancels the generation: the slot notices before its next token (or next prompt
/// chunk) and moves on to the next request.
#[derive(Debug)]
pub struct Generation {
    rx: mpsc::UnboundedReceiver<GenEvent>,
    prompt_tokens: u32,
    dropped_turns: usize,
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

struct Shared {
    path: PathBuf,
    options: EngineOptions,
    model: Arc<LlamaModel>,
    template: LlamaChatTemplate,
    jobs: Mutex<Option<std_mpsc::Sender<Job>>>,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a request against `slots + queue` until it is dropped.
struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Sampling {
    temperature: f32,
    top_p: f32,
    top_k: i32,
    seed: u32,
}

struct Job {
    tokens: Vec<LlamaToken>,
    max_tokens: u32,
    sampling: Sampling,
    stop: Vec<String>,
    tx: mpsc::UnboundedSender<GenEvent>,
    permit: Permit,
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
        let info = match gguf::inspect(path) {
            Ok(info) => info,
            Err(GgufError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LoadError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(GgufError::Io(source)) => {
                return Err(LoadError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Err(GgufError::NotGguf(detail)) => {
                return Err(LoadError::NotGguf {
                    path: path.to_path_buf(),
                    detail,
                });
            }
            Err(GgufError::Truncated { size, detail }) => {
                return Err(LoadError::Truncated {
                    path: path.to_path_buf(),
                    size,
                    detail,
                });
            }
            Err(GgufError::Corrupt(detail)) => {
                return Err(LoadError::Corrupt {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        };
        tracing::debug!(
            path = %path.display(),
            version = info.version,
            tensors = info.tensor_count,
            architecture = info.architecture.as_deref().unwrap_or("unknown"),
            bytes = info.file_size,
            needed = info.required_size,
            "GGUF header checked"
        );

        let backend = backend::get().map_err(LoadError::Backend)?;
        let _ = backend::take_last_error();
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| LoadError::Rejected {
                path: path.to_path_buf(),
                detail: backend::take_last_error().unwrap_or_else(|| e.to_string()),
            })?;

        let template = model
            .chat_template(None)
            .map_err(|e| LoadError::ChatTemplate {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let probe = LlamaChatMessage::new("user".into(), "hello".into()).map_err(|e| {
            LoadError::ChatTemplate {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        model
            .apply_chat_template(&template, &[probe], true)
            .map_err(|e| LoadError::ChatTemplate {
                path: path.to_path_buf(),
                detail: format!("llama.cpp does not recognise the template ({e})"),
            })?;

        let model = Arc::new(model);
        let (job_tx, job_rx) = std_mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut ready = Vec::with_capacity(opts.slots);
        for slot in 0..opts.slots {
            let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
            let model = Arc::clone(&model);
            let jobs = Arc::clone(&job_rx);
            let params = context_params(&opts);
            thread::Builder::new()
                .name(format!("llama-slot-{slot}"))
                .spawn(move || slot_thread(model, params, jobs, ready_tx))
                .map_err(LoadError::Thread)?;
            ready.push(ready_rx);
        }
        for ready_rx in ready {
            let outcome = ready_rx
                .recv()
                .unwrap_or_else(|_| Err("the slot thread exited early".into()));
            if let Err(detail) = outcome {
                // Dropping the sender ends the slots that did start.
                drop(job_tx);
                return Err(LoadError::Context {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        }
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

    fn admit(&self) -> Result<Permit, GenerateError> {
        let EngineOptions { slots, queue, .. } = self.shared.options;
        let limit = slots.saturating_add(queue);
        self.shared
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Permit(Arc::clone(&self.shared.in_flight)))
            .map_err(|_| GenerateError::Busy { slots, queue })
    }

    /// Renders and tokenizes the conversation, trimming it to fit when allowed.
    fn prepare(&self, req: &GenerateRequest) -> Result<(Vec<LlamaToken>, usize), GenerateError> {
        let context = self.shared.options.context_tokens;
        let budget = (context as usize).saturating_sub(req.max_tokens as usize);
        let all: Vec<&ChatTurn> = req.messages.iter().collect();
        let tokens = self.render(&all)?;
        if tokens.len() <= budget {
            return Ok((tokens, 0));
        }
        let overflow = |prompt_tokens: usize| GenerateError::ContextOverflow {
            prompt_tokens: token_count(prompt_tokens),
            max_tokens: req.max_tokens,
            context,
        };
        if self.shared.options.overflow == Overflow::Refuse {
            return Err(overflow(tokens.len()));
        }

        // Turns that may go, oldest first: all but system turns and the last user turn.
        let last_user = all.iter().rposition(|t| t.role == "user");
        let removable: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].role != "system" && Some(i) != last_user)
            .collect();
        let without_oldest = |k: usize| -> Vec<&ChatTurn> {
            let gone = &removable[..k];
            (0..all.len())
                .filter(|i| !gone.contains(i))
                .map(|i| all[i])
                .collect()
        };
        // Dropping more turns never lengthens the prompt, so search for the fewest drops
        // that fit (a few renders even for long histories).
        let shortest = self.render(&without_oldest(removable.len()))?;
        if shortest.len() > budget {
            return Err(overflow(shortest.len()));
        }
        let (mut too_few, mut enough) = (0, removable.len());
        let mut best = shortest;
        while enough - too_few > 1 {
            let mid = too_few + (enough - too_few) / 2;
            let tokens = self.render(&without_oldest(mid))?;
            if tokens.len() <= budget {
                enough = mid;
                best = tokens;
            } else {
                too_few = mid;
            }
        }
        Ok((best, enough))
    }

    fn render(&self, turns: &[&ChatTurn]) -> Result<Vec<LlamaToken>, GenerateError> {
        let messages = turns
            .iter()
            .map(|t| {
                LlamaChatMessage::new(t.role.clone(), t.content.clone()).map_err(|_| {
                    GenerateError::InvalidRequest(format!(
                        "a `{}` message contains a NUL character",
                        t.role
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let model = &self.shared.model;
        let prompt = catch_unwind(AssertUnwindSafe(|| {
            model.apply_chat_template(&self.shared.template, &messages, true)
        }))
        .map_err(|_| GenerateError::Template("the template engine panicked".into()))?
        .map_err(|e| GenerateError::Template(e.to_string()))?;
        Ok(model.vocab().tokenize(prompt.as_bytes(), true, true))
    }
}

fn token_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn validate_options(opts: &EngineOptions) -> Result<(), LoadError> {
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

fn validate_request(req: &GenerateRequest) -> Result<(), GenerateError> {
    if req.messages.is_empty() {
        return Err(GenerateError::InvalidRequest(
            "the conversation has no messages".into(),
        ));
    }
    if req.max_tokens == 0 {
        return Err(GenerateError::InvalidRequest(
            "max_tokens must be at least 1".into(),
        ));
    }
    if !req.temperature.is_finite() || req.temperature < 0.0 {
        return Err(GenerateError::InvalidRequest(format!(
            "temperature must be 0 or more, not {}",
            req.temperature
        )));
    }
    if !req.top_p.is_finite() || req.top_p <= 0.0 || req.top_p > 1.0 {
        return Err(GenerateError::InvalidRequest(format!(
            "top_p must be in (0, 1], not {}",
            req.top_p
        )));
    }
    Ok(())
}

fn context_params(opts: &EngineOptions) -> LlamaContextParams {
    let threads = i32::try_from(opts.threads).unwrap_or(1);
    let chunk = u32::try_from(PROMPT_CHUNK).unwrap_or(512);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(opts.context_tokens))
        .with_n_batch(chunk)
        .with_n_ubatch(chunk)
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_no_perf(true)
        // Flash attention splits work by attention head; with a handful of heads on two cores
        // that balances worse than plain matrix products, and the prompt pass measured slower.
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
}

/// Body of one slot thread: owns a context for its whole life and runs jobs one at a time.
fn slot_thread(
    model: Arc<LlamaModel>,
    params: LlamaContextParams,
    jobs: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    ready: std_mpsc::SyncSender<Result<(), String>>,
) {
    let backend = match backend::get() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let detail = backend::take_last_error().unwrap_or_else(|| e.to_string());
            let _ = ready.send(Err(detail));
            return;
        }
    };
    let mut batch = LlamaBatch::new(PROMPT_CHUNK, 1);
    if ready.send(Ok(())).is_err() {
        return;
    }
    loop {
        let job = {
            let rx = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let Job {
            tokens,
            max_tokens,
            sampling,
            stop,
            tx,
            permit,
        } = job;
        if tx.is_closed() {
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run(
                &mut ctx, &model, &mut batch, &tokens, max_tokens, &sampling, stop, &tx,
            )
        }))
        .unwrap_or_else(|_| {
            Some(GenEvent::Error(GenerateError::Decode(
                "the generation panicked".into(),
            )))
        });
        // Free the slot before announcing the end, so a caller that reacts to `Done` with a
        // new request finds room.
        drop(permit);
        if let Some(last) = outcome {
            let _ = tx.send(last);
        }
    }
}

/// Runs one generation, streaming tokens; returns the final event (`None` when cancelled).
#[allow(clippy::too_many_arguments)]
fn run(
    ctx: &mut LlamaContext<'_>,
    model: &LlamaModel,
    batch: &mut LlamaBatch<'_>,
    tokens: &[LlamaToken],
    max_tokens: u32,
    sampling: &Sampling,
    stop: Vec<String>,
    tx: &mpsc::UnboundedSender<GenEvent>,
) -> Option<GenEvent> {
    let decode_error = |e: String| Some(GenEvent::Error(GenerateError::Decode(e)));
    ctx.clear_kv_cache();
    let n_prompt = tokens.len();
    for (c, chunk) in tokens.chunks(PROMPT_CHUNK).enumerate() {
        if tx.is_closed() {
            return None;
        }
        batch.clear();
        for (j, token) in chunk.iter().enumerate() {
            let pos = c * PROMPT_CHUNK + j;
            let pos_i32 = i32::try_from(pos).unwrap_or(i32::MAX);
            if let Err(e) = batch.add(*token, pos_i32, &[0], pos + 1 == n_prompt) {
                return decode_error(e.to_string());
            }
        }
        if let Err(e) = ctx.decode(batch) {
            return decode_error(e.to_string());
        }
    }

    let mut sampler = build_sampler(sampling);
    let vocab = model.vocab();
    let mut utf8 = Utf8Assembler::default();
    let mut stops = StopFilter::new(stop);
    let mut piece = Vec::with_capacity(32);
    let mut pos = n_prompt;
    let mut completion: u32 = 0;
    let prompt_tokens = token_count(n_prompt);
    let done = |completion_tokens, finish_reason| {
        Some(GenEvent::Done {
            prompt_tokens,
            completion_tokens,
            finish_reason,
        })
    };

    loop {
        if tx.is_closed() {
            return None;
        }
        let token = sampler.sample(ctx, batch.n_tokens() - 1);
        let finished = vocab.is_eog(token);
        if !finished {
            completion += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let text = utf8.push(&piece);
            match stops.push(&text) {
                Filtered::Text(t) => send_text(tx, t),
                Filtered::Stopped(t) => {
                    send_text(tx, t);
                    return done(completion, FinishReason::StopSequence);
                }
            }
        }
        if finished || completion >= max_tokens {
            // Release what was held back: it can still complete a stop sequence.
            let rest = utf8.finish();
            if let Filtered::Stopped(t) = stops.push(&rest) {
                send_text(tx, t);
                return done(completion, FinishReason::StopSequence);
            }
            send_text(tx, stops.finish());
            let reason = if finished {
                FinishReason::Stop
            } else {
                FinishReason::Length
            };
            return done(completion, reason);
        }
        batch.clear();
        let pos_i32 = i32::try_from(pos).unwrap_or(i32::MAX);
        if let Err(e) = batch.add(token, pos_i32, &[0], true) {
            return decode_error(e.to_string());
        }
        pos += 1;
        if let Err(e) = ctx.decode(batch) {
            return decode_error(e.to_string());
        }
    }
}

fn send_text(tx: &mpsc::UnboundedSender<GenEvent>, text: String) {
    if !text.is_empty() {
        let _ = tx.send(GenEvent::Token(text));
    }
}

fn build_sampler(s: &Sampling) -> LlamaSampler {
    if s.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    let mut chain = Vec::with_capacity(4);
    if s.top_k > 0 {
        chain.push(LlamaSampler::top_k(s.top_k));
    }
    if s.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(s.top_p, 1));
    }
    chain.push(LlamaSampler::temp(s.temperature));
    chain.push(LlamaSampler::dist(s.seed));
    LlamaSampler::chain_simple(chain)
}
