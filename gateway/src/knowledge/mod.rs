//! Retrieval: the team's own knowledge, searched for the question before a
//! prompt version with a `[retrieval]` table answers.
//!
//! - `document` reads a file (Markdown, text, HTML, PDF) into titled
//!   sections, and `chunk` packs them into chunks under a token budget that
//!   never span two headings;
//! - `embed` is the embedding model (embedded all-MiniLM-L6-v2 or an
//!   OpenAI-compatible provider), `index` the in-process vector index;
//! - `ingest` turns folders into stored documents, incrementally by
//!   content hash; `search` runs lexical and dense search and fuses them by
//!   reciprocal rank; `threads` keeps a Slack or Discord channel's threads
//!   as documents, one per thread.
//!
//! Every search is made for a [`Viewer`]: a source belongs to a scope
//! (`global` or one workspace) and a chunk may be limited to an audience (a
//! private channel's members), and nothing outside what the viewer may see
//! is ever returned.

pub mod chunk;
pub mod document;
mod embed;
mod index;
mod ingest;
mod search;
mod threads;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::RwLock;

use crate::config::{Config, EMBEDDED_EMBEDDINGS, KnowledgeConfig, ProviderConfig};
use crate::domain::Origin;
use crate::providers::OpenAiEmbeddings;
use crate::store::{Change, Store, StoreError};
use std::collections::HashSet;

pub use embed::{EMBEDDED_NAME, Embedder};
pub use ingest::{IngestReport, Skipped};
pub use search::{Hit, SearchQuery, SearchResult};
pub use threads::{ChannelSync, Followed, ThreadLine, ThreadOutcome, ThreadWrite, thread_title};

use embed::{EmbedderSlot, EmbedderSpec};
use index::VectorIndex;

/// Why a knowledge command failed.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A source name that cannot be one.
    #[error(
        "`{0}` is not a knowledge source name: use letters, digits, `-`, `_` and `.` (at most 64)"
    )]
    BadName(String),
    /// No such source.
    #[error(
        "there is no knowledge source `{name}`; sources: {known} (`switchboard knowledge list`)"
    )]
    UnknownSource {
        /// The name asked for.
        name: String,
        /// The sources there are.
        known: String,
    },
    /// A scope that cannot be one.
    #[error("{0}")]
    BadScope(String),
    /// Files asked to go into a source of chat messages.
    #[error(
        "knowledge source `{name}` holds {kind} messages, not files: ingest into another source"
    )]
    WrongKind {
        /// The source.
        name: String,
        /// What it holds.
        kind: String,
    },
    /// A source exists with another scope.
    #[error(
        "knowledge source `{name}` belongs to `{stored}`, not `{asked}`: use another name, or `switchboard knowledge remove {name}` first"
    )]
    ScopeMismatch {
        /// The source.
        name: String,
        /// Its scope.
        stored: String,
        /// The scope asked for.
        asked: String,
    },
    /// A path to ingest that is not there.
    #[error("cannot read `{path}`: {reason}")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The embedding model could not be set up.
    #[error("cannot set up the embedding model: {0}")]
    Embedder(String),
}

/// Who a search is for: the scopes whose sources they may read and the
/// audiences they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// `None`: every scope (the operator, on the command line).
    pub scopes: Option<Vec<String>>,
    /// Audiences besides everyone (`slack:C123` for a private channel).
    pub audiences: Vec<String>,
    /// Every audience (the operator).
    pub all_audiences: bool,
}

impl Viewer {
    /// The operator at the command line: every source, every chunk.
    pub fn operator() -> Viewer {
        Viewer {
            scopes: None,
            audiences: Vec::new(),
            all_audiences: true,
        }
    }

    /// Whoever asked from `origin`: global sources and their own
    /// workspace's, and a private channel's chunks only inside that channel.
    pub fn of(origin: &Origin) -> Viewer {
        let mut scopes = vec![GLOBAL.to_string()];
        if let Some(ws) = &origin.workspace {
            scopes.push(format!("{}/{}", origin.platform, ws));
        }
        let audiences = origin
            .channel
            .iter()
            .map(|c| format!("{}:{}", origin.platform, c))
            .collect();
        Viewer {
            scopes: Some(scopes),
            audiences,
            all_audiences: false,
        }
    }

    /// Whether sources of `scope` are visible.
    pub fn sees_scope(&self, scope: &str) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == scope))
    }
}

/// The scope of sources every workspace may read.
pub const GLOBAL: &str = "global";

