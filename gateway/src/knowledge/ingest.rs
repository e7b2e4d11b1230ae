//! Ingest: files under the given paths become a source's documents. Each
//! document is hashed; an unchanged one costs a lookup, a changed one is
//! read, chunked, embedded and replaced in one transaction, and documents
//! under an ingested folder that are no longer there are deleted. A file
//! that cannot be read is skipped with the reason, and the rest goes on;
//! since every document is committed on its own, an ingest that is killed
//! resumes where it stopped when run again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::chunk::chunk_document;
use super::document::{DocKind, parse};
use super::{Embedder, Knowledge, KnowledgeError, check_scope};
use crate::store::{ChunkWrite, DocumentWrite, embedding_text};

/// A file that was not ingested, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why: unsupported, unreadable, corrupt.
    pub reason: String,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Documents read and stored for the first time.
    pub added: usize,
    /// Documents whose content changed, stored again.
    pub changed: usize,
    /// Documents whose content had not changed: not touched.
    pub unchanged: usize,
    /// Documents gone from the folders, deleted.
    pub removed: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Chunks stored without a vector (the embedder was down).
    pub unembedded: usize,
    /// Files not ingested.
    pub skipped: Vec<Skipped>,
    /// Why vectors are missing, if they are.
    pub warning: Option<String>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Files that are ingested from one path given on the command line, with
/// their keys.
struct Found {
    /// (file, key in the source).
    files: Vec<(PathBuf, String)>,
    /// The key prefix under which documents not found are deleted (for a
    /// folder), or none (for a single file).
    prefix: Option<String>,
}

