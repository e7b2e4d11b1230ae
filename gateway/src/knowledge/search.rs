//! Hybrid search: the question's words against the lexical index and its
//! embedding against the vector index, each list limited to what the
//! viewer may see, fused by reciprocal rank (a chunk ranked r in a list
//! scores 1 / (k + r), summed over the lists). A missing embedder is not a
//! failure: the search runs lexical only and says so.

use std::collections::HashMap;
use std::time::Instant;

use prompts::SearchMode;

use super::{Knowledge, KnowledgeError, Viewer};
use crate::store::{ChunkFilter, ChunkRow, query_terms};

/// One search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// The question.
    pub text: String,
    /// The sources to search; empty: every source the viewer sees.
    pub sources: Vec<String>,
    /// How many chunks to return.
    pub top_k: usize,
    /// The least cosine similarity of a dense match.
    pub min_score: f32,
    /// Hybrid, lexical or dense.
    pub mode: SearchMode,
    /// The fusion constant.
    pub rrf_k: u32,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only chunks written at or after this, Unix ms.
    pub since_ms: Option<i64>,
}

impl SearchQuery {
    /// A search of `sources` with a `[retrieval]` table's defaults (hybrid).
    pub fn new(text: &str, sources: Vec<String>, top_k: usize) -> SearchQuery {
        SearchQuery::of_prompt(
            text,
            &prompts::Retrieval {
                top_k,
                ..prompts::Retrieval::over(sources)
            },
        )
    }

    /// The search a prompt version's `[retrieval]` asks for.
    pub fn of_prompt(text: &str, r: &prompts::Retrieval) -> SearchQuery {
        SearchQuery {
            text: text.to_string(),
            sources: r.sources.clone(),
            top_k: r.top_k,
            min_score: r.min_score,
            mode: r.mode,
            rrf_k: r.rrf_k,
            channel: None,
            since_ms: None,
        }
    }
}

/// One chunk found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk and its document.
    pub chunk: ChunkRow,
    /// The fused score.
    pub score: f64,
    /// Its rank in the lexical list (1-based) and score there.
    pub lexical: Option<(usize, f64)>,
    /// Its rank in the dense list (1-based) and cosine similarity.
    pub dense: Option<(usize, f32)>,
}

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    /// The chunks, best first.
    pub hits: Vec<Hit>,
    /// The sources searched.
    pub sources: Vec<String>,
    /// Why the search was less than asked (no embedder: lexical only; a
    /// source missing).
    pub warnings: Vec<String>,
    /// Time to embed the question, ms (`None`: not embedded).
    pub embed_ms: Option<f64>,
    /// Time for the searches and fusion, ms, embedding excluded.
    pub search_ms: f64,
    /// Chunks in the searched sources' vector index.
    pub indexed: usize,
    /// When this search first brought the vector index up to date: `changes`
    /// (only the changed documents read) or `whole`, and how long it took, ms.
    pub refreshed: Option<(&'static str, f64)>,
}

/// What the dense half of a search found.
#[derive(Default)]
struct DenseSide {
    hits: Vec<(i64, f32)>,
    embed_ms: Option<f64>,
    ms: f64,
    indexed: usize,
    refreshed: Option<(&'static str, f64)>,
    warnings: Vec<String>,
}

/// Below this many chunks every term of a question is searched; above, the
/// terms too common to tell chunks apart are left out (see [`selective`]).
pub const PRUNE_FROM: i64 = 50_000;
/// However common they are, the rarest this many terms are searched.
const KEEP: usize = 3;
/// Terms whose frequencies are kept, at most (cleared when exceeded).
const MAX_TERMS: usize = 50_000;

/// Document frequencies of query terms at one knowledge generation.
#[derive(Debug, Default)]
pub(super) struct TermStats {
    generation: i64,
    total: Option<i64>,
    counts: HashMap<String, i64>,
}

/// The terms worth searching: those in at most `share` of the `total`
/// chunks, and (so that a question of common words still finds something)
/// the rarest others until [`KEEP`] are kept. Terms that match
/// nothing are left out; with fewer than [`PRUNE_FROM`] chunks every term
/// is kept. An OR query's cost is the sum of its terms' posting lists,
/// and a term in 5% of the chunks weighs a third of a rare one in BM25:
/// leaving it out changes little of the ranking and most of the time.
fn selective(terms: &[String], counts: &[i64], total: i64, share: f64) -> Vec<String> {
    if total < PRUNE_FROM || share >= 1.0 {
        return terms.to_vec();
    }
    let mut order: Vec<usize> = (0..terms.len()).filter(|i| counts[*i] > 0).collect();
    order.sort_by_key(|i| counts[*i]);
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if counts[i] as f64 <= share * total as f64 || keep.len() < KEEP {
            keep.push(i);
        }
    }
    keep.sort_unstable();
    keep.into_iter().map(|i| terms[i].clone()).collect()
}

/// How many candidates each list contributes to the fusion.
fn candidates(top_k: usize) -> usize {
    (top_k * 5).max(50)
}

