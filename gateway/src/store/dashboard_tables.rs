//! The dashboard's tables (accounts, sessions, review marks, dataset
//! items) and the reads its pages make over the inference log. Figures are
//! computed in Rust from plain rows (see `dashboard::figures`), so the SQL
//! stays the same on SQLite and PostgreSQL.

use sqlx::Row;

use super::{Store, StoreError};

/// One live inference, as the overview and the prompt pages count it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRow {
    /// Unix ms.
    pub created_at_ms: i64,
    /// Platform.
    pub platform: String,
    /// Channel, if any.
    pub channel: Option<String>,
    /// Model that answered (or was last tried).
    pub model: Option<String>,
    /// Prompt name.
    pub prompt: Option<String>,
    /// Prompt version.
    pub version: Option<i64>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token.
    pub tpot_ms: Option<f64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// Answered from the cache.
    pub cache_hit: bool,
    /// `ok`, `error`, `partial`, `cancelled`, `limited`.
    pub status: String,
    /// Current 👍 votes on it.
    pub thumbs_up: i64,
    /// Current 👎 votes on it.
    pub thumbs_down: i64,
    /// The knowledge sources of the chunks its prompt was given (empty when
    /// it retrieved nothing).
    pub knowledge_sources: Vec<String>,
}

/// The distinct sources of the chunks in a stored `retrieval` record.
fn retrieved_sources(json: Option<&str>) -> Vec<String> {
    let Some(record) =
        json.and_then(|j| serde_json::from_str::<crate::domain::RetrievalRecord>(j).ok())
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for c in record.chunks {
        if !out.contains(&c.source) {
            out.push(c.source);
        }
    }
    out
}

/// An answer waiting for (or past) review: it has a current 👎 or a comment.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    /// The inference id.
    pub id: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Platform.
    pub platform: String,
    /// Channel.
    pub channel: Option<String>,
    /// Prompt name.
    pub prompt: Option<String>,
    /// Prompt version.
    pub version: Option<i64>,
    /// Current 👎 votes.
    pub thumbs_down: i64,
    /// Who marked it reviewed, if anyone.
    pub reviewed_by: Option<String>,
}

/// A stored evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRunRow {
    /// The run id.
    pub id: String,
    /// Unix ms.
    pub created_at_ms: i64,
    /// The prompt.
    pub prompt: String,
    /// The candidate version.
    pub candidate: String,
    /// The baseline version.
    pub baseline: String,
    /// The summary, as JSON.
    pub summary: String,
    /// The whole report, as JSON.
    pub report: String,
}

const THUMBS: &str = "SELECT inference_id, SUM(CASE WHEN score >= 0.5 THEN 1 ELSE 0 END) AS up, \
     SUM(CASE WHEN score < 0.5 THEN 1 ELSE 0 END) AS down FROM feedback \
     WHERE kind = 'thumbs' AND replaced_by IS NULL AND score IS NOT NULL GROUP BY inference_id";

