//! Resolution: which version answers a request — the binding of the conversation's most
//! specific scope (else the default prompt's `production`), then the label it names, then,
//! for an A/B split, the arm the user is assigned to, then the compiled version.

use std::sync::Arc;

use prompts::Compiled;

use super::snapshot::{Snapshot, compile, label_arms, unknown_prompt};
use super::{DEFAULT_PROMPT, LATEST, PRODUCTION, Registry, RegistryError, Scope};
use crate::domain::Origin;
use crate::domain::Selector;
use crate::store::VersionRow;

/// A prompt version chosen for one request.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The compiled version.
    pub compiled: Arc<Compiled>,
    /// The label it came through (`None` when asked for by number).
    pub label: Option<String>,
}

impl Resolved {
    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.compiled.prompt().name
    }

    /// The version number.
    pub fn version(&self) -> i64 {
        self.compiled.prompt().version
    }
}

impl Registry {
    /// The prompt version that answers in this conversation: the binding of
    /// the thread, else its channel, else its workspace, else the global
    /// one, else the default prompt's `production` label.
    pub async fn resolve_bound(&self, origin: &Origin) -> Result<Resolved, RegistryError> {
        let snapshot = self.snapshot();
        let (name, label) = Scope::chain(origin)
            .iter()
            .find_map(|key| snapshot.bindings.get(key))
            .cloned()
            .unwrap_or_else(|| (DEFAULT_PROMPT.to_string(), PRODUCTION.to_string()));
        self.resolve_in(&snapshot, &name, &Selector::Label(label), origin)
            .await
    }

    /// A named prompt through a label or by version number. Splits assign
    /// by the origin's user.
    pub async fn resolve(
        &self,
        name: &str,
        selector: &Selector,
        origin: &Origin,
    ) -> Result<Resolved, RegistryError> {
        let snapshot = self.snapshot();
        self.resolve_in(&snapshot, name, selector, origin).await
    }

    async fn resolve_in(
        &self,
        snapshot: &Snapshot,
        name: &str,
        selector: &Selector,
        origin: &Origin,
    ) -> Result<Resolved, RegistryError> {
        let entry = snapshot
            .prompts
            .get(name)
            .ok_or_else(|| unknown_prompt(snapshot, name))?;
        let (version, label) = match selector {
            Selector::Version(v) => (*v, None),
            Selector::Label(l) if l == LATEST => (entry.latest, Some(l.clone())),
            Selector::Label(l) => {
                let arms = label_arms(entry, name, l)?;
                let user = origin.assignment_key();
                let v = prompts::assign(&user, name, arms).ok_or_else(|| {
                    RegistryError::BadSplit(format!("label `{l}` of `{name}` has no versions"))
                })?;
                (v, Some(l.clone()))
            }
        };
        if let Some(compiled) = entry.versions.get(&version) {
            return Ok(Resolved {
                compiled: compiled.clone(),
                label,
            });
        }
        if let Some(message) = entry.broken.get(&version) {
            return Err(RegistryError::Broken {
                name: name.to_string(),
                version,
                message: message.clone(),
            });
        }
        // A version no label points at (a test of an old version): read it.
        let row = self.stored_version(name, version, entry.latest).await?;
        let compiled =
            compile(&row, &snapshot.includes).map_err(|message| RegistryError::Broken {
                name: name.to_string(),
                version,
                message,
            })?;
        Ok(Resolved {
            compiled: Arc::new(compiled),
            label,
        })
    }

    /// A stored version, or the error naming the newest one.
    pub(super) async fn stored_version(
        &self,
        name: &str,
        version: i64,
        latest: i64,
    ) -> Result<VersionRow, RegistryError> {
        self.inner
            .store
            .prompt_version(name, version)
            .await?
            .ok_or_else(|| RegistryError::UnknownVersion {
                name: name.to_string(),
                version,
                latest,
            })
    }
}
