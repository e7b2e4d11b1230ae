//! The `/knowledge` commands from chat: `list` (the sources an answer in
//! this channel may read), `search QUERY` (what an answer here would
//! retrieve, with scores and links) and `sync` (this channel's history read
//! into the workspace's chat source).
//!
//! Both reads search as the channel itself would ([`Viewer::in_channel`]),
//! so an admin asking in one channel never sees another private channel's
//! threads, nor another workspace's sources. `sync` reads the platform, so
//! the front end runs it: it asks [`Admin::authorize`] first (which audits
//! a refusal) and [`Admin::audit_sync`] after.

use super::{Actor, Admin, AdminError, Command, Output, Section};
use crate::knowledge::{SearchQuery, Viewer};
use crate::registry::Scope;
use crate::store::AuditRow;

/// How `/knowledge` is used.
pub const KNOWLEDGE_USAGE: &str = "Usage: `/knowledge list` (the sources answers here may read) · \
`/knowledge search QUERY` (what an answer here would retrieve) · \
`/knowledge sync` (read this channel's history into the workspace's knowledge)";

/// Reads `/knowledge` text asked in `here` (a channel) into a command.
pub fn parse_knowledge(text: &str, here: &Scope) -> Result<Command, String> {
    let text = text.trim();
    let (verb, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let scope = here.clone();
    match verb {
        "list" if rest.trim().is_empty() => Ok(Command::KnowledgeList { scope }),
        "search" if !rest.trim().is_empty() => Ok(Command::KnowledgeSearch {
            scope,
            query: rest.trim().to_string(),
        }),
        "search" => Err(format!("`search` needs a query. {KNOWLEDGE_USAGE}")),
        "sync" if rest.trim().is_empty() => Ok(Command::KnowledgeSync { scope }),
        _ => Err(KNOWLEDGE_USAGE.to_string()),
    }
}

impl Viewer {
    /// Whoever asks in `scope` (a channel, or a thread in one): global
    /// sources, the workspace's, and that channel's private threads.
    pub fn in_channel(scope: &Scope) -> Viewer {
        let (platform, workspace, channel) = match scope {
            Scope::Global => return Viewer::only_global(),
            Scope::Workspace {
                platform,
                workspace,
            } => (platform, workspace, None),
            Scope::Channel {
                platform,
                workspace,
                channel,
            }
            | Scope::Thread {
                platform,
                workspace,
                channel,
                ..
            } => (platform, workspace, Some(channel)),
        };
        let mut scopes = vec![crate::knowledge::GLOBAL.to_string()];
        if workspace != "-" {
            scopes.push(format!("{platform}/{workspace}"));
        }
        Viewer {
            scopes: Some(scopes),
            audiences: channel
                .map(|c| vec![format!("{platform}:{c}")])
                .unwrap_or_default(),
            all_audiences: false,
        }
    }

    fn only_global() -> Viewer {
        Viewer {
            scopes: Some(vec![crate::knowledge::GLOBAL.to_string()]),
            audiences: Vec::new(),
            all_audiences: false,
        }
    }
}

impl Admin {
    /// `/knowledge list`: the sources an answer in `scope` may read.
    pub(super) async fn knowledge_list(&self, scope: &Scope) -> Result<Output, AdminError> {
        let knowledge = self.knowledge()?;
        let sources = knowledge.sources(&Viewer::in_channel(scope)).await?;
        if sources.is_empty() {
            return Ok(Output::new(
                "No knowledge sources are readable here yet: `switchboard knowledge ingest PATH --source NAME`, or `/knowledge sync` in a channel",
            ));
        }
        let rows = sources
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.kind.clone(),
                    s.scope.clone(),
                    s.documents.to_string(),
                    s.chunks.to_string(),
                    s.unembedded.to_string(),
                ]
            })
            .collect();
        Ok(Output::new(format!(
            "{} knowledge source(s) readable here",
            sources.len()
        ))
        .with(Section::Table {
            columns: [
                "source",
                "kind",
                "scope",
                "documents",
                "chunks",
                "unembedded",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }))
    }

    /// `/knowledge search QUERY`: what an answer in `scope` would retrieve.
    pub(super) async fn knowledge_search(
        &self,
        scope: &Scope,
        query: &str,
    ) -> Result<Output, AdminError> {
        let knowledge = self.knowledge()?;
        let result = knowledge
            .search(
                &SearchQuery::new(query, Vec::new(), 5),
                &Viewer::in_channel(scope),
            )
            .await?;
        let mut out = Output::new(if result.hits.is_empty() {
            format!("Nothing readable here matches “{query}”")
        } else {
            format!("{} chunk(s) for “{query}”", result.hits.len())
        });
        let mut text = String::new();
        for (n, hit) in result.hits.iter().enumerate() {
            let c = &hit.chunk;
            let place = if c.heading.is_empty() {
                c.title.clone()
            } else {
                format!("{} › {}", c.title, c.heading)
            };
            text.push_str(&format!(
                "[{}] {place} ({}, score {:.4}){}\n    {}\n",
                n + 1,
                c.source,
                hit.score,
                c.link
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default(),
                snippet(&c.body, 160),
            ));
        }
        if !text.is_empty() {
            out = out.with(Section::Text(text.trim_end().to_string()));
        }
        for w in &result.warnings {
            out = out.with(Section::Text(format!("⚠️ {w}")));
        }
        Ok(out)
    }

    /// Audits a `/knowledge sync` the front end ran, with what it did.
    pub async fn audit_sync(
        &self,
        actor: &Actor,
        command: &Command,
        outcome: Result<&str, &str>,
    ) -> Result<(), AdminError> {
        let mut row = AuditRow::new(&actor.id, command.name(), &command.target());
        match outcome {
            Ok(done) => row.after = Some(done.to_string()),
            Err(why) => {
                row.outcome = "failed".into();
                row.detail = Some(why.to_string());
            }
        }
        self.registry.audit(&row).await?;
        Ok(())
    }

    fn knowledge(&self) -> Result<&crate::knowledge::Knowledge, AdminError> {
        self.knowledge.as_ref().ok_or_else(|| {
            AdminError::Unavailable("knowledge is not set up in this process".into())
        })
    }
}

