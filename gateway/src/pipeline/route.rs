//! Routing: an alias names an ordered list of targets (provider + model).
//! The router tries them in order; each target is retried on 429, 5xx,
//! timeouts and connection errors with exponential backoff and jitter that
//! honours `Retry-After`, and then the next target takes over.
//!
//! A streamed answer is only committed to a target once its first token
//! has arrived, so a stream that fails before then falls back
//! transparently; after it, the caller sees the error (see `pipeline`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tracing::Instrument;
use tracing::field::Empty;

use super::breaker::{Breakers, State};
use crate::config::{Config, Price, RoutingConfig};
use crate::domain::{Attempt, ChatMessage, Params};
use crate::providers::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest};

/// One provider + model that an alias can send to.
#[derive(Clone)]
pub struct Target {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The provider's model name.
    pub model: String,
}

impl Target {
    /// `provider/model`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider.name(), self.model)
    }
}

/// A model alias: ordered targets and default parameters.
#[derive(Clone)]
pub struct Alias {
    /// The targets, in fallback order.
    pub targets: Vec<Target>,
    /// Parameters used when neither the prompt nor the request sets them.
    pub params: Params,
}

/// Why no target answered.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The alias is not configured.
    #[error("unknown model `{alias}`; configured models: {}", if known.is_empty() { "(none)".to_string() } else { known.join(", ") })]
    UnknownAlias {
        /// What was asked for.
        alias: String,
        /// What exists.
        known: Vec<String>,
    },
    /// Every target failed.
    #[error("every target of model `{alias}` failed; last error: {last}")]
    AllFailed {
        /// The alias.
        alias: String,
        /// The last error.
        last: ProviderError,
        /// Every attempt, in order.
        attempts: Vec<Attempt>,
    },
}

impl RouteError {
    /// The attempts made before giving up.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            RouteError::AllFailed { attempts, .. } => attempts,
            RouteError::UnknownAlias { .. } => &[],
        }
    }
}

/// A streamed answer that has produced its first token (or ended cleanly
/// without any text).
pub struct Opened {
    /// `provider/model` that answered.
    pub target: String,
    /// The provider's name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Its price, if configured.
    pub price: Option<Price>,
    /// Events received so far, first token last.
    pub buffered: VecDeque<ProviderEvent>,
    /// The rest of the answer.
    pub rest: EventStream,
    /// When the whole answer must be done.
    pub deadline: tokio::time::Instant,
    /// Every try, including the one that answered.
    pub attempts: Vec<Attempt>,
}

/// The routing table.
#[derive(Clone)]
pub struct Router {
    aliases: BTreeMap<String, Alias>,
    policy: RoutingConfig,
    breakers: Arc<Breakers>,
}

impl Router {
    /// Builds the routing table from the configured aliases and the built
    /// providers. The configuration has been checked, so every target names
    /// a provider that exists.
    pub fn new(config: &Config, providers: &BTreeMap<String, Arc<dyn Provider>>) -> Router {
        let mut aliases = BTreeMap::new();
        for (name, alias) in &config.models {
            let targets = alias
                .targets
                .iter()
                .filter_map(|t| {
                    let (provider, model) = t.split_once('/')?;
                    Some(Target {
                        provider: providers.get(provider)?.clone(),
                        model: model.to_string(),
                    })
                })
                .collect();
            aliases.insert(
                name.clone(),
                Alias {
                    targets,
                    params: alias.params.clone(),
                },
            );
        }
        Router {
            aliases,
            policy: config.routing.clone(),
            breakers: Arc::new(Breakers::new(
                config.routing.breaker_failures,
                Duration::from_millis(config.routing.breaker_cooldown_ms),
            )),
        }
    }

    /// Adds or replaces an alias (used for built-in defaults).
    pub fn insert(&mut self, name: &str, alias: Alias) {
        self.aliases.insert(name.to_string(), alias);
    }

    /// The configured alias names, sorted.
    pub fn aliases(&self) -> Vec<String> {
        self.aliases.keys().cloned().collect()
    }

    /// Whether `alias` exists.
    pub fn has(&self, alias: &str) -> bool {
        self.aliases.contains_key(alias)
    }

    /// An alias's targets (`provider/model`, in order) and default
    /// parameters, which together with the request decide a cache key.
    pub fn targets_of(&self, alias: &str) -> Option<(Vec<String>, Params)> {
        let a = self.aliases.get(alias)?;
        Some((
            a.targets.iter().map(Target::label).collect(),
            a.params.clone(),
        ))
    }

    /// Each provider with a queue of its own (the embedded model) and how
    /// many requests it holds, by provider name.
    pub fn queue_depths(&self) -> BTreeMap<String, usize> {
        self.aliases
            .values()
            .flat_map(|a| &a.targets)
            .filter_map(|t| Some((t.provider.name().to_string(), t.provider.queue_depth()?)))
            .collect()
    }

    /// Every target (`provider/model`) and the state of its circuit.
    pub fn circuits(&self) -> BTreeMap<String, State> {
        let mut all: BTreeMap<String, State> = self
            .aliases
            .values()
            .flat_map(|a| &a.targets)
            .map(|t| (t.label(), State::Closed))
            .collect();
        all.extend(self.breakers.states());
        all
    }

    fn alias(&self, name: &str) -> Result<&Alias, RouteError> {
        self.aliases
            .get(name)
            .ok_or_else(|| RouteError::UnknownAlias {
                alias: name.to_string(),
                known: self.aliases(),
            })
    }

