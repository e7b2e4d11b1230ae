//! The slot pool: one OS thread per slot, each owning its own llama.cpp context for its whole
//! life and taking [`Job`]s from one shared queue, so generations never block the async
//! runtime and at most `slots` of them run at once. A slot skips a job whose caller has
//! already gone, and frees its place before announcing the end.

use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use super::admission::Permit;
use super::decode::{PROMPT_CHUNK, run};
use super::sampling::Sampling;
use super::{EngineOptions, GenEvent, GenerateError, LoadError};
use crate::backend;

/// One admitted request, as a slot runs it.
pub(super) struct Job {
    pub(super) tokens: Vec<LlamaToken>,
    pub(super) max_tokens: u32,
    pub(super) sampling: Sampling,
    pub(super) stop: Vec<String>,
    pub(super) tx: mpsc::UnboundedSender<GenEvent>,
    pub(super) permit: Permit,
}

/// Starts `opts.slots` slot threads over `model` and waits until each has its context;
/// returns the queue that feeds them. On any failure the slots that did start end again.
pub(super) fn start(
    model: &Arc<LlamaModel>,
    opts: &EngineOptions,
    path: &Path,
) -> Result<std_mpsc::Sender<Job>, LoadError> {
    let (job_tx, job_rx) = std_mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let mut ready = Vec::with_capacity(opts.slots);
    for slot in 0..opts.slots {
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        let model = Arc::clone(model);
        let jobs = Arc::clone(&job_rx);
        let params = context_params(opts);
        thread::Builder::new()
            .name(format!("llama-slot-{slot}"))
            .spawn(move || slot_thread(model, params, jobs, ready_tx))
            .map_err(LoadError::Thread)?;
        ready.push(ready_rx);
    }
    for ready_rx in ready {
        let outcome = ready_rx
            .recv()
            .unwrap_or_else(|_| Err("the slot thread exited early".into()));
        if let Err(detail) = outcome {
            // Dropping the sender ends the slots that did start.
            drop(job_tx);
            return Err(LoadError::Context {
                path: path.to_path_buf(),
                detail,
            });
        }
    }
    Ok(job_tx)
}

/// Context settings of one slot: its window, batch sizes and threads.
fn context_params(opts: &EngineOptions) -> LlamaContextParams {
    let threads = i32::try_from(opts.threads).unwrap_or(1);
    let chunk = u32::try_from(PROMPT_CHUNK).unwrap_or(512);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(opts.context_tokens))
        .with_n_batch(chunk)
        .with_n_ubatch(chunk)
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_no_perf(true)
        // Flash attention splits work by attention head; with a handful of heads on two cores
        // that balances worse than plain matrix products, and the prompt pass measured slower.
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
}

/// Body of one slot thread: owns a context for its whole life and runs jobs one at a time.
fn slot_thread(
    model: Arc<LlamaModel>,
    params: LlamaContextParams,
    jobs: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    ready: std_mpsc::SyncSender<Result<(), String>>,
) {
    let backend = match backend::get() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let detail = backend::take_last_error().unwrap_or_else(|| e.to_string());
            let _ = ready.send(Err(detail));
            return;
        }
    };
    let mut batch = LlamaBatch::new(PROMPT_CHUNK, 1);
    if ready.send(Ok(())).is_err() {
        return;
    }
    loop {
        let job = {
            let rx = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let Job {
            tokens,
            max_tokens,
            sampling,
            stop,
            tx,
            permit,
        } = job;
        if tx.is_closed() {
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run(
                &mut ctx, &model, &mut batch, &tokens, max_tokens, &sampling, stop, &tx,
            )
        }))
        .unwrap_or_else(|_| {
            Some(GenEvent::Error(GenerateError::Decode(
                "the generation panicked".into(),
            )))
        });
        // Free the slot before announcing the end, so a caller that reacts to `Done` with a
        // new request finds room.
        drop(permit);
        if let Some(last) = outcome {
            let _ = tx.send(last);
        }
    }
}
