//! `POST /v1/chat/completions` and `GET /v1/models`, in OpenAI's shapes, so
//! that any OpenAI SDK can talk to Switchboard. `model` names an alias, or
//! `prompt:<name>` to answer the request's messages through a prompt's
//! `production` label (`prompt:<name>@<label>` or `@<version>` for another);
//! an extra body field `variables` gives values to its declared variables.
//!
//! Client-defined `tools`, `tool_choice` and `tool` messages pass through
//! to the model unchanged, streamed or not: its calls come back as
//! `tool_calls` (streamed as argument deltas) with finish reason
//! `tool_calls`, for the client to run. The gateway runs none of them.
//! A `prompt:<name>` model takes no client tools: it runs the tools its
//! version lists, and its answer carries only text.
//!
//! When the prompt retrieves, the answer carries an extra top-level field
//! `citations` (on a stream, in the chunk with the finish reason): the
//! references it cited, `[{number, title, heading, link, source}]`.
//!
//! Every response carries `x-switchboard-inference-id` and
//! `x-switchboard-overhead-ms` (time spent in Switchboard rather than
//! waiting on the provider; for a stream, up to its first token).

use super::error::ApiError;
use axum::extract::rejection::BytesRejection;
use std::convert::Infallible;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use crate::domain::{CacheControl, Input, Purpose, Request, Selector, TTL_HEADER};
use crate::domain::{ChatMessage, Origin, Params, Role, User};
use crate::domain::{ReplyEvent, ReplyStream, Summary};
use crate::domain::{ToolCall, ToolCallDelta, ToolChoice, ToolSpec};
use crate::guards::limits::LimitError;
use crate::pipeline::PipelineError;
use crate::registry::RegistryError;

/// An OpenAI-style error response.
/// `400 invalid_request_error` with `message`.
fn bad_request(message: &str) -> Response {
    ApiError::invalid(message).into_response()
}

/// The error answer of this status and type.
fn api_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    ApiError::new(status, kind, message).into_response()
}

/// The request body; fields Switchboard does not use are ignored.
#[derive(Deserialize)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<ApiMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    n: Option<u32>,
    user: Option<String>,
    /// Client-defined tools: passed to the model; the calls it makes come
    /// back to the client, which runs them (the gateway runs nothing).
    #[serde(default)]
    tools: Vec<ApiTool>,
    tool_choice: Option<Value>,
    /// Values for a prompt's declared variables (`model = "prompt:…"`).
    variables: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `{"type": "function", "function": {name, description, parameters, strict}}`.
#[derive(Deserialize)]
struct ApiTool {
    #[serde(rename = "type")]
    kind: String,
    function: Option<ToolSpec>,
}

#[derive(Deserialize)]
struct ApiMessage {
    role: String,
    content: Option<Content>,
    /// An assistant message's calls.
    #[serde(default)]
    tool_calls: Vec<ApiToolCall>,
    /// A `tool` message's call.
    tool_call_id: Option<String>,
}

/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Deserialize)]
struct ApiToolCall {
    id: String,
    function: ApiFunctionCall,
}

#[derive(Deserialize)]
struct ApiFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// Checks and converts the body; errors name the field.
fn parse(body: &[u8]) -> Result<ChatCompletionRequest, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let request: ChatCompletionRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid request: `{path}`: {inner}")
        }
    })?;
    if request.n.is_some_and(|n| n != 1) {
        return Err("`n` other than 1 is not supported".into());
    }
    for (i, tool) in request.tools.iter().enumerate() {
        if tool.kind != "function" || tool.function.is_none() {
            return Err(format!(
                "`tools[{i}]`: only `{{\"type\": \"function\", \"function\": {{…}}}}` tools are supported"
            ));
        }
    }
    if request.messages.is_empty() {
        return Err("`messages` must not be empty".into());
    }
    let client_tools = !request.tools.is_empty()
        || request
            .messages
            .iter()
            .any(|m| m.role == "tool" || !m.tool_calls.is_empty());
    if client_tools && request.model.starts_with("prompt:") {
        return Err(format!(
            "`tools` and tool messages go with a model alias; `{}` names a prompt, which runs the tools its version lists (`tools = [...]`)",
            request.model
        ));
    }
    Ok(request)
}

