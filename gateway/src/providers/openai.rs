//! OpenAI Chat Completions (`POST {base_url}/chat/completions`), which is
//! also what Ollama, vLLM, llama.cpp's server, OpenRouter, Groq and Azure
//! OpenAI speak. Streaming asks for usage with
//! `stream_options.include_usage` and ends at `data: [DONE]`.

use std::collections::VecDeque;

use eventsource_stream::Event;
use futures_util::future::BoxFuture;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use super::http::{HttpBase, SseProtocol, Step, event_stream};
use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest, Timeouts};
use crate::config::{HttpProviderConfig, Price};
use crate::domain::Usage;

/// The OpenAI-compatible provider.
pub struct OpenAi {
    http: HttpBase,
}

impl OpenAi {
    /// Builds the provider from its `[providers.NAME]` table.
    pub fn new(name: &str, config: &HttpProviderConfig) -> Result<OpenAi, ProviderError> {
        let http = HttpBase::new(
            name,
            config,
            "https://api.openai.com/v1",
            |key| (AUTHORIZATION, format!("Bearer {key}")),
            &[],
        )?;
        Ok(OpenAi { http })
    }

    /// The request body: always streamed (a plain answer is aggregated from
    /// the stream, so its TTFT and TPOT are real).
    fn body(&self, request: &ProviderRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": content(m)}))
            .collect();
        let mut body = json!({"model": request.model, "messages": messages});
        let p = &request.params;
        if let Some(t) = p.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(t) = p.top_p {
            body["top_p"] = json!(t);
        }
        if let Some(t) = p.max_tokens {
            body["max_tokens"] = json!(t);
        }
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        if let Some(s) = p.seed {
            body["seed"] = json!(s);
        }
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        body
    }
}

/// Usage from an OpenAI `usage` object.
fn usage(v: &Value) -> Option<Usage> {
    let u = v.get("usage").filter(|u| u.is_object())?;
    Some(Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// An `{"error": …}` object inside a 200 response or stream.
fn inline_error(provider: &str, v: &Value) -> Option<ProviderError> {
    let e = v.get("error")?;
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| e.to_string());
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
    Some(ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("error in answer: {message}"),
        retryable: matches!(
            kind,
            "server_error" | "overloaded_error" | "rate_limit_error"
        ),
    })
}

/// The events in one stream chunk.
fn chunk_events(v: &Value, out: &mut VecDeque<ProviderEvent>) -> bool {
    let mut finished = false;
    if let Some(choice) = v.pointer("/choices/0") {
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push_back(ProviderEvent::Delta(text.to_string()));
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            out.push_back(ProviderEvent::Finish(reason.to_string()));
            finished = true;
        }
    }
    if let Some(u) = usage(v) {
        out.push_back(ProviderEvent::Usage(u));
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
        event: &Event,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<Step, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Step::End);
        }
        if data.is_empty() {
            return Ok(Step::Continue);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("stream chunk is not JSON ({e}): {data:.200}"),
            retryable: false,
        })?;
        if let Some(err) = inline_error(provider, &v) {
            return Err(err);
        }
        if chunk_events(&v, out) {
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
fn content(m: &crate::domain::ChatMessage) -> Value {
    if m.images.is_empty() {
        return json!(m.content);
    }
    let mut parts = vec![json!({"type": "text", "text": m.content})];
    parts.extend(
        m.images
            .iter()
            .map(|i| json!({"type": "image_url", "image_url": {"url": i.data_url()}})),
    );
    Value::Array(parts)
}
