//! The pipeline's tracing spans, named and attributed after the
//! OpenTelemetry GenAI semantic conventions, so that any trace viewer shows
//! a request the way it shows other model calls. The spans are plain
//! `tracing` spans: the binary decides where they go (logs, OTLP).
//!
//! The span names are stable; dashboards and alerts may rely on them. The
//! request's span is `chat` (the conventions' name when the model is not
//! known yet: it is chosen by the prompt, after the span starts); each call
//! to a provider is `chat {model}`, the conventions' inference span.
//!
//! | span | shown as | covers |
//! |---|---|---|
//! | `chat` | | one request, from admission to the recorded row |
//! | `limits.admit` | | rate limits and budgets |
//! | `prompt.resolve` | | binding → label or A/B split → prompt version |
//! | `prompt.render` | | rendering the prompt's templates |
//! | `cache.lookup` | | the response-cache lookup (`switchboard.cache.hit`) |
//! | `provider.call` | `chat {model}` | one try of one target, until its first token (streamed) or its whole answer |
//! | `store.record` | | handing the inference row to the recorder |
//!
//! Attributes of `chat`: `gen_ai.operation.name` (`chat`),
//! `gen_ai.request.model` (the alias), `gen_ai.provider.name` and
//! `gen_ai.response.model` (the configured provider and model that
//! answered), `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `gen_ai.response.finish_reasons`, `gen_ai.request.max_tokens`,
//! `gen_ai.request.temperature`, `gen_ai.request.top_p`, `error.type`, and
//! `switchboard.inference_id`, `switchboard.prompt.name`,
//! `switchboard.prompt.version`, `switchboard.prompt.label`,
//! `switchboard.cache.hit`, `switchboard.platform`, `switchboard.purpose`,
//! `switchboard.status`, `switchboard.ttft_ms`, `switchboard.cost_usd`.
//! `provider.call` carries `gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model` (the provider's model name), `switchboard.retry`
//! and, when it failed, `error.type` and `http.response.status_code`.
//!
//! Message text is left out unless `[telemetry] capture_content` is on;
//! then `chat` also carries `gen_ai.input.messages` (the rendered prompt)
//! and `gen_ai.output.messages` (the answer) as JSON. Keys and tokens are
//! never recorded on spans.

use tracing::Span;
use tracing::field::Empty;

use crate::domain::{ChatMessage, InferenceRecord, Request};

/// The root span of one request. The alias and prompt are recorded once
/// they are known.
pub(crate) fn request_span(request: &Request) -> Span {
    tracing::info_span!(
        "chat",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.request.model = Empty,
        gen_ai.request.max_tokens = Empty,
        gen_ai.request.temperature = Empty,
        gen_ai.request.top_p = Empty,
        gen_ai.provider.name = Empty,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        "error.type" = Empty,
        switchboard.inference_id = Empty,
        switchboard.prompt.name = Empty,
        switchboard.prompt.version = Empty,
        switchboard.prompt.label = Empty,
        switchboard.cache.hit = Empty,
        switchboard.platform = %request.origin.platform,
        switchboard.purpose = request.purpose.as_str(),
        switchboard.streamed = request.stream,
        switchboard.status = Empty,
        switchboard.ttft_ms = Empty,
        switchboard.cost_usd = Empty,
    )
}

/// Records what resolving and rendering decided: the alias, the prompt
/// version and the parameters in force.
pub(crate) fn record_prepared(
    span: &Span,
    alias: &str,
    prompt: Option<&(String, i64)>,
    label: Option<&str>,
    params: &crate::domain::Params,
) {
    span.record("gen_ai.request.model", alias);
    if let Some((name, version)) = prompt {
        span.record("switchboard.prompt.name", name.as_str());
        span.record("switchboard.prompt.version", *version);
    }
    if let Some(label) = label {
        span.record("switchboard.prompt.label", label);
    }
    if let Some(n) = params.max_tokens {
        span.record("gen_ai.request.max_tokens", i64::from(n));
    }
    if let Some(t) = params.temperature {
        span.record("gen_ai.request.temperature", t);
    }
    if let Some(p) = params.top_p {
        span.record("gen_ai.request.top_p", p);
    }
}

/// Records a request that was refused before any model was asked: `kind`
/// is the refusal's `error.type` (see [`crate::pipeline::PipelineError`]),
/// with the refusal's recorded row when it has one.
pub(crate) fn record_refusal(span: &Span, kind: &str, inference_id: Option<uuid::Uuid>) {
    if let Some(id) = inference_id {
        span.record("switchboard.inference_id", id.to_string().as_str());
    }
    span.record("error.type", kind);
    span.record("otel.status_code", "error");
    span.record("switchboard.status", "refused");
}

/// Records how a request ended, from its inference row. With `content`,
/// the rendered prompt and the answer are recorded too.
pub(crate) fn record_inference(span: &Span, r: &InferenceRecord, content: bool) {
    span.record("switchboard.inference_id", r.id.to_string().as_str());
    span.record("switchboard.cache.hit", r.cache_hit);
    span.record("switchboard.status", r.status.as_str());
    if let Some(provider) = &r.provider {
        span.record("gen_ai.provider.name", provider.as_str());
    }
    if let Some(model) = &r.model {
        span.record("gen_ai.response.model", model.as_str());
    }
    if let Some(n) = r.input_tokens {
        span.record("gen_ai.usage.input_tokens", int(n));
    }
    if let Some(n) = r.output_tokens {
        span.record("gen_ai.usage.output_tokens", int(n));
    }
    if let Some(reason) = &r.finish_reason {
        span.record("gen_ai.response.finish_reasons", reason.as_str());
    }
    if let Some(ms) = r.ttft_ms {
        span.record("switchboard.ttft_ms", ms);
    }
    if let Some(cost) = r.cost_usd {
        span.record("switchboard.cost_usd", cost);
    }
    if r.error.is_some() {
        span.record("error.type", r.status.as_str());
        span.record("otel.status_code", "error");
    }
    if content {
        span.record("gen_ai.input.messages", messages_json(&r.input).as_str());
        if let Some(output) = &r.output {
            let answer = serde_json::json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": output}],
                "finish_reason": r.finish_reason,
            }]);
            span.record("gen_ai.output.messages", answer.to_string().as_str());
        }
    }
}

/// A count as a signed integer: unsigned values reach OpenTelemetry as
/// text, the conventions want integers.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Messages in the conventions' shape: role and text parts.
fn messages_json(messages: &[ChatMessage]) -> String {
    let list: Vec<_> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "role": m.role.as_str(),
                "parts": [{"type": "text", "content": m.content}],
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}
