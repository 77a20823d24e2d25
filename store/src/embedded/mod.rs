//! The embedded log: a directory of segment files written by one writer thread with
//! group commit.
//!
//! Layout of a log directory:
//! - `LOCK`: held (flock) by the one process that may write;
//! - `0000000000.seg`, `0000000001.seg`, …: segments of framed records
//!   (see [`frame`] for the byte layout, [`segment`] for sealing and the torn-tail
//!   rule). Each record body carries the BLAKE3 hash of the previous body, so the
//!   log is a hash chain that [`verify`] checks end to end;
//! - `index.ckpt`: the index as of some durable position, so an open scans only
//!   the records after it ([`checkpoint`]).
//!
//! Writes go through a bounded queue to one thread that drains every pending append,
//! writes them with one `pwrite`, calls `fdatasync` once, publishes them to readers
//! and only then acknowledges them ([`writer`]). A failed write or sync poisons the
//! store: no later write is accepted until it is reopened.

pub mod checkpoint;
pub mod frame;
mod index;
pub mod segment;
pub mod verify;
mod writer;

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use async_trait::async_trait;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tutorlog_schemas::{codec, NewEvent, RecordedEvent};

pub use self::checkpoint::{CheckpointPolicy, Covered};
use self::{
    frame::{read_frame, Frame},
    index::Index,
    segment::{corrupt, list_segments, read_segment, scan_segment, segment_path},
    writer::{Reply, WriteRequest, Writer},
};
use crate::{
    validate_stream_name, AppendCallback, AppendResult, EventStore, ExpectedRevision, NotQueued,
    StoreError, Subscription, SubscriptionSource, APPEND_EVENTS_MAX, READ_EVENTS_MAX,
};

/// Name of the lock file in a log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Default segment size: large enough that rotation is rare, small enough to copy.
pub const SEGMENT_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;
/// Segments address records with 32-bit offsets.
pub const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// How far ahead of the writer the active segment is zero-filled.
pub const PREALLOCATE_BYTES_DEFAULT: u64 = 4 * 1024 * 1024;
/// Default [`StoreOptions::linger`]: long enough for a gateway call's deferred
/// appends (its record, its commit, its circuit outcome) to meet the next call's
/// in one fsync even at a few hundred calls a second, short against any human
/// wait. 5 ms rather than 1: at one connection and at 1,000 calls/s it took
/// 12-20 % off the daemon's CPU per call and a fifth off the p99 overhead, the
/// same at 32 connections (BENCHMARKS.md, "Gateway").
pub const LINGER_DEFAULT: Duration = Duration::from_millis(5);
/// Longest [`StoreOptions::linger`] accepted.
pub const LINGER_MAX: Duration = Duration::from_millis(100);
/// Most bytes one `append` call may add (frames included).
pub const APPEND_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Depth of the writer's queue; appends wait (asynchronously) when it is full.
pub const WRITE_QUEUE_DEPTH: usize = 8192;

/// Tuning for an embedded log.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Segment size at which the writer seals a segment and starts the next.
    pub segment_bytes: u64,
    /// Zero-fill step for the active segment.
    pub preallocate_bytes: u64,
    /// How long the writer may hold back a batch made only of
    /// [`EventStore::append_deferred`] appends, for later appends to share its
    /// fsync; any plain append (someone waits on it) ends the wait at once. Zero
    /// turns it off.
    pub linger: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            preallocate_bytes: PREALLOCATE_BYTES_DEFAULT,
            linger: LINGER_DEFAULT,
        }
    }
}