impl Store {
    /// Adds a dashboard account; `false` if the name is taken.
    pub async fn create_account(
        &self,
        name: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO dashboard_accounts (name, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The stored password hash of an account.
    pub async fn account_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM dashboard_accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Every account: (name, created at in Unix ms), by name.
    pub async fn accounts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at FROM dashboard_accounts ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Removes an account and signs it out everywhere; `false` if there
    /// was no such account.
    pub async fn remove_account(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE account = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM dashboard_accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a new session (its token's hash, never the token).
    pub async fn insert_session(
        &self,
        token_hash: &str,
        account: &str,
        csrf: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, account, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(account)
        .bind(csrf)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired session with this token hash: (account, CSRF token).
    pub async fn session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT s.account, s.csrf FROM dashboard_sessions s \
             JOIN dashboard_accounts a ON a.name = s.account \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?)
    }

    /// Ends a session, and drops every expired one.
    pub async fn delete_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live inferences since `since_ms`, oldest first, with their current
    /// thumbs votes; `prompt` narrows to one prompt.
    pub async fn traffic(
        &self,
        since_ms: i64,
        prompt: Option<&str>,
    ) -> Result<Vec<TrafficRow>, StoreError> {
        let sql = format!(
            "SELECT i.created_at, i.platform, i.channel, i.model, i.prompt_name, i.prompt_version, \
             i.ttft_ms, i.tpot_ms, i.cost_usd, i.cache_hit, i.status, COALESCE(t.up, 0), COALESCE(t.down, 0), i.retrieval \
             FROM inferences i LEFT JOIN ({THUMBS}) t ON t.inference_id = i.id \
             WHERE i.purpose = 'live' AND i.created_at >= $1 AND ($2 = '' OR i.prompt_name = $2) \
             ORDER BY i.created_at, i.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since_ms)
            .bind(prompt.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrafficRow {
                    created_at_ms: r.try_get(0)?,
                    platform: r.try_get(1)?,
                    channel: r.try_get(2)?,
                    model: r.try_get(3)?,
                    prompt: r.try_get(4)?,
                    version: r.try_get(5)?,
                    ttft_ms: r.try_get(6)?,
                    tpot_ms: r.try_get(7)?,
                    cost_usd: r.try_get(8)?,
                    cache_hit: r.try_get::<i64, _>(9)? != 0,
                    status: r.try_get(10)?,
                    thumbs_up: r.try_get(11)?,
                    thumbs_down: r.try_get(12)?,
                    knowledge_sources: retrieved_sources(
                        r.try_get::<Option<String>, _>(13)?.as_deref(),
                    ),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Answers with a current 👎 or a comment, newest first; reviewed ones
    /// only when `reviewed` is true.
    pub async fn review_queue(
        &self,
        reviewed: bool,
        limit: i64,
    ) -> Result<Vec<ReviewRow>, StoreError> {
        let sql = format!(
            "SELECT i.id, i.created_at, i.platform, i.channel, i.prompt_name, i.prompt_version, \
             COALESCE(t.down, 0), r.reviewed_by \
             FROM inferences i LEFT JOIN ({THUMBS}) t ON t.inference_id = i.id \
             LEFT JOIN feedback_reviews r ON r.inference_id = i.id \
             WHERE (COALESCE(t.down, 0) > 0 OR EXISTS (SELECT 1 FROM feedback c WHERE c.inference_id = i.id \
             AND c.comment IS NOT NULL AND c.comment <> '' AND c.replaced_by IS NULL)) \
             AND (r.inference_id IS NULL) = $1 \
             ORDER BY i.created_at DESC, i.id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(!reviewed)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ReviewRow {
                    id: r.try_get(0)?,
                    created_at_ms: r.try_get(1)?,
                    platform: r.try_get(2)?,
                    channel: r.try_get(3)?,
                    prompt: r.try_get(4)?,
                    version: r.try_get(5)?,
                    thumbs_down: r.try_get(6)?,
                    reviewed_by: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The comments left on an inference: (user, comment), oldest first.
    pub async fn comments(
        &self,
        inference_id: &str,
    ) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, comment FROM feedback WHERE inference_id = $1 AND comment IS NOT NULL \
             AND comment <> '' AND replaced_by IS NULL ORDER BY created_at, id",
        )
        .bind(inference_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Marks an answer reviewed (the first mark stays).
    pub async fn mark_reviewed(
        &self,
        inference_id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO feedback_reviews (inference_id, reviewed_at, reviewed_by) VALUES ($1, $2, $3) \
             ON CONFLICT (inference_id) DO NOTHING",
        )
        .bind(inference_id)
        .bind(now_ms)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds an answer to a dataset; `false` if it was there already.
    pub async fn add_to_dataset(
        &self,
        dataset: &str,
        inference_id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO dataset_items (dataset, inference_id, added_at, added_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (dataset, inference_id) DO NOTHING",
        )
        .bind(dataset)
        .bind(inference_id)
        .bind(now_ms)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every dataset and how many answers it holds, by name.
    pub async fn datasets(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT dataset, COUNT(*) FROM dataset_items GROUP BY dataset ORDER BY dataset",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The datasets an answer is in.
    pub async fn datasets_of(&self, inference_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT dataset FROM dataset_items WHERE inference_id = $1 ORDER BY dataset",
        )
        .bind(inference_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// One evaluation run in full.
    pub async fn eval_run(&self, id: &str) -> Result<Option<EvalRunRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, created_at, prompt, candidate, baseline, summary, report FROM eval_runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(EvalRunRow {
                    id: r.try_get(0)?,
                    created_at_ms: r.try_get(1)?,
                    prompt: r.try_get(2)?,
                    candidate: r.try_get(3)?,
                    baseline: r.try_get(4)?,
                    summary: r.try_get(5)?,
                    report: r.try_get(6)?,
                })
            })
            .transpose()?)
    }
}
