//! The in-memory index, rebuilt from the segments on open: where each position
//! lives, which positions belong to each stream, and the tip of the hash chain.
//!
//! Readers take the read lock just long enough to copy out file handles and byte
//! ranges; the writer takes the write lock only to publish records that are
//! already durable, so readers never see an event that could still be lost.

use std::{collections::HashMap, fs::File, sync::Arc};

/// Packs a segment id and byte offset into one word.
pub fn pack(segment: u32, offset: u64) -> u64 {
    debug_assert!(offset <= u32::MAX as u64);
    (u64::from(segment) << 32) | offset
}

/// Unpacks [`pack`].
pub fn unpack(location: u64) -> (u32, u64) {
    ((location >> 32) as u32, location & 0xffff_ffff)
}

/// The index of a log.
#[derive(Debug, Default)]
pub struct Index {
    /// Packed location of every position.
    pub locations: Vec<u64>,
    /// Read handles of every segment, by id.
    pub files: Vec<Arc<File>>,
    /// End of durable data in each segment, by id.
    pub segment_ends: Vec<u64>,
    /// Positions of each stream's events, by revision.
    pub streams: HashMap<String, Vec<u64>>,
    /// BLAKE3 of the last record's body (zeros for an empty log).
    pub last_hash: [u8; 32],
    /// `recorded_at` of the last record, in microseconds.
    pub last_micros: i64,
}

impl Index {
    /// Number of records, which is also the next position.
    pub fn next_position(&self) -> u64 {
        self.locations.len() as u64
    }

    /// Last revision of `stream`.
    pub fn last_revision(&self, stream: &str) -> Option<u64> {
        self.streams
            .get(stream)
            .and_then(|p| (p.len() as u64).checked_sub(1))
    }

    /// Records one durable record.
    pub fn push(&mut self, stream: &str, segment: u32, offset: u64, frame_end: u64) {
        let position = self.next_position();
        self.locations.push(pack(segment, offset));
        match self.streams.get_mut(stream) {
            Some(positions) => positions.push(position),
            None => {
                self.streams.insert(stream.to_owned(), vec![position]);
            }
        }
        let segment = segment as usize;
        if self.segment_ends.len() <= segment {
            self.segment_ends.resize(segment + 1, 0);
        }
        self.segment_ends[segment] = frame_end;
    }

    /// Byte range `[start, end)` of the record at `position`.
    pub fn range_of(&self, position: u64) -> Option<(u32, u64, u64)> {
        let (segment, start) = unpack(*self.locations.get(position as usize)?);
        let end = match self
            .locations
            .get(position as usize + 1)
            .map(|&l| unpack(l))
        {
            Some((next_segment, next_start)) if next_segment == segment => next_start,
            _ => *self.segment_ends.get(segment as usize)?,
        };
        Some((segment, start, end))
    }
}
