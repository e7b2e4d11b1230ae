//! The prompt registry: which prompt version answers a conversation, and
//! the only way versions, labels and bindings change.
//!
//! Reads come from an in-memory snapshot (labels, bindings and every
//! version they point at, compiled once), so resolving a prompt costs a few
//! hash lookups. The snapshot is rebuilt whenever the registry changes:
//! at once on the replica that made the change, on other replicas when
//! PostgreSQL's NOTIFY arrives, and in any case when a periodic check of the
//! registry's generation finds it moved (the backstop for a lost
//! notification, and the only signal between processes sharing a SQLite
//! file). A request takes one snapshot and renders from it, so a label
//! moved mid-request never mixes two versions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prompts::{Arm, Compiled, Library, Prompt, ValidationError};
use tokio::sync::{Mutex, watch};

use crate::store::{AuditRow, Backend, Store, StoreError, VersionRow, Write, Written};
use crate::types::Origin;

/// The label that follows the newest version by itself.
pub const LATEST: &str = "latest";
/// The label a binding uses when none is named.
pub const PRODUCTION: &str = "production";
/// The prompt that answers where nothing is bound.
pub const DEFAULT_PROMPT: &str = "assistant";

/// Which version of a prompt to use: through a label, or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A label (`production`, `staging`, `latest`, …).
    Label(String),
    /// A version number.
    Version(i64),
}

impl Selector {
    /// Parses `3`, `v3` or a label name.
    pub fn parse(s: &str) -> Selector {
        let digits = s.strip_prefix('v').unwrap_or(s);
        match digits.parse::<i64>() {
            Ok(v) if !digits.is_empty() => Selector::Version(v),
            _ => Selector::Label(s.to_string()),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Label(l) => f.write_str(l),
            Selector::Version(v) => write!(f, "v{v}"),
        }
    }
}

/// Where a binding applies. A thread inherits its channel's binding, a
/// channel its workspace's, a workspace the global one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere nothing more specific is bound.
    Global,
    /// A Slack workspace or Discord server.
    Workspace {
        /// `slack`, `discord`, …
        platform: String,
        /// The workspace or guild id.
        workspace: String,
    },
    /// A channel.
    Channel {
        /// The platform.
        platform: String,
        /// The workspace (`-` when the platform has none, as in DMs).
        workspace: String,
        /// The channel id.
        channel: String,
    },
    /// A thread.
    Thread {
        /// The platform.
        platform: String,
        /// The workspace.
        workspace: String,
        /// The channel.
        channel: String,
        /// The thread id.
        thread: String,
    },
}

impl Scope {
    /// The stored key: `global` or `platform/workspace[/channel[/thread]]`.
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".to_string(),
            Scope::Workspace {
                platform,
                workspace,
            } => format!("{platform}/{workspace}"),
            Scope::Channel {
                platform,
                workspace,
                channel,
            } => format!("{platform}/{workspace}/{channel}"),
            Scope::Thread {
                platform,
                workspace,
                channel,
                thread,
            } => format!("{platform}/{workspace}/{channel}/{thread}"),
        }
    }

    /// Parses a key as [`Scope::key`] writes it.
    pub fn parse(key: &str) -> Result<Scope, RegistryError> {
        if key == "global" {
            return Ok(Scope::Global);
        }
        let parts: Vec<&str> = key.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || p.chars().any(char::is_whitespace))
        {
            return Err(RegistryError::BadScope(key.to_string()));
        }
        let s = |i: usize| parts[i].to_string();
        match parts.len() {
            2 => Ok(Scope::Workspace {
                platform: s(0),
                workspace: s(1),
            }),
            3 => Ok(Scope::Channel {
                platform: s(0),
                workspace: s(1),
                channel: s(2),
            }),
            4 => Ok(Scope::Thread {
                platform: s(0),
                workspace: s(1),
                channel: s(2),
                thread: s(3),
            }),
            _ => Err(RegistryError::BadScope(key.to_string())),
        }
    }

    /// The scopes that apply to a conversation, most specific first.
    pub fn chain(origin: &Origin) -> Vec<String> {
        let platform = origin.platform.as_str();
        let workspace = origin.workspace.as_deref().unwrap_or("-");
        let mut keys = Vec::with_capacity(4);
        if let Some(channel) = origin.channel.as_deref() {
            if let Some(thread) = origin.thread.as_deref() {
                keys.push(format!("{platform}/{workspace}/{channel}/{thread}"));
            }
            keys.push(format!("{platform}/{workspace}/{channel}"));
        }
        if origin.workspace.is_some() {
            keys.push(format!("{platform}/{workspace}"));
        }
        keys.push("global".to_string());
        keys
    }
}

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

