//! The index checkpoint, `index.ckpt`: the in-memory [`Index`] as of some durable
//! position, so that opening a large log reads one file and scans only the records
//! after it instead of every record of every segment.
//!
//! # When it is written
//!
//! - on a clean close, after the writer made its last batch durable;
//! - in the background by the `tutorlog-log-checkpoint` thread, once a segment was
//!   sealed or [`CheckpointPolicy::every_records`] records were appended since the
//!   last checkpoint (so a crash costs at most about one segment of scanning);
//! - on demand with [`super::EmbeddedStore::checkpoint`].
//!
//! It only ever covers records that are already durable (it is built from the
//! index, which the writer publishes after `fdatasync`). It is written atomically:
//! `index.ckpt.tmp`, fsync, rename over `index.ckpt`, fsync of the directory; a
//! leftover temp file is removed by the next writer open like any other temp.
//!
//! # When it is trusted
//!
//! On open, a checkpoint is used only if every check passes; otherwise the open
//! logs why and falls back to the full scan, so a bad checkpoint costs time, never
//! correctness:
//! - the file: magic, format, length, section sizes, CRC32C over the whole file;
//! - its contents: frame lengths that add up to each segment's end, every position
//!   in exactly one stream, positions increasing within a stream, stream names
//!   UTF-8 and within the limits, record counts that add up;
//! - the segment files: every segment it covers exists; those before its last one
//!   are exactly as long as it says (sealed segments are truncated to their data),
//!   the last one at least as long; and the last record of **every** covered
//!   segment, read back from disk, passes its frame CRC and hashes (BLAKE3) to the
//!   hash the checkpoint recorded for it; the very last record also decodes to the
//!   checkpoint's last position, time, stream and revision.
//!
//! The open then scans the rest of the log as a full scan would (CRC, decode,
//! dense positions and revisions, time order, hash chain continuing from the
//! checkpoint's last hash). What it does *not* do is re-read the records inside
//! the covered prefix: those were checked when the checkpoint's index was built
//! (by a full scan, or by the writer that appended them). Reads still check every
//! frame's CRC, and `tutorlog audit verify` (a full scan that ignores the
//! checkpoint) still checks everything.
//!
//! # File format (version 1)
//!
//! Integers little-endian; `varint` is unsigned LEB128 (at most 10 bytes).
//!
//! | offset | bytes | field |
//! |-------:|------:|-------|
//! | 0 | 8 | magic `TLIDXCK\0` |
//! | 8 | 2 | format `u16` = [`CHECKPOINT_FORMAT`] |
//! | 10 | 2 | zero |
//! | 12 | 4 | `segment_count: u32`: segments `0..segment_count` are covered; the last holds the last record |
//! | 16 | 8 | `record_count: u64`: positions `0..record_count` are covered (at least 1) |
//! | 24 | 8 | `stream_count: u64` |
//! | 32 | 8 | `last_micros: i64`: `recorded_at` of the last record |
//! | 40 | 32 | `last_hash`: BLAKE3 of the last record's body |
//! | 72 | 8 | `segments_bytes: u64` |
//! | 80 | 8 | `locations_bytes: u64` |
//! | 88 | 8 | `streams_bytes: u64` |
//! | 96 | 4 | CRC32C of bytes `100..` (the sections) followed by bytes `0..96` |
//! | 100 | … | segments: per segment, `end: varint` (data end covered), `records: varint`, BLAKE3 of its last record (32 bytes; zeros if it has none) |
//! | … | … | locations: per record in position order, its frame length (`varint`); each segment's records start at offset 0 and follow each other |
//! | … | … | streams: per stream, `name_bytes: varint`, the name (UTF-8), `count: varint`, the first position (`varint`), then `count - 1` gaps (`varint`, next − previous − 1) |
//!
//! The file must be exactly `100 + segments_bytes + locations_bytes +
//! streams_bytes` bytes. The sections are decoded on two threads (locations and
//! streams), since loading is on the restart path.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
    time::Duration,
};

use tutorlog_schemas::codec::{self, RECORD_BODY_BYTES_MAX};

use super::{
    frame::{read_frame, Frame, FRAME_HEADER_BYTES},
    index::{pack, Index},
    segment::{classify_io, sync_dir},
    Shared, SEGMENT_BYTES_MAX,
};
use crate::{StoreError, STREAM_NAME_BYTES_MAX};