impl Knowledge {
    /// Searches for `query` as `viewer`.
    pub async fn search(
        &self,
        query: &SearchQuery,
        viewer: &Viewer,
    ) -> Result<SearchResult, KnowledgeError> {
        let mut result = SearchResult::default();
        let stored = self.inner.store.knowledge_source_list().await?;
        let visible: Vec<_> = stored
            .iter()
            .filter(|s| viewer.sees_scope(&s.scope))
            .collect();
        let names: Vec<String> = if query.sources.is_empty() {
            visible.iter().map(|s| s.name.clone()).collect()
        } else {
            let mut names = Vec::new();
            for asked in &query.sources {
                if visible.iter().any(|s| &s.name == asked) {
                    names.push(asked.clone());
                } else {
                    // Said the same whether it does not exist or belongs to
                    // another workspace: its existence is not revealed.
                    result.warnings.push(format!(
                        "knowledge source `{asked}` does not exist here (`switchboard knowledge list`)"
                    ));
                }
            }
            names
        };
        result.sources = names.clone();
        if names.is_empty() {
            if visible.is_empty() {
                result
                    .warnings
                    .push("the knowledge index is empty: nothing has been ingested yet".into());
            }
            return Ok(result);
        }
        let filter = ChunkFilter {
            sources: names.clone(),
            audiences: viewer.audiences.clone(),
            any_audience: viewer.all_audiences,
            channel: query.channel.clone(),
            since_ms: query.since_ms,
            every_source: names.len() == stored.len(),
        };
        let n = candidates(query.top_k);

        // The question is embedded and searched densely while the lexical
        // index is searched: an answer waits for the slower, not the sum.
        let dense_side = async {
            let mut side = DenseSide::default();
            if query.mode == SearchMode::Lexical {
                return Ok::<_, KnowledgeError>(side);
            }
            let embedder_name = self.inner.embedder.name();
            let other: Vec<&str> = visible
                .iter()
                .filter(|s| names.contains(&s.name) && s.embedder != embedder_name)
                .map(|s| s.name.as_str())
                .collect();
            if !other.is_empty() {
                side.warnings.push(format!(
                    "source(s) {} were embedded with another model than `{embedder_name}`: only lexical search reaches them until they are ingested again",
                    other.join(", ")
                ));
            }
            match self.inner.embedder.get().await {
                Ok(embedder) => {
                    let started = Instant::now();
                    match embedder.embed(vec![query.text.clone()]).await {
                        Ok(mut v) if !v.is_empty() => {
                            side.embed_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                            let q = v.swap_remove(0);
                            let searched = Instant::now();
                            let (index, refreshed) = self.index(&embedder_name).await?;
                            side.refreshed = refreshed;
                            side.indexed = index.len();
                            side.hits = index.search(&q, &filter, query.min_score, n);
                            side.ms = searched.elapsed().as_secs_f64() * 1000.0;
                        }
                        Ok(_) => {}
                        Err(why) => side.warnings.push(format!(
                            "the embedding model failed ({why}): lexical search only"
                        )),
                    }
                }
                Err(why) => side.warnings.push(format!("{why}: lexical search only")),
            }
            Ok(side)
        };
        let terms = query_terms(&query.text);
        let lexical_side = async {
            if query.mode == SearchMode::Dense {
                return Ok((Vec::new(), 0.0));
            }
            let started = Instant::now();
            let terms = self.selective_terms(&terms).await?;
            let hits = self.inner.store.lexical_search(&terms, &filter, n).await?;
            Ok::<_, KnowledgeError>((hits, started.elapsed().as_secs_f64() * 1000.0))
        };
        let (dense_side, lexical_side) = tokio::join!(dense_side, lexical_side);
        let (dense_side, (mut lexical, lexical_ms)) = (dense_side?, lexical_side?);
        result.warnings.extend(dense_side.warnings);
        result.embed_ms = dense_side.embed_ms;
        result.indexed = dense_side.indexed;
        result.refreshed = dense_side.refreshed;
        result.search_ms = lexical_ms.max(dense_side.ms);
        let dense = dense_side.hits;
        let searched = Instant::now();
        // Dense search asked for and impossible: lexical rather than nothing.
        if query.mode == SearchMode::Dense && result.embed_ms.is_none() {
            lexical = self.inner.store.lexical_search(&terms, &filter, n).await?;
        }
        let fused = fuse(&lexical, &dense, query.rrf_k, query.top_k);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        let rows = self.inner.store.knowledge_chunks(&ids).await?;
        let mut by_id: HashMap<i64, ChunkRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        for (id, score, lex, den) in fused {
            if let Some(chunk) = by_id.remove(&id) {
                result.hits.push(Hit {
                    chunk,
                    score,
                    lexical: lex,
                    dense: den,
                });
            }
        }
        result.search_ms += searched.elapsed().as_secs_f64() * 1000.0;
        Ok(result)
    }
}

