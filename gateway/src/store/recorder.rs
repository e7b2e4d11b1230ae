//! The recorder takes inference and feedback rows from the request path
//! and writes them in batches off the hot path, without losing any.
//!
//! Two tasks share the work. The *spooler* gathers whatever rows are
//! queued (up to a batch), appends them to the current segment file in
//! the spool folder, fsyncs it and only then acknowledges the callers that
//! wait (feedback clicks): from that moment a crash cannot lose them. The
//! *writer* then puts the batches into the database in order, several in
//! one transaction, and recycles a segment's file once the spooler has
//! moved past it and all its rows are written. If the database is down or slow, rows
//! pile up on disk and in memory and are written in order when it
//! returns; at start, segments left by a crashed process are replayed
//! first. Rows have fixed ids and inserts skip ids already stored, so a
//! replay never duplicates anything.
//!
//! The click-to-acknowledgement time is one `fdatasync` of data written
//! into a file that already exists: a helper thread keeps segment files
//! ready ahead of use (written ones recycled, else new ones zero-filled to
//! their full size, with durable names), so the spooler's write changes
//! no directory, allocates nothing and leaves the file's size alone.
//! Batches are appended to a segment until it is full; `spool.rs` says
//! how a segment's rows are told from what follows them.
//!
//! Several processes may share a spool folder (the server and a CLI
//! command on the same data folder). Each names its segments after its
//! own instance id and holds an exclusive lock on `INSTANCE.lock` while
//! it runs; at start, a process replays only the segments of instances
//! whose lock it can take, that is, of processes that have ended.
//!
//! The recorder also remembers who may leave feedback on each inference
//! it holds and has not yet written ([`Recorder::audience`]), so that a
//! click on a fresh answer is checked without the database, whether the
//! answer's row is still queued or the database is down.
//!
//! Without a spool folder (tests, or a folder that cannot be written) the
//! rows are handed to the writer in memory: still batched and retried, but
//! not crash-safe; a warning says so.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Store;
use crate::domain::{Audience, FeedbackRecord, InferenceRecord};
use crate::telemetry::metrics::Timings;

mod spool;

/// Rows in one spool segment at most.
const BATCH: usize = 512;
/// Rows the writer puts in one transaction, from several segments.
const WRITE_BATCH: usize = 4096;
/// Rows that may wait for the spooler before callers wait too.
const QUEUE: usize = 16_384;
/// Segment files end with this.
const SEGMENT: &str = "jsonl";
/// The size of each segment file made ahead of use. Batches are appended
/// until it is full; a batch that does not fit simply grows the file.
const RESERVE: u64 = 1024 * 1024;
/// Segment files kept ready.
const READY: usize = 2;
/// How often votes waiting for their answer are looked at, for a while
/// after this process left some waiting ([`SWEEP_FAST_FOR`]), and otherwise.
const SWEEP_WAITING: Duration = Duration::from_millis(200);
const SWEEP_FAST_FOR: Duration = Duration::from_secs(60);
const SWEEP_IDLE: Duration = Duration::from_secs(60);

/// One row, as spooled.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "row", rename_all = "lowercase")]
enum Row {
    Inference(Box<InferenceRecord>),
    Feedback(FeedbackRecord),
}

enum Message {
    Row(Row, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

/// What the writer does, in order.
enum Work {
    /// A batch of rows: `rows` in memory (already synced to the current
    /// segment, or not durable when there is no spool or it failed), or,
    /// for a segment left by an earlier run, `None`: read from `replay`,
    /// which is removed once its rows are in the database.
    Batch {
        replay: Option<PathBuf>,
        rows: Option<Vec<Row>>,
    },
    /// A segment the spooler has finished with: every batch in it comes
    /// before this, so once those are written it can go.
    Close(PathBuf),
    /// Locks of ended instances whose segments were just replayed: released
    /// and removed.
    Adopted(Vec<spool::Lock>),
    Flush(oneshot::Sender<()>),
}

/// A handle to the background writer. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
    latency: Arc<Latency>,
    pending: Pending,
}

/// Who may leave feedback on the inferences handed to the recorder and not
/// yet written, by id.
type Pending = Arc<Mutex<HashMap<Uuid, Audience>>>;

/// How long the recorder keeps callers waiting, for `/metrics`.
#[derive(Default)]
pub struct Latency {
    /// A feedback row, from reaching the recorder to its acknowledgement.
    pub ack: Timings,
    /// One batch appended to the spool and synced.
    pub sync: Timings,
}

impl Recorder {
    /// Starts the writer on `store` without a spool (rows are held in
    /// memory until written). The task ends once every `Recorder` is
    /// dropped and the queue is written.
    pub fn start(store: Store) -> (Recorder, JoinHandle<()>) {
        Recorder::start_with_spool(store, None)
    }

