//! Stage 8, record: the inference row of every request — answered, failed,
//! cancelled or refused — built here, in one place ([`base_record`]), and
//! handed to the metrics, the request's span and the recorder; and the
//! implicit feedback signals on answers.

use tracing::Instrument;
use uuid::Uuid;

use super::generate::{Ended, Failure, Run};
use super::{Inner, Prepared};
use crate::domain::{
    ChatMessage, FeedbackRecord, InferenceRecord, Input, Origin, Request, Role, Status, now_ms,
};
use crate::guards::limits::LimitError;

/// The row of `request` with the figures of a request that reached no
/// model: no prompt, provider, tokens, timings or cost yet. Answers fill
/// in what they have; refusals keep it as it is.
fn base_record(
    id: Uuid,
    request: &Request,
    alias: String,
    input: Vec<ChatMessage>,
    status: Status,
    error: Option<String>,
) -> InferenceRecord {
    InferenceRecord {
        id,
        created_at_ms: now_ms() - request.started.elapsed().as_millis() as i64,
        origin: request.origin.clone(),
        user_name: request.user_name(),
        prompt: None,
        prompt_label: None,
        purpose: request.purpose,
        alias,
        provider: None,
        model: None,
        input_tokens: None,
        output_tokens: None,
        ttft_ms: None,
        tpot_ms: None,
        total_ms: request.started.elapsed().as_secs_f64() * 1000.0,
        provider_ms: 0.0,
        cost_usd: None,
        cache_hit: false,
        tokens_saved: None,
        cost_saved_usd: None,
        streamed: request.stream,
        status,
        error,
        finish_reason: None,
        attempts: Vec::new(),
        params: request.params.clone(),
        input,
        output: None,
        retrieval: None,
        tool_calls: Vec::new(),
        tool_runs: Vec::new(),
    }
}

/// The row of a request the limits refused, so that refusals are counted
/// with everything else.
pub(super) fn refusal_record(id: Uuid, request: &Request, error: &LimitError) -> InferenceRecord {
    let (alias, input) = match &request.input {
        Input::Messages { alias, messages } => (alias.clone(), messages.clone()),
        Input::Prompt { name, messages, .. } => (format!("prompt:{name}"), messages.clone()),
        Input::Chat(inbound) => (
            String::new(),
            vec![ChatMessage::new(Role::User, inbound.text.clone())],
        ),
    };
    let status = match error {
        LimitError::Limited { .. } => Status::Limited,
        LimitError::Unavailable(_) => Status::Error,
    };
    base_record(id, request, alias, input, status, Some(error.to_string()))
}

impl Inner {
    /// Records the row of an answered (or failed, or cancelled) request.
    pub(super) async fn record_answer(
        &self,
        id: Uuid,
        request: &Request,
        prepared: Prepared,
        run: &Run,
        ended: Ended<'_>,
    ) {
        let (status, error) = match ended.outcome {
            Ok(()) => (Status::Ok, None),
            Err(Failure::Cancelled) => (Status::Cancelled, None),
            Err(Failure::Failed {
                message, partial, ..
            }) => (
                if *partial {
                    Status::Partial
                } else {
                    Status::Error
                },
                Some(message.clone()),
            ),
        };
        // The target that answered, else the last one tried.
        let last_attempt = ended.attempts.last().map(|a| a.target.clone());
        let (provider, model) = match (
            ended.target,
            last_attempt.as_deref().and_then(|t| t.split_once('/')),
        ) {
            (Some(t), _) => (Some(t.0.clone()), Some(t.1.clone())),
            (None, Some((p, m))) => (Some(p.to_string()), Some(m.to_string())),
            (None, None) => (None, None),
        };
        // Images are not stored: the row names them.
        let input = prepared
            .messages
            .into_iter()
            .map(|mut m| {
                for image in std::mem::take(&mut m.images) {
                    m.content.push_str(&format!("\n[image: {}]", image.name));
                }
                m
            })
            .collect();
        let figures = ended.figures;
        let record = InferenceRecord {
            prompt: prepared.prompt,
            prompt_label: prepared.label,
            provider,
            model,
            input_tokens: run.usage.map(|u| u.input_tokens),
            output_tokens: run.usage.map(|u| u.output_tokens),
            ttft_ms: figures.ttft_ms,
            tpot_ms: figures.tpot_ms,
            total_ms: figures.total_ms,
            provider_ms: figures.provider_ms,
            cost_usd: figures.cost_usd,
            cache_hit: ended.hit.is_some(),
            tokens_saved: ended
                .hit
                .and_then(|h| h.usage)
                .map(|u| u.input_tokens + u.output_tokens),
            cost_saved_usd: ended.hit.and_then(|h| h.cost_usd),
            finish_reason: run.finish.clone(),
            attempts: ended.attempts,
            params: prepared.params,
            output: (!run.text.is_empty() || status == Status::Ok).then(|| run.text.clone()),
            retrieval: prepared.retrieval,
            tool_calls: run.tool_calls.calls().to_vec(),
            tool_runs: run.tool_runs.clone(),
            ..base_record(id, request, prepared.alias, input, status, error)
        };
        self.metrics.observe(&record);
        let span = tracing::Span::current();
        crate::telemetry::spans::record_inference(&span, &record, self.options.capture_content);
        self.recorder
            .inference(record)
            .instrument(tracing::info_span!("store.record"))
            .await;
    }

    /// Records the row of a refused request.
    pub(super) async fn record_refusal(&self, record: InferenceRecord) {
        self.metrics.observe(&record);
        self.recorder.inference(record).await;
    }

    /// Records an implicit signal (see [`super::implicit`]) on an answer,
    /// without holding up the request.
    pub(super) fn implicit(&self, inference: Uuid, kind: &str, origin: &Origin) {
        let recorder = self.recorder.clone();
        let record = FeedbackRecord {
            id: Uuid::now_v7(),
            inference_id: inference,
            created_at_ms: now_ms(),
            kind: kind.to_string(),
            score: Some(0.0),
            comment: None,
            user: origin.user.clone(),
            source: "implicit".into(),
        };
        tokio::spawn(async move { recorder.feedback(record).await });
    }
}