/// Checks a scope: `global`, or `platform/workspace`.
pub fn check_scope(scope: &str) -> Result<(), String> {
    if scope == GLOBAL {
        return Ok(());
    }
    match scope.split_once('/') {
        Some((p, w))
            if !p.is_empty()
                && !w.is_empty()
                && !w.contains('/')
                && p.chars().all(|c| c.is_ascii_lowercase()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{scope}` is not a scope: use `global` or `platform/workspace` (`slack/T0123`, `discord/4567`)"
        )),
    }
}

/// The knowledge store and its search. Cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: KnowledgeConfig,
    embedder: EmbedderSlot,
    index: RwLock<Option<Arc<VectorIndex>>>,
    /// Document frequencies of query terms, for the knowledge generation
    /// they were counted at.
    terms: std::sync::Mutex<search::TermStats>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Knowledge({})", self.inner.embedder.name())
    }
}

impl Knowledge {
    /// The knowledge of `config` over `store`. Nothing is loaded yet: the
    /// embedding model is fetched and loaded on first use.
    pub fn new(config: &Config, store: Store) -> Result<Knowledge, KnowledgeError> {
        let k = &config.knowledge;
        let spec = if k.embeddings == EMBEDDED_EMBEDDINGS {
            EmbedderSpec::Embedded {
                models_dir: k
                    .models_dir
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("models")),
            }
        } else {
            let Some(ProviderConfig::Openai(http)) = config.providers.get(&k.embeddings) else {
                return Err(KnowledgeError::Embedder(format!(
                    "`knowledge.embeddings` names `{}`, which is not a `kind = \"openai\"` provider",
                    k.embeddings
                )));
            };
            let model = k.embedding_model.clone().unwrap_or_default();
            let remote = OpenAiEmbeddings::new(&k.embeddings, http, &model)
                .map_err(|e| KnowledgeError::Embedder(e.to_string()))?;
            EmbedderSpec::Remote(Arc::new(remote))
        };
        Ok(Knowledge {
            inner: Arc::new(Inner {
                store,
                config: k.clone(),
                embedder: EmbedderSlot::new(spec),
                index: RwLock::new(None),
                terms: std::sync::Mutex::default(),
            }),
        })
    }

    /// The store it reads and writes.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The embedding model, loading it if needed.
    pub async fn embedder(&self) -> Result<Embedder, KnowledgeError> {
        self.inner
            .embedder
            .get()
            .await
            .map_err(KnowledgeError::Embedder)
    }

    /// Every source, with its counts, that `viewer` may see.
    pub async fn sources(
        &self,
        viewer: &Viewer,
    ) -> Result<Vec<crate::store::SourceRow>, KnowledgeError> {
        Ok(self
            .inner
            .store
            .knowledge_sources()
            .await?
            .into_iter()
            .filter(|s| viewer.sees_scope(&s.scope))
            .collect())
    }

    /// Deletes a source and everything in it.
    pub async fn remove(&self, name: &str) -> Result<(), KnowledgeError> {
        if self.inner.store.remove_knowledge_source(name).await? {
            Ok(())
        } else {
            Err(self.unknown(name).await)
        }
    }

    async fn unknown(&self, name: &str) -> KnowledgeError {
        let known = match self.inner.store.knowledge_sources().await {
            Ok(list) if !list.is_empty() => list
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            _ => "none yet (`switchboard knowledge ingest PATH --source NAME`)".to_string(),
        };
        KnowledgeError::UnknownSource {
            name: name.to_string(),
            known,
        }
    }

    /// The vector index for `embedder`, brought up to the knowledge
    /// generation: from the change log when it reaches back to the index's
    /// generation (only the changed documents are read), else read whole.
    /// Also says how it was refreshed, if it was: `changes` or `whole`, and
    /// how long it took.
    async fn index(
        &self,
        embedder: &str,
    ) -> Result<(Arc<VectorIndex>, Option<(&'static str, f64)>), KnowledgeError> {
        let store = &self.inner.store;
        let generation = store.knowledge_generation().await?;
        let current = |slot: &Option<Arc<VectorIndex>>| {
            slot.as_ref()
                .filter(|i| i.generation == generation && i.embedder == embedder)
                .cloned()
        };
        if let Some(index) = current(&*self.inner.index.read().await) {
            return Ok((index, None));
        }
        let mut slot = self.inner.index.write().await;
        if let Some(index) = current(&slot) {
            return Ok((index, None));
        }
        let started = std::time::Instant::now();
        let old = slot.as_ref().filter(|i| i.embedder == embedder).cloned();
        let changes = match &old {
            Some(old) if old.generation < generation => {
                store.knowledge_changes(old.generation, generation).await?
            }
            _ => None,
        };
        let (index, how) = match (old, changes) {
            (Some(old), Some(changes))
                if !changes.iter().any(|c| matches!(c, Change::Everything)) =>
            {
                // Every document named is dropped; those whose last change
                // stored them are read again (by their new ids).
                let mut drop = HashSet::new();
                let mut added: Vec<String> = Vec::new();
                for change in changes {
                    match change {
                        Change::Added(id) => {
                            drop.insert(id.clone());
                            added.push(id);
                        }
                        Change::Removed(Some(id)) => {
                            added.retain(|a| *a != id);
                            drop.insert(id);
                        }
                        Change::Removed(None) | Change::Everything => {}
                    }
                }
                let rows = store.knowledge_document_vectors(embedder, &added).await?;
                (old.refreshed(generation, &drop, rows), "changes")
            }
            _ => {
                let rows = store.knowledge_vectors(embedder).await?;
                (
                    VectorIndex::new(generation, embedder.to_string(), rows),
                    "whole",
                )
            }
        };
        let index = Arc::new(index);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(
            chunks = index.len(),
            generation,
            how,
            ms,
            "knowledge vector index refreshed"
        );
        *slot = Some(index.clone());
        Ok((index, Some((how, ms))))
    }
}
