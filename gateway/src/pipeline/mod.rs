//! The pipeline: one request from a normalized input to a streamed reply
//! and a recorded inference, one file per stage of the design:
//!
//! 1. `admit`    rate limits and budgets ([`Guards`]); allow-lists: not yet
//! 2. `resolve`  which prompt and version answer ([`Registry`]: binding →
//!    label or A/B split → version)
//! 3. `context`  the prompt's context variables and the conversation so far,
//!    trimmed to the model's context window; `retrieve` the knowledge the
//!    prompt's `[retrieval]` asks for, given to a template variable
//! 4. `render`   the prompt's templates into chat messages
//! 5. `route`    alias → targets, retries, fallback ([`Router`])
//! 6. `cache`    an exact-match answer replayed, or a fresh one stored
//! 7. `generate` streaming tokens to the caller; `tool_loop` for a prompt
//!    with `tools`: model → tool calls → results → model, until an answer
//! 8. `record`   the inference row, for failures and refusals too
//!    ([`Recorder`]); `implicit` notices the signals users give unasked
//!
//! The pipeline knows nothing about Slack or Discord: adapters hand it an
//! [`Inbound`](crate::domain::Inbound) and render the [`ReplyStream`] it
//! returns.

mod admit;
mod approvals;
pub mod breaker;
mod cache;
mod context;
mod generate;
pub mod implicit;
mod record;
mod render;
mod resolve;
mod retrieve;
pub mod route;
mod tool_loop;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{ChatMessage, Input, Params, Purpose, ReplyStream, Request, now_ms};
use crate::guards::Guards;
use crate::guards::cache::CachePolicy;
use crate::guards::limits::{Admission, LimitError};
use crate::pipeline::route::{RouteError, Router};
use crate::registry::{Registry, RegistryError};
use crate::store::Recorder;

pub use crate::registry::DEFAULT_PROMPT;
pub use approvals::{ApprovalError, Approvals};

/// A request that passed the name checks and the limits
/// ([`Pipeline::admit_request`]), waiting for [`Pipeline::start_admitted`].
#[derive(Debug)]
struct Admitted {
    request: Request,
    admission: Admission,
    span: tracing::Span,
}

/// Why a request was refused before any model was asked.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No such alias.
    #[error(transparent)]
    UnknownAlias(RouteError),
    /// The prompt could not be resolved (unknown prompt, label or version).
    #[error(transparent)]
    Prompt(#[from] RegistryError),
    /// The prompt could not be rendered.
    #[error(transparent)]
    Render(#[from] prompts::RenderError),
    /// The request itself is not usable.
    #[error("{0}")]
    BadRequest(String),
    /// A rate limit or budget refused it (or, with `redis.on_failure =
    /// "closed"`, the limits could not be checked). The message says which
    /// limit and when to retry; the refusal is recorded under `inference_id`.
    #[error("{source}")]
    Limited {
        /// The recorded refusal.
        inference_id: Uuid,
        /// Which limit, and when to retry.
        source: LimitError,
    },
}

impl PipelineError {
    /// The refusal's `error.type` on the request's span.
    pub fn kind(&self) -> &'static str {
        match self {
            PipelineError::UnknownAlias(_) => "unknown_model",
            PipelineError::Prompt(_) => "prompt",
            PipelineError::Render(_) => "render",
            PipelineError::BadRequest(_) => "bad_request",
            PipelineError::Limited { .. } => "limited",
        }
    }

    /// The recorded row of a refusal that has one (a rate limit's).
    pub fn inference_id(&self) -> Option<Uuid> {
        match self {
            PipelineError::Limited { inference_id, .. } => Some(*inference_id),
            _ => None,
        }
    }
}

/// Settings of the pipeline that do not belong to a stage's own type.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The bot's display name, given to prompts as `bot_name`.
    pub bot_name: String,
    /// Context windows by alias, in tokens: history is trimmed, oldest
    /// first, until the rendered prompt and the answer fit (see
    /// [`crate::config::Config::context_windows`]).
    pub context_windows: BTreeMap<String, u32>,
    /// Aliases whose targets read images.
    pub vision: std::collections::BTreeSet<String>,
    /// Put message text on tracing spans (`[telemetry] capture_content`).
    pub capture_content: bool,
    /// Mints the inference ids, keyed by the deployment's secret.
    pub ids: crate::domain::InferenceIds,
    /// The knowledge that `[retrieval]` searches (`None`: prompts that
    /// retrieve answer without documents, and the row says so).
    pub knowledge: Option<crate::knowledge::Knowledge>,
    /// The tools prompts may offer (`None`: prompts with `tools` answer
    /// without them, and the log says so).
    pub tools: Option<crate::tools::Toolbox>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            bot_name: "Switchboard".to_string(),
            context_windows: BTreeMap::new(),
            vision: Default::default(),
            capture_content: false,
            ids: crate::domain::InferenceIds::default(),
            knowledge: None,
            tools: None,
        }
    }
}