/// Name of the checkpoint file in a log directory.
pub const CHECKPOINT_FILE_NAME: &str = "index.ckpt";
/// Name it is written under before the rename (ends in `.tmp`, so a writer open
/// removes a leftover one).
pub const CHECKPOINT_TEMP_FILE_NAME: &str = "index.ckpt.tmp";
/// Checkpoint layout version this build writes and reads.
pub const CHECKPOINT_FORMAT: u16 = 1;
/// Largest checkpoint file read (about 5 bytes per record: room for ~1.6 G records).
pub const CHECKPOINT_BYTES_MAX: u64 = 8 << 30;
/// Records whose locations are encoded under one hold of the index's read lock,
/// so the writer's publish never waits long behind a checkpoint.
const LOCK_CHUNK_RECORDS: u64 = 1 << 18;

const MAGIC: [u8; 8] = *b"TLIDXCK\0";
const CHECKSUM_OFFSET: usize = 96;
const HEADER_BYTES: usize = 100;
const HASH_BYTES: usize = 32;
const FRAME_BYTES_MIN: u64 = FRAME_HEADER_BYTES as u64 + 1;
const FRAME_BYTES_MAX: u64 = (FRAME_HEADER_BYTES + RECORD_BODY_BYTES_MAX) as u64;

const _: () = assert!(CHECKSUM_OFFSET + 4 == HEADER_BYTES);
const _: () = assert!(FRAME_BYTES_MAX < SEGMENT_BYTES_MAX);

/// When the index checkpoint is written (it is always read when present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Write checkpoints at all: on close, in the background and on demand.
    pub enabled: bool,
    /// A background checkpoint is written once this many records were appended
    /// since the last one; a sealed segment also triggers one.
    pub every_records: u64,
    /// How often the background thread looks at the log.
    pub poll_interval: Duration,
}

impl Default for CheckpointPolicy {
    /// Enabled, every 1,000,000 records or sealed segment, looked at every second.
    fn default() -> Self {
        CheckpointPolicy {
            enabled: true,
            every_records: 1_000_000,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What a checkpoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    /// Positions `0..records`.
    pub records: u64,
    /// Segments `0..segments`.
    pub segments: u32,
}

/// One covered segment, as written in the segments section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SegmentEntry {
    /// Data end covered (end of its last covered record).
    end: u64,
    /// Records of this segment covered.
    records: u64,
    /// BLAKE3 of the body of its last covered record (zeros if none).
    last_hash: [u8; HASH_BYTES],
}

// ---------------------------------------------------------------------------
// Varints.

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A cursor over one section; every read fails rather than run past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err("varint cut short".into());
            };
            self.at += 1;
            if shift == 63 && byte > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("{count} bytes wanted, {} left", self.remaining()))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn finish(&self, section: &str) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            left => Err(format!("{left} unread bytes at the end of the {section}")),
        }
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut out = [0u8; 2];
    out.copy_from_slice(&bytes[at..at + 2]);
    u16::from_le_bytes(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(out)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(out)
}

fn checksum(file: &[u8]) -> u32 {
    crc32c::crc32c_append(
        crc32c::crc32c(&file[HEADER_BYTES..]),
        &file[..CHECKSUM_OFFSET],
    )
}

// ---------------------------------------------------------------------------
// Writing.

