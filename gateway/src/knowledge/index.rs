//! The in-process vector index: every chunk's unit vector in one flat array,
//! searched exhaustively (a dot product per chunk is the cosine). At
//! 100,000 chunks of 384 dimensions that is 150 MB and a few milliseconds a
//! query on one core, exact, with no index to build or tune. When the
//! knowledge generation moves (any replica stored or deleted something) it
//! takes in only what the change log says changed: the changed documents'
//! vectors are read, the rest is copied over; an index too old for the log
//! is read again whole.

use std::sync::Arc;

use crate::store::{ChunkFilter, VectorRow};

/// Chunks' vectors and what searches filter them by.
pub(super) struct VectorIndex {
    /// The knowledge generation the index was read at.
    pub generation: i64,
    /// The embedder whose vectors it holds.
    pub embedder: String,
    dims: usize,
    ids: Vec<i64>,
    meta: Vec<Meta>,
    vectors: Vec<f32>,
}

/// What a chunk is filtered by. Shared strings: a refresh copies the
/// entries it keeps, and a pointer is cheaper to copy than the text.
struct Meta {
    document: Arc<str>,
    source: Arc<str>,
    audience: Option<Arc<str>>,
    channel: Option<Arc<str>>,
    at_ms: Option<i64>,
}

/// One shared copy of each distinct string (a source's name, a document's
/// id), for the chunks that carry it.
#[derive(Default)]
struct Interner(std::collections::HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), Arc::clone(&a));
        a
    }

    fn meta(&mut self, row: &VectorRow) -> Meta {
        Meta {
            document: self.get(&row.document_id),
            source: self.get(&row.source),
            audience: row.audience.as_deref().map(|a| self.get(a)),
            channel: row.channel.as_deref().map(|c| self.get(c)),
            at_ms: row.at_ms,
        }
    }
}

impl VectorIndex {
    /// An index over `rows` (rows whose length differs from the first's are
    /// left out: they cannot come from the same model).
    pub fn new(generation: i64, embedder: String, rows: Vec<VectorRow>) -> VectorIndex {
        let dims = rows.first().map_or(0, |r| r.vector.len());
        let mut index = VectorIndex {
            generation,
            embedder,
            dims,
            ids: Vec::with_capacity(rows.len()),
            meta: Vec::with_capacity(rows.len()),
            vectors: Vec::with_capacity(rows.len() * dims),
        };
        let mut strings = Interner::default();
        for row in rows.iter().filter(|r| r.vector.len() == dims) {
            index.ids.push(row.chunk_id);
            index.vectors.extend_from_slice(&row.vector);
            index.meta.push(strings.meta(row));
        }
        index
    }

    /// This index at `generation`: the chunks of the documents in `drop`
    /// left out, `rows` (the changed documents' chunks now) added.
    pub fn refreshed(
        &self,
        generation: i64,
        drop: &std::collections::HashSet<String>,
        rows: Vec<VectorRow>,
    ) -> VectorIndex {
        let dims = if self.dims == 0 {
            rows.first().map_or(0, |r| r.vector.len())
        } else {
            self.dims
        };
        let kept = self
            .meta
            .iter()
            .filter(|m| !drop.contains(&*m.document))
            .count();
        let mut next = VectorIndex {
            generation,
            embedder: self.embedder.clone(),
            dims,
            ids: Vec::with_capacity(kept + rows.len()),
            meta: Vec::with_capacity(kept + rows.len()),
            vectors: Vec::with_capacity((kept + rows.len()) * dims),
        };
        for (i, m) in self.meta.iter().enumerate() {
            if drop.contains(&*m.document) {
                continue;
            }
            next.ids.push(self.ids[i]);
            next.vectors
                .extend_from_slice(&self.vectors[i * self.dims..(i + 1) * self.dims]);
            next.meta.push(Meta {
                document: Arc::clone(&m.document),
                source: Arc::clone(&m.source),
                audience: m.audience.clone(),
                channel: m.channel.clone(),
                at_ms: m.at_ms,
            });
        }
        let mut strings = Interner::default();
        for row in rows.iter().filter(|r| r.vector.len() == dims) {
            next.ids.push(row.chunk_id);
            next.vectors.extend_from_slice(&row.vector);
            next.meta.push(strings.meta(row));
        }
        next
    }