fn messages(request: &ChatCompletionRequest) -> Result<Vec<ChatMessage>, String> {
    request
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = Role::parse(&m.role).ok_or_else(|| {
                format!("`messages[{i}].role`: `{}` is not supported; use system, user, assistant or tool", m.role)
            })?;
            if role == Role::Tool && m.tool_call_id.is_none() {
                return Err(format!(
                    "`messages[{i}].tool_call_id`: a `tool` message must name the call it answers"
                ));
            }
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.kind.as_str(), &p.text) {
                            ("text", Some(t)) => text.push_str(t),
                            (kind, _) => {
                                return Err(format!(
                                    "`messages[{i}].content`: parts of type `{kind}` are not supported; send text"
                                ));
                            }
                        }
                    }
                    text
                }
            };
            let mut message = ChatMessage::new(role, content);
            message.tool_call_id = m.tool_call_id.clone();
            message.tool_calls = m
                .tool_calls
                .iter()
                .map(|c| ToolCall {
                    id: c.id.clone(),
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
                .collect();
            Ok(message)
        })
        .collect()
}

/// `tool_choice`: `"auto"`, `"none"`, `"required"`, or
/// `{"type": "function", "function": {"name": …}}`.
fn tool_choice(value: &Value) -> Result<ToolChoice, String> {
    match value {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(ToolChoice::parse(s))
        }
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Function(name.to_string()))
            .ok_or_else(|| "`tool_choice`: an object must be `{\"type\": \"function\", \"function\": {\"name\": …}}`".to_string()),
        _ => Err("`tool_choice`: use \"auto\", \"none\", \"required\" or a function".into()),
    }
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let cache = match CacheControl::from_headers(
        header(header::CACHE_CONTROL.as_str()),
        header(TTL_HEADER),
    ) {
        Ok(c) => c,
        Err(message) => return bad_request(&message),
    };
    let request = match parse(&body) {
        Ok(r) => r,
        Err(message) => return bad_request(&message),
    };
    let messages = match messages(&request) {
        Ok(m) => m,
        Err(message) => return bad_request(&message),
    };
    let stream = request.stream.unwrap_or(false);
    let include_usage = request
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let input = match request.model.strip_prefix("prompt:") {
        Some(spec) => {
            let (name, selector) = match spec.split_once('@') {
                Some((name, sel)) => (name, Some(Selector::parse(sel))),
                None => (spec, None),
            };
            Input::Prompt {
                name: name.to_string(),
                selector,
                messages,
            }
        }
        None => Input::Messages {
            alias: request.model.clone(),
            messages,
        },
    };
    let tool_choice = match request.tool_choice.as_ref().map(tool_choice).transpose() {
        Ok(c) => c,
        Err(message) => return bad_request(&message),
    };
    let params = Params {
        tools: request
            .tools
            .iter()
            .filter_map(|t| t.function.clone())
            .collect(),
        tool_choice,
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        stop: match request.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        seed: request.seed,
    };
    let pipeline_request = Request {
        // The key is the caller; the client's `user` only names a person
        // under it.
        origin: Origin {
            platform: "http".into(),
            user: Some(User::new("http", caller.0)),
            label: request.user.clone().filter(|u| !u.is_empty()),
            ..Origin::default()
        },
        input,
        params,
        stream,
        started,
        variables: request.variables.clone().unwrap_or_default(),
        purpose: Purpose::Live,
        cache,
        model: None,
        replay_tools: None,
    };
    let mut reply = match state.pipeline.start(pipeline_request).await {
        Ok(r) => r,
        Err(
            e @ (PipelineError::UnknownAlias(_)
            | PipelineError::Prompt(
                RegistryError::UnknownPrompt { .. }
                | RegistryError::UnknownLabel { .. }
                | RegistryError::UnknownVersion { .. },
            )),
        ) => {
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                e.to_string(),
            )
            .code("model_not_found")
            .param("model")
            .into_response();
        }
        Err(PipelineError::Limited {
            inference_id,
            source,
        }) => return limited(&source, &inference_id.to_string(), started),
        Err(e) => return bad_request(&e.to_string()),
    };
    let id = reply.inference_id;
    let meta = Meta {
        id: format!("chatcmpl-{}", id.simple()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: request.model,
    };
    // Wait for the first event: a failure before any token is an HTTP error.
    let provider_ms = match reply.next_event().await {
        Some(ReplyEvent::Started { provider_ms, .. }) => provider_ms,
        Some(ReplyEvent::Failed {
            message,
            upstream_status,
            summary,
            ..
        }) => {
            return with_ids(
                failure(&message, upstream_status),
                &summary.inference_id.to_string(),
                summary.overhead_ms(),
            );
        }
        _ => {
            return api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "the answer ended before it started",
            );
        }
    };
    if stream {
        let overhead = (started.elapsed().as_secs_f64() * 1000.0 - provider_ms).max(0.0);
        let body = Body::from_stream(sse_body(reply, meta, include_usage));
        let response = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        return with_ids(response, &id.to_string(), overhead);
    }
    let mut text = String::new();
    while let Some(event) = reply.next_event().await {
        match event {
            ReplyEvent::Token(t) => text.push_str(&t),
            ReplyEvent::Started { .. }
            | ReplyEvent::ToolCall(_)
            | ReplyEvent::UsingTool(_)
            | ReplyEvent::Approval(_) => {}
            ReplyEvent::Done(summary) => {
                let u = summary.usage.unwrap_or_default();
                let body = Completion {
                    id: &meta.id,
                    object: "chat.completion",
                    created: meta.created,
                    model: &meta.model,
                    choices: [CompletionChoice {
                        index: 0,
                        message: CompletionMessage {
                            role: "assistant",
                            // `null` when the answer only calls tools, as OpenAI sends it.
                            content: (!text.is_empty() || summary.tool_calls.is_empty())
                                .then_some(text.as_str()),
                            refusal: None,
                            tool_calls: summary.tool_calls.iter().map(WireToolCall::of).collect(),
                        },
                        logprobs: None,
                        finish_reason: summary.finish_reason.as_deref().unwrap_or("stop"),
                    }],
                    usage: CompletionUsage {
                        prompt_tokens: u.input_tokens,
                        completion_tokens: u.output_tokens,
                        total_tokens: u.input_tokens + u.output_tokens,
                    },
                    system_fingerprint: None,
                    citations: &summary.citations,
                };
                let overhead =
                    (started.elapsed().as_secs_f64() * 1000.0 - summary.provider_ms).max(0.0);
                return with_ids(axum::Json(body).into_response(), &id.to_string(), overhead);
            }
            ReplyEvent::Failed {
                message,
                upstream_status,
                summary,
                ..
            } => {
                return with_ids(
                    failure(&message, upstream_status),
                    &id.to_string(),
                    summary.overhead_ms(),
                );
            }
        }
    }
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "the answer ended without a result",
    )
}

