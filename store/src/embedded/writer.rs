//! The single writer thread and its group commit.
//!
//! One loop iteration: block for the first request, drain up to
//! [`BATCH_REQUESTS_MAX`] more without waiting, check each request's expected
//! revision (against the index plus the batch's own earlier requests), encode and
//! chain its records, write the whole batch with one `pwrite`, `fdatasync` once,
//! publish to the index and the head watch, then reply to every request. No request
//! is acknowledged before the sync that covers it returns.
//!
//! The active segment is zero-filled ahead of the data by a helper thread
//! ([`Filler`]): after each commit the writer asks for the next step once less than
//! half a step remains, and a commit zero-fills only when it has caught up with the
//! helper (a `pwrite` never lands beyond the durable zeros, so the data is always
//! followed by a zero frame header).
//!
//! A failed write or sync poisons the store (the fjall/TigerBeetle rule: never retry
//! an fsync, whose failure may have dropped dirty pages): every pending and later
//! append fails until the log is reopened and recovered from disk.
//!
//! A full disk is different when it stops the writer *before* any byte of a batch
//! is written: zero-filling ahead (by the helper or by a commit) and starting a new
//! segment only ever write zeros past the end of the data or create a file, so
//! when they meet ENOSPC nothing the log holds, and nothing of the batch, has
//! changed. The batch then fails with `DiskFull` (HTTP 503 `storage_full`), the
//! log stays writable, and the next commit that needs space tries the zero-fill
//! again, so appends work again by themselves once space is freed. No fsync is
//! ever retried: a failed sync (whatever its errno, ENOSPC included) poisons, see
//! [`segment::sync_error`].

use std::{
    collections::HashMap,
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tutorlog_schemas::{
    codec::{self, RecordBodyRef, RECORD_FORMAT},
    NewEvent,
};

use super::{
    frame::{fill_frame_header, FRAME_HEADER_BYTES},
    segment::{self, classify_io, segment_path, sync_error},
    Shared, StoreOptions,
};
use crate::{AppendCallback, AppendResult, ExpectedRevision, StoreError};

/// Most requests in one group commit.
pub const BATCH_REQUESTS_MAX: usize = 4096;
/// A batch stops growing once its encoded size passes this.
pub const BATCH_BYTES_SOFT_MAX: usize = 32 * 1024 * 1024;
/// After a full disk stopped the zero-fill helper, it tries again at most this
/// often (commits that need space try on their own meanwhile).
pub const FILL_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One append waiting for the writer.
pub struct WriteRequest {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    /// Nobody waits on it: the writer may hold it back (`StoreOptions::linger`).
    pub deferrable: bool,
    pub reply: Reply,
}

/// Where a request's outcome goes.
pub enum Reply {
    /// A task awaiting it.
    Waiter(oneshot::Sender<Result<AppendResult, StoreError>>),
    /// A callback run on the writer thread ([`crate::EventStore::try_append_detached`]).
    Detached(AppendCallback),
}

impl Reply {
    fn send(self, result: Result<AppendResult, StoreError>) {
        match self {
            Reply::Waiter(sender) => {
                let _ignored_if_caller_left = sender.send(result);
            }
            Reply::Detached(done) => {
                // A panicking callback must not take the writer thread, and with
                // it every later append, down.
                let called =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result)));
                if called.is_err() {
                    tracing::error!("a detached append's callback panicked");
                }
            }
        }
    }
}

/// A record encoded in this batch, waiting to be published.
struct Staged {
    stream_index: usize,
    segment: u32,
    offset: u64,
    frame_end: u64,
}

/// An accepted request waiting for the sync.
struct Pending {
    reply: Reply,
    result: AppendResult,
}

/// The requests of a batch encoded since the last sync, waiting for the next one.
#[derive(Default)]
struct Unsynced {
    staged: Vec<Staged>,
    streams: Vec<String>,
    pending: Vec<Pending>,
    event_count: u64,
}

/// Answers every one of `requests` with a copy of `error` (they were not written).
fn fail_requests(requests: impl Iterator<Item = WriteRequest>, error: &StoreError) {
    for request in requests {
        request.reply.send(Err(error.clone_for_reply()));
    }
}

