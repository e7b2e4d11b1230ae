//! Stage 7 for a prompt version with `tools = [...]`: the tool loop. The
//! model is offered the tools; when it calls some, Switchboard runs them
//! (several at once when it asks for several), hands back the results as
//! `tool` messages, and asks again, until the model answers in text.
//!
//! Bounded by `[tool_loop]`: `max_steps` model calls that may use tools
//! (then one more that may not, told to answer with what it has), each
//! call's timeout, and a total time. Every model call is charged to the
//! request's limits and recorded with the answer, and every tool call is
//! recorded ([`ToolCallRecord`]), counted in `/metrics` and traced as an
//! `execute_tool` span. A tool's output is data for the model: it goes in a
//! `tool` message, cut to `max_result_bytes`, never rendered as a template.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing::field::Empty;

use super::generate::{Failure, Run, Target};
use super::{Inner, Prepared};
use crate::domain::{
    Attempt, ChatMessage, Input, ReplyEvent, Request, Role, ToolCall, ToolCallRecord, ToolChoice,
    Usage,
};
use crate::tools::{CallContext, Offer, ToolError, ToolOutcome, Toolbox};

impl Inner {
    /// Answers `prepared` with its prompt's tools. The messages of the
    /// last model call (the tool turns included) replace the prepared ones,
    /// so that the row shows what the model saw.
    pub(super) async fn tool_loop(
        &self,
        request: &Request,
        prepared: &mut Prepared,
        run: &mut Run,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let Some(toolbox) = &self.options.tools else {
            tracing::warn!(prompt = ?prepared.prompt, "the prompt offers tools, but tools are not set up in this process; answering without them");
            return self
                .stream(
                    &prepared.alias,
                    &prepared.messages,
                    &prepared.params,
                    run,
                    tx,
                )
                .await;
        };
        run.server_tools = true;
        let limits = toolbox.limits().clone();
        let deadline = Instant::now() + Duration::from_millis(limits.total_timeout_ms);
        let offer = toolbox
            .offer(&prepared.tools)
            .instrument(tracing::info_span!("tools.offer"))
            .await;
        let mut messages = prepared.messages.clone();
        if !offer.unavailable.is_empty() {
            // The model is told, so that its answer can say so.
            note(
                &mut messages,
                &format!(
                    "Some tools are unavailable right now: {}. If the question needs them, say that they are unavailable.",
                    offer.unavailable.join("; ")
                ),
            );
        }
        let mut params = prepared.params.clone();
        params.tools = offer.specs.clone();
        params.tool_choice = match &prepared.tool_choice {
            _ if offer.is_empty() => None,
            Some(c) => Some(ToolChoice::parse(c)),
            None => None,
        };
        let history: &[ChatMessage] = match &request.input {
            Input::Chat(inbound) => &inbound.history,
            Input::Prompt { messages, .. } | Input::Messages { messages, .. } => messages,
        };
        let context = CallContext {
            viewer: crate::knowledge::Viewer::of(&request.origin),
            history,
        };
        let mut replay = request.replay_tools.as_deref().map(|r| Replay {
            left: r.iter().map(|t| Some(t.clone())).collect(),
        });
        let asking = Asking {
            asker: request.origin.user.clone(),
            can_ask: matches!(&request.input, Input::Chat(inbound) if inbound.confirms),
            wait: Duration::from_millis(limits.confirm_timeout_ms),
        };
        let mut attempts = Vec::new();
        let mut target = None;
        let mut unusable_arguments = 0;
        let mut step = 0;
        let outcome = loop {
            step += 1;
            // The last step may not call tools: after max_steps, or once
            // the total time is up, the model answers with what it has.
            let last = step > limits.max_steps || Instant::now() >= deadline;
            if last && !offer.is_empty() {
                params.tool_choice = Some(ToolChoice::None);
                note(
                    &mut messages,
                    if step > limits.max_steps {
                        "You have used all the tool calls this answer may make. Answer now with what you have, and say what you could not find out."
                    } else {
                        "There is no time left for more tool calls. Answer now with what you have, and say what you could not find out."
                    },
                );
            }
            // Every model call of the loop is charged to the request's
            // limits: the first by the request's own admission, each later
            // one by its own.
            let step_admission = if step > 1 {
                let estimate = crate::guards::limits::estimate_tokens(
                    messages.iter().map(|m| m.content.len()).sum(),
                    params.max_tokens,
                    self.guards.limits.estimate_output_tokens(),
                );
                match self.guards.limits.admit(&request.origin, estimate).await {
                    Ok(a) => Some(a),
                    Err(e) => {
                        break Err(Failure::Failed {
                            message: format!(
                                "the answer stopped after {} tool step(s): {e}",
                                step - 1
                            ),
                            upstream_status: Some(429),
                            partial: !run.text.is_empty(),
                        });
                    }
                }
            } else {
                None
            };
            let text_before = run.text.len();
            let usage_before = run.usage.take();
            let (result, answered, mut tried) = self
                .stream(&prepared.alias, &messages, &params, run, tx)
                .await;
            attempts.append(&mut tried);
            if answered.is_some() {
                target = answered;
            }
            run.last_step_tpot = step_tpot(run, text_before);
            if let Some(admission) = step_admission {
                let step = run.usage.unwrap_or_default();
                let tokens = step.input_tokens + step.output_tokens;
                let cost = target
                    .as_ref()
                    .and_then(|t: &Target| t.2)
                    .map_or(0.0, |p| p.cost(step.input_tokens, step.output_tokens));
                self.guards.limits.settle(admission, tokens, cost).await;
                run.settled_by_steps.0 += tokens;
                run.settled_by_steps.1 += cost;
            }
            run.usage = add(usage_before, run.usage);
            if let Err(f) = result {
                break Err(f);
            }
            let calls = run.tool_calls.take();
            if calls.is_empty() {
                break Ok(());
            }
            if last {
                // It called tools when told not to: what it said stands.
                tracing::warn!(
                    step,
                    "the model called tools after its last step; they were not run"
                );
                if run.text.trim().is_empty() {
                    break Err(Failure::Failed {
                        message: format!(
                            "the model kept calling tools and gave no answer after {} steps ([tool_loop] max_steps)",
                            limits.max_steps
                        ),
                        upstream_status: None,
                        partial: false,
                    });
                }
                break Ok(());
            }
            let said = run.text[text_before..].to_string();
            messages.push(ChatMessage::calling(said.clone(), calls.clone()));
            if !said.trim().is_empty() {
                // The next step's text starts a paragraph of its own.
                run.text.push_str("\n\n");
                if tx.send(ReplyEvent::Token("\n\n".into())).await.is_err() {
                    break Err(Failure::Cancelled);
                }
            }
            let outcomes = match &mut replay {
                Some(replay) => Some(
                    calls
                        .iter()
                        .map(|c| (replay.answer(c, &offer), None))
                        .collect(),
                ),
                None => {
                    self.run_calls(toolbox, &offer, &calls, &context, &asking, tx, deadline)
                        .await
                }
            };
            let Some(outcomes) = outcomes else {
                break Err(Failure::Cancelled);
            };
            let mut failure = None;
            for (call, (outcome, approval)) in calls.iter().zip(outcomes) {
                if let Some(ToolError::Arguments { message, .. }) = &outcome.error {
                    unusable_arguments += 1;
                    // Told once; a second time the answer fails, clearly.
                    if unusable_arguments > 1 && failure.is_none() {
                        failure = Some(Failure::Failed {
                            message: format!(
                                "the model sent unusable arguments for `{}` again: {message}",
                                call.name
                            ),
                            upstream_status: None,
                            partial: !run.text.is_empty(),
                        });
                    }
                }
                run.tool_runs.push(ToolCallRecord {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    step,
                    arguments: call.arguments.clone(),
                    result_bytes: outcome.bytes,
                    truncated: outcome.truncated,
                    ms: outcome.ms,
                    error: outcome.error.as_ref().map(ToString::to_string),
                    approval: approval.map(str::to_string),
                });
                messages.push(ChatMessage::tool_result(call.id.clone(), outcome.text));
            }
            if let Some(f) = failure {
                break Err(f);
            }
        };
        prepared.messages = messages;
        prepared.params = params;
        (outcome, target, attempts)
    }

