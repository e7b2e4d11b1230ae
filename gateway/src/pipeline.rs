//! The pipeline: one request from a normalized input to a streamed reply
//! and a recorded inference, in the stages of the design:
//!
//! 1. admit    rate limits and budgets ([`Guards`]); allow-lists: not yet
//! 2. resolve  which prompt and version answer ([`Registry`]: binding → label
//!    or A/B split → version)
//! 3. context  the conversation so far (given by the adapter)
//! 4. render   the prompt's templates into chat messages
//! 5. route    alias → targets, retries, fallback ([`Router`])
//! 6. cache    an exact-match answer replayed ([`crate::cache`]), else
//!    generate streaming tokens to the caller
//! 7. record   the inference row, for failures too ([`Recorder`])
//!
//! The pipeline knows nothing about Slack or Discord: adapters hand it an
//! [`Inbound`] and render the [`ReplyStream`] it returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use prompts::{RenderContext, Turn};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use crate::cache::{CacheControl, CachePolicy, CachedAnswer};
use crate::guards::Guards;
use crate::limits::{Admission, LimitError};
use crate::providers::{ProviderError, ProviderEvent};
use crate::registry::{Registry, RegistryError, Resolved, Selector};
use crate::reply::{ReplyEvent, ReplyStream, Summary};
use crate::router::{Attempt, RouteError, Router};
use crate::store::{InferenceRecord, Recorder, Status, now_ms};
use crate::types::{ChatMessage, Inbound, Origin, Params, Role, Usage};
use tracing::field::Empty;

pub use crate::registry::DEFAULT_PROMPT;

/// What to answer.
// Built once per request and moved into it: boxing the chat variant would
// save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// A chat message from an adapter, answered through the bound prompt.
    Chat(Inbound),
    /// Messages sent as they are to a model alias (the HTTP API).
    Messages {
        /// The alias.
        alias: String,
        /// The messages.
        messages: Vec<ChatMessage>,
    },
    /// Messages answered through a named prompt (`prompt:<name>` on the
    /// HTTP API): the last user message is the question, the rest history.
    Prompt {
        /// The prompt's name.
        name: String,
        /// Which version: `production` when `None`.
        selector: Option<Selector>,
        /// The messages.
        messages: Vec<ChatMessage>,
    },
}

/// Whether a request is real traffic or an admin's dry run. Test requests
/// are recorded with `purpose = 'test'` so that statistics leave them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Real traffic.
    #[default]
    Live,
    /// A dry run (`prompts test`).
    Test,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Live => "live",
            Purpose::Test => "test",
        }
    }
}

/// One request to the pipeline.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where it came from.
    pub origin: Origin,
    /// What to answer.
    pub input: Input,
    /// Parameters set by the caller; they win over the prompt's and alias's.
    pub params: Params,
    /// Stream tokens (true) or ask the provider for one whole answer.
    pub stream: bool,
    /// When the request arrived, for TTFT and overhead.
    pub started: Instant,
    /// Values for the prompt's declared variables.
    pub variables: BTreeMap<String, String>,
    /// Real traffic or a dry run.
    pub purpose: Purpose,
    /// The caller's wishes for the response cache.
    pub cache: CacheControl,
    /// An alias that answers instead of the prompt's own model (an
    /// evaluation comparing models); `None` keeps the prompt's.
    pub model: Option<String>,
}

impl Request {
    /// The asker's display name, when a chat platform gave one.
    pub fn user_name(&self) -> Option<String> {
        match &self.input {
            Input::Chat(inbound) => inbound.user_name.clone(),
            _ => None,
        }
    }

