//! Chat templating: renders a conversation with the model's own chat template and tokenizes
//! it, and, when a conversation is longer than the context window, drops its oldest turns
//! until it fits (or refuses it, as the options say). Rendering happens on the caller's
//! thread, before a slot is taken.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::{ChatTurn, Engine, GenerateError, GenerateRequest, LoadError, Overflow};

/// The model's chat template, checked by rendering a one-line conversation with it, so that a
/// model llama.cpp cannot template fails at load rather than on the first request.
pub(super) fn chat_template(
    model: &LlamaModel,
    path: &Path,
) -> Result<LlamaChatTemplate, LoadError> {
    let template = model
        .chat_template(None)
        .map_err(|e| LoadError::ChatTemplate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let probe = LlamaChatMessage::new("user".into(), "hello".into()).map_err(|e| {
        LoadError::ChatTemplate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    model
        .apply_chat_template(&template, &[probe], true)
        .map_err(|e| LoadError::ChatTemplate {
            path: path.to_path_buf(),
            detail: format!("llama.cpp does not recognise the template ({e})"),
        })?;
    Ok(template)
}

impl Engine {
    /// Renders and tokenizes the conversation, trimming it to fit when allowed.
    pub(super) fn prepare(
        &self,
        req: &GenerateRequest,
    ) -> Result<(Vec<LlamaToken>, usize), GenerateError> {
        let context = self.shared.options.context_tokens;
        let budget = (context as usize).saturating_sub(req.max_tokens as usize);
        let all: Vec<&ChatTurn> = req.messages.iter().collect();
        let tokens = self.render(&all)?;
        if tokens.len() <= budget {
            return Ok((tokens, 0));
        }
        let overflow = |prompt_tokens: usize| GenerateError::ContextOverflow {
            prompt_tokens: token_count(prompt_tokens),
            max_tokens: req.max_tokens,
            context,
        };
        if self.shared.options.overflow == Overflow::Refuse {
            return Err(overflow(tokens.len()));
        }

        // Turns that may go, oldest first: all but system turns and the last user turn.
        let last_user = all.iter().rposition(|t| t.role == "user");
        let removable: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].role != "system" && Some(i) != last_user)
            .collect();
        let without_oldest = |k: usize| -> Vec<&ChatTurn> {
            let gone = &removable[..k];
            (0..all.len())
                .filter(|i| !gone.contains(i))
                .map(|i| all[i])
                .collect()
        };
        // Dropping more turns never lengthens the prompt, so search for the fewest drops
        // that fit (a few renders even for long histories).
        let shortest = self.render(&without_oldest(removable.len()))?;
        if shortest.len() > budget {
            return Err(overflow(shortest.len()));
        }
        let (mut too_few, mut enough) = (0, removable.len());
        let mut best = shortest;
        while enough - too_few > 1 {
            let mid = too_few + (enough - too_few) / 2;
            let tokens = self.render(&without_oldest(mid))?;
            if tokens.len() <= budget {
                enough = mid;
                best = tokens;
            } else {
                too_few = mid;
            }
        }
        Ok((best, enough))
    }

    /// Renders the turns with the chat template and tokenizes the result.
    pub(super) fn render(&self, turns: &[&ChatTurn]) -> Result<Vec<LlamaToken>, GenerateError> {
        let messages = turns
            .iter()
            .map(|t| {
                LlamaChatMessage::new(t.role.clone(), t.content.clone()).map_err(|_| {
                    GenerateError::InvalidRequest(format!(
                        "a `{}` message contains a NUL character",
                        t.role
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let model = &self.shared.model;
        let prompt = catch_unwind(AssertUnwindSafe(|| {
            model.apply_chat_template(&self.shared.template, &messages, true)
        }))
        .map_err(|_| GenerateError::Template("the template engine panicked".into()))?
        .map_err(|e| GenerateError::Template(e.to_string()))?;
        Ok(model.vocab().tokenize(prompt.as_bytes(), true, true))
    }
}

/// A token count as the API reports it (saturating; contexts are far smaller).
pub(super) fn token_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
