//! The recorder takes inference and feedback rows from the request path
//! and writes them in batches off the hot path, without losing any.
//!
//! Two tasks share the work. The *spooler* gathers whatever rows are
//! queued (up to a batch), appends them to a segment file in the spool
//! folder, fsyncs it and only then acknowledges the callers that wait
//! (feedback clicks): from that moment a crash cannot lose them. The
//! *writer* then puts each segment into the database in order, in one
//! transaction, and deletes the file. If the database is down or slow,
//! segments pile up on disk (not in memory) and are replayed in order when
//! it returns; at start, segments left by a crash are replayed first. Rows
//! have fixed ids and inserts skip ids already stored, so a replay never
//! duplicates anything.
//!
//! Without a spool folder (tests, or a folder that cannot be written) the
//! rows are handed to the writer in memory: still batched and retried, but
//! not crash-safe; a warning says so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{FeedbackRecord, InferenceRecord, Store, now_ms};

/// Rows in one spool segment at most.
const BATCH: usize = 512;
/// Rows the writer puts in one transaction, from several segments.
const WRITE_BATCH: usize = 4096;
/// Rows that may wait for the spooler before callers wait too.
const QUEUE: usize = 16_384;
/// Segment files end with this; a file being written ends with `.tmp`.
const SEGMENT: &str = "jsonl";

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
    Segment(PathBuf),
    Rows(Vec<Row>),
    Flush(oneshot::Sender<()>),
}

/// A handle to the background writer. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
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
        let spool = spool.and_then(|dir| match fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot create the spool folder; rows are kept in memory until written, and a crash can lose them");
                None
            }
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        if let Some(dir) = &spool {
            for segment in leftover_segments(dir) {
                tracing::info!(segment = %segment.display(), "replaying rows spooled before a restart");
                let _ = work_tx.send(Work::Segment(segment));
            }
        }
        let writer = tokio::spawn(write(store, work_rx));
        let task = tokio::spawn(async move {
            spool_rows(spool, rx, work_tx).await;
            let _ = writer.await;
        });
        (Recorder { tx }, task)
    }

    /// Queues an inference row (written soon after; the caller does not wait).
    pub async fn inference(&self, record: InferenceRecord) {
        if self
            .tx
            .send(Message::Row(Row::Inference(Box::new(record)), None))
            .await
            .is_err()
        {
            tracing::error!("the recorder has stopped; an inference row was not written");
        }
    }

    /// Records a feedback row, returning once it is durable (in the spool,
    /// fsync'd), so that acknowledging the user's click is safe.
    pub async fn feedback(&self, record: FeedbackRecord) {
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Message::Row(Row::Feedback(record), Some(done)))
            .await
            .is_err()
            || wait.await.is_err()
        {
            tracing::error!("the recorder has stopped; a feedback row was not written");
        }
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
async fn spool_rows(
    spool: Option<PathBuf>,
    mut rx: mpsc::Receiver<Message>,
    work: mpsc::UnboundedSender<Work>,
) {
    let mut rows = Vec::new();
    let mut acks = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(row, ack) => {
                    rows.push(row);
                    acks.extend(ack);
                }
                Message::Flush(done) => flushes.push(done),
            }
            if rows.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            let batch = std::mem::take(&mut rows);
            let item = match &spool {
                Some(dir) => {
                    let dir = dir.clone();
                    // File I/O and fsync off the async workers.
                    match tokio::task::spawn_blocking(move || {
                        write_segment(&dir, &batch).map_err(|e| (e, batch))
                    })
                    .await
                    {
                        Ok(Ok(path)) => Work::Segment(path),
                        Ok(Err((e, batch))) => {
                            tracing::error!(error = %e, "cannot write to the spool; keeping these rows in memory until the database takes them");
                            Work::Rows(batch)
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "the spool task failed; rows lost");
                            continue;
                        }
                    }
                }
                None => Work::Rows(batch),
            };
            let _ = work.send(item);
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
        for done in flushes.drain(..) {
            let _ = work.send(Work::Flush(done));
        }
    }
}

/// Writes the database side in order. Segments that are waiting are
/// taken together (up to [`WRITE_BATCH`] rows) into one transaction, so a
/// backlog drains in large batches.
async fn write(store: Store, mut work: mpsc::UnboundedReceiver<Work>) {
    let mut pending: Option<Work> = None;
    loop {
        let item = match pending.take() {
            Some(item) => item,
            None => match work.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        match item {
            Work::Flush(done) => {
                let _ = done.send(());
            }
            Work::Rows(rows) => insert(&store, rows, "memory").await,
            Work::Segment(first) => {
                let mut paths = vec![first];
                let mut rows = Vec::new();
                loop {
                    let path = &paths[paths.len() - 1];
                    match read_segment(path) {
                        Ok(mut r) => rows.append(&mut r),
                        Err(e) => {
                            tracing::error!(segment = %path.display(), error = %e, "cannot read a spool segment; it is left in place");
                            paths.pop();
                        }
                    }
                    if rows.len() >= WRITE_BATCH {
                        break;
                    }
                    match work.try_recv() {
                        Ok(Work::Segment(next)) => paths.push(next),
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let from = paths
                    .first()
                    .map_or(String::new(), |p| p.display().to_string());
                insert(&store, rows, &from).await;
                for path in paths {
                    if let Err(e) = fs::remove_file(&path)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(segment = %path.display(), error = %e, "cannot remove a written spool segment; it will be replayed (harmlessly) at the next start");
                    }
                }
            }
        }
    }
}

/// Inserts rows, retrying with backoff until the database takes them.
async fn insert(store: &Store, rows: Vec<Row>, from: &str) {
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
        let result = match store.insert_inferences(&inferences).await {
            Ok(()) if feedback.is_empty() => Ok(()),
            Ok(()) => store.insert_feedback(&feedback).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, rows = inferences.len() + feedback.len(), from, retry_in_ms = backoff.as_millis() as u64, "cannot write rows; they are kept and retried");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Names sort in write order within a process; the pid keeps processes
/// sharing a data folder apart.
fn segment_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:013}-{:08}-{:010}",
        now_ms(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes rows as one JSON line each to `NAME.tmp`, fsyncs it, renames it
/// to `NAME.jsonl` and fsyncs the folder: the segment exists whole or not
/// at all.
fn write_segment(dir: &Path, rows: &[Row]) -> std::io::Result<PathBuf> {
    let name = segment_name();
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(format!("{name}.{SEGMENT}"));
    let mut text = Vec::with_capacity(rows.len() * 512);
    for row in rows {
        serde_json::to_writer(&mut text, row).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&text)?;
    file.sync_data()?;
    drop(file);
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Reads a segment's rows. A line that does not parse is reported and
/// skipped (it cannot have been acknowledged: segments are renamed into
/// place only after their fsync).
fn read_segment(path: &Path) -> std::io::Result<Vec<Row>> {
    let text = fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            Err(e) => {
                tracing::error!(segment = %path.display(), line = i + 1, error = %e, "skipping a spooled row that does not parse")
            }
        }
    }
    Ok(rows)
}

/// Segments a previous run left behind, oldest first. Unfinished `.tmp`
/// files older than a minute were never acknowledged and are removed
/// (younger ones may belong to another process sharing the folder).
fn leftover_segments(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut segments = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        match path.extension().and_then(|e| e.to_str()) {
            Some(SEGMENT) => segments.push(path),
            Some("tmp") => {
                let stale = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(60));
                if stale {
                    let _ = fs::remove_file(&path);
                }
            }
            _ => {}
        }
    }
    segments.sort();
    segments
}
