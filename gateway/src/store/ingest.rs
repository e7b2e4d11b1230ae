//! Bulk writes of the recorder's rows: inferences (each with its
//! conversation) and feedback, thousands per transaction, through
//! [`super::bulk`]. An inference's messages are one JSON array in its own
//! row (migration 0008): one tuple per inference, not one per message.
//!
//! Feedback is checked against its answer in the same transaction, after
//! the batch's inferences are in, by the one audience rule
//! ([`Audience::allows`]): a row on a direct message's answer from someone
//! other than its asker is left out with a warning, never stored. A row on
//! an answer that is not stored yet (another replica answered a moment ago
//! and has not written it, or the database was down when the vote was
//! taken) waits in `feedback_pending`, which has no key to `inferences`,
//! and moves into `feedback` when its answer is written, by whichever
//! process writes it ([`Store::insert_batch`] looks for waiting votes on
//! the answers it writes) or by a later sweep ([`Store::sweep_pending`]);
//! a vote on an answer older than [`PENDING_FOR_MS`] that is not stored is
//! left out. The feedback door refuses feedback up front when it can reach
//! the database; and one row that can never be stored must not hold up
//! every row behind it, as a failing foreign key would (the batch retried
//! for ever).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use uuid::Uuid;

use super::bulk::{insert_rows, json};
use super::pending::{PENDING_FOR_MS, delete_pending, put_pending, take_pending};
use super::{Backend, Store, StoreError};
use crate::domain::{Audience, FeedbackRecord, InferenceRecord, minted_ms, now_ms};

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
    "retrieval",
    "tool_calls",
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
    user_id: Option<String>,
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
    /// What retrieval gave the model (a [`crate::domain::RetrievalRecord`]).
    retrieval: Option<String>,
    /// The tools run for the answer (a JSON array of
    /// [`crate::domain::ToolCallRecord`]s).
    tool_calls: Option<String>,
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
    /// The tools an assistant message called.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: &'a [crate::domain::ToolCall],
    /// For a tool's result: the call it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A [`Message`] read back.
