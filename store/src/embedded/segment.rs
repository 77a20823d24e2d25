//! Segment files: naming, listing, scanning, and the torn-tail rule.
//!
//! Segments are named `NNNNNNNNNN.seg` by a dense id from 0. All but the last are
//! sealed: truncated to exactly their records, so any bad byte in them is corruption.
//! The last (active) segment is zero-filled ahead of the writer; its data ends at the
//! first all-zero frame header.
//!
//! The torn-tail rule for the active segment: a bad frame is the remains of a write
//! interrupted before its fsync (and so never acknowledged), dropped with a
//! warning, when no valid frame starts anywhere after it and it is cut short by the
//! end of the file or followed by zeros. Anything else is damage: a valid record
//! after the bad one, or a complete (not cut short) bad frame in a segment that was
//! cleanly closed. The writer keeps a zero margin of at least a frame header after
//! its data while it runs, so a crash always leaves a file that ends in zeros; a
//! clean close truncates the segment to its last record. So a complete bad frame
//! that ends exactly at the end of the file, or one in a file that does not end in
//! a zero header (its length field damaged, say), is the last record of a cleanly
//! closed segment, damaged later.
//!
//! Zeros where a frame header should be end the data, but only if nothing valid
//! follows: zeros and then a valid record is damage too (a lost or zeroed page
//! before acknowledged records), and zeros followed by other bytes are a torn
//! write, dropped with a warning. Damage stops opening, naming the file and offset.
//!
//! This is strict on purpose: after a power loss that persisted the pages of an
//! unacknowledged batch out of order, opening refuses and asks the operator, rather
//! than guess.

use std::{
    fs::{self, File, OpenOptions},
    io::Read,
    path::{Path, PathBuf},
};

use super::frame::{next_valid_frame, read_frame, Frame, FRAME_HEADER_BYTES};
use crate::StoreError;

/// File name suffix of segments.
pub const SEGMENT_SUFFIX: &str = ".seg";
const TEMP_SUFFIX: &str = ".tmp";

/// Operator hint attached to corruption errors.
pub const REPAIR_HINT: &str = "Restore this segment from a backup or replica; tutorlog never drops records before the tail on its own. `tutorlog audit verify` lists the first bad record.";

/// The path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}{SEGMENT_SUFFIX}"))
}

/// Segment ids present in `dir`, sorted. Stray temp files from an interrupted
/// creation are reported separately so a writer can remove them.
pub fn list_segments(dir: &Path) -> Result<(Vec<u32>, Vec<PathBuf>), StoreError> {
    let mut ids = Vec::new();
    let mut temps = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMP_SUFFIX) {
            temps.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            let id = stem.parse::<u32>().map_err(|_| StoreError::Corrupt {
                file: entry.path(),
                offset: 0,
                reason: "segment file name is not a number".into(),
                hint: "Move unrelated files out of the log directory.",
            })?;
            ids.push(id);
        }
    }
    ids.sort_unstable();
    for (expected, &id) in ids.iter().enumerate() {
        if u32::try_from(expected).ok() != Some(id) {
            return Err(StoreError::Corrupt {
                file: segment_path(dir, expected as u32),
                offset: 0,
                reason: format!("segment {expected} is missing (found {id})"),
                hint: REPAIR_HINT,
            });
        }
    }
    Ok((ids, temps))
}

/// Reads a whole segment file.
pub fn read_segment(path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut file =
        File::open(path).map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
    Ok(bytes)
}

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Offset just past the last good record.
    pub data_end: u64,
    /// A torn tail found in the active segment: its offset and what was wrong.
    pub torn: Option<(u64, String)>,
}

