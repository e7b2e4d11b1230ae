//! Sentence embeddings on the CPU, inside the process: [`TextEmbedder`] runs all-MiniLM-L6-v2
//! (384 dimensions) over text, so documents can be indexed and searched by meaning with no
//! embedding service and no GPU.
//!
//! An embedding is the mean of the encoder's last hidden states over the text's tokens
//! (`[CLS]` and `[SEP]` included), scaled to unit length, as sentence-transformers computes it
//! for this model; the dot product of two embeddings is their cosine similarity.
//!
//! This file holds the embedder and the pooling; beside it are `wordpiece` (the tokenizer) and
//! `chars` (its character classes), `safetensors` (reading the weights), `bert` (the encoder),
//! `model` (the pinned model and fetching it) and `error`.

mod bert;
mod chars;
mod error;
mod model;
mod safetensors;
mod wordpiece;

use std::fmt;
use std::path::Path;

pub use error::EmbedError;
pub use model::{EMBEDDING_MODEL_DIR, default_embedding_model, pull_embedding_model};

use bert::{Bert, HIDDEN, MAX_POSITIONS, VOCAB};
use wordpiece::WordPiece;

/// Longest input the model was trained on, in tokens with `[CLS]` and `[SEP]`
/// (sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2).
const MAX_TOKENS: usize = 256;
const _: () = assert!(MAX_TOKENS <= MAX_POSITIONS);

/// Tokens run through the encoder in one pass. Texts are stacked without padding, so a pass
/// costs what its tokens cost. Measured on a 2-core EPYC: 256 to 512 ran about 10% faster than
/// 2048 (the activations, 8 MB here, stay nearer the cache), and 16-token queries twice as fast
/// as one text per pass (the weights are packed for `sgemm` once per pass, not once per query).
const BATCH_TOKENS: usize = 512;

/// A loaded all-MiniLM-L6-v2 sentence embedder (about 90 MB of weights).
///
/// It holds no mutable state: share one behind an `Arc` and call [`embed`](Self::embed) from
/// several threads at once. Each call runs on the calling thread only, so to use more cores
/// split the texts across threads: two threads embed twice as fast on two cores. One thread
/// embeds roughly 3,000 tokens a second (25 chunks of 128 tokens, or 220 queries of 16 when
/// they come in one call); see `examples/embed_bench.rs`.
pub struct TextEmbedder {
    tokenizer: WordPiece,
    bert: Bert,
}

impl fmt::Debug for TextEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextEmbedder")
            .field("dimensions", &HIDDEN)
            .field("max_tokens", &MAX_TOKENS)
            .finish_non_exhaustive()
    }
}

impl TextEmbedder {
    /// Loads the model from `dir`, which holds `model.safetensors` and `tokenizer.json` (the
    /// folder [`pull_embedding_model`] returns).
    ///
    /// # Errors
    ///
    /// An [`EmbedError`] naming the file that is missing, unreadable, damaged or not
    /// all-MiniLM-L6-v2's.
    pub fn load(dir: &Path) -> Result<TextEmbedder, EmbedError> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = WordPiece::load(&tokenizer_path)?;
        if tokenizer.id_limit() as usize > VOCAB {
            return Err(EmbedError::BadTokenizer {
                path: tokenizer_path,
                detail: format!(
                    "it has token ids up to {} but the model has {VOCAB} token embeddings",
                    tokenizer.id_limit() - 1
                ),
            });
        }
        let bert = Bert::load(&dir.join("model.safetensors"))?;
        Ok(TextEmbedder { tokenizer, bert })
    }

    /// Length of every embedding: 384.
    pub fn dimensions(&self) -> usize {
        HIDDEN
    }

    /// Longest input in tokens, `[CLS]` and `[SEP]` included: 256. [`embed`](Self::embed)
    /// reads only the first `max_tokens() - 2` tokens of a longer text.
    pub fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    /// How many WordPiece tokens `text` has, without `[CLS]` and `[SEP]`: a text is embedded
    /// whole when this is at most `max_tokens() - 2`.
    pub fn count_tokens(&self, text: &str) -> usize {
        let mut ids = Vec::new();
        self.tokenizer.tokenize(text, &mut ids);
        ids.len()
    }

    /// Embeds each text: one unit-length vector of [`dimensions`](Self::dimensions) per text,
    /// in order. A text longer than [`max_tokens`](Self::max_tokens) is embedded from its
    /// first tokens; an empty text still gets a vector (that of `[CLS] [SEP]`).
    pub fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let mut embeddings = Vec::with_capacity(texts.len());
        let mut batch: Vec<Vec<u32>> = Vec::new();
        let mut batch_tokens = 0;
        for text in texts {
            let ids = self.encode(text);
            if batch_tokens + ids.len() > BATCH_TOKENS && !batch.is_empty() {
                self.run(&batch, &mut embeddings);
                batch.clear();
                batch_tokens = 0;
            }
            batch_tokens += ids.len();
            batch.push(ids);
        }
        if !batch.is_empty() {
            self.run(&batch, &mut embeddings);
        }
        embeddings
    }

    /// `[CLS]`, the first `MAX_TOKENS - 2` tokens of `text`, `[SEP]`.
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.tokenizer.cls()];
        self.tokenizer.tokenize(text, &mut ids);
        ids.truncate(MAX_TOKENS - 1);
        ids.push(self.tokenizer.sep());
        ids
    }

    /// One encoder pass over `batch`, pooled into `out`.
    fn run(&self, batch: &[Vec<u32>], out: &mut Vec<Vec<f32>>) {
        let hidden = self.bert.forward(batch);
        let mut first = 0;
        for ids in batch {
            let rows = &hidden[first * HIDDEN..(first + ids.len()) * HIDDEN];
            out.push(mean_pool_normalized(rows));
            first += ids.len();
        }
    }
}

/// The mean of `rows` (hidden states of [`HIDDEN`] each), scaled to unit length.
fn mean_pool_normalized(rows: &[f32]) -> Vec<f32> {
    let mut sum = vec![0.0f64; HIDDEN];
    for row in rows.chunks_exact(HIDDEN) {
        sum.iter_mut()
            .zip(row)
            .for_each(|(s, &v)| *s += f64::from(v));
    }
    // The mean's 1/n cancels in the normalization.
    let norm = sum.iter().map(|s| s * s).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    sum.iter().map(|s| (s * scale) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<TextEmbedder>();
    }

    #[test]
    fn pooling_averages_and_normalizes() {
        let mut rows = vec![0.0f32; 2 * HIDDEN];
        rows[0] = 3.0;
        rows[HIDDEN] = 1.0;
        rows[HIDDEN + 1] = 4.0;
        let e = mean_pool_normalized(&rows);
        assert!((e[0] - 4.0 / 32f32.sqrt()).abs() < 1e-6);
        assert!((e[1] - 4.0 / 32f32.sqrt()).abs() < 1e-6);
        assert!(e[2..].iter().all(|&v| v == 0.0));
    }
}
