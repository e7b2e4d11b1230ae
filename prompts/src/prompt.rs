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
    /// The chat messages, in order.
    pub messages: Vec<MessageTemplate>,
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
