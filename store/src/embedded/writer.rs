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
//! append fails until the log is reopened and recovered from disk. Failing to start
//! a new segment (a full disk) is different: nothing was written, so the request
//! fails with `DiskFull` and later appends try again.

use std::{
    collections::HashMap, fs::File, os::unix::fs::FileExt, path::PathBuf, sync::Arc,
    thread::JoinHandle, time::Instant,
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
use crate::{AppendResult, ExpectedRevision, StoreError};

/// Most requests in one group commit.
pub const BATCH_REQUESTS_MAX: usize = 4096;
/// A batch stops growing once its encoded size passes this.
pub const BATCH_BYTES_SOFT_MAX: usize = 32 * 1024 * 1024;

/// One append waiting for the writer.
pub struct WriteRequest {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
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
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    result: AppendResult,
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
}

struct FillState {
    /// The active segment and its path; `None` while it is being sealed.
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
                    metrics::counter!("tutorlog_log_zero_fills_ahead_total").increment(1);
                    metrics::histogram!("tutorlog_log_zero_fill_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                Err(error) => {
                    tracing::warn!(%error, "zero-filling the log ahead failed");
                    state.failed = Some(error);
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
    pub fn new(
        shared: Arc<Shared>,
        options: StoreOptions,
        file: File,
        segment: u32,
        data_end: u64,
    ) -> Self {
        let file = Arc::new(file);
        let filler = Arc::new(Filler {
            state: Mutex::new(FillState {
                file: Some((Arc::clone(&file), segment_path(&shared.dir, segment))),
                allocated: data_end,
                target: data_end,
                busy: false,
                failed: None,
                stop: false,
            }),
            changed: Condvar::new(),
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
            while batch.len() < BATCH_REQUESTS_MAX && bytes < BATCH_BYTES_SOFT_MAX {
                match receiver.try_recv() {
                    Ok(request) => {
                        bytes += request
                            .events
                            .iter()
                            .map(|e| e.payload.len())
                            .sum::<usize>();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
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

    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        if let Some(reason) = self.shared.poisoned.lock().clone() {
            for request in batch.drain(..) {
                let _ignored_if_caller_left = request
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
        let mut staged: Vec<Staged> = Vec::new();
        let mut streams: Vec<String> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        // Revisions decided in this batch but not yet in the index.
        let mut batch_heads: HashMap<String, u64> = HashMap::new();
        let mut event_count = 0u64;

        for request in batch.drain(..) {
            let current = match batch_heads.get(&request.stream) {
                Some(&revision) => Some(revision),
                None => self.shared.index.read().last_revision(&request.stream),
            };
            if !request.expected.matches(current) {
                let error = StoreError::WrongExpectedRevision {
                    stream: request.stream,
                    expected: request.expected,
                    actual: current,
                };
                let _ignored_if_caller_left = request.reply.send(Err(error));
                continue;
            }
            let first_revision = current.map_or(0, |r| r + 1);
            let frames_len = match self.frames_len(&request, first_revision, now_micros) {
                Ok(frames_len) => frames_len,
                Err(error) => {
                    let _ignored_if_caller_left = request.reply.send(Err(error));
                    continue;
                }
            };
            // Rotate when this request does not fit: first make the batch so far
            // durable in the old segment, then seal it.
            if buffer_start + buffer.len() as u64 + frames_len > self.options.segment_bytes {
                if let Err(error) = self.write_and_sync(buffer, buffer_start) {
                    let _ignored = request.reply.send(Err(error.clone_for_reply()));
                    self.fail_all(pending, &error);
                    return;
                }
                self.write_offset = buffer_start + buffer.len() as u64;
                buffer.clear();
                if let Err(error) = self.rotate() {
                    // Nothing of this request was written: fail it alone, keep going.
                    let error = self.poison_unless_recoverable(error);
                    let _ignored_if_caller_left = request.reply.send(Err(error));
                    continue;
                }
                buffer_start = self.write_offset;
            }
            let stream_index = streams.len();
            let segment = self.segment;
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
            let last_revision = first_revision + count - 1;
            let result = AppendResult {
                first_revision,
                last_revision,
                first_position: self.next_position,
                position: self.next_position + count - 1,
            };
            self.next_position += count;
            self.last_hash = last_hash;
            event_count += count;
            batch_heads.insert(request.stream.clone(), last_revision);
            streams.push(request.stream);
            pending.push(Pending {
                reply: request.reply,
                result,
            });
        }
        if pending.is_empty() {
            return;
        }
        if let Err(error) = self.write_and_sync(buffer, buffer_start) {
            self.fail_all(pending, &error);
            return;
        }
        self.write_offset = buffer_start + buffer.len() as u64;
        self.last_micros = now_micros;
        self.publish(&staged, &streams, now_micros);
        metrics::counter!("tutorlog_log_appends_total").increment(pending.len() as u64);
        metrics::counter!("tutorlog_log_events_total").increment(event_count);
        metrics::counter!("tutorlog_log_fsync_batches_total").increment(1);
        metrics::histogram!("tutorlog_log_batch_appends").record(pending.len() as f64);
        metrics::histogram!("tutorlog_log_commit_seconds").record(started.elapsed().as_secs_f64());
        for entry in pending {
            let _ignored_if_caller_left = entry.reply.send(Ok(entry.result));
        }
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

    /// Writes `buffer` at `offset` and makes it durable; poisons the store on failure.
    fn write_and_sync(&mut self, buffer: &[u8], offset: u64) -> Result<(), StoreError> {
        if buffer.is_empty() {
            return Ok(());
        }
        // Keep a zero header after the data, so an interrupted write is always
        // followed by zeros and never mistaken for a damaged final record. The helper
        // normally keeps the zeros ahead; a commit zero-fills only when it has
        // caught up with it.
        let end = offset + buffer.len() as u64;
        let needed_end = end + FRAME_HEADER_BYTES as u64;
        let path = segment_path(&self.shared.dir, self.segment);
        {
            let mut state = self.filler.state.lock();
            if needed_end > state.allocated {
                self.filler.idle(&mut state);
            }
            // A failed fill other than a full disk may have lost dirty pages: poison,
            // as a failed zero-fill inside a commit always did. A full disk is
            // retried below, only if this commit needs the space.
            if matches!(&state.failed, Some(e) if !matches!(e, StoreError::DiskFull(_))) {
                let error = state
                    .failed
                    .take()
                    .unwrap_or_else(|| StoreError::Poisoned("zero-fill failed".into()));
                drop(state);
                return Err(self.poison(error));
            }
            if needed_end > state.allocated {
                state.failed = None;
                let from = state.allocated;
                let grow = self
                    .fill_step(from)
                    .max(needed_end - from)
                    .max(state.target.saturating_sub(from));
                let result = segment::zero_fill(&self.file, from, grow, &path);
                if let Err(error) = result {
                    drop(state);
                    return Err(self.poison(error));
                }
                state.allocated = from + grow;
                metrics::counter!("tutorlog_log_zero_fills_in_commit_total").increment(1);
            }
        }
        self.file
            .write_all_at(buffer, offset)
            .map_err(|e| self.poison(classify_io(format!("writing {}", path.display()), e)))?;
        let sync_started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| self.poison(sync_error(format!("syncing {}", path.display()), e)))?;
        metrics::histogram!("tutorlog_log_fsync_seconds")
            .record(sync_started.elapsed().as_secs_f64());
        Ok(())
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
        let read = File::open(&next_path)
            .map_err(|e| StoreError::io(format!("opening {}", next_path.display()), e))?;
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
            state.file = Some((Arc::clone(&self.file), next_path));
            state.allocated = 0;
            state.target = 0;
            state.failed = None;
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
                metrics::counter!("tutorlog_log_disk_full_total").increment(1);
                error
            }
            other => self.poison(other),
        }
    }

    fn fail_all(&self, pending: Vec<Pending>, error: &StoreError) {
        for entry in pending {
            let _ignored_if_caller_left = entry.reply.send(Err(error.clone_for_reply()));
        }
    }
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
    use super::super::{
        segment::{list_segments, scan_segment, segment_path},
        EmbeddedStore, StoreOptions,
    };
    use crate::{conformance::test_event, EventStore, ExpectedRevision, StoreError};

    /// A sync that fails is an I/O error, never a full disk, whatever its errno:
    /// the writer poisons on it instead of syncing again later. (A failed sync of
    /// a segment being sealed used to be a full disk on ENOSPC, so the next
    /// rotation synced again.) A write that meets a full disk is one.
    #[test]
    fn a_failed_sync_is_never_a_full_disk() {
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(enospc.kind(), std::io::ErrorKind::StorageFull);
        let error = super::sync_error("syncing x".into(), enospc);
        assert!(matches!(error, StoreError::Io { .. }), "{error:?}");
        let write = super::classify_io("writing x".into(), std::io::Error::from_raw_os_error(28));
        assert!(matches!(write, StoreError::DiskFull(_)), "{write:?}");
    }

    /// After every acknowledged append the active segment's data is followed by a
    /// zero frame header, whether the helper or the commit zero-filled it, across
    /// rotations and a range of append sizes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zeros_always_follow_the_acknowledged_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            segment_bytes: 64 * 1024,
            preallocate_bytes: 4096,
        };
        let store = EmbeddedStore::open_with(dir.path(), options).expect("open");
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
