//! Bulk writes of the recorder's rows: inferences (each with its
//! conversation) and feedback, thousands per transaction.
//!
//! On PostgreSQL each table takes a whole batch as one statement with one
//! parameter, the rows as a JSON array expanded by
//! `json_populate_recordset`: the statement text is fixed, so it is
//! prepared once per connection and sends no per-value type information.
//! On SQLite rows go as multi-row `VALUES` lists of anonymous `?`
//! parameters, which SQLite binds in linear time. An inference's messages
//! are one JSON array in its own row (migration 0008): one tuple per
//! inference, not one per message. Inserts skip ids already stored, so a
//! batch can be retried or replayed from the spool without duplicates.
//!
//! Feedback is checked against its answer in the same transaction, after
//! the batch's inferences are in: a row on an answer that is not stored,
//! or on a direct message's answer from someone other than its asker, is
//! left out with a warning, never stored. The HTTP API refuses such
//! feedback up front when it can reach the database, but a click taken
//! while the database was down is only checked here; and one row that can
//! never be stored must not hold up every row behind it, as a failing
//! foreign key would (the batch retried for ever).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row as _};
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
    "user_name",
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
    "messages",
];

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
    user_name: Option<&'a str>,
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
    /// The conversation: a JSON array of [`Message`]s.
    messages: String,
}

/// One message of an inference's conversation, as stored in
/// `inferences.messages`: the input in order, then the answer.
#[derive(Serialize)]
struct Message<'a> {
    /// `input` or `output`.
    direction: &'static str,
    /// The chat role.
    role: &'a str,
    /// The text.
    content: &'a str,
}

/// A [`Message`] read back.
#[derive(Deserialize)]
struct StoredMessage {
    direction: String,
    role: String,
    content: String,
}