    /// Starts the writer with a spool folder: rows are fsync'd there before
    /// they are acknowledged, and segments left by an earlier run are
    /// written first.
    pub fn start_with_spool(store: Store, spool: Option<PathBuf>) -> (Recorder, JoinHandle<()>) {
        let spool = spool.and_then(|dir| match spool::Spool::open(&dir) {
            Ok(spool) => Some(spool),
            Err(e) => {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot use the spool folder; rows are kept in memory until written, and a crash can lose them");
                None
            }
        });
        Recorder::start_spooled(store, spool)
    }

    fn start_spooled(store: Store, spool: Option<spool::Spool>) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let recycler = spool.as_ref().map(spool::Spool::recycler);
        if let Some(spool) = &spool {
            let (segments, locks) = spool.leftovers();
            for segment in segments {
                tracing::info!(segment = %segment.display(), "replaying rows spooled by an earlier run");
                let _ = work_tx.send(Work::Batch {
                    replay: Some(segment),
                    rows: None,
                });
            }
            let _ = work_tx.send(Work::Adopted(locks));
        }
        let pending = Pending::default();
        let writer = tokio::spawn(write(store, work_rx, recycler, pending.clone()));
        let latency = Arc::new(Latency::default());
        let timings = latency.clone();
        // The spooler has a thread of its own: a batch's write and sync
        // then cost no hand-offs between the async workers and a blocking
        // thread, which on a busy machine cost as much as the sync itself.
        let spooler = match spool {
            Some(spool) => tokio::task::spawn_blocking(move || {
                Some(spool_rows(spool, rx, work_tx, &timings.sync))
            }),
            None => tokio::spawn(async move {
                pass_rows(rx, work_tx).await;
                None
            }),
        };
        let task = tokio::spawn(async move {
            let own = spooler.await.ok().flatten();
            let _ = writer.await;
            // Every segment is written: the instance's lock can go.
            drop(own);
        });
        (
            Recorder {
                tx,
                latency,
                pending,
            },
            task,
        )
    }

    /// Queues an inference row (written soon after; the caller does not wait).
    pub async fn inference(&self, record: InferenceRecord) {
        if let Ok(mut pending) = self.pending.lock() {
            let origin = &record.origin;
            pending.insert(record.id, Audience::of(origin));
        }
        let id = record.id;
        if self
            .tx
            .send(Message::Row(Row::Inference(Box::new(record)), None))
            .await
            .is_err()
        {
            tracing::error!("the recorder has stopped; an inference row was not written");
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(&id);
            }
        }
    }

    /// Who may leave feedback on inference `id`, if the recorder holds it
    /// (queued, spooled or waiting for the database): `None` once it is
    /// written, or if it never came here.
    pub fn audience(&self, id: Uuid) -> Option<Audience> {
        self.pending.lock().ok()?.get(&id).cloned()
    }

    /// Records a feedback row, returning once it is durable (in the spool,
    /// fsync'd), so that acknowledging the user's click is safe.
    pub async fn feedback(&self, record: FeedbackRecord) {
        let started = Instant::now();
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Message::Row(Row::Feedback(record), Some(done)))
            .await
            .is_err()
            || wait.await.is_err()
        {
            tracing::error!("the recorder has stopped; a feedback row was not written");
            return;
        }
        self.latency.ack.record(started.elapsed());
    }

    /// How long acknowledgements and spool syncs have taken.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// Rows handed to the recorder and not yet taken up by its writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Waits until every row queued before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Gathers batches, makes them durable, acknowledges, and passes them on.
