//! Sandboxed rendering of a prompt into chat messages.
//!
//! Templates are written by admins; everything that comes from users (the
//! question, the thread history, names) reaches a template only as a
//! variable's value, never as template source. The environment has no
//! loader, treats undefined variables as errors, and is fuel-limited so a
//! runaway loop ends with an error instead of eating the CPU.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::{Prompt, TemplateRole};

/// How many template instructions one message may execute.
const FUEL: u64 = 200_000;
/// The largest a rendered message may be, in bytes.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// One earlier message of the conversation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// Who said it, if known (a display name).
    pub name: Option<String>,
    /// What was said.
    pub content: String,
}

/// Everything a template can see.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// The user's current message.
    pub text: String,
    /// The conversation so far, oldest first.
    pub history: Vec<Turn>,
    /// Named values: declared variables and context variables
    /// (`bot_name`, `platform`, `user_name`, …).
    pub variables: BTreeMap<String, String>,
}

/// A rendered chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Why a prompt could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed: a syntax error, an undefined variable, fuel
    /// running out.
    #[error("prompt `{prompt}` v{version}, message {index}: {detail}")]
    Template {
        /// The prompt's name.
        prompt: String,
        /// Its version.
        version: i64,
        /// Which message (1-based).
        index: usize,
        /// minijinja's explanation, with line numbers.
        detail: String,
    },
    /// A rendered message is larger than allowed.
    #[error(
        "prompt `{prompt}` v{version}, message {index}: rendered to {bytes} bytes, over the limit of {limit}; shorten the template or the loop that builds it"
    )]
    TooLarge {
        /// The prompt's name.
        prompt: String,
        /// Its version.
        version: i64,
        /// Which message (1-based).
        index: usize,
        /// The rendered size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

impl Prompt {
    /// Renders the prompt's messages for one request.
    pub fn render(&self, ctx: &RenderContext) -> Result<Vec<RenderedMessage>, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        // Values only: `text` and `history` are data, never parsed as templates.
        let mut values: BTreeMap<&str, Value> = ctx
            .variables
            .iter()
            .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
            .collect();
        values.insert("text", Value::from(ctx.text.as_str()));
        values.insert(
            "history",
            Value::from(minijinja::value::Serde(&ctx.history)),
        );
        let values = Value::from(values);

        let mut out = Vec::with_capacity(self.messages.len() + ctx.history.len());
        for (i, message) in self.messages.iter().enumerate() {
            let role = match message.role {
                TemplateRole::History => {
                    out.extend(ctx.history.iter().map(|t| RenderedMessage {
                        role: t.role.clone(),
                        content: t.content.clone(),
                    }));
                    continue;
                }
                TemplateRole::System => "system",
                TemplateRole::User => "user",
                TemplateRole::Assistant => "assistant",
            };
            let fail = |detail: String| RenderError::Template {
                prompt: self.name.clone(),
                version: self.version,
                index: i + 1,
                detail,
            };
            let template = env
                .template_from_str(&message.template)
                .map_err(|e| fail(describe(&e)))?;
            let content = template.render(&values).map_err(|e| fail(describe(&e)))?;
            if content.len() > MAX_MESSAGE_BYTES {
                return Err(RenderError::TooLarge {
                    prompt: self.name.clone(),
                    version: self.version,
                    index: i + 1,
                    bytes: content.len(),
                    limit: MAX_MESSAGE_BYTES,
                });
            }
            out.push(RenderedMessage {
                role: role.to_string(),
                content,
            });
        }
        Ok(out)
    }
}

/// minijinja's error with its line number, on one line.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "line {line}: {}",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageTemplate;

    fn prompt(templates: &[(TemplateRole, &str)]) -> Prompt {
        Prompt {
            name: "t".into(),
            version: 3,
            description: String::new(),
            model: "default".into(),
            params: Default::default(),
            variables: Default::default(),
            messages: templates
                .iter()
                .map(|(role, t)| MessageTemplate {
                    role: *role,
                    template: t.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn user_text_with_template_syntax_is_rendered_literally() {
        let p = prompt(&[(TemplateRole::User, "{{ text }}")]);
        let ctx = RenderContext {
            text: "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}".into(),
            ..Default::default()
        };
        let out = p.render(&ctx).unwrap();
        assert_eq!(out[0].content, ctx.text);
    }

    #[test]
    fn history_goes_where_the_placeholder_is() {
        let p = prompt(&[
            (TemplateRole::System, "sys"),
            (TemplateRole::History, ""),
            (TemplateRole::User, "{{ text }}"),
        ]);
        let ctx = RenderContext {
            text: "now".into(),
            history: vec![
                Turn {
                    role: "user".into(),
                    name: None,
                    content: "a".into(),
                },
                Turn {
                    role: "assistant".into(),
                    name: None,
                    content: "b".into(),
                },
            ],
            ..Default::default()
        };
        let roles: Vec<_> = p
            .render(&ctx)
            .unwrap()
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("system".into(), "sys".into()),
                ("user".into(), "a".into()),
                ("assistant".into(), "b".into()),
                ("user".into(), "now".into()),
            ]
        );
    }

    #[test]
    fn undefined_variables_and_fuel_bombs_are_errors() {
        let p = prompt(&[(TemplateRole::System, "hello\n{{ usr }}")]);
        let err = p.render(&RenderContext::default()).unwrap_err().to_string();
        assert!(err.contains("message 1") && err.contains("line 2"), "{err}");

        let p = prompt(&[(
            TemplateRole::System,
            "{% for i in range(1000000000) %}x{% endfor %}",
        )]);
        let err = p.render(&RenderContext::default()).unwrap_err().to_string();
        assert!(err.contains("fuel") || err.contains("range"), "{err}");
    }
}