impl Knowledge {
    /// Ingests the files under `paths` into source `name` of `scope`
    /// (creating it), reporting each document to `progress`.
    pub async fn ingest_files(
        &self,
        name: &str,
        scope: &str,
        paths: &[PathBuf],
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<IngestReport, KnowledgeError> {
        let started = Instant::now();
        if !prompts::is_source_name(name) {
            return Err(KnowledgeError::BadName(name.to_string()));
        }
        check_scope(scope).map_err(KnowledgeError::BadScope)?;
        let mut found = Vec::new();
        for path in paths {
            found.push(walk(path)?);
        }
        let store = &self.inner.store;
        let embedder_name = self.inner.embedder.name();
        let source = store
            .ensure_knowledge_source(name, "files", scope, &embedder_name)
            .await?;
        if source.scope != scope {
            return Err(KnowledgeError::ScopeMismatch {
                name: name.to_string(),
                stored: source.scope,
                asked: scope.to_string(),
            });
        }
        if source.kind != "files" {
            return Err(KnowledgeError::WrongKind {
                name: name.to_string(),
                kind: source.kind,
            });
        }
        let mut report = IngestReport::default();
        let embedder = match self.inner.embedder.get().await {
            Ok(e) => Some(e),
            Err(why) => {
                report.warning = Some(format!(
                    "{why}; chunks were stored without vectors (lexical search finds them; run `switchboard knowledge sync` to embed them later)"
                ));
                None
            }
        };
        // A source embedded by another model is embedded again, whole.
        let mut known = store.knowledge_hashes(name).await?;
        if source.embedder != embedder_name && embedder.is_some() {
            known.clear();
            store.set_knowledge_embedder(name, &embedder_name).await?;
        }
        let budget = self.inner.config.chunk_tokens;
        let mut seen = BTreeSet::new();
        for group in &found {
            for (path, key) in &group.files {
                seen.insert(key.clone());
                let Some(kind) = DocKind::of_path(path) else {
                    report.skipped.push(Skipped {
                        path: path.clone(),
                        reason: "not a file type that is read (Markdown, text, HTML and PDF are)"
                            .into(),
                    });
                    continue;
                };
                let bytes = match std::fs::read(path) {
                    Ok(b) => b,
                    Err(e) => {
                        report.skipped.push(Skipped {
                            path: path.clone(),
                            reason: format!("cannot read it: {e}"),
                        });
                        continue;
                    }
                };
                let hash = hex(&Sha256::digest(&bytes));
                let previous = known.get(key);
                if previous == Some(&hash) {
                    report.unchanged += 1;
                    continue;
                }
                let fallback = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| key.clone());
                let parsed =
                    match tokio::task::spawn_blocking(move || parse(kind, &bytes, &fallback)).await
                    {
                        Ok(Ok(doc)) => doc,
                        Ok(Err(e)) => {
                            report.skipped.push(Skipped {
                                path: path.clone(),
                                reason: e.to_string(),
                            });
                            continue;
                        }
                        Err(e) => {
                            report.skipped.push(Skipped {
                                path: path.clone(),
                                reason: format!("reading it failed: {e}"),
                            });
                            continue;
                        }
                    };
                let drafts = match &embedder {
                    Some(e) => chunk_document(&parsed, budget, &|t: &str| e.count_tokens(t)),
                    None => {
                        chunk_document(&parsed, budget, &|t: &str| t.chars().count().div_ceil(4))
                    }
                };
                let mut chunks: Vec<ChunkWrite> = drafts
                    .into_iter()
                    .map(|d| ChunkWrite {
                        // The title's own heading (a Markdown H1) is not
                        // repeated in every chunk's heading path.
                        heading: match d.headings.split_first() {
                            Some((first, rest)) if *first == parsed.title => rest.join(" › "),
                            _ => d.headings.join(" › "),
                        },
                        anchor: d.anchor,
                        body: d.text,
                        tokens: d.tokens as i64,
                        vector: None,
                    })
                    .collect();
                if let Some(e) = &embedder {
                    match embed_chunks(e, &parsed.title, &mut chunks).await {
                        Ok(()) => {}
                        Err(why) => {
                            report.warning.get_or_insert_with(|| {
                                format!(
                                    "the embedding model failed ({why}); chunks were stored without vectors (run `switchboard knowledge sync` later)"
                                )
                            });
                        }
                    }
                }
                report.unembedded += chunks.iter().filter(|c| c.vector.is_none()).count();
                report.chunks += chunks.len();
                let doc = DocumentWrite {
                    key: key.clone(),
                    title: parsed.title.clone(),
                    link: Some(path.display().to_string()),
                    content_hash: hash,
                    channel: None,
                    audience: None,
                    author: None,
                    at_ms: modified_ms(path),
                    chunks,
                };
                store.put_knowledge_document(name, &doc).await?;
                if previous.is_some() {
                    report.changed += 1;
                } else {
                    report.added += 1;
                }
                progress(&format!(
                    "{} {key} ({} chunks)",
                    if previous.is_some() {
                        "updated"
                    } else {
                        "added"
                    },
                    doc.chunks.len()
                ));
            }
        }
        // Documents under an ingested folder that are not there any more.
        let gone: Vec<String> = known
            .keys()
            .filter(|k| !seen.contains(*k))
            .filter(|k| {
                found
                    .iter()
                    .any(|f| f.prefix.as_ref().is_some_and(|p| k.starts_with(p.as_str())))
            })
            .cloned()
            .collect();
        for key in &gone {
            progress(&format!("removed {key}"));
        }
        store.delete_knowledge_documents(name, &gone).await?;
        report.removed = gone.len();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Embeds the chunks of `source` that have no vector (stored while the
    /// embedder was down); returns how many it embedded.
    pub async fn sync_vectors(&self, source: &str) -> Result<usize, KnowledgeError> {
        let embedder = self.embedder().await?;
        let mut done = 0;
        loop {
            let batch = self.inner.store.unembedded_chunks(source, 64).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let (ids, texts): (Vec<i64>, Vec<String>) = batch.into_iter().unzip();
            let vectors = embed_all(&embedder, texts)
                .await
                .map_err(KnowledgeError::Embedder)?;
            let pairs: Vec<(i64, Vec<f32>)> = ids.into_iter().zip(vectors).collect();
            done += pairs.len();
            self.inner.store.set_chunk_vectors(&pairs).await?;
        }
    }
}

/// Gives each of a document's chunks its vector (of the title, heading
/// and body, as [`embedding_text`] puts them together).
pub(super) async fn embed_chunks(
    embedder: &Embedder,
    title: &str,
    chunks: &mut [ChunkWrite],
) -> Result<(), String> {
    let texts = chunks
        .iter()
        .map(|c| embedding_text(title, &c.heading, &c.body))
        .collect();
    let vectors = embed_all(embedder, texts).await?;
    for (c, v) in chunks.iter_mut().zip(vectors) {
        c.vector = Some(v);
    }
    Ok(())
}

/// Embeds in batches of 32.
pub(super) async fn embed_all(
    embedder: &Embedder,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, String> {
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        out.extend(embedder.embed(batch.to_vec()).await?);
    }
    Ok(out)
}

/// The files under `path` (itself, if it is a file), sorted, hidden ones
/// left out, with their keys: the folder's own name, then the path inside it.
fn walk(path: &Path) -> Result<Found, KnowledgeError> {
    let meta = std::fs::metadata(path).map_err(|e| KnowledgeError::Path {
        path: path.to_path_buf(),
        reason: format!("{e}; give a file or a folder that exists"),
    })?;
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "files".to_string());
    if meta.is_file() {
        return Ok(Found {
            files: vec![(path.to_path_buf(), base)],
            prefix: None,
        });
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| KnowledgeError::Path {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    let rel = p
                        .strip_prefix(path)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .replace('\\', "/");
                    files.push((p.clone(), format!("{base}/{rel}")));
                }
                _ => {}
            }
        }
    }
    files.sort();
    Ok(Found {
        files,
        prefix: Some(format!("{base}/")),
    })
}

fn modified_ms(path: &Path) -> Option<i64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
