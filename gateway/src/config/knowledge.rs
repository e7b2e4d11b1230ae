//! `[knowledge]`: how retrieval embeds text — the embedded all-MiniLM-L6-v2
//! (the default: in-process, fetched once like the chat model) or an
//! OpenAI-compatible `/v1/embeddings` provider named from `[providers]` —
//! and how documents are cut into chunks.

use serde::Deserialize;

use super::{ConfigError, ProviderConfig};

/// `[knowledge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// `embedded`, or the name of a `kind = "openai"` provider whose
    /// `/v1/embeddings` embeds the chunks (OpenAI, Ollama, vLLM).
    #[serde(default = "default_embeddings")]
    pub embeddings: String,
    /// The embedding model to ask that provider for
    /// (`text-embedding-3-small`, `nomic-embed-text`); unused when embedded.
    pub embedding_model: Option<String>,
    /// The most tokens of the embedding model in one chunk.
    #[serde(default = "default_chunk_tokens")]
    pub chunk_tokens: usize,
    /// Where the embedding model is fetched to; default `data_dir/models`.
    pub models_dir: Option<std::path::PathBuf>,
    /// Once the index holds 50,000 chunks, a question's words found in more than this share of the chunks are
    /// left out of lexical search (the rarest three always stay): an OR
    /// query costs the sum of its words' matches, and such words weigh
    /// little in BM25. 1.0 keeps every word.
    #[serde(default = "default_common_term_share")]
    pub common_term_share: f64,
}

/// The name meaning the built-in embedding model.
pub const EMBEDDED_EMBEDDINGS: &str = "embedded";

fn default_embeddings() -> String {
    EMBEDDED_EMBEDDINGS.to_string()
}
fn default_chunk_tokens() -> usize {
    200
}
fn default_common_term_share() -> f64 {
    0.1
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            embeddings: default_embeddings(),
            embedding_model: None,
            chunk_tokens: default_chunk_tokens(),
            models_dir: None,
            common_term_share: default_common_term_share(),
        }
    }
}

impl KnowledgeConfig {
    /// Rules of `[knowledge]`.
    pub(super) fn check(
        &self,
        providers: &std::collections::BTreeMap<String, ProviderConfig>,
    ) -> Result<(), ConfigError> {
        if !(16..=4096).contains(&self.chunk_tokens) {
            return Err(ConfigError::key(
                "knowledge.chunk_tokens",
                Some(self.chunk_tokens.to_string()),
                "must be from 16 to 4096 (200 suits the embedded model, which reads 256 at most)",
            ));
        }
        if !(self.common_term_share > 0.0 && self.common_term_share <= 1.0) {
            return Err(ConfigError::key(
                "knowledge.common_term_share",
                Some(self.common_term_share.to_string()),
                "must be above 0 and at most 1 (0.1 leaves out words in more than a tenth of the chunks; 1.0 keeps every word)",
            ));
        }
        if self.embeddings == EMBEDDED_EMBEDDINGS {
            if self.chunk_tokens > 250 {
                return Err(ConfigError::key(
                    "knowledge.chunk_tokens",
                    Some(self.chunk_tokens.to_string()),
                    "the embedded embedding model reads 256 tokens at most: use 250 or fewer, or an embeddings provider",
                ));
            }
            return Ok(());
        }
        match providers.get(&self.embeddings) {
            Some(ProviderConfig::Openai(_)) => {}
            Some(_) => {
                return Err(ConfigError::key(
                    "knowledge.embeddings",
                    Some(self.embeddings.clone()),
                    "names a provider that is not `kind = \"openai\"`: embeddings need an OpenAI-compatible `/v1/embeddings`; use one, or `embedded`",
                ));
            }
            None => {
                return Err(ConfigError::key(
                    "knowledge.embeddings",
                    Some(self.embeddings.clone()),
                    format!(
                        "is neither `embedded` nor a configured provider (providers: {}); add `[providers.{}]` with `kind = \"openai\"`",
                        providers.keys().cloned().collect::<Vec<_>>().join(", "),
                        self.embeddings
                    ),
                ));
            }
        }
        if self.embedding_model.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::key(
                "knowledge.embedding_model",
                None,
                "is needed with an embeddings provider: name its model, e.g. `text-embedding-3-small`",
            ));
        }
        Ok(())
    }
}