/// 429 with `Retry-After` (whole seconds, rounded up) for a limit; 503
/// when the limits could not be checked (`redis.on_failure = "closed"`).
fn limited(error: &LimitError, id: &str, started: Instant) -> Response {
    with_ids(
        ApiError::limited(error),
        id,
        started.elapsed().as_secs_f64() * 1000.0,
    )
}

/// The error response for a request no target could answer, by the
/// status the last failure suggests (see `ProviderError::status_hint`).
fn failure(message: &str, upstream_status: Option<u16>) -> Response {
    match upstream_status {
        Some(400 | 404 | 413 | 422) => bad_request(message),
        Some(429) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            .code("rate_limit_exceeded")
            .into_response(),
        Some(503) => api_error(StatusCode::SERVICE_UNAVAILABLE, "server_busy", message),
        Some(504) => api_error(StatusCode::GATEWAY_TIMEOUT, "timeout_error", message),
        _ => api_error(StatusCode::BAD_GATEWAY, "upstream_error", message),
    }
}

fn with_ids(mut response: Response, id: &str, overhead_ms: f64) -> Response {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-switchboard-inference-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{overhead_ms:.3}")) {
        headers.insert("x-switchboard-overhead-ms", v);
    }
    response
}

fn usage_json(summary: &Summary) -> Value {
    let u = summary.usage.unwrap_or_default();
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

/// A plain answer, in OpenAI's `chat.completion` shape.
#[derive(serde::Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: CompletionUsage,
    system_fingerprint: Option<&'static str>,
    /// Switchboard's extra field: the knowledge the answer cited, when its
    /// prompt retrieves (absent otherwise, so plain clients see OpenAI's
    /// shape).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    citations: &'a [crate::domain::Citation],
}