/// Moves what is queued into `batch`, up to the batch limits, without waiting.
/// Returns false once the queue is closed and empty.
fn take_queued(
    receiver: &mut mpsc::Receiver<WriteRequest>,
    batch: &mut Vec<WriteRequest>,
    bytes: &mut usize,
    deferrable: &mut bool,
) -> bool {
    while batch.len() < BATCH_REQUESTS_MAX && *bytes < BATCH_BYTES_SOFT_MAX {
        match receiver.try_recv() {
            Ok(request) => {
                *bytes += request
                    .events
                    .iter()
                    .map(|e| e.payload.len())
                    .sum::<usize>();
                *deferrable &= request.deferrable;
                batch.push(request);
            }
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

pub struct Writer {
    shared: Arc<Shared>,
    options: StoreOptions,
    file: Arc<File>,
    segment: u32,
    /// Offset where the next frame goes (end of data written so far).
    write_offset: u64,
    /// Zero-fills the active segment ahead of the data.
    filler: Arc<Filler>,
    next_position: u64,
    last_hash: [u8; 32],
    last_micros: i64,
    /// The batch buffer, kept between commits for its capacity.
    buffer: Vec<u8>,
}

/// The zero-fill helper's shared state: the writer posts targets, the helper
/// zero-fills and syncs up to them and publishes the durable end.
struct Filler {
    state: Mutex<FillState>,
    changed: Condvar,
    /// For the disk-full flag, which a successful fill clears.
    shared: Arc<Shared>,
}

struct FillState {
    /// The helper's own handle on the active segment, and its path; `None` while it
    /// is being sealed. Its own open file, not the writer's: Linux reports a
    /// writeback error to each open file once (`errseq`), so a sync by the helper
    /// through the writer's file could consume the error of the writer's data pages
    /// and let the writer's `fdatasync` return success for data that never reached
    /// the disk. Through a second open file both syncs see every error.
    file: Option<(Arc<File>, PathBuf)>,
    /// End of the zero-filled and synced region of the active segment: data may be
    /// written up to `allocated - FRAME_HEADER_BYTES`.
    allocated: u64,
    /// Where the writer wants the zeros to reach.
    target: u64,
    /// The helper is writing zeros (the file must not be cut or swapped).
    busy: bool,
    /// The helper's last fill failed; it does no more until the writer clears this.
    failed: Option<StoreError>,
    /// When `failed` was set (a full disk is retried after [`FILL_RETRY_AFTER`]).
    failed_at: Option<Instant>,
    /// The writer is shutting down.
    stop: bool,
}

impl Filler {
    /// The helper thread's loop.
    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            if state.stop {
                return;
            }
            let work = match (&state.file, &state.failed) {
                (Some((file, path)), None) if state.target > state.allocated => Some((
                    Arc::clone(file),
                    path.clone(),
                    state.allocated,
                    state.target,
                )),
                _ => None,
            };
            let Some((file, path, from, to)) = work else {
                self.changed.wait(&mut state);
                continue;
            };
            state.busy = true;
            let started = Instant::now();
            let result = MutexGuard::unlocked(&mut state, || {
                segment::zero_fill(&file, from, to - from, &path)
            });
            state.busy = false;
            match result {
                Ok(()) => {
                    state.allocated = state.allocated.max(to);
                    // New zeros were allocated: there is room again.
                    set_disk_full(&self.shared, false);
                    metrics::counter!("tutorlog_log_zero_fills_ahead_total").increment(1);
                    metrics::histogram!("tutorlog_log_zero_fill_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                Err(error) => {
                    tracing::warn!(%error, "zero-filling the log ahead failed");
                    state.failed = Some(error);
                    state.failed_at = Some(Instant::now());
                }
            }
            self.changed.notify_all();
        }
    }

    /// Waits until no fill is in progress.
    fn idle<'a>(&self, state: &mut MutexGuard<'a, FillState>) {
        while state.busy {
            self.changed.wait(state);
        }
    }
}

/// A batch buffer keeps up to this much capacity between commits.
const BUFFER_KEEP_BYTES: usize = 4 * 1024 * 1024;

impl Writer {
    /// A writer appending to `file` (segment `segment`, data up to `data_end`);
    /// `fill_file` is a second open file of the same segment for the zero-fill
    /// helper (see [`FillState::file`]).
    pub fn new(
        shared: Arc<Shared>,
        options: StoreOptions,
        file: File,
        fill_file: File,
        segment: u32,
        data_end: u64,
    ) -> Self {
        let file = Arc::new(file);
        let filler = Arc::new(Filler {
            state: Mutex::new(FillState {
                file: Some((Arc::new(fill_file), segment_path(&shared.dir, segment))),
                allocated: data_end,
                target: data_end,
                busy: false,
                failed: None,
                failed_at: None,
                stop: false,
            }),
            changed: Condvar::new(),
            shared: Arc::clone(&shared),
        });
        let (next_position, last_hash, last_micros) = {
            let index = shared.index.read();
            (index.next_position(), index.last_hash, index.last_micros)
        };
        Writer {
            shared,
            options,
            file,
            segment,
            write_offset: data_end,
            filler,
            next_position,
            last_hash,
            last_micros,
            buffer: Vec::new(),
        }
    }

    pub fn run(mut self, mut receiver: mpsc::Receiver<WriteRequest>) {
        let filler = Arc::clone(&self.filler);
        let helper = std::thread::Builder::new()
            .name("tutorlog-log-filler".into())
            .spawn(move || filler.run());
        let helper: Option<JoinHandle<()>> = match helper {
            Ok(handle) => Some(handle),
            Err(error) => {
                // Commits zero-fill for themselves, as they catch up every time.
                tracing::warn!(%error, "no zero-fill helper thread; commits will zero-fill");
                None
            }
        };
        let mut batch = Vec::with_capacity(64);
        self.fill_ahead();
        while let Some(first) = receiver.blocking_recv() {
            batch.push(first);
            let mut bytes: usize = batch[0].events.iter().map(|e| e.payload.len()).sum();
            let mut deferrable = batch[0].deferrable;
            take_queued(&mut receiver, &mut batch, &mut bytes, &mut deferrable);
            if deferrable && !self.options.linger.is_zero() {
                self.linger(&mut receiver, &mut batch, &mut bytes, &mut deferrable);
            }
            self.commit_batch(&mut batch);
            self.fill_ahead();
        }
        {
            let mut state = self.filler.state.lock();
            state.stop = true;
            self.filler.changed.notify_all();
        }
        if let Some(helper) = helper {
            if helper.join().is_err() {
                tracing::error!("zero-fill helper thread panicked");
            }
        }
        // Queue closed: every request it held has been made durable and answered.
        // Cut the zero margin so the segment ends at its last record: a damaged final
        // record of a cleanly closed log is then recognised as damage.
        if self.shared.poisoned.lock().is_none() {
            let result = self
                .file
                .set_len(self.write_offset)
                .and_then(|()| self.file.sync_all());
            if let Err(error) = result {
                tracing::error!(%error, "final log sync failed");
            }
        }
    }

    /// Holds a batch of deferred appends back until a plain append arrives, someone
    /// hurries it, the batch is full, the queue closes, or `linger` has passed.
    fn linger(
        &self,
        receiver: &mut mpsc::Receiver<WriteRequest>,
        batch: &mut Vec<WriteRequest>,
        bytes: &mut usize,
        deferrable: &mut bool,
    ) {
        let shared = &self.shared;
        if shared.hurry.swap(false, Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + self.options.linger;
        // Announce the linger before the last look at the queue: an append sent
        // after that look sees the flag and unparks us (an unpark before the park
        // makes the park return at once). Should a wake-up ever be missed, the
        // cost is the rest of the linger, never a lost or unacknowledged write.
        shared.lingering.store(true, Ordering::SeqCst);
        loop {
            let open = take_queued(receiver, batch, bytes, deferrable);
            let full = batch.len() >= BATCH_REQUESTS_MAX || *bytes >= BATCH_BYTES_SOFT_MAX;
            if !open || full || !*deferrable || shared.hurry.swap(false, Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        shared.lingering.store(false, Ordering::SeqCst);
    }

    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        if let Some(reason) = self.shared.poisoned.lock().clone() {
            for request in batch.drain(..) {
                request
                    .reply
                    .send(Err(StoreError::Poisoned(reason.clone())));
            }
            return;
        }
        let started = Instant::now();
        let now_micros = chrono::Utc::now().timestamp_micros().max(self.last_micros);
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        self.commit_into(batch, &mut buffer, now_micros, started);
        if buffer.capacity() > BUFFER_KEEP_BYTES {
            buffer = Vec::new();
        }
        self.buffer = buffer;
    }

    fn commit_into(
        &mut self,
        batch: &mut Vec<WriteRequest>,
        buffer: &mut Vec<u8>,
        now_micros: i64,
        started: Instant,
    ) {
        let mut buffer_start = self.write_offset;
        let mut part = Unsynced::default();
        // The chain's tip at the last sync: a write that fails goes back to it, so
        // that the next batch continues from what is really on disk (a full disk
        // leaves the log writable; poisoned or not, positions stay dense).
        let mut synced = (self.next_position, self.last_hash);
        // Revisions decided in this batch but not yet in the index.
        let mut batch_heads: HashMap<String, u64> = HashMap::new();
        let mut requests = batch.drain(..);
        while let Some(request) = requests.next() {
            let (first_revision, frames_len) =
                match self.check_request(&request, &batch_heads, now_micros) {
                    Ok(checked) => checked,
                    Err(error) => {
                        request.reply.send(Err(error));
                        continue;
                    }
                };
            // Rotate when this request does not fit: first make the batch so far
            // durable in the old segment (and acknowledge it: it is durable), then
            // seal it.
            if buffer_start + buffer.len() as u64 + frames_len > self.options.segment_bytes {
                let written =
                    self.sync_part(buffer, buffer_start, &mut part, synced, now_micros, started);
                if let Err(error) = written {
                    fail_requests(std::iter::once(request).chain(requests.by_ref()), &error);
                    return;
                }
                synced = (self.next_position, self.last_hash);
                let rotated = self.rotate();
                // Whether or not a new segment was started, the next frame goes
                // where the data now ends (never over the records just synced).
                buffer_start = self.write_offset;
                if let Err(error) = rotated {
                    // Nothing of this request was written. A full disk fails it
                    // alone and the batch goes on in the old segment; anything else
                    // poisoned the log, and nothing more of the batch is written.
                    let error = self.poison_unless_recoverable(error);
                    if matches!(error, StoreError::DiskFull(_)) {
                        request.reply.send(Err(error));
                        continue;
                    }
                    fail_requests(std::iter::once(request).chain(requests.by_ref()), &error);
                    return;
                }
            }
            let stream = request.stream.clone();
            let last_revision = self.stage(
                request,
                first_revision,
                now_micros,
                buffer,
                buffer_start,
                &mut part,
            );
            batch_heads.insert(stream, last_revision);
        }
        drop(requests);
        let written = self.sync_part(buffer, buffer_start, &mut part, synced, now_micros, started);
        if let Err(error) = written {
            tracing::debug!(%error, "batch not written");
        }
    }

    /// The first revision and frame bytes of `request` if it may be appended:
    /// its expected revision holds (against the index and this batch so far) and
    /// its records fit the limits.
    fn check_request(
        &self,
        request: &WriteRequest,
        batch_heads: &HashMap<String, u64>,
        now_micros: i64,
    ) -> Result<(u64, u64), StoreError> {
        let current = match batch_heads.get(&request.stream) {
            Some(&revision) => Some(revision),
            None => self.shared.index.read().last_revision(&request.stream),
        };
        if !request.expected.matches(current) {
            return Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                actual: current,
            });
        }
        let first_revision = current.map_or(0, |r| r + 1);
        let frames_len = self.frames_len(request, first_revision, now_micros)?;
        Ok((first_revision, frames_len))
    }

    /// Encodes `request` into `buffer` (which starts at `buffer_start` in the
    /// active segment), advances the chain and adds it to `part`; returns the
    /// stream's new last revision.
    fn stage(
        &mut self,
        request: WriteRequest,
        first_revision: u64,
        now_micros: i64,
        buffer: &mut Vec<u8>,
        buffer_start: u64,
        part: &mut Unsynced,
    ) -> u64 {
        let stream_index = part.streams.len();
        let segment = self.segment;
        let staged = &mut part.staged;
        let last_hash = self.encode_request(
            &request,
            first_revision,
            now_micros,
            buffer,
            |start, end| {
                staged.push(Staged {
                    stream_index,
                    segment,
                    offset: buffer_start + start as u64,
                    frame_end: buffer_start + end as u64,
                });
            },
        );
        let count = request.events.len() as u64;
        let result = AppendResult {
            first_revision,
            last_revision: first_revision + count - 1,
            first_position: self.next_position,
            position: self.next_position + count - 1,
        };
        self.next_position += count;
        self.last_hash = last_hash;
        part.event_count += count;
        part.streams.push(request.stream);
        let last_revision = result.last_revision;
        part.pending.push(Pending {
            reply: request.reply,
            result,
        });
        last_revision
    }

    /// Writes `buffer` (the frames of `part`) at `offset` and syncs, then publishes
    /// and acknowledges `part`. On a failure its requests get the error and the
    /// chain goes back to `synced`, so nothing of `part` counts as written.
    fn sync_part(
        &mut self,
        buffer: &mut Vec<u8>,
        offset: u64,
        part: &mut Unsynced,
        synced: (u64, [u8; 32]),
        now_micros: i64,
        started: Instant,
    ) -> Result<(), StoreError> {
        let part = std::mem::take(part);
        if part.pending.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.write_and_sync(buffer, offset) {
            (self.next_position, self.last_hash) = synced;
            buffer.clear();
            self.fail_all(part.pending, &error);
            return Err(error);
        }
        self.write_offset = offset + buffer.len() as u64;
        buffer.clear();
        self.last_micros = now_micros;
        self.publish(&part.staged, &part.streams, now_micros);
        metrics::counter!("tutorlog_log_appends_total").increment(part.pending.len() as u64);
        metrics::counter!("tutorlog_log_events_total").increment(part.event_count);
        metrics::counter!("tutorlog_log_fsync_batches_total").increment(1);
        metrics::histogram!("tutorlog_log_batch_appends").record(part.pending.len() as f64);
        metrics::histogram!("tutorlog_log_commit_seconds").record(started.elapsed().as_secs_f64());
        for entry in part.pending {
            entry.reply.send(Ok(entry.result));
        }
        Ok(())
    }

    /// The record body of event `i` of `request`, chained to `prev_hash`.
    fn body<'a>(
        &self,
        request: &'a WriteRequest,
        event: &'a NewEvent,
        i: usize,
        first_revision: u64,
        now_micros: i64,
        prev_hash: [u8; 32],
    ) -> RecordBodyRef<'a> {
        RecordBodyRef {
            format: RECORD_FORMAT,
            prev_hash,
            position: self.next_position + i as u64,
            revision: first_revision + i as u64,
            recorded_at_micros: now_micros,
            event_id: *event.event_id.as_bytes(),
            correlation_id: event.correlation_id.map(|id| *id.as_bytes()),
            causation_id: event.causation_id.map(|id| *id.as_bytes()),
            schema_version: event.schema_version,
            stream: &request.stream,
            event_type: &event.event_type,
            payload: &event.payload,
        }
    }

    /// Bytes the frames of `request` will take, computed from the field lengths
    /// without encoding; refuses a record over the body limit or a request larger
    /// than a segment (before anything is written or rotated).
    fn frames_len(
        &self,
        request: &WriteRequest,
        first_revision: u64,
        now_micros: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for (i, event) in request.events.iter().enumerate() {
            let len = self
                .body(request, event, i, first_revision, now_micros, [0; 32])
                .encoded_len();
            if len > codec::RECORD_BODY_BYTES_MAX {
                return Err(StoreError::InvalidInput(format!(
                    "record of {len} bytes exceeds the limit"
                )));
            }
            total += (FRAME_HEADER_BYTES + len) as u64;
        }
        if total + FRAME_HEADER_BYTES as u64 > self.options.segment_bytes {
            return Err(StoreError::InvalidInput(
                "append is larger than a segment".into(),
            ));
        }
        Ok(total)
    }

    /// Encodes the frames of `request` straight into `buffer` (a reserved header,
    /// the body, then length and CRC filled in place), calling `frame(start, end)`
    /// with each frame's extent in `buffer`; returns the hash of the last body.
    /// [`Writer::frames_len`] must have accepted the request.
    fn encode_request(
        &self,
        request: &WriteRequest,
        first_revision: u64,
        now_micros: i64,
        buffer: &mut Vec<u8>,
        mut frame: impl FnMut(usize, usize),
    ) -> [u8; 32] {
        let mut prev_hash = self.last_hash;
        for (i, event) in request.events.iter().enumerate() {
            let body = self.body(request, event, i, first_revision, now_micros, prev_hash);
            let start = buffer.len();
            buffer.reserve(FRAME_HEADER_BYTES + body.encoded_len());
            buffer.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
            codec::encode_record_into(&body, buffer);
            let (header, body) = buffer[start..].split_at_mut(FRAME_HEADER_BYTES);
            fill_frame_header(header, body);
            prev_hash = *blake3::hash(body).as_bytes();
            frame(start, buffer.len());
        }
        prev_hash
    }

    /// Writes `buffer` at `offset` and makes it durable. A full disk met while
    /// zero-filling room for it fails the batch with `DiskFull` and leaves the log
    /// writable; any other failure poisons the store.
    fn write_and_sync(&mut self, buffer: &[u8], offset: u64) -> Result<(), StoreError> {
        if buffer.is_empty() {
            return Ok(());
        }
        // Keep a zero header after the data, so an interrupted write is always
        // followed by zeros and never mistaken for a damaged final record. The helper
        // normally keeps the zeros ahead; a commit zero-fills only when it has
        // caught up with it.
        let end = offset + buffer.len() as u64;
        let path = segment_path(&self.shared.dir, self.segment);
        self.ensure_zeros(end + FRAME_HEADER_BYTES as u64, &path)?;
        // The data only overwrites zeros that are allocated and synced, so on an
        // overwrite-in-place filesystem it cannot meet a full disk. Should the write
        // fail anyway (a copy-on-write filesystem, an I/O error), part of the batch
        // may sit in the page cache past the data: a later, shorter batch at the same
        // offset would leave valid-looking frames of this one behind it, which
        // recovery would rightly call damage. So this poisons, whatever the errno.
        self.file
            .write_all_at(buffer, offset)
            .map_err(|e| self.poison(StoreError::io(format!("writing {}", path.display()), e)))?;
        let sync_started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| self.poison(sync_error(format!("syncing {}", path.display()), e)))?;
        metrics::histogram!("tutorlog_log_fsync_seconds")
            .record(sync_started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Makes sure synced zeros reach `needed_end` in the active segment, waiting for
    /// the helper or zero-filling here.
    ///
    /// A full disk is not poison here: the zero-fill only wrote zeros past the end
    /// of the data (bytes no reader or recovery looks at: the data still ends at
    /// the first zero header) and did not sync, so no fsync is retried when the
    /// next commit tries again. `allocated` moves only after a fill and its sync
    /// both succeed, so the data never goes beyond what is known durable zeros.
    fn ensure_zeros(&self, needed_end: u64, path: &Path) -> Result<(), StoreError> {
        let mut state = self.filler.state.lock();
        if needed_end > state.allocated {
            self.filler.idle(&mut state);
        }
        // A failed fill other than a full disk (a failed sync, an I/O error) may
        // have lost dirty pages: poison, as a failed zero-fill inside a commit
        // always did.
        if matches!(&state.failed, Some(e) if !matches!(e, StoreError::DiskFull(_))) {
            let error = state
                .failed
                .take()
                .unwrap_or_else(|| StoreError::Poisoned("zero-fill failed".into()));
            drop(state);
            return Err(self.poison(error));
        }
        if needed_end <= state.allocated {
            return Ok(());
        }
        let from = state.allocated;
        let least = needed_end - from;
        let step = self
            .fill_step(from)
            .max(least)
            .max(state.target.saturating_sub(from));
        // On a nearly full disk a whole step may not fit where this batch does:
        // then fill just what it needs.
        let mut result = segment::zero_fill(&self.file, from, step, path).map(|()| step);
        if matches!(result, Err(StoreError::DiskFull(_))) && step > least {
            result = segment::zero_fill(&self.file, from, least, path).map(|()| least);
        }
        match result {
            Ok(filled) => {
                state.allocated = from + filled;
                // New zeros were allocated: the disk took bytes again. (A whole
                // step is not required: on a nearly full disk one may never fit
                // while appends succeed.)
                set_disk_full(&self.shared, false);
                state.failed = None;
                state.failed_at = None;
                metrics::counter!("tutorlog_log_zero_fills_in_commit_total").increment(1);
                Ok(())
            }
            Err(StoreError::DiskFull(reason)) => {
                // The helper need not try at once what just failed here.
                state.failed = Some(StoreError::DiskFull(reason.clone()));
                state.failed_at = Some(Instant::now());
                drop(state);
                tracing::warn!(%reason, "log disk full: append refused, the log stays writable");
                Err(StoreError::DiskFull(reason))
            }
            Err(error) => {
                drop(state);
                Err(self.poison(error))
            }
        }
    }

    /// One zero-fill step from `allocated`: the configured step, capped at the
    /// segment's end (plus room for the zero header after a full segment).
    fn fill_step(&self, allocated: u64) -> u64 {
        let room =
            (self.options.segment_bytes + FRAME_HEADER_BYTES as u64).saturating_sub(allocated);
        self.options.preallocate_bytes.min(room)
    }

    /// Asks the helper for the next zero-fill step once less than half a step of
    /// zeros (filled or already asked for) remains ahead of the data.
    fn fill_ahead(&self) {
        let mut state = self.filler.state.lock();
        // A full disk stopped the helper: let it try again now and then, so the zero
        // margin comes back by itself once space is freed.
        if matches!(state.failed, Some(StoreError::DiskFull(_)))
            && state
                .failed_at
                .is_none_or(|at| at.elapsed() >= FILL_RETRY_AFTER)
        {
            state.failed = None;
            state.failed_at = None;
            self.filler.changed.notify_all();
        }
        let ahead = state.target.max(state.allocated);
        let margin = ahead.saturating_sub(self.write_offset + FRAME_HEADER_BYTES as u64);
        if margin >= self.options.preallocate_bytes / 2 {
            return;
        }
        let step = self.fill_step(ahead);
        if step > 0 {
            state.target = ahead + step;
            self.filler.changed.notify_all();
        }
    }

    /// Seals the active segment (truncated to its data, synced) and starts the next.
    ///
    /// Fails with `DiskFull` (the log staying writable, in the old segment) only
    /// while no new segment exists under its real name; once it does, any failure
    /// poisons: writing on in the old segment would leave a sealed segment with a
    /// zero margin after its records, which recovery rightly refuses.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.shared.dir, self.segment);
        {
            // Stop the helper from touching the segment being sealed. Its zero margin
            // goes with the truncation below: should the rotation fail and the
            // writer stay in this segment, commits zero-fill again from the data end.
            let mut state = self.filler.state.lock();
            self.filler.idle(&mut state);
            state.allocated = self.write_offset;
            state.target = self.write_offset;
            state.failed = None;
            state.failed_at = None;
        }
        self.file
            .set_len(self.write_offset)
            .map_err(|e| classify_io(format!("sealing {}", path.display()), e))?;
        // A failed sync here must poison (see `sync_error`): as a full disk it
        // would have left the log writable and the next rotation syncing again.
        self.file
            .sync_all()
            .map_err(|e| sync_error(format!("syncing {}", path.display()), e))?;
        let next_id = self.segment + 1;
        let file = segment::create_segment(&self.shared.dir, next_id)?;
        let next_path = segment_path(&self.shared.dir, next_id);
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .read(!write)
                .write(write)
                .open(&next_path)
                .map_err(|e| StoreError::io(format!("opening {}", next_path.display()), e))
        };
        let read = open(false)?;
        let fill = open(true)?;
        {
            let mut index = self.shared.index.write();
            index.files.push(Arc::new(read));
            index.segment_ends.push(0);
        }
        self.file = Arc::new(file);
        self.segment = next_id;
        self.write_offset = 0;
        {
            let mut state = self.filler.state.lock();
            state.file = Some((Arc::new(fill), next_path));
            state.allocated = 0;
            state.target = 0;
            state.failed = None;
            state.failed_at = None;
        }
        metrics::counter!("tutorlog_log_segments_rotated_total").increment(1);
        Ok(())
    }

    fn publish(&self, staged: &[Staged], streams: &[String], now_micros: i64) {
        {
            let mut index = self.shared.index.write();
            for record in staged {
                index.push(
                    &streams[record.stream_index],
                    record.segment,
                    record.offset,
                    record.frame_end,
                );
            }
            index.last_hash = self.last_hash;
            index.last_micros = now_micros;
            debug_assert_eq!(index.next_position(), self.next_position);
        }
        self.shared.head.send_replace(self.next_position);
    }

    fn poison(&self, error: StoreError) -> StoreError {
        let reason = error.to_string();
        tracing::error!(%reason, "log write failed; refusing further writes until restart");
        metrics::counter!("tutorlog_log_poisoned_total").increment(1);
        *self.shared.poisoned.lock() = Some(reason.clone());
        match error {
            StoreError::DiskFull(_) => error,
            _ => StoreError::Poisoned(reason),
        }
    }

    /// A rotation that failed before writing anything leaves the log consistent, so a
    /// full disk is reported without poisoning; anything else poisons.
    fn poison_unless_recoverable(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::DiskFull(_) => {
                refused_for_full_disk(&self.shared, 1);
                error
            }
            other => self.poison(other),
        }
    }

    fn fail_all(&self, pending: Vec<Pending>, error: &StoreError) {
        if matches!(error, StoreError::DiskFull(_)) {
            refused_for_full_disk(&self.shared, pending.len());
        }
        for entry in pending {
            entry.reply.send(Err(error.clone_for_reply()));
        }
    }
}