/// Builds the checkpoint file of everything published so far, or `None` for an
/// empty log. Takes the index's read lock in short holds (chunks of locations, then
/// the stream table once).
fn encode(shared: &Shared) -> Result<Option<(Vec<u8>, Covered)>, StoreError> {
    let invariant = |reason: String| {
        StoreError::io(
            "building the index checkpoint",
            std::io::Error::other(reason),
        )
    };
    let (records, last_hash, last_micros, files) = {
        let index = shared.index.read();
        let records = index.next_position();
        let Some(last) = records.checked_sub(1) else {
            return Ok(None);
        };
        let (segment, _, _) = index
            .range_of(last)
            .ok_or_else(|| invariant(format!("position {last} has no location")))?;
        let files = index
            .files
            .get(..=segment as usize)
            .ok_or_else(|| invariant(format!("segment {segment} has no file")))?
            .to_vec();
        (records, index.last_hash, index.last_micros, files)
    };
    let mut segments = vec![SegmentEntry::default(); files.len()];
    let mut last_frame_bytes = vec![0u64; files.len()];
    let mut locations = Vec::with_capacity(usize::try_from(records * 2).unwrap_or(0));
    let mut position = 0u64;
    while position < records {
        let chunk_end = records.min(position + LOCK_CHUNK_RECORDS);
        let index = shared.index.read();
        for p in position..chunk_end {
            let (segment, start, end) = index
                .range_of(p)
                .ok_or_else(|| invariant(format!("position {p} has no location")))?;
            let entry = segments
                .get_mut(segment as usize)
                .ok_or_else(|| invariant(format!("position {p} is past the last segment")))?;
            if start != entry.end || end <= start {
                return Err(invariant(format!(
                    "position {p} at {start}..{end} does not follow {}",
                    entry.end
                )));
            }
            entry.end = end;
            entry.records += 1;
            last_frame_bytes[segment as usize] = end - start;
            put_varint(&mut locations, end - start);
        }
        drop(index);
        position = chunk_end;
    }
    let (streams, stream_count) = encode_streams(shared, records);
    for (segment, entry) in segments.iter_mut().enumerate() {
        if entry.records > 0 {
            entry.last_hash = frame_hash(
                &files[segment],
                entry.end - last_frame_bytes[segment],
                entry.end,
            )
            .map_err(|reason| invariant(format!("segment {segment}: {reason}")))?;
        }
    }
    if segments.last().map(|s| s.last_hash) != Some(last_hash) {
        return Err(invariant(
            "the last record read back does not hash to the index's last hash".into(),
        ));
    }
    let mut segments_section = Vec::with_capacity(segments.len() * (HASH_BYTES + 8));
    for entry in &segments {
        put_varint(&mut segments_section, entry.end);
        put_varint(&mut segments_section, entry.records);
        segments_section.extend_from_slice(&entry.last_hash);
    }
    let covered = Covered {
        records,
        segments: u32::try_from(segments.len())
            .map_err(|_| invariant("more than u32::MAX segments".into()))?,
    };
    let mut file =
        Vec::with_capacity(HEADER_BYTES + segments_section.len() + locations.len() + streams.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&CHECKPOINT_FORMAT.to_le_bytes());
    file.extend_from_slice(&[0, 0]);
    file.extend_from_slice(&covered.segments.to_le_bytes());
    file.extend_from_slice(&records.to_le_bytes());
    file.extend_from_slice(&stream_count.to_le_bytes());
    file.extend_from_slice(&last_micros.to_le_bytes());
    file.extend_from_slice(&last_hash);
    for section in [&segments_section, &locations, &streams] {
        file.extend_from_slice(&(section.len() as u64).to_le_bytes());
    }
    assert_eq!(file.len(), CHECKSUM_OFFSET);
    file.extend_from_slice(&[0; 4]);
    for section in [&segments_section, &locations, &streams] {
        file.extend_from_slice(section);
    }
    let crc = checksum(&file);
    file[CHECKSUM_OFFSET..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(Some((file, covered)))
}

/// The streams section for positions `0..records`, and how many streams it holds.
fn encode_streams(shared: &Shared, records: u64) -> (Vec<u8>, u64) {
    let index = shared.index.read();
    let mut out = Vec::with_capacity(index.streams.len() * 24 + records as usize);
    let mut count = 0u64;
    for (name, positions) in &index.streams {
        let covered = positions.partition_point(|&p| p < records);
        let Some((&first, rest)) = positions[..covered].split_first() else {
            continue;
        };
        put_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        put_varint(&mut out, covered as u64);
        put_varint(&mut out, first);
        let mut previous = first;
        for &p in rest {
            put_varint(&mut out, p - previous - 1);
            previous = p;
        }
        count += 1;
    }
    (out, count)
}

/// Reads the frame at `start..end` of `file` and returns the BLAKE3 of its body.
fn frame_hash(file: &File, start: u64, end: u64) -> Result<[u8; HASH_BYTES], String> {
    let length = usize::try_from(end - start).map_err(|_| "frame too long".to_string())?;
    let mut buf = vec![0u8; length];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| format!("reading the record at {start}: {e}"))?;
    match read_frame(&buf, 0) {
        Frame::Record { body, next } if next == length => Ok(*blake3::hash(body).as_bytes()),
        Frame::Record { next, .. } => Err(format!(
            "the record at {start} is {next} bytes, {length} expected"
        )),
        Frame::End => Err(format!("no record at {start}")),
        Frame::Bad { reason, .. } => Err(format!("the record at {start}: {reason}")),
    }
}