impl StoreOptions {
    fn validate(&self) -> Result<(), StoreError> {
        // Small segments are allowed (tests use them to exercise rotation); an append
        // larger than a segment is refused at append time.
        const SEGMENT_BYTES_MIN: u64 = 4096;
        if self.segment_bytes < SEGMENT_BYTES_MIN || self.segment_bytes > SEGMENT_BYTES_MAX {
            return Err(StoreError::InvalidInput(format!(
                "segment_bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            )));
        }
        if self.linger > LINGER_MAX {
            return Err(StoreError::InvalidInput(format!(
                "linger must be at most {LINGER_MAX:?}, got {:?}",
                self.linger
            )));
        }
        if self.preallocate_bytes == 0 {
            return Err(StoreError::InvalidInput(
                "preallocate_bytes must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// State shared by handles, the writer thread and subscriptions.
pub(crate) struct Shared {
    dir: PathBuf,
    index: RwLock<Index>,
    /// Next position (count of durable events); subscribers wait on changes.
    head: watch::Sender<u64>,
    poisoned: Mutex<Option<String>>,
    closed: AtomicBool,
    /// What the newest index checkpoint (written or loaded) covers; held while one
    /// is written, so two are never written at once.
    checkpointed: Mutex<Option<Covered>>,
    /// An append was refused for a full disk and the log has not since been able
    /// to zero-fill (allocate) any new space. Mirrored by the
    /// gauge `tutorlog_log_disk_full`.
    disk_full: AtomicBool,
    /// The writer is holding back a deferred batch (see [`StoreOptions::linger`]).
    lingering: AtomicBool,
    /// Someone asked for held-back appends to be written now.
    hurry: AtomicBool,
    /// The writer thread, to wake it from a linger.
    writer_thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Shared {
    /// Ends the writer's linger, if it is in one. Cheap when it is not: no
    /// syscall, so every append can call it.
    fn wake_writer(&self) {
        if self.lingering.load(Ordering::SeqCst) {
            if let Some(thread) = self.writer_thread.get() {
                thread.unpark();
            }
        }
    }

    /// Writes an index checkpoint unless the newest one already covers every
    /// record. Returns what the newest checkpoint covers.
    fn checkpoint(&self) -> Result<Option<Covered>, StoreError> {
        let mut newest = self.checkpointed.lock();
        let records = self.index.read().next_position();
        if newest.is_some_and(|c| c.records == records) {
            return Ok(*newest);
        }
        if let Some(covered) = checkpoint::write(self)? {
            *newest = Some(covered);
        }
        Ok(*newest)
    }
}

struct Inner {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<Checkpointer>>,
    policy: CheckpointPolicy,
    report: OpenReport,
    /// Held for the life of the writer; released after the writer thread exits.
    _lock: Option<File>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        shutdown(self);
    }
}

/// Stops the writer (every queued append made durable), then the checkpoint thread,
/// then writes a final index checkpoint (the first time only, on a log opened for
/// writing that is not poisoned), and ends subscriptions.
fn shutdown(inner: &Inner) {
    drop(inner.sender.lock().take());
    // A lingering writer would see the closed queue by its deadline anyway.
    inner.shared.hurry.store(true, Ordering::SeqCst);
    inner.shared.wake_writer();
    let writer = inner.writer.lock().take();
    let stopped_writer = writer.is_some();
    if let Some(handle) = writer {
        if handle.join().is_err() {
            tracing::error!("log writer thread panicked during shutdown");
        }
    }
    if let Some(checkpointer) = inner.checkpointer.lock().take() {
        checkpointer.stop();
    }
    let shared = &inner.shared;
    shared.closed.store(true, Ordering::SeqCst);
    shared.head.send_modify(|_| {});
    if stopped_writer && inner.policy.enabled {
        if let Some(reason) = shared.poisoned.lock().clone() {
            tracing::info!(reason, "no index checkpoint on close: the log is poisoned");
        } else if let Err(error) = shared.checkpoint() {
            tracing::warn!(%error, "index checkpoint on close failed; the next open scans more of the log");
        }
    }
}

/// The background thread that writes index checkpoints (see [`checkpoint`]).
struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn start(shared: Arc<Shared>, policy: CheckpointPolicy) -> Result<Self, StoreError> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tutorlog-log-checkpoint".into())
            .spawn(move || run_checkpointer(&shared, &policy, &signal))
            .map_err(|e| StoreError::io("spawning the log checkpoint thread", e))?;
        Ok(Checkpointer { stop, thread })
    }

    fn stop(self) {
        let (flag, wake) = &*self.stop;
        *flag.lock() = true;
        wake.notify_all();
        if self.thread.join().is_err() {
            tracing::error!("log checkpoint thread panicked");
        }
    }
}

/// Every `poll_interval`, writes a checkpoint once a segment was sealed or
/// `every_records` records were appended since the newest one.
fn run_checkpointer(shared: &Shared, policy: &CheckpointPolicy, stop: &(Mutex<bool>, Condvar)) {
    let mut segments_seen = shared
        .checkpointed
        .lock()
        .map_or(0, |c| c.segments as usize);
    loop {
        {
            let (flag, wake) = stop;
            let mut stopped = flag.lock();
            if !*stopped {
                wake.wait_for(&mut stopped, policy.poll_interval);
            }
            if *stopped {
                return;
            }
        }
        if shared.poisoned.lock().is_some() {
            continue;
        }
        let (records, segments) = {
            let index = shared.index.read();
            (index.next_position(), index.files.len())
        };
        let covered = shared.checkpointed.lock().map_or(0, |c| c.records);
        let due = records > covered
            && (segments > segments_seen || records - covered >= policy.every_records);
        if !due {
            continue;
        }
        segments_seen = segments;
        if let Err(error) = shared.checkpoint() {
            metrics::counter!("tutorlog_log_checkpoint_failures_total").increment(1);
            tracing::warn!(%error, "index checkpoint failed; the next open scans more of the log");
        }
    }
}

/// A handle to an embedded log. Cheap to clone; the writer stops when the last
/// handle is dropped or [`EmbeddedStore::close`] is called.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.shared.dir)
            .finish()
    }
}

/// What recovery found on open.
struct Recovered {
    index: Index,
    /// Active segment id, its data end and allocated length.
    active: Option<(u32, u64, u64)>,
    torn: Option<(PathBuf, u64, String)>,
    /// How the index was built.
    report: OpenReport,
    /// What the checkpoint it started from covers.
    covered: Option<Covered>,
}

/// How an open built its index: from the checkpoint plus a scan of the records
/// after it, or by scanning every record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenReport {
    /// Records loaded from `index.ckpt` (`None`: no checkpoint was used).
    pub checkpoint_records: Option<u64>,
    /// Why a checkpoint that was present was not used.
    pub checkpoint_rejected: Option<String>,
    /// Records scanned (CRC, decode, chain) after the checkpoint, or all of them.
    pub scanned_records: u64,
    /// Seconds spent building the index.
    pub seconds: f64,
}

/// Whether recovery may start from the index checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Load `index.ckpt` if it passes every check, then scan the rest.
    FromCheckpoint,
    /// Scan every record (`audit verify`).
    Everything,
}

/// Builds the index: from the checkpoint when allowed and valid, then scanning
/// every record after it (all of them without one), checking each (CRC, decode,
/// dense positions and revisions, hash chain).
fn recover(dir: &Path, scan: Scan) -> Result<Recovered, StoreError> {
    let started = std::time::Instant::now();
    let (ids, _) = list_segments(dir)?;
    let mut files = Vec::with_capacity(ids.len());
    for &id in &ids {
        let path = segment_path(dir, id);
        let file = File::open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        files.push(Arc::new(file));
    }
    let mut report = OpenReport::default();
    let mut covered = None;
    let (mut index, resume) = match scan {
        Scan::Everything => (Index::default(), (0, 0)),
        Scan::FromCheckpoint => match checkpoint::load(dir, &files) {
            Ok(Some(loaded)) => {
                report.checkpoint_records = Some(loaded.covered.records);
                covered = Some(loaded.covered);
                (loaded.index, loaded.resume)
            }
            Ok(None) => (Index::default(), (0, 0)),
            Err(reason) => {
                tracing::warn!(
                    file = %dir.join(checkpoint::CHECKPOINT_FILE_NAME).display(),
                    reason,
                    "index checkpoint not used; scanning the whole log"
                );
                metrics::counter!("tutorlog_log_checkpoints_rejected_total").increment(1);
                report.checkpoint_rejected = Some(reason);
                (Index::default(), (0, 0))
            }
        },
    };
    let mut active = None;
    let mut torn = None;
    let skipped = index.next_position();
    index.segment_ends.resize(ids.len(), 0);
    for (n, &id) in ids.iter().enumerate().skip(resume.0 as usize) {
        let path = segment_path(dir, id);
        let sealed = n + 1 < ids.len();
        let from = if id == resume.0 { resume.1 } else { 0 };
        let bytes = read_segment_from(&files[n], &path, from)?;
        // Walk the frames (CRC) first, hash the bodies on several threads, then
        // check and index them in order. An error in a record before the end of the
        // walk wins over how the walk ended, as in a single in-order pass.
        let mut frames: Vec<(u64, &[u8])> = Vec::new();
        let scanned = scan_segment(&path, &bytes, sealed, |offset, body| {
            frames.push((from + offset, body));
            Ok(())
        });
        let hashes = hash_bodies(&frames);
        for (&(offset, body), hash) in frames.iter().zip(hashes) {
            index_record(&mut index, &path, id, offset, body, hash)?;
        }
        let end = scanned.map_err(|error| shift_offset(error, from))?;
        let data_end = from + end.data_end;
        index.segment_ends[id as usize] = data_end;
        if !sealed {
            active = Some((id, data_end, from + bytes.len() as u64));
            torn = end
                .torn
                .map(|(offset, reason)| (path.clone(), from + offset, reason));
        }
    }
    index.files = files;
    report.scanned_records = index.next_position() - skipped;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(Recovered {
        index,
        active,
        torn,
        report,
        covered,
    })
}

fn log_open(dir: &Path, report: &OpenReport) {
    tracing::info!(
        dir = %dir.display(),
        from_checkpoint = ?report.checkpoint_records,
        scanned = report.scanned_records,
        seconds = report.seconds,
        "log index built"
    );
}

/// Reads segment `file` from byte `from` to its end.
fn read_segment_from(file: &File, path: &Path, from: u64) -> Result<Vec<u8>, StoreError> {
    if from == 0 {
        return read_segment(path);
    }
    let length = file
        .metadata()
        .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?
        .len();
    let mut bytes = vec![0u8; usize::try_from(length.saturating_sub(from)).unwrap_or(0)];
    file.read_exact_at(&mut bytes, from)
        .map_err(|e| StoreError::io(format!("reading {} from {from}", path.display()), e))?;
    Ok(bytes)
}

/// A scan of a segment's tail reports offsets from where it started; the file's
/// offsets are `from` further.
fn shift_offset(error: StoreError, from: u64) -> StoreError {
    match error {
        StoreError::Corrupt {
            file,
            offset,
            reason,
            hint,
        } => StoreError::Corrupt {
            file,
            offset: offset + from,
            reason,
            hint,
        },
        other => other,
    }
}

/// BLAKE3 of each body (the hash chain), on several threads for many bodies.
fn hash_bodies(frames: &[(u64, &[u8])]) -> Vec<[u8; 32]> {
    let hash = |(_, body): &(u64, &[u8])| *blake3::hash(body).as_bytes();
    let threads = decode_threads(frames.len());
    if threads <= 1 {
        return frames.iter().map(hash).collect();
    }
    let per_thread = frames.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = frames.chunks(per_thread);
        let first = parts.next().unwrap_or(&[]);
        let handles: Vec<_> = parts
            .map(|part| scope.spawn(move || part.iter().map(hash).collect::<Vec<_>>()))
            .collect();
        let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(frames.len());
        hashes.extend(first.iter().map(hash));
        for (handle, part) in handles.into_iter().zip(frames.chunks(per_thread).skip(1)) {
            // A panicked thread (not expected) is redone here.
            match handle.join() {
                Ok(part_hashes) => hashes.extend(part_hashes),
                Err(_) => hashes.extend(part.iter().map(hash)),
            }
        }
        hashes
    })
}

