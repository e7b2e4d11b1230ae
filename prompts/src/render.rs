//! Sandboxed rendering of a prompt into chat messages.
//!
//! Templates are written by admins; everything that comes from users (the
//! question, the thread history, names) reaches a template only as a
//! variable's value, never as template source. A prompt is compiled once
//! per version into a [`Compiled`] environment that holds its own messages
//! and the registry prompts it includes, and nothing else: there is no file
//! loader, so `{% include %}` can only name another registry prompt.
//! Undefined variables are errors, rendering is fuel-limited, and output is
//! cut off at a size limit while it is written, so neither a runaway loop
//! nor a megabyte message gets far.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

use crate::{Prompt, TemplateRole};

/// How many template instructions one message may execute.
pub const FUEL: u64 = 200_000;
/// The largest a rendered message may be, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// How deep includes may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

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
    /// Named values: context variables (`bot_name`, `platform`,
    /// `user_name`, …) and values for the prompt's declared variables.
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

/// Why a prompt could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template failed: a syntax error, an undefined variable, fuel
    /// running out.
    #[error("prompt `{prompt}` v{version}, {place}: {detail}")]
    Template {
        /// The prompt's name.
        prompt: String,
        /// Its version.
        version: i64,
        /// `message N` or `included prompt `x``, with line and column.
        place: String,
        /// minijinja's explanation.
        detail: String,
    },
    /// A rendered message is larger than allowed.
    #[error(
        "prompt `{prompt}` v{version}, message {index}: renders to more than {limit} bytes; shorten the template or the loop that builds it"
    )]
    TooLarge {
        /// The prompt's name.
        prompt: String,
        /// Its version.
        version: i64,
        /// Which message (1-based).
        index: usize,
        /// The limit.
        limit: usize,
    },
    /// An `{% include %}` names something that is not a registry prompt, or
    /// prompts include each other in a loop.
    #[error("prompt `{prompt}`: {message}")]
    Include {
        /// The prompt's name.
        prompt: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A prompt version compiled for rendering: its templates and the prompts
/// it includes, parsed once. Cheap to share behind an `Arc`.
pub struct Compiled {
    prompt: Prompt,
    env: Environment<'static>,
    /// Template name of each message (`None` for the history placeholder).
    names: Vec<Option<String>>,
    /// Whether any template reads `history` (building it costs a little).
    reads_history: bool,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.prompt.name)
            .field("version", &self.prompt.version)
            .finish()
    }
}

/// Looks up what a registry prompt contributes when included: the source
/// of its first system message (else its first templated message).
pub type IncludeSource<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The text a prompt contributes when another prompt includes it.
pub fn include_text(prompt: &Prompt) -> Option<&str> {
    prompt
        .messages
        .iter()
        .find(|m| m.role == TemplateRole::System)
        .or_else(|| {
            prompt
                .messages
                .iter()
                .find(|m| m.role != TemplateRole::History)
        })
        .map(|m| m.template.as_str())
}

impl Compiled {
    /// Compiles a prompt. `includes` returns the include text of a registry
    /// prompt by name (see [`include_text`]); includes are followed to
    /// their end, so a missing prompt or a loop is found here.
    pub fn new(prompt: Prompt, includes: IncludeSource<'_>) -> Result<Compiled, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        let mut names = Vec::with_capacity(prompt.messages.len());
        let mut included = BTreeSet::new();
        let mut reads_history = false;
        for (i, message) in prompt.messages.iter().enumerate() {
            if message.role == TemplateRole::History {
                names.push(None);
                continue;
            }
            let name = format!("#{}", i + 1);
            env.add_template_owned(name.clone(), message.template.clone())
                .map_err(|e| template_error(&prompt, &e, Some(&message.template)))?;
            let mut chain = vec![prompt.name.clone()];
            add_includes(
                &prompt,
                &message.template,
                includes,
                &mut env,
                &mut included,
                &mut chain,
            )?;
            names.push(Some(name));
        }
        for name in names.iter().flatten().chain(included.iter()) {
            if let Ok(t) = env.get_template(name) {
                reads_history |= t.undeclared_variables(false).contains("history");
            }
        }
        Ok(Compiled {
            prompt,
            env,
            names,
            reads_history,
        })
    }

    /// The prompt this was compiled from.
    pub fn prompt(&self) -> &Prompt {
        &self.prompt
    }

    /// Variables the templates (and what they include) read that they do
    /// not set themselves: (name, where, line of first use).
    pub fn variables_used(&self) -> Vec<(String, String, Option<usize>)> {
        let mut out = Vec::new();
        for (name, t) in self.env.templates() {
            let place = self.place_of(name);
            let mut vars: Vec<_> = t.undeclared_variables(false).into_iter().collect();
            vars.sort();
            out.extend(vars.into_iter().map(|v| {
                let line = first_use_line(t.source(), &v);
                (v, place.clone(), line)
            }));
        }
        out
    }

