//! The embedding model retrieval runs on: the embedded all-MiniLM-L6-v2
//! (fetched once into the models directory, run in-process on the CPU, off
//! the async runtime) or an OpenAI-compatible `/v1/embeddings` provider.
//! The embedded model is loaded on first use; when it (or the provider)
//! cannot be had, callers get an error and fall back to lexical search.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_embedded::TextEmbedder;
use tokio::sync::OnceCell;

use crate::providers::OpenAiEmbeddings;

/// The name stored with vectors of the embedded model.
pub const EMBEDDED_NAME: &str = "all-MiniLM-L6-v2";

/// How long a failed load of the embedded model is not tried again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// A loaded embedding model.
#[derive(Clone)]
pub enum Embedder {
    /// all-MiniLM-L6-v2 in-process.
    Embedded(Arc<TextEmbedder>),
    /// An OpenAI-compatible endpoint.
    Remote(Arc<OpenAiEmbeddings>),
}

impl Embedder {
    /// The name stored with the vectors it makes: vectors of different
    /// models are never compared.
    pub fn name(&self) -> String {
        match self {
            Embedder::Embedded(_) => EMBEDDED_NAME.to_string(),
            Embedder::Remote(r) => r.name(),
        }
    }

    /// The length of `text` in the model's tokens (an estimate of four
    /// characters a token for a remote model).
    pub fn count_tokens(&self, text: &str) -> usize {
        match self {
            Embedder::Embedded(e) => e.count_tokens(text),
            Embedder::Remote(_) => text.chars().count().div_ceil(4),
        }
    }

    /// One unit vector per text.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        match self {
            Embedder::Embedded(e) => {
                // One forward pass runs on one thread: a batch is split over
                // the cores, each part on a blocking thread of its own.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let per = texts.len().div_ceil(cores.min(texts.len()).max(1)).max(1);
                let mut parts = Vec::new();
                let mut texts = texts;
                while !texts.is_empty() {
                    let rest = texts.split_off(per.min(texts.len()));
                    let part = std::mem::replace(&mut texts, rest);
                    let e = e.clone();
                    parts.push(tokio::task::spawn_blocking(move || {
                        let refs: Vec<&str> = part.iter().map(String::as_str).collect();
                        e.embed(&refs)
                    }));
                }
                let mut out = Vec::new();
                for part in parts {
                    out.extend(
                        part.await
                            .map_err(|e| format!("the embedding task failed: {e}"))?,
                    );
                }
                Ok(out)
            }
            Embedder::Remote(r) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                r.embed(&refs).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// Where the embedder comes from, and the one loaded.
pub(super) struct EmbedderSlot {
    spec: EmbedderSpec,
    loaded: OnceCell<Embedder>,
    failed: Mutex<Option<(Instant, String)>>,
}

/// What to load.
pub(super) enum EmbedderSpec {
    /// The embedded model, fetched into this folder.
    Embedded { models_dir: PathBuf },
    /// A provider, already built.
    Remote(Arc<OpenAiEmbeddings>),
}

impl EmbedderSlot {
    pub(super) fn new(spec: EmbedderSpec) -> EmbedderSlot {
        EmbedderSlot {
            spec,
            loaded: OnceCell::new(),
            failed: Mutex::new(None),
        }
    }

    /// The name vectors of this embedder carry, known without loading it.
    pub(super) fn name(&self) -> String {
        match &self.spec {
            EmbedderSpec::Embedded { .. } => EMBEDDED_NAME.to_string(),
            EmbedderSpec::Remote(r) => r.name(),
        }
    }

    /// The embedder, loading (and on first use fetching) the embedded model;
    /// a failure is remembered for a minute so that searches do not each
    /// wait on it.
    pub(super) async fn get(&self) -> Result<Embedder, String> {
        if let Some(e) = self.loaded.get() {
            return Ok(e.clone());
        }
        if let Ok(failed) = self.failed.lock()
            && let Some((at, why)) = failed.as_ref()
            && at.elapsed() < RETRY_AFTER
        {
            return Err(why.clone());
        }
        let loaded = self
            .loaded
            .get_or_try_init(|| async {
                match &self.spec {
                    EmbedderSpec::Remote(r) => Ok(Embedder::Remote(r.clone())),
                    EmbedderSpec::Embedded { models_dir } => {
                        let dir = models_dir.clone();
                        tokio::task::spawn_blocking(move || load_embedded(&dir))
                            .await
                            .map_err(|e| format!("the embedding model's loader failed: {e}"))?
                    }
                }
            })
            .await;
        match loaded {
            Ok(e) => Ok(e.clone()),
            Err(why) => {
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some((Instant::now(), why.clone()));
                }
                Err(why)
            }
        }
    }
}

fn load_embedded(models_dir: &std::path::Path) -> Result<Embedder, String> {
    let dir = switchboard_embedded::pull_embedding_model(
        models_dir,
        &mut crate::providers::local::log_fetch("embedding model"),
    )
    .map_err(|e| format!("cannot fetch the embedding model: {e}"))?;
    let embedder =
        TextEmbedder::load(&dir).map_err(|e| format!("cannot load the embedding model: {e}"))?;
    Ok(Embedder::Embedded(Arc::new(embedder)))
}