    /// A streamed request that arrived now.
    pub fn new(origin: Origin, input: Input) -> Request {
        Request {
            origin,
            input,
            params: Params::default(),
            stream: true,
            started: Instant::now(),
            variables: BTreeMap::new(),
            purpose: Purpose::Live,
            cache: CacheControl::default(),
            model: None,
        }
    }
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

/// Settings of the pipeline that do not belong to a stage's own type.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The bot's display name, given to prompts as `bot_name`.
    pub bot_name: String,
    /// Context windows by alias, in tokens: history is trimmed, oldest
    /// first, until the rendered prompt and the answer fit (see
    /// [`crate::Config::context_windows`]).
    pub context_windows: BTreeMap<String, u32>,
    /// Aliases whose targets read images.
    pub vision: std::collections::BTreeSet<String>,
    /// Put message text on tracing spans (`[telemetry] capture_content`).
    pub capture_content: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            bot_name: "Switchboard".to_string(),
            context_windows: BTreeMap::new(),
            vision: Default::default(),
            capture_content: false,
        }
    }
}

/// A conservative token estimate for trimming: about three characters a
/// token (English prose runs nearer four), plus a few tokens of framing per
/// message.
fn estimated_tokens(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| m.content.chars().count().div_ceil(3) as u64 + 4)
        .sum()
}

