//! Bulk writes of the recorder's rows: inferences, their messages and
//! feedback, thousands per transaction.
//!
//! Each table takes a whole batch as one statement with one parameter: the
//! rows as a JSON array, expanded by the database (`json_populate_recordset`
//! on PostgreSQL, `json_each` on SQLite). Compared with multi-row `VALUES`
//! lists this keeps the statement text fixed, so it is prepared once per
//! connection, sends no per-value type information, and avoids SQLite's
//! per-name parameter lookup, which is quadratic in the number of
//! parameters. Inserts skip ids already stored, so a batch can be retried
//! or replayed from the spool without duplicates.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Backend, FeedbackRecord, InferenceRecord, Store, StoreError};

/// The columns of `inferences` written here, in statement order.
const INFERENCE_COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "platform",
    "workspace",
    "channel",
    "thread",
    "user_id",
    "prompt_name",
    "prompt_version",
    "alias",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "ttft_ms",
    "tpot_ms",
    "total_ms",
    "provider_ms",
    "cost_usd",
    "cache_hit",
    "streamed",
    "status",
    "error",
    "finish_reason",
    "attempts",
    "attempt_log",
    "params",
    "tokens_saved",
    "cost_saved_usd",
    "prompt_label",
    "purpose",
    "private",
];

/// The columns of `inference_messages`.
const MESSAGE_COLUMNS: &[&str] = &["inference_id", "position", "direction", "role", "content"];

/// The columns of `feedback`.
const FEEDBACK_COLUMNS: &[&str] = &[
    "id",
    "inference_id",
    "created_at",
    "kind",
    "score",
    "comment",
    "user_id",
    "source",
    "replaced_by",
];

/// One `inferences` row, keyed by column name.
#[derive(Serialize)]
struct InferenceJson<'a> {
    id: String,
    created_at: i64,
    platform: &'a str,
    workspace: Option<&'a str>,
    channel: Option<&'a str>,
    thread: Option<&'a str>,
    user_id: Option<&'a str>,
    prompt_name: Option<&'a str>,
    prompt_version: Option<i64>,
    alias: &'a str,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    total_ms: f64,
    provider_ms: f64,
    cost_usd: Option<f64>,
    cache_hit: i64,
    streamed: i64,
    status: &'static str,
    error: Option<&'a str>,
    finish_reason: Option<&'a str>,
    attempts: i64,
    attempt_log: String,
    params: String,
    tokens_saved: Option<u64>,
    cost_saved_usd: Option<f64>,
    prompt_label: Option<&'a str>,
    purpose: &'static str,
    private: i64,
}

/// One `inference_messages` row.
#[derive(Serialize)]
struct MessageJson<'a> {
    inference_id: &'a str,
    position: i64,
    direction: &'static str,
    role: &'a str,
    content: &'a str,
}

/// One `feedback` row.
#[derive(Serialize)]
struct FeedbackJson<'a> {
    id: String,
    inference_id: String,
    created_at: i64,
    kind: &'a str,
    score: Option<f64>,
    comment: Option<&'a str>,
    user_id: Option<&'a str>,
    source: &'a str,
    replaced_by: Option<String>,
}

/// A thumbs vote that replaces a user's earlier votes on an inference.
#[derive(Serialize)]
struct LatestVote<'a> {
    inference_id: String,
    user_id: &'a str,
    id: String,
}

/// Rows per statement on SQLite: with anonymous `?` parameters SQLite
/// binds in linear time, and a full statement stays well under its limit
/// of 32,766 parameters.
const SQLITE_ROWS_PER_STATEMENT: usize = 128;

/// PostgreSQL: `INSERT INTO table (columns) SELECT columns FROM` the JSON
/// array in `$1`, skipping rows whose `key` is already stored.
fn insert_json_sql(table: &str, columns: &[&str], key: &str) -> String {
    let list = columns.join(", ");
    format!(
        "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::json) \
         ON CONFLICT ({key}) DO NOTHING"
    )
}

/// SQLite: `INSERT INTO table (columns) VALUES (?, …), …` for `rows` rows,
/// skipping rows whose `key` is already stored.
fn insert_values_sql(table: &str, columns: &[&str], key: &str, rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {} ON CONFLICT ({key}) DO NOTHING",
        columns.join(", "),
        vec![one; rows].join(", ")
    )
}

/// Marks a user's earlier current thumbs votes as replaced by the newest.
fn replace_votes_sql(backend: Backend) -> String {
    let latest = match backend {
        Backend::Postgres => {
            "json_to_recordset($1::json) AS v(inference_id TEXT, user_id TEXT, id TEXT)".to_string()
        }
        Backend::Sqlite => {
            "(SELECT value ->> 'inference_id' AS inference_id, value ->> 'user_id' AS user_id, \
             value ->> 'id' AS id FROM json_each($1)) AS v"
                .to_string()
        }
    };
    format!(
        "UPDATE feedback SET replaced_by = v.id FROM {latest} \
         WHERE feedback.inference_id = v.inference_id AND feedback.user_id = v.user_id \
         AND feedback.kind = 'thumbs' AND feedback.replaced_by IS NULL AND feedback.id <> v.id"
    )
}

/// Binds one JSON value as the SQL value it stands for.
fn bind_json<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    value: Option<&serde_json::Value>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    use serde_json::Value;
    match value {
        Some(Value::String(s)) => q.bind(s.clone()),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64()),
        },
        Some(Value::Bool(b)) => q.bind(*b as i64),
        Some(other @ (Value::Array(_) | Value::Object(_))) => q.bind(other.to_string()),
        Some(Value::Null) | None => q.bind(None::<String>),
    }
}