/// What a request would send: see [`Pipeline::preview`].
#[derive(Debug, Clone)]
pub struct Preview {
    /// The model alias.
    pub alias: String,
    /// The prompt and version.
    pub prompt: Option<(String, i64)>,
    /// The rendered messages.
    pub messages: Vec<ChatMessage>,
}

/// The request pipeline. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    router: Router,
    registry: Registry,
    recorder: Recorder,
    options: PipelineOptions,
    guards: Guards,
    signals: crate::pipeline::implicit::Signals,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
    approvals: Approvals,
}

/// What the resolve and render stages produced.
struct Prepared {
    alias: String,
    prompt: Option<(String, i64)>,
    label: Option<String>,
    messages: Vec<ChatMessage>,
    params: Params,
    /// The prompt's own cache policy, which wins over the alias's.
    cache: Option<CachePolicy>,
    /// Images of the question left out (the alias reads text only).
    images_unread: Vec<String>,
    /// What retrieval gave the model.
    retrieval: Option<crate::domain::RetrievalRecord>,
    /// The prompt version's `tools = [...]`: Switchboard runs them (empty:
    /// a plain answer, or the caller's own tools pass through).
    tools: Vec<String>,
    /// The prompt version's `tool_choice`.
    tool_choice: Option<String>,
}

impl Pipeline {
    /// A pipeline over these parts, with in-process cache and no limits.
    pub fn new(
        router: Router,
        registry: Registry,
        recorder: Recorder,
        options: PipelineOptions,
    ) -> Pipeline {
        Pipeline::with_guards(router, registry, recorder, options, Guards::default())
    }

    /// A pipeline over these parts, with this cache and these limits.
    pub fn with_guards(
        router: Router,
        registry: Registry,
        recorder: Recorder,
        options: PipelineOptions,
        guards: Guards,
    ) -> Pipeline {
        Pipeline {
            inner: Arc::new(Inner {
                router,
                registry,
                recorder,
                options,
                guards,
                signals: crate::pipeline::implicit::Signals::default(),
                approvals: Approvals::default(),
                metrics: {
                    let metrics = crate::telemetry::metrics::Metrics::default();
                    metrics.set_gauge(IN_FLIGHT, &[], 0.0);
                    Arc::new(metrics)
                },
            }),
        }
    }

    /// The cache, limits and event dedupe.
    pub fn guards(&self) -> &Guards {
        &self.inner.guards
    }

    /// The routing table.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Requests waiting for each provider, for `/metrics`.
    pub fn queue_depths(&self) -> BTreeMap<String, usize> {
        self.inner.router.queue_depths()
    }

    /// Every target's circuit breaker state, by `provider/model`.
    pub fn circuits(&self) -> BTreeMap<String, breaker::State> {
        self.inner.router.circuits()
    }

    /// Tool calls waiting for their asker's approval: a front end hands
    /// clicks on Approve / Deny to [`Approvals::decide`].
    pub fn approvals(&self) -> &Approvals {
        &self.inner.approvals
    }

    /// The tools prompts may offer, when they are set up.
    pub fn tools(&self) -> Option<&crate::tools::Toolbox> {
        self.inner.options.tools.as_ref()
    }

    /// The knowledge retrieval searches, when it is set up.
    pub fn knowledge(&self) -> Option<&crate::knowledge::Knowledge> {
        self.inner.options.knowledge.as_ref()
    }

    /// The prompt registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The metrics served at `/metrics`.
    pub fn metrics(&self) -> &Arc<crate::telemetry::metrics::Metrics> {
        &self.inner.metrics
    }

    /// The recorder, for feedback rows.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// Starts answering. Errors here mean nothing was sent to a model;
    /// failures after that arrive on the stream (and are recorded).
    pub async fn start(&self, request: Request) -> Result<ReplyStream, PipelineError> {
        let admitted = self.admit_request(request).await?;
        self.start_admitted(admitted).await
    }