fn index_record(
    index: &mut Index,
    path: &Path,
    segment: u32,
    offset: u64,
    body: &[u8],
    hash: [u8; 32],
) -> Result<(), StoreError> {
    let at = offset as usize;
    let record = codec::decode_record_ref(body)
        .map_err(|e| corrupt(path, at, format!("record does not decode: {e}")))?;
    if record.position != index.next_position() {
        return Err(corrupt(
            path,
            at,
            format!(
                "position {} where {} was expected",
                record.position,
                index.next_position()
            ),
        ));
    }
    if record.prev_hash != index.last_hash {
        return Err(corrupt(
            path,
            at,
            "hash chain broken: previous-record hash does not match".into(),
        ));
    }
    let expected_revision = index.last_revision(record.stream).map_or(0, |r| r + 1);
    if record.revision != expected_revision {
        return Err(corrupt(
            path,
            at,
            format!(
                "stream {:?} revision {} where {expected_revision} was expected",
                record.stream, record.revision
            ),
        ));
    }
    if record.recorded_at_micros < index.last_micros {
        return Err(corrupt(path, at, "recorded_at goes backwards".into()));
    }
    index.last_hash = hash;
    index.last_micros = record.recorded_at_micros;
    index.push(
        record.stream,
        segment,
        offset,
        offset + (frame::FRAME_HEADER_BYTES + body.len()) as u64,
    );
    Ok(())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the log in `dir` for writing, with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens the log in `dir` for writing. Takes the directory lock, recovers
    /// (dropping a torn tail with a warning, refusing on damage before it) and starts
    /// the writer thread. Index checkpoints as [`CheckpointPolicy::default`].
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        Self::open_with_checkpoints(dir, options, CheckpointPolicy::default())
    }

    /// [`EmbeddedStore::open_with`], writing index checkpoints as `policy` says.
    /// Recovery starts from a valid `index.ckpt` whatever the policy.
    pub fn open_with_checkpoints(
        dir: impl AsRef<Path>,
        options: StoreOptions,
        policy: CheckpointPolicy,
    ) -> Result<Self, StoreError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let lock = acquire_lock(&dir)?;
        let (_, temps) = list_segments(&dir)?;
        for temp in temps {
            std::fs::remove_file(&temp)
                .map_err(|e| StoreError::io(format!("removing {}", temp.display()), e))?;
        }
        let mut recovered = recover(&dir, Scan::FromCheckpoint)?;
        log_open(&dir, &recovered.report);
        let (active_id, data_end) = match recovered.active {
            Some((id, data_end, _)) => (id, data_end),
            None => {
                let file = segment::create_segment(&dir, 0)?;
                drop(file);
                let read = File::open(segment_path(&dir, 0))
                    .map_err(|e| StoreError::io("opening segment 0", e))?;
                recovered.index.files.push(Arc::new(read));
                recovered.index.segment_ends.push(0);
                (0, 0)
            }
        };
        let path = segment_path(&dir, active_id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        if let Some((torn_path, offset, reason)) = &recovered.torn {
            tracing::warn!(file = %torn_path.display(), offset, reason, "dropping torn tail: an interrupted, unacknowledged write");
        }
        // Truncate to the data end: drops a torn tail and any stale preallocation;
        // the writer zero-fills ahead again as it needs.
        file.set_len(data_end)
            .map_err(|e| StoreError::io(format!("truncating {}", path.display()), e))?;
        file.sync_all()
            .map_err(|e| StoreError::io(format!("syncing {}", path.display()), e))?;

        let next_position = recovered.index.next_position();
        let (head, _) = watch::channel(next_position);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            index: RwLock::new(recovered.index),
            head,
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(false),
            checkpointed: Mutex::new(recovered.covered),
            disk_full: AtomicBool::new(false),
            lingering: AtomicBool::new(false),
            hurry: AtomicBool::new(false),
            writer_thread: std::sync::OnceLock::new(),
        });
        let checkpointer = if policy.enabled {
            Some(Checkpointer::start(Arc::clone(&shared), policy.clone())?)
        } else {
            None
        };
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_DEPTH);
        // The zero-fill helper writes and syncs through its own open file, so that
        // neither sync can swallow a writeback error the other must see.
        let fill_file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let writer = Writer::new(
            Arc::clone(&shared),
            options,
            file,
            fill_file,
            active_id,
            data_end,
        );
        let handle = std::thread::Builder::new()
            .name("tutorlog-log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::io("spawning the log writer thread", e))?;
        // Set once, right here; `get` is `None` only on a read-only store.
        let _ = shared.writer_thread.set(handle.thread().clone());
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                shared,
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(handle)),
                checkpointer: Mutex::new(checkpointer),
                policy,
                report: recovered.report,
                _lock: Some(lock),
            }),
        })
    }

    /// Opens the log read-only, without the lock, as it is at this moment. Works
    /// while a writer is running: an in-flight write at the tail is simply not seen.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(StoreError::InvalidInput(format!(
                "log directory {} does not exist",
                dir.display()
            )));
        }
        let recovered = recover(&dir, Scan::FromCheckpoint)?;
        let (head, _) = watch::channel(recovered.index.next_position());
        let shared = Arc::new(Shared {
            dir,
            index: RwLock::new(recovered.index),
            head,
            poisoned: Mutex::new(None),
            closed: AtomicBool::new(true),
            checkpointed: Mutex::new(recovered.covered),
            disk_full: AtomicBool::new(false),
            lingering: AtomicBool::new(false),
            hurry: AtomicBool::new(false),
            writer_thread: std::sync::OnceLock::new(),
        });
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                shared,
                sender: Mutex::new(None),
                writer: Mutex::new(None),
                checkpointer: Mutex::new(None),
                policy: CheckpointPolicy {
                    enabled: false,
                    ..CheckpointPolicy::default()
                },
                report: recovered.report,
                _lock: None,
            }),
        })
    }

    /// How this open built its index (from the checkpoint or by a full scan).
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// Writes an index checkpoint now (unless the newest one already covers every
    /// record) and returns what the newest checkpoint covers; `None` for an empty
    /// log. Only on a log opened for writing.
    pub fn checkpoint(&self) -> Result<Option<Covered>, StoreError> {
        if self.inner._lock.is_none() {
            return Err(StoreError::ReadOnly);
        }
        self.inner.shared.checkpoint()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Stops accepting appends, waits for the writer to make every queued append
    /// durable, and ends live subscriptions once they have delivered everything.
    pub fn close(&self) {
        shutdown(&self.inner);
    }

    /// Whether an earlier write failure poisoned the store.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.shared.poisoned.lock().clone()
    }

    /// Whether the log is short of disk space: an append was refused for a full
    /// disk, and no zero-fill has allocated new space since (the gauge
    /// `tutorlog_log_disk_full`). Appends that fit in the zeros already allocated
    /// may still succeed meanwhile; they do not clear it.
    pub fn disk_full(&self) -> bool {
        self.inner.shared.disk_full.load(Ordering::SeqCst)
    }

    /// Number of distinct streams.
    pub fn stream_count(&self) -> usize {
        self.inner.shared.index.read().streams.len()
    }

    /// BLAKE3 hash of the last record (the head of the hash chain), hex.
    pub fn head_hash(&self) -> String {
        hex::encode(self.inner.shared.index.read().last_hash)
    }

    /// A receiver of the next position (event count), updated after each durable batch.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.shared.head.subscribe()
    }

    fn check_append(stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
        validate_stream_name(stream)?;
        if events.is_empty() {
            return Err(StoreError::InvalidInput(
                "append needs at least one event".into(),
            ));
        }
        if events.len() > APPEND_EVENTS_MAX {
            return Err(StoreError::InvalidInput(format!(
                "{} events in one append, the limit is {APPEND_EVENTS_MAX}",
                events.len()
            )));
        }
        // Bound each record before encoding: fixed fields take well under 256 bytes.
        let mut total = 0u64;
        for event in events {
            let estimate = 256 + stream.len() + event.event_type.len() + event.payload.len();
            if estimate > codec::RECORD_BODY_BYTES_MAX {
                return Err(StoreError::InvalidInput(format!(
                    "event payload of {} bytes exceeds the record limit of {} bytes",
                    event.payload.len(),
                    codec::RECORD_BODY_BYTES_MAX
                )));
            }
            if event.event_type.is_empty() || event.event_type.len() > 128 {
                return Err(StoreError::InvalidInput(
                    "event type must be 1 to 128 bytes".into(),
                ));
            }
            total += estimate as u64;
        }
        if total > APPEND_BYTES_MAX {
            return Err(StoreError::InvalidInput(format!(
                "append of ~{total} bytes exceeds the limit of {APPEND_BYTES_MAX}"
            )));
        }
        Ok(())
    }
}

