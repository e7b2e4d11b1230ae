//! The records every layer shares: an answered (or refused) request as
//! recorded ([`InferenceRecord`], with each [`Attempt`] at a target and how it
//! ended, [`Status`]), a piece of feedback on one ([`FeedbackRecord`]), and
//! the one rule of who may leave feedback on an answer ([`Audience`]).

use serde::Serialize;
use uuid::Uuid;

use super::{ChatMessage, Origin, Params, Purpose, User};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answered in full.
    Ok,
    /// No answer: every target failed, or the request was refused.
    Error,
    /// The answer started but broke off; the caller saw the error.
    Partial,
    /// The caller went away before the answer was done.
    Cancelled,
    /// Refused by a rate limit or budget before any model was asked.
    Limited,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Partial => "partial",
            Status::Cancelled => "cancelled",
            Status::Limited => "limited",
        }
    }
}

/// One inference, as recorded (and as spooled, in JSON).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct InferenceRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// Unix milliseconds when the request arrived.
    pub created_at_ms: i64,
    /// Where it came from.
    pub origin: Origin,
    /// The asker's display name, when a chat platform gave one (a prompt
    /// may have rendered it; an export with redaction replaces it).
    #[serde(default)]
    pub user_name: Option<String>,
    /// The prompt and version used, if any.
    pub prompt: Option<(String, i64)>,
    /// The label the version came through.
    pub prompt_label: Option<String>,
    /// Real traffic or a dry run.
    pub purpose: Purpose,
    /// The alias asked for.
    pub alias: String,
    /// The provider that answered (or last tried).
    pub provider: Option<String>,
    /// The model that answered (or last tried).
    pub model: Option<String>,
    /// Token counts.
    pub input_tokens: Option<u64>,
    /// Token counts.
    pub output_tokens: Option<u64>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// Whole request.
    pub total_ms: f64,
    /// Time spent waiting on providers.
    pub provider_ms: f64,
    /// Cost in USD, when the price is known.
    pub cost_usd: Option<f64>,
    /// Answered from the cache.
    pub cache_hit: bool,
    /// On a cache hit: the tokens the original answer used, not paid again.
    pub tokens_saved: Option<u64>,
    /// On a cache hit: what the original answer cost, not paid again.
    pub cost_saved_usd: Option<f64>,
    /// Streamed to the caller.
    pub streamed: bool,
    /// How it ended.
    pub status: Status,
    /// The error the caller saw.
    pub error: Option<String>,
    /// Why generation ended.
    pub finish_reason: Option<String>,
    /// Every try, in order.
    pub attempts: Vec<Attempt>,
    /// The parameters sent.
    pub params: Params,
    /// The messages sent.
    pub input: Vec<ChatMessage>,
    /// The answer (or the part of it that arrived).
    pub output: Option<String>,
    /// What retrieval gave the model, when the prompt version retrieves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<super::RetrievalRecord>,
    /// The tools the answer asked its caller to call (a request that
    /// offered its own tools), stored with the answer's message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<super::ToolCall>,
    /// The tools Switchboard ran for the answer, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_runs: Vec<super::ToolCallRecord>,
}

/// One piece of feedback on an inference.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FeedbackRecord {
    /// UUIDv7.
    pub id: Uuid,
    /// The inference it is about.
    pub inference_id: Uuid,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// `thumbs`, `rating`, `comment`, …
    pub kind: String,
    /// The score (thumbs: 1 up, 0 down; none when the vote was withdrawn).
    pub score: Option<f64>,
    /// Free text.
    pub comment: Option<String>,
    /// Who gave it.
    #[serde(deserialize_with = "spooled_voter", default)]
    pub user: Option<User>,
    /// `button`, `reaction`, `console`, `api`.
    pub source: String,
}

/// Who may leave feedback on an inference: the one rule, used by the
/// feedback door before a vote is taken and by the store when it writes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// An answer in a channel: anyone who saw it.
    Anyone,
    /// An answer in a direct message: only this user.
    Only(User),
}

impl Audience {
    /// Who may leave feedback on an answer given to `user`, in private or
    /// not.
    pub fn new(private: bool, user: Option<User>) -> Audience {
        match (private, user) {
            (true, Some(user)) => Audience::Only(user),
            _ => Audience::Anyone,
        }
    }

    /// Who may leave feedback on the answer to a request from `origin`.
    pub fn of(origin: &Origin) -> Audience {
        Audience::new(origin.private, origin.user.clone())
    }

    /// The audience of a stored answer, from its `private` and `user_id`
    /// columns (the user's text form).
    pub fn stored(private: bool, user_id: Option<&str>) -> Audience {
        Audience::new(private, user_id.and_then(User::parse))
    }

    /// Whether `voter` may leave feedback.
    pub fn allows(&self, voter: Option<&User>) -> bool {
        match self {
            Audience::Anyone => true,
            Audience::Only(owner) => voter == Some(owner),
        }
    }
}

/// One try of one target, kept on the inference row.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Attempt {
    /// `provider/model`.
    pub target: String,
    /// The HTTP status, when the provider answered with an error status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error, or `None` for the attempt that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub ms: f64,
}

/// Reads a spooled voter. Rows spooled before users had one text form may
/// hold a bare id (from `POST /v1/feedback`'s `user`): it is read as an HTTP
/// API user.
fn spooled_voter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<User>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<String>::deserialize(d)?
        .map(|text| User::parse(&text).unwrap_or_else(|| User::new("http", text))))
}

#[cfg(test)]
impl InferenceRecord {
    /// A plain answered row with no figures, for tests to adjust.
    pub(crate) fn sample() -> InferenceRecord {
        InferenceRecord {
            id: Uuid::now_v7(),
            created_at_ms: super::now_ms(),
            origin: Origin::default(),
            user_name: None,
            prompt: None,
            prompt_label: None,
            purpose: Purpose::Live,
            alias: "default".into(),
            provider: None,
            model: None,
            input_tokens: None,
            output_tokens: None,
            ttft_ms: None,
            tpot_ms: None,
            total_ms: 1.0,
            provider_ms: 1.0,
            cost_usd: None,
            cache_hit: false,
            tokens_saved: None,
            cost_saved_usd: None,
            streamed: false,
            status: Status::Ok,
            error: None,
            finish_reason: None,
            attempts: vec![],
            params: Params::default(),
            input: vec![],
            output: None,
            retrieval: None,
            tool_calls: Vec::new(),
            tool_runs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_asker_may_vote_on_a_direct_messages_answer() {
        let alice = User::new("slack", "UALICE");
        let dm = Audience::stored(true, Some("slack:UALICE"));
        assert!(dm.allows(Some(&alice)));
        assert!(!dm.allows(Some(&User::new("slack", "UBOB"))));
        // The same bare id from another platform is someone else.
        assert!(!dm.allows(Some(&User::new("http", "UALICE"))));
        assert!(!dm.allows(None));
        let channel = Audience::stored(false, Some("slack:UALICE"));
        assert!(channel.allows(None));
        assert!(channel.allows(Some(&User::new("discord", "1"))));
    }
}