/// Returns the spool (holding this instance's lock) once the queue is
/// closed. Blocks: it runs on a thread of its own.
fn spool_rows(
    mut spool: spool::Spool,
    mut rx: mpsc::Receiver<Message>,
    work: mpsc::UnboundedSender<Work>,
    synced: &Timings,
) -> spool::Spool {
    let mut batch = Batch::default();
    while let Some(first) = rx.blocking_recv() {
        batch.gather(first, &mut rx);
        batch.pass(Some((&mut spool, synced)), &work);
    }
    if let Some(closed) = spool.finish() {
        let _ = work.send(Work::Close(closed));
    }
    spool
}

/// Without a spool: batches go to the writer from memory, acknowledged at
/// once (no thread of its own: nothing here blocks).
async fn pass_rows(mut rx: mpsc::Receiver<Message>, work: mpsc::UnboundedSender<Work>) {
    let mut batch = Batch::default();
    while let Some(first) = rx.recv().await {
        batch.gather(first, &mut rx);
        batch.pass(None, &work);
    }
}

/// The rows, acknowledgements and flushes taken from the queue at once.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    acks: Vec<oneshot::Sender<()>>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    /// Takes `first` and whatever else is queued, up to [`BATCH`] rows.
    fn gather(&mut self, first: Message, rx: &mut mpsc::Receiver<Message>) {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(row, ack) => {
                    self.rows.push(row);
                    self.acks.extend(ack);
                }
                Message::Flush(done) => self.flushes.push(done),
            }
            if self.rows.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
    }

    /// Makes the rows durable in `spool` (when there is one, counting the
    /// time in `synced`), acknowledges them and hands them to the writer,
    /// then the flushes.
    fn pass(
        &mut self,
        spool: Option<(&mut spool::Spool, &Timings)>,
        work: &mpsc::UnboundedSender<Work>,
    ) {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            let rows = match spool {
                Some((spool, synced)) => {
                    let started = Instant::now();
                    let written = spool.write(rows);
                    if written.result.is_ok() {
                        synced.record(started.elapsed());
                    }
                    if let Some(closed) = written.closed {
                        let _ = work.send(Work::Close(closed));
                    }
                    if let Err(e) = written.result {
                        tracing::error!(error = %e, "cannot write to the spool; keeping these rows in memory until the database takes them");
                    }
                    written.rows
                }
                None => rows,
            };
            let _ = work.send(Work::Batch {
                replay: None,
                rows: Some(rows),
            });
            for ack in self.acks.drain(..) {
                let _ = ack.send(());
            }
        }
        for done in self.flushes.drain(..) {
            let _ = work.send(Work::Flush(done));
        }
    }
}

/// Writes the database side in order. Segments that are waiting are
/// taken together (up to [`WRITE_BATCH`] rows) into one transaction, so a
/// backlog drains in large batches. This process's written segments go
/// back to `recycler`; those replayed from ended ones are removed.
async fn write(
    store: Store,
    mut work: mpsc::UnboundedReceiver<Work>,
    recycler: Option<spool::Recycler>,
    audiences: Pending,
) {
    let mut pending: Option<Work> = None;
    // Votes this process left waiting for their answer are swept often for
    // a while (their answer is usually a few milliseconds behind, on another
    // replica); after that, and for those an ended process left, now and
    // then.
    let mut fast_until = tokio::time::Instant::now();
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        let item = match pending.take() {
            Some(item) => item,
            None => {
                let next = tokio::select! {
                    next = work.recv() => Some(next),
                    () = tokio::time::sleep_until(next_sweep) => None,
                };
                match next {
                    Some(Some(item)) => item,
                    Some(None) => return,
                    None => {
                        let left = match store.sweep_pending().await {
                            Ok(left) => left,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot sweep the votes waiting for their answers; trying again later");
                                1
                            }
                        };
                        let now = tokio::time::Instant::now();
                        next_sweep = now
                            + if left > 0 && now < fast_until {
                                SWEEP_WAITING
                            } else {
                                SWEEP_IDLE
                            };
                        continue;
                    }
                }
            }
        };
        match item {
            Work::Flush(done) => {
                let _ = done.send(());
            }
            Work::Adopted(locks) => {
                for lock in locks {
                    lock.remove();
                }
            }
            Work::Close(path) => match &recycler {
                Some(r) => r.recycle(path),
                None => remove_segment(&path),
            },
            Work::Batch {
                replay: path,
                rows: held,
            } => {
                let mut next = Some((path, held));
                let mut paths = Vec::new();
                let mut rows = Vec::new();
                while let Some((path, held)) = next.take() {
                    let read = match (held, &path) {
                        (Some(held), _) => Ok(held),
                        (None, Some(path)) => spool::read_segment(path),
                        (None, None) => Ok(Vec::new()),
                    };
                    match read {
                        Ok(mut r) => {
                            rows.append(&mut r);
                            paths.extend(path);
                        }
                        Err(e) => {
                            tracing::error!(segment = ?path, error = %e, "cannot read a spool segment; it is left in place");
                        }
                    }
                    if rows.len() >= WRITE_BATCH {
                        break;
                    }
                    match work.try_recv() {
                        Ok(Work::Batch { replay, rows }) => next = Some((replay, rows)),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let from = paths
                    .first()
                    .map_or("memory".to_string(), |p| p.display().to_string());
                if insert(&store, rows, &from, &audiences).await > 0 {
                    let now = tokio::time::Instant::now();
                    fast_until = now + SWEEP_FAST_FOR;
                    next_sweep = next_sweep.min(now + SWEEP_WAITING);
                }
                for path in paths {
                    remove_segment(&path);
                }
            }
        }
    }
}