fn acquire_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::io(format!("locking {}", path.display()), e))
        }
    }
}

impl Shared {
    fn read_all_sync(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        // Copy out contiguous byte ranges per segment, then read without the lock.
        let mut ranges: Vec<(u32, Arc<File>, u64, u64, usize)> = Vec::new();
        {
            let index = self.index.read();
            let to = index.next_position().min(from.saturating_add(max as u64));
            let mut position = from;
            while position < to {
                let Some((segment, start, mut end)) = index.range_of(position) else {
                    break;
                };
                let mut count = 1usize;
                while position + (count as u64) < to {
                    match index.range_of(position + count as u64) {
                        Some((s, _, e)) if s == segment => {
                            end = e;
                            count += 1;
                        }
                        _ => break,
                    }
                }
                let Some(file) = index.files.get(segment as usize) else {
                    break;
                };
                ranges.push((segment, Arc::clone(file), start, end, count));
                position += count as u64;
            }
        }
        // Exactly what the ranges hold: a live subscription's read usually finds a
        // handful of events or none, and a `max`-sized guess (160 KB for 1,024
        // events) was a fresh large allocation, page faults included, every time.
        let total: usize = ranges.iter().map(|range| range.4).sum();
        let mut events = Vec::with_capacity(total);
        for (segment, file, start, end, count) in ranges {
            self.read_range(segment, &file, start, end, count, &mut events)?;
        }
        Ok(events)
    }

