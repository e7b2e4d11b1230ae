//! `[models.ALIAS]`: the model names prompts and API callers use, each a list of
//! `provider/model` targets in fallback order with its default parameters; the rule that
//! every target names a defined provider; and [`Price`], what a model costs.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AliasCacheConfig, ConfigError, ProviderConfig};
use crate::domain::Params;

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

impl Price {
    /// The cost of one request in USD.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input + output_tokens as f64 * self.output) / 1_000_000.0
    }
}

/// `[models.ALIAS]`: a model name that prompts and API callers use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasConfig {
    /// `provider/model` targets in fallback order.
    pub targets: Vec<String>,
    /// Default parameters for this alias.
    #[serde(default)]
    pub params: Params,
    /// The response cache's policy for this alias; unset keys take `[cache]`'s.
    #[serde(default)]
    pub cache: AliasCacheConfig,
    /// The context window of this alias's smallest target, in tokens:
    /// conversation history is trimmed, oldest first, so that the prompt
    /// and the answer fit. Unset: the embedded model's `context_tokens`
    /// when a target is local, else no trimming (hosted models' windows are
    /// large; the adapters cap history by `history_chars`).
    #[serde(default)]
    pub context_tokens: Option<u32>,
    /// Every target of this alias reads images: images attached to a
    /// question are sent with it. Otherwise they are left out and the
    /// answer says they were not read.
    #[serde(default)]
    pub vision: bool,
}

impl AliasConfig {
    /// Rules of `[models.ALIAS]`: every target is `provider/model` with a defined provider.
    pub(super) fn check(
        &self,
        alias: &str,
        providers: &BTreeMap<String, ProviderConfig>,
    ) -> Result<(), ConfigError> {
        if self.targets.is_empty() {
            return Err(ConfigError::key(
                format!("models.{alias}.targets"),
                None,
                "needs at least one `provider/model` target",
            ));
        }
        for (i, target) in self.targets.iter().enumerate() {
            let key = format!("models.{alias}.targets[{i}]");
            let Some((provider, model)) = target.split_once('/') else {
                return Err(ConfigError::key(
                    key,
                    Some(target.clone()),
                    "must be `provider/model`, e.g. `openai/gpt-4o-mini`",
                ));
            };
            if model.is_empty() {
                return Err(ConfigError::key(
                    key,
                    Some(target.clone()),
                    "names no model after the `/`",
                ));
            }
            if !providers.contains_key(provider) {
                let known: Vec<&str> = providers.keys().map(String::as_str).collect();
                return Err(ConfigError::key(
                    key,
                    Some(target.clone()),
                    format!(
                        "provider `{provider}` is not defined; defined providers: {}",
                        if known.is_empty() {
                            "(none)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}
