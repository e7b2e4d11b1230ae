//! The embedded model (`kind = "local"`): a GGUF file run in-process on the
//! CPU by llama.cpp, through `switchboard-embedded`. It is the zero-setup
//! default, so a fresh install answers with no account and no server. The
//! model file is fetched on first use (and by `switchboard models pull`),
//! verified by size and checksum.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use switchboard_embedded::{
    ChatTurn, Engine, EngineOptions, FinishReason, GenEvent, GenerateError, GenerateRequest,
    ModelSpec, Overflow, Progress,
};

/// Logs the fetch of a model file named `what` (`embedded model`,
/// `embedding model`): one line per source tried, failed (briefly) or
/// done; byte counts are not logged.
pub fn log_fetch(what: &'static str) -> impl FnMut(Progress) {
    move |p| match p {
        Progress::Trying { source } => tracing::info!(%source, "fetching the {what}"),
        Progress::SourceFailed { source, reason } => {
            tracing::info!(%source, %reason, "{what} source skipped; trying the next")
        }
        Progress::Done { path } => {
            tracing::info!(path = %path.display(), "{what} fetched and verified")
        }
        Progress::AlreadyPresent { .. } | Progress::Transferred { .. } => {}
    }
}

use super::{EventStream, Provider, ProviderError, ProviderEvent, ProviderRequest, Timeouts};
use crate::config::{LocalConfig, OverflowPolicy, Price};
use crate::domain::{Role, Usage};

/// Why a request with tools is refused: the embedded model's chat
/// template has no tool calling.
pub const TOOLS_UNSUPPORTED: &str = "the embedded model (kind = \"local\") cannot call tools: its chat template has no tool calling; route prompts and requests with tools to an OpenAI-compatible or Anthropic provider";

/// The embedded-model provider.
pub struct Local {
    name: String,
    engine: Arc<Engine>,
    config: LocalConfig,
}

/// The model a local provider runs: a file given by path, or the built-in
/// model spec to pull.
pub fn model_spec(config: &LocalConfig) -> Option<ModelSpec> {
    if config.path.is_some() {
        return None;
    }
    let spec = switchboard_embedded::default_model();
    (config.model == spec.name).then_some(spec)
}

/// Where the provider's model file is (or will be, once pulled).
pub fn model_path(config: &LocalConfig, data_dir: &Path) -> PathBuf {
    match (&config.path, model_spec(config)) {
        (Some(path), _) => path.clone(),
        (None, Some(spec)) => models_dir(config, data_dir).join(spec.file_name),
        (None, None) => models_dir(config, data_dir).join(format!("{}.gguf", config.model)),
    }
}

/// The folder models are pulled into: `models_dir`, else `data_dir/models`.
pub fn models_dir(config: &LocalConfig, data_dir: &Path) -> PathBuf {
    config
        .models_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("models"))
}