/// Writes a checkpoint of everything published so far (atomically: temp file,
/// fsync, rename, directory fsync). Returns what it covers; `None` for an empty log.
pub(crate) fn write(shared: &Shared) -> Result<Option<Covered>, StoreError> {
    let started = std::time::Instant::now();
    let Some((bytes, covered)) = encode(shared)? else {
        return Ok(None);
    };
    let encoded = started.elapsed();
    let temp = shared.dir.join(CHECKPOINT_TEMP_FILE_NAME);
    let result = write_file(&shared.dir, &temp, &bytes);
    if result.is_err() {
        if let Err(error) = fs::remove_file(&temp) {
            tracing::debug!(%error, "no index checkpoint temp file to remove");
        }
    }
    result?;
    metrics::counter!("tutorlog_log_checkpoints_total").increment(1);
    metrics::histogram!("tutorlog_log_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(
        records = covered.records,
        segments = covered.segments,
        bytes = bytes.len(),
        encode_ms = encoded.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "index checkpoint written"
    );
    Ok(Some(covered))
}

fn write_file(dir: &Path, temp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let context = |what: &str| format!("{what} {}", temp.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(|e| classify_io(context("creating"), e))?;
    file.write_all(bytes)
        .map_err(|e| classify_io(context("writing"), e))?;
    file.sync_all()
        .map_err(|e| classify_io(context("syncing"), e))?;
    drop(file);
    fs::rename(temp, dir.join(CHECKPOINT_FILE_NAME))
        .map_err(|e| classify_io(context("renaming into place"), e))?;
    sync_dir(dir)
}

// ---------------------------------------------------------------------------
// Loading.

/// A checkpoint that passed every check, and where the scan resumes.
pub(crate) struct Loaded {
    /// The index as of the checkpoint (without file handles).
    pub(crate) index: Index,
    /// What it covers.
    pub(crate) covered: Covered,
    /// The covered segments.
    segments: Vec<SegmentEntry>,
    /// The segment the scan resumes in (the checkpoint's last one) and the offset
    /// in it (the end of the last covered record).
    pub(crate) resume: (u32, u64),
}

/// Loads `dir`'s checkpoint and checks it against the segment `files` (by id).
/// `Ok(None)`: there is none. `Err(reason)`: there is one and it must not be used.
pub(crate) fn load(dir: &Path, files: &[Arc<File>]) -> Result<Option<Loaded>, String> {
    let path = dir.join(CHECKPOINT_FILE_NAME);
    let length = match fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot stat it: {error}")),
    };
    if length > CHECKPOINT_BYTES_MAX {
        return Err(format!(
            "it is {length} bytes, more than any checkpoint ({CHECKPOINT_BYTES_MAX})"
        ));
    }
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read it: {error}")),
    };
    let loaded = decode(&bytes)?;
    check_files(&loaded, files)?;
    Ok(Some(loaded))
}

/// The header fields.
struct Header {
    segment_count: u32,
    record_count: u64,
    stream_count: u64,
    last_micros: i64,
    last_hash: [u8; HASH_BYTES],
    sections: [usize; 3],
}

fn decode_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "it is {} bytes, shorter than the {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    let format = u16_at(bytes, 8);
    if format != CHECKPOINT_FORMAT {
        return Err(format!(
            "format {format}, this build reads {CHECKPOINT_FORMAT}"
        ));
    }
    if u16_at(bytes, 10) != 0 {
        return Err("reserved header bytes are not zero".into());
    }
    let stored = u32_at(bytes, CHECKSUM_OFFSET);
    let computed = checksum(bytes);
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let mut sections = [0usize; 3];
    let mut total = HEADER_BYTES as u64;
    for (n, section) in sections.iter_mut().enumerate() {
        let length = u64_at(bytes, 72 + 8 * n);
        total = total.saturating_add(length);
        *section = usize::try_from(length).map_err(|_| "section too long".to_string())?;
    }
    if total != bytes.len() as u64 {
        return Err(format!(
            "it is {} bytes, its header says {total}",
            bytes.len()
        ));
    }
    let mut last_hash = [0u8; HASH_BYTES];
    last_hash.copy_from_slice(&bytes[40..40 + HASH_BYTES]);
    Ok(Header {
        segment_count: u32_at(bytes, 12),
        record_count: u64_at(bytes, 16),
        stream_count: u64_at(bytes, 24),
        last_micros: u64_at(bytes, 32) as i64,
        last_hash,
        sections,
    })
}