    /// How many chunks it holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The `limit` chunks most similar to `query` that `filter` allows, with
    /// a similarity of at least `min_score`, best first.
    pub fn search(
        &self,
        query: &[f32],
        filter: &ChunkFilter,
        min_score: f32,
        limit: usize,
    ) -> Vec<(i64, f32)> {
        if query.len() != self.dims || self.dims == 0 || limit == 0 {
            return Vec::new();
        }
        // The best `limit` so far, kept sorted, worst last.
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(limit + 1);
        for (i, vector) in self.vectors.chunks_exact(self.dims).enumerate() {
            let score = dot(query, vector);
            if score < min_score || (best.len() == limit && score <= best[limit - 1].0) {
                continue;
            }
            let m = &self.meta[i];
            if !filter.allows(
                &m.source,
                m.audience.as_deref(),
                m.channel.as_deref(),
                m.at_ms,
            ) {
                continue;
            }
            let at = best.partition_point(|(s, _)| *s >= score);
            best.insert(at, (score, i));
            best.truncate(limit);
        }
        best.into_iter().map(|(s, i)| (self.ids[i], s)).collect()
    }
}

/// The dot product, in eight lanes so that the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, source: &str, audience: Option<&str>, v: [f32; 3]) -> VectorRow {
        VectorRow {
            chunk_id: id,
            source: source.into(),
            audience: audience.map(String::from),
            channel: None,
            at_ms: None,
            document_id: format!("doc{id}"),
            vector: v.to_vec(),
        }
    }

    #[test]
    fn a_refresh_drops_changed_documents_and_adds_their_new_chunks() {
        let index = VectorIndex::new(
            1,
            "m".into(),
            vec![
                row(1, "a", None, [1.0, 0.0, 0.0]),
                row(2, "a", None, [0.0, 1.0, 0.0]),
                row(3, "a", None, [0.0, 0.0, 1.0]),
            ],
        );
        // doc2 deleted, doc3 replaced by doc9 (same chunk id, as SQLite
        // may reuse the largest), doc7 new.
        let drop = ["doc2", "doc3"].map(String::from).into_iter().collect();
        let mut replaced = row(3, "a", None, [0.0, 0.6, 0.8]);
        replaced.document_id = "doc9".into();
        let next = index.refreshed(5, &drop, vec![replaced, row(7, "a", None, [0.0, 1.0, 0.0])]);
        assert_eq!(next.generation, 5);
        assert_eq!(next.len(), 3);
        let all = ChunkFilter {
            sources: vec!["a".into()],
            ..ChunkFilter::default()
        };
        let found = next.search(&[0.0, 1.0, 0.0], &all, 0.0, 3);
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [7, 3, 1]);
        assert!(
            (found[1].1 - 0.6).abs() < 1e-6,
            "the new vector, not the old"
        );
        // The old index is untouched (searches in flight keep using it).
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn nearest_first_and_hidden_chunks_never_returned() {
        let index = VectorIndex::new(
            1,
            "m".into(),
            vec![
                row(1, "a", None, [1.0, 0.0, 0.0]),
                row(2, "a", None, [0.6, 0.8, 0.0]),
                row(3, "a", Some("slack:CPRIVATE"), [1.0, 0.0, 0.0]),
                row(4, "b", None, [1.0, 0.0, 0.0]),
                row(5, "a", None, [0.0, 0.0, 1.0]),
            ],
        );
        let filter = ChunkFilter {
            sources: vec!["a".into()],
            ..ChunkFilter::default()
        };
        let found = index.search(&[1.0, 0.0, 0.0], &filter, 0.1, 10);
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
        let member = ChunkFilter {
            audiences: vec!["slack:CPRIVATE".into()],
            ..filter
        };
        let found = index.search(&[1.0, 0.0, 0.0], &member, 0.0, 2);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.0 == 1 || f.0 == 3));
    }

    #[test]
    fn the_dot_product_is_exact_past_the_lanes() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let expected: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), expected);
    }
}
