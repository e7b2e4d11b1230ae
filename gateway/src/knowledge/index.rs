//! The in-process vector index: every chunk's unit vector in one flat array,
//! searched exhaustively (a dot product per chunk is the cosine). At
//! 100,000 chunks of 384 dimensions that is 150 MB and a few milliseconds a
//! query on one core, exact, with no index to build or tune; it is reloaded
//! from the database when the knowledge generation moves, so that every
//! replica sees what any of them ingested.

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

struct Meta {
    source: String,
    audience: Option<String>,
    channel: Option<String>,
    at_ms: Option<i64>,
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
        for row in rows.into_iter().filter(|r| r.vector.len() == dims) {
            index.ids.push(row.chunk_id);
            index.vectors.extend_from_slice(&row.vector);
            index.meta.push(Meta {
                source: row.source,
                audience: row.audience,
                channel: row.channel,
                at_ms: row.at_ms,
            });
        }
        index
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
            vector: v.to_vec(),
        }
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