    fn read_stream_sync(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        let ranges: Vec<(u32, Arc<File>, u64, u64)> = {
            let index = self.index.read();
            let Some(positions) = index.streams.get(stream) else {
                return Ok(Vec::new());
            };
            let from = usize::try_from(from_revision)
                .unwrap_or(usize::MAX)
                .min(positions.len());
            let to = from.saturating_add(max).min(positions.len());
            positions[from..to]
                .iter()
                .filter_map(|&p| {
                    let (segment, start, end) = index.range_of(p)?;
                    Some((
                        segment,
                        Arc::clone(index.files.get(segment as usize)?),
                        start,
                        end,
                    ))
                })
                .collect()
        };
        let mut events = Vec::with_capacity(ranges.len());
        for (segment, file, start, end) in ranges {
            self.read_range(segment, &file, start, end, 1, &mut events)?;
        }
        Ok(events)
    }

    fn read_range(
        &self,
        segment: u32,
        file: &File,
        start: u64,
        end: u64,
        count: usize,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, segment);
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start)
            .map_err(|e| StoreError::io(format!("reading {} at {start}", path.display()), e))?;
        // Walk the frames (CRC checks) first, then decode the bodies, on several
        // threads for a large range. A decode error before a bad frame wins, as it
        // would reading one record after the other.
        let mut bodies: Vec<(usize, &[u8])> = Vec::with_capacity(count);
        let mut frame_error = None;
        let mut offset = 0usize;
        for _ in 0..count {
            match read_frame(&buf, offset) {
                Frame::Record { body, next } => {
                    bodies.push((offset, body));
                    offset = next;
                }
                Frame::End => {
                    frame_error = Some(corrupt(
                        &path,
                        start as usize + offset,
                        "indexed record is missing".into(),
                    ));
                    break;
                }
                Frame::Bad { reason, .. } => {
                    frame_error = Some(corrupt(&path, start as usize + offset, reason));
                    break;
                }
            }
        }
        let decode = |(offset, body): &(usize, &[u8])| {
            codec::decode_record(body)
                .and_then(codec::RecordBody::into_recorded)
                .map_err(|e| {
                    corrupt(
                        &path,
                        start as usize + offset,
                        format!("record does not decode: {e}"),
                    )
                })
        };
        let threads = decode_threads(bodies.len());
        if threads <= 1 {
            out.reserve(bodies.len());
            for body in &bodies {
                out.push(decode(body)?);
            }
        } else {
            let per_thread = bodies.len().div_ceil(threads);
            let decoded: Vec<Result<Vec<RecordedEvent>, StoreError>> =
                std::thread::scope(|scope| {
                    let mut parts = bodies.chunks(per_thread);
                    let first = parts.next().unwrap_or(&[]);
                    let handles: Vec<_> = parts
                        .map(|part| scope.spawn(move || part.iter().map(decode).collect()))
                        .collect();
                    let mut results = vec![first.iter().map(decode).collect()];
                    for handle in handles {
                        results.push(handle.join().unwrap_or_else(|_| {
                            Err(StoreError::Unavailable(
                                "record decode thread panicked".into(),
                            ))
                        }));
                    }
                    results
                });
            out.reserve(bodies.len());
            for part in decoded {
                out.extend(part?);
            }
        }
        match frame_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Records in one read below which decoding stays on the calling thread.
