//! The feedback door: every vote on an answer — a Slack or Discord button or
//! reaction, the comment modal, a console `/good`, `POST /v1/feedback` —
//! comes through [`FeedbackDoor::submit`], which applies the one audience
//! rule ([`Audience::allows`]) and says what became of the vote, so that a
//! front end thanks only for votes that are kept and tells the voter when
//! one is refused.
//!
//! The answer is looked up in the recorder first (answers not yet written
//! by this process), then in the database. A vote on an answer that no
//! process has written yet is still taken when the answer's id is a recent
//! id of this deployment ([`InferenceIds::is_recent`]): behind a load
//! balancer the vote may reach another replica a moment before the one
//! that answered has written its row. Such a vote, and any vote taken while
//! the database cannot be reached, is checked by the store when it is
//! written.

use crate::domain::{Audience, FeedbackRecord, InferenceIds, now_ms};
use crate::store::{Recorder, Store};
use uuid::Uuid;

/// How old an answer may be for a vote on it to be taken before any
/// process has written it.
const UNWRITTEN_FOR_MS: i64 = 10 * 60 * 1000;

/// What became of a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Checked against its answer and queued, durably, for the store.
    Stored,
    /// Taken without being checked (the database cannot be reached, or no
    /// process has written the answer yet) and queued durably; the store
    /// checks it when it writes it, and leaves it out if it does not pass.
    Unchecked,
    /// The answer was given in someone else's direct message: nothing is
    /// stored.
    Refused,
    /// No answer has this id: nothing is stored.
    Unknown,
}

impl Verdict {
    /// Whether the vote was taken (stored or to be checked when written).
    pub fn taken(self) -> bool {
        matches!(self, Verdict::Stored | Verdict::Unchecked)
    }

    /// What to tell a chat user about their vote, in one short line.
    pub fn reply(self, up: Option<bool>) -> &'static str {
        match (self, up) {
            (Verdict::Stored | Verdict::Unchecked, Some(true)) => "Thanks! Recorded 👍",
            (Verdict::Stored | Verdict::Unchecked, Some(false)) => "Thanks! Recorded 👎",
            (Verdict::Stored | Verdict::Unchecked, None) => "Thanks! Your feedback is recorded.",
            (Verdict::Refused, _) => {
                "Not recorded: only the person who asked can rate an answer in a direct message."
            }
            (Verdict::Unknown, _) => "Not recorded: that answer is no longer known.",
        }
    }
}

/// The one way votes are taken. Cheap to clone.
#[derive(Clone)]
pub struct FeedbackDoor {
    recorder: Recorder,
    store: Store,
    ids: InferenceIds,
}

impl FeedbackDoor {
    /// A door writing through `recorder` into `store`, recognising the
    /// inference ids `ids` mints.
    pub fn new(recorder: Recorder, store: Store, ids: InferenceIds) -> FeedbackDoor {
        FeedbackDoor {
            recorder,
            store,
            ids,
        }
    }

    /// Takes `vote` if its voter may vote on its answer (see [`Verdict`]).
    /// Returns once a taken vote is durable.
    pub async fn submit(&self, vote: FeedbackRecord) -> Verdict {
        let verdict = self.judge(vote.inference_id, &vote).await;
        if verdict.taken() {
            self.recorder.feedback(vote).await;
        }
        verdict
    }

    async fn judge(&self, inference: Uuid, vote: &FeedbackRecord) -> Verdict {
        let found = match self.recorder.audience(inference) {
            Some(audience) => Ok(Some(audience)),
            None => self.store.inference_audience(&inference.to_string()).await,
        };
        match found {
            Ok(Some(audience)) if audience.allows(vote.user.as_ref()) => Verdict::Stored,
            Ok(Some(Audience::Only(_) | Audience::Anyone)) => {
                tracing::info!(%inference, "feedback on a direct message's answer from someone other than its asker is refused");
                Verdict::Refused
            }
            Ok(None) if self.ids.is_recent(&inference, now_ms(), UNWRITTEN_FOR_MS) => {
                Verdict::Unchecked
            }
            Ok(None) => Verdict::Unknown,
            Err(e) => {
                tracing::warn!(%inference, error = %e, "cannot look the answer up; the feedback is kept and checked when the database takes it");
                Verdict::Unchecked
            }
        }
    }
}
