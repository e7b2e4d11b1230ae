//! Tools that Switchboard runs for an answer: the `[tools.NAME]` MCP
//! servers ([`mcp`]) and the built-ins ([`builtin`]), behind one
//! [`Toolbox`]. A prompt version names the tools it offers
//! (`tools = ["time", "search_knowledge"]`); [`Toolbox::offer`] turns the
//! names into what the model is shown, and [`Toolbox::call`] runs one call
//! of the model's: arguments checked, a timeout, the result cut to size.
//! What a tool returns is data for the model, never template source.

mod builtin;
mod check;
mod mcp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{BUILTIN_TOOLS, Config, ToolLoopConfig};
use crate::domain::{ChatMessage, ToolCall, ToolSpec};
use crate::knowledge::{Knowledge, Viewer};
use builtin::Builtin;
pub use check::check_prompts;
use mcp::McpServer;

/// Why a tool call gave no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    /// The server could not be started or reached, or stopped.
    #[error("tool server `{server}` is unavailable: {reason}")]
    Unavailable {
        /// The `[tools.NAME]` server (or built-in).
        server: String,
        /// What happened.
        reason: String,
    },
    /// The call took longer than its timeout.
    #[error("`{tool}` gave no result within {ms} ms")]
    Timeout {
        /// The tool.
        tool: String,
        /// The limit.
        ms: u64,
    },
    /// The model's arguments were not usable.
    #[error("the arguments for `{tool}` are not usable: {message}")]
    Arguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The model called a tool it was not offered.
    #[error("there is no tool `{name}`; the tools are: {known}")]
    Unknown {
        /// What it called.
        name: String,
        /// What it was offered.
        known: String,
    },
    /// The tool ran and failed.
    #[error("`{tool}` failed: {message}")]
    Failed {
        /// The tool.
        tool: String,
        /// What it said.
        message: String,
    },
    /// The tool asks first, and the asker did not approve.
    #[error("`{tool}` was not run: {why}")]
    NotApproved {
        /// The tool.
        tool: String,
        /// Denied, or no answer in time, or no way to ask here.
        why: String,
    },
}

impl ToolError {
    /// A short, stable name for the kind of failure (metrics, spans).
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::Unavailable { .. } => "unavailable",
            ToolError::Timeout { .. } => "timeout",
            ToolError::Arguments { .. } => "arguments",
            ToolError::Unknown { .. } => "unknown_tool",
            ToolError::Failed { .. } => "failed",
            ToolError::NotApproved { .. } => "not_approved",
        }
    }
}

/// Where a tool the model was offered is run.
#[derive(Clone)]
enum Route {
    Mcp {
        server: Arc<McpServer>,
        /// The tool's own name on its server.
        tool: String,
    },
    Builtin(Builtin),
}

/// The tools one answer offers: what the model is shown, and where each
/// call goes.
#[derive(Clone, Default)]
pub struct Offer {
    /// The tools as the model sees them.
    pub specs: Vec<ToolSpec>,
    routes: BTreeMap<String, Route>,
    /// Tools asked for that could not be offered, each with why (a server
    /// that would not start, a name that is not configured).
    pub unavailable: Vec<String>,
}

impl Offer {
    /// Whether nothing is offered.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Whether the model was offered `name`.
    pub fn offers(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }

    /// The error for a call of `name`, which was not offered.
    pub fn unknown(&self, name: &str) -> ToolError {
        ToolError::Unknown {
            name: name.to_string(),
            known: self
                .specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Whether a call of `name` must be approved by the asker first.
    pub fn needs_approval(&self, name: &str) -> bool {
        matches!(self.routes.get(name), Some(Route::Mcp { server, .. }) if server.config.confirm)
    }
}

/// What a call runs with: who asked, and the conversation so far.
#[derive(Clone)]
pub struct CallContext<'a> {
    /// Whose permissions bound `search_knowledge`: the asker's.
    pub viewer: Viewer,
    /// The earlier messages of the conversation, all of them (the
    /// history window may have left some out).
    pub history: &'a [ChatMessage],
}

/// One finished call.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// What the model is given: the result (cut to size), or the error.
    pub text: String,
    /// The error, if the call gave no result.
    pub error: Option<ToolError>,
    /// The result's size before any cut.
    pub bytes: u64,
    /// Whether it was cut.
    pub truncated: bool,
    /// How long it took.
    pub ms: f64,
}

