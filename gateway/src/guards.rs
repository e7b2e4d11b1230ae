//! What the pipeline consults around a generation: the limiter on the way
//! in (stage 1, admit), the response cache before asking a model (stage 6),
//! and the event dedupe store the adapters use. They share one Redis link
//! when `[redis] url` is set, and live in this process otherwise.
//!
//! The pipeline calls in here from `admit` and `generate`; the decisions
//! (what a request is estimated at, what a refusal records, what the cache
//! keys on) are made here so that the pipeline's stages stay short.

use std::sync::Arc;

use uuid::Uuid;

use crate::cache::{CachePolicy, KeyParts, Lookup, ResponseCache};
use crate::config::Config;
use crate::dedupe::EventDedupe;
use crate::limits::{Admission, Clock, LimitError, Limiter, SystemClock, estimate_tokens};
use crate::pipeline::{Input, Request};
use crate::redis_link::{RedisError, RedisLink};
use crate::router::Router;
use crate::store::{InferenceRecord, Status, now_ms};
use crate::types::{ChatMessage, Params};

/// The cache, the limiter and event dedupe.
pub struct Guards {
    /// The response cache.
    pub cache: ResponseCache,
    /// Rate limits and budgets.
    pub limits: Limiter,
    /// Which platform events were handled.
    pub dedupe: Arc<EventDedupe>,
    /// The shared Redis, when configured.
    pub redis: Option<RedisLink>,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            cache: ResponseCache::default(),
            limits: Limiter::default(),
            dedupe: Arc::new(EventDedupe::new(None)),
            redis: None,
        }
    }
}

impl Guards {
    /// The guards `config` describes, on the system clock.
    pub fn from_config(config: &Config) -> Result<Guards, RedisError> {
        Guards::with_clock(config, Arc::new(SystemClock))
    }

    /// The guards `config` describes; limits read `clock`.
    pub fn with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Guards, RedisError> {
        let link = RedisLink::from_config(&config.redis)?;
        Ok(Guards {
            cache: ResponseCache::from_config(config, link.clone()),
            limits: Limiter::new(config.limits.clone(), link.clone(), clock),
            dedupe: Arc::new(EventDedupe::new(link.clone())),
            redis: link,
        })
    }

    /// Stage 1: admits `request` under the limits, reserving its estimated
    /// tokens.
    pub async fn admit(&self, request: &Request) -> Result<Admission, LimitError> {
        let chars: usize = match &request.input {
            Input::Chat(inbound) => {
                inbound.text.len()
                    + inbound
                        .history
                        .iter()
                        .map(|m| m.content.len())
                        .sum::<usize>()
            }
            Input::Messages { messages, .. } | Input::Prompt { messages, .. } => {
                messages.iter().map(|m| m.content.len()).sum()
            }
        };
        let tokens = estimate_tokens(
            chars,
            request.params.max_tokens,
            self.limits.estimate_output_tokens(),
        );
        self.limits.admit(&request.origin, tokens).await
    }

    /// The inference row of a refused request, so that refusals are counted
    /// with everything else.
    pub fn refusal_record(
        &self,
        id: Uuid,
        request: &Request,
        error: &LimitError,
    ) -> InferenceRecord {
        let (alias, input) = match &request.input {
            Input::Messages { alias, messages } => (alias.clone(), messages.clone()),
            Input::Prompt { name, messages, .. } => (format!("prompt:{name}"), messages.clone()),
            Input::Chat(inbound) => (
                String::new(),
                vec![ChatMessage::new(
                    crate::types::Role::User,
                    inbound.text.clone(),
                )],
            ),
        };
        InferenceRecord {
            id,
            created_at_ms: now_ms() - request.started.elapsed().as_millis() as i64,
            origin: request.origin.clone(),
            user_name: request.user_name(),
            prompt: None,
            prompt_label: None,
            purpose: request.purpose,
            alias,
            provider: None,
            model: None,
            input_tokens: None,
            output_tokens: None,
            ttft_ms: None,
            tpot_ms: None,
            total_ms: request.started.elapsed().as_secs_f64() * 1000.0,
            provider_ms: 0.0,
            cost_usd: None,
            cache_hit: false,
            tokens_saved: None,
            cost_saved_usd: None,
            streamed: request.stream,
            status: match error {
                LimitError::Limited { .. } => Status::Limited,
                LimitError::Unavailable(_) => Status::Error,
            },
            error: Some(error.to_string()),
            finish_reason: None,
            attempts: Vec::new(),
            params: request.params.clone(),
            input,
            output: None,
        }
    }

    /// Stage 6: what the cache does for this request, if anything.
    pub fn cache_plan(
        &self,
        router: &Router,
        request: &Request,
        alias: &str,
        prompt_policy: Option<&CachePolicy>,
        messages: &[ChatMessage],
        params: &Params,
    ) -> Option<Lookup> {
        let (targets, alias_params) = router.targets_of(alias)?;
        let params = params.clone().or(&alias_params);
        self.cache.plan(
            alias,
            prompt_policy,
            &request.cache,
            KeyParts {
                targets: &targets,
                params: &params,
                messages,
                stream: request.stream,
            },
        )
    }
}