const PARALLEL_DECODE_MIN_RECORDS: usize = 2048;

/// Threads to decode `records` records with: one per [`PARALLEL_DECODE_MIN_RECORDS`]
/// / 2, capped by the machine's parallelism (looked up once).
fn decode_threads(records: usize) -> usize {
    static PARALLELISM: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if records < PARALLEL_DECODE_MIN_RECORDS {
        return 1;
    }
    let parallelism = *PARALLELISM.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    });
    parallelism.min(records / (PARALLEL_DECODE_MIN_RECORDS / 2))
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, false).await
    }

    async fn append_deferred(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, true).await
    }

    fn try_append_detached(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        done: AppendCallback,
    ) -> Result<(), NotQueued> {
        let sender = match self.writable(stream, &events) {
            Ok(sender) => sender,
            Err(error) => {
                done(Err(error));
                return Ok(());
            }
        };
        let slot = match sender.try_reserve() {
            Ok(slot) => slot,
            Err(mpsc::error::TrySendError::Full(())) => return Err(NotQueued { events, done }),
            Err(mpsc::error::TrySendError::Closed(())) => {
                done(Err(StoreError::Closed));
                return Ok(());
            }
        };
        // Deferred, so no wake-up: the writer takes it with its next commit.
        slot.send(WriteRequest {
            stream: stream.to_owned(),
            expected,
            events,
            deferrable: true,
            reply: Reply::Detached(done),
        });
        Ok(())
    }

    fn expedite(&self) {
        let shared = &self.inner.shared;
        shared.hurry.store(true, Ordering::SeqCst);
        shared.wake_writer();
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let shared = Arc::clone(&self.inner.shared);
        let stream = stream.to_owned();
        tokio::task::spawn_blocking(move || shared.read_stream_sync(&stream, from_revision, max))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let shared = Arc::clone(&self.inner.shared);
        tokio::task::spawn_blocking(move || shared.read_all_sync(from_position, max))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.inner.shared.index.read().last_revision(stream))
    }

    fn last_position(&self) -> Option<u64> {
        self.inner
            .shared
            .index
            .read()
            .next_position()
            .checked_sub(1)
    }

    fn subscribe_all(&self, from_position: u64) -> Subscription {
        Subscription::new(Box::new(LogSubscription::new(
            Arc::clone(&self.inner.shared),
            None,
            from_position,
        )))
    }

    fn subscribe_stream(&self, stream: &str, from_revision: u64) -> Subscription {
        Subscription::new(Box::new(LogSubscription::new(
            Arc::clone(&self.inner.shared),
            Some(stream.to_owned()),
            from_revision,
        )))
    }
}

