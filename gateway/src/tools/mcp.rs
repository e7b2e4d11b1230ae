//! One `[tools.NAME]` MCP server, spoken to with the official Rust SDK
//! (`rmcp`): started (stdio) or connected to (Streamable HTTP) on first
//! use, kept, listed once and again when it says its tools changed
//! (`notifications/tools/list_changed`), and started again with a growing
//! pause when it dies. A stdio server gets a clean environment: `PATH` and
//! the variables its `env` names, nothing else.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock, Implementation, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::io::AsyncBufReadExt;
use tracing::Instrument;

use super::ToolError;
use crate::config::{Env, ToolServerConfig, ToolTransport};

/// How long starting a server (and its `initialize` handshake) may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long listing its tools may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause before starting a server that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Hears the server's notifications: a changed tool list is listed again
/// before the next use.
#[derive(Clone)]
struct Handler {
    changed: Arc<AtomicBool>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("switchboard", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed.store(true, Ordering::Release);
    }
}

/// A started server and its tools as last listed.
struct Running {
    service: RunningService<RoleClient, Handler>,
    tools: Arc<Vec<Tool>>,
    changed: Arc<AtomicBool>,
    since: Instant,
}

/// A server up this long before it dies starts again at once, its
/// earlier failures forgotten.
const STEADY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    running: Option<Running>,
    /// Starts that failed, or deaths, in a row.
    failures: u32,
    /// No start before this (after a failure).
    not_before: Option<Instant>,
}

/// One configured MCP server.
pub(crate) struct McpServer {
    pub(crate) name: String,
    pub(crate) config: ToolServerConfig,
    /// The variables passed to a stdio server, with their values.
    env: Vec<(String, String)>,
    /// The headers sent to an HTTP server, with their values.
    headers: Vec<(String, String)>,
    state: tokio::sync::Mutex<State>,
}

impl McpServer {
    /// The server of `[tools.NAME]`, not started yet.
    pub(crate) fn new(name: &str, config: &ToolServerConfig, env: &Env) -> McpServer {
        McpServer {
            name: name.to_string(),
            config: config.clone(),
            env: config
                .env
                .iter()
                .filter_map(|k| env.get(k).map(|v| (k.clone(), v.to_string())))
                .collect(),
            headers: config
                .headers_env
                .iter()
                .filter_map(|(h, var)| env.get(var).map(|v| (h.clone(), v.to_string())))
                .collect(),
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The server's tools (starting it if it is not running) and a handle
    /// to call them with.
    pub(crate) async fn connect(&self) -> Result<(Peer<RoleClient>, Arc<Vec<Tool>>), ToolError> {
        let mut state = self.state.lock().await;
        if let Some(running) = &mut state.running {
            if running.service.is_transport_closed() {
                tracing::warn!(server = %self.name, "the MCP server exited; starting it again");
                if running.since.elapsed() >= STEADY {
                    state.failures = 0;
                }
                state.running = None;
                state.failures += 1;
                // The first death restarts at once; a server that keeps
                // dying waits longer each time.
                state.not_before =
                    (state.failures > 1).then(|| Instant::now() + backoff(state.failures - 1));
            } else {
                if running.changed.swap(false, Ordering::AcqRel) {
                    match list(&running.service).await {
                        Ok(tools) => {
                            tracing::info!(server = %self.name, tools = tools.len(), "the MCP server's tools changed; listed again");
                            running.tools = Arc::new(tools);
                        }
                        Err(e) => {
                            tracing::warn!(server = %self.name, error = %e, "listing the MCP server's changed tools failed; keeping the last list");
                        }
                    }
                }
                return Ok((running.service.peer().clone(), running.tools.clone()));
            }
        }
        if let Some(at) = state.not_before
            && at > Instant::now()
        {
            return Err(ToolError::Unavailable {
                server: self.name.clone(),
                reason: format!(
                    "it failed {} time(s) in a row; trying again in {} s",
                    state.failures,
                    at.saturating_duration_since(Instant::now())
                        .as_secs()
                        .max(1)
                ),
            });
        }
        // A server outlives the answer that started it: its tasks run in a
        // span of their own, not under that answer's request span (which
        // would then never end).
        let span = tracing::info_span!(parent: None, "mcp.server", server = %self.name);
        match self.start().instrument(span).await {
            Ok(running) => {
                tracing::info!(server = %self.name, tools = running.tools.len(), "MCP server started");
                state.not_before = None;
                let out = (running.service.peer().clone(), running.tools.clone());
                state.running = Some(running);
                Ok(out)
            }
            Err(e) => {
                state.failures += 1;
                state.not_before = Some(Instant::now() + backoff(state.failures));
                tracing::warn!(server = %self.name, error = %e, "the MCP server could not be started");
                Err(e)
            }
        }
    }

    /// Calls `tool` with `arguments`, within `timeout`: its result as text
    /// (the text parts joined; other parts named), and whether the server
    /// said the call failed.
    pub(crate) async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
    ) -> Result<(String, bool), ToolError> {
        let (peer, _) = self.connect().await?;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => {
                return Err(ToolError::Timeout {
                    tool: tool.to_string(),
                    ms: timeout.as_millis() as u64,
                });
            }
            Ok(Err(e)) => {
                let gone = peer.is_transport_closed();
                return Err(ToolError::Unavailable {
                    server: self.name.clone(),
                    reason: if gone {
                        format!(
                            "it stopped during the call ({e}); it is started again on the next use"
                        )
                    } else {
                        e.to_string()
                    },
                });
            }
            Ok(Ok(r)) => r,
        };
        let mut text = String::new();
        for block in &result.content {
            if !text.is_empty() {
                text.push('\n');
            }
            match block {
                ContentBlock::Text(t) => text.push_str(&t.text),
                ContentBlock::Image(_) => text.push_str("[an image, not shown]"),
                ContentBlock::Audio(_) => text.push_str("[audio, not shown]"),
                ContentBlock::Resource(_) => text.push_str("[an embedded resource, not shown]"),
                ContentBlock::ResourceLink(r) => text.push_str(&format!("[resource: {}]", r.uri)),
                _ => text.push_str("[content of a kind not shown]"),
            }
        }
        if text.is_empty()
            && let Some(structured) = &result.structured_content
        {
            text = structured.to_string();
        }
        Ok((text, result.is_error.unwrap_or(false)))
    }

