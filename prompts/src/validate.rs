//! Validation on save: a prompt version is checked before anything is
//! stored, so a broken template never reaches users. It must parse, name
//! only registry prompts in includes (without loops), use only declared or
//! context variables, and render against sample values within the fuel
//! and size limits.

use std::collections::BTreeMap;

use crate::Prompt;
use crate::context::{CONTEXT_VARIABLES, is_context_variable};
use crate::render::{Compiled, IncludeSource, RenderContext, Turn};

/// Why a version was not saved: every problem found, each saying what to fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("prompt `{prompt}` was not saved:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ValidationError {
    /// The prompt's name.
    pub prompt: String,
    /// What is wrong, one line each.
    pub problems: Vec<String>,
}

/// Checks a prompt and compiles it. `includes` looks up registry prompts
/// by name (see [`crate::include_text`]).
pub fn validate(prompt: &Prompt, includes: IncludeSource<'_>) -> Result<Compiled, ValidationError> {
    let fail = |problems: Vec<String>| ValidationError {
        prompt: prompt.name.clone(),
        problems,
    };
    prompt.check().map_err(|e| fail(vec![e.to_string()]))?;
    for name in prompt.variables.keys() {
        if is_context_variable(name) {
            return Err(fail(vec![format!(
                "`{name}` is a context variable that every prompt gets; remove it from [variables]"
            )]));
        }
    }
    let compiled =
        Compiled::new(prompt.clone(), includes).map_err(|e| fail(vec![e.to_string()]))?;

    let globals = compiled.globals();
    let mut problems = Vec::new();
    let retrieval_variable = prompt.retrieval.as_ref().map(|r| r.variable.as_str());
    if let Some(wanted) = retrieval_variable
        && !compiled
            .variables_used()
            .iter()
            .any(|(var, _, _)| var == wanted)
    {
        return Err(fail(vec![format!(
            "[retrieval] finds documents for `{{{{ {wanted} }}}}`, but no template uses it: add it to the system message (or remove [retrieval])"
        )]));
    }
    for (var, place, line) in compiled.variables_used() {
        if Some(var.as_str()) == retrieval_variable {
            continue;
        }
        if prompt.variables.contains_key(&var)
            || is_context_variable(&var)
            || globals.contains(&var)
        {
            continue;
        }
        let at = line.map_or(String::new(), |l| format!(", line {l}"));
        let declared = if prompt.variables.is_empty() {
            "none".to_string()
        } else {
            prompt
                .variables
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        problems.push(format!(
            "{place}{at}: unknown variable `{var}`; declared variables are: {declared}; declare it under [variables], or use a context variable ({})",
            CONTEXT_VARIABLES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }

    // A trial render against sample values finds run-time errors: fuel
    // running out, output too large, filters applied to the wrong type.
    compiled
        .render(&sample_context(prompt))
        .map_err(|e| fail(vec![format!("trial render with sample values failed: {e}")]))?;
    Ok(compiled)
}

/// Sample values for a trial render: every variable set, a short history.
pub fn sample_context(prompt: &Prompt) -> RenderContext {
    let mut variables = BTreeMap::new();
    for (name, _) in CONTEXT_VARIABLES {
        variables.insert(name.to_string(), format!("sample {name}"));
    }
    for name in prompt.variables.keys() {
        variables.insert(name.clone(), format!("sample {name}"));
    }
    if let Some(retrieval) = &prompt.retrieval {
        variables.insert(
            retrieval.variable.clone(),
            "[1] Sample document › Heading\nSample text.".to_string(),
        );
    }
    variables.remove("text");
    variables.remove("history");
    RenderContext {
        text: "What is the capital of France?".to_string(),
        history: vec![
            Turn {
                role: "user".into(),
                name: Some("sample user".into()),
                content: "Hello".into(),
            },
            Turn {
                role: "assistant".into(),
                name: None,
                content: "Hi! How can I help?".into(),
            },
        ],
        variables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(system: &str, variables: &[&str]) -> Prompt {
        let vars: String = variables
            .iter()
            .map(|v| format!("{v} = \"a variable\"\n"))
            .collect();
        let text = format!(
            "name = \"p\"\n[variables]\n{vars}\n[[messages]]\nrole = \"system\"\ntemplate = '''{system}'''\n[[messages]]\nrole = \"user\"\ntemplate = \"{{{{ text }}}}\"\n"
        );
        Prompt::from_toml("p.toml", &text).unwrap()
    }

    fn problems(system: &str, variables: &[&str]) -> String {
        validate(&prompt(system, variables), &|_| None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn syntax_errors_name_the_line_and_column() {
        let err = problems("Hello\n{{ user_name }\n", &[]);
        assert!(
            err.contains("message 1") && err.contains("line 2, column"),
            "{err}"
        );
    }

    #[test]
    fn undeclared_variables_are_named_with_the_declared_ones() {
        let err = problems("Hi {{ user_name }}\nTone: {{ tnoe }}", &["tone"]);
        assert!(
            err.contains("line 2: unknown variable `tnoe`; declared variables are: tone"),
            "{err}"
        );
        // Declared, context, loop and set variables and globals are fine.
        let ok = prompt(
            "{{ tone }} {{ bot_name }} {% set x = 1 %}{{ x }}{% for t in history %}{{ t.content }}{% endfor %}{{ range(2) | length }}",
            &["tone"],
        );
        validate(&ok, &|_| None).unwrap();
    }

    #[test]
    fn fuel_bombs_and_huge_outputs_fail_the_trial_render() {
        let err = problems(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &[],
        );
        assert!(
            err.contains("trial render") && err.contains("fuel"),
            "{err}"
        );
        let err = problems(
            "{% for i in range(99999) %}{{ \"0123456789\" }}{% endfor %}",
            &[],
        );
        assert!(
            err.contains("trial render") && err.contains("bytes"),
            "{err}"
        );
        let err = problems("{% for i in range(1000000000) %}x{% endfor %}", &[]);
        assert!(err.contains("trial render"), "{err}");
    }

    #[test]
    fn declaring_a_context_variable_is_refused() {
        let err = problems("hi", &["user_name"]);
        assert!(err.contains("context variable"), "{err}");
    }
}