impl ToolOutcome {
    /// A call that gave no result: the model is given the error.
    pub fn failed(error: ToolError, ms: f64) -> ToolOutcome {
        ToolOutcome {
            text: format!("Error: {error}"),
            error: Some(error),
            bytes: 0,
            truncated: false,
            ms,
        }
    }
}

/// Every tool this process can run. Cheap to clone.
#[derive(Clone)]
pub struct Toolbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("servers", &self.inner.servers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Inner {
    servers: BTreeMap<String, Arc<McpServer>>,
    limits: ToolLoopConfig,
    knowledge: Option<Knowledge>,
}

impl Toolbox {
    /// The configured servers (none started yet) and the built-ins.
    pub fn new(config: &Config, knowledge: Option<Knowledge>) -> Toolbox {
        Toolbox {
            inner: Arc::new(Inner {
                servers: config
                    .tools
                    .iter()
                    .map(|(name, c)| (name.clone(), Arc::new(McpServer::new(name, c, &config.env))))
                    .collect(),
                limits: config.tool_loop.clone(),
                knowledge,
            }),
        }
    }

    /// The bounds of one answer's tool calls.
    pub fn limits(&self) -> &ToolLoopConfig {
        &self.inner.limits
    }

    /// The configured server names, then the built-ins.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .servers
            .keys()
            .cloned()
            .chain(BUILTIN_TOOLS.iter().map(|s| s.to_string()))
            .collect()
    }

    /// What the model is offered for these `tools = [...]` entries:
    /// `SERVER` (all its tools), `SERVER.TOOL` (one), or a built-in.
    /// Servers are started here, on first use; one that cannot be is left
    /// out and named in [`Offer::unavailable`], and the answer goes on.
    pub async fn offer(&self, wanted: &[String]) -> Offer {
        let mut offer = Offer::default();
        for entry in wanted {
            if let Some(b) = Builtin::named(entry) {
                offer.add(b.spec(), Route::Builtin(b));
                continue;
            }
            let (server_name, only) = match entry.split_once('.') {
                Some((s, t)) => (s, Some(t)),
                None => (entry.as_str(), None),
            };
            let Some(server) = self.inner.servers.get(server_name) else {
                offer
                    .unavailable
                    .push(format!("`{entry}`: no [tools.{server_name}] is configured"));
                continue;
            };
            let tools = match server.connect().await {
                Ok((_, tools)) => tools,
                Err(e) => {
                    offer.unavailable.push(format!("`{entry}`: {e}"));
                    continue;
                }
            };
            let mut found = false;
            for t in tools.iter().filter(|t| only.is_none_or(|o| t.name == o)) {
                found = true;
                offer.add(
                    spec_of(t),
                    Route::Mcp {
                        server: server.clone(),
                        tool: t.name.to_string(),
                    },
                );
            }
            if !found && let Some(o) = only {
                offer.unavailable.push(format!(
                    "`{entry}`: server `{server_name}` has no tool `{o}`"
                ));
            }
        }
        for u in &offer.unavailable {
            tracing::warn!(tool = %u, "a tool the prompt offers is left out");
        }
        offer
    }

    /// Every tool of every configured server (each started to list its
    /// own) and the built-ins, for `switchboard tools list`.
    pub async fn list(&self) -> Vec<(String, Result<Vec<ToolSpec>, ToolError>)> {
        let mut out = Vec::new();
        for b in BUILTIN_TOOLS {
            if let Some(b) = Builtin::named(b) {
                out.push((format!("(built-in) {}", b.spec().name), Ok(vec![b.spec()])));
            }
        }
        for (name, server) in &self.inner.servers {
            let listed = server
                .connect()
                .await
                .map(|(_, tools)| tools.iter().map(spec_of).collect());
            out.push((name.clone(), listed));
        }
        out
    }

    /// Runs one call of the model's, as offered in `offer`. Never fails:
    /// a call that gives no result gives its error, for the model to read.
    pub async fn call(
        &self,
        offer: &Offer,
        call: &ToolCall,
        context: &CallContext<'_>,
    ) -> ToolOutcome {
        let started = Instant::now();
        let result = self.run(offer, call, context).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(text) => {
                let (text, bytes, truncated) = cut(text, self.inner.limits.max_result_bytes);
                ToolOutcome {
                    text,
                    error: None,
                    bytes,
                    truncated,
                    ms,
                }
            }
            Err(e) => ToolOutcome::failed(e, ms),
        }
    }

    async fn run(
        &self,
        offer: &Offer,
        call: &ToolCall,
        context: &CallContext<'_>,
    ) -> Result<String, ToolError> {
        let route = offer
            .routes
            .get(&call.name)
            .ok_or_else(|| offer.unknown(&call.name))?;
        let arguments = parse_arguments(call)?;
        match route {
            Route::Builtin(b) => {
                let timeout = Duration::from_millis(self.inner.limits.tool_timeout_ms);
                tokio::time::timeout(
                    timeout,
                    b.call(&arguments, context, self.inner.knowledge.as_ref()),
                )
                .await
                .map_err(|_| ToolError::Timeout {
                    tool: call.name.clone(),
                    ms: timeout.as_millis() as u64,
                })?
            }
            Route::Mcp { server, tool } => {
                let timeout = Duration::from_millis(
                    server
                        .config
                        .timeout_ms
                        .unwrap_or(self.inner.limits.tool_timeout_ms),
                );
                let (text, failed) = server.call(tool, arguments, timeout).await?;
                if failed {
                    return Err(ToolError::Failed {
                        tool: call.name.clone(),
                        message: text,
                    });
                }
                Ok(text)
            }
        }
    }

    /// Stops every started server.
    pub async fn stop(&self) {
        for server in self.inner.servers.values() {
            server.stop().await;
        }
    }
}