/// Walks the frames of one segment, calling `visit(offset, body)` for each good one.
///
/// `sealed` segments must be exactly a sequence of good frames. The active one may
/// end in zeros, or in a torn frame followed by zeros.
pub fn scan_segment<'b>(
    path: &Path,
    bytes: &'b [u8],
    sealed: bool,
    mut visit: impl FnMut(u64, &'b [u8]) -> Result<(), StoreError>,
) -> Result<ScanEnd, StoreError> {
    let mut offset = 0usize;
    loop {
        match read_frame(bytes, offset) {
            Frame::Record { body, next } => {
                visit(offset as u64, body)?;
                offset = next;
            }
            Frame::End => {
                if sealed && offset != bytes.len() {
                    return Err(corrupt(
                        path,
                        offset,
                        "sealed segment has zero bytes where a record should be".into(),
                    ));
                }
                return end_at_zeros(path, bytes, offset);
            }
            Frame::Bad {
                reason,
                extent_end,
                cut_short,
            } => {
                if sealed {
                    return Err(corrupt(path, offset, reason));
                }
                if let Some(next) = next_valid_frame(bytes, offset) {
                    return Err(corrupt(
                        path,
                        offset,
                        format!("{reason}, and a valid record follows at offset {next}: damage, not an interrupted write"),
                    ));
                }
                // A crash leaves zeros after an interrupted write (the writer keeps a
                // zero-filled margin) or cuts it short; a complete frame that ends
                // exactly at the end of the file, or one in a file that does not end
                // in zeros (a damaged length can make it end short of the file's
                // end), is the last record of a cleanly closed segment, damaged later.
                if !cut_short && (extent_end >= bytes.len() || !ends_in_zeros(bytes)) {
                    return Err(corrupt(
                        path,
                        offset,
                        format!("{reason} in the last record of a cleanly closed segment"),
                    ));
                }
                return Ok(ScanEnd {
                    data_end: offset as u64,
                    torn: Some((offset as u64, reason)),
                });
            }
        }
    }
}

/// Whether `bytes` ends in a whole zero frame header: true of every active
/// segment a running writer leaves (its zero margin), false of one closed cleanly
/// (truncated to its last record), short of a last record that ends in zeros.
fn ends_in_zeros(bytes: &[u8]) -> bool {
    bytes.len() >= FRAME_HEADER_BYTES
        && bytes[bytes.len() - FRAME_HEADER_BYTES..]
            .iter()
            .all(|&b| b == 0)
}

/// The end of the active segment's data at a zero header at `offset`: fine when
/// only zeros follow; damage when a valid record follows (zeros cannot stand
/// before a durable record: a lost page); a torn write otherwise.
fn end_at_zeros(path: &Path, bytes: &[u8], offset: usize) -> Result<ScanEnd, StoreError> {
    let rest = bytes.get(offset..).unwrap_or(&[]);
    if rest.iter().all(|&b| b == 0) {
        return Ok(ScanEnd {
            data_end: offset as u64,
            torn: None,
        });
    }
    if let Some(next) = next_valid_frame(bytes, offset) {
        return Err(corrupt(
            path,
            offset,
            format!("zero bytes where a record should be, and a valid record follows at offset {next}: damage, not an interrupted write"),
        ));
    }
    Ok(ScanEnd {
        data_end: offset as u64,
        torn: Some((
            offset as u64,
            "zeros followed by the remains of an interrupted write".into(),
        )),
    })
}

/// A corruption error for `path` at `offset`.
pub fn corrupt(path: &Path, offset: usize, reason: String) -> StoreError {
    StoreError::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
        hint: REPAIR_HINT,
    }
}