/// Decodes and checks a checkpoint file on its own (not yet against the segments).
fn decode(bytes: &[u8]) -> Result<Loaded, String> {
    let header = decode_header(bytes)?;
    if header.record_count == 0 || header.segment_count == 0 {
        return Err("it covers no record".into());
    }
    let [segments_bytes, locations_bytes, _] = header.sections;
    let body = &bytes[HEADER_BYTES..];
    let (segments_section, rest) = body.split_at(segments_bytes);
    let (locations_section, streams_section) = rest.split_at(locations_bytes);
    let segments = decode_segments(segments_section, &header)?;
    let (locations, streams) = std::thread::scope(|scope| {
        let streams = scope
            .spawn(|| decode_streams(streams_section, header.record_count, header.stream_count));
        let locations = decode_locations(locations_section, &segments, header.record_count);
        let streams = streams
            .join()
            .unwrap_or_else(|_| Err("stream decoder panicked".into()));
        (locations, streams)
    });
    let index = Index {
        locations: locations?,
        files: Vec::new(),
        segment_ends: segments.iter().map(|s| s.end).collect(),
        streams: streams?,
        last_hash: header.last_hash,
        last_micros: header.last_micros,
    };
    let last_segment = header.segment_count - 1;
    let resume = (last_segment, segments[last_segment as usize].end);
    Ok(Loaded {
        index,
        covered: Covered {
            records: header.record_count,
            segments: header.segment_count,
        },
        segments,
        resume,
    })
}

fn decode_segments(section: &[u8], header: &Header) -> Result<Vec<SegmentEntry>, String> {
    let count = header.segment_count as usize;
    if count > section.len() / (HASH_BYTES + 2) {
        return Err(format!("{count} segments do not fit the segments section"));
    }
    let mut reader = Reader::new(section);
    let mut segments = Vec::with_capacity(count);
    let mut records = 0u64;
    for n in 0..count {
        let end = reader.varint()?;
        let segment_records = reader.varint()?;
        let mut last_hash = [0u8; HASH_BYTES];
        last_hash.copy_from_slice(reader.take(HASH_BYTES)?);
        if end > SEGMENT_BYTES_MAX
            || segment_records > end / FRAME_BYTES_MIN
            || (segment_records == 0) != (end == 0)
        {
            return Err(format!(
                "segment {n}: {segment_records} records ending at {end}"
            ));
        }
        records = records.saturating_add(segment_records);
        segments.push(SegmentEntry {
            end,
            records: segment_records,
            last_hash,
        });
    }
    reader.finish("segments section")?;
    if records != header.record_count {
        return Err(format!(
            "segments hold {records} records, the header says {}",
            header.record_count
        ));
    }
    match segments.last() {
        Some(last) if last.records > 0 && last.last_hash == header.last_hash => Ok(segments),
        _ => Err("the last segment does not end with the last record".into()),
    }
}

fn decode_locations(
    section: &[u8],
    segments: &[SegmentEntry],
    record_count: u64,
) -> Result<Vec<u64>, String> {
    let mut locations = Vec::with_capacity(usize::try_from(record_count).unwrap_or(0));
    let mut reader = Reader::new(section);
    for (id, segment) in segments.iter().enumerate() {
        let mut offset = 0u64;
        for _ in 0..segment.records {
            let length = reader.varint()?;
            if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(&length) {
                return Err(format!("segment {id}: a frame of {length} bytes"));
            }
            locations.push(pack(id as u32, offset));
            offset += length;
            if offset > segment.end {
                return Err(format!("segment {id}: frames run past its end"));
            }
        }
        if offset != segment.end {
            return Err(format!(
                "segment {id}: frames end at {offset}, not at {}",
                segment.end
            ));
        }
    }
    reader.finish("locations section")?;
    Ok(locations)
}