impl Offer {
    fn add(&mut self, spec: ToolSpec, route: Route) {
        if self.routes.contains_key(&spec.name) {
            self.unavailable.push(format!(
                "`{}`: another offered tool has the same name; offer one of them (`SERVER.TOOL`)",
                spec.name
            ));
            return;
        }
        self.routes.insert(spec.name.clone(), route);
        self.specs.push(spec);
    }
}

/// An MCP server's tool as the model is shown it.
fn spec_of(tool: &rmcp::model::Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name.to_string(),
        description: tool.description.as_deref().map(str::to_string),
        parameters: Value::Object((*tool.input_schema).clone()),
        strict: None,
    }
}

/// The model's arguments as a JSON object (empty text is no arguments).
fn parse_arguments(call: &ToolCall) -> Result<serde_json::Map<String, Value>, ToolError> {
    let text = call.arguments.trim();
    if text.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ToolError::Arguments {
            tool: call.name.clone(),
            message: format!("they must be a JSON object, not {}", kind_of(&other)),
        }),
        Err(e) => Err(ToolError::Arguments {
            tool: call.name.clone(),
            message: format!(
                "they are not valid JSON ({e}); call the tool again with a JSON object"
            ),
        }),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `text` cut to `max` bytes (at a character boundary), with a note to the
/// model when cut: (text, original size, cut).
fn cut(text: String, max: usize) -> (String, u64, bool) {
    let bytes = text.len() as u64;
    if text.len() <= max {
        return (text, bytes, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = text[..end].to_string();
    out.push_str(&format!(
        "\n[the result was cut: {max} of {bytes} bytes shown]"
    ));
    (out, bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "call_1".into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn arguments_must_be_a_json_object() {
        assert!(parse_arguments(&call("t", r#"{"a": 1}"#)).is_ok());
        assert!(parse_arguments(&call("t", "")).is_ok_and(|m| m.is_empty()));
        let e = parse_arguments(&call("t", r#"{"a": "#)).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = parse_arguments(&call("t", "[1]")).unwrap_err();
        assert!(e.to_string().contains("not an array"), "{e}");
    }

    #[test]
    fn long_results_are_cut_at_a_character_and_say_so() {
        let (text, bytes, truncated) = cut("é".repeat(400), 301);
        assert!(truncated);
        assert_eq!(bytes, 800);
        assert!(text.starts_with(&"é".repeat(150)));
        assert!(
            text.ends_with("[the result was cut: 301 of 800 bytes shown]"),
            "{text}"
        );
        let (text, _, truncated) = cut("short".into(), 301);
        assert_eq!((text.as_str(), truncated), ("short", false));
    }
}
