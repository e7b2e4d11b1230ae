//! OpenAI's embeddings wire protocol (`POST /v1/embeddings`), which OpenAI,
//! Ollama, vLLM and most gateways speak: retrieval's alternative to the
//! embedded model, configured as `[knowledge] embeddings = "PROVIDER"` over
//! a `kind = "openai"` provider (its base URL, key and headers).

use serde::{Deserialize, Serialize};

use super::ProviderError;
use super::http::HttpBase;
use crate::config::HttpProviderConfig;

/// An OpenAI-compatible embeddings endpoint.
pub struct OpenAiEmbeddings {
    http: HttpBase,
    model: String,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    input: &'a [&'a str],
    encoding_format: &'static str,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl OpenAiEmbeddings {
    /// The endpoint of `[providers.NAME]`, asking for `model`.
    pub fn new(
        name: &str,
        config: &HttpProviderConfig,
        model: &str,
    ) -> Result<OpenAiEmbeddings, ProviderError> {
        Ok(OpenAiEmbeddings {
            http: super::openai::openai_base(name, config)?,
            model: model.to_string(),
        })
    }

    /// `provider/model`, the name stored with the vectors it makes.
    pub fn name(&self) -> String {
        format!("{}/{}", self.http.name, self.model)
    }

    /// One vector per text, in order, within the provider's total timeout.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ProviderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.http.timeouts.total;
        let call = async {
            let response = self
                .http
                .post(
                    "/embeddings",
                    &Body {
                        model: &self.model,
                        input: texts,
                        encoding_format: "float",
                    },
                )
                .await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.http.connect_error(&e))?;
            serde_json::from_slice::<Answer>(&bytes).map_err(|e| ProviderError::Protocol {
                provider: self.http.name.clone(),
                message: format!("the embeddings answer is not OpenAI's shape: {e}"),
                retryable: false,
            })
        };
        let answer =
            tokio::time::timeout(limit, call)
                .await
                .map_err(|_| ProviderError::Timeout {
                    provider: self.http.name.clone(),
                    what: "embeddings",
                    ms: limit.as_millis() as u64,
                })??;
        let mut out = vec![Vec::new(); texts.len()];
        for item in answer.data {
            if let Some(slot) = out.get_mut(item.index) {
                *slot = normalized(item.embedding);
            }
        }
        if out.iter().any(Vec::is_empty) {
            return Err(ProviderError::Protocol {
                provider: self.http.name.clone(),
                message: format!(
                    "the embeddings answer has fewer vectors than the {} texts sent",
                    texts.len()
                ),
                retryable: false,
            });
        }
        Ok(out)
    }
}

/// The vector scaled to unit length, so that a dot product is the cosine.
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