fn decode_streams(
    section: &[u8],
    record_count: u64,
    stream_count: u64,
) -> Result<HashMap<String, Vec<u64>>, String> {
    // Each stream takes at least 4 bytes (name length, a name byte, count, position).
    if stream_count > section.len() as u64 / 4 {
        return Err(format!(
            "{stream_count} streams do not fit the streams section"
        ));
    }
    let mut streams = HashMap::with_capacity(stream_count as usize);
    let mut seen = vec![0u64; usize::try_from(record_count.div_ceil(64)).unwrap_or(0)];
    let mut total = 0u64;
    let mut reader = Reader::new(section);
    for _ in 0..stream_count {
        let name_bytes = reader.varint()?;
        if name_bytes == 0 || name_bytes > STREAM_NAME_BYTES_MAX as u64 {
            return Err(format!("a stream name of {name_bytes} bytes"));
        }
        let name = std::str::from_utf8(reader.take(name_bytes as usize)?)
            .map_err(|_| "a stream name is not UTF-8".to_string())?;
        let count = reader.varint()?;
        if count == 0 || count > record_count - total {
            return Err(format!("stream {name:?} claims {count} records"));
        }
        let mut positions = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        for _ in 0..count {
            let position = next
                .checked_add(reader.varint()?)
                .filter(|&p| p < record_count)
                .ok_or_else(|| format!("stream {name:?} has a position past the end"))?;
            let (word, bit) = ((position / 64) as usize, position % 64);
            if seen[word] & (1 << bit) != 0 {
                return Err(format!("position {position} is in two streams"));
            }
            seen[word] |= 1 << bit;
            positions.push(position);
            next = position + 1;
        }
        total += count;
        if streams.insert(name.to_owned(), positions).is_some() {
            return Err(format!("stream {name:?} appears twice"));
        }
    }
    reader.finish("streams section")?;
    if total != record_count {
        return Err(format!(
            "streams hold {total} records, the header says {record_count}"
        ));
    }
    Ok(streams)
}

/// Checks a decoded checkpoint against the segment files (see the module docs).
fn check_files(loaded: &Loaded, files: &[Arc<File>]) -> Result<(), String> {
    let count = loaded.segments.len();
    if count > files.len() {
        return Err(format!(
            "it covers {count} segments, the log has {}",
            files.len()
        ));
    }
    let mut position = 0u64;
    for (id, entry) in loaded.segments.iter().enumerate() {
        let length = files[id]
            .metadata()
            .map_err(|e| format!("segment {id}: cannot stat it: {e}"))?
            .len();
        let sealed = id + 1 < count;
        if (sealed && length != entry.end) || length < entry.end {
            return Err(format!(
                "segment {id} is {length} bytes, the checkpoint has its data end at {}",
                entry.end
            ));
        }
        position += entry.records;
        if entry.records == 0 {
            continue;
        }
        let (_, start, end) = loaded
            .index
            .range_of(position - 1)
            .ok_or_else(|| format!("position {} has no location", position - 1))?;
        let found = frame_hash(&files[id], start, end)
            .map_err(|reason| format!("segment {id}: {reason}"))?;
        if found != entry.last_hash {
            return Err(format!(
                "the last record of segment {id} is not the one the checkpoint recorded"
            ));
        }
    }
    check_last_record(loaded, files)
}

/// The last record decodes to the checkpoint's last position, time, stream and
/// revision.
fn check_last_record(loaded: &Loaded, files: &[Arc<File>]) -> Result<(), String> {
    let index = &loaded.index;
    let last = loaded.covered.records - 1;
    let (segment, start, end) = index
        .range_of(last)
        .ok_or_else(|| format!("position {last} has no location"))?;
    let length = usize::try_from(end - start).map_err(|_| "frame too long".to_string())?;
    let mut buf = vec![0u8; length];
    files[segment as usize]
        .read_exact_at(&mut buf, start)
        .map_err(|e| format!("reading the last record: {e}"))?;
    let Frame::Record { body, .. } = read_frame(&buf, 0) else {
        return Err("the last record does not read back".into());
    };
    let record = codec::decode_record_ref(body).map_err(|e| format!("the last record: {e}"))?;
    let stream_revision = index.last_revision(record.stream);
    let stream_last = index
        .streams
        .get(record.stream)
        .and_then(|positions| positions.last().copied());
    if record.position != last
        || record.recorded_at_micros != index.last_micros
        || stream_last != Some(last)
        || stream_revision != Some(record.revision)
    {
        return Err(format!(
            "the last record ({:?} revision {} at position {}) does not match the checkpoint",
            record.stream, record.revision, record.position
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