    /// The first half of [`Pipeline::start`]: the names checked and the
    /// rate limits passed (a refusal is recorded). Costly work for the
    /// request (downloading its images, [`Pipeline::start_with_images`])
    /// goes between this and [`Pipeline::start_admitted`], so that a refused
    /// request costs nothing more.
    async fn admit_request(&self, request: Request) -> Result<Admitted, PipelineError> {
        let span = crate::telemetry::spans::request_span(&request);
        let admitted = self
            .checked_and_admitted(&request)
            .instrument(span.clone())
            .await;
        match admitted {
            Ok(admission) => Ok(Admitted {
                request,
                admission,
                span,
            }),
            Err(e) => {
                crate::telemetry::spans::record_refusal(&span, e.kind(), e.inference_id());
                Err(e)
            }
        }
    }

    /// The second half of [`Pipeline::start`], for a request admitted by
    /// [`Pipeline::admit_request`].
    async fn start_admitted(&self, admitted: Admitted) -> Result<ReplyStream, PipelineError> {
        let Admitted {
            request,
            admission,
            span,
        } = admitted;
        let started = self
            .begin(request, admission, span.clone())
            .instrument(span.clone())
            .await;
        if let Err(e) = &started {
            crate::telemetry::spans::record_refusal(&span, e.kind(), e.inference_id());
        }
        started
    }

    /// [`Pipeline::start`] for a chat message whose images are fetched only
    /// once it is admitted, so that a refused message downloads nothing:
    /// `fetch` gives the images, and whatever else the adapter wants back
    /// (the names of those it could not read).
    pub async fn start_with_images<T, Fut>(
        &self,
        request: Request,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<(ReplyStream, T), PipelineError>
    where
        Fut: std::future::Future<Output = (Vec<crate::domain::Image>, T)>,
    {
        let mut admitted = self.admit_request(request).await?;
        let (images, extra) = fetch().await;
        if let Input::Chat(inbound) = &mut admitted.request.input {
            inbound.images = images;
        }
        Ok((self.start_admitted(admitted).await?, extra))
    }

    /// Implicit signals, then the names, then the limits.
    async fn checked_and_admitted(&self, request: &Request) -> Result<Admission, PipelineError> {
        if let (Input::Chat(inbound), Purpose::Live) = (&request.input, request.purpose)
            && let Some(signal) =
                self.inner
                    .signals
                    .on_message(&inbound.origin, &inbound.text, now_ms())
        {
            self.inner
                .implicit(signal.inference, signal.kind, &inbound.origin);
        }
        // A name nobody configured is refused before the limits, so that
        // no metric series or limit counter is ever keyed by a caller's
        // made-up string.
        if let Input::Messages { alias, .. } = &request.input
            && !self.inner.router.has(alias)
        {
            return Err(PipelineError::UnknownAlias(RouteError::UnknownAlias {
                alias: alias.clone(),
                known: self.inner.router.aliases(),
            }));
        }
        if let Input::Prompt { name, .. } = &request.input {
            self.inner
                .registry
                .check_exists(name)
                .map_err(PipelineError::Prompt)?;
        }
        self.admit(request).await
    }

    /// [`Pipeline::start_admitted`] inside the request's span.
    async fn begin(
        &self,
        request: Request,
        admission: Admission,
        span: tracing::Span,
    ) -> Result<ReplyStream, PipelineError> {
        let mut prepared = self.prepare(&request).await?;
        crate::telemetry::spans::record_prepared(
            &span,
            &prepared.alias,
            prepared.prompt.as_ref(),
            prepared.label.as_deref(),
            &prepared.params,
        );
        if !self.inner.router.has(&prepared.alias) {
            return Err(PipelineError::UnknownAlias(RouteError::UnknownAlias {
                alias: prepared.alias,
                known: self.inner.router.aliases(),
            }));
        }
        let id = self.inner.options.ids.mint();
        let (tx, rx) = mpsc::channel(64);
        let images_unread = std::mem::take(&mut prepared.images_unread);
        let inner = self.inner.clone();
        inner.metrics.add_gauge(IN_FLIGHT, &[], 1.0);
        tokio::spawn(
            async move {
                inner.generate(id, request, prepared, admission, tx).await;
                inner.metrics.add_gauge(IN_FLIGHT, &[], -1.0);
            }
            .instrument(span),
        );
        let mut reply = ReplyStream::new(id, rx);
        reply.images_unread = images_unread;
        Ok(reply)
    }

    /// Stages 2–4 only: what would be sent for this request (alias, prompt
    /// version, rendered messages), without admitting, sending or
    /// recording anything. For previews and benchmarks.
    pub async fn preview(&self, request: &Request) -> Result<Preview, PipelineError> {
        let p = self.prepare(request).await?;
        Ok(Preview {
            alias: p.alias,
            prompt: p.prompt,
            messages: p.messages,
        })
    }
}

/// The gauge of answers being generated.
const IN_FLIGHT: &str = "switchboard_in_flight_requests";
