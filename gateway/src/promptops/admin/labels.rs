//! The commands that move labels: `promote` (a label to one version), `rollback` (a label
//! back to where it pointed before its last move, or to a given version) and `split` (a
//! label's traffic over several versions by weight).

use prompts::Arm;

use super::output::{arms_text, stored_arms_text};
use super::{Actor, Admin, AdminError, Output};
use crate::registry::{Registry, RegistryError};

impl Admin {
    /// `promote`.
    pub(super) async fn promote(
        &self,
        actor: &Actor,
        name: String,
        version: i64,
        label: String,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let (before, _) = r
            .set_label(
                &actor.id,
                "promote",
                &name,
                &label,
                Some(vec![Arm {
                    version,
                    weight: 100,
                }]),
                None,
            )
            .await?;
        Ok(Output::new(format!(
            "{name}@{label} now serves v{version} (was {})",
            before.as_deref().map_or("unset".into(), stored_arms_text)
        )))
    }

    /// `rollback`, to `to` or to the label's previous state.
    pub(super) async fn rollback(
        &self,
        actor: &Actor,
        name: String,
        label: String,
        to: Option<i64>,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let target = match to {
            Some(v) => vec![Arm {
                version: v,
                weight: 100,
            }],
            None => previous_arms(r, &name, &label).await?,
        };
        let (before, _) = r
            .set_label(
                &actor.id,
                "rollback",
                &name,
                &label,
                Some(target.clone()),
                None,
            )
            .await?;
        Ok(Output::new(format!(
            "{name}@{label} rolled back to {} (was {})",
            arms_text(&target),
            before.as_deref().map_or("unset".into(), stored_arms_text)
        )))
    }

    /// `split`.
    pub(super) async fn split(
        &self,
        actor: &Actor,
        name: String,
        label: String,
        arms: Vec<Arm>,
    ) -> Result<Output, AdminError> {
        let r = &self.registry;
        let (before, _) = r
            .set_label(&actor.id, "split", &name, &label, Some(arms.clone()), None)
            .await?;
        Ok(Output::new(format!(
            "{name}@{label} now splits {} (was {}); each user keeps one version",
            arms_text(&arms),
            before.as_deref().map_or("unset".into(), stored_arms_text)
        )))
    }
}

/// Where the label pointed before its last move.
async fn previous_arms(r: &Registry, name: &str, label: &str) -> Result<Vec<Arm>, AdminError> {
    let target = format!("{name}@{label}");
    let moves = r.history(Some(name), 1000).await?;
    let last = moves
        .into_iter()
        .find(|a| a.target == target && a.outcome == "ok");
    let before = last.and_then(|a| a.before);
    match before.and_then(|b| serde_json::from_str::<Vec<Arm>>(&b).ok()) {
        Some(arms) if !arms.is_empty() => Ok(arms),
        _ => Err(AdminError::Registry(RegistryError::BadSplit(format!(
            "`{target}` has no earlier state to roll back to; name a version with `--to`"
        )))),
    }
}
