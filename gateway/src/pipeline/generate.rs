//! Stage 7, generate: the answer streamed from the route's targets to the
//! caller (or asked for whole), with what happened collected for the
//! summary and the row; on its own task, so the caller only reads the
//! reply stream.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Inner, Prepared};
use crate::domain::{
    Attempt, Input, Purpose, ReplyEvent, Request, Summary, ToolCallRecord, ToolCalls, Usage, now_ms,
};
use crate::guards::cache::CachedAnswer;
use crate::guards::limits::Admission;
use crate::pipeline::route::RouteError;
use crate::providers::{ProviderError, ProviderEvent};

/// Collects what happened while generating, for the summary and the row.
#[derive(Default)]
pub(super) struct Run {
    pub(super) text: String,
    /// The text as it arrived, for the cache.
    pub(super) chunks: Vec<String>,
    pub(super) usage: Option<Usage>,
    pub(super) finish: Option<String>,
    pub(super) first_token: Option<Instant>,
    pub(super) last_token: Option<Instant>,
    pub(super) provider_wait: Duration,
    /// The tool calls of the answer, put together from their pieces.
    pub(super) tool_calls: ToolCalls,
    /// The tools Switchboard ran for the answer.
    pub(super) tool_runs: Vec<ToolCallRecord>,
    /// Tool calls are Switchboard's to run (a prompt's `tools`): they are
    /// kept from the caller, and only text counts as the first token.
    pub(super) server_tools: bool,
    /// Model calls made for the answer (more than one with tools).
    pub(super) steps: u32,
    /// With more than one step: the time per output token of the last.
    pub(super) last_step_tpot: Option<f64>,
    /// The first piece of the current step.
    pub(super) step_first_token: Option<Instant>,
    /// Tokens and cost of the tool loop's later model calls, each admitted
    /// and settled against the limits by the loop itself.
    pub(super) settled_by_steps: (u64, f64),
}