/// Counts `appends` refused for a full disk and raises the disk-full flag and
/// gauge.
fn refused_for_full_disk(shared: &Shared, appends: usize) {
    metrics::counter!("tutorlog_log_disk_full_total").increment(appends as u64);
    set_disk_full(shared, true);
}

/// Sets the disk-full flag and its gauge. It is lowered only by a zero-fill that
/// allocated new zeros (the helper's, or a commit's), not by every durable
/// commit: on a full disk small appends that fit in zeros already allocated
/// succeed between refusals, and the gauge must not read "not full" while
/// writes are still being refused.
fn set_disk_full(shared: &Shared, full: bool) {
    shared
        .disk_full
        .store(full, std::sync::atomic::Ordering::SeqCst);
    metrics::gauge!("tutorlog_log_disk_full").set(if full { 1.0 } else { 0.0 });
}

impl StoreError {
    /// A copy of a write error to send to each waiting caller.
    pub(crate) fn clone_for_reply(&self) -> StoreError {
        match self {
            StoreError::DiskFull(reason) => StoreError::DiskFull(reason.clone()),
            StoreError::Poisoned(reason) => StoreError::Poisoned(reason.clone()),
            other => StoreError::Poisoned(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::super::{
        segment::{full_disk, list_segments, scan_segment, segment_path},
        verify::verify,
        EmbeddedStore, StoreOptions,
    };
    use crate::{conformance::test_event, AppendResult, EventStore, ExpectedRevision, StoreError};

    /// A log with `segment_bytes` segments and a 4 KiB zero-fill step, so the
    /// writer's disk-full paths are met within a few appends.
    fn open_small(dir: &Path, segment_bytes: u64) -> EmbeddedStore {
        let options = StoreOptions {
            segment_bytes,
            preallocate_bytes: 4096,
            ..StoreOptions::default()
        };
        EmbeddedStore::open_with(dir, options).expect("open")
    }

    /// Every acknowledged `(result, label)` reads back at its position, the log
    /// verifies, and a reopened log holds exactly them.
    fn assert_acknowledged_intact(
        dir: &Path,
        store: EmbeddedStore,
        acked: &[(AppendResult, String)],
    ) {
        let read = store.read_all_blocking(0, 100_000).expect("read");
        for (result, label) in acked {
            let event = read
                .get(result.position as usize)
                .unwrap_or_else(|| panic!("acknowledged position {} missing", result.position));
            assert_eq!(event.position, result.position);
            assert_eq!(
                String::from_utf8_lossy(&event.payload),
                label.as_str(),
                "position {} holds another record",
                result.position
            );
        }
        assert_eq!(
            read.len(),
            acked.len(),
            "only acknowledged events were written"
        );
        store.close();
        drop(store);
        let report = verify(dir).expect("the log verifies");
        assert_eq!(report.records as usize, acked.len());
        let reopened = EmbeddedStore::open(dir).expect("reopen");
        assert_eq!(
            reopened.read_all_blocking(0, 100_000).expect("read").len(),
            acked.len()
        );
    }

    /// A rotation refused for a full disk, in the middle of a batch, keeps the
    /// records the batch synced before it; the requests after it go where the data
    /// ends. (It used to write them at the batch's old start, over those records.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_refused_for_a_full_disk_keeps_what_its_batch_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let segment_bytes = 8 * 1024;
        let store = open_small(dir.path(), segment_bytes);
        let mut acked: Vec<(AppendResult, String)> = Vec::new();
        let mut refused = 0;
        for round in 0..10 {
            // Append one at a time until the helper has zero-filled the active
            // segment to its end: the burst below then needs no zeros before the
            // segment boundary, only a new segment after it.
            for i in 0..40 {
                let label = format!("r{round}-pre{i}-{}", "x".repeat(300));
                let result = store
                    .append("pre", ExpectedRevision::Any, vec![test_event(&label)])
                    .await
                    .expect("append before the disk fills");
                acked.push((result, label));
                tokio::time::sleep(Duration::from_millis(2)).await;
                let (ids, _) = list_segments(dir.path()).expect("list");
                let active = segment_path(dir.path(), *ids.last().expect("a segment"));
                if std::fs::metadata(&active).map_or(0, |m| m.len()) >= segment_bytes + 8 {
                    break;
                }
            }
            full_disk::set(dir.path(), true);
            let burst: Vec<_> = (0..40)
                .map(|i| {
                    let store = store.clone();
                    let label = format!("r{round}-burst{i}-{}", "y".repeat(150));
                    tokio::spawn(async move {
                        let result = store
                            .append(
                                &format!("s{}", i % 4),
                                ExpectedRevision::Any,
                                vec![test_event(&label)],
                            )
                            .await;
                        (result, label)
                    })
                })
                .collect();
            for task in burst {
                match task.await.expect("task") {
                    (Ok(result), label) => acked.push((result, label)),
                    (Err(StoreError::DiskFull(_)), _) => refused += 1,
                    (Err(other), _) => panic!("expected a full disk, got {other}"),
                }
            }
            full_disk::set(dir.path(), false);
            assert_eq!(store.poisoned(), None, "a refused rotation does not poison");
        }
        assert!(refused > 0, "some appends met the full disk at a rotation");
        assert_acknowledged_intact(dir.path(), store, &acked);
    }

    /// The disk-full flag (and so the gauge `tutorlog_log_disk_full`) stays up
    /// while the disk is full even when a small append, fitting in zeros already
    /// allocated, succeeds between refusals; it comes down once space is freed and
    /// a zero-fill allocates new space. (The gauge used to drop to 0 on any durable
    /// commit, so it read "not full" while writes were being refused: seen in the
    /// long disk-full suite.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_disk_full_flag_stays_up_while_small_appends_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_small(dir.path(), 64 * 1024);
        let mut acked: Vec<(AppendResult, String)> = Vec::new();
        let mut fitted_while_full = 0;
        for round in 0..6 {
            full_disk::set(dir.path(), true);
            // Fill what is allocated with ever smaller appends: the first refusal
            // raises the flag; smaller ones may still fit after it.
            let mut refused = false;
            let mut size = 1500;
            while size > 0 {
                let label = format!("r{round}-{size}-{}", "f".repeat(size));
                match store
                    .append("s", ExpectedRevision::Any, vec![test_event(&label)])
                    .await
                {
                    Ok(result) => {
                        acked.push((result, label));
                        if refused {
                            fitted_while_full += 1;
                            assert!(
                                store.disk_full(),
                                "round {round}: an append that fitted cleared the flag"
                            );
                        }
                    }
                    Err(StoreError::DiskFull(_)) => {
                        refused = true;
                        assert!(store.disk_full(), "round {round}: refused, flag up");
                        size /= 2;
                    }
                    Err(other) => panic!("expected a full disk, got {other}"),
                }
            }
            assert!(
                refused,
                "round {round}: the disk-full injection refused nothing"
            );
            full_disk::set(dir.path(), false);
            // Once space is freed, appends zero-fill new space again.
            for i in 0..100 {
                if !store.disk_full() {
                    break;
                }
                let label = format!("r{round}-free{i}-{}", "g".repeat(1500));
                let result = store
                    .append("s", ExpectedRevision::Any, vec![test_event(&label)])
                    .await
                    .expect("appends work once space is freed");
                acked.push((result, label));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(!store.disk_full(), "round {round}: the flag came down");
        }
        assert!(
            fitted_while_full > 0,
            "no small append fitted after a refusal in any round"
        );
        assert_acknowledged_intact(dir.path(), store, &acked);
    }

    /// A full disk met while zero-filling refuses the batch with `DiskFull` but does
    /// not poison the log: once space is freed appends work again, without a
    /// reopen, at the next position (the refused batch left no gap in the chain).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_refuses_appends_until_space_is_freed_without_poisoning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_small(dir.path(), 64 * 1024);
        let mut acked: Vec<(AppendResult, String)> = Vec::new();
        for cycle in 0..3 {
            full_disk::set(dir.path(), true);
            let mut refused = 0;
            for i in 0..200 {
                let label = format!("c{cycle}-{i}-{}", "z".repeat(200));
                match store
                    .append("s", ExpectedRevision::Any, vec![test_event(&label)])
                    .await
                {
                    Ok(result) => acked.push((result, label)),
                    Err(StoreError::DiskFull(_)) => refused += 1,
                    Err(other) => panic!("append {i}: expected a full disk, got {other}"),
                }
                if refused == 5 {
                    break;
                }
            }
            assert_eq!(
                refused, 5,
                "the zero margin ran out and appends were refused"
            );
            assert_eq!(
                store.poisoned(),
                None,
                "a full disk does not poison the log"
            );
            full_disk::set(dir.path(), false);
            let label = format!("c{cycle}-after");
            let result = store
                .append("s", ExpectedRevision::Any, vec![test_event(&label)])
                .await
                .expect("appends work again once space is freed");
            assert_eq!(
                result.position,
                acked.len() as u64,
                "no gap after the refusals"
            );
            acked.push((result, label));
        }
        assert_acknowledged_intact(dir.path(), store, &acked);
    }

    /// A sync that fails is an I/O error, never a full disk, whatever its errno:
    /// the writer poisons on it instead of syncing again later.
    #[test]
    fn a_failed_sync_is_never_a_full_disk() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(enospc.kind(), std::io::ErrorKind::StorageFull);
        let error = super::sync_error("syncing x".into(), enospc);
        assert!(matches!(error, StoreError::Io { .. }), "{error:?}");
        let write = super::classify_io("writing x".into(), std::io::Error::from_raw_os_error(28));
        assert!(matches!(write, StoreError::DiskFull(_)), "{write:?}");
    }