/// Reads the messages stored with inference `id`: (direction, role, content).
pub(super) fn parse_messages(
    id: &str,
    text: &str,
) -> Result<Vec<(String, String, String)>, StoreError> {
    serde_json::from_str::<Vec<StoredMessage>>(text)
        .map(|list| {
            list.into_iter()
                .map(|m| (m.direction, m.role, m.content))
                .collect()
        })
        .map_err(|e| StoreError::Messages {
            id: id.to_string(),
            reason: e.to_string(),
        })
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

/// Marks users' earlier current thumbs votes as replaced by the newest
/// ones (`latest`: a JSON array of [`LatestVote`]), within `conn`'s
/// transaction.
async fn replace_earlier_votes(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    latest: String,
) -> Result<(), StoreError> {
    match backend {
        Backend::Postgres => {
            // One index probe per vote, whatever the statistics say: the
            // votes drive the loop (a lateral subquery, kept apart from
            // the join planner by `OFFSET 0`) and sequential scans are off
            // for the transaction (`admissible`). Left to statistics,
            // which lag behind a young or fast-growing table, PostgreSQL
            // joined the other way round: every stored vote against every
            // new one, seconds per batch.
            let earlier = sqlx::query(
                "SELECT f.id, v.id FROM json_to_recordset($1::json) AS v(inference_id TEXT, user_id TEXT, id TEXT) \
                 CROSS JOIN LATERAL (SELECT id FROM feedback WHERE inference_id = v.inference_id \
                 AND user_id = v.user_id AND kind = 'thumbs' AND replaced_by IS NULL AND id <> v.id \
                 OFFSET 0) AS f",
            )
            .bind(latest)
            .fetch_all(&mut *conn)
            .await?;
            // Changed votes are rare: one keyed update each.
            for row in earlier {
                let (old, new): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                sqlx::query("UPDATE feedback SET replaced_by = $1 WHERE id = $2")
                    .bind(new)
                    .bind(old)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Backend::Sqlite => {
            sqlx::query(
                "UPDATE feedback SET replaced_by = v.id FROM \
                 (SELECT value ->> 'inference_id' AS inference_id, value ->> 'user_id' AS user_id, \
                 value ->> 'id' AS id FROM json_each($1)) AS v \
                 WHERE feedback.inference_id = v.inference_id AND feedback.user_id = v.user_id \
                 AND feedback.kind = 'thumbs' AND feedback.replaced_by IS NULL AND feedback.id <> v.id",
            )
            .bind(latest)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
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
    /// Writes inference rows, each with its messages, in one transaction.
    /// Rows already stored (same id) are skipped, so a batch can be retried.
    pub async fn insert_inferences(&self, rows: &[InferenceRecord]) -> Result<(), StoreError> {
        self.insert_batch(rows, &[]).await
    }

    /// Writes feedback rows in one transaction; ids already stored are
    /// skipped. A user's newer thumbs vote on an inference replaces the
    /// older ones, which stay as history (`replaced_by`).
    pub async fn insert_feedback(&self, rows: &[FeedbackRecord]) -> Result<(), StoreError> {
        self.insert_batch(&[], rows).await
    }

    /// Writes inference and feedback rows in one transaction (one commit,
    /// so one flush of the database's log for the whole batch), the
    /// inferences first so that feedback on them finds them. As with
    /// [`Store::insert_inferences`] and [`Store::insert_feedback`], ids
    /// already stored are skipped.
    pub async fn insert_batch(
        &self,
        inferences: &[InferenceRecord],
        feedback: &[FeedbackRecord],
    ) -> Result<(), StoreError> {
        if inferences.is_empty() && feedback.is_empty() {
            return Ok(());
        }
        let inferences = inference_json(inferences)?;
        let mut tx = self.pool.begin().await?;
        if !inferences.is_empty() {
            insert_rows(
                self.backend,
                &mut tx,
                "inferences",
                INFERENCE_COLUMNS,
                "id",
                &inferences,
            )
            .await?;
        }
        let kept = admissible(self.backend, &mut tx, feedback).await?;
        if let Some((latest, feedback)) = feedback_json(&kept)? {
            // Earlier batches' votes are replaced by this batch's last ones.
            if let Some(latest) = latest {
                replace_earlier_votes(self.backend, &mut tx, latest).await?;
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
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A feedback row's keys, for [`admissible`].
#[derive(Serialize)]
struct FeedbackKey<'a> {
    id: String,
    inference_id: String,
    user_id: Option<&'a str>,
}

/// The rows of `feedback` that may be stored, within `conn`'s transaction:
/// those whose answer is stored and, for an answer in a direct message,
/// that come from its asker (the rule of [`super::Audience::new`]). The
/// others are logged and left out. On PostgreSQL this also turns
/// sequential scans off for the rest of the transaction: this lookup and
/// `replace_earlier_votes` probe an index per row, whatever the statistics
/// say.
async fn admissible<'r>(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    feedback: &'r [FeedbackRecord],
) -> Result<std::borrow::Cow<'r, [FeedbackRecord]>, StoreError> {
    if feedback.is_empty() {
        return Ok(feedback.into());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT set_config('enable_seqscan', 'off', true)")
            .execute(&mut *conn)
            .await?;
    }
    let keys: Vec<FeedbackKey> = feedback
        .iter()
        .map(|f| FeedbackKey {
            id: f.id.to_string(),
            inference_id: f.inference_id.to_string(),
            user_id: f.user_id.as_deref(),
        })
        .collect();
    let sql = match backend {
        Backend::Postgres => {
            "SELECT v.id, v.inference_id, CASE WHEN i.found IS NULL THEN 'unknown' ELSE 'private' END \
             FROM json_to_recordset($1::json) AS v(id TEXT, inference_id TEXT, user_id TEXT) \
             LEFT JOIN LATERAL (SELECT true AS found, private, user_id FROM inferences \
             WHERE id = v.inference_id OFFSET 0) AS i ON true \
             WHERE i.found IS NULL OR (i.private <> 0 AND i.user_id IS NOT NULL \
             AND i.user_id IS DISTINCT FROM v.user_id)"
        }
        Backend::Sqlite => {
            "SELECT v.value ->> 'id', v.value ->> 'inference_id', \
             CASE WHEN i.id IS NULL THEN 'unknown' ELSE 'private' END \
             FROM json_each($1) AS v LEFT JOIN inferences AS i ON i.id = v.value ->> 'inference_id' \
             WHERE i.id IS NULL OR (i.private <> 0 AND i.user_id IS NOT NULL \
             AND i.user_id IS NOT (v.value ->> 'user_id'))"
        }
    };
    let refused = sqlx::query(sql)
        .bind(json(&keys)?)
        .fetch_all(&mut *conn)
        .await?;
    if refused.is_empty() {
        return Ok(feedback.into());
    }
    let mut left_out = std::collections::HashSet::new();
    for row in refused {
        let (id, inference, why): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        match why.as_str() {
            "unknown" => {
                tracing::warn!(feedback = %id, inference = %inference, "feedback on an answer that is not stored is left out")
            }
            _ => {
                tracing::warn!(feedback = %id, inference = %inference, "feedback on a direct message's answer from someone other than its asker is left out")
            }
        }
        left_out.insert(id);
    }
    Ok(feedback
        .iter()
        .zip(&keys)
        .filter(|(_, key)| !left_out.contains(&key.id))
        .map(|(f, _)| f.clone())
        .collect::<Vec<_>>()
        .into())
}

/// Inference rows as the insert statement takes them.
fn inference_json(rows: &[InferenceRecord]) -> Result<Vec<InferenceJson<'_>>, StoreError> {
    let mut inferences = Vec::with_capacity(rows.len());
    for r in rows {
        let input = r.input.iter().map(|m| Message {
            direction: "input",
            role: m.role.as_str(),
            content: &m.content,
        });
        let output = r.output.iter().map(|o| Message {
            direction: "output",
            role: "assistant",
            content: o,
        });
        let messages = json(&input.chain(output).collect::<Vec<_>>())?;
        inferences.push(InferenceJson {
            id: r.id.to_string(),
            created_at: r.created_at_ms,
            platform: &r.origin.platform,
            workspace: r.origin.workspace.as_deref(),
            channel: r.origin.channel.as_deref(),
            thread: r.origin.thread.as_deref(),
            user_id: r.origin.user.as_deref(),
            user_name: r.user_name.as_deref(),
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
            messages,
        });
    }
    Ok(inferences)
}

/// Feedback rows as the insert statement takes them, with the latest
/// thumbs votes (JSON) when the batch has any; `None` for no rows.
#[allow(clippy::type_complexity)]
fn feedback_json(
    rows: &[FeedbackRecord],
) -> Result<Option<(Option<String>, Vec<FeedbackJson<'_>>)>, StoreError> {
    if rows.is_empty() {
        return Ok(None);
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
    let latest = if last.is_empty() {
        None
    } else {
        Some(json(&latest)?)
    };
    Ok(Some((latest, feedback)))
}
