//! The single writer thread and its group commit.
//!
//! One loop iteration: block for the first request, drain up to
//! [`BATCH_REQUESTS_MAX`] more without waiting, check each request's expected
//! revision (against the index plus the batch's own earlier requests), encode and
//! chain its records, write the whole batch with one `pwrite`, `fdatasync` once,
//! publish to the index and the head watch, then reply to every request. No request
//! is acknowledged before the sync that covers it returns.
//!
//! A failed write or sync poisons the store (the fjall/TigerBeetle rule: never retry
//! an fsync, whose failure may have dropped dirty pages): every pending and later
//! append fails until the log is reopened and recovered from disk. Failing to start
//! a new segment (a full disk) is different: nothing was written, so the request
//! fails with `DiskFull` and later appends try again.

use std::{collections::HashMap, fs::File, os::unix::fs::FileExt, sync::Arc, time::Instant};

use tokio::sync::{mpsc, oneshot};
use tutorlog_schemas::{
    codec::{self, RecordBody, RECORD_FORMAT},
    NewEvent,
};

use super::{
    frame::{encode_frame, FRAME_HEADER_BYTES},
    segment::{self, classify_io, segment_path},
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
    file: File,
    segment: u32,
    /// Offset where the next frame goes (end of data written so far).
    write_offset: u64,
    /// End of the zero-filled region of the active segment.
    allocated: u64,
    next_position: u64,
    last_hash: [u8; 32],
    last_micros: i64,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        options: StoreOptions,
        file: File,
        segment: u32,
        data_end: u64,
    ) -> Self {
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
            allocated: data_end,
            next_position,
            last_hash,
            last_micros,
        }
    }

    pub fn run(mut self, mut receiver: mpsc::Receiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(64);
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
        let mut buffer: Vec<u8> = Vec::new();
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
            let encoded = match self.encode_request(&request, first_revision, now_micros) {
                Ok(encoded) => encoded,
                Err(error) => {
                    let _ignored_if_caller_left = request.reply.send(Err(error));
                    continue;
                }
            };
            let frames_len = encoded.bytes.len() as u64;
            // Rotate when this request does not fit: first make the batch so far
            // durable in the old segment, then seal it.
            if buffer_start + buffer.len() as u64 + frames_len > self.options.segment_bytes {
                if let Err(error) = self.write_and_sync(&buffer, buffer_start) {
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
            let base = buffer_start + buffer.len() as u64;
            let stream_index = streams.len();
            for (relative, frame_end) in encoded.frames {
                staged.push(Staged {
                    stream_index,
                    segment: self.segment,
                    offset: base + relative,
                    frame_end: base + frame_end,
                });
            }
            buffer.extend_from_slice(&encoded.bytes);
            let count = request.events.len() as u64;
            let last_revision = first_revision + count - 1;
            let result = AppendResult {
                first_revision,
                last_revision,
                first_position: self.next_position,
                position: self.next_position + count - 1,
            };
            self.next_position += count;
            self.last_hash = encoded.last_hash;
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
        if let Err(error) = self.write_and_sync(&buffer, buffer_start) {
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

    fn encode_request(
        &self,
        request: &WriteRequest,
        first_revision: u64,
        now_micros: i64,
    ) -> Result<EncodedRequest, StoreError> {
        let mut bytes = Vec::new();
        let mut frames = Vec::with_capacity(request.events.len());
        let mut prev_hash = self.last_hash;
        for (i, event) in request.events.iter().enumerate() {
            let body = RecordBody {
                format: RECORD_FORMAT,
                prev_hash,
                position: self.next_position + i as u64,
                revision: first_revision + i as u64,
                recorded_at_micros: now_micros,
                event_id: *event.event_id.as_bytes(),
                correlation_id: event.correlation_id.map(|id| *id.as_bytes()),
                causation_id: event.causation_id.map(|id| *id.as_bytes()),
                schema_version: event.schema_version,
                stream: request.stream.clone(),
                event_type: event.event_type.clone(),
                payload: event.payload.clone(),
            };
            let encoded = codec::encode_record(&body)?;
            if encoded.len() > codec::RECORD_BODY_BYTES_MAX {
                return Err(StoreError::InvalidInput(format!(
                    "record of {} bytes exceeds the limit",
                    encoded.len()
                )));
            }
            let start = bytes.len() as u64;
            encode_frame(&encoded, &mut bytes);
            frames.push((start, bytes.len() as u64));
            prev_hash = *blake3::hash(&encoded).as_bytes();
        }
        if bytes.len() as u64 + FRAME_HEADER_BYTES as u64 > self.options.segment_bytes {
            return Err(StoreError::InvalidInput(
                "append is larger than a segment".into(),
            ));
        }
        Ok(EncodedRequest {
            bytes,
            frames,
            last_hash: prev_hash,
        })
    }

    /// Writes `buffer` at `offset` and makes it durable; poisons the store on failure.
    fn write_and_sync(&mut self, buffer: &[u8], offset: u64) -> Result<(), StoreError> {
        if buffer.is_empty() {
            return Ok(());
        }
        // Keep a zero header after the data, so an interrupted write is always
        // followed by zeros and never mistaken for a damaged final record.
        let end = offset + buffer.len() as u64;
        let needed_end = end + FRAME_HEADER_BYTES as u64;
        if needed_end > self.allocated {
            let needed = needed_end - self.allocated;
            let room = (self.options.segment_bytes + FRAME_HEADER_BYTES as u64)
                .saturating_sub(self.allocated);
            let grow = self.options.preallocate_bytes.min(room).max(needed);
            let path = segment_path(&self.shared.dir, self.segment);
            segment::zero_fill(&mut self.file, grow, &path).map_err(|e| self.poison(e))?;
            self.allocated += grow;
        }
        let path = segment_path(&self.shared.dir, self.segment);
        self.file
            .write_all_at(buffer, offset)
            .map_err(|e| self.poison(classify_io(format!("writing {}", path.display()), e)))?;
        let sync_started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| self.poison(classify_io(format!("syncing {}", path.display()), e)))?;
        metrics::histogram!("tutorlog_log_fsync_seconds")
            .record(sync_started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Seals the active segment (truncated to its data, synced) and starts the next.
    fn rotate(&mut self) -> Result<(), StoreError> {
        let path = segment_path(&self.shared.dir, self.segment);
        self.file
            .set_len(self.write_offset)
            .map_err(|e| classify_io(format!("sealing {}", path.display()), e))?;
        self.file
            .sync_all()
            .map_err(|e| classify_io(format!("syncing {}", path.display()), e))?;
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
        self.file = file;
        self.segment = next_id;
        self.write_offset = 0;
        self.allocated = 0;
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

struct EncodedRequest {
    bytes: Vec<u8>,
    /// (start, end) of each frame relative to `bytes`.
    frames: Vec<(u64, u64)>,
    last_hash: [u8; 32],
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
