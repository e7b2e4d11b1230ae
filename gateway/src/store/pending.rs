//! Votes waiting for their answer: a vote on an answer that is not stored
//! yet (another replica answered a moment before and has not written it,
//! or the database was down when the vote was taken) waits in
//! `feedback_pending`, which has no key to `inferences`. Whichever process
//! writes the answer takes its waiting votes into the same transaction
//! ([`take_pending`]); a sweep ([`Store::sweep_pending`]) decides those whose
//! answer another process wrote meanwhile, and leaves out those that waited
//! longer than [`PENDING_FOR_MS`].

use serde::Serialize;
use sqlx::Row as _;

use super::bulk::{insert_rows, json};
use super::{Backend, Store, StoreError};
use crate::domain::{FeedbackRecord, minted_ms, now_ms};

/// How long a vote on an answer that is not stored waits for it, from the
/// answer's id (a UUIDv7 says when it was made): longer than any outage
/// the spool rides out. After that it is left out.
pub const PENDING_FOR_MS: i64 = 24 * 60 * 60 * 1000;

impl Store {
    /// Decides the votes waiting in `feedback_pending` whose answers are
    /// stored now (by any process), and leaves out those that waited
    /// longer than [`PENDING_FOR_MS`]. Returns how many still wait.
    pub async fn sweep_pending(&self) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT p.record FROM feedback_pending AS p JOIN inferences AS i ON i.id = p.inference_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let answered = rows
            .iter()
            .filter_map(|r| pending_record(r.try_get::<String, _>(0).ok()?))
            .collect::<Vec<_>>();
        if !answered.is_empty() {
            self.write_batch(&[], &answered, true).await?;
        }
        let expired = sqlx::query("DELETE FROM feedback_pending WHERE answer_made_at < $1")
            .bind(now_ms() - PENDING_FOR_MS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if expired > 0 {
            tracing::warn!(
                votes = expired,
                "feedback on answers that were never stored is left out"
            );
        }
        let left: i64 = sqlx::query("SELECT COUNT(*) FROM feedback_pending")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(usize::try_from(left).unwrap_or(0))
    }
}

/// One `feedback_pending` row.
#[derive(Serialize)]
struct PendingJson {
    id: String,
    inference_id: String,
    answer_made_at: i64,
    record: String,
}

/// Puts votes whose answer is not stored yet into `feedback_pending`.
pub(super) async fn put_pending(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    rows: &[FeedbackRecord],
) -> Result<(), StoreError> {
    let rows = rows
        .iter()
        .map(|f| {
            Ok(PendingJson {
                id: f.id.to_string(),
                inference_id: f.inference_id.to_string(),
                answer_made_at: minted_ms(&f.inference_id).unwrap_or(f.created_at_ms),
                record: serde_json::to_string(f).map_err(|e| StoreError::Encode(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    insert_rows(
        backend,
        conn,
        "feedback_pending",
        &["id", "inference_id", "answer_made_at", "record"],
        "id",
        &rows,
    )
    .await
}

/// Takes the votes waiting for any of the answers `ids` out of
/// `feedback_pending`, oldest first.
pub(super) async fn take_pending(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    ids: &[String],
) -> Result<Vec<FeedbackRecord>, StoreError> {
    let sql = match backend {
        Backend::Postgres => {
            "DELETE FROM feedback_pending WHERE inference_id IN \
             (SELECT value FROM json_array_elements_text($1::json)) RETURNING record"
        }
        Backend::Sqlite => {
            "DELETE FROM feedback_pending WHERE inference_id IN \
             (SELECT value FROM json_each($1)) RETURNING record"
        }
    };
    let rows = sqlx::query(sql)
        .bind(json(ids)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut taken: Vec<FeedbackRecord> = rows
        .iter()
        .filter_map(|r| pending_record(r.try_get::<String, _>(0).ok()?))
        .collect();
    taken.sort_by_key(|f| (f.created_at_ms, f.id));
    Ok(taken)
}

/// Removes `rows` from `feedback_pending`.
pub(super) async fn delete_pending(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    rows: &[FeedbackRecord],
) -> Result<(), StoreError> {
    let ids: Vec<String> = rows.iter().map(|f| f.id.to_string()).collect();
    let sql = match backend {
        Backend::Postgres => {
            "DELETE FROM feedback_pending WHERE id IN (SELECT value FROM json_array_elements_text($1::json))"
        }
        Backend::Sqlite => {
            "DELETE FROM feedback_pending WHERE id IN (SELECT value FROM json_each($1))"
        }
    };
    sqlx::query(sql)
        .bind(json(&ids)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A waiting vote read back; one that does not parse is logged and dropped
/// (it was written by this code, so only a hand edit breaks it).
fn pending_record(text: String) -> Option<FeedbackRecord> {
    match serde_json::from_str(&text) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "a waiting vote in feedback_pending is not readable; it is left out");
            None
        }
    }
}
