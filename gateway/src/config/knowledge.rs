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
}

/// The name meaning the built-in embedding model.
pub const EMBEDDED_EMBEDDINGS: &str = "embedded";

fn default_embeddings() -> String {
    EMBEDDED_EMBEDDINGS.to_string()
}
fn default_chunk_tokens() -> usize {
    200
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            embeddings: default_embeddings(),
            embedding_model: None,
            chunk_tokens: default_chunk_tokens(),
            models_dir: None,
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
