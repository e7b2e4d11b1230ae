//! The spool folder: segment files made ahead of use, the instance lock
//! that tells a running process's segments from a crashed one's, and the
//! reading of segments back.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{READY, RESERVE, Row, SEGMENT};

/// An empty segment file whose name is already durable.
struct Ready {
    file: fs::File,
    path: PathBuf,
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

    /// Writes `rows` to a segment made ahead of use and syncs its data;
    /// returns the segment's path. On failure the rows come back.
    pub(super) async fn write(
        &mut self,
        rows: Vec<Row>,
    ) -> Result<(PathBuf, Vec<Row>), (std::io::Error, Vec<Row>)> {
        let ready = self.ready.recv().await;
        let (dir, instance) = (self.dir.clone(), self.instance.clone());
        // File I/O and fsync off the async workers.
        let written = tokio::task::spawn_blocking(move || {
            let ready = match ready {
                Some(Ok(ready)) => Ok(ready),
                // The helper thread failed or stopped: make one here.
                Some(Err(_)) | None => make(&dir, &instance, next_seq()),
            };
            let result = ready.and_then(|Ready { mut file, path }| {
                let mut text = Vec::with_capacity(rows.len() * 512);
                for row in &rows {
                    serde_json::to_writer(&mut text, row).map_err(std::io::Error::other)?;
                    text.push(b'\n');
                }
                file.write_all(&text)?;
                file.sync_data()?;
                Ok(path)
            });
            (result, rows)
        })
        .await;
        match written {
            Ok((Ok(path), rows)) => Ok((path, rows)),
            Ok((Err(e), rows)) => Err((e, rows)),
            Err(e) => Err((std::io::Error::other(e), Vec::new())),
        }
    }
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

/// Creates segment `seq`, reserves its space and makes its name durable.
fn make(dir: &Path, instance: &str, seq: u64) -> std::io::Result<Ready> {
    let path = dir.join(format!("{instance}-{seq:012}.{SEGMENT}"));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    reserve(&file, RESERVE)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Ready { file, path })
}

/// Reserves `len` bytes so that writing them changes no allocation.
#[cfg(target_os = "linux")]
fn reserve(file: &fs::File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` lives.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        // A file system without the call: the segment grows as written.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Elsewhere the segment grows as it is written.
#[cfg(not(target_os = "linux"))]
fn reserve(_file: &fs::File, _len: u64) -> std::io::Result<()> {
    Ok(())
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
