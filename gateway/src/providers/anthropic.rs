//! Anthropic Messages (`POST {base_url}/messages`). The system prompt goes
//! in its own field, `max_tokens` is required, and a stream is a sequence
//! of named events: `message_start`, `content_block_delta`,
//! `message_delta`, `message_stop` (plus `ping` and `error`).

use std::collections::VecDeque;

use super::sse::SseEvent;
use futures_util::future::BoxFuture;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::http::{HttpBase, SseProtocol, Step, event_stream};
use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest, Timeouts};
use crate::config::{HttpProviderConfig, Price};
use crate::domain::{Role, ToolCallDelta, ToolChoice, Usage};

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

    /// The request body: always streamed (see the OpenAI provider).
    fn body(&self, request: &ProviderRequest) -> Value {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        // Anthropic wants alternating turns: merge consecutive same-role ones
        // (a tool's result is a user turn of `tool_result` blocks).
        let mut messages: Vec<Value> = Vec::new();
        for m in request.messages.iter().filter(|m| m.role != Role::System) {
            let (role, content) = turn(m);
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let (Some(before), Value::String(more)) =
                        (last["content"].as_str(), &content)
                    {
                        last["content"] = json!(format!("{before}\n\n{more}"));
                    } else {
                        let mut merged = blocks(&last["content"]);
                        merged.extend(blocks(&content));
                        last["content"] = Value::Array(merged);
                    }
                }
                _ => messages.push(json!({"role": role, "content": content})),
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
        if !p.tools.is_empty() {
            body["tools"] = p
                .tools
                .iter()
                .map(|t| {
                    let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                    if let Some(d) = &t.description {
                        tool["description"] = json!(d);
                    }
                    tool
                })
                .collect();
        }
        if let Some(choice) = &p.tool_choice {
            body["tool_choice"] = match choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
            };
        }
        body["stream"] = json!(true);
        body
    }
}

/// Anthropic's error types that may pass if tried again.
fn retryable_kind(kind: &str) -> bool {
    matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error")
}

/// Anthropic's stream: named events, ending with `message_stop`.
struct Events {
    usage: Usage,
    /// The content block index of each `tool_use` block so far, in order:
    /// a call's position here is its index in Switchboard's terms.
    tool_blocks: Vec<u64>,
}

impl SseProtocol for Events {
    const END: &'static str = "`message_stop`";

    fn event(
        &mut self,
        provider: &str,
        event: &SseEvent<'_>,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Step, ProviderError> {
        let v: Value = serde_json::from_str(event.data).map_err(|e| ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("event `{}` is not JSON ({e})", event.event),
            retryable: false,
        })?;
        // The event name is in both the `event:` line and `type`.
        let name = match event.event {
            "" | "message" => v.get("type").and_then(Value::as_str).unwrap_or_default(),
            named => named,
        };
        match name {
            "message_start" => {
                let u = v.pointer("/message/usage");
                let count = |k: &str| {
                    u.and_then(|u| u.get(k))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                self.usage = Usage {
                    input_tokens: count("input_tokens"),
                    output_tokens: count("output_tokens"),
                };
            }
            "content_block_start"
                if v.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") =>
            {
                let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let field = |k: &str| {
                    v.pointer(&format!("/content_block/{k}"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                self.tool_blocks.push(block);
                out.push_back(ProviderEvent::ToolCall(ToolCallDelta {
                    index: (self.tool_blocks.len() - 1) as u32,
                    id: field("id"),
                    name: field("name"),
                    arguments: String::new(),
                }));
            }
            "content_block_delta" => {
                if let Some(text) = v.pointer("/delta/text").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    out.push_back(ProviderEvent::Delta(text.to_string()));
                }
                if let Some(json) = v.pointer("/delta/partial_json").and_then(Value::as_str) {
                    let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(index) = self.tool_blocks.iter().position(|b| *b == block) {
                        out.push_back(ProviderEvent::ToolCall(ToolCallDelta {
                            index: index as u32,
                            id: None,
                            name: None,
                            arguments: json.to_string(),
                        }));
                    }
                }
            }
            "message_delta" => {
                if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = n;
                }
                if let Some(n) = v.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.input_tokens = n;
                }
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push_back(ProviderEvent::Finish(finish_reason(reason)));
                }
            }
            "message_stop" => {
                out.push_back(ProviderEvent::Usage(self.usage));
                return Ok(Step::End);
            }
            "error" => {
                let message = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error");
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(ProviderError::Protocol {
                    provider: provider.to_string(),
                    message: format!("error in stream: {kind}: {message}"),
                    retryable: retryable_kind(kind),
                });
            }
            // ping, content_block_stop and future events.
            _ => {}
        }
        Ok(Step::Continue)
    }
}

