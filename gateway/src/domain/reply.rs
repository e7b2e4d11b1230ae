//! What a caller of the pipeline gets back: a stream of tokens as they
//! arrive, ending in exactly one summary (usage, timings, cost and the
//! inference id) or one failure. Adapters render it; dropping it cancels
//! the generation.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Usage;

/// The figures of one answered request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// The inference id; feedback points at it.
    pub inference_id: Uuid,
    /// The alias asked for.
    pub alias: String,
    /// `provider/model` that answered, if any did.
    pub target: Option<String>,
    /// The model name alone, for API responses.
    pub model: Option<String>,
    /// The prompt and version used, if any.
    pub prompt: Option<(String, i64)>,
    /// Token counts, as the provider reported them.
    pub usage: Option<Usage>,
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// The whole request.
    pub total_ms: f64,
    /// Time spent waiting on providers (including their retries).
    pub provider_ms: f64,
    /// Cost in USD, when the model's price is configured.
    pub cost_usd: Option<f64>,
    /// Why generation ended (`stop`, `length`, …).
    pub finish_reason: Option<String>,
    /// How many provider calls were made.
    pub attempts: usize,
    /// The references the answer cited (empty when nothing was retrieved
    /// or nothing cited).
    pub citations: Vec<super::Citation>,
    /// What retrieval gave the model, for previews (`prompts test`, the
    /// playground); `None` when the prompt does not retrieve.
    pub retrieval: Option<super::RetrievalRecord>,
    /// The tools the answer asks its caller to call (the API's
    /// `tool_calls`; finish reason `tool_calls`), whole.
    pub tool_calls: Vec<super::ToolCall>,
    /// The tools Switchboard ran for this answer, in order.
    pub tool_runs: Vec<super::ToolCallRecord>,
}

impl Summary {
    /// Switchboard's own share of the total time.
    pub fn overhead_ms(&self) -> f64 {
        (self.total_ms - self.provider_ms).max(0.0)
    }
}

/// One event of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    /// A model has started answering (sent once, before the first token).
    Started {
        /// `provider/model` that answers.
        target: String,
        /// Time spent waiting on providers so far, in milliseconds.
        provider_ms: f64,
    },
    /// More text.
    Token(String),
    /// A piece of a tool call the answer asks its caller to make (only
    /// for requests that offered their own tools; see
    /// [`super::ToolCallDelta`]); the summary has the calls whole.
    ToolCall(super::ToolCallDelta),
    /// Switchboard is running a tool for the answer (its name), so that a
    /// front end can say so while the user waits.
    UsingTool(String),
    /// A tool asks the asker first: the front end shows Approve / Deny for
    /// this request and hands the click to `Pipeline::approvals`. Sent only
    /// to front ends that said they can ask (`Inbound::confirms`).
    Approval(super::ApprovalRequest),
    /// The answer is complete.
    Done(Summary),
    /// The answer failed. If `partial`, some tokens were sent before.
    Failed {
        /// What went wrong, for the user.
        message: String,
        /// The HTTP status that fits the failure: the provider's own, 504 for
        /// a timeout, 503 when the provider is busy.
        upstream_status: Option<u16>,
        /// Whether tokens were sent before the failure.
        partial: bool,
        /// The figures so far; the inference row records the failure.
        summary: Summary,
    },
}

/// The reply to one request. Dropping it stops the generation.
pub struct ReplyStream {
    /// The inference id, known before the first token.
    pub inference_id: Uuid,
    /// Names of images attached to the question that the model was not
    /// given (its alias reads text only): the adapter tells the user.
    pub images_unread: Vec<String>,
    rx: mpsc::Receiver<ReplyEvent>,
}

impl ReplyStream {
    pub(crate) fn new(inference_id: Uuid, rx: mpsc::Receiver<ReplyEvent>) -> ReplyStream {
        ReplyStream {
            inference_id,
            images_unread: Vec::new(),
            rx,
        }
    }

    /// The next event, or `None` after the last one.
    pub async fn next_event(&mut self) -> Option<ReplyEvent> {
        self.rx.recv().await
    }

    /// The whole answer's text, for a front end that shows it at once; the
    /// failure's message when it failed (or stopped without a summary).
    pub async fn into_text(mut self) -> Result<String, String> {
        let mut text = String::new();
        while let Some(event) = self.next_event().await {
            match event {
                ReplyEvent::Token(t) => text.push_str(&t),
                ReplyEvent::Done(_) => return Ok(text),
                ReplyEvent::Failed { message, .. } => return Err(message),
                _ => {}
            }
        }
        Err("the answer stopped before it was complete".into())
    }
}

impl Stream for ReplyStream {
    type Item = ReplyEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReplyEvent>> {
        self.rx.poll_recv(cx)
    }
}