    /// Open files of `path` in this process that can write it, from /proc.
    fn writable_handles(path: &Path) -> usize {
        let mut count = 0;
        for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
            let entry = entry.expect("fd entry");
            if std::fs::read_link(entry.path()).ok().as_deref() != Some(path) {
                continue;
            }
            let info = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
            let flags = std::fs::read_to_string(info).unwrap_or_default();
            let flags = flags
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            // O_WRONLY = 1, O_RDWR = 2.
            if flags & 3 != 0 {
                count += 1;
            }
        }
        count
    }

    /// The zero-fill helper syncs the active segment through its own open file,
    /// not the writer's: Linux reports a writeback error once per open file, so a
    /// shared one would let the helper's sync swallow an error of the writer's
    /// data and the writer's `fdatasync` succeed. Two writable handles, also after
    /// a rotation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_zero_fill_helper_syncs_through_its_own_open_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_small(dir.path(), 8 * 1024);
        let first = std::fs::canonicalize(segment_path(dir.path(), 0)).expect("segment 0");
        assert_eq!(writable_handles(&first), 2, "writer and helper");
        for i in 0..60 {
            store
                .append(
                    "s",
                    ExpectedRevision::Any,
                    vec![test_event(&format!("{i}-{}", "w".repeat(300)))],
                )
                .await
                .expect("append");
        }
        let (ids, _) = list_segments(dir.path()).expect("list");
        let active = *ids.last().expect("segments");
        assert!(active > 0, "rotated");
        let path = std::fs::canonicalize(segment_path(dir.path(), active)).expect("active");
        assert_eq!(
            writable_handles(&path),
            2,
            "writer and helper after a rotation"
        );
        store.close();
    }

    /// After every acknowledged append the active segment's data is followed by a
    /// zero frame header, whether the helper or the commit zero-filled it, across
    /// rotations and a range of append sizes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zeros_always_follow_the_acknowledged_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_small(dir.path(), 64 * 1024);
        let mut written = 0;
        for i in 0..200usize {
            let events: Vec<_> = (0..1 + i % 7)
                .map(|n| test_event(&format!("e{i}-{n}")))
                .collect();
            written += events.len();
            store
                .append(&format!("s-{}", i % 3), ExpectedRevision::Any, events)
                .await
                .expect("append");
            let (ids, _) = list_segments(dir.path()).expect("list");
            let active = *ids.last().expect("a segment");
            let path = segment_path(dir.path(), active);
            let bytes = std::fs::read(&path).expect("read");
            let end = scan_segment(&path, &bytes, false, |_, _| Ok(())).expect("scan");
            assert_eq!(end.torn, None);
            let end = end.data_end as usize;
            let header = bytes
                .get(end..end + 8)
                .expect("a zero header after the data");
            assert!(header.iter().all(|&b| b == 0), "append {i}: {header:?}");
        }
        store.close();
        let read = store.read_all_blocking(0, 10_000).expect("read");
        assert_eq!(read.len(), written);
    }
}
