//! Stage 6, cache: what the response cache does for a request (its key from
//! the alias's targets, parameters and messages), an exact-match answer
//! replayed chunk by chunk instead of asking a model, and a fresh answer
//! stored for the next ([`crate::guards::cache`] holds the answers).

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;
use tracing::field::Empty;

use super::generate::{Failure, Run, Target};
use super::{Inner, Prepared};
use crate::domain::{Attempt, ReplyEvent, Request};
use crate::guards::cache::{CachedAnswer, KeyParts, Lookup};
use crate::providers::ProviderEvent;

impl Inner {
    /// What the cache does for this request, and the answer it holds, if
    /// any.
    pub(super) async fn cache_lookup(
        &self,
        request: &Request,
        prepared: &Prepared,
    ) -> (Option<Lookup>, Option<Arc<CachedAnswer>>) {
        let lookup = self
            .router
            .targets_of(&prepared.alias)
            .and_then(|(targets, alias_params)| {
                let params = prepared.params.clone().or(&alias_params);
                self.guards.cache.plan(
                    &prepared.alias,
                    prepared.cache.as_ref(),
                    &request.cache,
                    KeyParts {
                        targets: &targets,
                        params: &params,
                        messages: &prepared.messages,
                        stream: request.stream,
                    },
                )
            });
        let Some(l) = &lookup else {
            return (None, None);
        };
        let span = tracing::info_span!("cache.lookup", switchboard.cache.hit = Empty);
        let hit = self.guards.cache.get(l).instrument(span.clone()).await;
        span.record("switchboard.cache.hit", hit.is_some());
        (lookup, hit)
    }

    /// Stores a fresh answer from `target` for later requests.
    pub(super) async fn cache_store(
        &self,
        lookup: &Lookup,
        run: &mut Run,
        target: &Target,
        cost_usd: Option<f64>,
    ) {
        let answer = CachedAnswer {
            chunks: std::mem::take(&mut run.chunks),
            usage: run.usage,
            finish_reason: run.finish.clone(),
            provider: target.0.clone(),
            model: target.1.clone(),
            cost_usd,
        };
        self.guards.cache.put(lookup, answer).await;
    }
}

impl Run {
    /// Stage 6 on a hit: replays a cached answer, chunk by chunk.
    pub(super) async fn replay(
        &mut self,
        hit: &CachedAnswer,
        tx: &mpsc::Sender<ReplyEvent>,
    ) -> (Result<(), Failure>, Option<Target>, Vec<Attempt>) {
        let target = Some((hit.provider.clone(), hit.model.clone(), None));
        let started = ReplyEvent::Started {
            target: hit.target(),
            provider_ms: 0.0,
        };
        if tx.send(started).await.is_err() {
            return (Err(Failure::Cancelled), target, Vec::new());
        }
        for chunk in &hit.chunks {
            if let Err(f) = self.apply(ProviderEvent::Delta(chunk.clone()), tx).await {
                return (Err(f), target, Vec::new());
            }
        }
        self.usage = hit.usage;
        self.finish = hit.finish_reason.clone();
        (Ok(()), target, Vec::new())
    }
}
