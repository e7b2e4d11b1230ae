//! The recorder takes inference and feedback rows from the request path
//! and writes them in batches on a task of its own, so that a request never
//! waits on the database. Whatever is queued when many requests finish at
//! once goes in one transaction. A failed write is retried with backoff
//! while new rows wait in the (bounded) queue: rows are never dropped.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{FeedbackRecord, InferenceRecord, Store};

/// Rows written in one transaction at most.
const BATCH: usize = 512;
/// Rows that may wait for the writer before callers wait too.
const QUEUE: usize = 16_384;

enum Message {
    Inference(Box<InferenceRecord>),
    Feedback(FeedbackRecord),
    Flush(oneshot::Sender<()>),
}

/// A handle to the background writer. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
}

impl Recorder {
    /// Starts the writer on `store`. The task ends once every `Recorder`
    /// is dropped and the queue is written.
    pub fn start(store: Store) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, rx));
        (Recorder { tx }, task)
    }

    /// Queues an inference row.
    pub async fn inference(&self, record: InferenceRecord) {
        if self
            .tx
            .send(Message::Inference(Box::new(record)))
            .await
            .is_err()
        {
            tracing::error!("the recorder has stopped; an inference row was not written");
        }
    }

    /// Queues a feedback row.
    pub async fn feedback(&self, record: FeedbackRecord) {
        if self.tx.send(Message::Feedback(record)).await.is_err() {
            tracing::error!("the recorder has stopped; a feedback row was not written");
        }
    }

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut inferences = Vec::new();
    let mut feedback = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Inference(r) => inferences.push(*r),
                Message::Feedback(f) => feedback.push(f),
                Message::Flush(done) => flushes.push(done),
            }
            if inferences.len() + feedback.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match (inferences.is_empty(), feedback.is_empty()) {
                (true, true) => Ok(()),
                (false, true) => store.insert_inferences(&inferences).await,
                (true, false) => store.insert_feedback(&feedback).await,
                (false, false) => match store.insert_inferences(&inferences).await {
                    Ok(()) => store.insert_feedback(&feedback).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, rows = inferences.len() + feedback.len(), retry_in_ms = backoff.as_millis() as u64, "cannot write rows; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        inferences.clear();
        feedback.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}
