//! What can be asked: every admin [`Command`] with its arguments, built by the front ends'
//! parsers, and what the audit log records of it (its name and target).

use prompts::{Arm, Prompt};

use crate::registry::Scope;

use crate::domain::Selector;

/// One admin command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Every prompt, its newest version, labels and bindings.
    List,
    /// One version in full (default: `production`, else the newest).
    Show {
        /// The prompt.
        name: String,
        /// Which version.
        version: Option<Selector>,
    },
    /// A new prompt (its version 1).
    Create {
        /// The prompt.
        prompt: Prompt,
        /// Commit message.
        message: String,
    },
    /// A new version of an existing prompt, made from `base`.
    Edit {
        /// The new content.
        prompt: Prompt,
        /// The version the edit started from.
        base: i64,
        /// Commit message.
        message: String,
    },
    /// A unified diff between two versions.
    Diff {
        /// The prompt.
        name: String,
        /// From.
        from: Selector,
        /// To.
        to: Selector,
    },
    /// Points a label at one version.
    Promote {
        /// The prompt.
        name: String,
        /// The version.
        version: i64,
        /// The label (`production` when not given).
        label: String,
    },
    /// Moves a label back to where it pointed before its last move, or to
    /// a given version.
    Rollback {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// Where to; `None`: undo the label's last move.
        to: Option<i64>,
    },
    /// Renders a version and answers a sample input with it, recorded as a
    /// test, never as production traffic.
    Test {
        /// The prompt.
        name: String,
        /// Which version (default: `latest`).
        version: Option<Selector>,
        /// The sample question.
        text: String,
    },
    /// Binds a scope to a prompt (and label), or unbinds it.
    Bind {
        /// Where.
        scope: Scope,
        /// (prompt, label); `None` removes the binding.
        target: Option<(String, String)>,
    },
    /// Splits a label's traffic over versions by weight.
    Split {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// Versions and weights.
        arms: Vec<Arm>,
    },
    /// `/knowledge list`: the sources an answer in `scope` may read.
    KnowledgeList {
        /// The channel asked in.
        scope: Scope,
    },
    /// `/knowledge search`: what an answer in `scope` would retrieve.
    KnowledgeSearch {
        /// The channel asked in.
        scope: Scope,
        /// The question.
        query: String,
    },
    /// `/knowledge sync`: the channel's history read into the workspace's
    /// chat source (run by the front end, which reads the platform).
    KnowledgeSync {
        /// The channel.
        scope: Scope,
    },
    /// The audit log, of one prompt or of everything.
    History {
        /// The prompt, or all.
        name: Option<String>,
        /// How many entries.
        limit: i64,
    },
}

impl Command {
    /// An edit of prompt `name` from version `base`, given as the TOML a
    /// chat form or an attached file holds; `message` falls back to
    /// `default_message` when blank. The TOML must keep the prompt's name.
    pub fn edit_from_toml(
        name: &str,
        base: i64,
        toml: &str,
        message: Option<&str>,
        default_message: &str,
    ) -> Result<Command, String> {
        let prompt = Prompt::from_toml(name, toml).map_err(|e| e.to_string())?;
        if prompt.name != name {
            return Err(format!(
                "the edit is for `{name}` but the TOML names `{}`; keep the name (new prompts are created from the command line)",
                prompt.name
            ));
        }
        Ok(Command::Edit {
            prompt,
            base,
            message: message
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or(default_message)
                .to_string(),
        })
    }

    /// The command's name, as audited.
    pub fn name(&self) -> &'static str {
        match self {
            Command::List => "list",
            Command::Show { .. } => "show",
            Command::Create { .. } => "create",
            Command::Edit { .. } => "edit",
            Command::Diff { .. } => "diff",
            Command::Promote { .. } => "promote",
            Command::Rollback { .. } => "rollback",
            Command::Test { .. } => "test",
            Command::Bind { target: None, .. } => "unbind",
            Command::Bind { .. } => "bind",
            Command::Split { .. } => "split",
            Command::History { .. } => "history",
            Command::KnowledgeList { .. } => "knowledge list",
            Command::KnowledgeSearch { .. } => "knowledge search",
            Command::KnowledgeSync { .. } => "knowledge sync",
        }
    }

    /// What it acts on, as audited: `name`, `name@label`, `binding:scope`.
    pub(super) fn target(&self) -> String {
        match self {
            Command::List | Command::History { name: None, .. } => "*".into(),
            Command::Show { name, .. }
            | Command::Diff { name, .. }
            | Command::Test { name, .. }
            | Command::History {
                name: Some(name), ..
            } => name.clone(),
            Command::Create { prompt, .. } | Command::Edit { prompt, .. } => prompt.name.clone(),
            Command::Promote { name, label, .. }
            | Command::Rollback { name, label, .. }
            | Command::Split { name, label, .. } => format!("{name}@{label}"),
            Command::Bind { scope, .. } => format!("binding:{}", scope.key()),
            Command::KnowledgeList { scope }
            | Command::KnowledgeSearch { scope, .. }
            | Command::KnowledgeSync { scope } => format!("knowledge:{}", scope.key()),
        }
    }

    /// Whether it changes anything (refusals of these are audited).
    pub(super) fn writes(&self) -> bool {
        matches!(
            self,
            Command::Create { .. }
                | Command::Edit { .. }
                | Command::Promote { .. }
                | Command::Rollback { .. }
                | Command::Bind { .. }
                | Command::Split { .. }
                | Command::KnowledgeSync { .. }
        )
    }
}
