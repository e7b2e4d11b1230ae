//! The in-memory snapshot every read is served from: the labels, bindings and compiled
//! versions of one registry generation, rebuilt whenever that generation moves, and the
//! lookups in it that fail with an error naming what exists.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prompts::{Arm, Compiled, Prompt};

use super::{LATEST, PRODUCTION, Registry, RegistryError};
use crate::store::VersionRow;

/// One prompt in the snapshot.
#[derive(Debug, Default)]
pub(super) struct Entry {
    pub(super) latest: i64,
    pub(super) labels: BTreeMap<String, Vec<Arm>>,
    pub(super) versions: HashMap<i64, Arc<Compiled>>,
    pub(super) broken: HashMap<i64, String>,
}

/// The registry as of one generation.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) generation: i64,
    pub(super) prompts: HashMap<String, Entry>,
    pub(super) bindings: HashMap<String, (String, String)>,
    /// Include text of each prompt (its production version, else newest).
    pub(super) includes: HashMap<String, String>,
}

impl Registry {
    /// The snapshot in use; a request keeps the one it took.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        match self.inner.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The generation of the snapshot in use.
    pub fn generation(&self) -> i64 {
        self.snapshot().generation
    }

    /// Rebuilds the snapshot if the registry changed since it was built.
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let _one_at_a_time = self.inner.reload.lock().await;
        let rows = self.inner.store.registry_rows().await?;
        if rows.generation == self.snapshot().generation && rows.generation != 0 {
            return Ok(());
        }
        let store = &self.inner.store;
        // Versions to hold compiled: every labelled one and every newest.
        let mut wanted: Vec<(String, i64)> = rows.latest.clone();
        for l in &rows.labels {
            wanted.extend(l.arms.iter().map(|a| (l.name.clone(), a.version)));
        }
        wanted.sort();
        wanted.dedup();
        let mut bodies: HashMap<(String, i64), VersionRow> = HashMap::new();
        for (name, version) in wanted {
            if let Some(row) = store.prompt_version(&name, version).await? {
                bodies.insert((name, version), row);
            }
        }
        let mut prompts: HashMap<String, Entry> = HashMap::new();
        for (name, latest) in &rows.latest {
            prompts.entry(name.clone()).or_default().latest = *latest;
        }
        for l in rows.labels {
            if let Some(e) = prompts.get_mut(&l.name) {
                e.labels.insert(l.label, l.arms);
            }
        }
        // Include text: the production version's, else the newest's.
        let mut includes = HashMap::new();
        for (name, e) in &prompts {
            let version = e
                .labels
                .get(PRODUCTION)
                .and_then(|arms| arms.iter().max_by_key(|a| (a.weight, a.version)))
                .map_or(e.latest, |a| a.version);
            if let Some(text) = bodies
                .get(&(name.clone(), version))
                .and_then(|row| parse_row(row).ok())
                .and_then(|p| prompts::include_text(&p).map(str::to_string))
            {
                includes.insert(name.clone(), text);
            }
        }
        for ((name, version), row) in &bodies {
            let Some(e) = prompts.get_mut(name) else {
                continue;
            };
            match compile(row, &includes) {
                Ok(c) => {
                    e.versions.insert(*version, Arc::new(c));
                }
                Err(message) => {
                    tracing::error!(prompt = %name, version, %message, "a stored prompt version does not compile");
                    e.broken.insert(*version, message);
                }
            }
        }
        let snapshot = Snapshot {
            generation: rows.generation,
            prompts,
            bindings: rows
                .bindings
                .into_iter()
                .map(|b| (b.scope, (b.prompt, b.label)))
                .collect(),
            includes,
        };
        match self.inner.snapshot.write() {
            Ok(mut s) => *s = Arc::new(snapshot),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snapshot),
        }
        Ok(())
    }
}

/// A stored version's prompt, numbered as stored.
pub(super) fn parse_row(row: &VersionRow) -> Result<Prompt, String> {
    let mut prompt = Prompt::from_toml(&format!("{} v{}", row.name, row.version), &row.body)
        .map_err(|e| e.to_string())?;
    prompt.version = row.version;
    Ok(prompt)
}

/// A stored version compiled against the registry's include texts.
pub(super) fn compile(
    row: &VersionRow,
    includes: &HashMap<String, String>,
) -> Result<Compiled, String> {
    let prompt = parse_row(row)?;
    let lookup = |n: &str| includes.get(n).cloned();
    Compiled::new(prompt, &lookup).map_err(|e| e.to_string())
}

/// The error for a prompt the snapshot does not have, listing those it has.
pub(super) fn unknown_prompt(snapshot: &Snapshot, name: &str) -> RegistryError {
    let mut known: Vec<String> = snapshot.prompts.keys().cloned().collect();
    known.sort();
    RegistryError::UnknownPrompt {
        name: name.to_string(),
        known,
    }
}

/// A label's arms, or the error listing the labels the prompt has.
pub(super) fn label_arms<'a>(
    entry: &'a Entry,
    name: &str,
    label: &str,
) -> Result<&'a Vec<Arm>, RegistryError> {
    entry
        .labels
        .get(label)
        .ok_or_else(|| RegistryError::UnknownLabel {
            name: name.to_string(),
            label: label.to_string(),
            labels: label_names(entry),
        })
}

/// A prompt's label names, `latest` included.
pub(super) fn label_names(entry: &Entry) -> Vec<String> {
    let mut names: Vec<String> = entry.labels.keys().cloned().collect();
    names.push(LATEST.to_string());
    names
}
