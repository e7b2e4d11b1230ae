//! The knowledge tables: sources, their documents (with a content hash, so
//! that re-ingesting an unchanged document costs one lookup) and chunks
//! (text, a vector, and a lexical index: SQLite's FTS5, PostgreSQL's
//! full-text search). A document and its chunks are replaced in one
//! transaction, so a killed ingest leaves each document either as it was or
//! as it is now; every change bumps `knowledge_state.generation`, which each
//! replica's in-process vector index watches.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::{Backend, Store, StoreError};
use crate::domain::now_ms;

/// A knowledge source with its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// The source's name.
    pub name: String,
    /// `files`, `slack` or `discord`.
    pub kind: String,
    /// `global`, or `platform/workspace`: who may see it.
    pub scope: String,
    /// The embedding model its vectors come from.
    pub embedder: String,
    /// Documents in it.
    pub documents: i64,
    /// Chunks in it.
    pub chunks: i64,
    /// Chunks with no vector yet (the embedder was down).
    pub unembedded: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A document to store, with its chunks.
#[derive(Debug, Clone)]
pub struct DocumentWrite {
    /// The document's key in its source (a relative path).
    pub key: String,
    /// Its title.
    pub title: String,
    /// Where a reader finds it.
    pub link: Option<String>,
    /// SHA-256 of its bytes, hex.
    pub content_hash: String,
    /// The channel it came from, for chat sources.
    pub channel: Option<String>,
    /// `None`: everyone in the source's scope may see it; otherwise only
    /// this audience (a private channel's members).
    pub audience: Option<String>,
    /// Who wrote it.
    pub author: Option<String>,
    /// When it was written, Unix ms.
    pub at_ms: Option<i64>,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkWrite>,
}

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct ChunkWrite {
    /// The heading path, joined with ` › `.
    pub heading: String,
    /// The heading's anchor, appended to the document's link.
    pub anchor: Option<String>,
    /// The text.
    pub body: String,
    /// Its length in the embedding model's tokens.
    pub tokens: i64,
    /// Its vector, or `None` when the embedder could not be reached.
    pub vector: Option<Vec<f32>>,
}

/// One chunk's vector and what a search filters it by, for the in-process
/// index.
#[derive(Debug, Clone)]
pub struct VectorRow {
    /// The chunk.
    pub chunk_id: i64,
    /// Its source.
    pub source: String,
    /// Its audience (see [`DocumentWrite::audience`]).
    pub audience: Option<String>,
    /// Its channel.
    pub channel: Option<String>,
    /// When it was written.
    pub at_ms: Option<i64>,
    /// Its document's id (which the change log names).
    pub document_id: String,
    /// The vector.
    pub vector: Vec<f32>,
}

/// A stored chunk with its document's metadata, as search returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    /// The chunk's id.
    pub id: i64,
    /// Its source.
    pub source: String,
    /// The document's key.
    pub doc_key: String,
    /// The document's title.
    pub title: String,
    /// The heading path.
    pub heading: String,
    /// The document's link with the heading's anchor.
    pub link: Option<String>,
    /// The text.
    pub body: String,
    /// Its channel.
    pub channel: Option<String>,
    /// Its author.
    pub author: Option<String>,
    /// When it was written.
    pub at_ms: Option<i64>,
}

/// What a lexical search may return: the sources asked for, and of them
/// only what the asker may see.
#[derive(Debug, Clone, Default)]
pub struct ChunkFilter {
    /// The sources to search (already limited to the asker's scopes).
    pub sources: Vec<String>,
    /// The audiences the asker belongs to (besides "everyone").
    pub audiences: Vec<String>,
    /// Every audience passes (the operator's searches).
    pub any_audience: bool,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only chunks written at or after this, Unix ms.
    pub since_ms: Option<i64>,
    /// `sources` names every source there is: the lexical index need not
    /// be asked for them (checking each match's source costs a read of its
    /// row), and [`ChunkFilter::allows`] still checks every hit.
    pub every_source: bool,
}