/// Anthropic's stop reasons in OpenAI's words, which the rest of Switchboard uses.
fn finish_reason(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
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
            let response = self.http.post("/messages", &self.body(&request)).await?;
            let events = Events {
                usage: Usage::default(),
                tool_blocks: Vec::new(),
            };
            Ok(event_stream(&self.http.name, response, events))
        })
    }
}

/// A message as one Anthropic turn: its role and its content, plain text
/// where that says it all, else blocks (images, `tool_use` calls, a
/// `tool_result`).
fn turn(m: &crate::domain::ChatMessage) -> (&'static str, Value) {
    if m.role == Role::Tool {
        let result = json!({
            "type": "tool_result",
            "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
            "content": m.content,
        });
        return ("user", json!([result]));
    }
    let role = m.role.as_str();
    if m.images.is_empty() && m.tool_calls.is_empty() {
        return (role, json!(m.content));
    }
    let mut out = if m.images.is_empty() && m.content.is_empty() {
        Vec::new()
    } else {
        content_blocks(m)
    };
    out.extend(m.tool_calls.iter().map(|c| {
        // Anthropic takes the arguments as an object; text that is not one
        // (a model's malformed JSON, already answered with an error) goes
        // as an empty object.
        let input = serde_json::from_str::<Value>(&c.arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
    }));
    (role, Value::Array(out))
}

/// A message as Anthropic content blocks: its images (base64 `image`
/// blocks), then its text.
fn content_blocks(m: &crate::domain::ChatMessage) -> Vec<Value> {
    let mut out: Vec<Value> = m
        .images
        .iter()
        .map(|i| {
            json!({"type": "image", "source": {"type": "base64", "media_type": i.media_type, "data": i.base64}})
        })
        .collect();
    out.push(json!({"type": "text", "text": m.content}));
    out
}

/// Content already built (text or blocks) as blocks.
fn blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::Array(blocks) => blocks.clone(),
        other => vec![json!({"type": "text", "text": other.as_str().unwrap_or_default()})],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChatMessage, Image, Params};

    /// Images go as base64 `image` blocks before the question's text, and
    /// consecutive user turns still merge into one alternating turn.
    #[test]
    fn images_become_base64_blocks_before_the_text() {
        let config: HttpProviderConfig = toml::from_str("").expect("defaults");
        let provider = Anthropic::new("a", &config).expect("provider");
        let image = Image::from_bytes("image/jpeg", "cat.jpg", b"jpeg bytes").expect("jpeg");
        let mut question = ChatMessage::new(Role::User, "what is this?");
        question.images = vec![image.clone()];
        let request = ProviderRequest {
            model: "claude".into(),
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "earlier words"),
                question,
            ],
            params: Params::default(),
        };
        let body = provider.body(&request);
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "one merged user turn: {body}");
        assert_eq!(
            messages[0]["content"],
            json!([
                {"type": "text", "text": "earlier words"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": image.base64}},
                {"type": "text", "text": "what is this?"}
            ])
        );
        assert_eq!(body["system"], "Be brief.");
    }
}
