//! Stage 1, admit: the request's estimated tokens against the rate limits
//! and budgets ([`crate::guards::limits`]); a refusal is recorded like any
//! other request, so that refusals are counted.

use tracing::Instrument;
use tracing::field::Empty;

use super::record::refusal_record;
use super::{Pipeline, PipelineError};
use crate::domain::{Input, Request};
use crate::guards::limits::{Admission, Limiter, estimate_tokens};

impl Pipeline {
    /// Stage 1: rate limits and budgets; a refusal is recorded.
    pub(super) async fn admit(&self, request: &Request) -> Result<Admission, PipelineError> {
        let span = tracing::info_span!("limits.admit", switchboard.limited = Empty);
        let admitted = self
            .inner
            .guards
            .limits
            .admit(
                &request.origin,
                estimate(request, &self.inner.guards.limits),
            )
            .instrument(span.clone())
            .await;
        span.record("switchboard.limited", admitted.is_err());
        match admitted {
            Ok(admission) => Ok(admission),
            Err(source) => {
                let inference_id = self.inner.options.ids.mint();
                let record = refusal_record(inference_id, request, &source);
                self.inner.record_refusal(record).await;
                Err(PipelineError::Limited {
                    inference_id,
                    source,
                })
            }
        }
    }
}

/// The tokens `request` is estimated at before any model has seen it: its
/// text and the answer it may get.
fn estimate(request: &Request, limits: &Limiter) -> u64 {
    let chars: usize = match &request.input {
        Input::Chat(inbound) => {
            inbound.text.len()
                + inbound
                    .history
                    .iter()
                    .map(|m| m.content.len())
                    .sum::<usize>()
        }
        Input::Messages { messages, .. } | Input::Prompt { messages, .. } => {
            messages.iter().map(|m| m.content.len()).sum()
        }
    };
    estimate_tokens(
        chars,
        request.params.max_tokens,
        limits.estimate_output_tokens(),
    )
}