    /// Stops the server, if it runs.
    pub(crate) async fn stop(&self) {
        let running = self.state.lock().await.running.take();
        if let Some(mut r) = running {
            let _ = r.service.close_with_timeout(Duration::from_secs(5)).await;
        }
    }

    async fn start(&self) -> Result<Running, ToolError> {
        let changed = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            changed: changed.clone(),
        };
        let unavailable = |reason: String| ToolError::Unavailable {
            server: self.name.clone(),
            reason,
        };
        let serving = async {
            match self.config.transport() {
                ToolTransport::Stdio { command, args } => {
                    let program = find_program(command).ok_or_else(|| {
                        unavailable(format!(
                            "`{command}` is not found on PATH; install it or give its full path in [tools.{}] command",
                            self.name
                        ))
                    })?;
                    let mut cmd = tokio::process::Command::new(&program);
                    cmd.args(args).env_clear();
                    if let Some(path) = std::env::var_os("PATH") {
                        cmd.env("PATH", path);
                    }
                    for (k, v) in &self.env {
                        cmd.env(k, v);
                    }
                    let (transport, stderr) = TokioChildProcess::builder(cmd)
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| {
                            unavailable(format!("cannot start `{}`: {e}", program.display()))
                        })?;
                    if let Some(stderr) = stderr {
                        // Drained, so that a chatty server never blocks on a full pipe.
                        let name = self.name.clone();
                        tokio::spawn(async move {
                            let mut lines = tokio::io::BufReader::new(stderr).lines();
                            while let Ok(Some(line)) = lines.next_line().await {
                                tracing::debug!(server = %name, "{line}");
                            }
                        });
                    }
                    handler
                        .serve(transport)
                        .await
                        .map_err(|e| unavailable(format!("the MCP handshake failed: {e}")))
                }
                ToolTransport::Http { url } => {
                    let mut headers = HashMap::new();
                    for (k, v) in &self.headers {
                        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                            .map_err(|_| unavailable(format!("`{k}` is not a header name")))?;
                        let mut value =
                            reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                                unavailable(format!(
                                    "the value of header `{k}` cannot be sent in HTTP"
                                ))
                            })?;
                        value.set_sensitive(true);
                        headers.insert(name, value);
                    }
                    crate::providers::install_crypto();
                    // Redirects are not followed: the headers go only to the
                    // configured URL.
                    let client = reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .connect_timeout(Duration::from_secs(5))
                        .pool_max_idle_per_host(0)
                        .build()
                        .map_err(|e| unavailable(format!("cannot build the HTTP client: {e}")))?;
                    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
                        .custom_headers(headers);
                    handler
                        .serve(StreamableHttpClientTransport::with_client(client, config))
                        .await
                        .map_err(|e| unavailable(format!("cannot connect to {url}: {e}")))
                }
            }
        };
        let service = tokio::time::timeout(START_TIMEOUT, serving)
            .await
            .map_err(|_| {
                unavailable(format!(
                    "it did not answer within {} s",
                    START_TIMEOUT.as_secs()
                ))
            })??;
        let tools = list(&service)
            .await
            .map_err(|e| unavailable(format!("listing its tools failed: {e}")))?;
        Ok(Running {
            service,
            tools: Arc::new(tools),
            changed,
            since: Instant::now(),
        })
    }
}

async fn list(service: &RunningService<RoleClient, Handler>) -> Result<Vec<Tool>, String> {
    match tokio::time::timeout(LIST_TIMEOUT, service.list_all_tools()).await {
        Ok(Ok(tools)) => Ok(tools),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", LIST_TIMEOUT.as_secs())),
    }
}

/// 1 s, 2 s, 4 s, … up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

/// `command` as a path: as given when it names one, else found on `PATH`.
fn find_program(command: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(command);
    if command.contains('/') {
        return path.is_file().then(|| path.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(command))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_wait_longer_each_time_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
