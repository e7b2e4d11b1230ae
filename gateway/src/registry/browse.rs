//! Reading the registry for people: every prompt with its labels and bindings, every binding,
//! and one stored version or all of a prompt's, as `list`, `show` and `history` need them.

use std::collections::BTreeMap;

use prompts::{Arm, Prompt};

use super::snapshot::{label_arms, parse_row, unknown_prompt};
use super::{LATEST, Registry, RegistryError};
use crate::domain::Selector;
use crate::store::VersionRow;

/// What `show` and `list` report about a prompt.
#[derive(Debug, Clone)]
pub struct PromptInfo {
    /// The name.
    pub name: String,
    /// The newest version.
    pub latest: i64,
    /// Labels and their arms.
    pub labels: BTreeMap<String, Vec<Arm>>,
    /// Scopes bound to it: (scope, label).
    pub bound: Vec<(String, String)>,
}

impl Registry {
    /// `Ok` when a prompt called `name` exists, else the error that lists
    /// the prompts there are.
    pub fn check_exists(&self, name: &str) -> Result<(), RegistryError> {
        let snapshot = self.snapshot();
        match snapshot.prompts.contains_key(name) {
            true => Ok(()),
            false => Err(unknown_prompt(&snapshot, name)),
        }
    }

    /// Every prompt with its labels and bindings, by name.
    pub fn list(&self) -> Vec<PromptInfo> {
        let snapshot = self.snapshot();
        let mut out: Vec<PromptInfo> = snapshot
            .prompts
            .iter()
            .map(|(name, e)| PromptInfo {
                name: name.clone(),
                latest: e.latest,
                labels: e.labels.clone(),
                bound: {
                    let mut b: Vec<_> = snapshot
                        .bindings
                        .iter()
                        .filter(|(_, (p, _))| p == name)
                        .map(|(scope, (_, label))| (scope.clone(), label.clone()))
                        .collect();
                    b.sort();
                    b
                },
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every binding: (scope, prompt, label).
    pub fn bindings(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .snapshot()
            .bindings
            .iter()
            .map(|(s, (p, l))| (s.clone(), p.clone(), l.clone()))
            .collect();
        out.sort();
        out
    }

    /// One stored version (with its commit message and author) and its prompt.
    pub async fn version(
        &self,
        name: &str,
        selector: &Selector,
    ) -> Result<(VersionRow, Prompt), RegistryError> {
        let snapshot = self.snapshot();
        let entry = snapshot
            .prompts
            .get(name)
            .ok_or_else(|| unknown_prompt(&snapshot, name))?;
        let version = match selector {
            Selector::Version(v) => *v,
            Selector::Label(l) if l == LATEST => entry.latest,
            Selector::Label(l) => {
                let arms = label_arms(entry, name, l)?;
                // A split shows its heaviest arm.
                arms.iter()
                    .max_by_key(|a| (a.weight, a.version))
                    .map_or(entry.latest, |a| a.version)
            }
        };
        let row = self.stored_version(name, version, entry.latest).await?;
        let prompt = parse_row(&row).map_err(|message| RegistryError::Broken {
            name: name.to_string(),
            version,
            message,
        })?;
        Ok((row, prompt))
    }

    /// Every version of a prompt, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRow>, RegistryError> {
        let rows = self.inner.store.prompt_versions(name).await?;
        if rows.is_empty() {
            return Err(unknown_prompt(&self.snapshot(), name));
        }
        Ok(rows)
    }
}
