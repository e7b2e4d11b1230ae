//! `[tools.NAME]`: the MCP servers whose tools prompts may offer the model
//! (a prompt version lists them in `tools = [...]`), and `[tool_loop]`: how
//! far one answer's tool calls may go (steps, time, result size).
//!
//! A server is either started by Switchboard and spoken to over stdio
//! (`command`, `args`, and `env`: the only variables of Switchboard's
//! environment it gets, beside `PATH`), or reached over Streamable HTTP at
//! its configured `url` (with `headers_env`: header names mapped to the
//! variables that hold their values, secrets kept out of the file).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// The names of the built-in tools, which no `[tools.NAME]` may take.
pub const BUILTIN_TOOLS: &[&str] = &["search_knowledge", "thread_history"];

/// One `[tools.NAME]` table: an MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolServerConfig {
    /// stdio: the program to start (found on `PATH`, or a path).
    #[serde(default)]
    pub command: Option<String>,
    /// stdio: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: the environment variables passed to it (by name; their values
    /// come from Switchboard's environment). Nothing else is passed but
    /// `PATH`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Streamable HTTP: the server's endpoint (`http://…/mcp`).
    #[serde(default)]
    pub url: Option<String>,
    /// Streamable HTTP: header names → the environment variables holding
    /// their values (`{ Authorization = "WIKI_MCP_AUTH" }`).
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// Ask the asker (Approve / Deny) before each call of this server's
    /// tools.
    #[serde(default)]
    pub confirm: bool,
    /// How long one call may take; `[tool_loop] tool_timeout_ms` when unset.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolTransport<'a> {
    /// Started by Switchboard, spoken to over stdin and stdout.
    Stdio {
        /// The program.
        command: &'a str,
        /// Its arguments.
        args: &'a [String],
    },
    /// Streamable HTTP at this URL.
    Http {
        /// The endpoint.
        url: &'a str,
    },
}

impl ToolServerConfig {
    /// How the server is reached (checked at load: exactly one of
    /// `command` and `url`).
    pub fn transport(&self) -> ToolTransport<'_> {
        match (&self.command, &self.url) {
            (Some(command), _) => ToolTransport::Stdio {
                command,
                args: &self.args,
            },
            (None, Some(url)) => ToolTransport::Http { url },
            // Refused by `check`.
            (None, None) => ToolTransport::Http { url: "" },
        }
    }

    pub(super) fn check(
        &self,
        name: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let at = |key: &str| format!("tools.{name}.{key}");
        if !is_tool_name(name) {
            return Err(ConfigError::key(
                format!("tools.{name}"),
                None,
                "a tool server's name is letters, digits, `-` and `_`, 1 to 64 characters",
            ));
        }
        if BUILTIN_TOOLS.contains(&name) {
            return Err(ConfigError::key(
                format!("tools.{name}"),
                None,
                format!("`{name}` is a built-in tool; give the server another name"),
            ));
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::key(
                    at("url"),
                    None,
                    "a tool server has either `command` (stdio) or `url` (Streamable HTTP), not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::key(
                    format!("tools.{name}"),
                    None,
                    "a tool server needs `command` (a program to start, spoken to over stdio) or `url` (a Streamable HTTP endpoint)",
                ));
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(ConfigError::key(at("command"), None, "must not be empty"));
                }
                if !self.headers_env.is_empty() {
                    return Err(ConfigError::key(
                        at("headers_env"),
                        None,
                        "`headers_env` is for servers reached by `url`; a stdio server gets `env`",
                    ));
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::key(
                        at("url"),
                        Some(format!("{url:?}")),
                        "must be an http:// or https:// URL of the server's MCP endpoint",
                    ));
                }
                if !self.env.is_empty() || !self.args.is_empty() {
                    return Err(ConfigError::key(
                        at("env"),
                        None,
                        "`args` and `env` are for stdio servers (`command`); an HTTP server gets `headers_env`",
                    ));
                }
                for (header, var) in &self.headers_env {
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return Err(ConfigError::key(
                            at("headers_env"),
                            None,
                            format!("`{header}` is not a valid HTTP header name"),
                        ));
                    }
                    if env.get(var).is_none_or(|v| v.is_empty()) {
                        return Err(ConfigError::key(
                            at("headers_env"),
                            None,
                            format!(
                                "header `{header}` is read from ${var}, which is not set; set it (the value is never logged)"
                            ),
                        ));
                    }
                }
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(ConfigError::key(
                at("timeout_ms"),
                Some("0".into()),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Whether `name` can name a tool server: letters, digits, `-` and `_`.
pub fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `[tool_loop]`: the bounds of one answer's tool calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolLoopConfig {
    /// Model calls that may ask for tools before the answer must be
    /// given without them.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// How long one tool call may take.
    #[serde(default = "default_tool_timeout")]
    pub tool_timeout_ms: u64,
    /// How long all of one answer's tool calls and model steps may take.
    #[serde(default = "default_total_timeout")]
    pub total_timeout_ms: u64,
    /// The most bytes of one result the model is given; more is cut (and
    /// the model told so).
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: usize,
    /// How long a confirmation waits for the asker before it counts as
    /// denied.
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout_ms: u64,
}

fn default_max_steps() -> u32 {
    5
}
fn default_tool_timeout() -> u64 {
    20_000
}
fn default_total_timeout() -> u64 {
    120_000
}
fn default_max_result_bytes() -> usize {
    16 * 1024
}
fn default_confirm_timeout() -> u64 {
    120_000
}

impl Default for ToolLoopConfig {
    fn default() -> Self {
        ToolLoopConfig {
            max_steps: default_max_steps(),
            tool_timeout_ms: default_tool_timeout(),
            total_timeout_ms: default_total_timeout(),
            max_result_bytes: default_max_result_bytes(),
            confirm_timeout_ms: default_confirm_timeout(),
        }
    }
}

impl ToolLoopConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(1..=50).contains(&self.max_steps) {
            return Err(ConfigError::key(
                "tool_loop.max_steps",
                Some(self.max_steps.to_string()),
                "must be from 1 to 50",
            ));
        }
        for (key, v) in [
            ("tool_timeout_ms", self.tool_timeout_ms),
            ("total_timeout_ms", self.total_timeout_ms),
            ("confirm_timeout_ms", self.confirm_timeout_ms),
        ] {
            if v == 0 {
                return Err(ConfigError::key(
                    format!("tool_loop.{key}"),
                    Some("0".into()),
                    "must be at least 1",
                ));
            }
        }
        if self.max_result_bytes < 256 {
            return Err(ConfigError::key(
                "tool_loop.max_result_bytes",
                Some(self.max_result_bytes.to_string()),
                "must be at least 256",
            ));
        }
        Ok(())
    }
}
