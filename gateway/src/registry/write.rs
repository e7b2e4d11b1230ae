//! The only ways the registry changes: saving a validated version (refused when the edit
//! started from a version that is no longer the newest), pointing a label at versions,
//! binding a scope, and seeding the library's prompts at first start. Each write carries its
//! audit row and reloads the snapshot.

use prompts::{Arm, Compiled, Library, Prompt};

use super::snapshot::{label_names, unknown_prompt};
use super::{LATEST, PRODUCTION, Registry, RegistryError, Scope};
use crate::domain::Selector;
use crate::store::{AuditRow, Write, Written};

impl Registry {
    /// Checks a prompt as [`Registry::save`] would, without storing it.
    pub fn validate(&self, prompt: &Prompt) -> Result<Compiled, RegistryError> {
        let snapshot = self.snapshot();
        let includes = |n: &str| {
            if n == prompt.name {
                prompts::include_text(prompt).map(str::to_string)
            } else {
                snapshot.includes.get(n).cloned()
            }
        };
        Ok(prompts::validate(prompt, &includes)?)
    }

    /// Validates and stores a new version. `base` is the version the edit
    /// started from (`None` to create a new prompt); if another version was
    /// saved since, nothing is stored and the error shows the difference.
    /// `label` also points that label at the new version.
    pub async fn save(
        &self,
        actor: &str,
        action: &str,
        prompt: &Prompt,
        message: &str,
        base: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64, RegistryError> {
        if let Some(l) = label {
            check_label(l)?;
        }
        self.reload().await?;
        self.validate(prompt)?;
        let written = self
            .inner
            .store
            .write_registry(Write::Version {
                name: prompt.name.clone(),
                body: prompt.to_toml(),
                message: message.to_string(),
                base,
                label: label.map(str::to_string),
                audit: AuditRow::new(actor, action, &prompt.name),
            })
            .await?;
        match written {
            Written::Version(v) => {
                self.reload().await?;
                Ok(v)
            }
            Written::Conflict(Some(current)) if base.is_none() => Err(RegistryError::Exists {
                name: prompt.name.clone(),
                latest: current,
            }),
            Written::Conflict(Some(current)) => {
                let (_, now) = self
                    .version(&prompt.name, &Selector::Version(current))
                    .await?;
                let mut proposed = prompt.clone();
                proposed.version = current + 1;
                Err(RegistryError::Stale {
                    name: prompt.name.clone(),
                    base: base.unwrap_or(0),
                    current,
                    diff: prompts::diff(&now, &proposed),
                })
            }
            Written::Conflict(None) | Written::Moved { .. } => {
                Err(unknown_prompt(&self.snapshot(), &prompt.name))
            }
        }
    }

    /// Points a label at versions (one arm: a plain promote; several: a
    /// split), or removes it with `None`. Returns (before, after) as stored.
    pub async fn set_label(
        &self,
        actor: &str,
        action: &str,
        name: &str,
        label: &str,
        arms: Option<Vec<Arm>>,
        detail: Option<String>,
    ) -> Result<(Option<String>, Option<String>), RegistryError> {
        check_label(label)?;
        self.reload().await?;
        let snapshot = self.snapshot();
        let entry = snapshot
            .prompts
            .get(name)
            .ok_or_else(|| unknown_prompt(&snapshot, name))?;
        if let Some(arms) = &arms {
            if arms.is_empty() || arms.iter().all(|a| a.weight == 0) {
                return Err(RegistryError::BadSplit(
                    "give at least one version a weight above zero".into(),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for arm in arms {
                if arm.version < 1 || arm.version > entry.latest {
                    return Err(RegistryError::UnknownVersion {
                        name: name.to_string(),
                        version: arm.version,
                        latest: entry.latest,
                    });
                }
                if !seen.insert(arm.version) {
                    return Err(RegistryError::BadSplit(format!(
                        "v{} is listed twice",
                        arm.version
                    )));
                }
            }
        }
        let mut audit = AuditRow::new(actor, action, &format!("{name}@{label}"));
        audit.detail = detail;
        let written = self
            .inner
            .store
            .write_registry(Write::Label {
                name: name.to_string(),
                label: label.to_string(),
                arms,
                audit,
            })
            .await?;
        self.reload().await?;
        match written {
            Written::Moved { before, after } => Ok((before, after)),
            _ => Ok((None, None)),
        }
    }

    /// Binds a scope to a prompt and label, or unbinds it with `None`.
    pub async fn bind(
        &self,
        actor: &str,
        scope: &Scope,
        target: Option<(&str, &str)>,
    ) -> Result<(Option<String>, Option<String>), RegistryError> {
        self.reload().await?;
        let snapshot = self.snapshot();
        if let Some((name, label)) = target {
            let entry = snapshot
                .prompts
                .get(name)
                .ok_or_else(|| unknown_prompt(&snapshot, name))?;
            if label != LATEST && !entry.labels.contains_key(label) {
                return Err(RegistryError::UnknownLabel {
                    name: name.to_string(),
                    label: label.to_string(),
                    labels: label_names(entry),
                });
            }
        }
        let action = if target.is_some() { "bind" } else { "unbind" };
        let written = self
            .inner
            .store
            .write_registry(Write::Binding {
                scope: scope.key(),
                target: target.map(|(p, l)| (p.to_string(), l.to_string())),
                audit: AuditRow::new(actor, action, &format!("binding:{}", scope.key())),
            })
            .await?;
        self.reload().await?;
        match written {
            Written::Moved { before, after } => Ok((before, after)),
            _ => Ok((None, None)),
        }
    }

    /// Stores the library's prompts that the registry lacks, as version 1
    /// with `production` pointing at it.
    pub(super) async fn seed(&self, library: &Library) -> Result<(), RegistryError> {
        let existing: Vec<String> = self
            .inner
            .store
            .registry_rows()
            .await?
            .latest
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for name in library.names() {
            if existing.iter().any(|n| n == name) {
                continue;
            }
            let Some(prompt) = library.get(name) else {
                continue;
            };
            let written = self
                .inner
                .store
                .write_registry(Write::Version {
                    name: name.to_string(),
                    body: prompt.to_toml(),
                    message: format!("seeded from prompts/library/{name}.toml"),
                    base: None,
                    label: Some(PRODUCTION.to_string()),
                    audit: AuditRow::new("switchboard", "seed", name),
                })
                .await?;
            // Another replica seeding at the same time wins the race: fine.
            if let Written::Conflict(_) = written {
                continue;
            }
        }
        Ok(())
    }
}

/// Labels are names, and `latest` is not movable.
fn check_label(label: &str) -> Result<(), RegistryError> {
    if label.is_empty()
        || label == LATEST
        || !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(RegistryError::BadLabel(label.to_string()));
    }
    Ok(())
}
