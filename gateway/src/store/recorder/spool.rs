//! The spool folder: segment files made ahead of use, the instance lock
//! that tells a running process's segments from a crashed one's, and the
//! reading of segments back.
//!
//! Batches are appended to the current segment until it holds
//! [`RESERVE`] bytes, then the next one is taken. Segments are made ahead
//! of use and filled with zeros (as PostgreSQL does with its WAL), so that
//! syncing a batch flushes only data: no new file, no directory entry, no
//! block allocation, no file size change.
//!
//! Once a segment's rows are in the database its file is recycled, again
//! as PostgreSQL does: renamed and written over from the start, so that a
//! steady load writes each row to the disk once, not a row and as many
//! zeros. What is new in a recycled file is told from what is old by the
//! line format, `NUMBER HASH JSON`: `NUMBER` is the segment's number (hex), the
//! same on every line written since the file was taken, and `HASH` the
//! FNV-1a hash of `JSON` (hex). A segment's rows are its lines from the
//! start for as long as each has the first line's `NUMBER` and its hash
//! holds; the first line that does not ends them (old rows, zeros, or a
//! write torn by a crash, which was never acknowledged). Since the number
//! is in the text, a rename lost in a crash cannot misplace rows, and
//! leftovers are replayed in the order of their first line's number.
//! Lines that open with `{` are the format before this one (text up to
//! the first NUL), still read.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{READY, RESERVE, Row, SEGMENT};

/// Written segment files kept for reuse at most; more are removed.
pub(super) const SPARE: usize = 4;

/// A segment file ready to take batches from its start: zero-filled with a
/// durable name, or recycled (its old lines end at the first new one).
struct Ready {
    file: fs::File,
    path: PathBuf,
    /// The segment's number, written on each of its lines.
    number: u64,
}

/// Takes written segments back for reuse. Cheap to clone.
#[derive(Clone)]
pub(super) struct Recycler {
    spare: Arc<Mutex<Vec<PathBuf>>>,
}

impl Recycler {
    /// `path`'s rows are all in the database: keep the file for a later
    /// segment, or remove it when enough are kept.
    pub(super) fn recycle(&self, path: PathBuf) {
        let kept = match self.spare.lock() {
            Ok(mut spare) if spare.len() < SPARE => {
                spare.push(path.clone());
                true
            }
            _ => false,
        };
        if !kept {
            super::remove_segment(&path);
        }
    }

    fn take(&self) -> Option<PathBuf> {
        self.spare.lock().ok()?.pop()
    }

    /// Removes the kept files.
    fn clear(&self) {
        if let Ok(mut spare) = self.spare.lock() {
            for path in spare.drain(..) {
                super::remove_segment(&path);
            }
        }
    }
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
    recycler: Recycler,
    /// Bytes a segment takes before the next one is used.
    reserve: u64,
}

impl Spool {
    /// Takes a new instance id in `dir` (created if missing), locks it and
    /// starts making segment files ahead of use.
    pub(super) fn open(dir: &Path) -> std::io::Result<Spool> {
        Spool::open_sized(dir, RESERVE)
    }

    /// [`Spool::open`] with segments of `reserve` bytes.
    pub(super) fn open_sized(dir: &Path, reserve: u64) -> std::io::Result<Spool> {
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
        let recycler = Recycler {
            spare: Arc::default(),
        };
        let (thread_dir, thread_instance, spare) =
            (dir.to_path_buf(), instance.clone(), recycler.clone());
        let maker = std::thread::Builder::new()
            .name("switchboard-spool".into())
            .spawn(move || make_ahead(&thread_dir, &thread_instance, reserve, &spare, tx))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            instance,
            ready,
            maker: Some(maker),
            lock: Some(Lock { _file: file, path }),
            current: None,
            recycler,
            reserve,
        })
    }

    /// Where written segments go back for reuse.
    pub(super) fn recycler(&self) -> Recycler {
        self.recycler.clone()
    }

    /// Segments left by instances that have ended, in the order they were
    /// written (by instance, then by the number in their text), with
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
        let mut keyed: Vec<(String, u64, PathBuf)> = segments
            .into_iter()
            .map(|path| (instance_of(&path), first_gen(&path), path))
            .collect();
        keyed.sort();
        let mut segments: Vec<PathBuf> = keyed.into_iter().map(|(_, _, p)| p).collect();
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
    /// the next segment when the current one is full (or failed). Blocks:
    /// it runs on the spooler's own thread.
    pub(super) fn write(&mut self, rows: Vec<Row>) -> Written {
        let mut closed = None;
        let full = self.current.as_ref().is_none_or(|c| c.len >= self.reserve);
        // A full segment is left for the next one made ahead; if none is
        // ready yet (a burst outran the maker), the full one grows rather
        // than keep the clicks waiting.
        let next = match (&self.current, full) {
            (_, false) => None,
            (None, true) => Some(self.ready.blocking_recv()),
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
                Some(Err(_)) | None => make(&self.dir, &self.instance, next_seq(), self.reserve),
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
        let Some(current) = &mut self.current else {
            return Written {
                result: Err(std::io::Error::other("no spool segment")),
                rows,
                closed,
            };
        };
        let result = append(current, &rows);
        if result.is_err() {
            // A failed write may have left a partial line: the segment is
            // finished here (its rows end before that line).
            closed = closed.or(self.finish());
        }
        Written {
            result,
            rows,
            closed,
        }
    }

    /// Ends the current segment, if any, returning its path: no batch is
    /// added to it after this.
    pub(super) fn finish(&mut self) -> Option<PathBuf> {
        self.current.take().map(|c| c.ready.path)
    }
}

