//! The admin command layer: every prompt-ops action (`list`, `show`,
//! `create`, `edit`, `diff`, `promote`, `rollback`, `test`, `bind`,
//! `split`, `history`) as one platform-neutral API. Each command takes the
//! [`Actor`] who asked and checks that actor's rights itself, so a Slack
//! slash command, a Discord interaction and the CLI are all thin parsers
//! over it and none can skip a check. Results are platform-neutral
//! [`Output`]s that each front end renders its own way; refusals of
//! changes are written to the audit log.
//!
//! This file holds the [`Admin`] layer itself: the rights check every command passes and the
//! dispatch to the command groups. Beside it: `command` (what can be asked), `parse` (the
//! slash-command text), `rights` (who may do what), `output` (what is answered), `error`,
//! and one file per command group — `browse` (list, show, diff, history), `edits` (create,
//! edit), `labels` (promote, rollback, split), `bindings` (bind, unbind) and `testing`
//! (test), `knowledge` (`/knowledge list`, `search` and `sync`'s rights).

mod bindings;
mod browse;
mod command;
mod edits;
mod error;
mod knowledge;
mod labels;
mod output;
mod parse;
mod rights;
mod testing;

use crate::config::AdminConfig;
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::store::AuditRow;

pub use command::Command;
pub use error::AdminError;
pub use knowledge::{KNOWLEDGE_USAGE, parse_knowledge};
pub use output::{Output, Section};
pub use parse::{USAGE, parse_arms, parse_command};
pub use rights::{Actor, Grant, Rights};

/// The admin command layer. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    registry: Registry,
    pipeline: Option<Pipeline>,
    config: AdminConfig,
    knowledge: Option<crate::knowledge::Knowledge>,
}

impl Admin {
    /// The layer over a registry; `pipeline` answers `test` commands.
    pub fn new(registry: Registry, pipeline: Option<Pipeline>, config: AdminConfig) -> Admin {
        Admin {
            registry,
            pipeline,
            config,
            knowledge: None,
        }
    }

    /// The layer with the knowledge `/knowledge list` and `search` read.
    pub fn with_knowledge(mut self, knowledge: crate::knowledge::Knowledge) -> Admin {
        self.knowledge = Some(knowledge);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Runs one command for one actor.
    pub async fn run(&self, actor: &Actor, command: Command) -> Result<Output, AdminError> {
        self.authorize(actor, &command).await?;
        self.execute(actor, command).await
    }

    /// Checks `command` for `actor` without running it, auditing a refused
    /// change: for commands a front end runs itself (`/knowledge sync`).
    pub async fn authorize(&self, actor: &Actor, command: &Command) -> Result<(), AdminError> {
        if let Err(reason) = self.allowed(actor, command) {
            if command.writes() {
                let mut row = AuditRow::new(&actor.id, command.name(), &command.target());
                row.outcome = "refused".into();
                row.detail = Some(reason.clone());
                self.registry.audit(&row).await?;
            }
            return Err(AdminError::Forbidden {
                actor: actor.id.clone(),
                command: command.name().to_string(),
                target: command.target(),
                reason,
            });
        }
        Ok(())
    }

    /// Hands a permitted command to its group.
    async fn execute(&self, actor: &Actor, command: Command) -> Result<Output, AdminError> {
        match command {
            Command::List => self.list(),
            Command::Show { name, version } => self.show(name, version).await,
            Command::Create { prompt, message } => self.create(actor, prompt, message).await,
            Command::Edit {
                prompt,
                base,
                message,
            } => self.edit(actor, prompt, base, message).await,
            Command::Diff { name, from, to } => self.diff(name, from, to).await,
            Command::Promote {
                name,
                version,
                label,
            } => self.promote(actor, name, version, label).await,
            Command::Rollback { name, label, to } => self.rollback(actor, name, label, to).await,
            Command::Test {
                name,
                version,
                text,
            } => self.test(actor, &name, version, &text).await,
            Command::Bind { scope, target } => self.bind(actor, scope, target).await,
            Command::Split { name, label, arms } => self.split(actor, name, label, arms).await,
            Command::History { name, limit } => self.history(name, limit).await,
            Command::KnowledgeList { scope } => self.knowledge_list(&scope).await,
            Command::KnowledgeSearch { scope, query } => {
                self.knowledge_search(&scope, &query).await
            }
            Command::KnowledgeSync { .. } => Err(AdminError::Unavailable(
                "`/knowledge sync` reads the platform's history: run it from Slack or Discord, or `switchboard knowledge sync SOURCE`".into(),
            )),
        }
    }
}
