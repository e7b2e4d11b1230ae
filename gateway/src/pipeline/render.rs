//! Stage 4, render: the prompt version's templates rendered, sandboxed,
//! into chat messages, with the prompt's parameters and cache policy.

use std::collections::BTreeMap;

use prompts::{RenderContext, Turn};

use super::context::{ANSWER_RESERVE, estimated_tokens};
use super::{Pipeline, PipelineError, Prepared};
use crate::domain::{ChatMessage, Params, Role};
use crate::guards::cache::CachePolicy;
use crate::registry::Resolved;

impl Pipeline {
    /// Renders `prompt` for `model` (the prompt's own when `None`).
    pub(super) fn render(
        &self,
        prompt: &Resolved,
        model: Option<&str>,
        text: &str,
        history: &[ChatMessage],
        mut variables: BTreeMap<String, String>,
        params: &Params,
    ) -> Result<Prepared, PipelineError> {
        let _span = tracing::info_span!("prompt.render").entered();
        variables.insert("bot_name".to_string(), self.inner.options.bot_name.clone());
        let p = prompt.compiled.prompt();
        let model = model.unwrap_or(&p.model).to_string();
        let render = |history: &[ChatMessage]| -> Result<Vec<ChatMessage>, PipelineError> {
            let ctx = RenderContext {
                text: text.to_string(),
                history: history
                    .iter()
                    .map(|m| Turn {
                        role: m.role.as_str().to_string(),
                        name: None,
                        content: m.content.clone(),
                    })
                    .collect(),
                variables: variables.clone(),
            };
            Ok(prompt
                .compiled
                .render(&ctx)?
                .into_iter()
                .map(|m| ChatMessage::new(Role::parse(&m.role).unwrap_or(Role::User), m.content))
                .collect())
        };
        let mut messages = render(history)?;
        if let Some(window) = self.inner.options.context_windows.get(&model) {
            // The oldest turns go first until the prompt and the answer fit.
            let answer = params
                .max_tokens
                .or(p.params.max_tokens)
                .unwrap_or(ANSWER_RESERVE.min(window / 4));
            let budget = u64::from(window.saturating_sub(answer));
            let mut dropped = 0;
            while dropped < history.len() && estimated_tokens(&messages) > budget {
                dropped += 1;
                messages = render(&history[dropped..])?;
            }
            if dropped > 0 {
                tracing::debug!(
                    alias = %model,
                    dropped,
                    kept = history.len() - dropped,
                    window,
                    "trimmed the conversation history to the model's context window"
                );
            }
        }
        let p = prompt.compiled.prompt();
        let prompt_params = Params {
            temperature: p.params.temperature,
            top_p: p.params.top_p,
            max_tokens: p.params.max_tokens,
            stop: p.params.stop.clone(),
            seed: None,
            ..Params::default()
        };
        Ok(Prepared {
            alias: model.clone(),
            prompt: Some((p.name.clone(), p.version)),
            label: prompt.label.clone(),
            messages,
            params: params.clone().or(&prompt_params),
            images_unread: Vec::new(),
            retrieval: None,
            tools: p.tools.clone(),
            tool_choice: p.tool_choice.clone(),
            cache: (!p.cache.is_unset()).then(|| {
                let alias = self.inner.guards.cache.policy(&model);
                CachePolicy {
                    enabled: p.cache.enabled.unwrap_or(alias.enabled),
                    ttl: p
                        .cache
                        .ttl_secs
                        .map_or(alias.ttl, std::time::Duration::from_secs),
                    allow_sampling: p.cache.allow_sampling.unwrap_or(alias.allow_sampling),
                }
            }),
        })
    }
}
