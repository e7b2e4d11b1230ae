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
//! pile up on disk and are written in order when it returns; at start,
//! segments left by a crashed process are replayed first.
//!
//! Memory stays bounded however long an outage lasts: at most
//! [`MEMORY_ROWS`] rows wait for the database in memory. Past that, the
//! spooler stops handing the rest of the current segment's rows over (they
//! are on disk already) and the writer reads the whole segment back once it
//! is closed: when it is full, at a flush, or as soon as the writer has
//! caught up. Rows already written from memory are skipped by their ids,
//! and no row of a later segment is written before the segment's own, so
//! the order holds (a changed vote ends as the later vote). Rows have fixed ids and inserts skip ids already stored, so a
//! replay never duplicates anything.
//!
//! Rows nobody waits for (inference rows) are committed in groups: the
//! spooler lets them gather for up to [`GROUP`] before one write and one
//! `fdatasync` take them all, so a busy gateway syncs a few dozen times a
//! second rather than once or twice per answer. A row that someone waits
//! for (a feedback click, a flush) wakes the spooler at once and takes
//! whatever has gathered with it. A power cut can lose at most the last
//! [`GROUP`] of inference rows, none of them acknowledged to anyone; a
//! process crash loses none that reached the spool.
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
/// How long rows nobody waits for may gather before they are synced.
const GROUP: Duration = Duration::from_millis(20);
/// Rows the writer puts in one transaction, from several segments.
const WRITE_BATCH: usize = 4096;
/// Rows that may wait for the spooler before callers wait too.
const QUEUE: usize = 16_384;
/// Rows that may wait for the database in memory; past it they are read
/// back from the spool (or, without a spool, the callers wait).
pub const MEMORY_ROWS: usize = 4096;
/// Unwritten inferences whose audience is remembered, at most.
const PENDING_AUDIENCES: usize = 65_536;
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
    /// The writer has caught up: a segment whose rows it must read back
    /// can be closed now rather than when it is full.
    Seal,
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
    /// before this, so once those are written it can go. `reread`: some of
    /// its rows were not handed over in memory; read it all back and write
    /// it first.
    Close {
        path: PathBuf,
        reread: bool,
    },
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
    memory: Arc<Memory>,
    /// The spooler's thread, woken when a caller waits (see [`GROUP`]).
    spooler: Arc<std::sync::OnceLock<std::thread::Thread>>,
}

/// Rows handed to the writer in memory and not yet in the database, and
/// whether some of the current segment's were left on disk instead.
struct Memory {
    rows: std::sync::atomic::AtomicUsize,
    cap: usize,
    spilled: std::sync::atomic::AtomicBool,
    /// Tells a spooler without a spool that the writer took some rows.
    drained: tokio::sync::Notify,
}

impl Memory {
    fn new(cap: usize) -> Memory {
        Memory {
            rows: Default::default(),
            cap: cap.max(1),
            spilled: Default::default(),
            drained: tokio::sync::Notify::new(),
        }
    }

    fn held(&self) -> usize {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self, n: usize) {
        self.rows.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn written(&self, n: usize) {
        self.rows.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
        self.drained.notify_waiters();
    }
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
        Recorder::start_bounded(store, spool, MEMORY_ROWS)
    }

    /// [`Recorder::start_spooled`], holding at most `memory_rows` rows in
    /// memory for the database.
    fn start_bounded(
        store: Store,
        spool: Option<spool::Spool>,
        memory_rows: usize,
    ) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let memory = Arc::new(Memory::new(memory_rows));
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
        let writer = tokio::spawn(write(
            store,
            work_rx,
            recycler,
            pending.clone(),
            Arc::clone(&memory),
            tx.downgrade(),
        ));
        let latency = Arc::new(Latency::default());
        let timings = latency.clone();
        // The spooler has a thread of its own: a batch's write and sync
        // then cost no hand-offs between the async workers and a blocking
        // thread, which on a busy machine cost as much as the sync itself.
        let held = Arc::clone(&memory);
        let waker = Arc::new(std::sync::OnceLock::new());
        let thread = Arc::clone(&waker);
        let spooler = match spool {
            Some(spool) => tokio::task::spawn_blocking(move || {
                let _ = thread.set(std::thread::current());
                Some(spool_rows(spool, rx, work_tx, &timings.sync, &held))
            }),
            None => tokio::spawn(async move {
                pass_rows(rx, work_tx, &held).await;
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
                memory,
                spooler: waker,
            },
            task,
        )
    }

