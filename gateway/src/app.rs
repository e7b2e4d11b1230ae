//! Assembly: builds the store, providers, router, recorder and pipeline
//! from a configuration, and takes them down in order. The binary and the
//! tests both start Switchboard through this one path.

use std::sync::Arc;

use crate::config::{Config, ProviderConfig, redact_url};
use crate::domain::InferenceIds;
use crate::guards::Guards;
use crate::guards::dedupe::EventDedupe;
use crate::guards::limits::{Clock, SystemClock};
use crate::guards::redis_link::RedisError;
use crate::guards::redis_link::RedisLink;
use crate::http::api::{ApiKeys, AppState};
use crate::pipeline::route::Router;
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::promptops::feedback::FeedbackDoor;
use crate::providers::ProviderError;
use crate::registry::{Registry, RegistryError};
use crate::store::{Recorder, Store, StoreError};
use crate::telemetry::metrics::Metrics;

/// Why Switchboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No model alias is configured.
    #[error(
        "no model is configured: add a provider and a `[models.default]` alias to switchboard.toml \
         (see switchboard.example.toml), for example\n\n  [providers.openai]\n  kind = \"openai\"\n  \
         api_key_env = \"OPENAI_API_KEY\"\n\n  [models.default]\n  targets = [\"openai/gpt-4o-mini\"]"
    )]
    NoModel,
    /// A provider could not be set up.
    #[error("cannot set up the model providers: {0}")]
    Provider(#[from] ProviderError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(String),
    /// The built-in prompts are broken.
    #[error(transparent)]
    Prompts(#[from] prompts::PromptError),
    /// The prompt registry could not be loaded.
    #[error("cannot load the prompt registry: {0}")]
    Registry(#[from] RegistryError),
    /// `[redis]` cannot be used.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// `[knowledge]` cannot be used.
    #[error(transparent)]
    Knowledge(#[from] crate::knowledge::KnowledgeError),
}

/// The running parts of one Switchboard process: the handles that the
/// front ends (HTTP API, dashboard, adapters, CLI) are given at wiring, each
/// taking the ones it uses.
pub struct Gateway {
    /// The request pipeline.
    pub pipeline: Pipeline,
    /// The database.
    pub store: Store,
    /// The prompt registry.
    pub registry: Registry,
    /// The admin command layer.
    pub admin: crate::promptops::admin::Admin,
    /// Writes inference and feedback rows off the hot path.
    pub recorder: Recorder,
    /// The one door every vote comes through.
    pub feedback: FeedbackDoor,
    /// Which platform events were already handled (shared through Redis
    /// when configured).
    pub dedupe: Arc<EventDedupe>,
    /// The series served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The shared Redis, when configured.
    pub redis: Option<RedisLink>,
    /// The knowledge retrieval searches.
    pub knowledge: crate::knowledge::Knowledge,
    recorder_task: tokio::task::JoinHandle<()>,
}

/// Opens the database named by the configuration and applies migrations.
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&config.database_url()).await?;
    store.migrate().await?;
    tracing::debug!(database = %redact_url(&config.database_url()), "database ready");
    Ok(store)
}

/// Opens the prompt registry over a migrated store, seeding the built-in
/// prompts it lacks.
pub async fn open_registry(config: &Config, store: &Store) -> Result<Registry, StartError> {
    let library = prompts::Library::builtin()?;
    Ok(Registry::open(
        store.clone(),
        &library,
        std::time::Duration::from_millis(config.prompts.poll_ms),
    )
    .await?)
}

impl Gateway {
    /// Builds everything the front ends share.
    pub async fn build(config: &Config) -> Result<Gateway, StartError> {
        Gateway::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Gateway::build`], with rate limits and budgets reading `clock`
    /// (tests move it to reach the next minute or day).
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, StartError> {
        crate::providers::install_crypto();
        if config.models.is_empty() {
            return Err(StartError::NoModel);
        }
        // Fetch embedded models that are missing (the binary does this
        // first with a progress bar), then load everything off the runtime.
        for provider in config.providers.values() {
            if let ProviderConfig::Local(local) = provider {
                let (local, data_dir) = (local.clone(), config.data_dir.clone());
                tokio::task::spawn_blocking(move || {
                    crate::providers::local::ensure_model(
                        &local,
                        &data_dir,
                        &mut crate::providers::local::log_fetch("embedded model"),
                    )
                })
                .await
                .map_err(|e| StartError::Task(e.to_string()))??;
            }
        }
        let owned = config.clone();
        let providers = tokio::task::spawn_blocking(move || crate::providers::from_config(&owned))
            .await
            .map_err(|e| StartError::Task(e.to_string()))??;
        let router = Router::new(config, &providers);
        let store = open_store(config).await?;
        let registry = open_registry(config, &store).await?;
        let (recorder, recorder_task) =
            Recorder::start_with_spool(store.clone(), Some(config.data_dir.join("spool")));
        let guards = Guards::with_clock(config, clock)?;
        let (dedupe, redis) = (guards.dedupe.clone(), guards.redis.clone());
        let ids = InferenceIds::new(store.inference_id_secret().await?.as_bytes());
        let feedback = FeedbackDoor::new(recorder.clone(), store.clone(), ids.clone());
        let knowledge = crate::knowledge::Knowledge::new(config, store.clone())?;
        // With knowledge stored, the embedding model is loaded (fetched on
        // first run) now rather than by the first question that retrieves.
        let warm = knowledge.clone();
        tokio::spawn(async move {
            if warm
                .store()
                .knowledge_source_list()
                .await
                .is_ok_and(|s| !s.is_empty())
                && let Err(e) = warm.embedder().await
            {
                tracing::warn!(error = %e, "answers that retrieve will use lexical search until the embedding model loads");
            }
        });
        let pipeline = Pipeline::with_guards(
            router,
            registry.clone(),
            recorder.clone(),
            PipelineOptions {
                context_windows: config.context_windows(),
                vision: config.vision_aliases(),
                capture_content: config.telemetry.capture_content,
                ids: ids.clone(),
                knowledge: Some(knowledge.clone()),
                tools: Some(crate::tools::Toolbox::new(config, Some(knowledge.clone()))),
                ..PipelineOptions::default()
            },
            guards,
        );
        let admin = crate::promptops::admin::Admin::new(
            registry.clone(),
            Some(pipeline.clone()),
            config.admin.clone(),
        )
        .with_knowledge(knowledge.clone());
        Ok(Gateway {
            metrics: pipeline.metrics().clone(),
            pipeline,
            store,
            registry,
            admin,
            recorder,
            feedback,
            dedupe,
            redis,
            knowledge,
            recorder_task,
        })
    }

    /// The HTTP server's state, with the API keys from the variable that
    /// `server.api_keys_env` names (read from `env`).
    pub fn http_state(&self, config: &Config, env: impl Fn(&str) -> Option<String>) -> AppState {
        let keys = match &config.server.api_keys_env {
            Some(var) => ApiKeys::from_list(&env(var).unwrap_or_default()),
            None => ApiKeys::default(),
        };
        AppState {
            pipeline: self.pipeline.clone(),
            store: self.store.clone(),
            keys: Arc::new(keys),
            feedback: self.feedback.clone(),
            recorder: self.recorder.clone(),
            metrics: self.metrics.clone(),
            redis: self.redis.clone(),
            knowledge: self.knowledge.clone(),
        }
    }

    /// Writes every queued row and closes the database.
    pub async fn shutdown(self) {
        let Gateway {
            pipeline,
            store,
            registry,
            admin,
            recorder,
            feedback,
            recorder_task,
            ..
        } = self;
        registry.close();
        drop(admin);
        recorder.flush().await;
        // The MCP servers Switchboard started are stopped with it.
        if let Some(tools) = pipeline.tools() {
            tools.stop().await;
        }
        drop((pipeline, recorder, feedback));
        // Other clones of the pipeline (server state) are gone by now; the
        // recorder ends when its last handle is dropped.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), recorder_task).await;
        store.close().await;
    }
}