impl EmbeddedStore {
    /// The writer's queue, if `events` may be appended to `stream` now.
    fn writable(
        &self,
        stream: &str,
        events: &[NewEvent],
    ) -> Result<mpsc::Sender<WriteRequest>, StoreError> {
        Self::check_append(stream, events)?;
        if let Some(reason) = self.poisoned() {
            return Err(StoreError::Poisoned(reason));
        }
        let sender = self.inner.sender.lock().clone();
        sender.ok_or_else(|| {
            if self.inner._lock.is_none() {
                StoreError::ReadOnly
            } else {
                StoreError::Closed
            }
        })
    }

    /// Queues one append for the writer and waits until it is durable.
    async fn submit(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        deferrable: bool,
    ) -> Result<AppendResult, StoreError> {
        let sender = self.writable(stream, &events)?;
        let (reply, response) = oneshot::channel();
        let request = WriteRequest {
            stream: stream.to_owned(),
            expected,
            events,
            deferrable,
            reply: Reply::Waiter(reply),
        };
        sender.send(request).await.map_err(|_| StoreError::Closed)?;
        if !deferrable {
            self.inner.shared.wake_writer();
        }
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Synchronous `read_all`, for tools that do not run an async runtime.
    pub fn read_all_blocking(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.shared.read_all_sync(from_position, max)
    }

    /// Synchronous `read_stream`, for tools that do not run an async runtime.
    pub fn read_stream_blocking(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .shared
            .read_stream_sync(stream, from_revision, max)
    }
}

/// A pull-based subscription over the embedded log: it reads by position, so it
/// cannot skip or repeat an event, and waits on the head watch when caught up.
struct LogSubscription {
    shared: Arc<Shared>,
    stream: Option<String>,
    /// Next position (for `$all`) or revision (for a stream) to deliver.
    cursor: u64,
    buffer: std::collections::VecDeque<RecordedEvent>,
    head: watch::Receiver<u64>,
}

/// Events read per catch-up step.
const SUBSCRIPTION_CHUNK_EVENTS: usize = 1024;
/// Most events behind the head for a `$all` read on the async thread itself.
const LIVE_READ_EVENTS_MAX: u64 = 64;

impl LogSubscription {
    fn new(shared: Arc<Shared>, stream: Option<String>, cursor: u64) -> Self {
        let head = shared.head.subscribe();
        LogSubscription {
            shared,
            stream,
            cursor,
            buffer: std::collections::VecDeque::new(),
            head,
        }
    }

