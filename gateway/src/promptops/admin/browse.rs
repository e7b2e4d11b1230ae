//! The read-only commands: `list` (every prompt with its labels and bindings), `show` (one
//! version in full), `diff` (between two versions) and `history` (the audit log).

use super::output::{arms_text, format_ms, readable};
use super::{Admin, AdminError, Output, Section};
use crate::domain::Selector;
use crate::registry::{LATEST, Registry};

impl Admin {
    /// `list`.
    pub(super) fn list(&self) -> Result<Output, AdminError> {
        let r = &self.registry;
        let rows = r
            .list()
            .into_iter()
            .map(|p| {
                vec![
                    p.name,
                    format!("v{}", p.latest),
                    p.labels
                        .iter()
                        .map(|(l, arms)| format!("{l}→{}", arms_text(arms)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    p.bound
                        .iter()
                        .map(|(s, l)| format!("{s}@{l}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect::<Vec<_>>();
        Ok(
            Output::new(format!("{} prompts", rows.len())).with(Section::Table {
                columns: vec![
                    "prompt".into(),
                    "newest".into(),
                    "labels".into(),
                    "bound to".into(),
                ],
                rows,
            }),
        )
    }

    /// `show`: the given version, else `production`, else the newest.
    pub(super) async fn show(
        &self,
        name: String,
        version: Option<Selector>,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let selector = match version {
            Some(s) => s,
            None => default_selector(r, &name),
        };
        let (row, prompt) = r.version(&name, &selector).await?;
        let labels: Vec<String> = r
            .list()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| {
                p.labels
                    .into_iter()
                    .filter(|(_, arms)| arms.iter().any(|a| a.version == row.version))
                    .map(|(l, _)| l)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Output::new(format!("{name} v{}", row.version))
            .with(Section::Text(format!(
                "saved by {} at {}: {}{}",
                row.author,
                format_ms(row.created_at_ms),
                row.message,
                if labels.is_empty() {
                    String::new()
                } else {
                    format!("\nlabels: {}", labels.join(", "))
                }
            )))
            .with(Section::Code {
                language: Some("toml".into()),
                text: prompt.to_toml(),
            }))
    }

    /// `diff`.
    pub(super) async fn diff(
        &self,
        name: String,
        from: Selector,
        to: Selector,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let (_, a) = r.version(&name, &from).await?;
        let (_, b) = r.version(&name, &to).await?;
        let text = prompts::diff(&a, &b);
        let summary = if text.is_empty() {
            format!("{name} v{} and v{} are the same", a.version, b.version)
        } else {
            format!("{name}: v{} → v{}", a.version, b.version)
        };
        Ok(Output::new(summary).with(Section::Code {
            language: Some("diff".into()),
            text,
        }))
    }

    /// `history`, of one prompt or of everything.
    pub(super) async fn history(
        &self,
        name: Option<String>,
        limit: i64,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let rows = r.history(name.as_deref(), limit).await?;
        let table = rows
            .into_iter()
            .map(|a| {
                vec![
                    format_ms(a.at_ms),
                    a.actor,
                    a.action,
                    a.target,
                    a.before.as_deref().map_or("-".into(), readable),
                    a.after.as_deref().map_or("-".into(), readable),
                    if a.outcome == "ok" {
                        a.detail.unwrap_or_default()
                    } else {
                        format!("REFUSED: {}", a.detail.unwrap_or_default())
                    },
                ]
            })
            .collect::<Vec<_>>();
        Ok(
            Output::new(format!("{} entries", table.len())).with(Section::Table {
                columns: ["when", "who", "action", "target", "before", "after", "note"]
                    .map(String::from)
                    .to_vec(),
                rows: table,
            }),
        )
    }
}

/// `production` if the prompt has it, else `latest`.
fn default_selector(r: &Registry, name: &str) -> Selector {
    let has_production = r
        .list()
        .iter()
        .any(|p| p.name == name && p.labels.contains_key(crate::registry::PRODUCTION));
    Selector::Label(if has_production {
        crate::registry::PRODUCTION.into()
    } else {
        LATEST.into()
    })
}