/// Inserts `rows` into `table` within `conn`'s transaction, skipping rows
/// whose `key` is already stored.
async fn insert_rows<T: Serialize>(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    table: &str,
    columns: &[&str],
    key: &str,
    rows: &[T],
) -> Result<(), StoreError> {
    match backend {
        Backend::Postgres => {
            sqlx::query(AssertSqlSafe(insert_json_sql(table, columns, key)))
                .bind(json(rows)?)
                .execute(&mut *conn)
                .await?;
        }
        Backend::Sqlite => {
            for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
                let sql = insert_values_sql(table, columns, key, chunk.len());
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for row in chunk {
                    let row =
                        serde_json::to_value(row).map_err(|e| StoreError::Encode(e.to_string()))?;
                    for column in columns {
                        q = bind_json(q, row.get(column));
                    }
                }
                q.execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// Serializes rows for one statement.
fn json<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Encode(e.to_string()))
}

impl Store {
    /// Writes inference rows and their messages in one transaction.
    /// Rows already stored (same id) are skipped, so a batch can be retried.
    pub async fn insert_inferences(&self, rows: &[InferenceRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
        let mut inferences = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len() * 3);
        for (r, id) in rows.iter().zip(&ids) {
            inferences.push(InferenceJson {
                id: id.clone(),
                created_at: r.created_at_ms,
                platform: &r.origin.platform,
                workspace: r.origin.workspace.as_deref(),
                channel: r.origin.channel.as_deref(),
                thread: r.origin.thread.as_deref(),
                user_id: r.origin.user.as_deref(),
                prompt_name: r.prompt.as_ref().map(|p| p.0.as_str()),
                prompt_version: r.prompt.as_ref().map(|p| p.1),
                alias: &r.alias,
                provider: r.provider.as_deref(),
                model: r.model.as_deref(),
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                ttft_ms: r.ttft_ms,
                tpot_ms: r.tpot_ms,
                total_ms: r.total_ms,
                provider_ms: r.provider_ms,
                cost_usd: r.cost_usd,
                cache_hit: r.cache_hit as i64,
                streamed: r.streamed as i64,
                status: r.status.as_str(),
                error: r.error.as_deref(),
                finish_reason: r.finish_reason.as_deref(),
                attempts: r.attempts.len() as i64,
                attempt_log: serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into()),
                params: serde_json::to_string(&r.params).unwrap_or_else(|_| "{}".into()),
                tokens_saved: r.tokens_saved,
                cost_saved_usd: r.cost_saved_usd,
                prompt_label: r.prompt_label.as_deref(),
                purpose: r.purpose.as_str(),
                private: r.origin.private as i64,
            });
            let input = r
                .input
                .iter()
                .map(|m| ("input", m.role.as_str(), m.content.as_str()));
            let output = r.output.iter().map(|o| ("output", "assistant", o.as_str()));
            for (i, (direction, role, content)) in input.chain(output).enumerate() {
                messages.push(MessageJson {
                    inference_id: id,
                    position: i as i64,
                    direction,
                    role,
                    content,
                });
            }
        }
        let mut tx = self.pool.begin().await?;
        insert_rows(
            self.backend,
            &mut tx,
            "inferences",
            INFERENCE_COLUMNS,
            "id",
            &inferences,
        )
        .await?;
        insert_rows(
            self.backend,
            &mut tx,
            "inference_messages",
            MESSAGE_COLUMNS,
            "inference_id, position",
            &messages,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes feedback rows in one transaction; ids already stored are
    /// skipped. A user's newer thumbs vote on an inference replaces the
    /// older ones, which stay as history (`replaced_by`).
    pub async fn insert_feedback(&self, rows: &[FeedbackRecord]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Within the batch: every thumbs vote but a user's last on an
        // inference is replaced by that last one.
        let mut last: HashMap<(Uuid, &str), Uuid> = HashMap::new();
        for f in rows {
            if let (true, Some(user)) = (f.kind == "thumbs", f.user_id.as_deref()) {
                last.insert((f.inference_id, user), f.id);
            }
        }
        let latest: Vec<LatestVote> = last
            .iter()
            .map(|((inference, user), id)| LatestVote {
                inference_id: inference.to_string(),
                user_id: user,
                id: id.to_string(),
            })
            .collect();
        let feedback: Vec<FeedbackJson> = rows
            .iter()
            .map(|f| FeedbackJson {
                id: f.id.to_string(),
                inference_id: f.inference_id.to_string(),
                created_at: f.created_at_ms,
                kind: &f.kind,
                score: f.score,
                comment: f.comment.as_deref(),
                user_id: f.user_id.as_deref(),
                source: &f.source,
                replaced_by: match (f.kind == "thumbs", f.user_id.as_deref()) {
                    (true, Some(user)) => last
                        .get(&(f.inference_id, user))
                        .filter(|l| **l != f.id)
                        .map(Uuid::to_string),
                    _ => None,
                },
            })
            .collect();
        let latest = json(&latest)?;
        let mut tx = self.pool.begin().await?;
        // Earlier batches' votes are replaced by this batch's last ones.
        if !last.is_empty() {
            if self.backend == Backend::Postgres {
                // Each vote is looked up in the index. Left to statistics
                // (missing for a young table), PostgreSQL may instead scan
                // the whole table once per vote: seconds per batch.
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await?;
            }
            let sql = replace_votes_sql(self.backend);
            sqlx::query(AssertSqlSafe(sql))
                .bind(latest)
                .execute(&mut *tx)
                .await?;
        }
        insert_rows(
            self.backend,
            &mut tx,
            "feedback",
            FEEDBACK_COLUMNS,
            "id",
            &feedback,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
