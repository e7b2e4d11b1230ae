//! The spool folder: segment files made ahead of use, the instance lock
//! that tells a running process's segments from a crashed one's, and the
//! reading of segments back.
//!
//! Batches are appended to the current segment until it holds
//! [`RESERVE`] bytes, then the next one is taken. Segments are made ahead
//! of use and filled with zeros (as PostgreSQL does with its WAL), so that
//! syncing a batch flushes only data: no new file, no directory entry, no
//! block allocation, no file size change.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{READY, RESERVE, Row, SEGMENT};

/// An empty (zero-filled) segment file whose name is already durable.
struct Ready {
    file: fs::File,
    path: PathBuf,
}

/// The segment batches are appended to, and how many bytes it holds.
struct Current {
    ready: Ready,
    len: u64,
}

/// What [`Spool::write`] did with a batch.
pub(super) struct Written {
    /// `Ok` once the rows are synced to disk; otherwise why not.
    pub result: std::io::Result<()>,
    /// The rows, to be put in the database either way.
    pub rows: Vec<Row>,
    /// A segment this write finished with: every batch in it was handed
    /// out before, so it can go once those are in the database.
    pub closed: Option<PathBuf>,
}

/// An exclusive lock on `INSTANCE.lock`, held while that instance's
/// segments are in use.
pub(in crate::store) struct Lock {
    /// Holding the open file holds the lock.
    _file: fs::File,
    path: PathBuf,
}

impl Lock {
    /// Releases the lock and removes its file.
    pub(in crate::store) fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// This process's side of the spool folder.
pub(super) struct Spool {
    dir: PathBuf,
    instance: String,
    ready: mpsc::Receiver<std::io::Result<Ready>>,
    /// The thread making segments ahead of use.
    maker: Option<std::thread::JoinHandle<()>>,
    lock: Option<Lock>,
    current: Option<Current>,
}

impl Spool {
    /// Takes a new instance id in `dir` (created if missing), locks it and
    /// starts making segment files ahead of use.
    pub(super) fn open(dir: &Path) -> std::io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let instance = uuid::Uuid::now_v7().simple().to_string();
        // Locked under a temporary name, then renamed: another process
        // never sees this lock file unlocked.
        let tmp = dir.join(format!("{instance}.lock.tmp"));
        let path = dir.join(format!("{instance}.lock"));
        let file = fs::File::create(&tmp)?;
        file.lock()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        let (tx, ready) = mpsc::channel(READY);
        let (thread_dir, thread_instance) = (dir.to_path_buf(), instance.clone());
        let maker = std::thread::Builder::new()
            .name("switchboard-spool".into())
            .spawn(move || make_ahead(&thread_dir, &thread_instance, tx))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            instance,
            ready,
            maker: Some(maker),
            lock: Some(Lock { _file: file, path }),
            current: None,
        })
    }

    /// Segments left by instances that have ended, oldest first, with
    /// their locks (to be removed once the segments are written).
    /// Unfinished `.tmp` files older than a minute are removed.
    pub(super) fn leftovers(&self) -> (Vec<PathBuf>, Vec<Lock>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return (Vec::new(), Vec::new());
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
        let mut ended: std::collections::HashMap<String, bool> = Default::default();
        let mut locks = Vec::new();
        segments.retain(|path| {
            let instance = instance_of(path);
            if instance == self.instance {
                return false;
            }
            *ended.entry(instance.clone()).or_insert_with(|| {
                let lock = self.dir.join(format!("{instance}.lock"));
                match fs::OpenOptions::new().write(true).open(&lock) {
                    // No lock file: an instance from before locks, or one
                    // whose lock was already removed.
                    Err(_) => true,
                    Ok(file) => match file.try_lock() {
                        Ok(()) => {
                            locks.push(Lock {
                                _file: file,
                                path: lock,
                            });
                            true
                        }
                        Err(_) => false,
                    },
                }
            })
        });
        (segments, locks)
    }

    /// Appends `rows` to the current segment and syncs its data, taking
    /// the next segment when the current one is full (or failed).
    pub(super) async fn write(&mut self, rows: Vec<Row>) -> Written {
        let mut closed = None;
        let full = self.current.as_ref().is_none_or(|c| c.len >= RESERVE);
        // A full segment is left for the next one made ahead; if none is
        // ready yet (a burst outran the maker), the full one grows rather
        // than keep the clicks waiting.
        let next = match (&self.current, full) {
            (_, false) => None,
            (None, true) => Some(self.ready.recv().await),
            (Some(_), true) => match self.ready.try_recv() {
                Ok(ready) => Some(Some(ready)),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            },
        };
        if let Some(next) = next {
            let ready = match next {
                Some(Ok(ready)) => Ok(ready),
                // The helper thread failed or stopped: make one here.
                Some(Err(_)) | None => {
                    let (dir, instance) = (self.dir.clone(), self.instance.clone());
                    tokio::task::spawn_blocking(move || make(&dir, &instance, next_seq()))
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                }
            };
            match ready {
                Ok(ready) => {
                    closed = self.finish();
                    self.current = Some(Current { ready, len: 0 });
                }
                Err(e) if self.current.is_none() => {
                    return Written {
                        result: Err(e),
                        rows,
                        closed,
                    };
                }
                // The full segment still takes this batch.
                Err(_) => {}
            }
        }
        let Some(current) = self.current.take() else {
            return Written {
                result: Err(std::io::Error::other("no spool segment")),
                rows,
                closed,
            };
        };
        // Encoding, file I/O and fsync off the async workers.
        let joined = tokio::task::spawn_blocking(move || {
            let mut current = current;
            let result = append(&mut current, &rows);
            (result, rows, current)
        })
        .await;
        match joined {
            Ok((result, rows, current)) => {
                match result {
                    Ok(()) => self.current = Some(current),
                    // A failed write may have left a partial line: the
                    // segment is finished here (readers skip such lines).
                    Err(_) => closed = closed.or(Some(current.ready.path)),
                }
                Written {
                    result,
                    rows,
                    closed,
                }
            }
            Err(e) => Written {
                result: Err(std::io::Error::other(e)),
                rows: Vec::new(),
                closed,
            },
        }
    }

    /// Ends the current segment, if any, returning its path: no batch is
    /// added to it after this.
    pub(super) fn finish(&mut self) -> Option<PathBuf> {
        self.current.take().map(|c| c.ready.path)
    }
}