/// Creates an empty segment file durably: created under a temp name, fsynced,
/// renamed, and the directory fsynced, so a crash never leaves a half-made segment
/// under a real name.
pub fn create_segment(dir: &Path, id: u32) -> Result<File, StoreError> {
    let path = segment_path(dir, id);
    let temp = dir.join(format!("{id:010}{SEGMENT_SUFFIX}{TEMP_SUFFIX}"));
    #[cfg(test)]
    full_disk::check(dir, "creating a segment")?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| classify_io(format!("creating {}", temp.display()), e))?;
    file.sync_all()
        .map_err(|e| sync_error(format!("syncing {}", temp.display()), e))?;
    fs::rename(&temp, &path)
        .map_err(|e| classify_io(format!("renaming {} into place", temp.display()), e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Fsyncs a directory so that creations and renames in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .map_err(|e| classify_io(format!("opening directory {}", dir.display()), e))?
        .sync_all()
        .map_err(|e| sync_error(format!("syncing directory {}", dir.display()), e))
}

/// Writes `bytes` zero bytes at `offset` of `file` (at or past the end of its data)
/// and syncs, so later writes to that range are overwrites of allocated blocks and
/// `fdatasync` need not commit file-size metadata on every batch.
///
/// A full disk while *writing* the zeros is [`StoreError::DiskFull`]: nothing but
/// zeros past the end of the data was touched, and the caller may try again once
/// space is freed. A failed *sync* is never `DiskFull`, whatever its errno: the
/// kernel may have dropped the dirty pages it could not write, so the caller must
/// not sync again and hope (see [`sync_error`]).
pub fn zero_fill(file: &File, offset: u64, bytes: u64, path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::FileExt;
    const CHUNK_BYTES: usize = 1024 * 1024;
    #[cfg(test)]
    full_disk::check(path, "preallocating")?;
    let zeros = vec![0u8; CHUNK_BYTES.min(usize::try_from(bytes).unwrap_or(CHUNK_BYTES))];
    let mut at = offset;
    let end = offset + bytes;
    while at < end {
        let n = (end - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| classify_io(format!("preallocating {}", path.display()), e))?;
        at += n as u64;
    }
    file.sync_all()
        .map_err(|e| sync_error(format!("syncing {}", path.display()), e))
}

/// Maps ENOSPC to [`StoreError::DiskFull`] and everything else to an I/O error.
/// Only for operations that, when they fail, leave nothing behind that a retry
/// could trust wrongly: writes past the data, creating or renaming a file.
pub fn classify_io(context: String, error: std::io::Error) -> StoreError {
    if error.kind() == std::io::ErrorKind::StorageFull {
        StoreError::DiskFull(format!("{context}: {error}"))
    } else {
        StoreError::io(context, error)
    }
}

/// The error of a failed `fsync`/`fdatasync`: always an I/O error, never
/// [`StoreError::DiskFull`], even for ENOSPC (which a sync reports when delayed
/// allocation or a thin-provisioned device runs out of space). After a failed
/// sync the kernel may have marked the pages it could not write clean, so a
/// second sync could succeed without them ever reaching the disk: the writer
/// poisons the log instead of retrying (the fjall/PostgreSQL "fsyncgate" rule).
pub fn sync_error(context: String, error: std::io::Error) -> StoreError {
    StoreError::io(context, error)
}

/// Test-only fault injection: a unit test cannot fill a real disk (the tmpfs test
/// in `tests/faults_disk_full.rs` does, where mounting is allowed), so zero-fills
/// and segment creations under a directory marked here fail with ENOSPC, before
/// writing anything, as they would on a full disk.
#[cfg(test)]
pub(crate) mod full_disk {
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    use crate::StoreError;

    static FULL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    /// Marks the disk of `dir` full (or frees it).
    pub(crate) fn set(dir: &Path, full: bool) {
        let mut dirs = FULL.lock();
        dirs.retain(|d| d != dir);
        if full {
            dirs.push(dir.to_path_buf());
        }
    }

    /// `DiskFull` when `path` lies under a directory marked full.
    pub(crate) fn check(path: &Path, what: &str) -> Result<(), StoreError> {
        if FULL.lock().iter().any(|dir| path.starts_with(dir)) {
            return Err(StoreError::DiskFull(format!(
                "{what} {}: No space left on device (injected)",
                path.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode_frame;
    use super::*;

    fn two_frames() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_frame(b"first record", &mut buf);
        encode_frame(b"second record", &mut buf);
        buf
    }

    fn count(bytes: &[u8], sealed: bool) -> Result<(usize, ScanEnd), StoreError> {
        let mut n = 0;
        let end = scan_segment(Path::new("x.seg"), bytes, sealed, |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok((n, end))
    }

    #[test]
    fn active_segment_ends_at_zeros() {
        let mut buf = two_frames();
        let data = buf.len() as u64;
        buf.extend_from_slice(&[0; 100]);
        let (n, end) = count(&buf, false).expect("scan");
        assert_eq!((n, end.data_end, end.torn), (2, data, None));
    }

    #[test]
    fn torn_last_record_is_dropped() {
        let mut buf = two_frames();
        let first_len = 8 + b"first record".len();
        buf.truncate(buf.len() - 3);
        buf.extend_from_slice(&[0; 64]);
        let (n, end) = count(&buf, false).expect("scan");
        assert_eq!(n, 1);
        assert_eq!(end.data_end, first_len as u64);
        assert!(end.torn.is_some());
    }

    #[test]
    fn damage_before_the_tail_refuses() {
        let mut buf = two_frames();
        buf[10] ^= 0xff;
        buf.extend_from_slice(&[0; 64]);
        let err = count(&buf, false).expect_err("corrupt");
        assert!(
            matches!(err, StoreError::Corrupt { offset: 0, .. }),
            "{err}"
        );
    }

    /// Zeros where a frame header should be, with a valid record after them, are a
    /// lost page before acknowledged records: damage. (They used to end the data
    /// there, silently dropping every later record.)
    #[test]
    fn zeros_before_a_valid_record_are_damage() {
        let mut buf = two_frames();
        let first_len = 8 + b"first record".len();
        buf[..first_len].fill(0);
        buf.extend_from_slice(&[0; 64]);
        let err = count(&buf, false).expect_err("corrupt");
        assert!(
            matches!(err, StoreError::Corrupt { offset: 0, .. }),
            "{err}"
        );
    }

    /// Zeros followed by bytes that are no valid frame: a torn write, dropped with a
    /// warning, not silently.
    #[test]
    fn zeros_then_remains_of_a_write_are_a_torn_tail() {
        let mut buf = two_frames();
        let data = buf.len() as u64;
        buf.extend_from_slice(&[0; 16]);
        buf.extend_from_slice(b"remains");
        buf.extend_from_slice(&[0; 64]);
        let (n, end) = count(&buf, false).expect("scan");
        assert_eq!((n, end.data_end), (2, data));
        assert!(end.torn.is_some(), "reported as a torn tail");
    }

    /// A damaged length that makes the last record of a cleanly closed segment end
    /// before the file does is damage, not a torn tail. (It used to be dropped with
    /// a warning: an acknowledged record lost.) In a crashed segment, followed by
    /// its zero margin, the same bad frame is a torn tail.
    #[test]
    fn a_shortened_last_record_of_a_cleanly_closed_segment_is_damage() {
        let mut clean = two_frames();
        let second = 8 + b"first record".len();
        clean[second] ^= 0x04;
        assert!(clean[second] < b"second record".len() as u8, "shorter");
        let err = count(&clean, false).expect_err("damage");
        assert!(
            matches!(err, StoreError::Corrupt { offset, .. } if offset == second as u64),
            "{err}"
        );
        let mut crashed = clean.clone();
        crashed.extend_from_slice(&[0; 64]);
        let (n, end) = count(&crashed, false).expect("scan");
        assert_eq!((n, end.torn.is_some()), (1, true));
    }

    #[test]
    fn sealed_segments_allow_no_tail() {
        let buf = two_frames();
        assert_eq!(count(&buf, true).expect("clean").0, 2);
        let mut torn = buf.clone();
        torn.truncate(buf.len() - 1);
        assert!(count(&torn, true).is_err());
        let mut zeros = buf;
        zeros.extend_from_slice(&[0; 8]);
        assert!(count(&zeros, true).is_err());
    }
}