    /// Queues an inference row (written soon after; the caller does not wait).
    pub async fn inference(&self, record: InferenceRecord) {
        // Bounded too: past the cap a vote on a fresh answer is taken
        // unchecked and checked when it is written.
        if let Ok(mut pending) = self.pending.lock()
            && pending.len() < PENDING_AUDIENCES
        {
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
        let sent = self
            .tx
            .send(Message::Row(Row::Feedback(record), Some(done)))
            .await;
        // The click waits: the spooler syncs what has gathered now.
        self.wake();
        if sent.is_err() || wait.await.is_err() {
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

    /// Rows held in memory for the database (at most about
    /// [`MEMORY_ROWS`], however long the database is away).
    pub fn held_in_memory(&self) -> usize {
        self.memory.held()
    }

    /// Waits until every row queued before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            self.wake();
            let _ = wait.await;
        }
    }

    /// Has the spooler write what has gathered now: someone waits for it.
    fn wake(&self) {
        if let Some(thread) = self.spooler.get() {
            thread.unpark();
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
    memory: &Memory,
) -> spool::Spool {
    let mut batch = Batch::default();
    // Whether rows of the current segment were left on disk.
    let mut spilled = false;
    while let Some(first) = rx.blocking_recv() {
        batch.gather(first, &mut rx);
        // Nobody waits for these rows yet: let more join them, until
        // someone does (and wakes this thread) or the group is full.
        let deadline = Instant::now() + GROUP;
        while batch.may_wait() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
            match rx.try_recv() {
                Ok(next) => batch.gather(next, &mut rx),
                Err(mpsc::error::TryRecvError::Empty) => {}
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        batch.pass(Some((&mut spool, synced)), &work, memory, &mut spilled);
    }
    if let Some(closed) = spool.finish() {
        let _ = work.send(Work::Close {
            path: closed,
            reread: spilled,
        });
    }
    spool
}

/// Without a spool: batches go to the writer from memory, acknowledged at
/// once (no thread of its own: nothing here blocks). Past the memory cap
/// it waits for the writer, and so do the callers.
async fn pass_rows(
    mut rx: mpsc::Receiver<Message>,
    work: mpsc::UnboundedSender<Work>,
    memory: &Memory,
) {
    let mut batch = Batch::default();
    let mut spilled = false;
    while let Some(first) = rx.recv().await {
        batch.gather(first, &mut rx);
        while memory.held() >= memory.cap && !work.is_closed() {
            let drained = memory.drained.notified();
            if memory.held() < memory.cap {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), drained).await;
        }
        batch.pass(None, &work, memory, &mut spilled);
    }
}

/// The rows, acknowledgements and flushes taken from the queue at once.
#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    acks: Vec<oneshot::Sender<()>>,
    flushes: Vec<oneshot::Sender<()>>,
    /// A seal was asked for.
    seal: bool,
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
                Message::Seal => self.seal = true,
            }
            if self.rows.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
    }

    /// Whether the batch may wait for more rows: nobody waits for it and
    /// it is not full.
    fn may_wait(&self) -> bool {
        self.acks.is_empty() && self.flushes.is_empty() && !self.seal && self.rows.len() < BATCH
    }

