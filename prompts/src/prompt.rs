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
    /// Version number; built-in prompts are version 1 until the registry
    /// stores newer ones.
    #[serde(default = "first_version")]
    pub version: i64,
    /// What the prompt is for, shown to admins.
    #[serde(default)]
    pub description: String,
    /// The model alias the prompt runs with (`default`, `fast`, `smart`).
    #[serde(default = "default_alias")]
    pub model: String,
    /// Sampling parameters.
    #[serde(default)]
    pub params: PromptParams,
    /// Declared variables and what they mean. Templates may use these plus
    /// the context variables every prompt gets (`text`, `history`, …).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The chat messages, in order.
    pub messages: Vec<MessageTemplate>,
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
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    #[serde(default)]
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
    #[serde(default)]
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

    /// Checks the rules that TOML's shape cannot express.
    fn check(&self) -> Result<(), PromptError> {
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
