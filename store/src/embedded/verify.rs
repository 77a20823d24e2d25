//! `audit verify`: proves the log was not altered or cut short.
//!
//! Every frame's CRC, every body's decoding, dense positions, dense per-stream
//! revisions, non-decreasing time and the BLAKE3 chain from the first record to the
//! last are checked. A sealed segment must be exactly its records. The active
//! segment may end in an unfinished write (a writer may be appending right now);
//! that is reported, not failed.
//!
//! It never uses the index checkpoint (`index.ckpt`): every record is read.

use std::path::{Path, PathBuf};

use super::{recover, Scan};
use crate::StoreError;

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Distinct streams.
    pub streams: usize,
    /// Position of the last record.
    pub last_position: Option<u64>,
    /// BLAKE3 hash of the last record body, hex (the head of the chain).
    pub head_hash: String,
    /// Segment files.
    pub segments: usize,
    /// An unfinished write at the end of the active segment: file, offset, reason.
    pub unfinished_tail: Option<(PathBuf, u64, String)>,
}

/// Verifies the log in `dir` without locking it or changing anything.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::InvalidInput(format!(
            "log directory {} does not exist",
            dir.display()
        )));
    }
    let recovered = recover(dir, Scan::Everything)?;
    let index = &recovered.index;
    Ok(VerifyReport {
        records: index.next_position(),
        streams: index.streams.len(),
        last_position: index.next_position().checked_sub(1),
        head_hash: hex::encode(index.last_hash),
        segments: index.files.len(),
        unfinished_tail: recovered.torn,
    })
}