/// Writes `rows` as JSON lines at the end of `current`'s text and syncs
/// the data.
fn append(current: &mut Current, rows: &[Row]) -> std::io::Result<()> {
    let mut text = Vec::with_capacity(rows.len() * 512);
    for row in rows {
        serde_json::to_writer(&mut text, row).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    current.ready.file.write_all_at(&text, current.len)?;
    current.ready.file.sync_data()?;
    current.len += text.len() as u64;
    Ok(())
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Segments made ahead and never used are empty. The thread removes
        // the one it is making once it finds the channel closed; waiting
        // for it leaves the folder clean.
        self.ready.close();
        while let Ok(ready) = self.ready.try_recv() {
            if let Ok(ready) = ready {
                let _ = fs::remove_file(&ready.path);
            }
        }
        if let Some(maker) = self.maker.take() {
            let _ = maker.join();
        }
        if let Some(lock) = self.lock.take() {
            lock.remove();
        }
    }
}

/// The next segment number of this process; segments sort in this order.
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Keeps [`READY`] segment files made until the spool is dropped.
fn make_ahead(dir: &Path, instance: &str, tx: mpsc::Sender<std::io::Result<Ready>>) {
    loop {
        let made = make(dir, instance, next_seq());
        let failed = made.is_err();
        if let Err(mpsc::error::SendError(Ok(unused))) = tx.blocking_send(made) {
            let _ = fs::remove_file(&unused.path);
            return;
        }
        if tx.is_closed() {
            return;
        }
        if failed {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Creates segment `seq`, fills its [`RESERVE`] bytes with zeros and
/// makes it and its name durable.
fn make(dir: &Path, instance: &str, seq: u64) -> std::io::Result<Ready> {
    let path = dir.join(format!("{instance}-{seq:012}.{SEGMENT}"));
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Synced a piece at a time: one large flush would hold up the
    // spooler's small ones queued behind it at the disk.
    let zeros = vec![0u8; 64 * 1024];
    let mut left = RESERVE;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        file.sync_data()?;
        left -= n as u64;
    }
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Ready { file, path })
}

/// Makes the folder's entries durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The instance that wrote a segment: its name up to the last `-`.
fn instance_of(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    stem.rsplit_once('-')
        .map_or(stem, |(instance, _)| instance)
        .to_string()
}

/// Reads a segment's rows. The text ends at the first NUL byte (space
/// reserved and never written). A line that does not parse is reported
/// and skipped: it cannot have been acknowledged, since rows are
/// acknowledged only after their segment's data is synced.
pub(super) fn read_segment(path: &Path) -> std::io::Result<Vec<Row>> {
    let bytes = fs::read(path)?;
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
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