/// Tokens kept free for the answer when the request does not say.
const ANSWER_RESERVE: u32 = 512;

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
    signals: crate::implicit::Signals,
    metrics: crate::metrics::Metrics,
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
                signals: crate::implicit::Signals::default(),
                metrics: {
                    let metrics = crate::metrics::Metrics::default();
                    metrics.set_gauge(IN_FLIGHT, &[], 0.0);
                    metrics
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

    /// The prompt registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The metrics served at `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The recorder, for feedback rows.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// Starts answering. Errors here mean nothing was sent to a model;
    /// failures after that arrive on the stream (and are recorded).
    pub async fn start(&self, request: Request) -> Result<ReplyStream, PipelineError> {
        let span = crate::telemetry::request_span(&request);
        let started = self
            .begin(request, span.clone())
            .instrument(span.clone())
            .await;
        if let Err(e) = &started {
            crate::telemetry::record_refusal(&span, e);
        }
        started
    }

    /// [`Pipeline::start`] inside the request's span.
    async fn begin(
        &self,
        request: Request,
        span: tracing::Span,
    ) -> Result<ReplyStream, PipelineError> {
        if let (Input::Chat(inbound), Purpose::Live) = (&request.input, request.purpose)
            && let Some(signal) =
                self.inner
                    .signals
                    .on_message(&inbound.origin, &inbound.text, now_ms())
        {
            self.inner
                .implicit(signal.inference, signal.kind, &inbound.origin);
        }
        let admission = self.admit(&request).await?;
        let mut prepared = self.prepare(&request).await?;
        crate::telemetry::record_prepared(
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
        let id = Uuid::now_v7();
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

    /// Stage 1: rate limits and budgets; a refusal is recorded.
    async fn admit(&self, request: &Request) -> Result<Admission, PipelineError> {
        let span = tracing::info_span!("limits.admit", switchboard.limited = Empty);
        let admitted = self
            .inner
            .guards
            .admit(request)
            .instrument(span.clone())
            .await;
        span.record("switchboard.limited", admitted.is_err());
        match admitted {
            Ok(admission) => Ok(admission),
            Err(source) => {
                let inference_id = Uuid::now_v7();
                let record = self
                    .inner
                    .guards
                    .refusal_record(inference_id, request, &source);
                self.inner.metrics.observe(&record);
                self.inner.recorder.inference(record).await;
                Err(PipelineError::Limited {
                    inference_id,
                    source,
                })
            }
        }
    }

    /// Stages 2–4: prompt, context and rendering.
    async fn prepare(&self, request: &Request) -> Result<Prepared, PipelineError> {
        match &request.input {
            Input::Messages { alias, messages } => {
                if messages.is_empty() {
                    return Err(PipelineError::BadRequest(
                        "`messages` must not be empty".into(),
                    ));
                }
                Ok(Prepared {
                    alias: alias.clone(),
                    prompt: None,
                    label: None,
                    messages: messages.clone(),
                    params: request.params.clone(),
                    cache: None,
                    images_unread: Vec::new(),
                })
            }
            Input::Prompt {
                name,
                selector,
                messages,
            } => {
                let selector = selector
                    .clone()
                    .unwrap_or_else(|| Selector::Label(crate::registry::PRODUCTION.into()));
                let prompt = self
                    .inner
                    .registry
                    .resolve(name, &selector, &request.origin)
                    .instrument(tracing::info_span!("prompt.resolve"))
                    .await?;
                let Some(last_user) = messages.iter().rposition(|m| m.role == Role::User) else {
                    return Err(PipelineError::BadRequest(format!(
                        "prompt `{name}` needs a user message to answer"
                    )));
                };
                let history = messages[..last_user]
                    .iter()
                    .filter(|m| m.role != Role::System)
                    .cloned()
                    .collect::<Vec<_>>();
                let user_name = request.origin.user.clone();
                let variables = self.context(request, user_name, None, None, &[]);
                self.render(
                    &prompt,
                    request.model.as_deref(),
                    &messages[last_user].content,
                    &history,
                    variables,
                    &request.params,
                )
            }
            Input::Chat(inbound) => {
                let prompt = self
                    .inner
                    .registry
                    .resolve_bound(&inbound.origin)
                    .instrument(tracing::info_span!("prompt.resolve"))
                    .await?;
                let variables = self.context(
                    request,
                    inbound.user_name.clone(),
                    inbound.channel_name.clone(),
                    inbound.workspace_name.clone(),
                    &inbound.attachments,
                );
                let mut prepared = self.render(
                    &prompt,
                    request.model.as_deref(),
                    &inbound.text,
                    &inbound.history,
                    variables,
                    &request.params,
                )?;
                if !inbound.images.is_empty() {
                    let question = prepared
                        .messages
                        .iter_mut()
                        .rev()
                        .find(|m| m.role == Role::User);
                    match question {
                        Some(q) if self.inner.options.vision.contains(&prepared.alias) => {
                            q.images = inbound.images.clone();
                        }
                        _ => {
                            prepared.images_unread =
                                inbound.images.iter().map(|i| i.name.clone()).collect();
                        }
                    }
                }
                Ok(prepared)
            }
        }
    }

    /// The context variables of [`prompts::CONTEXT_VARIABLES`], plus the
    /// caller's values for declared variables (which cannot override them).
    fn context(
        &self,
        request: &Request,
        user_name: Option<String>,
        channel_name: Option<String>,
        workspace_name: Option<String>,
        attachments: &[String],
    ) -> BTreeMap<String, String> {
        let origin = &request.origin;
        let mut v = request.variables.clone();
        let (today, now) = utc_now();
        let mut set = |k: &str, value: String| {
            v.insert(k.to_string(), value);
        };
        set("platform", origin.platform.clone());
        set(
            "user_name",
            user_name.unwrap_or_else(|| "the user".to_string()),
        );
        set("user_id", origin.user.clone().unwrap_or_default());
        set("channel_name", channel_name.unwrap_or_default());
        set("channel_id", origin.channel.clone().unwrap_or_default());
        set("workspace_name", workspace_name.unwrap_or_default());
        set("workspace_id", origin.workspace.clone().unwrap_or_default());
        set("attachments", attachments.join("\n"));
        set("today", today);
        set("now", now);
        v
    }

    /// Renders `prompt` for `model` (the prompt's own when `None`).
    fn render(
        &self,
        prompt: &Resolved,
        model: Option<&str>,
        text: &str,
        history: &[ChatMessage],
        mut variables: BTreeMap<String, String>,
        params: &Params,
    ) -> Result<Prepared, PipelineError> {
        let _span = tracing::info_span!("prompt.render").entered();
        variables.insert("bot_name".to_string(), self.inner.options.bot_name.clone());
        let p = prompt.compiled.prompt();
        let model = model.unwrap_or(&p.model).to_string();
        let render = |history: &[ChatMessage]| -> Result<Vec<ChatMessage>, PipelineError> {
            let ctx = RenderContext {
                text: text.to_string(),
                history: history
                    .iter()
                    .map(|m| Turn {
                        role: m.role.as_str().to_string(),
                        name: None,
                        content: m.content.clone(),
                    })
                    .collect(),
                variables: variables.clone(),
            };
            Ok(prompt
                .compiled
                .render(&ctx)?
                .into_iter()
                .map(|m| ChatMessage::new(Role::parse(&m.role).unwrap_or(Role::User), m.content))
                .collect())
        };
        let mut messages = render(history)?;
        if let Some(window) = self.inner.options.context_windows.get(&model) {
            // The oldest turns go first until the prompt and the answer fit.
            let answer = params
                .max_tokens
                .or(p.params.max_tokens)
                .unwrap_or(ANSWER_RESERVE.min(window / 4));
            let budget = u64::from(window.saturating_sub(answer));
            let mut dropped = 0;
            while dropped < history.len() && estimated_tokens(&messages) > budget {
                dropped += 1;
                messages = render(&history[dropped..])?;
            }
            if dropped > 0 {
                tracing::debug!(
                    alias = %model,
                    dropped,
                    kept = history.len() - dropped,
                    window,
                    "trimmed the conversation history to the model's context window"
                );
            }
        }
        let p = prompt.compiled.prompt();
        let prompt_params = Params {
            temperature: p.params.temperature,
            top_p: p.params.top_p,
            max_tokens: p.params.max_tokens,
            stop: p.params.stop.clone(),
            seed: None,
        };
        Ok(Prepared {
            alias: model.clone(),
            prompt: Some((p.name.clone(), p.version)),
            label: prompt.label.clone(),
            messages,
            params: params.clone().or(&prompt_params),
            images_unread: Vec::new(),
            cache: (!p.cache.is_unset()).then(|| {
                let alias = self.inner.guards.cache.policy(&model);
                CachePolicy {
                    enabled: p.cache.enabled.unwrap_or(alias.enabled),
                    ttl: p
                        .cache
                        .ttl_secs
                        .map_or(alias.ttl, std::time::Duration::from_secs),
                    allow_sampling: p.cache.allow_sampling.unwrap_or(alias.allow_sampling),
                }
            }),
        })
    }
}

/// Collects what happened while generating, for the summary and the row.
struct Run {
    text: String,
    /// The text as it arrived, for the cache.
    chunks: Vec<String>,
    usage: Option<Usage>,
    finish: Option<String>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    provider_wait: Duration,
}

impl Inner {
    /// Records an implicit signal (see [`crate::implicit`]) on an answer,
    /// without holding up the request.
    fn implicit(&self, inference: Uuid, kind: &str, origin: &Origin) {
        let recorder = self.recorder.clone();
        let record = crate::store::FeedbackRecord {
            id: Uuid::now_v7(),
            inference_id: inference,
            created_at_ms: now_ms(),
            kind: kind.to_string(),
            score: Some(0.0),
            comment: None,
            user_id: origin.user.clone(),
            source: "implicit".into(),
        };
        tokio::spawn(async move { recorder.feedback(record).await });
    }

    /// Stages 5–7, on a task of their own.
    async fn generate(
        &self,
        id: Uuid,
        request: Request,
        prepared: Prepared,
        admission: Admission,
        tx: mpsc::Sender<ReplyEvent>,
    ) {
        let created_at_ms = now_ms() - request.started.elapsed().as_millis() as i64;
        let mut run = Run {
            chunks: Vec::new(),
            text: String::new(),
            usage: None,
            finish: None,
            first_token: None,
            last_token: None,
            provider_wait: Duration::ZERO,
        };
        let lookup = self.guards.cache_plan(
            &self.router,
            &request,
            &prepared.alias,
            prepared.cache.as_ref(),
            &prepared.messages,
            &prepared.params,
        );
        let hit = match &lookup {
            Some(l) => {
                let span = tracing::info_span!("cache.lookup", switchboard.cache.hit = Empty);
                let hit = self.guards.cache.get(l).instrument(span.clone()).await;
                span.record("switchboard.cache.hit", hit.is_some());
                hit
            }
            None => None,
        };
        let (outcome, target, attempts) = if let Some(hit) = &hit {
            run.replay(hit, &tx).await
        } else if request.stream {
            self.stream(&prepared, &mut run, &tx).await
        } else {
            self.complete(&prepared, &mut run, &tx).await
        };

        let total_ms = request.started.elapsed().as_secs_f64() * 1000.0;
        let ttft_ms = run
            .first_token
            .map(|t| t.duration_since(request.started).as_secs_f64() * 1000.0);
        let tpot_ms = match (run.first_token, run.last_token, run.usage) {
            (Some(first), Some(last), Some(u)) if u.output_tokens > 1 => Some(
                last.duration_since(first).as_secs_f64() * 1000.0 / (u.output_tokens - 1) as f64,
            ),
            _ => None,
        };
        let price = target.as_ref().and_then(|t| t.2);
        let cost_usd = match (price, run.usage) {
            (Some(p), Some(u)) => Some(p.cost(u.input_tokens, u.output_tokens)),
            _ if hit.is_some() => Some(0.0),
            _ => None,
        };
        if let (Some(lookup), None, Ok(()), Some((provider, model, _))) =
            (&lookup, &hit, &outcome, &target)
        {
            let answer = CachedAnswer {
                chunks: std::mem::take(&mut run.chunks),
                usage: run.usage,
                finish_reason: run.finish.clone(),
                provider: provider.clone(),
                model: model.clone(),
                cost_usd,
            };
            self.guards.cache.put(lookup, answer).await;
        }
        let used = match (&hit, run.usage) {
            (None, Some(u)) => u.input_tokens + u.output_tokens,
            _ => 0,
        };
        self.guards
            .limits
            .settle(admission, used, cost_usd.unwrap_or(0.0))
            .await;
        let summary = Summary {
            inference_id: id,
            alias: prepared.alias.clone(),
            target: target.as_ref().map(|t| format!("{}/{}", t.0, t.1)),
            model: target.as_ref().map(|t| t.1.clone()),
            prompt: prepared.prompt.clone(),
            usage: run.usage,
            ttft_ms,
            tpot_ms,
            total_ms,
            provider_ms: run.provider_wait.as_secs_f64() * 1000.0,
            cost_usd,
            finish_reason: run.finish.clone(),
            attempts: attempts.len(),
        };
        let (status, error) = match &outcome {
            Ok(()) => (Status::Ok, None),
            Err(Failure::Cancelled) => (Status::Cancelled, None),
            Err(Failure::Failed {
                message, partial, ..
            }) => (
                if *partial {
                    Status::Partial
                } else {
                    Status::Error
                },
                Some(message.clone()),
            ),
        };
        let last_attempt = attempts.last().map(|a| a.target.clone());
        let (provider, model) = match (
            &target,
            last_attempt.as_deref().and_then(|t| t.split_once('/')),
        ) {
            (Some(t), _) => (Some(t.0.clone()), Some(t.1.clone())),
            (None, Some((p, m))) => (Some(p.to_string()), Some(m.to_string())),
            (None, None) => (None, None),
        };
        let record = InferenceRecord {
            id,
            created_at_ms,
            origin: request.origin.clone(),
            user_name: request.user_name(),
            prompt: prepared.prompt.clone(),
            prompt_label: prepared.label.clone(),
            purpose: request.purpose,
            alias: prepared.alias.clone(),
            provider,
            model,
            input_tokens: run.usage.map(|u| u.input_tokens),
            output_tokens: run.usage.map(|u| u.output_tokens),
            ttft_ms,
            tpot_ms,
            total_ms,
            provider_ms: summary.provider_ms,
            cost_usd,
            cache_hit: hit.is_some(),
            tokens_saved: hit
                .as_ref()
                .and_then(|h| h.usage)
                .map(|u| u.input_tokens + u.output_tokens),
            cost_saved_usd: hit.as_ref().and_then(|h| h.cost_usd),
            streamed: request.stream,
            status,
            error,
            finish_reason: run.finish.clone(),
            attempts,
            params: prepared.params.clone(),
            // Images are not stored: the row names them.
            input: prepared
                .messages
                .into_iter()
                .map(|mut m| {
                    for image in std::mem::take(&mut m.images) {
                        m.content.push_str(&format!("\n[image: {}]", image.name));
                    }
                    m
                })
                .collect(),
            output: (!run.text.is_empty() || status == Status::Ok).then(|| run.text.clone()),
        };
        // The row goes to the recorder before the caller hears the end, so a
        // caller that acts on the inference id (feedback) finds it queued.
        self.metrics.observe(&record);
        let span = tracing::Span::current();
        crate::telemetry::record_inference(&span, &record, self.options.capture_content);
        self.recorder
            .inference(record)
            .instrument(tracing::info_span!("store.record"))
            .await;
        if let (Input::Chat(inbound), Purpose::Live) = (&request.input, request.purpose) {
            match &outcome {
                Ok(()) => self
                    .signals
                    .on_answer(&inbound.origin, &inbound.text, id, now_ms()),
                Err(Failure::Cancelled) if run.first_token.is_some() => {
                    self.implicit(id, "stopped", &inbound.origin)
                }
                Err(_) => {}
            }
        }
        let last = match outcome {
            Ok(()) => ReplyEvent::Done(summary),
            Err(Failure::Cancelled) => return,
            Err(Failure::Failed {
                message,
                upstream_status,
                partial,
            }) => ReplyEvent::Failed {
                message,
                upstream_status,
                partial,
                summary,
            },
        };
        let _ = tx.send(last).await;
    }

    /// Streams tokens to the caller as they arrive.
    async fn stream(
        &self,
        prepared: &Prepared,
        run: &mut Run,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let waited = Instant::now();
        let opened = self
            .router
            .open(&prepared.alias, &prepared.messages, &prepared.params)
            .await;
        run.provider_wait += waited.elapsed();
        let mut opened = match opened {
            Ok(o) => o,
            Err(e) => {
                let attempts = e.attempts().to_vec();
                return (Err(Failure::from_route(&e)), None, attempts);
            }
        };
        let target = Some((opened.provider.clone(), opened.model.clone(), opened.price));
        let started = ReplyEvent::Started {
            target: opened.target.clone(),
            provider_ms: run.provider_wait.as_secs_f64() * 1000.0,
        };
        if tx.send(started).await.is_err() {
            return (Err(Failure::Cancelled), target, opened.attempts);
        }
        let mut outcome = Ok(());
        while let Some(event) = opened.buffered.pop_front() {
            if let Err(f) = run.apply(event, tx).await {
                return (Err(f), target, opened.attempts);
            }
        }
        loop {
            let waited = Instant::now();
            let next = tokio::time::timeout_at(opened.deadline, opened.rest.next()).await;
            run.provider_wait += waited.elapsed();
            let event = match next {
                Ok(None) => break,
                Ok(Some(Ok(event))) => event,
                Ok(Some(Err(e))) => {
                    outcome = Err(Failure::midway(&e));
                    break;
                }
                Err(_) => {
                    outcome = Err(Failure::Failed {
                        message: format!(
                            "the answer broke off: {}: the answer took longer than the total time limit (total_timeout_ms)",
                            opened.provider
                        ),
                        upstream_status: None,
                        partial: true,
                    });
                    break;
                }
            };
            if let Err(f) = run.apply(event, tx).await {
                outcome = Err(f);
                break;
            }
        }
        if let Some(last) = opened.attempts.last_mut()
            && let Err(Failure::Failed { message, .. }) = &outcome
        {
            last.error = Some(message.clone());
        }
        (outcome, target, opened.attempts)
    }

    /// Asks for one whole answer, then hands it over as one token.
    async fn complete(
        &self,
        prepared: &Prepared,
        run: &mut Run,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let waited = Instant::now();
        let completed = self
            .router
            .complete(&prepared.alias, &prepared.messages, &prepared.params)
            .await;
        run.provider_wait += waited.elapsed();
        match completed {
            Err(e) => {
                let attempts = e.attempts().to_vec();
                (Err(Failure::from_route(&e)), None, attempts)
            }
            Ok(c) => {
                let target = Some((c.provider.clone(), c.model.clone(), c.price));
                run.usage = c.completion.usage;
                run.finish = Some(c.completion.finish_reason.clone());
                let now = Instant::now();
                run.first_token = Some(now);
                run.last_token = Some(now);
                run.text = c.completion.text.clone();
                run.chunks = vec![c.completion.text.clone()];
                let started = ReplyEvent::Started {
                    target: c.target.clone(),
                    provider_ms: run.provider_wait.as_secs_f64() * 1000.0,
                };
                let outcome = if tx.send(started).await.is_err()
                    || tx.send(ReplyEvent::Token(c.completion.text)).await.is_err()
                {
                    Err(Failure::Cancelled)
                } else {
                    Ok(())
                };
                (outcome, target, c.attempts)
            }
        }
    }
}

/// Today's date and the time to the minute, in UTC: (`2026-11-28`,
/// `2026-11-28 14:05 UTC`). To the minute, so the rendered prompt (and a
/// cache key made from it) stays the same within a minute.
fn utc_now() -> (String, String) {
    let t = crate::store::Utc::from_ms(now_ms());
    let today = t.date();
    let now = format!("{today} {:02}:{:02} UTC", t.hour, t.minute);
    (today, now)
}

/// The gauge of answers being generated.
const IN_FLIGHT: &str = "switchboard_in_flight_requests";

/// (provider, model, price) of the target that answered.
type Target = (String, String, Option<crate::config::Price>);

impl Run {
    /// Takes one provider event; sends text on to the caller.
    async fn apply(
        &mut self,
        event: ProviderEvent,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> Result<(), Failure> {
        match event {
            ProviderEvent::Delta(text) => {
                let now = Instant::now();
                self.first_token.get_or_insert(now);
                self.last_token = Some(now);
                self.text.push_str(&text);
                self.chunks.push(text.clone());
                tx.send(ReplyEvent::Token(text))
                    .await
                    .map_err(|_| Failure::Cancelled)?;
            }
            ProviderEvent::Usage(u) => self.usage = Some(u),
            ProviderEvent::Finish(reason) => self.finish = Some(reason),
        }
        Ok(())
    }
}

impl Run {
    /// Stage 6 on a hit: replays a cached answer, chunk by chunk.
    async fn replay(
        &mut self,
        hit: &CachedAnswer,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let target = Some((hit.provider.clone(), hit.model.clone(), None));
        let started = ReplyEvent::Started {
            target: hit.target(),
            provider_ms: 0.0,
        };
        if tx.send(started).await.is_err() {
            return (Err(Failure::Cancelled), target, Vec::new());
        }
        for chunk in &hit.chunks {
            if let Err(f) = self.apply(ProviderEvent::Delta(chunk.clone()), tx).await {
                return (Err(f), target, Vec::new());
            }
        }
        self.usage = hit.usage;
        self.finish = hit.finish_reason.clone();
        (Ok(()), target, Vec::new())
    }
}

/// How a generation ended badly.
enum Failure {
    /// The caller went away.
    Cancelled,
    /// The model failed; the caller is told.
    Failed {
        message: String,
        upstream_status: Option<u16>,
        partial: bool,
    },
}

impl Failure {
    fn from_route(e: &RouteError) -> Failure {
        let upstream_status = match e {
            RouteError::AllFailed { last, .. } => last.status_hint(),
            RouteError::UnknownAlias { .. } => None,
        };
        Failure::Failed {
            message: e.to_string(),
            upstream_status,
            partial: false,
        }
    }

    fn midway(e: &ProviderError) -> Failure {
        Failure::Failed {
            message: format!("the answer broke off: {e}"),
            upstream_status: e.status_hint(),
            partial: true,
        }
    }
}