/// Why a registry lookup or change failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such prompt.
    #[error("unknown prompt `{name}`; prompts: {}", known.join(", "))]
    UnknownPrompt {
        /// What was asked for.
        name: String,
        /// What exists.
        known: Vec<String>,
    },
    /// The prompt has no such label.
    #[error("prompt `{name}` has no label `{label}`; its labels: {}; promote a version to it first", labels.join(", "))]
    UnknownLabel {
        /// The prompt.
        name: String,
        /// The label.
        label: String,
        /// The labels it has.
        labels: Vec<String>,
    },
    /// The prompt has no such version.
    #[error("prompt `{name}` has no version {version}; its newest is v{latest}")]
    UnknownVersion {
        /// The prompt.
        name: String,
        /// The version asked for.
        version: i64,
        /// The newest version.
        latest: i64,
    },
    /// A version failed validation; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The edit started from a version that is no longer the newest.
    #[error(
        "prompt `{name}`: your edit starts from v{base}, but v{current} was saved since; nothing was stored. Re-apply your change to v{current}. What changed from v{current} to your edit:\n{diff}"
    )]
    Stale {
        /// The prompt.
        name: String,
        /// The version the edit started from.
        base: i64,
        /// The newest version now.
        current: i64,
        /// Unified diff from the newest version to the edit.
        diff: String,
    },
    /// `create` for a prompt that exists.
    #[error("prompt `{name}` already exists (newest v{latest}); use edit to add a version")]
    Exists {
        /// The prompt.
        name: String,
        /// Its newest version.
        latest: i64,
    },
    /// A stored version does not compile any more (an included prompt changed).
    #[error("prompt `{name}` v{version} cannot be used: {message}")]
    Broken {
        /// The prompt.
        name: String,
        /// The version.
        version: i64,
        /// Why.
        message: String,
    },
    /// A label name that cannot be used.
    #[error(
        "`{0}` cannot be used as a label: use letters, digits, `-` and `_`; `latest` always follows the newest version and cannot be moved"
    )]
    BadLabel(String),
    /// A split that cannot be used.
    #[error("invalid split: {0}")]
    BadSplit(String),
    /// A scope key that cannot be parsed.
    #[error(
        "invalid scope `{0}`: use `global`, `platform/workspace`, `platform/workspace/channel` or `platform/workspace/channel/thread` (`-` for no workspace)"
    )]
    BadScope(String),
    /// A prompt file or folder problem (import, export).
    #[error("{0}")]
    Files(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One prompt in the snapshot.
#[derive(Debug, Default)]
struct Entry {
    latest: i64,
    labels: BTreeMap<String, Vec<Arm>>,
    versions: HashMap<i64, Arc<Compiled>>,
    broken: HashMap<i64, String>,
}

/// The registry as of one generation.
#[derive(Debug, Default)]
struct Snapshot {
    generation: i64,
    prompts: HashMap<String, Entry>,
    bindings: HashMap<String, (String, String)>,
    /// Include text of each prompt (its production version, else newest).
    includes: HashMap<String, String>,
}

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

/// The registry. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    snapshot: RwLock<Arc<Snapshot>>,
    reload: Mutex<()>,
    stop: watch::Sender<bool>,
}