impl Inner {
    /// Stages 5–8, on a task of their own: the cache or the route's
    /// targets answer, the limits are settled with what was used, the row
    /// is recorded, and the caller hears the end.
    pub(super) async fn generate(
        &self,
        id: Uuid,
        request: Request,
        mut prepared: Prepared,
        admission: Admission,
        tx: mpsc::Sender<ReplyEvent>,
    ) {
        let mut run = Run::default();
        // A prompt that runs tools is never answered from the cache: its
        // tools' results (the time, a search) may have changed.
        let (lookup, hit) = if prepared.tools.is_empty() {
            self.cache_lookup(&request, &prepared).await
        } else {
            (None, None)
        };
        let (outcome, target, attempts) = if let Some(hit) = &hit {
            run.replay(hit, &tx).await
        } else if !prepared.tools.is_empty() {
            self.tool_loop(&request, &mut prepared, &mut run, &tx).await
        } else {
            // Streamed from the provider even when the caller asked for a
            // plain answer (the API gathers the tokens): TTFT and TPOT are
            // then real for every answer, and the first-token timeout and
            // fallback apply to plain requests too.
            self.stream(
                &prepared.alias,
                &prepared.messages,
                &prepared.params,
                &mut run,
                &tx,
            )
            .await
        };
        let figures = Figures::of(&request, &run, target.as_ref(), hit.as_deref());
        // An answer that calls tools is not kept: a replay would have to
        // call them again.
        if let (Some(lookup), None, Ok(()), Some(target), true) = (
            &lookup,
            &hit,
            &outcome,
            &target,
            run.tool_calls.is_empty() && run.tool_runs.is_empty(),
        ) {
            self.cache_store(lookup, &mut run, target, figures.cost_usd)
                .await;
        }
        let used = match (&hit, run.usage) {
            (None, Some(u)) => u.input_tokens + u.output_tokens,
            _ => 0,
        };
        // The tool loop's later model calls were admitted and settled on
        // their own: this admission answers for the rest.
        let (loop_tokens, loop_cost) = run.settled_by_steps;
        self.guards
            .limits
            .settle(
                admission,
                used.saturating_sub(loop_tokens),
                (figures.cost_usd.unwrap_or(0.0) - loop_cost).max(0.0),
            )
            .await;
        if let Some(retrieval) = &mut prepared.retrieval {
            retrieval.mark_cited(&run.text);
        }
        let summary = Summary {
            inference_id: id,
            alias: prepared.alias.clone(),
            target: target.as_ref().map(|t| format!("{}/{}", t.0, t.1)),
            model: target.as_ref().map(|t| t.1.clone()),
            prompt: prepared.prompt.clone(),
            usage: run.usage,
            ttft_ms: figures.ttft_ms,
            tpot_ms: figures.tpot_ms,
            total_ms: figures.total_ms,
            provider_ms: figures.provider_ms,
            cost_usd: figures.cost_usd,
            finish_reason: run.finish.clone(),
            attempts: attempts.len(),
            citations: prepared
                .retrieval
                .as_ref()
                .map(|r| r.citations())
                .unwrap_or_default(),
            retrieval: prepared.retrieval.clone(),
            tool_calls: run.tool_calls.calls().to_vec(),
            tool_runs: run.tool_runs.clone(),
        };
        let ended = Ended {
            outcome: &outcome,
            target: target.as_ref(),
            attempts,
            hit: hit.as_deref(),
            figures: &figures,
        };
        // The row goes to the recorder before the caller hears the end, so a
        // caller that acts on the inference id (feedback) finds it queued.
        self.record_answer(id, &request, prepared, &run, ended)
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
    pub(super) async fn stream(
        &self,
        alias: &str,
        messages: &[crate::domain::ChatMessage],
        params: &crate::domain::Params,
        run: &mut Run,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let waited = Instant::now();
        run.step_first_token = None;
        let opened = self.router.open(alias, messages, params).await;
        run.provider_wait += waited.elapsed();
        let mut opened = match opened {
            Ok(o) => o,
            Err(e) => {
                let attempts = e.attempts().to_vec();
                return (Err(Failure::from_route(&e)), None, attempts);
            }
        };
        let target = Some((opened.provider.clone(), opened.model.clone(), opened.price));
        // Started once per answer, however many model steps it takes.
        if run.steps == 0 {
            let started = ReplyEvent::Started {
                target: opened.target.clone(),
                provider_ms: run.provider_wait.as_secs_f64() * 1000.0,
            };
            if tx.send(started).await.is_err() {
                return (Err(Failure::Cancelled), target, opened.attempts);
            }
        }
        run.steps += 1;
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
}

/// (provider, model, price) of the target that answered.
pub(super) type Target = (String, String, Option<crate::config::Price>);

impl Run {
    /// Takes one provider event; sends text on to the caller.
    pub(super) async fn apply(
        &mut self,
        event: ProviderEvent,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> Result<(), Failure> {
        match event {
            ProviderEvent::Delta(text) => {
                let now = Instant::now();
                self.first_token.get_or_insert(now);
                self.step_first_token.get_or_insert(now);
                self.last_token = Some(now);
                self.text.push_str(&text);
                self.chunks.push(text.clone());
                tx.send(ReplyEvent::Token(text))
                    .await
                    .map_err(|_| Failure::Cancelled)?;
            }
            ProviderEvent::ToolCall(delta) if self.server_tools => {
                let now = Instant::now();
                self.step_first_token.get_or_insert(now);
                self.last_token = Some(now);
                self.tool_calls.push(&delta);
            }
            ProviderEvent::ToolCall(delta) => {
                let now = Instant::now();
                self.first_token.get_or_insert(now);
                self.last_token = Some(now);
                self.tool_calls.push(&delta);
                tx.send(ReplyEvent::ToolCall(delta))
                    .await
                    .map_err(|_| Failure::Cancelled)?;
            }
            ProviderEvent::Usage(u) => self.usage = Some(u),
            ProviderEvent::Finish(reason) => self.finish = Some(reason),
        }
        Ok(())
    }
}

/// The latency and cost figures of one answer, as the summary and the row
/// report them.
pub(super) struct Figures {
    pub(super) total_ms: f64,
    pub(super) ttft_ms: Option<f64>,
    pub(super) tpot_ms: Option<f64>,
    pub(super) provider_ms: f64,
    pub(super) cost_usd: Option<f64>,
}

impl Figures {
    /// The figures of `run` for `request`, answered by `target` (at its
    /// price) or from the cache (`hit`: free).
    fn of(
        request: &Request,
        run: &Run,
        target: Option<&Target>,
        hit: Option<&CachedAnswer>,
    ) -> Figures {
        let ttft_ms = run
            .first_token
            .map(|t| t.duration_since(request.started).as_secs_f64() * 1000.0);
        let tpot_ms = match (run.first_token, run.last_token, run.usage) {
            // Across tool calls the gaps are the tools' time, not the
            // model's: the last step's own pace is the figure.
            _ if run.steps > 1 => run.last_step_tpot,
            (Some(first), Some(last), Some(u)) if u.output_tokens > 1 => Some(
                last.duration_since(first).as_secs_f64() * 1000.0 / (u.output_tokens - 1) as f64,
            ),
            _ => None,
        };
        let price = target.and_then(|t| t.2);
        let cost_usd = match (price, run.usage) {
            (Some(p), Some(u)) => Some(p.cost(u.input_tokens, u.output_tokens)),
            _ if hit.is_some() => Some(0.0),
            _ => None,
        };
        Figures {
            total_ms: request.started.elapsed().as_secs_f64() * 1000.0,
            ttft_ms,
            tpot_ms,
            provider_ms: run.provider_wait.as_secs_f64() * 1000.0,
            cost_usd,
        }
    }
}

/// How an answer ended, for its row.
pub(super) struct Ended<'a> {
    pub(super) outcome: &'a Result<(), Failure>,
    pub(super) target: Option<&'a Target>,
    pub(super) attempts: Vec<Attempt>,
    pub(super) hit: Option<&'a CachedAnswer>,
    pub(super) figures: &'a Figures,
}

/// How a generation ended badly.
pub(super) enum Failure {
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