impl ChunkFilter {
    /// Whether a chunk with these attributes passes.
    pub fn allows(
        &self,
        source: &str,
        audience: Option<&str>,
        channel: Option<&str>,
        at_ms: Option<i64>,
    ) -> bool {
        self.sources.iter().any(|s| s == source)
            && audience.is_none_or(|a| self.any_audience || self.audiences.iter().any(|x| x == a))
            && self.channel.as_deref().is_none_or(|c| channel == Some(c))
            && self
                .since_ms
                .is_none_or(|since| at_ms.is_some_and(|t| t >= since))
    }
}

/// Little-endian f32s, as vectors are stored.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector read back (`None` if its length is not a whole number of
/// f32s).
pub fn bytes_vector(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// The words of a question, for the lexical index: letters and digits only,
/// lowercased, without a few words too common to tell chunks apart.
pub fn query_terms(query: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i",
        "in", "is", "it", "me", "my", "of", "on", "or", "our", "say", "says", "that", "the",
        "this", "to", "us", "we", "what", "when", "where", "which", "who", "why", "with", "you",
    ];
    let mut terms: Vec<String> = Vec::new();
    for word in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if !STOP.contains(&word.as_str()) && !terms.contains(&word) && terms.len() < 32 {
            terms.push(word);
        }
    }
    terms
}