    /// The names of the global functions templates may call (`range`, …).
    pub fn globals(&self) -> BTreeSet<String> {
        self.env.globals().map(|(k, _)| k.to_string()).collect()
    }

    fn place_of(&self, template: &str) -> String {
        match template.strip_prefix('#') {
            Some(i) => format!("message {i}"),
            None => format!("included prompt `{template}`"),
        }
    }

    /// Renders the messages for one request.
    pub fn render(&self, ctx: &RenderContext) -> Result<Vec<RenderedMessage>, RenderError> {
        let mut values: BTreeMap<&str, Value> = BTreeMap::new();
        // Declared variables the caller left out render as empty.
        for name in self.prompt.variables.keys() {
            values.insert(name.as_str(), Value::from(""));
        }
        if let Some(retrieval) = &self.prompt.retrieval {
            values.insert(retrieval.variable.as_str(), Value::from(""));
        }
        for (k, v) in &ctx.variables {
            values.insert(k.as_str(), Value::from(v.as_str()));
        }
        // Values only: `text` and `history` are data, never parsed as templates.
        values.insert("text", Value::from(ctx.text.as_str()));
        if self.reads_history {
            values.insert(
                "history",
                Value::from(minijinja::value::Serde(&ctx.history)),
            );
        }
        let values = Value::from(values);

        let mut out = Vec::with_capacity(self.names.len() + ctx.history.len());
        for (i, (message, name)) in self.prompt.messages.iter().zip(&self.names).enumerate() {
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
            let Some(name) = name else { continue };
            let template = self
                .env
                .get_template(name)
                .map_err(|e| template_error(&self.prompt, &e, None))?;
            let mut buf = Limited {
                buf: Vec::with_capacity(message.template.len() + 64),
                limit: MAX_MESSAGE_BYTES,
            };
            match template.render_captured_to(&values, &mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WriteFailure => {
                    return Err(RenderError::TooLarge {
                        prompt: self.prompt.name.clone(),
                        version: self.prompt.version,
                        index: i + 1,
                        limit: MAX_MESSAGE_BYTES,
                    });
                }
                Err(e) => {
                    let source = e
                        .name()
                        .and_then(|n| self.env.get_template(n).ok())
                        .map(|t| t.source().to_string());
                    return Err(template_error(&self.prompt, &e, source.as_deref()));
                }
            }
            // Templates write UTF-8 only; a lossy conversion never changes it.
            let content = String::from_utf8(buf.buf)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            out.push(RenderedMessage {
                role: role.to_string(),
                content,
            });
        }
        Ok(out)
    }
}

impl Prompt {
    /// Compiles (without includes) and renders in one step; for prompts
    /// that are rendered once. The registry keeps [`Compiled`] prompts.
    pub fn render(&self, ctx: &RenderContext) -> Result<Vec<RenderedMessage>, RenderError> {
        Compiled::new(self.clone(), &|_| None)?.render(ctx)
    }
}

/// The line where `word` first appears inside a `{{ }}` or `{% %}` tag.
fn first_use_line(source: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut offset = 0;
    while let Some(open) = source[offset..].find(['{']) {
        let start = offset + open;
        let rest = &source[start..];
        let close = if rest.starts_with("{{") {
            rest.find("}}")
        } else if rest.starts_with("{%") {
            rest.find("%}")
        } else {
            offset = start + 1;
            continue;
        };
        let end = start + close.unwrap_or(rest.len());
        let tag = &source[start..end];
        let mut from = 0;
        while let Some(pos) = tag[from..].find(word) {
            let at = from + pos;
            let before = tag[..at].chars().next_back();
            let after = tag[at + word.len()..].chars().next();
            if !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident) {
                return Some(source[..start + at].matches('\n').count() + 1);
            }
            from = at + word.len();
        }
        offset = end.max(start + 1);
    }
    None
}

/// A writer that refuses to grow past a limit.
struct Limited {
    buf: Vec<u8>,
    limit: usize,
}

impl io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(io::Error::other("output size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Follows the includes of one template source, adding each included
/// prompt's text to the environment under the prompt's name.
fn add_includes(
    prompt: &Prompt,
    source: &str,
    includes: IncludeSource<'_>,
    env: &mut Environment<'static>,
    done: &mut BTreeSet<String>,
    chain: &mut Vec<String>,
) -> Result<(), RenderError> {
    let fail = |message: String| RenderError::Include {
        prompt: prompt.name.clone(),
        message,
    };
    for name in include_names(source).map_err(fail)? {
        if chain.contains(&name) {
            chain.push(name);
            return Err(fail(format!(
                "includes form a loop: {}; a prompt cannot include itself",
                chain.join(" → ")
            )));
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "includes nest deeper than {MAX_INCLUDE_DEPTH} levels at `{name}`"
            )));
        }
        let text = includes(&name).ok_or_else(|| {
            fail(format!(
                "includes prompt `{name}`, which does not exist; create it first, or fix the name"
            ))
        })?;
        if done.insert(name.clone()) {
            env.add_template_owned(name.clone(), text.clone())
                .map_err(|e| {
                    fail(format!(
                        "included prompt `{name}` does not compile: {}",
                        describe(&e, Some(&text))
                    ))
                })?;
        }
        chain.push(name);
        add_includes(prompt, &text, includes, env, done, chain)?;
        chain.pop();
    }
    Ok(())
}

