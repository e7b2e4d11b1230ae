//! The store: inference rows, their messages and feedback, in SQLite (the
//! zero-setup default, a file in `data_dir`) or PostgreSQL. Both run the
//! same SQL through sqlx's `Any` driver; each has its own migration folder
//! (`migrations/sqlite`, `migrations/postgres`) holding the same schema.
//!
//! Writes from the request path go through the [`Recorder`], which batches
//! them off the hot path.

mod dashboard_tables;
mod dataset;
mod ingest;
mod prompt_tables;
mod recorder;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row, SqlSafeStr};

use crate::domain::Audience;

pub use dashboard_tables::{EvalRunRow, ReviewRow, TrafficRow};
pub use dataset::{DatasetFilter, Example};
pub use prompt_tables::{
    AuditRow, BindingRow, LabelRow, NOTIFY_CHANNEL, RegistryRows, VersionRow, Write, Written,
    arms_json,
};
pub use recorder::{Latency, Recorder};

/// The migrations of each backend: (version, description, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "prompts",
        include_str!("../../../migrations/sqlite/0002_prompts.sql"),
    ),
    (
        3,
        "cache_limits",
        include_str!("../../../migrations/sqlite/0003_cache_limits.sql"),
    ),
    (
        4,
        "feedback_history",
        include_str!("../../../migrations/sqlite/0004_feedback_history.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/sqlite/0005_eval_runs.sql"),
    ),
    (
        6,
        "dashboard",
        include_str!("../../../migrations/sqlite/0006_dashboard.sql"),
    ),
    (
        7,
        "private_conversations",
        include_str!("../../../migrations/sqlite/0007_private_conversations.sql"),
    ),
    (
        8,
        "inline_messages",
        include_str!("../../../migrations/sqlite/0008_inline_messages.sql"),
    ),
    (
        9,
        "user_name",
        include_str!("../../../migrations/sqlite/0009_user_name.sql"),
    ),
    (
        10,
        "one_user_form",
        include_str!("../../../migrations/sqlite/0010_one_user_form.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "prompts",
        include_str!("../../../migrations/postgres/0002_prompts.sql"),
    ),
    (
        3,
        "cache_limits",
        include_str!("../../../migrations/postgres/0003_cache_limits.sql"),
    ),
    (
        4,
        "feedback_history",
        include_str!("../../../migrations/postgres/0004_feedback_history.sql"),
    ),
    (
        5,
        "eval_runs",
        include_str!("../../../migrations/postgres/0005_eval_runs.sql"),
    ),
    (
        6,
        "dashboard",
        include_str!("../../../migrations/postgres/0006_dashboard.sql"),
    ),
    (
        7,
        "private_conversations",
        include_str!("../../../migrations/postgres/0007_private_conversations.sql"),
    ),
    (
        8,
        "inline_messages",
        include_str!("../../../migrations/postgres/0008_inline_messages.sql"),
    ),
    (
        9,
        "user_name",
        include_str!("../../../migrations/postgres/0009_user_name.sql"),
    ),
    (
        10,
        "one_user_form",
        include_str!("../../../migrations/postgres/0010_one_user_form.sql"),
    ),
];

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

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_through(i64::MAX).await
    }

    /// Applies the migrations up to and including `version`.
    async fn migrate_through(&self, version: i64) -> Result<(), StoreError> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .filter(|(v, _, _)| *v <= version)
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await?;
        Ok(())
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
             streamed, prompt_label, purpose, messages FROM inferences WHERE id = $1",
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

#[cfg(test)]
mod tests {
    use super::{Audience, Store, Table};
    use crate::domain::Utc;

