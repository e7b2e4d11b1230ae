//! The shape of one prompt version, as written in `prompts/library/*.toml`
//! and as the registry will store it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PromptError;

/// One version of a prompt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// The prompt's name, unique in the registry (`assistant`, `support`).
    pub name: String,
    /// Version number. The registry numbers versions; files do not carry
    /// one (it is read if present, and never written).
    #[serde(default = "first_version", skip_serializing)]
    pub version: i64,
    /// What the prompt is for, shown to admins.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The model alias the prompt runs with (`default`, `fast`, `smart`).
    #[serde(default = "default_alias")]
    pub model: String,
    /// The tools the model may call while answering: `[tools.NAME]` MCP
    /// servers (every tool of `NAME`, or one as `NAME.TOOL`) and the
    /// built-ins (`search_knowledge`, `thread_history`). Versioned, split
    /// and evaluated with the templates; none means a plain answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// `auto` (the model decides; the default), `required`, `none`, or the
    /// name of the one tool the model must call first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
    /// Sampling parameters.
    #[serde(default)]
    pub params: PromptParams,
    /// Declared variables and what they mean. Templates may use these plus
    /// the context variables every prompt gets ([`crate::CONTEXT_VARIABLES`]).
    /// A declared variable the caller does not supply renders as empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The response-cache policy of this prompt; unset keys use the
    /// model alias's (`[models.X.cache]`, then `[cache]`).
    #[serde(default, skip_serializing_if = "PromptCache::is_unset")]
    pub cache: PromptCache,
    /// `[retrieval]`: the knowledge this prompt searches before answering,
    /// versioned (and split, and evaluated) with its templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Retrieval>,
    /// `[assistant]`: what a chat platform's assistant pane shows when a
    /// user opens a thread with the bot (Slack's split view): a greeting
    /// and suggested prompts, versioned with the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<AssistantPane>,
    /// The chat messages, in order.
    pub messages: Vec<MessageTemplate>,
}

/// `[assistant]` of a prompt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssistantPane {
    /// The first message in a new assistant thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The heading over the suggested prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `[[assistant.prompts]]`: up to four suggestions, each a short
    /// `title` and the `message` it sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<SuggestedPrompt>,
}

/// One suggested prompt of the assistant pane.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SuggestedPrompt {
    /// What the button says.
    pub title: String,
    /// What it sends as the user's message.
    pub message: String,
}

impl AssistantPane {
    fn check(&self) -> Result<(), String> {
        if self.prompts.len() > 4 {
            return Err("[assistant] has at most 4 `prompts` (Slack shows no more)".into());
        }
        if self
            .prompts
            .iter()
            .any(|p| p.title.trim().is_empty() || p.message.trim().is_empty())
        {
            return Err("each [[assistant.prompts]] needs a `title` and a `message`".into());
        }
        Ok(())
    }
}

/// `[cache]` of a prompt: overrides of the alias's cache policy.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PromptCache {
    /// Cache this prompt's answers at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long an answer is kept, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Also cache sampled answers (temperature above 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_sampling: Option<bool>,
}

impl PromptCache {
    /// Whether nothing is set (the alias's policy applies as it is).
    pub fn is_unset(&self) -> bool {
        *self == PromptCache::default()
    }
}

/// `[retrieval]` of a prompt: which knowledge sources are searched for the
/// question, and how much of what is found the model is given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    /// The knowledge sources to search (`switchboard knowledge list`).
    pub sources: Vec<String>,
    /// How many chunks the model is given at most.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// The least cosine similarity a chunk found by dense search needs
    /// (0 to 1; 0 keeps every candidate). Lexical matches are not held to it.
    #[serde(default)]
    pub min_score: f32,
    /// Tokens the retrieved text may take of the model's context window;
    /// the conversation's history is trimmed to what is left.
    #[serde(default = "default_context_tokens")]
    pub context_tokens: u32,
    /// The template variable that receives the numbered documents.
    #[serde(default = "default_retrieval_variable")]
    pub variable: String,
    /// `hybrid` (lexical and dense, fused), `lexical` or `dense`.
    #[serde(default)]
    pub mode: SearchMode,
    /// The reciprocal rank fusion constant: a chunk ranked r in a list adds
    /// 1 / (rrf_k + r) to its score.
    #[serde(default = "default_rrf_k")]
    pub rrf_k: u32,
}

/// How retrieval searches.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Full-text and vector search, fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Full-text search only.
    Lexical,
    /// Vector search only.
    Dense,
}

impl SearchMode {
    /// The name as written in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Lexical => "lexical",
            SearchMode::Dense => "dense",
        }
    }
}

fn default_top_k() -> usize {
    4
}
fn default_context_tokens() -> u32 {
    1000
}
fn default_retrieval_variable() -> String {
    "documents".to_string()
}
fn default_rrf_k() -> u32 {
    60
}