    /// How long to wait before retry number `retry` (0-based), or `None`
    /// when the provider asks for longer than we are willing to wait.
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(asked) = retry_after {
            return (asked <= Duration::from_millis(self.policy.retry_after_max_ms))
                .then_some(asked);
        }
        let base = self
            .policy
            .backoff_initial_ms
            .saturating_mul(1u64 << retry.min(20))
            .min(self.policy.backoff_max_ms);
        // Jitter: somewhere in the upper half, so that retries spread out.
        let jittered = base / 2 + fastrand::u64(0..=base / 2);
        Some(Duration::from_millis(jittered))
    }

    /// Tries each target in turn until one starts answering. Returns once
    /// the first token has arrived.
    pub async fn open(
        &self,
        alias: &str,
        messages: &[ChatMessage],
        params: &Params,
    ) -> Result<Opened, RouteError> {
        let mut deadline = tokio::time::Instant::now();
        let ((buffered, rest), target, attempts) = self
            .each_target(alias, messages, params, |target, request| {
                let timeouts = target.provider.timeouts();
                deadline = tokio::time::Instant::now() + timeouts.total;
                let provider = target.provider.clone();
                async move {
                    tokio::time::timeout(
                        timeouts.first_token,
                        first_token(provider.as_ref(), request),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(ProviderError::Timeout {
                            provider: provider.name().to_string(),
                            what: "first token",
                            ms: timeouts.first_token.as_millis() as u64,
                        })
                    })
                }
            })
            .await?;
        Ok(Opened {
            target: target.label(),
            provider: target.provider.name().to_string(),
            model: target.model.clone(),
            price: target.provider.price(&target.model),
            buffered,
            rest,
            deadline,
            attempts,
        })
    }

    /// The retry and fallback loop: calls `call` for each target, retrying
    /// each as the policy allows, until one succeeds.
    async fn each_target<'a, T, F, Fut>(
        &'a self,
        alias: &str,
        messages: &[ChatMessage],
        params: &Params,
        mut call: F,
    ) -> Result<(T, &'a Target, Vec<Attempt>), RouteError>
    where
        F: FnMut(&Target, ProviderRequest) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let entry = self.alias(alias)?;
        let params = params.clone().or(&entry.params);
        let mut attempts = Vec::new();
        let mut last = None;
        for target in &entry.targets {
            let label = target.label();
            if let Err(left) = self.breakers.allow(&label) {
                let e = ProviderError::Busy {
                    provider: target.provider.name().to_string(),
                    message: format!(
                        "`{label}` is skipped: its circuit is open after repeated failures (tried again in {} s; routing.breaker_cooldown_ms)",
                        left.as_secs()
                    ),
                };
                attempts.push(Attempt {
                    target: label,
                    status: None,
                    error: Some(e.to_string()),
                    ms: 0.0,
                });
                last = Some(e);
                continue;
            }
            for retry in 0..=self.policy.retries {
                let started = Instant::now();
                let request = ProviderRequest {
                    model: target.model.clone(),
                    messages: messages.to_vec(),
                    params: params.clone(),
                };
                let span = tracing::info_span!(
                    "provider.call",
                    otel.name = %format_args!("chat {}", target.model),
                    otel.kind = "client",
                    otel.status_code = Empty,
                    gen_ai.operation.name = "chat",
                    gen_ai.provider.name = target.provider.name(),
                    gen_ai.request.model = target.model.as_str(),
                    switchboard.retry = i64::from(retry),
                    "error.type" = Empty,
                    http.response.status_code = Empty,
                );
                let outcome = call(target, request).instrument(span.clone()).await;
                if let Err(e) = &outcome {
                    span.record("otel.status_code", "error");
                    span.record("error.type", e.kind());
                    if let Some(status) = e.status() {
                        span.record("http.response.status_code", i64::from(status));
                    }
                }
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                self.breakers.record(&label, outcome.as_ref().map(|_| ()));
                match outcome {
                    Ok(value) => {
                        attempts.push(Attempt {
                            target: target.label(),
                            status: None,
                            error: None,
                            ms,
                        });
                        return Ok((value, target, attempts));
                    }
                    Err(e) => {
                        tracing::warn!(target = %target.label(), retry, error = %e, "model request failed");
                        attempts.push(Attempt {
                            target: target.label(),
                            status: e.status(),
                            error: Some(e.to_string()),
                            ms,
                        });
                        // An open circuit ends this target's retries too.
                        let wait = (e.is_retryable()
                            && retry < self.policy.retries
                            && !self.breakers.is_open(&label))
                        .then(|| self.backoff(retry, e.retry_after()))
                        .flatten();
                        last = Some(e);
                        match wait {
                            Some(d) => tokio::time::sleep(d).await,
                            None => break,
                        }
                    }
                }
            }
        }
        Err(self.all_failed(alias, last, attempts))
    }

    fn all_failed(
        &self,
        alias: &str,
        last: Option<ProviderError>,
        attempts: Vec<Attempt>,
    ) -> RouteError {
        RouteError::AllFailed {
            alias: alias.to_string(),
            last: last.unwrap_or_else(|| ProviderError::Protocol {
                provider: "(none)".into(),
                message: format!("model `{alias}` has no targets"),
                retryable: false,
            }),
            attempts,
        }
    }
}

/// Starts a stream and reads it up to its first text (or its clean end).
async fn first_token(
    provider: &dyn Provider,
    request: ProviderRequest,
) -> Result<(VecDeque<ProviderEvent>, EventStream), ProviderError> {
    let mut stream = provider.stream(request).await?;
    let mut buffered = VecDeque::new();
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                // A tool call is the answer's first token as much as text is.
                let is_text = matches!(event, ProviderEvent::Delta(_) | ProviderEvent::ToolCall(_));
                buffered.push_back(event);
                if is_text {
                    return Ok((buffered, stream));
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok((buffered, stream)),
        }
    }
}