impl Knowledge {
    /// `terms` without those too common to search ([`selective`]), their
    /// frequencies counted once per knowledge generation.
    async fn selective_terms(&self, terms: &[String]) -> Result<Vec<String>, KnowledgeError> {
        let generation = self.inner.store.knowledge_generation().await?;
        let (total, missing) = {
            let mut stats = self.inner.terms.lock().unwrap_or_else(|p| p.into_inner());
            if stats.generation != generation || stats.counts.len() > MAX_TERMS {
                *stats = TermStats {
                    generation,
                    ..TermStats::default()
                };
            }
            let missing: Vec<String> = terms
                .iter()
                .filter(|t| !stats.counts.contains_key(*t))
                .cloned()
                .collect();
            (stats.total, missing)
        };
        let share = self.inner.config.common_term_share;
        if share >= 1.0 || total.is_some_and(|t| t < PRUNE_FROM) {
            return Ok(terms.to_vec());
        }
        if total.is_none() || !missing.is_empty() {
            let (counted_total, counts) = self.inner.store.term_frequencies(&missing).await?;
            let mut stats = self.inner.terms.lock().unwrap_or_else(|p| p.into_inner());
            if stats.generation == generation {
                stats.total = Some(counted_total);
                stats.counts.extend(missing.into_iter().zip(counts));
            }
        }
        let stats = self.inner.terms.lock().unwrap_or_else(|p| p.into_inner());
        let Some(total) = stats.total else {
            return Ok(terms.to_vec());
        };
        let counts: Vec<i64> = terms
            .iter()
            .map(|t| stats.counts.get(t).copied().unwrap_or(1))
            .collect();
        Ok(selective(terms, &counts, total, share))
    }
}

type Fused = (i64, f64, Option<(usize, f64)>, Option<(usize, f32)>);

/// Reciprocal rank fusion of the two lists, best `top_k` first (ties go to
/// the better lexical rank, then the smaller id, so results are stable).
fn fuse(lexical: &[(i64, f64)], dense: &[(i64, f32)], k: u32, top_k: usize) -> Vec<Fused> {
    let mut all: HashMap<i64, Fused> = HashMap::new();
    let k = f64::from(k);
    for (rank, (id, s)) in lexical.iter().enumerate() {
        let e = all.entry(*id).or_insert((*id, 0.0, None, None));
        e.1 += 1.0 / (k + rank as f64 + 1.0);
        e.2 = Some((rank + 1, *s));
    }
    for (rank, (id, s)) in dense.iter().enumerate() {
        let e = all.entry(*id).or_insert((*id, 0.0, None, None));
        e.1 += 1.0 / (k + rank as f64 + 1.0);
        e.3 = Some((rank + 1, *s));
    }
    let mut out: Vec<Fused> = all.into_values().collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| {
                let ra = a.2.map_or(usize::MAX, |r| r.0);
                let rb = b.2.map_or(usize::MAX, |r| r.0);
                ra.cmp(&rb)
            })
            .then_with(|| a.0.cmp(&b.0))
    });
    out.truncate(top_k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_both_lists_agree_on_beats_one_list_leaders() {
        let lexical = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let dense = [(4, 0.9), (2, 0.8), (5, 0.7)];
        let fused = fuse(&lexical, &dense, 60, 3);
        assert_eq!(fused[0].0, 2);
        assert_eq!(fused[0].2, Some((2, 8.0)));
        assert_eq!(fused[0].3, Some((2, 0.8)));
        // Then the two rank-1 chunks, the lexical one first on the tie.
        assert_eq!(fused[1].0, 1);
        assert_eq!(fused[2].0, 4);
    }

    #[test]
    fn common_terms_are_left_out_of_big_indexes_but_three_always_stay() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let terms = t(&["change", "wal", "size", "segment", "zzz"]);
        // 100k chunks: `change` (30%) and `size` (12%) are common, `zzz`
        // matches nothing.
        assert_eq!(
            selective(&terms, &[30_000, 900, 12_000, 50, 0], 100_000, 0.1),
            t(&["wal", "size", "segment"])
        );
        assert_eq!(
            selective(&terms, &[30_000, 900, 8_000, 50, 2], 100_000, 0.1),
            t(&["wal", "size", "segment", "zzz"])
        );
        // Every word common: the three rarest.
        assert_eq!(
            selective(
                &terms,
                &[30_000, 20_000, 40_000, 50_000, 60_000],
                100_000,
                0.1
            ),
            t(&["change", "wal", "size"])
        );
        // A smaller index, or a share of 1, keeps every term.
        assert_eq!(selective(&terms, &[30_000, 1, 2, 0, 0], 40_000, 0.1), terms);
        assert_eq!(
            selective(&terms, &[30_000, 1, 2, 0, 0], 100_000, 1.0),
            terms
        );
    }

    #[test]
    fn one_list_alone_keeps_its_order() {
        let fused = fuse(&[], &[(7, 0.9), (3, 0.5)], 60, 10);
        assert_eq!(fused.iter().map(|f| f.0).collect::<Vec<_>>(), [7, 3]);
    }
}