impl Retrieval {
    /// Settings searching `sources` with every default.
    pub fn over(sources: Vec<String>) -> Retrieval {
        Retrieval {
            sources,
            top_k: default_top_k(),
            min_score: 0.0,
            context_tokens: default_context_tokens(),
            variable: default_retrieval_variable(),
            mode: SearchMode::default(),
            rrf_k: default_rrf_k(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.sources.is_empty() {
            return Err("[retrieval] needs at least one source in `sources`".into());
        }
        if let Some(bad) = self.sources.iter().find(|s| !is_source_name(s)) {
            return Err(format!(
                "[retrieval] source `{bad}` is not a source name: letters, digits, `-`, `_` and `.`"
            ));
        }
        if !(1..=50).contains(&self.top_k) {
            return Err("[retrieval] `top_k` is from 1 to 50".into());
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err("[retrieval] `min_score` is a cosine similarity from 0 to 1".into());
        }
        if self.context_tokens < 50 {
            return Err("[retrieval] `context_tokens` must be at least 50".into());
        }
        if self.rrf_k == 0 {
            return Err("[retrieval] `rrf_k` must be at least 1 (60 is usual)".into());
        }
        let v = &self.variable;
        if v.is_empty()
            || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || v.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!(
                "[retrieval] `variable` `{v}` is not a template variable name: letters, digits and `_`"
            ));
        }
        if crate::is_context_variable(v) {
            return Err(format!(
                "[retrieval] `variable` `{v}` is a context variable every prompt gets; choose another name (`documents`)"
            ));
        }
        Ok(())
    }
}

/// Whether `name` can name a knowledge source: letters, digits, `-`, `_`
/// and `.`, 1 to 64 characters.
pub fn is_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn first_version() -> i64 {
    1
}

fn default_alias() -> String {
    "default".to_string()
}

/// Sampling parameters a prompt asks for; unset ones use the provider's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptParams {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// The role of one templated message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TemplateRole {
    /// Instructions to the model.
    System,
    /// A user turn (few-shot example or the current question).
    User,
    /// An assistant turn (few-shot example).
    Assistant,
    /// Where the conversation's history goes; has no template.
    History,
}

/// One message of a prompt: a role and a minijinja template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    /// Who speaks.
    pub role: TemplateRole,
    /// The template source. Empty for `history`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
}

impl Prompt {
    /// Parses a prompt from TOML text; `file` names the source in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Prompt, PromptError> {
        let prompt: Prompt = toml::from_str(text).map_err(|e| PromptError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        prompt.check()?;
        Ok(prompt)
    }

    /// The prompt as a file: canonical TOML without the version number, so
    /// that `from_toml(to_toml(p))` gives `p` back and exporting twice gives
    /// the same bytes.
    pub fn to_toml(&self) -> String {
        // Serializing plain strings, numbers and tables cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the rules that TOML's shape cannot express.
    pub fn check(&self) -> Result<(), PromptError> {
        let invalid = |message: &str| PromptError::Invalid {
            name: self.name.clone(),
            message: message.to_string(),
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "a prompt name is letters, digits, `-` and `_` only, and not empty",
            ));
        }
        if self.messages.is_empty() {
            return Err(invalid("a prompt needs at least one message"));
        }
        let histories = self
            .messages
            .iter()
            .filter(|m| m.role == TemplateRole::History)
            .count();
        if histories > 1 {
            return Err(invalid("at most one `history` message is allowed"));
        }
        for tool in &self.tools {
            let ok = |part: &str| {
                !part.is_empty()
                    && part.len() <= 64
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            };
            let well_formed = match tool.split_once('.') {
                Some((server, name)) => ok(server) && ok(name),
                None => ok(tool),
            };
            if !well_formed {
                return Err(invalid(&format!(
                    "`tools` entry `{tool}` is not a tool: name a `[tools.NAME]` server, `NAME.TOOL` for one of its tools, or a built-in (`search_knowledge`, `thread_history`)"
                )));
            }
        }
        if self.tool_choice.is_some() && self.tools.is_empty() {
            return Err(invalid(
                "`tool_choice` is set but `tools` is empty: list the tools the model may call",
            ));
        }
        if let Some(pane) = &self.assistant {
            pane.check().map_err(|m| invalid(&m))?;
        }
        if let Some(retrieval) = &self.retrieval {
            retrieval.check().map_err(|m| invalid(&m))?;
            if self.variables.contains_key(&retrieval.variable) {
                return Err(invalid(&format!(
                    "`{}` is both a declared variable and the [retrieval] variable; remove it from [variables]",
                    retrieval.variable
                )));
            }
        }
        if self
            .messages
            .iter()
            .any(|m| m.role == TemplateRole::History && !m.template.is_empty())
        {
            return Err(invalid(
                "a `history` message has no template: it marks where the conversation goes",
            ));
        }
        Ok(())
    }
}