/// Removes a segment whose rows are all in the database.
fn remove_segment(path: &std::path::Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(segment = %path.display(), error = %e, "cannot remove a written spool segment; it will be replayed (harmlessly) at the next start");
    }
}

/// Inserts rows, retrying with backoff until the database takes them;
/// then their inferences are no longer `pending`. Returns how many votes
/// were left waiting for their answer.
async fn insert(store: &Store, rows: Vec<Row>, from: &str, pending: &Pending) -> usize {
    let mut inferences = Vec::new();
    let mut feedback = Vec::new();
    for row in rows {
        match row {
            Row::Inference(r) => inferences.push(*r),
            Row::Feedback(f) => feedback.push(f),
        }
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.insert_batch_counting(&inferences, &feedback).await {
            Ok(waiting) => {
                if let Ok(mut pending) = pending.lock() {
                    for r in &inferences {
                        pending.remove(&r.id);
                    }
                }
                return waiting;
            }
            Err(e) => {
                tracing::error!(error = %e, rows = inferences.len() + feedback.len(), from, retry_in_ms = backoff.as_millis() as u64, "cannot write rows; they are kept and retried");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FeedbackRecord, now_ms};
    use crate::store::Table;

    /// Through hundreds of small segments, each written file recycled for
    /// a later one: every click reaches the database once, the folder
    /// holds a few files at most, and a clean stop leaves it empty.
    #[tokio::test]
    async fn many_recycled_segments_lose_and_repeat_no_click() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("spool");
        let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let inference = uuid::Uuid::now_v7();
        store
            .insert_inferences(&[InferenceRecord {
                id: inference,
                created_at_ms: now_ms(),
                origin: crate::domain::Origin::default(),
                user_name: None,
                prompt: None,
                prompt_label: None,
                purpose: crate::domain::Purpose::Live,
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
                status: crate::domain::Status::Ok,
                error: None,
                finish_reason: None,
                attempts: vec![],
                params: crate::domain::Params::default(),
                input: vec![],
                output: None,
            }])
            .await
            .unwrap();
        // About 12 rows per 4 KiB segment.
        let spool = spool::Spool::open_sized(&folder, 4096).unwrap();
        let (recorder, task) = Recorder::start_spooled(store.clone(), Some(spool));
        let clicks = 1200;
        let mut most = 0;
        for i in 0..clicks {
            recorder
                .feedback(FeedbackRecord {
                    id: uuid::Uuid::now_v7(),
                    inference_id: inference,
                    created_at_ms: now_ms(),
                    kind: "rating".into(),
                    score: Some((i % 5 + 1) as f64),
                    comment: None,
                    user: Some(crate::domain::User::new("http", format!("U{i}"))),
                    source: "api".into(),
                })
                .await;
            if i % 50 == 0 {
                recorder.flush().await;
                most = most.max(fs::read_dir(&folder).unwrap().count());
            }
        }
        recorder.flush().await;
        assert_eq!(store.count(Table::Feedback).await.unwrap(), clicks);
        assert!(
            most <= READY + spool::SPARE + 3,
            "written segments are reused, not piled up: {most} files"
        );
        drop(recorder);
        task.await.unwrap();
        let left: Vec<_> = fs::read_dir(&folder).unwrap().collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
        store.close().await;
    }
}
