//! One generation on a slot's context: the prompt pass in chunks, then the token loop —
//! sample, stream whole UTF-8 characters with stop sequences held back, and stop at the
//! end-of-generation token, at `max_tokens` or at a stop sequence. Cancellation is checked
//! before every chunk and every token: a dropped [`Generation`](super::Generation) closes the
//! channel, and the slot moves on within one step.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::prompt::token_count;
use super::sampling::{Sampling, build_sampler};
use super::{FinishReason, GenEvent, GenerateError};
use crate::stream::{Filtered, StopFilter, Utf8Assembler};

/// Prompt tokens handed to llama.cpp per decode call. The prompt pass is split so that a
/// cancelled generation stops within one chunk instead of after the whole prompt.
pub(super) const PROMPT_CHUNK: usize = 256;

/// Runs one generation, streaming tokens; returns the final event (`None` when cancelled).
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    ctx: &mut LlamaContext<'_>,
    model: &LlamaModel,
    batch: &mut LlamaBatch<'_>,
    tokens: &[LlamaToken],
    max_tokens: u32,
    sampling: &Sampling,
    stop: Vec<String>,
    tx: &mpsc::UnboundedSender<GenEvent>,
) -> Option<GenEvent> {
    let decode_error = |e: String| Some(GenEvent::Error(GenerateError::Decode(e)));
    ctx.clear_kv_cache();
    let n_prompt = tokens.len();
    for (c, chunk) in tokens.chunks(PROMPT_CHUNK).enumerate() {
        if tx.is_closed() {
            return None;
        }
        batch.clear();
        for (j, token) in chunk.iter().enumerate() {
            let pos = c * PROMPT_CHUNK + j;
            let pos_i32 = i32::try_from(pos).unwrap_or(i32::MAX);
            if let Err(e) = batch.add(*token, pos_i32, &[0], pos + 1 == n_prompt) {
                return decode_error(e.to_string());
            }
        }
        if let Err(e) = ctx.decode(batch) {
            return decode_error(e.to_string());
        }
    }

    let mut sampler = build_sampler(sampling, model.n_vocab());
    let vocab = model.vocab();
    let mut utf8 = Utf8Assembler::default();
    let mut stops = StopFilter::new(stop);
    let mut piece = Vec::with_capacity(32);
    let mut pos = n_prompt;
    let mut completion: u32 = 0;
    let prompt_tokens = token_count(n_prompt);
    let done = |completion_tokens, finish_reason| {
        Some(GenEvent::Done {
            prompt_tokens,
            completion_tokens,
            finish_reason,
        })
    };

    loop {
        if tx.is_closed() {
            return None;
        }
        let token = sampler.sample(ctx, batch.n_tokens() - 1);
        let finished = vocab.is_eog(token);
        if !finished {
            completion += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let text = utf8.push(&piece);
            match stops.push(&text) {
                Filtered::Text(t) => send_text(tx, t),
                Filtered::Stopped(t) => {
                    send_text(tx, t);
                    return done(completion, FinishReason::StopSequence);
                }
            }
        }
        if finished || completion >= max_tokens {
            // Release what was held back: it can still complete a stop sequence.
            let rest = utf8.finish();
            if let Filtered::Stopped(t) = stops.push(&rest) {
                send_text(tx, t);
                return done(completion, FinishReason::StopSequence);
            }
            send_text(tx, stops.finish());
            let reason = if finished {
                FinishReason::Stop
            } else {
                FinishReason::Length
            };
            return done(completion, reason);
        }
        batch.clear();
        let pos_i32 = i32::try_from(pos).unwrap_or(i32::MAX);
        if let Err(e) = batch.add(token, pos_i32, &[0], true) {
            return decode_error(e.to_string());
        }
        pos += 1;
        if let Err(e) = ctx.decode(batch) {
            return decode_error(e.to_string());
        }
    }
}

fn send_text(tx: &mpsc::UnboundedSender<GenEvent>, text: String) {
    if !text.is_empty() {
        let _ = tx.send(GenEvent::Token(text));
    }
}