/// Fetches the provider's model if it is missing, reporting progress.
pub fn ensure_model(
    config: &LocalConfig,
    data_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf, ProviderError> {
    let Some(spec) = model_spec(config) else {
        return Ok(model_path(config, data_dir));
    };
    switchboard_embedded::pull(&spec, &models_dir(config, data_dir), progress).map_err(|e| {
        ProviderError::Protocol {
            provider: "local".into(),
            message: format!("cannot fetch the embedded model: {e}"),
            retryable: false,
        }
    })
}

impl Local {
    /// Loads the model (which must be on disk; see [`ensure_model`]).
    /// This blocks for as long as loading takes (well under a second for
    /// the default model).
    pub fn load(name: &str, config: &LocalConfig, data_dir: &Path) -> Result<Local, ProviderError> {
        let path = model_path(config, data_dir);
        let defaults = EngineOptions::default();
        let options = EngineOptions {
            threads: config.threads.unwrap_or(defaults.threads),
            context_tokens: config.context_tokens,
            slots: config.slots,
            queue: config.queue,
            overflow: match config.overflow {
                OverflowPolicy::Trim => Overflow::TrimOldest,
                OverflowPolicy::Refuse => Overflow::Refuse,
            },
        };
        let engine = Engine::load(&path, options).map_err(|e| ProviderError::Protocol {
            provider: name.to_string(),
            message: e.to_string(),
            retryable: false,
        })?;
        Ok(Local {
            name: name.to_string(),
            engine: Arc::new(engine),
            config: config.clone(),
        })
    }

    fn request(&self, request: &ProviderRequest) -> GenerateRequest {
        let p = &request.params;
        GenerateRequest {
            messages: request
                .messages
                .iter()
                .map(|m| ChatTurn::new(m.role.as_str(), m.content.clone()))
                .collect(),
            max_tokens: p
                .max_tokens
                .unwrap_or(self.config.default_max_tokens)
                .max(1),
            temperature: p.temperature.unwrap_or(0.0),
            top_p: p.top_p.unwrap_or(1.0),
            top_k: self.config.top_k,
            seed: p.seed.map_or(0, |s| s as u32),
            stop: p.stop.clone(),
            repeat_penalty: self.config.repeat_penalty,
            repeat_last_n: i32::try_from(self.config.repeat_last_n).unwrap_or(i32::MAX),
        }
    }

    fn error(&self, e: GenerateError) -> ProviderError {
        match e {
            GenerateError::Busy { .. } => ProviderError::Busy {
                provider: self.name.clone(),
                message: e.to_string(),
            },
            GenerateError::ContextOverflow { .. } | GenerateError::InvalidRequest(_) => {
                ProviderError::Status {
                    provider: self.name.clone(),
                    status: 400,
                    message: e.to_string(),
                    retry_after: None,
                }
            }
            other => ProviderError::Protocol {
                provider: self.name.clone(),
                message: other.to_string(),
                retryable: false,
            },
        }
    }
}

fn finish(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence => "stop",
        FinishReason::Length => "length",
    }
}

impl Provider for Local {
    fn name(&self) -> &str {
        &self.name
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            first_token: Duration::from_millis(self.config.first_token_timeout_ms),
            total: Duration::from_millis(self.config.total_timeout_ms),
        }
    }

    fn price(&self, _model: &str) -> Option<Price> {
        Some(Price::default())
    }

    fn queue_depth(&self) -> Option<usize> {
        Some(self.engine.in_flight())
    }

    fn stream(
        &self,
        request: ProviderRequest,
    ) -> BoxFuture<'_, Result<EventStream, ProviderError>> {
        Box::pin(async move {
            if !request.params.tools.is_empty()
                || request
                    .messages
                    .iter()
                    .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty())
            {
                return Err(ProviderError::Status {
                    provider: self.name.clone(),
                    status: 400,
                    message: TOOLS_UNSUPPORTED.to_string(),
                    retry_after: None,
                });
            }
            let generation = self
                .engine
                .generate(self.request(&request))
                .map_err(|e| self.error(e))?;
            let name = self.name.clone();
            let s = stream::unfold(Some(generation), move |state| {
                let name = name.clone();
                async move {
                    let mut generation = state?;
                    match generation.next().await {
                        Some(GenEvent::Token(t)) => {
                            Some((vec![Ok(ProviderEvent::Delta(t))], Some(generation)))
                        }
                        Some(GenEvent::Done {
                            prompt_tokens,
                            completion_tokens,
                            finish_reason,
                        }) => Some((
                            vec![
                                Ok(ProviderEvent::Usage(Usage {
                                    input_tokens: prompt_tokens.into(),
                                    output_tokens: completion_tokens.into(),
                                })),
                                Ok(ProviderEvent::Finish(finish(finish_reason).to_string())),
                            ],
                            None,
                        )),
                        Some(GenEvent::Error(e)) => Some((
                            vec![Err(ProviderError::Protocol {
                                provider: name,
                                message: e.to_string(),
                                retryable: false,
                            })],
                            None,
                        )),
                        None => Some((
                            vec![Err(ProviderError::Cut {
                                provider: name,
                                message: "the embedded model stopped without finishing".into(),
                            })],
                            None,
                        )),
                    }
                }
            })
            .flat_map(stream::iter);
            Ok(s.boxed())
        })
    }
}
