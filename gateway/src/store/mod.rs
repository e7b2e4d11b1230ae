//! The store: inference rows, their messages and feedback, in SQLite (the
//! zero-setup default, a file in `data_dir`) or PostgreSQL. Both run the
//! same SQL through sqlx's `Any` driver; each has its own migration folder
//! (`migrations/sqlite`, `migrations/postgres`) holding the same schema.
//!
//! Writes from the request path go through the [`Recorder`], which batches
//! them off the hot path.

mod bulk;
mod dashboard_tables;
mod dataset;
mod ingest;
mod knowledge_tables;
mod migrations;
mod pending;
mod prompt_tables;
mod recorder;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

use crate::domain::Audience;

pub use dashboard_tables::{EvalRunRow, ReviewRow, TrafficRow};
pub use dataset::{DatasetFilter, Example};
pub use knowledge_tables::{
    Change, ChunkFilter, ChunkRow, ChunkWrite, DocumentWrite, SourceRow, VectorRow, embedding_text,
    query_terms,
};
pub use prompt_tables::{
    AuditRow, BindingRow, LabelRow, NOTIFY_CHANNEL, RegistryRows, VersionRow, Write, Written,
    arms_json,
};
pub use recorder::{Latency, Recorder};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not connect.
    #[error(
        "cannot open the database `{url}`: {source}; check `database.url` and that the server is running"
    )]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// Rows could not be encoded for a bulk write.
    #[error("cannot encode rows for the database: {0}")]
    Encode(String),
    /// A stored inference's messages are not the JSON this version writes.
    #[error(
        "the stored messages of inference `{id}` are not valid JSON ({reason}); the row was changed outside Switchboard: restore it from a backup or delete it"
    )]
    Messages {
        /// The inference.
        id: String,
        /// What the parser said.
        reason: String,
    },
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder `{path}` for the SQLite file: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A stored inference, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRow {
    /// The id.
    pub id: String,
    /// Platform.
    pub platform: String,
    /// Prompt name.
    pub prompt_name: Option<String>,
    /// Prompt version.
    pub prompt_version: Option<i64>,
    /// The label the version came through.
    pub prompt_label: Option<String>,
    /// `live` or `test`.
    pub purpose: String,
    /// Alias.
    pub alias: String,
    /// Provider.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Input tokens.
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Cost.
    pub cost_usd: Option<f64>,
    /// `ok`, `error`, `partial`, `cancelled`, `limited`.
    pub status: String,
    /// The error.
    pub error: Option<String>,
    /// Number of attempts.
    pub attempts: i64,
    /// The attempts as JSON.
    pub attempt_log: String,
    /// The stored messages: (direction, role, content).
    pub messages: Vec<(String, String, String)>,
    /// Answered from the cache.
    pub cache_hit: bool,
    /// Tokens a cache hit saved.
    pub tokens_saved: Option<i64>,
    /// Cost a cache hit saved.
    pub cost_saved_usd: Option<f64>,
    /// Streamed to the caller.
    pub streamed: bool,
    /// Who asked, as `platform:id` (`http:<key name>` on the HTTP API).
    pub user_id: Option<String>,
    /// The asker's display name (on the HTTP API, the body's `user`).
    pub user_name: Option<String>,
    /// Time to the first token, ms (`None`: not observed).
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first, ms (`None`: not observed).
    pub tpot_ms: Option<f64>,
    /// What retrieval gave the model, as JSON (a
    /// [`crate::domain::RetrievalRecord`]), when the prompt retrieves.
    pub retrieval: Option<String>,
    /// The tools Switchboard ran for the answer, as JSON (an array of
    /// [`crate::domain::ToolCallRecord`]s); `None` when none ran.
    pub tool_calls: Option<String>,
}

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The connection URL, for PostgreSQL's LISTEN connection. Never logged.
    url: std::sync::Arc<str>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a
    /// SQLite file and its folder if missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let redacted = crate::config::redact_url(url);
        let original: std::sync::Arc<str> = url.into();
        let (backend, url) = if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let file = path.split('?').next().unwrap_or(path);
            if file != ":memory:"
                && let Some(parent) = Path::new(file)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            let url = if path.contains("mode=") {
                format!("sqlite://{path}")
            } else if path.contains('?') {
                format!("sqlite://{path}&mode=rwc")
            } else {
                format!("sqlite://{path}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5));
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redacted,
                source,
            })?;
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Store {
            pool,
            backend,
            url: original,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The deployment's secret for inference ids (see
    /// [`crate::domain::InferenceIds`]), shared by every process on this
    /// database.
    pub async fn inference_id_secret(&self) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT value FROM deployment WHERE name = 'inference_id_secret'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A value this deployment keeps under `name` (the `deployment`
    /// table), shared by every replica on this database.
    pub async fn deployment_value(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM deployment WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Sets the deployment's value under `name`, replacing any.
    pub async fn set_deployment_value(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployment (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Stores an evaluation run's report.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_eval_run(
        &self,
        id: &str,
        created_at_ms: i64,
        prompt: &str,
        candidate: &str,
        baseline: &str,
        summary: &str,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO eval_runs (id, created_at, prompt, candidate, baseline, summary, report) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(created_at_ms)
        .bind(prompt)
        .bind(candidate)
        .bind(baseline)
        .bind(summary)
        .bind(report)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The evaluation runs of a prompt, newest first: (id, candidate,
    /// baseline, summary JSON).
    pub async fn eval_runs(
        &self,
        prompt: &str,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, candidate, baseline, summary FROM eval_runs WHERE prompt = $1 ORDER BY created_at DESC",
        )
        .bind(prompt)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Whether an inference with this id is stored.
    pub async fn inference_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.inference_audience(id).await?.is_some())
    }

    /// Who may leave feedback on an inference: `None` when no inference has
    /// this id, `Some(Audience::Anyone)` for an answer in a channel (or any
    /// answer outside the chat platforms), and the user's id for an answer
    /// in a direct message.
    pub async fn inference_audience(&self, id: &str) -> Result<Option<Audience>, StoreError> {
        let row = sqlx::query("SELECT private, user_id FROM inferences WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let private: i64 = row.try_get(0)?;
        let user: Option<String> = row.try_get(1)?;
        Ok(Some(Audience::stored(private != 0, user.as_deref())))
    }

    /// Reads one inference and its messages.
    pub async fn inference(&self, id: &str) -> Result<Option<InferenceRow>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, platform, prompt_name, prompt_version, alias, provider, model, input_tokens, \
             output_tokens, cost_usd, status, error, attempts, attempt_log, cache_hit, tokens_saved, cost_saved_usd, \
             streamed, prompt_label, purpose, messages, user_id, user_name, ttft_ms, tpot_ms, retrieval, tool_calls FROM inferences WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get(0)?;
        let messages = ingest::parse_messages(&id, &row.try_get::<String, _>(20)?)?;
        Ok(Some(InferenceRow {
            id,
            platform: row.try_get(1)?,
            prompt_name: row.try_get(2)?,
            prompt_version: row.try_get(3)?,
            alias: row.try_get(4)?,
            provider: row.try_get(5)?,
            model: row.try_get(6)?,
            input_tokens: row.try_get(7)?,
            output_tokens: row.try_get(8)?,
            cost_usd: row.try_get(9)?,
            status: row.try_get(10)?,
            error: row.try_get(11)?,
            attempts: row.try_get(12)?,
            attempt_log: row.try_get(13)?,
            prompt_label: row.try_get(18)?,
            purpose: row.try_get(19)?,
            messages,
            cache_hit: row.try_get::<i64, _>(14)? != 0,
            tokens_saved: row.try_get(15)?,
            cost_saved_usd: row.try_get(16)?,
            streamed: row.try_get::<i64, _>(17)? != 0,
            user_id: row.try_get(21)?,
            user_name: row.try_get(22)?,
            ttft_ms: row.try_get(23)?,
            tpot_ms: row.try_get(24)?,
            retrieval: row.try_get(25)?,
            tool_calls: row.try_get(26)?,
        }))
    }

    /// The current feedback on an inference (replaced votes left out):
    /// (kind, score, source, user).
    pub async fn feedback_for(
        &self,
        inference_id: &str,
    ) -> Result<Vec<(String, Option<f64>, String, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, score, source, user_id FROM feedback WHERE inference_id = $1 AND replaced_by IS NULL \
             ORDER BY created_at, id",
        )
        .bind(inference_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A user's current thumbs vote on an inference: `None` when they have
    /// none, `Some(None)` when they withdrew it, else the score.
    pub async fn current_vote(
        &self,
        inference_id: &str,
        user: &crate::domain::User,
    ) -> Result<Option<Option<f64>>, StoreError> {
        let row = sqlx::query(
            "SELECT score FROM feedback WHERE inference_id = $1 AND user_id = $2 AND kind = 'thumbs' \
             AND replaced_by IS NULL ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(inference_id)
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    /// How many rows a table has (for status output and tests).
    pub async fn count(&self, table: Table) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Runs one administrative statement (`CREATE DATABASE …`) that takes
    /// no parameters. Only for trusted, fixed SQL.
    pub async fn execute_admin(&self, sql: &str) -> Result<(), StoreError> {
        self.pool.execute(AssertSqlSafe(sql.to_string())).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The store's tables, for [`Store::count`].
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// `inferences`.
    Inferences,
    /// `feedback`.
    Feedback,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Inferences => "inferences",
            Table::Feedback => "feedback",
        }
    }
}