/// Writes `rows` as lines at the end of `current`'s text and syncs the
/// data.
fn append(current: &mut Current, rows: &[Row]) -> std::io::Result<()> {
    let mut text = Vec::with_capacity(rows.len() * 512);
    let mut json = Vec::with_capacity(512);
    for row in rows {
        json.clear();
        serde_json::to_writer(&mut json, row).map_err(std::io::Error::other)?;
        write!(text, "{:x} {:016x} ", current.ready.number, fnv1a(&json))?;
        text.extend_from_slice(&json);
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
        self.recycler.clear();
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

/// Keeps [`READY`] segment files ready until the spool is dropped:
/// recycled ones when there are, new ones otherwise.
fn make_ahead(
    dir: &Path,
    instance: &str,
    reserve: u64,
    spare: &Recycler,
    tx: mpsc::Sender<std::io::Result<Ready>>,
) {
    loop {
        let seq = next_seq();
        let made = match spare.take() {
            Some(old) => reuse(dir, instance, seq, &old).or_else(|e| {
                tracing::debug!(segment = %old.display(), error = %e, "cannot recycle a spool segment; making a new one");
                super::remove_segment(&old);
                make(dir, instance, seq, reserve)
            }),
            None => make(dir, instance, seq, reserve),
        };
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

/// Renames the written segment `old` to segment `seq`, to be written over
/// from its start. Neither the rename nor anything else needs syncing:
/// the old lines are in the database, and the new ones carry `seq`.
fn reuse(dir: &Path, instance: &str, seq: u64, old: &Path) -> std::io::Result<Ready> {
    let path = dir.join(format!("{instance}-{seq:012}.{SEGMENT}"));
    fs::rename(old, &path)?;
    let file = fs::OpenOptions::new().read(true).write(true).open(&path)?;
    Ok(Ready {
        file,
        path,
        number: seq,
    })
}

/// Creates segment `seq`, fills its `reserve` bytes with zeros and
/// makes it and its name durable.
fn make(dir: &Path, instance: &str, seq: u64, reserve: u64) -> std::io::Result<Ready> {
    let path = dir.join(format!("{instance}-{seq:012}.{SEGMENT}"));
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Synced a piece at a time: one large flush would hold up the
    // spooler's small ones queued behind it at the disk.
    let zeros = vec![0u8; 64 * 1024];
    let mut left = reserve;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        file.sync_data()?;
        left -= n as u64;
    }
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Ready {
        file,
        path,
        number: seq,
    })
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

/// FNV-1a, 64 bits: tells a whole line from a torn one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A line's number, hash and JSON, if it is in the current format.
fn split_line(line: &[u8]) -> Option<(u64, u64, &[u8])> {
    let mut parts = line.splitn(3, |b| *b == b' ');
    let hex = |p: &[u8]| u64::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok();
    let number = hex(parts.next()?)?;
    let hash = hex(parts.next()?)?;
    Some((number, hash, parts.next()?))
}

/// The number on a segment's first line; for a segment in the earlier
/// format (or an empty one), the number in its name.
fn first_gen(path: &Path) -> u64 {
    let from_name = || {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        stem.rsplit_once('-')
            .and_then(|(_, seq)| seq.parse().ok())
            .unwrap_or(0)
    };
    let mut head = [0u8; 64];
    let read = fs::File::open(path).and_then(|f| f.read_at(&mut head, 0));
    match read {
        Ok(n) => head[..n]
            .split(|b| *b == b'\n')
            .next()
            .and_then(split_line)
            .map_or_else(from_name, |(number, _, _)| number),
        Err(_) => from_name(),
    }
}

/// Reads a segment's rows: its lines from the start while each carries
/// the first line's number and a hash that holds (see the module's
/// comment). Lines in the earlier format run to the first NUL byte, and
/// one that does not parse is reported and skipped: it cannot have been
/// acknowledged, since rows are acknowledged only after their segment's
/// data is synced.
pub(super) fn read_segment(path: &Path) -> std::io::Result<Vec<Row>> {
    let bytes = fs::read(path)?;
    if bytes.first() == Some(&b'{') {
        return Ok(read_earlier_format(path, &bytes));
    }
    let mut rows = Vec::new();
    let mut first = None;
    for line in bytes.split(|b| *b == b'\n') {
        let Some((number, hash, json)) = split_line(line) else {
            break;
        };
        if *first.get_or_insert(number) != number || fnv1a(json) != hash {
            break;
        }
        match serde_json::from_slice(json) {
            Ok(row) => rows.push(row),
            Err(e) => {
                tracing::error!(segment = %path.display(), error = %e, "a spooled row with a valid hash does not parse; the segment's rows end here");
                break;
            }
        }
    }
    Ok(rows)
}

fn read_earlier_format(path: &Path, bytes: &[u8]) -> Vec<Row> {
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
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FeedbackRecord, now_ms};

    fn click(user: &str) -> Row {
        Row::Feedback(FeedbackRecord {
            id: uuid::Uuid::now_v7(),
            inference_id: uuid::Uuid::now_v7(),
            created_at_ms: now_ms(),
            kind: "thumbs".into(),
            score: Some(1.0),
            comment: None,
            user: Some(crate::domain::User::new("slack", user)),
            source: "button".into(),
        })
    }

    fn users(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| match r {
                Row::Feedback(f) => f.user.as_ref().map_or(String::new(), |u| u.id.clone()),
                Row::Inference(i) => i.id.to_string(),
            })
            .collect()
    }

    fn write(ready: Ready, rows: &[Row]) -> PathBuf {
        let path = ready.path.clone();
        let mut current = Current { ready, len: 0 };
        append(&mut current, rows).unwrap();
        path
    }

    /// A recycled file still holds its old rows after the new ones; only
    /// the new ones are its rows, and a torn line after them ends them.
    #[test]
    fn a_recycled_segment_reads_back_only_what_was_written_since() {
        let dir = tempfile::tempdir().unwrap();
        let old: Vec<Row> = (0..20).map(|i| click(&format!("old-{i}"))).collect();
        let first = write(make(dir.path(), "i", 1, 4096).unwrap(), &old);
        assert_eq!(users(&read_segment(&first).unwrap()).len(), 20);

        let new = [click("new-0"), click("new-1")];
        let second = write(reuse(dir.path(), "i", 2, &first).unwrap(), &new);
        assert!(!first.exists(), "the file was renamed");
        assert_eq!(
            users(&read_segment(&second).unwrap()),
            ["new-0", "new-1"],
            "the old rows after the new ones are not read"
        );

        // A line torn by a crash (the JSON cut short, so its hash fails)
        // ends the rows, even with whole-looking lines after it.
        let mut bytes = fs::read(&second).unwrap();
        let end = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        let mut torn = Vec::new();
        let json = serde_json::to_vec(&click("torn")).unwrap();
        write!(torn, "2 {:016x} ", fnv1a(&json)).unwrap();
        torn.extend_from_slice(&json[..json.len() - 5]);
        torn.push(b'\n');
        let whole = serde_json::to_vec(&click("after")).unwrap();
        write!(torn, "2 {:016x} ", fnv1a(&whole)).unwrap();
        torn.extend_from_slice(&whole);
        torn.push(b'\n');
        bytes.splice(end..end + torn.len(), torn);
        fs::write(&second, &bytes).unwrap();
        assert_eq!(users(&read_segment(&second).unwrap()), ["new-0", "new-1"]);
    }

    /// Segments written before this format (JSON lines, then zeros) still
    /// read back.
    #[test]
    fn segments_in_the_earlier_format_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old-000000000000.jsonl");
        let mut bytes = Vec::new();
        for user in ["a", "b"] {
            serde_json::to_writer(&mut bytes, &click(user)).unwrap();
            bytes.push(b'\n');
        }
        bytes.resize(bytes.len() + 1024, 0);
        fs::write(&path, bytes).unwrap();
        assert_eq!(users(&read_segment(&path).unwrap()), ["a", "b"]);
    }

    /// After a crash, an ended instance's segments are replayed in the
    /// order they were written, told by the number in their text even
    /// where a recycled file's rename was lost.
    #[tokio::test]
    async fn leftovers_are_replayed_in_the_order_written() {
        let dir = tempfile::tempdir().unwrap();
        // Segment 7, then segment 9 recycled from file 5 whose rename to
        // `dead-…09` never reached the disk.
        let seven = write(
            make(dir.path(), "dead", 7, 4096).unwrap(),
            &[click("first")],
        );
        let five = write(
            make(dir.path(), "dead", 5, 4096).unwrap(),
            &[click("stale")],
        );
        let nine = Ready {
            file: fs::OpenOptions::new().write(true).open(&five).unwrap(),
            path: five.clone(),
            number: 9,
        };
        write(nine, &[click("second")]);
        let spool = Spool::open_sized(dir.path(), 4096).unwrap();
        let (segments, _locks) = spool.leftovers();
        assert_eq!(segments, [seven, five.clone()]);
        assert_eq!(users(&read_segment(&five).unwrap()), ["second"]);
    }
}