    async fn fill(&mut self, head: u64) -> Result<(), StoreError> {
        let cursor = self.cursor;
        // A live `$all` tail is a few events just written, still in the page
        // cache: read them here. The `spawn_blocking` round trip cost more than
        // the read (a gateway profile: a quarter of the subscription's CPU was
        // scheduling). Catch-up reads and stream reads stay off the async threads.
        let events = if self.stream.is_none() && head.saturating_sub(cursor) <= LIVE_READ_EVENTS_MAX
        {
            self.shared
                .read_all_sync(cursor, SUBSCRIPTION_CHUNK_EVENTS)?
        } else {
            let shared = Arc::clone(&self.shared);
            let stream = self.stream.clone();
            tokio::task::spawn_blocking(move || match stream {
                None => shared.read_all_sync(cursor, SUBSCRIPTION_CHUNK_EVENTS),
                Some(stream) => shared.read_stream_sync(&stream, cursor, SUBSCRIPTION_CHUNK_EVENTS),
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))??
        };
        if let Some(last) = events.last() {
            self.cursor = if self.stream.is_some() {
                last.revision + 1
            } else {
                last.position + 1
            };
        }
        self.buffer.extend(events);
        Ok(())
    }
}

#[async_trait]
impl SubscriptionSource for LogSubscription {
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            // Mark the head as seen before reading, so an append that lands after the
            // read below still wakes us.
            let head = *self.head.borrow_and_update();
            let closed = self.shared.closed.load(Ordering::SeqCst);
            // `$all` caught up with the head (the next position, published after
            // the index): nothing to read until it moves. This skips the empty read
            // (a `spawn_blocking` round trip) that followed every delivered batch.
            // After close, read anyway: the head seen above may predate the last
            // batch.
            let caught_up = self.stream.is_none() && self.cursor >= head && !closed;
            if !caught_up {
                if let Err(error) = self.fill(head).await {
                    return Some(Err(error));
                }
            }
            if !self.buffer.is_empty() {
                continue;
            }
            if closed || self.head.changed().await.is_err() {
                return None;
            }
        }
    }
    fn next_buffered(&mut self) -> Option<RecordedEvent> {
        self.buffer.pop_front()
    }
}

#[cfg(test)]
mod tests;