    /// Stores two conversations the way schema 7 did (a row per message,
    /// inserted out of order), migrates, and reads them back.
    async fn conversations_survive_inlining(url: &str) {
        let store = Store::connect(url).await.unwrap();
        store.migrate_through(7).await.unwrap();
        for id in ["a", "b"] {
            sqlx::query(
                "INSERT INTO inferences (id, created_at, platform, alias, total_ms, provider_ms, \
                 streamed, status, attempts, attempt_log, params) \
                 VALUES ($1, 1, 'slack', 'default', 1.0, 1.0, 0, 'ok', 1, '[]', '{}')",
            )
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        for (id, position, direction, role, content) in [
            ("a", 2, "output", "assistant", "Paris, \"of course\"."),
            ("a", 0, "input", "system", "Be brief."),
            ("a", 1, "input", "user", "Capital of France?\nThanks"),
            ("b", 0, "input", "user", "Hi"),
        ] {
            sqlx::query(
                "INSERT INTO inference_messages (inference_id, position, direction, role, content) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(position)
            .bind(direction)
            .bind(role)
            .bind(content)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store.migrate().await.unwrap();
        let a = store.inference("a").await.unwrap().unwrap();
        let triple = |d: &str, r: &str, c: &str| (d.to_string(), r.to_string(), c.to_string());
        assert_eq!(
            a.messages,
            vec![
                triple("input", "system", "Be brief."),
                triple("input", "user", "Capital of France?\nThanks"),
                triple("output", "assistant", "Paris, \"of course\"."),
            ]
        );
        let b = store.inference("b").await.unwrap().unwrap();
        assert_eq!(b.messages, vec![triple("input", "user", "Hi")]);
        store.close().await;
    }

    #[tokio::test]
    async fn migration_8_keeps_every_stored_conversation_in_order() {
        let dir = tempfile::tempdir().unwrap();
        conversations_survive_inlining(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await;
        let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").expect(
            "SWITCHBOARD_TEST_POSTGRES_URL is not set: run the tests with ops/test.sh, which starts a throwaway PostgreSQL",
        );
        let name = format!("sb_{}", uuid::Uuid::now_v7().simple());
        let server = Store::connect(&admin).await.unwrap();
        server
            .execute_admin(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        server.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        conversations_survive_inlining(&format!("{base}/{name}")).await;
    }

    /// Stores answers and votes the way schema 9 did (bare user ids for the
    /// asker, the API, the console and implicit signals; `slack:` ids for
    /// Slack's buttons), migrates, and checks that the asker and their votes
    /// now name the same user: their own vote on their direct message is
    /// kept and replaces the old one, anyone else's is left out.
    async fn users_have_one_form_after_migrating(url: &str) {
        use crate::domain::{FeedbackRecord, User, now_ms};
        let store = Store::connect(url).await.unwrap();
        store.migrate_through(9).await.unwrap();
        let dm = uuid::Uuid::now_v7().to_string();
        let api = uuid::Uuid::now_v7().to_string();
        for (id, platform, user, private) in [(&dm, "slack", "UALICE", 1), (&api, "http", "bob", 0)]
        {
            sqlx::query(
                "INSERT INTO inferences (id, created_at, platform, user_id, private, alias, total_ms, \
                 provider_ms, streamed, status, attempts, attempt_log, params, messages) \
                 VALUES ($1, 1, $2, $3, $4, 'default', 1.0, 1.0, 0, 'ok', 1, '[]', '{}', '[]')",
            )
            .bind(id)
            .bind(platform)
            .bind(user)
            .bind(private)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        for (id, inference, user, source, score) in [
            ("f1", &dm, "slack:UALICE", "button", 0.0),
            ("f2", &dm, "UALICE", "implicit", 0.0),
            ("f3", &api, "bob", "api", 1.0),
        ] {
            let kind = if source == "implicit" {
                "asked_again"
            } else {
                "thumbs"
            };
            sqlx::query(
                "INSERT INTO feedback (id, inference_id, created_at, kind, score, user_id, source) \
                 VALUES ($1, $2, 1, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(inference)
            .bind(kind)
            .bind(score)
            .bind(user)
            .bind(source)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        store.migrate().await.unwrap();
        let alice = User::new("slack", "UALICE");
        assert_eq!(
            store.inference_audience(&dm).await.unwrap(),
            Some(Audience::Only(alice.clone()))
        );
        let users = |rows: Vec<(String, Option<f64>, String, Option<String>)>| {
            rows.into_iter().filter_map(|r| r.3).collect::<Vec<_>>()
        };
        assert_eq!(
            users(store.feedback_for(&dm).await.unwrap()),
            ["slack:UALICE", "slack:UALICE"]
        );
        assert_eq!(users(store.feedback_for(&api).await.unwrap()), ["http:bob"]);
        let vote = |user: User, score: f64| FeedbackRecord {
            id: uuid::Uuid::now_v7(),
            inference_id: uuid::Uuid::parse_str(&dm).unwrap(),
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(score),
            comment: None,
            user: Some(user),
            source: "button".into(),
        };
        store
            .insert_feedback(&[
                vote(alice.clone(), 1.0),
                vote(User::new("slack", "UBOB"), 1.0),
            ])
            .await
            .unwrap();
        // Alice's new vote replaced her old one; Bob's was left out.
        assert_eq!(
            store.current_vote(&dm, &alice).await.unwrap(),
            Some(Some(1.0))
        );
        assert_eq!(store.count(Table::Feedback).await.unwrap(), 4);
        store.close().await;
    }

    #[tokio::test]
    async fn migration_10_gives_users_one_form_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        users_have_one_form_after_migrating(&format!(
            "sqlite://{}/db.sqlite",
            dir.path().display()
        ))
        .await;
        let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL").expect(
            "SWITCHBOARD_TEST_POSTGRES_URL is not set: run the tests with ops/test.sh, which starts a throwaway PostgreSQL",
        );
        let name = format!("sb_{}", uuid::Uuid::now_v7().simple());
        let server = Store::connect(&admin).await.unwrap();
        server
            .execute_admin(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        server.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        users_have_one_form_after_migrating(&format!("{base}/{name}")).await;
    }

    #[test]
    fn utc_calendar_fields_match_known_dates() {
        assert_eq!(Utc::from_ms(0).to_string(), "1970-01-01 00:00:00 UTC");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(
            Utc::from_ms(1_709_251_199_000).to_string(),
            "2024-02-29 23:59:59 UTC"
        );
        assert_eq!(Utc::from_ms(1_795_000_000_000).date(), "2026-11-18");
        let day = Utc::parse_date("2024-02-29").unwrap();
        assert_eq!(Utc::from_ms(day).to_string(), "2024-02-29 00:00:00 UTC");
        assert_eq!(Utc::parse_date("2023-02-29"), None);
        assert_eq!(Utc::parse_date("yesterday"), None);
    }
}