impl Registry {
    /// Opens the registry over a migrated store: seeds prompts from the
    /// library that the store does not have yet, loads the snapshot, and
    /// starts watching for changes made elsewhere, checking the generation
    /// every `poll`.
    pub async fn open(
        store: Store,
        library: &Library,
        poll: Duration,
    ) -> Result<Registry, RegistryError> {
        let (stop, _) = watch::channel(false);
        let registry = Registry {
            inner: Arc::new(Inner {
                store,
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                reload: Mutex::new(()),
                stop,
            }),
        };
        registry.seed(library).await?;
        registry.reload().await?;
        let watcher = registry.clone();
        let stop = registry.inner.stop.subscribe();
        tokio::spawn(async move { watcher.watch(poll, stop).await });
        Ok(registry)
    }

    /// Stops watching for changes.
    pub fn close(&self) {
        let _ = self.inner.stop.send(true);
    }

    /// The store under the registry.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.inner.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The generation of the snapshot in use.
    pub fn generation(&self) -> i64 {
        self.snapshot().generation
    }

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
                let user = origin.user.as_deref().unwrap_or_default();
                let v = prompts::assign(user, name, arms).ok_or_else(|| {
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
    async fn stored_version(
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

    /// Records an attempt that was refused (or that changes nothing).
    pub async fn audit(&self, row: &AuditRow) -> Result<(), RegistryError> {
        Ok(self.inner.store.insert_audit(row).await?)
    }

    /// Audit entries, newest first.
    pub async fn history(
        &self,
        name: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, RegistryError> {
        Ok(self.inner.store.audit_rows(name, limit).await?)
    }

    /// Writes one `NAME.toml` per prompt into `dir`, at `label` (falling
    /// back to the newest version for prompts without that label).
    /// Returns the files written.
    pub async fn export(&self, dir: &Path, label: &str) -> Result<Vec<String>, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Files(format!("cannot create `{}`: {e}", dir.display())))?;
        let mut written = Vec::new();
        for info in self.list() {
            let selector = if info.labels.contains_key(label) {
                Selector::Label(label.to_string())
            } else {
                Selector::Label(LATEST.to_string())
            };
            let (_, prompt) = self.version(&info.name, &selector).await?;
            let file = dir.join(format!("{}.toml", info.name));
            std::fs::write(&file, prompt.to_toml()).map_err(|e| {
                RegistryError::Files(format!("cannot write `{}`: {e}", file.display()))
            })?;
            written.push(file.display().to_string());
        }
        Ok(written)
    }

    /// Reads every `*.toml` in `dir` and stores a new version of each
    /// prompt whose content differs from its newest version; with
    /// `promote`, also points that label at it. Every file is parsed and
    /// validated before anything is stored: one bad file stores nothing.
    /// Returns (prompt, version, changed) per file.
    pub async fn import(
        &self,
        actor: &str,
        dir: &Path,
        promote: Option<&str>,
    ) -> Result<Vec<(String, i64, bool)>, RegistryError> {
        let read = std::fs::read_dir(dir).map_err(|e| {
            RegistryError::Files(format!("cannot read the folder `{}`: {e}", dir.display()))
        })?;
        let mut files: Vec<_> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(RegistryError::Files(format!(
                "no `*.toml` prompt files in `{}`",
                dir.display()
            )));
        }
        let mut parsed = Vec::new();
        let mut problems = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                RegistryError::Files(format!("cannot read `{}`: {e}", file.display()))
            })?;
            match Prompt::from_toml(&file.display().to_string(), &text) {
                Ok(p) => parsed.push((file.display().to_string(), p)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        self.reload().await?;
        for (_, p) in &parsed {
            // Imported prompts may include each other: check against the
            // registry plus the other files.
            let includes = |n: &str| {
                parsed
                    .iter()
                    .find(|(_, q)| q.name == n)
                    .and_then(|(_, q)| prompts::include_text(q).map(str::to_string))
                    .or_else(|| self.snapshot().includes.get(n).cloned())
            };
            if let Err(e) = prompts::validate(p, &includes) {
                problems.push(e.to_string());
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError::Files(format!(
                "nothing was imported:\n{}",
                problems.join("\n")
            )));
        }
        let mut out = Vec::new();
        for (file, prompt) in parsed {
            let latest = self.snapshot().prompts.get(&prompt.name).map(|e| e.latest);
            let current = match latest {
                Some(v) => Some(self.version(&prompt.name, &Selector::Version(v)).await?.1),
                None => None,
            };
            let same = current.as_ref().is_some_and(|c| {
                let mut c = c.clone();
                c.version = prompt.version;
                c == prompt
            });
            let version = if same {
                latest.unwrap_or(1)
            } else {
                self.save(
                    actor,
                    "import",
                    &prompt,
                    &format!("imported from {file}"),
                    latest,
                    None,
                )
                .await?
            };
            if let Some(label) = promote {
                let points = self
                    .snapshot()
                    .prompts
                    .get(&prompt.name)
                    .and_then(|e| e.labels.get(label).cloned());
                if points.as_deref()
                    != Some(
                        &[Arm {
                            version,
                            weight: 100,
                        }][..],
                    )
                {
                    self.set_label(
                        actor,
                        "promote",
                        &prompt.name,
                        label,
                        Some(vec![Arm {
                            version,
                            weight: 100,
                        }]),
                        Some(format!("imported from {file}")),
                    )
                    .await?;
                }
            }
            out.push((prompt.name.clone(), version, !same));
        }
        Ok(out)
    }

    /// Stores the library's prompts that the registry lacks, as version 1
    /// with `production` pointing at it.
    async fn seed(&self, library: &Library) -> Result<(), RegistryError> {
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

    /// Reloads when another process changes the registry: at once on a
    /// PostgreSQL NOTIFY, and whenever the generation moved at each poll.
    async fn watch(self, poll: Duration, mut stop: watch::Receiver<bool>) {
        let store = self.inner.store.clone();
        let mut listener: Option<sqlx::postgres::PgListener> = None;
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if store.backend() == Backend::Postgres && listener.is_none() {
                match listen(store.url()).await {
                    Ok(l) => {
                        listener = Some(l);
                        // Changes made while not listening.
                        self.reload_logged().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for prompt registry changes; polling instead");
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                n = recv(&mut listener) => match n {
                    Ok(Some(_)) => self.reload_logged().await,
                    // The connection dropped; it reconnects on the next call.
                    Ok(None) => self.reload_logged().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the LISTEN connection for prompt changes; reconnecting");
                        listener = None;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
                _ = ticker.tick() => {
                    match store.registry_generation().await {
                        Ok(g) if g != self.generation() => self.reload_logged().await,
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot check the prompt registry for changes"),
                    }
                }
            }
        }
    }

    async fn reload_logged(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "cannot reload the prompt registry; serving the last snapshot");
        }
    }
}

async fn listen(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut l = sqlx::postgres::PgListener::connect(url).await?;
    l.listen(crate::store::NOTIFY_CHANNEL).await?;
    Ok(l)
}

async fn recv(
    listener: &mut Option<sqlx::postgres::PgListener>,
) -> Result<Option<sqlx::postgres::PgNotification>, sqlx::Error> {
    match listener {
        Some(l) => l.try_recv().await,
        None => std::future::pending().await,
    }
}

fn parse_row(row: &VersionRow) -> Result<Prompt, String> {
    let mut prompt = Prompt::from_toml(&format!("{} v{}", row.name, row.version), &row.body)
        .map_err(|e| e.to_string())?;
    prompt.version = row.version;
    Ok(prompt)
}

fn compile(row: &VersionRow, includes: &HashMap<String, String>) -> Result<Compiled, String> {
    let prompt = parse_row(row)?;
    let lookup = |n: &str| includes.get(n).cloned();
    Compiled::new(prompt, &lookup).map_err(|e| e.to_string())
}

fn unknown_prompt(snapshot: &Snapshot, name: &str) -> RegistryError {
    let mut known: Vec<String> = snapshot.prompts.keys().cloned().collect();
    known.sort();
    RegistryError::UnknownPrompt {
        name: name.to_string(),
        known,
    }
}

fn label_arms<'a>(
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

fn label_names(entry: &Entry) -> Vec<String> {
    let mut names: Vec<String> = entry.labels.keys().cloned().collect();
    names.push(LATEST.to_string());
    names
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
