//! Stage 3½, retrieve: for a prompt version with a `[retrieval]` table, the
//! question is searched in the named knowledge sources (as the asker: only
//! what they may see), and the chunks found are numbered and given to the
//! template variable the table names, within its token budget. The render
//! stage then trims history to what the documents leave of the context
//! window. What was given is kept for the inference row and the citations;
//! a search that fails or runs degraded still answers, with a warning on
//! the row.

use std::time::Instant;

use super::Pipeline;
use crate::domain::{Origin, RetrievalRecord, RetrievedChunk};
use crate::knowledge::{SearchQuery, Viewer};

impl Pipeline {
    /// The documents text for `question` and what was retrieved.
    pub(super) async fn retrieve(
        &self,
        settings: &prompts::Retrieval,
        question: &str,
        origin: &Origin,
    ) -> (String, RetrievalRecord) {
        let mut record = RetrievalRecord {
            sources: settings.sources.clone(),
            ..RetrievalRecord::default()
        };
        let Some(knowledge) = &self.inner.options.knowledge else {
            record.warning = Some("retrieval is not set up in this process".into());
            return (String::new(), record);
        };
        let started = Instant::now();
        let query = SearchQuery::of_prompt(question, settings);
        let result = match knowledge.search(&query, &Viewer::of(origin)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "knowledge search failed; answering without documents");
                record.warning = Some(format!("knowledge search failed: {e}"));
                return (String::new(), record);
            }
        };
        if !result.warnings.is_empty() {
            record.warning = Some(result.warnings.join("; "));
        }
        let mut text = String::new();
        let mut used = 0u64;
        let budget = u64::from(settings.context_tokens);
        for (i, hit) in result.hits.iter().enumerate() {
            let c = &hit.chunk;
            let number = i as u32 + 1;
            let mut entry = format!("[{number}] {}", c.title);
            if !c.heading.is_empty() {
                entry.push_str(&format!(" › {}", c.heading));
            }
            if let Some(link) = &c.link {
                entry.push_str(&format!(" ({link})"));
            }
            entry.push('\n');
            entry.push_str(&c.body);
            entry.push_str("\n\n");
            // The same estimate the history trimming uses.
            let cost = super::context::estimated_text_tokens(&entry);
            if used + cost > budget && !record.chunks.is_empty() {
                break;
            }
            used += cost;
            text.push_str(&entry);
            record.chunks.push(RetrievedChunk {
                number,
                chunk_id: c.id,
                source: c.source.clone(),
                title: c.title.clone(),
                heading: c.heading.clone(),
                link: c.link.clone(),
                score: hit.score,
                similarity: hit.dense.map(|d| d.1),
                cited: false,
            });
        }
        tracing::debug!(
            found = result.hits.len(),
            given = record.chunks.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "retrieved"
        );
        (text.trim_end().to_string(), record)
    }
}