/// The start of a chunk, on one line, cut by words.
fn snippet(body: &str, max: usize) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max).collect();
    if let Some(space) = out.rfind(' ') {
        out.truncate(space);
    }
    out + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Scope {
        Scope::Channel {
            platform: "slack".into(),
            workspace: "T1".into(),
            channel: "C9".into(),
        }
    }

    #[test]
    fn the_three_verbs_parse_and_anything_else_gets_the_usage() {
        assert!(matches!(
            parse_knowledge("list", &here()),
            Ok(Command::KnowledgeList { .. })
        ));
        match parse_knowledge("search  retry policy ", &here()) {
            Ok(Command::KnowledgeSearch { query, .. }) => assert_eq!(query, "retry policy"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_knowledge("sync", &here()),
            Ok(Command::KnowledgeSync { .. })
        ));
        assert!(
            parse_knowledge("search", &here())
                .unwrap_err()
                .contains("needs a query")
        );
        for bad in ["", "drop", "sync everything", "list all"] {
            assert_eq!(parse_knowledge(bad, &here()).unwrap_err(), KNOWLEDGE_USAGE);
        }
    }

    #[test]
    fn a_channel_sees_global_its_workspace_and_its_own_private_threads() {
        let v = Viewer::in_channel(&here());
        assert_eq!(
            v.scopes,
            Some(vec!["global".to_string(), "slack/T1".to_string()])
        );
        assert_eq!(v.audiences, vec!["slack:C9".to_string()]);
        assert!(!v.all_audiences);
        let dm = Viewer::in_channel(&Scope::Channel {
            platform: "discord".into(),
            workspace: "-".into(),
            channel: "D1".into(),
        });
        assert_eq!(dm.scopes, Some(vec!["global".to_string()]));
    }
}