    /// Runs one step's calls, all at once, each in its `execute_tool`
    /// span (a tool that asks first is asked about, and run only when
    /// approved), with how its approval went; `None` when the caller went
    /// away.
    #[allow(clippy::too_many_arguments)]
    async fn run_calls(
        &self,
        toolbox: &Toolbox,
        offer: &Offer,
        calls: &[ToolCall],
        context: &CallContext<'_>,
        asking: &Asking,
        tx: &mpsc::Sender<ReplyEvent>,
        deadline: Instant,
    ) -> Option<Vec<(ToolOutcome, Option<&'static str>)>> {
        for call in calls {
            tx.send(ReplyEvent::UsingTool(call.name.clone()))
                .await
                .ok()?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let runs = calls.iter().map(|call| {
            let span = tracing::info_span!(
                "execute_tool",
                otel.name = %format_args!("execute_tool {}", call.name),
                otel.kind = "internal",
                otel.status_code = Empty,
                gen_ai.operation.name = "execute_tool",
                gen_ai.tool.name = call.name.as_str(),
                gen_ai.tool.call.id = call.id.as_str(),
                gen_ai.tool.type = "function",
                gen_ai.tool.call.arguments = Empty,
                gen_ai.tool.call.result = Empty,
                "error.type" = Empty,
            );
            if self.options.capture_content {
                span.record("gen_ai.tool.call.arguments", call.arguments.as_str());
            }
            let metrics = self.metrics.clone();
            let capture = self.options.capture_content;
            async move {
                let approval = if offer.needs_approval(&call.name) {
                    Some(self.approval(call, asking, tx).await)
                } else {
                    None
                };
                let outcome = match approval {
                    Some(how @ ("denied" | "timed_out" | "not_asked")) => refused(call, how),
                    _ => match tokio::time::timeout(left, toolbox.call(offer, call, context)).await
                    {
                        Ok(o) => o,
                        Err(_) => {
                            let e = ToolError::Timeout {
                                tool: call.name.clone(),
                                ms: left.as_millis() as u64,
                            };
                            let mut o = ToolOutcome::failed(e, left.as_secs_f64() * 1000.0);
                            o.text
                                .push_str(" (the answer's [tool_loop] total_timeout_ms)");
                            o
                        }
                    },
                };
                let span = tracing::Span::current();
                match &outcome.error {
                    Some(e) => {
                        span.record("otel.status_code", "error");
                        span.record("error.type", e.kind());
                        // A failed tool's own text may carry its output: it
                        // is logged only where content is captured.
                        if capture || !matches!(e, ToolError::Failed { .. }) {
                            tracing::warn!(tool = %call.name, error = %e, "tool call gave no result");
                        } else {
                            tracing::warn!(tool = %call.name, error.type = e.kind(), "tool call gave no result");
                        }
                    }
                    None if capture => {
                        span.record("gen_ai.tool.call.result", outcome.text.as_str());
                    }
                    None => {}
                }
                metrics.tool_call(
                    &call.name,
                    outcome.error.as_ref().map_or("ok", ToolError::kind),
                    outcome.ms / 1000.0,
                );
                (outcome, approval)
            }
            .instrument(span)
        });
        Some(join_all(runs).await)
    }

    /// Asks the asker about `call` and waits: `approved`, `denied`,
    /// `timed_out`, or `not_asked` where the front end cannot ask.
    async fn approval(
        &self,
        call: &ToolCall,
        asking: &Asking,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> &'static str {
        if !asking.can_ask {
            return "not_asked";
        }
        let (id, answer) = self.approvals.ask(asking.asker.clone());
        let request = crate::domain::ApprovalRequest {
            id: id.clone(),
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
        };
        if tx.send(ReplyEvent::Approval(request)).await.is_err() {
            self.approvals.forget(&id);
            return "not_asked";
        }
        let how = match tokio::time::timeout(asking.wait, answer).await {
            Ok(Ok(true)) => "approved",
            Ok(Ok(false)) => "denied",
            Ok(Err(_)) | Err(_) => "timed_out",
        };
        self.approvals.forget(&id);
        how
    }
}

/// A logged answer's tool results, given out once each to the replay's
/// calls (`switchboard eval --replay-tools`): nothing runs.
struct Replay {
    left: Vec<Option<crate::domain::RecordedToolResult>>,
}

impl Replay {
    /// The recorded result for `call`: the one with its tool and the same
    /// arguments (as JSON), else the next one of its tool; else an error
    /// result saying the logged answer made no such call.
    fn answer(&mut self, call: &ToolCall, offer: &Offer) -> ToolOutcome {
        let same = |a: &str, b: &str| match (
            serde_json::from_str::<serde_json::Value>(a),
            serde_json::from_str::<serde_json::Value>(b),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => a.trim() == b.trim(),
        };
        let found = self
            .left
            .iter()
            .position(|r| {
                r.as_ref()
                    .is_some_and(|r| r.name == call.name && same(&r.arguments, &call.arguments))
            })
            .or_else(|| {
                self.left
                    .iter()
                    .position(|r| r.as_ref().is_some_and(|r| r.name == call.name))
            });
        match found.and_then(|i| self.left[i].take()) {
            Some(r) => ToolOutcome {
                bytes: r.result.len() as u64,
                text: r.result,
                error: None,
                truncated: false,
                ms: 0.0,
            },
            None => {
                let e = if offer.offers(&call.name) {
                    ToolError::Unavailable {
                        server: call.name.clone(),
                        reason: "replaying with recorded results (--replay-tools), and the logged answer has no result for this call".into(),
                    }
                } else {
                    offer.unknown(&call.name)
                };
                ToolOutcome::failed(e, 0.0)
            }
        }
    }
}

/// Who is asked about a tool that asks first, whether they can be, and for
/// how long.
struct Asking {
    asker: Option<crate::domain::User>,
    can_ask: bool,
    wait: Duration,
}

/// The result the model gets for a call that was not approved: it never ran.
fn refused(call: &ToolCall, how: &str) -> ToolOutcome {
    let why = match how {
        "denied" => "the asker denied it",
        "timed_out" => "the asker did not approve it in time",
        _ => "it needs the asker's approval, which cannot be asked for here",
    };
    let e = ToolError::NotApproved {
        tool: call.name.clone(),
        why: why.into(),
    };
    ToolOutcome::failed(e, 0.0)
}

/// Adds a system note for the model after the prompt's own system
/// messages.
fn note(messages: &mut Vec<ChatMessage>, text: &str) {
    let at = messages
        .iter()
        .position(|m| m.role != Role::System)
        .unwrap_or(messages.len());
    messages.insert(at, ChatMessage::new(Role::System, text));
}

/// Token counts of two steps, added.
fn add(a: Option<Usage>, b: Option<Usage>) -> Option<Usage> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Usage {
            input_tokens: a.input_tokens + b.input_tokens,
            output_tokens: a.output_tokens + b.output_tokens,
        }),
        (a, b) => a.or(b),
    }
}

/// The last step's time per output token, from its first piece to its
/// last, when it wrote text.
fn step_tpot(run: &Run, text_before: usize) -> Option<f64> {
    let (first, last, usage) = (run.step_first_token?, run.last_token?, run.usage?);
    if run.text.len() == text_before || usage.output_tokens < 2 {
        return None;
    }
    Some(last.duration_since(first).as_secs_f64() * 1000.0 / (usage.output_tokens - 1) as f64)
}
