//! Anthropic Messages (`POST {base_url}/messages`). The system prompt goes
//! in its own field, `max_tokens` is required, and a stream is a sequence
//! of named events: `message_start`, `content_block_delta`,
//! `message_delta`, `message_stop` (plus `ping` and `error`).

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::http::{HttpBase, sse};
use super::{
    Completion, EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest, Timeouts,
};
use crate::config::{HttpProviderConfig, Price};
use crate::types::{Role, Usage};

/// The API version this file speaks.
const API_VERSION: &str = "2023-06-01";

/// The Anthropic provider.
pub struct Anthropic {
    http: HttpBase,
}

impl Anthropic {
    /// Builds the provider from its `[providers.NAME]` table.
    pub fn new(name: &str, config: &HttpProviderConfig) -> Result<Anthropic, ProviderError> {
        let http = HttpBase::new(
            name,
            config,
            "https://api.anthropic.com/v1",
            |key| (HeaderName::from_static("x-api-key"), key.to_string()),
            &[("anthropic-version", API_VERSION)],
        )?;
        Ok(Anthropic { http })
    }

    fn body(&self, request: &ProviderRequest, stream: bool) -> Value {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        // Anthropic wants alternating turns: merge consecutive same-role ones.
        let mut messages: Vec<Value> = Vec::new();
        for m in request.messages.iter().filter(|m| m.role != Role::System) {
            let role = m.role.as_str();
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    let merged = format!(
                        "{}\n\n{}",
                        last["content"].as_str().unwrap_or_default(),
                        m.content
                    );
                    last["content"] = json!(merged);
                }
                _ => messages.push(json!({"role": role, "content": m.content})),
            }
        }
        let p = &request.params;
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "max_tokens": p.max_tokens.unwrap_or(self.http.default_max_tokens),
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = p.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(t) = p.top_p {
            body["top_p"] = json!(t);
        }
        if !p.stop.is_empty() {
            body["stop_sequences"] = json!(p.stop);
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }
}

/// Anthropic's error types that may pass if tried again.
fn retryable_kind(kind: &str) -> bool {
    matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error")
}

/// Stream state: what has been seen so far.
struct State<S> {
    events: S,
    pending: VecDeque<ProviderEvent>,
    usage: Usage,
    stopped: bool,
    done: bool,
    name: String,
}

impl<S> State<S> {
    fn fail(&mut self, message: String, retryable: bool) -> ProviderError {
        self.done = true;
        ProviderError::Protocol {
            provider: self.name.clone(),
            message,
            retryable,
        }
    }

    /// Handles one event; returns an error to end the stream with.
    fn handle(&mut self, name: &str, v: &Value) -> Option<ProviderError> {
        match name {
            "message_start" => {
                let u = v.pointer("/message/usage");
                self.usage.input_tokens = u
                    .and_then(|u| u.get("input_tokens"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                self.usage.output_tokens = u
                    .and_then(|u| u.get("output_tokens"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
            }
            "content_block_delta" => {
                if let Some(text) = v.pointer("/delta/text").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    self.pending
                        .push_back(ProviderEvent::Delta(text.to_string()));
                }
            }
            "message_delta" => {
                if let Some(out) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = out;
                }
                if let Some(input) = v.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.input_tokens = input;
                }
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.pending
                        .push_back(ProviderEvent::Finish(finish_reason(reason)));
                }
            }
            "message_stop" => {
                self.pending.push_back(ProviderEvent::Usage(self.usage));
                self.stopped = true;
                self.done = true;
            }
            "error" => {
                let message = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string();
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Some(self.fail(
                    format!("error in stream: {kind}: {message}"),
                    retryable_kind(kind),
                ));
            }
            // ping, content_block_start, content_block_stop and future events.
            _ => {}
        }
        None
    }
}

/// Anthropic's stop reasons in OpenAI's words, which the rest of Switchboard uses.
fn finish_reason(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        other => other,
    }
    .to_string()
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.http.name
    }

    fn timeouts(&self) -> Timeouts {
        self.http.timeouts
    }

    fn price(&self, model: &str) -> Option<Price> {
        self.http.prices.get(model).copied()
    }

    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'_, Result<EventStream, ProviderError>> {
        Box::pin(async move {
            let response = self
                .http
                .post("/messages", &self.body(&request, true))
                .await?;
            let state = State {
                events: Box::pin(sse(&self.http.name, response)),
                pending: VecDeque::new(),
                usage: Usage::default(),
                stopped: false,
                done: false,
                name: self.http.name.clone(),
            };
            let s = stream::unfold(state, |mut st| async move {
                loop {
                    if let Some(ev) = st.pending.pop_front() {
                        return Some((Ok(ev), st));
                    }
                    if st.done {
                        return None;
                    }
                    match st.events.next().await {
                        None => {
                            st.done = true;
                            if !st.stopped {
                                let err = ProviderError::Cut {
                                    provider: st.name.clone(),
                                    message: "the stream ended before `message_stop`".into(),
                                };
                                return Some((Err(err), st));
                            }
                        }
                        Some(Err(e)) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                        Some(Ok(event)) => {
                            let v: Value = match serde_json::from_str(&event.data) {
                                Ok(v) => v,
                                Err(e) => {
                                    let err = st.fail(
                                        format!("event `{}` is not JSON ({e})", event.event),
                                        false,
                                    );
                                    return Some((Err(err), st));
                                }
                            };
                            // The event name is in both the `event:` line and `type`.
                            let name = if event.event.is_empty() || event.event == "message" {
                                v.get("type")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_string()
                            } else {
                                event.event.clone()
                            };
                            if let Some(err) = st.handle(&name, &v) {
                                return Some((Err(err), st));
                            }
                        }
                    }
                }
            });
            Ok(s.boxed())
        })
    }

    fn complete(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'_, Result<Completion, ProviderError>> {
        Box::pin(async move {
            let response = self
                .http
                .post("/messages", &self.body(&request, false))
                .await?;
            let v = self.http.json(response).await?;
            if v.get("type").and_then(Value::as_str) == Some("error") {
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(ProviderError::Protocol {
                    provider: self.http.name.clone(),
                    message: format!(
                        "error in answer: {kind}: {}",
                        v.pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error")
                    ),
                    retryable: retryable_kind(kind),
                });
            }
            let text: String = v
                .get("content")
                .and_then(Value::as_array)
                .ok_or_else(|| self.http.protocol("answer has no `content`".into()))?
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            let usage = v.get("usage").map(|u| Usage {
                input_tokens: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
                output_tokens: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
            });
            Ok(Completion {
                text,
                usage,
                finish_reason: finish_reason(
                    v.get("stop_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("end_turn"),
                ),
            })
        })
    }
}
