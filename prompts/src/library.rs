//! The default prompts shipped in `prompts/library/`, compiled into the
//! binary so that a fresh install answers without any setup. The registry
//! seeds itself from these; until then they are what the pipeline uses.

use std::collections::BTreeMap;

use crate::{Prompt, PromptError};

/// The built-in prompt files: (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("assistant.toml", include_str!("../library/assistant.toml")),
    // The message shortcuts' prompts ("Summarize thread", "Ask … about this").
    ("summarize.toml", include_str!("../library/summarize.toml")),
    ("ask_about.toml", include_str!("../library/ask_about.toml")),
];

/// A set of prompts looked up by name.
#[derive(Debug, Clone, Default)]
pub struct Library {
    prompts: BTreeMap<String, Prompt>,
}

impl Library {
    /// The prompts shipped with Switchboard.
    pub fn builtin() -> Result<Library, PromptError> {
        let mut library = Library::default();
        for (file, text) in BUILTIN {
            library.insert(Prompt::from_toml(file, text)?);
        }
        Ok(library)
    }

    /// Adds or replaces a prompt.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    /// The prompt with this name, if any.
    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    /// The names of all prompts, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prompts_parse_and_include_the_default_assistant() {
        let library = Library::builtin().expect("built-in prompts must parse");
        let assistant = library.get("assistant").expect("assistant prompt");
        assert_eq!(assistant.model, "default");
        assert_eq!(
            library.names().collect::<Vec<_>>(),
            vec!["ask_about", "assistant", "summarize"]
        );
    }
}