#[derive(Deserialize)]
struct StoredMessage {
    direction: String,
    role: String,
    content: String,
    #[serde(default)]
    tool_calls: Vec<crate::domain::ToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

/// The tool results in the messages stored with inference `id`: each call
/// an assistant message made, with the `tool` message that answered it.
pub(super) fn parse_tool_results(
    id: &str,
    text: &str,
) -> Result<Vec<crate::domain::RecordedToolResult>, StoreError> {
    let list =
        serde_json::from_str::<Vec<StoredMessage>>(text).map_err(|e| StoreError::Messages {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    for m in &list {
        for call in &m.tool_calls {
            if let Some(answer) = list
                .iter()
                .find(|r| r.role == "tool" && r.tool_call_id.as_deref() == Some(call.id.as_str()))
            {
                out.push(crate::domain::RecordedToolResult {
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                    result: answer.content.clone(),
                });
            }
        }
    }
    Ok(out)
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
    user_id: Option<String>,
    source: &'a str,
    replaced_by: Option<String>,
}

/// A thumbs vote that replaces a user's earlier votes on an inference.
#[derive(Serialize)]
struct LatestVote {
    inference_id: String,
    user_id: String,
    id: String,
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
        self.write_batch(inferences, feedback, false)
            .await
            .map(|_| ())
    }

    /// [`Store::insert_batch`], saying how many of the votes are left
    /// waiting for their answer (see [`Store::sweep_pending`]).
    pub(crate) async fn insert_batch_counting(
        &self,
        inferences: &[InferenceRecord],
        feedback: &[FeedbackRecord],
    ) -> Result<usize, StoreError> {
        self.write_batch(inferences, feedback, false).await
    }

    /// [`Store::insert_batch`]; `from_pending` says `feedback` was read
    /// from `feedback_pending` (its rows leave it once decided). Returns how
    /// many votes were left waiting for their answer.
    pub(super) async fn write_batch(
        &self,
        inferences: &[InferenceRecord],
        feedback: &[FeedbackRecord],
        from_pending: bool,
    ) -> Result<usize, StoreError> {
        if inferences.is_empty() && feedback.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = inferences.iter().map(|r| r.id.to_string()).collect();
        let inferences = inference_json(inferences)?;
        let mut tx = self.pool.begin().await?;
        let mut waiting = Vec::new();
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
            // Votes another process took before these answers were stored.
            waiting = take_pending(self.backend, &mut tx, &ids).await?;
        }
        let mut all = std::borrow::Cow::Borrowed(feedback);
        if !waiting.is_empty() {
            all.to_mut().splice(0..0, waiting);
        }
        let decided = admissible(self.backend, &mut tx, &all).await?;
        if from_pending {
            // Every row read from the table is decided now: kept below,
            // left out, or (still unanswered) put back.
            delete_pending(self.backend, &mut tx, &all).await?;
        }
        if !decided.waiting.is_empty() {
            put_pending(self.backend, &mut tx, &decided.waiting).await?;
        }
        if let Some((latest, feedback)) = feedback_json(&decided.kept)? {
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
        Ok(decided.waiting.len())
    }
}

/// A feedback row's key, for [`admissible`].
#[derive(Serialize)]
struct FeedbackKey {
    id: String,
    inference_id: String,
}

/// What [`admissible`] decided for a batch's feedback.
struct Decided {
    /// To store now.
    kept: Vec<FeedbackRecord>,
    /// Their answer is not stored yet: to wait in `feedback_pending`.
    waiting: Vec<FeedbackRecord>,
}

/// Decides each row of `feedback` within `conn`'s transaction: kept when its
/// answer is stored and [`Audience::allows`] its voter; left out (logged)
/// when the answer is someone else's direct message, or is not stored and
/// older than [`PENDING_FOR_MS`]; waiting when the answer is not stored
/// yet. On PostgreSQL this also turns sequential scans off for the rest of
/// the transaction: this lookup and `replace_earlier_votes` probe an index
/// per row, whatever the statistics say.
async fn admissible(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    feedback: &[FeedbackRecord],
) -> Result<Decided, StoreError> {
    let mut decided = Decided {
        kept: Vec::with_capacity(feedback.len()),
        waiting: Vec::new(),
    };
    if feedback.is_empty() {
        return Ok(decided);
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
        })
        .collect();
    // Each distinct answer once: whether it is stored, and who asked.
    let sql = match backend {
        Backend::Postgres => {
            "SELECT DISTINCT v.inference_id, i.private, i.user_id \
             FROM json_to_recordset($1::json) AS v(id TEXT, inference_id TEXT) \
             JOIN LATERAL (SELECT private, user_id FROM inferences \
             WHERE id = v.inference_id OFFSET 0) AS i ON true"
        }
        Backend::Sqlite => {
            "SELECT DISTINCT i.id, i.private, i.user_id \
             FROM json_each($1) AS v JOIN inferences AS i ON i.id = v.value ->> 'inference_id'"
        }
    };
    let rows = sqlx::query(sql)
        .bind(json(&keys)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut audiences: HashMap<String, Audience> = HashMap::with_capacity(rows.len());
    for row in rows {
        let (id, private, user): (String, i64, Option<String>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        audiences.insert(id, Audience::stored(private != 0, user.as_deref()));
    }
    let now = now_ms();
    for (f, key) in feedback.iter().zip(&keys) {
        match audiences.get(&key.inference_id) {
            Some(audience) if audience.allows(f.user.as_ref()) => decided.kept.push(f.clone()),
            Some(_) => {
                tracing::warn!(feedback = %key.id, inference = %key.inference_id, "feedback on a direct message's answer from someone other than its asker is left out")
            }
            None if minted_ms(&f.inference_id).is_some_and(|t| now - t <= PENDING_FOR_MS) => {
                decided.waiting.push(f.clone())
            }
            None => {
                tracing::warn!(feedback = %key.id, inference = %key.inference_id, "feedback on an answer that is not stored is left out")
            }
        }
    }
    Ok(decided)
}

fn json_text<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Inference rows as the insert statement takes them.
fn inference_json(rows: &[InferenceRecord]) -> Result<Vec<InferenceJson<'_>>, StoreError> {
    let mut inferences = Vec::with_capacity(rows.len());
    for r in rows {
        let input = r.input.iter().map(|m| Message {
            direction: "input",
            role: m.role.as_str(),
            content: &m.content,
            tool_calls: &m.tool_calls,
            tool_call_id: m.tool_call_id.as_deref(),
        });
        let output = r.output.iter().map(|o| Message {
            direction: "output",
            role: "assistant",
            content: o,
            tool_calls: &r.tool_calls,
            tool_call_id: None,
        });
        let messages = json(&input.chain(output).collect::<Vec<_>>())?;
        inferences.push(InferenceJson {
            id: r.id.to_string(),
            created_at: r.created_at_ms,
            platform: &r.origin.platform,
            workspace: r.origin.workspace.as_deref(),
            channel: r.origin.channel.as_deref(),
            thread: r.origin.thread.as_deref(),
            user_id: r.origin.user.as_ref().map(ToString::to_string),
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
            retrieval: r.retrieval.as_ref().map(json_text).transpose()?,
            tool_calls: (!r.tool_runs.is_empty())
                .then(|| json_text(&r.tool_runs))
                .transpose()?,
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
    let voter = |f: &FeedbackRecord| f.user.as_ref().map(ToString::to_string);
    let mut last: HashMap<(Uuid, String), Uuid> = HashMap::new();
    for f in rows {
        if let (true, Some(user)) = (f.kind == "thumbs", voter(f)) {
            last.insert((f.inference_id, user), f.id);
        }
    }
    let latest: Vec<LatestVote> = last
        .iter()
        .map(|((inference, user), id)| LatestVote {
            inference_id: inference.to_string(),
            user_id: user.clone(),
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
            user_id: voter(f),
            source: &f.source,
            replaced_by: match (f.kind == "thumbs", voter(f)) {
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
