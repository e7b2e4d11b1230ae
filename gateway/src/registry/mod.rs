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
//!
//! This file holds the [`Registry`] handle and its lifecycle (open, close). The rest lives
//! beside it by concern: `scope` (how bindings are named; a version is named by a [`Selector`]),
//! `snapshot` (the in-memory copy and its rebuild), `refresh` (keeping it current), `resolve`
//! (binding → label → split arm → version), `browse` (reads for people), `write` (every
//! change), `audit`, `files` (import and export) and `error`.

mod audit;
mod browse;
mod error;
mod files;
mod refresh;
mod resolve;
mod scope;

mod snapshot;
mod write;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use prompts::Library;
use tokio::sync::{Mutex, watch};

use crate::store::Store;

pub use browse::PromptInfo;
pub use error::RegistryError;
pub use resolve::Resolved;
pub use scope::Scope;
use snapshot::Snapshot;

/// The label that follows the newest version by itself.
pub const LATEST: &str = "latest";
/// The label a binding uses when none is named.
pub const PRODUCTION: &str = "production";
/// The prompt that answers where nothing is bound.
pub const DEFAULT_PROMPT: &str = "assistant";

/// The registry. Cheap to clone; one per process.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

/// What every clone of a [`Registry`] shares.
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
}