/// The prompt names a template includes, imports or extends. Only quoted
/// names are allowed: a template cannot pick what to include at run time.
pub fn include_names(source: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let end = after.find("%}").unwrap_or(after.len());
        let tag = after[..end]
            .trim_start_matches(['-', '+', '~'])
            .trim_start();
        let keyword = tag
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default();
        if matches!(keyword, "include" | "import" | "extends" | "from") {
            let arg = tag[keyword.len()..].trim_start();
            let quote = arg.chars().next().filter(|c| *c == '"' || *c == '\'');
            let name = quote.and_then(|q| arg[1..].find(q).map(|e| &arg[1..1 + e]));
            match name {
                Some(n) => names.push(n.to_string()),
                None => {
                    return Err(format!(
                        "`{{% {keyword} … %}}` must name a registry prompt in quotes, like `{{% include \"signature\" %}}`"
                    ));
                }
            }
        }
        rest = &after[end..];
    }
    Ok(names)
}

fn template_error(prompt: &Prompt, e: &minijinja::Error, source: Option<&str>) -> RenderError {
    let place = match e.name() {
        Some(n) if n.starts_with('#') => format!("message {}", &n[1..]),
        Some(n) if n != "<string>" => format!("included prompt `{n}`"),
        _ => "template".to_string(),
    };
    let detail = describe(e, source);
    let detail = if e.kind() == ErrorKind::OutOfFuel {
        format!(
            "{detail}: the template runs more than {FUEL} steps; a loop is too long (check `range(…)` bounds)"
        )
    } else {
        detail
    };
    RenderError::Template {
        prompt: prompt.name.clone(),
        version: prompt.version,
        place,
        detail,
    }
}

/// minijinja's error with its line and column, on one line.
fn describe(e: &minijinja::Error, source: Option<&str>) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    let column = match (e.range(), source) {
        (Some(r), Some(src)) if r.start <= src.len() => {
            let before = &src[..r.start];
            Some(before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1)
        }
        _ => None,
    };
    match (e.line(), column) {
        (Some(line), Some(col)) => format!("line {line}, column {col}: {what}"),
        (Some(line), None) => format!("line {line}: {what}"),
        _ => what,
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
            cache: Default::default(),
            retrieval: None,
            assistant: None,
            tools: Vec::new(),
            tool_choice: None,
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
    fn undefined_variables_fuel_bombs_and_huge_output_are_errors() {
        let p = prompt(&[(TemplateRole::System, "hello\n  {{ usr }}")]);
        let err = p.render(&RenderContext::default()).unwrap_err().to_string();
        assert!(
            err.contains("message 1") && err.contains("line 2, column 6"),
            "{err}"
        );

        let p = prompt(&[(
            TemplateRole::System,
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        )]);
        let err = p.render(&RenderContext::default()).unwrap_err().to_string();
        assert!(err.contains("fuel"), "{err}");

        let p = prompt(&[(
            TemplateRole::System,
            "{% for i in range(100) %}{{ text }}{% endfor %}",
        )]);
        let ctx = RenderContext {
            text: "y".repeat(10_000),
            ..Default::default()
        };
        let err = p.render(&ctx).unwrap_err().to_string();
        assert!(err.contains("more than 262144 bytes"), "{err}");
    }

    #[test]
    fn includes_name_registry_prompts_only_and_loops_are_refused() {
        let p = prompt(&[(TemplateRole::System, "A {% include \"sig\" %}")]);
        let lookup = |name: &str| (name == "sig").then(|| "-- {{ bot_name }}".to_string());
        let compiled = Compiled::new(p.clone(), &lookup).unwrap();
        let mut ctx = RenderContext::default();
        ctx.variables.insert("bot_name".into(), "Bot".into());
        assert_eq!(compiled.render(&ctx).unwrap()[0].content, "A -- Bot");

        let err = p.render(&ctx).unwrap_err().to_string();
        assert!(err.contains("`sig`, which does not exist"), "{err}");

        let looping = |name: &str| match name {
            "sig" => Some("{% include \"t\" %}".to_string()),
            "t" => Some("{% include \"sig\" %}".to_string()),
            _ => None,
        };
        let err = Compiled::new(p.clone(), &looping).unwrap_err().to_string();
        assert!(err.contains("loop: t → sig → t"), "{err}");

        let dynamic = prompt(&[(TemplateRole::System, "{% include name %}")]);
        let err = Compiled::new(dynamic, &lookup).unwrap_err().to_string();
        assert!(err.contains("in quotes"), "{err}");
    }
}
