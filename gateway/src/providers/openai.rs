//! OpenAI Chat Completions (`POST {base_url}/chat/completions`), which is
//! also what Ollama, vLLM, llama.cpp's server, OpenRouter, Groq and Azure
//! OpenAI speak. Streaming asks for usage with
//! `stream_options.include_usage` and ends at `data: [DONE]`.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::sse::SseEvent;
use futures_util::future::BoxFuture;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{HttpBase, SseProtocol, Step, event_stream};
use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest, Timeouts};
use crate::config::{HttpProviderConfig, Price};
use crate::domain::{ToolCallDelta, ToolChoice, ToolSpec, Usage};

/// The HTTP endpoint of an OpenAI-compatible `[providers.NAME]`: its base
/// URL (OpenAI's by default) and its key as a Bearer token.
pub(super) fn openai_base(
    name: &str,
    config: &HttpProviderConfig,
) -> Result<HttpBase, ProviderError> {
    HttpBase::new(
        name,
        config,
        "https://api.openai.com/v1",
        |key| (AUTHORIZATION, format!("Bearer {key}")),
        &[],
    )
}

/// The OpenAI-compatible provider.
pub struct OpenAi {
    http: HttpBase,
}

impl OpenAi {
    /// Builds the provider from its `[providers.NAME]` table.
    pub fn new(name: &str, config: &HttpProviderConfig) -> Result<OpenAi, ProviderError> {
        Ok(OpenAi {
            http: openai_base(name, config)?,
        })
    }

    /// The request body: always streamed (a plain answer is aggregated from
    /// the stream, so its TTFT and TPOT are real).
    fn body<'a>(&self, request: &'a ProviderRequest) -> Body<'a> {
        let p = &request.params;
        Body {
            model: &request.model,
            messages: request
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: content(m),
                    tool_calls: m
                        .tool_calls
                        .iter()
                        .map(|c| WireToolCall {
                            id: &c.id,
                            kind: "function",
                            function: WireFunctionCall {
                                name: &c.name,
                                arguments: &c.arguments,
                            },
                        })
                        .collect(),
                    tool_call_id: m.tool_call_id.as_deref(),
                })
                .collect(),
            tools: p
                .tools
                .iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: t,
                })
                .collect(),
            tool_choice: p.tool_choice.as_ref().map(tool_choice),
            temperature: p.temperature,
            top_p: p.top_p,
            max_tokens: p.max_tokens,
            stop: &p.stop,
            seed: p.seed,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        }
    }
}

/// A Chat Completions request, serialized straight from the request's
/// own fields.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    stream: bool,
    stream_options: StreamOptions,
}

/// A tool offered: `{"type": "function", "function": {name, description,
/// parameters, strict}}`.
#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: &'a ToolSpec,
}

/// A call an earlier assistant message made.
#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// `tool_choice` in OpenAI's words.
fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A message's `content`: its text, or the documented array of parts.
#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<Value>),
    /// `null`: an assistant message that only called tools.
    Null(()),
}

/// One stream chunk, read without copying what it does not need.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    /// Read leniently, as a value: a server that sends something other
    /// than an object here has still sent the answer.
    #[serde(default)]
    usage: Option<Value>,
    /// An `{"error": …}` inside a 200 stream (rare: kept as a value).
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<ChunkDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ChunkToolCall<'a>>>,
}

/// A piece of a streamed tool call: `{index, id?, type?, function: {name?,
/// arguments?}}`.
#[derive(Deserialize)]
struct ChunkToolCall<'a> {
    #[serde(default)]
    index: u32,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<ChunkFunction<'a>>,
}

#[derive(Deserialize)]
struct ChunkFunction<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// The `error` of an `{"error": …}` object inside a 200 stream.
fn inline_error(provider: &str, e: &Value) -> ProviderError {
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
    ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("error in answer: {message}"),
        retryable: matches!(
            kind,
            "server_error" | "overloaded_error" | "rate_limit_error"
        ),
    }
}

/// The events in one stream chunk; whether it finished the answer.
fn chunk_events(chunk: Chunk<'_>, out: &mut VecDeque<ProviderEvent>) -> bool {
    let mut finished = false;
    if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content
                && !text.is_empty()
            {
                out.push_back(ProviderEvent::Delta(text.into_owned()));
            }
            for call in delta.tool_calls.into_iter().flatten() {
                let (name, arguments) = match call.function {
                    Some(f) => (f.name, f.arguments),
                    None => (None, None),
                };
                out.push_back(ProviderEvent::ToolCall(ToolCallDelta {
                    index: call.index,
                    id: call.id.map(Cow::into_owned),
                    name: name.map(Cow::into_owned),
                    arguments: arguments.map(Cow::into_owned).unwrap_or_default(),
                }));
            }
        }
        if let Some(reason) = choice.finish_reason {
            out.push_back(ProviderEvent::Finish(reason.into_owned()));
            finished = true;
        }
    }
    if let Some(u) = chunk.usage.as_ref().filter(|u| u.is_object()) {
        let count = |name| u.get(name).and_then(Value::as_u64).unwrap_or(0);
        out.push_back(ProviderEvent::Usage(Usage {
            input_tokens: count("prompt_tokens"),
            output_tokens: count("completion_tokens"),
        }));
    }
    finished
}

/// OpenAI's stream: JSON chunks, then `data: [DONE]`.
struct Chunks {
    /// A `finish_reason` was seen: a server that then closes without
    /// `[DONE]` (some compatible servers do) has still finished.
    finished: bool,
}

impl SseProtocol for Chunks {
    const END: &'static str = "`data: [DONE]`";

    fn event(
        &mut self,
        provider: &str,
        event: &SseEvent<'_>,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Step, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Step::End);
        }
        if data.is_empty() {
            return Ok(Step::Continue);
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|e| ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("stream chunk is not a Chat Completions chunk ({e}): {data:.200}"),
            retryable: false,
        })?;
        if let Some(err) = chunk.error.as_ref().map(|e| inline_error(provider, e)) {
            return Err(err);
        }
        if chunk_events(chunk, out) {
            self.finished = true;
        }
        Ok(Step::Continue)
    }

    fn may_end(&self) -> bool {
        self.finished
    }
}

impl Provider for OpenAi {
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
                .post("/chat/completions", &self.body(&request))
                .await?;
            Ok(event_stream(
                &self.http.name,
                response,
                Chunks { finished: false },
            ))
        })
    }
}

/// A message's `content`: its text, or with images the documented array
/// of `text` and `image_url` parts (images as `data:` URLs).
fn content(m: &crate::domain::ChatMessage) -> WireContent<'_> {
    if m.content.is_empty() && !m.tool_calls.is_empty() {
        return WireContent::Null(());
    }
    if m.images.is_empty() {
        return WireContent::Text(&m.content);
    }
    let mut parts = vec![json!({"type": "text", "text": m.content})];
    parts.extend(
        m.images
            .iter()
            .map(|i| json!({"type": "image_url", "image_url": {"url": i.data_url()}})),
    );
    WireContent::Parts(parts)
}