impl Store {
    /// Every knowledge source, by name, with its counts.
    pub async fn knowledge_sources(&self) -> Result<Vec<SourceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.name, s.kind, s.scope, s.embedder, s.updated_at, \
               (SELECT COUNT(*) FROM knowledge_documents d WHERE d.source = s.name), \
               (SELECT COUNT(*) FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id WHERE d.source = s.name), \
               (SELECT COUNT(*) FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id WHERE d.source = s.name AND c.embedding IS NULL) \
             FROM knowledge_sources s ORDER BY s.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| source_row(r, true))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Every knowledge source's name, kind, scope and embedder, without
    /// counting its chunks: what each search reads.
    pub async fn knowledge_source_list(&self) -> Result<Vec<SourceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, kind, scope, embedder, updated_at FROM knowledge_sources ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| source_row(r, false))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Creates a source if it does not exist; returns the stored one either
    /// way (its scope and embedder may differ from those asked for: the
    /// caller decides what that means).
    pub async fn ensure_knowledge_source(
        &self,
        name: &str,
        kind: &str,
        scope: &str,
        embedder: &str,
    ) -> Result<SourceRow, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO knowledge_sources (name, kind, scope, embedder, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(kind)
        .bind(scope)
        .bind(embedder)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let sources = self.knowledge_sources().await?;
        sources
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| StoreError::Encode(format!("knowledge source `{name}` vanished")))
    }

    /// Records that a source's vectors now come from `embedder` (after every
    /// chunk was embedded again).
    pub async fn set_knowledge_embedder(
        &self,
        name: &str,
        embedder: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE knowledge_sources SET embedder = $1, updated_at = $2 WHERE name = $3")
            .bind(embedder)
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // Which vectors the index holds depends on each source's embedder.
        changed(&mut tx, &[Change::Everything]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored documents of a source: key → content hash.
    pub async fn knowledge_hashes(
        &self,
        source: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let rows =
            sqlx::query("SELECT doc_key, content_hash FROM knowledge_documents WHERE source = $1")
                .bind(source)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// One document's content hash, if the source holds it.
    pub async fn knowledge_hash(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT content_hash FROM knowledge_documents WHERE source = $1 AND doc_key = $2",
        )
        .bind(source)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Stores a document and its chunks, replacing any earlier version of it,
    /// in one transaction.
    pub async fn put_knowledge_document(
        &self,
        source: &str,
        doc: &DocumentWrite,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT id FROM knowledge_documents WHERE source = $1 AND doc_key = $2",
        )
        .bind(source)
        .bind(&doc.key)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM knowledge_documents WHERE source = $1 AND doc_key = $2")
            .bind(source)
            .bind(&doc.key)
            .execute(&mut *tx)
            .await?;
        let id = Uuid::now_v7().to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO knowledge_documents \
             (id, source, doc_key, title, link, content_hash, channel, audience, author, at_ms, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(source)
        .bind(&doc.key)
        .bind(&doc.title)
        .bind(&doc.link)
        .bind(&doc.content_hash)
        .bind(&doc.channel)
        .bind(&doc.audience)
        .bind(&doc.author)
        .bind(doc.at_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (ord, chunk) in doc.chunks.iter().enumerate() {
            let vector = chunk.vector.as_deref().map(vector_bytes);
            let sql = match self.backend {
                Backend::Sqlite => {
                    "INSERT INTO knowledge_chunks (document_id, ord, heading, anchor, body, tokens, embedding) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                }
                Backend::Postgres => {
                    "INSERT INTO knowledge_chunks (document_id, ord, heading, anchor, body, tokens, embedding, title) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                }
            };
            let query = sqlx::query(sql)
                .bind(&id)
                .bind(ord as i64)
                .bind(&chunk.heading)
                .bind(&chunk.anchor)
                .bind(&chunk.body)
                .bind(chunk.tokens)
                .bind(vector);
            let query = match self.backend {
                Backend::Sqlite => query,
                Backend::Postgres => query.bind(format!("{} {}", doc.title, chunk.heading)),
            };
            query.execute(&mut *tx).await?;
        }
        let mut changes = vec![Change::Removed(old), Change::Added(id)];
        changes.retain(|c| !matches!(c, Change::Removed(None)));
        touch(&mut tx, source, &changes).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes documents of a source by key.
    pub async fn delete_knowledge_documents(
        &self,
        source: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut changes = Vec::new();
        for key in keys {
            let id: Option<String> = sqlx::query_scalar(
                "DELETE FROM knowledge_documents WHERE source = $1 AND doc_key = $2 RETURNING id",
            )
            .bind(source)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if id.is_some() {
                changes.push(Change::Removed(id));
            }
        }
        if !changes.is_empty() {
            touch(&mut tx, source, &changes).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a source with everything in it; `false` if there was none.
    pub async fn remove_knowledge_source(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Chunks first, so that SQLite's lexical index trigger sees each one.
        sqlx::query(
            "DELETE FROM knowledge_chunks WHERE document_id IN \
             (SELECT id FROM knowledge_documents WHERE source = $1)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM knowledge_sources WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        changed(&mut tx, &[Change::Everything]).await?;
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// The knowledge generation: it changes whenever any chunk does.
    pub async fn knowledge_generation(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT generation FROM knowledge_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Every stored vector of the sources whose embedder is `embedder`, with
    /// what searches filter by.
    pub async fn knowledge_vectors(&self, embedder: &str) -> Result<Vec<VectorRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, d.source, d.audience, d.channel, d.at_ms, c.embedding, d.id \
             FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id \
             JOIN knowledge_sources s ON s.name = d.source \
             WHERE s.embedder = $1 AND c.embedding IS NOT NULL ORDER BY c.id",
        )
        .bind(embedder)
        .fetch_all(&self.pool)
        .await?;
        vector_rows(&rows)
    }

    /// Chunks matching the question's words, best first, with their rank
    /// score (higher is better), at most `limit`.
    pub async fn lexical_search(
        &self,
        terms: &[String],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        if terms.is_empty() || filter.sources.is_empty() {
            return Ok(Vec::new());
        }
        // The terms are letters and digits only (`query_terms`); quoted for
        // FTS5 all the same.
        // The sources as `$2, $3, …`, in both statements.
        let sources = (0..filter.sources.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let n = filter.sources.len() + 2;
        // Permissions and the other filters are applied below, over a few
        // more rows than asked for, so that hidden chunks cannot crowd out
        // visible ones.
        let fetch = (limit * 4 + 50) as i64;
        // SQLite: the full-text match of the sources' chunks first, as its
        // own step (joined the other way round, the planner probes the index
        // once per chunk), ranked by BM25 with the title and headings
        // weighing double.
        let in_sources = if filter.every_source {
            String::new()
        } else {
            format!("AND source IN ({sources})")
        };
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "SELECT c.id, f.rank, d.source, d.audience, d.channel, d.at_ms FROM \
                 (SELECT rowid AS id, -bm25(knowledge_fts, 2.0, 1.0) AS rank FROM knowledge_fts \
                  WHERE knowledge_fts MATCH $1 {in_sources} ORDER BY rank DESC LIMIT ${n}) f \
                 JOIN knowledge_chunks c ON c.id = f.id \
                 JOIN knowledge_documents d ON d.id = c.document_id ORDER BY 2 DESC, c.id"
            ),
            Backend::Postgres => format!(
                "SELECT c.id, ts_rank_cd(c.tsv, to_tsquery('english', $1)), d.source, d.audience, d.channel, d.at_ms \
                 FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id \
                 WHERE c.tsv @@ to_tsquery('english', $1) AND d.source IN ({sources}) \
                 ORDER BY 2 DESC, c.id LIMIT ${n}"
            ),
        };
        let query_text = match self.backend {
            Backend::Sqlite => terms
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(" OR "),
            Backend::Postgres => terms.join(" | "),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(query_text);
        for source in &filter.sources {
            query = query.bind(source);
        }
        let rows = query.bind(fetch).fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in &rows {
            let (source, audience, channel, at_ms): (
                String,
                Option<String>,
                Option<String>,
                Option<i64>,
            ) = (r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?);
            if filter.allows(&source, audience.as_deref(), channel.as_deref(), at_ms) {
                let score: f64 = r
                    .try_get::<f64, _>(1)
                    .or_else(|_| r.try_get::<f32, _>(1).map(f64::from))?;
                out.push((r.try_get(0)?, score));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many chunks there are, and how many match each term (its
    /// document frequency in the lexical index, stemmed as the index stems).
    pub async fn term_frequencies(&self, terms: &[String]) -> Result<(i64, Vec<i64>), StoreError> {
        let (total_sql, term_sql) = match self.backend {
            Backend::Sqlite => (
                "SELECT count(*) FROM knowledge_chunks",
                "SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH $1",
            ),
            Backend::Postgres => (
                "SELECT count(*) FROM knowledge_chunks",
                "SELECT count(*) FROM knowledge_chunks WHERE tsv @@ to_tsquery('english', $1)",
            ),
        };
        let total: i64 = sqlx::query_scalar(total_sql).fetch_one(&self.pool).await?;
        let mut counts = Vec::with_capacity(terms.len());
        for t in terms {
            let q = match self.backend {
                Backend::Sqlite => format!("\"{t}\""),
                Backend::Postgres => t.clone(),
            };
            counts.push(
                sqlx::query_scalar(term_sql)
                    .bind(q)
                    .fetch_one(&self.pool)
                    .await?,
            );
        }
        Ok((total, counts))
    }

    /// The chunks with these ids, with their documents' metadata, in the
    /// order asked for (missing ids are left out).
    pub async fn knowledge_chunks(&self, ids: &[i64]) -> Result<Vec<ChunkRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT c.id, d.source, d.doc_key, d.title, c.heading, d.link, c.anchor, c.body, d.channel, d.author, d.at_ms \
             FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id WHERE c.id IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut by_id = HashMap::new();
        for r in &rows {
            let link: Option<String> = r.try_get(5)?;
            let anchor: Option<String> = r.try_get(6)?;
            let link = match (link, anchor) {
                (Some(link), Some(anchor)) if !link.contains('#') => {
                    Some(format!("{link}#{anchor}"))
                }
                (link, _) => link,
            };
            let row = ChunkRow {
                id: r.try_get(0)?,
                source: r.try_get(1)?,
                doc_key: r.try_get(2)?,
                title: r.try_get(3)?,
                heading: r.try_get(4)?,
                link,
                body: r.try_get(7)?,
                channel: r.try_get(8)?,
                author: r.try_get(9)?,
                at_ms: r.try_get(10)?,
            };
            by_id.insert(row.id, row);
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Chunks of a source with no vector, at most `limit`: (id, title,
    /// heading, body).
    pub async fn unembedded_chunks(
        &self,
        source: &str,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.id, d.title, c.heading, c.body FROM knowledge_chunks c \
             JOIN knowledge_documents d ON d.id = c.document_id \
             WHERE d.source = $1 AND c.embedding IS NULL ORDER BY c.id LIMIT $2",
        )
        .bind(source)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (title, heading, body): (String, String, String) =
                    (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
                Ok((r.try_get(0)?, embedding_text(&title, &heading, &body)))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores vectors for chunks that had none.
    pub async fn set_chunk_vectors(&self, vectors: &[(i64, Vec<f32>)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, vector) in vectors {
            sqlx::query("UPDATE knowledge_chunks SET embedding = $1 WHERE id = $2")
                .bind(vector_bytes(vector))
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        changed(&mut tx, &[Change::Everything]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What changed after generation `since`, up to `until`, oldest first;
    /// `None` when the log no longer reaches back that far (every vector is
    /// then read again).
    pub async fn knowledge_changes(
        &self,
        since: i64,
        until: i64,
    ) -> Result<Option<Vec<Change>>, StoreError> {
        if until <= since {
            return Ok(Some(Vec::new()));
        }
        // Every generation bump logs at least one row, so the log is whole
        // from its oldest row on.
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT min(generation) FROM knowledge_changes")
                .fetch_one(&self.pool)
                .await?;
        if oldest.is_none_or(|o| o > since + 1) {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT document_id, added FROM knowledge_changes \
             WHERE generation > $1 AND generation <= $2 ORDER BY generation",
        )
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: Option<String> = r.try_get(0)?;
            let added: i64 = r.try_get(1)?;
            out.push(match (id, added != 0) {
                (None, _) => Change::Everything,
                (id @ Some(_), false) => Change::Removed(id),
                (Some(id), true) => Change::Added(id),
            });
        }
        Ok(Some(out))
    }

    /// The vectors of these documents' chunks (when their source's embedder
    /// is `embedder`), for the in-process index.
    pub async fn knowledge_document_vectors(
        &self,
        embedder: &str,
        documents: &[String],
    ) -> Result<Vec<VectorRow>, StoreError> {
        let mut out = Vec::new();
        for batch in documents.chunks(500) {
            let list = (0..batch.len())
                .map(|i| format!("${}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT c.id, d.source, d.audience, d.channel, d.at_ms, c.embedding, d.id \
                 FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id \
                 JOIN knowledge_sources s ON s.name = d.source \
                 WHERE s.embedder = $1 AND c.embedding IS NOT NULL AND d.id IN ({list}) ORDER BY c.id"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(embedder);
            for id in batch {
                query = query.bind(id);
            }
            out.extend(vector_rows(&query.fetch_all(&self.pool).await?)?);
        }
        Ok(out)
    }
}

/// What one knowledge generation changed, as the vector index takes it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A document's chunks were stored (under this new document id).
    Added(String),
    /// A document was deleted (or replaced: its old id).
    Removed(Option<String>),
    /// Anything may have changed: read every vector again.
    Everything,
}

/// How many generations of changes are kept; an index older than that is
/// read again whole.
const KEPT_GENERATIONS: i64 = 10_000;

/// Bumps the knowledge generation in `tx` and logs what changed at it.
async fn changed(
    tx: &mut Transaction<'static, Any>,
    changes: &[Change],
) -> Result<i64, StoreError> {
    let generation: i64 = sqlx::query_scalar(
        "UPDATE knowledge_state SET generation = generation + 1 WHERE id = 1 RETURNING generation",
    )
    .fetch_one(&mut **tx)
    .await?;
    for change in changes {
        let (id, added) = match change {
            Change::Added(id) => (Some(id.clone()), 1i64),
            Change::Removed(id) => (id.clone(), 0),
            Change::Everything => (None, 0),
        };
        sqlx::query(
            "INSERT INTO knowledge_changes (generation, document_id, added) VALUES ($1, $2, $3)",
        )
        .bind(generation)
        .bind(id)
        .bind(added)
        .execute(&mut **tx)
        .await?;
    }
    if generation % 1_000 == 0 {
        sqlx::query("DELETE FROM knowledge_changes WHERE generation <= $1")
            .bind(generation - KEPT_GENERATIONS)
            .execute(&mut **tx)
            .await?;
    }
    Ok(generation)
}

/// Vector rows: chunk id, source, audience, channel, time, vector bytes,
/// document id (a torn vector is left out).
fn vector_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<VectorRow>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bytes: Vec<u8> = r.try_get(5)?;
        let Some(vector) = bytes_vector(&bytes) else {
            continue;
        };
        out.push(VectorRow {
            chunk_id: r.try_get(0)?,
            source: r.try_get(1)?,
            audience: r.try_get(2)?,
            channel: r.try_get(3)?,
            at_ms: r.try_get(4)?,
            document_id: r.try_get(6)?,
            vector,
        });
    }
    Ok(out)
}

/// A source row: name, kind, scope, embedder, updated, then (`counts`) the
/// documents, chunks and chunks without vectors.
fn source_row(r: &sqlx::any::AnyRow, counts: bool) -> Result<SourceRow, sqlx::Error> {
    let count =
        |i: usize| -> Result<i64, sqlx::Error> { if counts { r.try_get(i) } else { Ok(0) } };
    Ok(SourceRow {
        name: r.try_get(0)?,
        kind: r.try_get(1)?,
        scope: r.try_get(2)?,
        embedder: r.try_get(3)?,
        updated_at_ms: r.try_get(4)?,
        documents: count(5)?,
        chunks: count(6)?,
        unembedded: count(7)?,
    })
}

/// What is embedded for a chunk: its document's title and heading give the
/// text its context.
pub fn embedding_text(title: &str, heading: &str, body: &str) -> String {
    match (title.is_empty(), heading.is_empty()) {
        (false, false) => format!("{title} › {heading}\n{body}"),
        (false, true) => format!("{title}\n{body}"),
        _ => body.to_string(),
    }
}

/// Marks `source` as changed now, and logs `changes`.
async fn touch(
    tx: &mut Transaction<'static, Any>,
    source: &str,
    changes: &[Change],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE knowledge_sources SET updated_at = $1 WHERE name = $2")
        .bind(now_ms())
        .bind(source)
        .execute(&mut **tx)
        .await?;
    changed(tx, changes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_a_torn_one_is_refused() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(bytes_vector(&vector_bytes(&v)), Some(v));
        assert_eq!(bytes_vector(&[1, 2, 3]), None);
    }

    #[test]
    fn query_terms_drop_punctuation_and_filler_words() {
        assert_eq!(
            query_terms("What does our retry-policy say? \"DROP TABLE\";"),
            ["retry", "policy", "drop", "table"]
        );
    }

    #[test]
    fn a_filter_hides_other_audiences_channels_and_old_chunks() {
        let f = ChunkFilter {
            sources: vec!["handbook".into()],
            audiences: vec!["slack:C1".into()],
            any_audience: false,
            channel: None,
            since_ms: None,
            every_source: false,
        };
        assert!(f.allows("handbook", None, None, None));
        assert!(f.allows("handbook", Some("slack:C1"), None, None));
        assert!(!f.allows("handbook", Some("slack:C2"), None, None));
        assert!(!f.allows("other", None, None, None));
        let f = ChunkFilter {
            channel: Some("C9".into()),
            since_ms: Some(100),
            ..f
        };
        assert!(!f.allows("handbook", None, Some("C1"), Some(200)));
        assert!(!f.allows("handbook", None, Some("C9"), Some(50)));
        assert!(f.allows("handbook", None, Some("C9"), Some(200)));
    }
}
