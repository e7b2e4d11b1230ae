//! One request to the pipeline, as every front end builds it: who asked
//! ([`Origin`]), what to answer ([`Input`]: a chat message through the bound
//! prompt, messages to a model alias, or messages through a named prompt and
//! [`Selector`]), the caller's parameters and cache wishes ([`CacheControl`]),
//! and whether it is real traffic ([`Purpose`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{ChatMessage, Inbound, Origin, Params};

/// What to answer.
// Built once per request and moved into it: boxing the chat variant would
// save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// A chat message from an adapter, answered through the bound prompt.
    Chat(Inbound),
    /// Messages sent as they are to a model alias (the HTTP API).
    Messages {
        /// The alias.
        alias: String,
        /// The messages.
        messages: Vec<ChatMessage>,
    },
    /// Messages answered through a named prompt (`prompt:<name>` on the
    /// HTTP API): the last user message is the question, the rest history.
    Prompt {
        /// The prompt's name.
        name: String,
        /// Which version: `production` when `None`.
        selector: Option<Selector>,
        /// The messages.
        messages: Vec<ChatMessage>,
    },
}

/// Whether a request is real traffic or an admin's dry run. Test requests
/// are recorded with `purpose = 'test'` so that statistics leave them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Real traffic.
    #[default]
    Live,
    /// A dry run (`prompts test`).
    Test,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Live => "live",
            Purpose::Test => "test",
        }
    }
}

/// One request to the pipeline.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where it came from.
    pub origin: Origin,
    /// What to answer.
    pub input: Input,
    /// Parameters set by the caller; they win over the prompt's and alias's.
    pub params: Params,
    /// Stream tokens (true) or ask the provider for one whole answer.
    pub stream: bool,
    /// When the request arrived, for TTFT and overhead.
    pub started: Instant,
    /// Values for the prompt's declared variables.
    pub variables: BTreeMap<String, String>,
    /// Real traffic or a dry run.
    pub purpose: Purpose,
    /// The caller's wishes for the response cache.
    pub cache: CacheControl,
    /// An alias that answers instead of the prompt's own model (an
    /// evaluation comparing models); `None` keeps the prompt's.
    pub model: Option<String>,
    /// Replaying a logged answer with its tools' recorded results: the
    /// prompt's tool calls are answered from these, and no tool runs
    /// (`switchboard eval --replay-tools`). `None`: tools run.
    pub replay_tools: Option<std::sync::Arc<Vec<super::RecordedToolResult>>>,
}

impl Request {
    /// The asker's display name, when a chat platform gave one, or the
    /// name an API caller gave the person it asks for.
    pub fn user_name(&self) -> Option<String> {
        match &self.input {
            Input::Chat(inbound) => inbound.user_name.clone(),
            _ => self.origin.label.clone(),
        }
    }

    /// A streamed request that arrived now.
    pub fn new(origin: Origin, input: Input) -> Request {
        Request {
            origin,
            input,
            params: Params::default(),
            stream: true,
            started: Instant::now(),
            variables: BTreeMap::new(),
            purpose: Purpose::Live,
            cache: CacheControl::default(),
            model: None,
            replay_tools: None,
        }
    }
}

/// Which version of a prompt to use: through a label, or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A label (`production`, `staging`, `latest`, …).
    Label(String),
    /// A version number.
    Version(i64),
}

impl Selector {
    /// Parses `3`, `v3` or a label name.
    pub fn parse(s: &str) -> Selector {
        let digits = s.strip_prefix('v').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(v) if !digits.is_empty() => Selector::Version(v),
            _ => Selector::Label(s.to_string()),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Label(l) => f.write_str(l),
            Selector::Version(v) => write!(f, "v{v}"),
        }
    }
}

/// One request's wishes (the HTTP API reads them from headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheControl {
    /// Answer from the cache when possible (`Cache-Control: no-cache` turns
    /// it off: the answer is fresh, and stored for later requests).
    pub read: bool,
    /// Store the answer (`Cache-Control: no-store` turns it off).
    pub write: bool,
    /// Keep the answer this long instead of the policy's TTL. Setting it
    /// also allows caching a sampled answer; zero stores nothing.
    pub ttl: Option<Duration>,
}

impl Default for CacheControl {
    fn default() -> Self {
        CacheControl {
            read: true,
            write: true,
            ttl: None,
        }
    }
}

/// The custom header giving a TTL in seconds.
pub const TTL_HEADER: &str = "x-switchboard-cache-ttl";

impl CacheControl {
    /// Reads `Cache-Control` (`no-cache`, `no-store`, `max-age=N`) and
    /// `x-switchboard-cache-ttl: N` (seconds; it wins over `max-age`).
    pub fn from_headers(
        cache_control: Option<&str>,
        ttl_header: Option<&str>,
    ) -> Result<CacheControl, String> {
        let mut control = CacheControl::default();
        for directive in cache_control.unwrap_or("").split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            if directive == "no-cache" {
                control.read = false;
            } else if directive == "no-store" {
                control.read = false;
                control.write = false;
            } else if let Some(n) = directive.strip_prefix("max-age=") {
                let secs: u64 = n.trim_matches('"').parse().map_err(|_| {
                    format!("`Cache-Control: max-age={n}`: the age must be whole seconds, e.g. max-age=600")
                })?;
                control.ttl = Some(Duration::from_secs(secs));
            }
        }
        if let Some(v) = ttl_header {
            let secs: u64 = v.trim().parse().map_err(|_| {
                format!("`{TTL_HEADER}: {v}`: give whole seconds, e.g. {TTL_HEADER}: 600")
            })?;
            control.ttl = Some(Duration::from_secs(secs));
        }
        Ok(control)
    }
}
