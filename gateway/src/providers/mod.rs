//! Model providers: one file per wire protocol behind the [`Provider`]
//! trait. A provider turns a [`ProviderRequest`] into a stream of
//! [`ProviderEvent`]s and classifies its failures so that the router can
//! decide between retrying, falling back and giving up. Every request is
//! streamed, even when the caller wants one plain answer: the pipeline
//! aggregates it, so TTFT and TPOT are observed for every answer.
//! Providers know nothing about aliases, retries or storage.

mod anthropic;
mod http;

pub use http::install_crypto;
pub mod local;
mod openai;
mod openai_embeddings;
mod sse;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::config::{Config, Price, ProviderConfig};
use crate::domain::{ChatMessage, Params, ToolCallDelta, Usage};

pub use anthropic::Anthropic;
pub use local::Local;
pub use openai::OpenAi;
pub use openai_embeddings::OpenAiEmbeddings;

/// One request to one target.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// The provider's model name.
    pub model: String,
    /// The messages, system first.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters, and the tools the model may call.
    pub params: Params,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// Generated text.
    Delta(String),
    /// Token counts; may come more than once (the last one wins).
    Usage(Usage),
    /// Why generation ended (`stop`, `length`, `tool_calls`, …).
    Finish(String),
    /// A piece of a tool call (see [`ToolCallDelta`]).
    ToolCall(ToolCallDelta),
}

/// What went wrong talking to a provider.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Status {
        /// The provider's configured name.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error message.
        message: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke.
    #[error("{provider}: connection failed: {message}")]
    Connect {
        /// The provider's configured name.
        provider: String,
        /// What the HTTP client said.
        message: String,
    },
    /// No answer within the configured time.
    #[error("{provider}: no {what} within {ms} ms")]
    Timeout {
        /// The provider's configured name.
        provider: String,
        /// `first token` or `complete answer`.
        what: &'static str,
        /// The limit.
        ms: u64,
    },
    /// The stream ended or broke before the provider said it was done.
    #[error("{provider}: the answer stream was cut off: {message}")]
    Cut {
        /// The provider's configured name.
        provider: String,
        /// What happened.
        message: String,
    },
    /// The provider is at capacity and refused without queueing.
    #[error("{provider}: {message}")]
    Busy {
        /// The provider's configured name.
        provider: String,
        /// What it said.
        message: String,
    },
    /// The provider sent something that is not its documented format, or
    /// an error event inside the stream.
    #[error("{provider}: {message}")]
    Protocol {
        /// The provider's configured name.
        provider: String,
        /// What was wrong.
        message: String,
        /// Whether trying again may help (e.g. an `overloaded_error` event).
        retryable: bool,
    },
}

impl ProviderError {
    /// Whether the same target may succeed if asked again.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 425 | 429) || *status >= 500
            }
            ProviderError::Connect { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Cut { .. } => true,
            ProviderError::Protocol { retryable, .. } => *retryable,
            ProviderError::Busy { .. } => false,
        }
    }

    /// The HTTP status that best tells an API caller what happened:
    /// the provider's own status, 504 for a timeout, 503 when busy.
    pub fn status_hint(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            ProviderError::Timeout { .. } => Some(504),
            ProviderError::Busy { .. } => Some(503),
            _ => None,
        }
    }

    /// The delay the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable name for the kind of failure (`error.type` on spans).
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status { .. } => "http_status",
            ProviderError::Connect { .. } => "connect",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Cut { .. } => "cut_off",
            ProviderError::Busy { .. } => "busy",
            ProviderError::Protocol { .. } => "protocol",
        }
    }

    /// The HTTP status, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A stream of answer pieces.
pub type EventStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// A model provider.
pub trait Provider: Send + Sync {
    /// The provider's configured name (`openai`, `my-vllm`).
    fn name(&self) -> &str;

    /// Sends a streaming request. Resolves once the provider has accepted it
    /// (response headers received); the stream then yields the answer.
    fn stream(&self, request: ProviderRequest)
    -> BoxFuture<'_, Result<EventStream, ProviderError>>;

    /// Per-target limits.
    fn timeouts(&self) -> Timeouts;

    /// The price of a model, if configured.
    fn price(&self, model: &str) -> Option<Price>;

    /// Requests this provider holds in its own queue (running or waiting),
    /// for providers that have one (the embedded model); `None` otherwise.
    fn queue_depth(&self) -> Option<usize> {
        None
    }
}

/// How long each phase of a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Until the first token of a streamed answer.
    pub first_token: Duration,
    /// For the whole answer.
    pub total: Duration,
}

/// Builds every configured provider. Loading an embedded model blocks;
/// call this off the async runtime's worker threads.
pub fn from_config(config: &Config) -> Result<BTreeMap<String, Arc<dyn Provider>>, ProviderError> {
    let mut out: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    for (name, provider) in &config.providers {
        let built: Arc<dyn Provider> = match provider {
            ProviderConfig::Openai(c) => Arc::new(OpenAi::new(name, c)?),
            ProviderConfig::Anthropic(c) => Arc::new(Anthropic::new(name, c)?),
            ProviderConfig::Local(c) => Arc::new(Local::load(name, c, &config.data_dir)?),
        };
        out.insert(name.clone(), built);
    }
    Ok(out)
}