    /// Makes the rows durable in `spool` (when there is one, counting the
    /// time in `synced`), acknowledges them and hands them to the writer
    /// (in memory while under the cap; past it, and for the rest of that
    /// segment, left on disk for the writer to read back), then the
    /// flushes. `spilled`: whether the current segment has rows on disk only.
    fn pass(
        &mut self,
        mut spool: Option<(&mut spool::Spool, &Timings)>,
        work: &mpsc::UnboundedSender<Work>,
        memory: &Memory,
        spilled: &mut bool,
    ) {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            let rows = match spool.as_mut() {
                Some((spool, synced)) => {
                    let started = Instant::now();
                    let written = spool.write(rows);
                    if written.result.is_ok() {
                        synced.record(started.elapsed());
                    }
                    if let Some(closed) = written.closed {
                        let _ = work.send(Work::Close {
                            path: closed,
                            reread: std::mem::take(spilled),
                        });
                    }
                    match written.result {
                        Err(e) => {
                            tracing::error!(error = %e, "cannot write to the spool; keeping these rows in memory until the database takes them");
                            Some(written.rows)
                        }
                        Ok(()) if *spilled || memory.held() + written.rows.len() > memory.cap => {
                            if !*spilled {
                                tracing::warn!(
                                    held = memory.held(),
                                    "the database is behind: rows wait in the spool rather than in memory"
                                );
                            }
                            *spilled = true;
                            memory
                                .spilled
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                            None
                        }
                        Ok(()) => Some(written.rows),
                    }
                }
                None => Some(rows),
            };
            if let Some(rows) = rows {
                memory.take(rows.len());
                let _ = work.send(Work::Batch {
                    replay: None,
                    rows: Some(rows),
                });
            }
            for ack in self.acks.drain(..) {
                let _ = ack.send(());
            }
        }
        // A flush (or the writer, caught up) closes a segment that has rows
        // on disk only, so that they are written now.
        let seal = std::mem::take(&mut self.seal) || !self.flushes.is_empty();
        if seal
            && *spilled
            && let Some((spool, _)) = spool
            && let Some(closed) = spool.finish()
        {
            *spilled = false;
            let _ = work.send(Work::Close {
                path: closed,
                reread: true,
            });
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
    memory: Arc<Memory>,
    spooler: mpsc::WeakSender<Message>,
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
                // Caught up while rows wait on disk only: have their segment
                // closed and read back now rather than when it fills.
                if work.is_empty()
                    && memory
                        .spilled
                        .swap(false, std::sync::atomic::Ordering::Relaxed)
                    && let Some(spooler) = spooler.upgrade()
                    && spooler.try_send(Message::Seal).is_err()
                {
                    // The queue is full, so rows are coming: try again then.
                    memory
                        .spilled
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
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
            Work::Close { path, reread } => {
                if reread {
                    match spool::read_segment(&path) {
                        Ok(rows) => {
                            let from = path.display().to_string();
                            insert(&store, rows, &from, &audiences).await;
                        }
                        Err(e) => {
                            tracing::error!(segment = %path.display(), error = %e, "cannot read a spool segment back; it is left in place and replayed at the next start");
                            continue;
                        }
                    }
                }
                match &recycler {
                    Some(r) => r.recycle(path),
                    None => remove_segment(&path),
                }
            }
            Work::Batch {
                replay: path,
                rows: held,
            } => {
                let mut next = Some((path, held));
                let mut paths = Vec::new();
                let mut rows = Vec::new();
                let mut in_memory = 0;
                while let Some((path, held)) = next.take() {
                    let read = match (held, &path) {
                        (Some(held), _) => {
                            in_memory += held.len();
                            Ok(held)
                        }
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
                let waiting = insert(&store, rows, &from, &audiences).await;
                memory.written(in_memory);
                if waiting > 0 {
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

    /// Stores one answer to vote on; its id.
    async fn one_inference(store: &Store) -> Uuid {
        let row = InferenceRecord::sample();
        let inference = row.id;
        store.insert_inferences(&[row]).await.unwrap();
        inference
    }

    /// Answers arriving a millisecond apart are synced to the spool in
    /// groups, not one sync each; a click that follows is acknowledged
    /// and every row reaches the database.
    #[tokio::test]
    async fn answers_are_synced_in_groups_and_a_click_still_gets_its_ack() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let spool = spool::Spool::open(&dir.path().join("spool")).unwrap();
        let (recorder, task) = Recorder::start_spooled(store.clone(), Some(spool));
        let answers: u64 = 60;
        let mut last = None;
        for _ in 0..answers {
            let row = InferenceRecord::sample();
            last = Some(row.id);
            recorder.inference(row).await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let synced = recorder.latency().sync.count();
        assert!(
            synced < answers / 2,
            "{synced} syncs for {answers} answers: they were not grouped"
        );
        let click = tokio::time::timeout(
            Duration::from_secs(10),
            recorder.feedback(click(last.unwrap(), "U1", 1.0)),
        )
        .await;
        assert!(click.is_ok(), "the click was acknowledged");
        assert_eq!(recorder.latency().ack.count(), 1);
        recorder.flush().await;
        assert_eq!(
            store.count(Table::Inferences).await.unwrap(),
            answers as i64
        );
        assert_eq!(store.count(Table::Feedback).await.unwrap(), 1);
        drop(recorder);
        task.await.unwrap();
        store.close().await;
    }

    fn click(inference: Uuid, user: &str, score: f64) -> FeedbackRecord {
        FeedbackRecord {
            id: uuid::Uuid::now_v7(),
            inference_id: inference,
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(score),
            comment: None,
            user: Some(crate::domain::User::new("http", user)),
            source: "api".into(),
        }
    }

    /// The database away for thousands of clicks: memory holds no more
    /// than its cap (the rest waits in the spool), every acknowledged click
    /// is written once the database is back, and a vote changed during the
    /// outage ends as the later vote.
    #[tokio::test]
    async fn a_long_outage_holds_memory_to_its_cap_and_loses_no_click() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let inference = one_inference(&store).await;
        let spool = spool::Spool::open_sized(&dir.path().join("spool"), 16 * 1024).unwrap();
        let cap = 64;
        let (recorder, task) = Recorder::start_bounded(store.clone(), Some(spool), cap);
        // The database refuses every feedback row.
        sqlx::query("ALTER TABLE feedback RENAME TO feedback_away")
            .execute(&store.pool)
            .await
            .unwrap();
        let clicks = 1500;
        recorder.feedback(click(inference, "changer", 1.0)).await;
        let mut most = 0;
        for i in 0..clicks {
            recorder
                .feedback(click(inference, &format!("U{i}"), 1.0))
                .await;
            most = most.max(recorder.held_in_memory());
        }
        recorder.feedback(click(inference, "changer", 0.0)).await;
        assert!(
            most <= cap + BATCH,
            "{most} rows held in memory with a cap of {cap}"
        );
        assert!(most > 0, "rows did wait in memory first");
        assert_eq!(store.count(Table::Feedback).await.ok(), None, "still away");

        sqlx::query("ALTER TABLE feedback_away RENAME TO feedback")
            .execute(&store.pool)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), recorder.flush())
            .await
            .expect("written once the database is back");
        assert_eq!(
            store.count(Table::Feedback).await.unwrap(),
            clicks + 2,
            "every click once (the changed vote's first kept as history)"
        );
        assert_eq!(
            store
                .current_vote(
                    &inference.to_string(),
                    &crate::domain::User::new("http", "changer")
                )
                .await
                .unwrap(),
            Some(Some(0.0)),
            "the later vote won"
        );
        assert_eq!(recorder.held_in_memory(), 0);
        drop(recorder);
        task.await.unwrap();
        store.close().await;
    }

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
        let inference = one_inference(&store).await;
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