#[derive(serde::Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(serde::Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
}

/// A whole tool call, in OpenAI's shape.
#[derive(serde::Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(serde::Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> WireToolCall<'a> {
    fn of(call: &'a ToolCall) -> WireToolCall<'a> {
        WireToolCall {
            id: &call.id,
            kind: "function",
            function: WireFunction {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

/// A streamed piece of a tool call, as OpenAI streams one: the first piece
/// with the call's id, type and name, later ones with more arguments.
fn tool_call_delta(d: &ToolCallDelta) -> Value {
    let mut function = json!({"arguments": d.arguments});
    let mut call = json!({"index": d.index});
    if let Some(name) = &d.name {
        function["name"] = json!(name);
    }
    if let Some(id) = &d.id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    call["function"] = function;
    json!({"tool_calls": [call]})
}

#[derive(serde::Serialize)]
struct CompletionUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

/// What every chunk repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
}

impl Meta {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>, include_usage: bool) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse_event(&chunk)
    }
}

fn sse_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The SSE body, in OpenAI's chunk format, ending in `data: [DONE]`, or in
/// an `error` event when the answer breaks off.
fn sse_body(
    reply: ReplyStream,
    meta: Meta,
    include_usage: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    let first = meta.chunk(
        json!({"role": "assistant", "content": ""}),
        None,
        include_usage,
    );
    let rest = stream::unfold(
        (reply, meta, false),
        move |(mut reply, meta, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let event = reply.next_event().await?;
                let bytes = match event {
                    ReplyEvent::Started { .. }
                    | ReplyEvent::UsingTool(_)
                    | ReplyEvent::Approval(_) => continue,
                    ReplyEvent::Token(t) => meta.chunk(json!({"content": t}), None, include_usage),
                    ReplyEvent::ToolCall(d) => meta.chunk(tool_call_delta(&d), None, include_usage),
                    ReplyEvent::Done(summary) => {
                        let reason = summary
                            .finish_reason
                            .clone()
                            .unwrap_or_else(|| "stop".into());
                        let mut out = if summary.citations.is_empty() {
                            meta.chunk(json!({}), Some(&reason), include_usage).to_vec()
                        } else {
                            // The last chunk carries the citations, as the
                            // plain answer does.
                            let mut chunk = json!({
                                "id": meta.id,
                                "object": "chat.completion.chunk",
                                "created": meta.created,
                                "model": meta.model,
                                "system_fingerprint": null,
                                "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}],
                                "citations": summary.citations,
                            });
                            if include_usage {
                                chunk["usage"] = Value::Null;
                            }
                            sse_event(&chunk).to_vec()
                        };
                        if include_usage {
                            let usage = json!({
                                "id": meta.id,
                                "object": "chat.completion.chunk",
                                "created": meta.created,
                                "model": meta.model,
                                "system_fingerprint": null,
                                "choices": [],
                                "usage": usage_json(&summary),
                            });
                            out.extend_from_slice(&sse_event(&usage));
                        }
                        out.extend_from_slice(b"data: [DONE]\n\n");
                        return Some((Ok(Bytes::from(out)), (reply, meta, true)));
                    }
                    ReplyEvent::Failed { message, .. } => {
                        let error = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": null}});
                        return Some((Ok(sse_event(&error)), (reply, meta, true)));
                    }
                };
                return Some((Ok(bytes), (reply, meta, false)));
            }
        },
    );
    stream::once(async move { Ok(first) }).chain(rest)
}

/// `GET /v1/models`: the aliases and `prompt:<name>` for every prompt.
pub(crate) async fn models(State(state): State<AppState>) -> Response {
    let aliases = state.pipeline.router().aliases();
    let prompts = state
        .pipeline
        .registry()
        .list()
        .into_iter()
        .map(|p| format!("prompt:{}", p.name));
    let data: Vec<Value> = aliases
        .into_iter()
        .chain(prompts)
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "switchboard"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
