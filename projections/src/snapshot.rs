//! Snapshot files: one per projection, `<snapshot_dir>/<name>.snapshot`.
//!
//! A snapshot holds a model together with the next position to apply, so that a
//! restart resumes exactly where the model stands: nothing applied twice, nothing
//! skipped. Model and position live in one file replaced atomically, so they can
//! never disagree.
//!
//! # File format (version 1)
//!
//! All integers little-endian.
//!
//! | offset | bytes        | field                                                  |
//! |-------:|-------------:|--------------------------------------------------------|
//! |      0 |            8 | magic `TLPSNAP\0`                                      |
//! |      8 |            2 | format `u16` = [`SNAPSHOT_FORMAT`]                     |
//! |     10 |            2 | `name_bytes: u16`                                      |
//! |     12 |            4 | `model_bytes: u32`                                     |
//! |     16 |            8 | `next_position: u64` (events `0..next_position` are in the model) |
//! |     24 |           16 | id of the event at `next_position - 1` (zeros if none) |
//! |     40 |            4 | `projection_version: u32` ([`crate::Projection::VERSION`]) |
//! |     44 |            4 | CRC32C of bytes `0..44`, then the name, then the model |
//! |     48 | `name_bytes` | projection name, UTF-8                                 |
//! |      … |`model_bytes` | the model, JSON                                        |
//!
//! The file must be exactly that long. On load, a snapshot is used only if every
//! check passes (magic, format, name, version, length, checksum, model JSON) and the log
//! still holds the event it names at `next_position - 1`; otherwise it is logged
//! and ignored, and the projection rebuilds from position 0.
//!
//! Writing: a temporary file in the same directory is written, fsynced, renamed
//! over the snapshot, and the directory is fsynced. The model is streamed into the
//! file through a buffer ([`write_streamed`]) rather than built in memory first:
//! at a million learners the `mastery` model is hundreds of megabytes of JSON,
//! and one growing `Vec` of it (doubling up to twice that) was the daemon's RSS
//! peak. The header, whose length field and checksum depend on the model, is
//! written last, in place; the bytes are exactly those of [`encode`].

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

/// Snapshot layout version this build writes and reads.
pub const SNAPSHOT_FORMAT: u16 = 1;
/// Largest model accepted in a snapshot, in bytes.
pub const SNAPSHOT_MODEL_BYTES_MAX: u32 = 1 << 30;

const MAGIC: [u8; 8] = *b"TLPSNAP\0";
const VERSION_OFFSET: usize = 40;
const CHECKSUM_OFFSET: usize = 44;
const HEADER_BYTES: usize = 48;
const NAME_BYTES_MAX: usize = crate::projection::PROJECTION_NAME_BYTES_MAX;
const FILE_BYTES_MAX: u64 =
    HEADER_BYTES as u64 + NAME_BYTES_MAX as u64 + SNAPSHOT_MODEL_BYTES_MAX as u64;

const _: () = assert!(VERSION_OFFSET + 4 == CHECKSUM_OFFSET);
const _: () = assert!(CHECKSUM_OFFSET + 4 == HEADER_BYTES);
const _: () = assert!(NAME_BYTES_MAX <= u16::MAX as usize);

/// The file holding `name`'s snapshot in `dir`.
pub fn snapshot_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.snapshot"))
}

fn temporary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.snapshot.tmp"))
}

/// A decoded snapshot, before it is checked against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The projection's [`crate::Projection::VERSION`] when it was written.
    pub(crate) projection_version: u32,
    /// Next position to apply.
    pub(crate) next_position: u64,
    /// Id of the event at `next_position - 1`; zeros when `next_position` is 0.
    pub(crate) last_event_id: [u8; 16],
    /// The model, JSON.
    pub(crate) model_json: Vec<u8>,
}

/// Why a snapshot file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejected {
    #[error("file is {0} bytes, shorter than the {HEADER_BYTES}-byte header")]
    Short(usize),
    #[error("bad magic")]
    Magic,
    #[error("format {0}, this build reads {SNAPSHOT_FORMAT}")]
    Format(u16),
    #[error("name is {0} bytes, the limit is {NAME_BYTES_MAX}")]
    NameLength(u16),
    #[error("model is {0} bytes, the limit is {SNAPSHOT_MODEL_BYTES_MAX}")]
    ModelLength(u32),
    #[error("file is {actual} bytes, its header says {expected}")]
    Length { expected: u64, actual: u64 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot belongs to projection {0:?}")]
    Name(String),
    #[error(
        "snapshot was written by projection version {stored}, this build is version {current}"
    )]
    Version { stored: u32, current: u32 },
}

/// Header fields of a snapshot other than the model's length and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotMeta {
    /// The projection's [`crate::Projection::VERSION`].
    pub(crate) projection_version: u32,
    /// Next position to apply.
    pub(crate) next_position: u64,
    /// Id of the event at `next_position - 1`; zeros when `next_position` is 0.
    pub(crate) last_event_id: [u8; 16],
}

/// The 48-byte header with its checksum field zero.
fn header(name_bytes: u16, model_bytes: u32, meta: &SnapshotMeta) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    header[10..12].copy_from_slice(&name_bytes.to_le_bytes());
    header[12..16].copy_from_slice(&model_bytes.to_le_bytes());
    header[16..24].copy_from_slice(&meta.next_position.to_le_bytes());
    header[24..40].copy_from_slice(&meta.last_event_id);
    header[VERSION_OFFSET..CHECKSUM_OFFSET].copy_from_slice(&meta.projection_version.to_le_bytes());
    header
}

fn name_bytes(name: &str) -> Result<u16, String> {
    u16::try_from(name.len())
        .ok()
        .filter(|n| usize::from(*n) <= NAME_BYTES_MAX)
        .ok_or_else(|| {
            format!(
                "name is {} bytes, the limit is {NAME_BYTES_MAX}",
                name.len()
            )
        })
}

/// Counts and checksums the model bytes as the buffer hands them to the file (in
/// large writes, so the checksum runs over big slices).
struct ModelFile {
    file: File,
    bytes: u64,
    crc: u32,
}

impl Write for ModelFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Buffer between the model's serializer and the file.
const STREAM_BUFFER_BYTES: usize = 1 << 20;

/// Replaces `name`'s snapshot durably, streaming the model: `write_model` writes the
/// model's JSON into the writer it is given and returns the header fields that go
/// with it (so the caller reads both under one lock). Temporary file, the model
/// through a 1 MiB buffer, then the header in place, fsync, rename, directory fsync.
/// A failure removes the temporary file; the old snapshot stays whole.
pub(crate) fn write_streamed(
    dir: &Path,
    name: &str,
    write_model: impl FnOnce(&mut dyn Write) -> Result<SnapshotMeta, String>,
) -> Result<(), String> {
    let name_length = name_bytes(name)?;
    let temporary = temporary_path(dir, name);
    let result = stream_to(&temporary, name, name_length, write_model).and_then(|()| {
        fs::rename(&temporary, snapshot_path(dir, name))
            .and_then(|()| File::open(dir)?.sync_all())
            .map_err(|error| format!("write failed: {error}"))
    });
    if result.is_err() {
        if let Err(error) = fs::remove_file(&temporary) {
            tracing::debug!(%error, "no temporary snapshot file to remove");
        }
    }
    result
}

fn stream_to(
    temporary: &Path,
    name: &str,
    name_length: u16,
    write_model: impl FnOnce(&mut dyn Write) -> Result<SnapshotMeta, String>,
) -> Result<(), String> {
    let io_failed = |error: io::Error| format!("write failed: {error}");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(temporary)
        .map_err(io_failed)?;
    file.write_all(&[0; HEADER_BYTES]).map_err(io_failed)?;
    file.write_all(name.as_bytes()).map_err(io_failed)?;
    let mut out = BufWriter::with_capacity(
        STREAM_BUFFER_BYTES,
        ModelFile {
            file,
            bytes: 0,
            crc: 0,
        },
    );
    let meta = write_model(&mut out)?;
    let ModelFile {
        file,
        bytes: model_length,
        crc: model_crc,
    } = out
        .into_inner()
        .map_err(|error| io_failed(error.into_error()))?;
    let model_bytes = u32::try_from(model_length)
        .ok()
        .filter(|n| *n <= SNAPSHOT_MODEL_BYTES_MAX)
        .ok_or_else(|| {
            format!("model is {model_length} bytes, the limit is {SNAPSHOT_MODEL_BYTES_MAX}")
        })?;
    let mut header = header(name_length, model_bytes, &meta);
    let checksum = crc32c::crc32c_combine(
        crc32c::crc32c_append(crc32c::crc32c(&header[..CHECKSUM_OFFSET]), name.as_bytes()),
        model_crc,
        model_bytes as usize,
    );
    header[CHECKSUM_OFFSET..].copy_from_slice(&checksum.to_le_bytes());
    file.write_all_at(&header, 0).map_err(io_failed)?;
    file.sync_all().map_err(io_failed)
}

/// Encodes a snapshot file.
#[cfg(test)]
pub(crate) fn encode(name: &str, snapshot: &Snapshot) -> Result<Vec<u8>, String> {
    let name_bytes = u16::try_from(name.len())
        .ok()
        .filter(|n| usize::from(*n) <= NAME_BYTES_MAX)
        .ok_or_else(|| {
            format!(
                "name is {} bytes, the limit is {NAME_BYTES_MAX}",
                name.len()
            )
        })?;
    let model_bytes = u32::try_from(snapshot.model_json.len())
        .ok()
        .filter(|n| *n <= SNAPSHOT_MODEL_BYTES_MAX)
        .ok_or_else(|| {
            format!(
                "model is {} bytes, the limit is {SNAPSHOT_MODEL_BYTES_MAX}",
                snapshot.model_json.len()
            )
        })?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + name.len() + snapshot.model_json.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    bytes.extend_from_slice(&name_bytes.to_le_bytes());
    bytes.extend_from_slice(&model_bytes.to_le_bytes());
    bytes.extend_from_slice(&snapshot.next_position.to_le_bytes());
    bytes.extend_from_slice(&snapshot.last_event_id);
    bytes.extend_from_slice(&snapshot.projection_version.to_le_bytes());
    assert_eq!(bytes.len(), CHECKSUM_OFFSET);
    let checksum = crc32c::crc32c_append(
        crc32c::crc32c_append(crc32c::crc32c(&bytes), name.as_bytes()),
        &snapshot.model_json,
    );
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&snapshot.model_json);
    Ok(bytes)
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[offset..offset + N]);
    out
}

/// Decodes and checks a snapshot file written for projection `name` at
/// `projection_version`.
#[cfg(test)]
pub(crate) fn decode(
    name: &str,
    projection_version: u32,
    bytes: &[u8],
) -> Result<Snapshot, Rejected> {
    let (meta, model_start) = check(name, projection_version, bytes)?;
    Ok(Snapshot {
        projection_version: meta.projection_version,
        next_position: meta.next_position,
        last_event_id: meta.last_event_id,
        model_json: bytes[model_start..].to_vec(),
    })
}

/// [`decode`] of a file read whole, keeping its buffer: the model bytes are moved
/// to the front instead of copied (a large snapshot is not held twice on the
/// restart path).
pub(crate) fn decode_owned(
    name: &str,
    projection_version: u32,
    mut bytes: Vec<u8>,
) -> Result<Snapshot, Rejected> {
    let (meta, model_start) = check(name, projection_version, &bytes)?;
    bytes.drain(..model_start);
    Ok(Snapshot {
        projection_version: meta.projection_version,
        next_position: meta.next_position,
        last_event_id: meta.last_event_id,
        model_json: bytes,
    })
}

/// Every check of a snapshot file; returns its header fields and where the model
/// starts.
fn check(
    name: &str,
    projection_version: u32,
    bytes: &[u8],
) -> Result<(SnapshotMeta, usize), Rejected> {
    if bytes.len() < HEADER_BYTES {
        return Err(Rejected::Short(bytes.len()));
    }
    if array::<8>(bytes, 0) != MAGIC {
        return Err(Rejected::Magic);
    }
    let format = u16::from_le_bytes(array(bytes, 8));
    if format != SNAPSHOT_FORMAT {
        return Err(Rejected::Format(format));
    }
    let name_bytes = u16::from_le_bytes(array(bytes, 10));
    if usize::from(name_bytes) > NAME_BYTES_MAX {
        return Err(Rejected::NameLength(name_bytes));
    }
    let model_bytes = u32::from_le_bytes(array(bytes, 12));
    if model_bytes > SNAPSHOT_MODEL_BYTES_MAX {
        return Err(Rejected::ModelLength(model_bytes));
    }
    let expected = HEADER_BYTES as u64 + u64::from(name_bytes) + u64::from(model_bytes);
    if bytes.len() as u64 != expected {
        return Err(Rejected::Length {
            expected,
            actual: bytes.len() as u64,
        });
    }
    let stored = u32::from_le_bytes(array(bytes, CHECKSUM_OFFSET));
    let computed = crc32c::crc32c_append(
        crc32c::crc32c(&bytes[..CHECKSUM_OFFSET]),
        &bytes[HEADER_BYTES..],
    );
    if stored != computed {
        return Err(Rejected::Checksum { stored, computed });
    }
    let name_end = HEADER_BYTES + usize::from(name_bytes);
    let stored_name = &bytes[HEADER_BYTES..name_end];
    if stored_name != name.as_bytes() {
        return Err(Rejected::Name(
            String::from_utf8_lossy(stored_name).into_owned(),
        ));
    }
    let stored_version = u32::from_le_bytes(array(bytes, VERSION_OFFSET));
    if stored_version != projection_version {
        return Err(Rejected::Version {
            stored: stored_version,
            current: projection_version,
        });
    }
    let meta = SnapshotMeta {
        projection_version: stored_version,
        next_position: u64::from_le_bytes(array(bytes, 16)),
        last_event_id: array(bytes, 24),
    };
    Ok((meta, name_end))
}

/// Reads `name`'s snapshot file: `Ok(None)` when there is none. Files larger than
/// any valid snapshot are refused without reading them.
pub(crate) fn read_file(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let path = snapshot_path(dir, name);
    let length = match fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if length > FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot is {length} bytes, larger than any valid snapshot ({FILE_BYTES_MAX})"
            ),
        ));
    }
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Replaces `name`'s snapshot with `bytes` durably: temporary file, fsync, rename,
/// directory fsync. A crash at any point leaves the old or the new snapshot whole.
///
/// When writing the temporary file fails (typically a full disk), it is removed:
/// left behind it would hold the space of a whole model on a disk that has none
/// to spare, until the next snapshot happened to succeed.
#[cfg(test)]
pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary_path(dir, name);
    let written = write_temporary(&temporary, bytes)
        .and_then(|()| fs::rename(&temporary, snapshot_path(dir, name)));
    if let Err(error) = written {
        match fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(gone) if gone.kind() == io::ErrorKind::NotFound => {}
            Err(remove) => tracing::warn!(
                path = %temporary.display(),
                error = %remove,
                "could not remove a failed snapshot's temporary file"
            ),
        }
        return Err(error);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
fn write_temporary(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            projection_version: 3,
            next_position: 42,
            last_event_id: [7; 16],
            model_json: br#"{"count":3}"#.to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode("demo", &sample()).expect("encode");
        assert_eq!(decode("demo", 3, &bytes), Ok(sample()));
        assert_eq!(decode_owned("demo", 3, bytes), Ok(sample()));
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let bytes = encode("demo", &sample()).expect("encode");
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    decode("demo", 3, &damaged).is_err(),
                    "flip of bit {bit} at byte {index} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let bytes = encode("demo", &sample()).expect("encode");
        for length in 0..bytes.len() {
            assert!(
                decode("demo", 3, &bytes[..length]).is_err(),
                "length {length}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert!(matches!(
            decode("demo", 3, &longer),
            Err(Rejected::Length { .. })
        ));
    }

    #[test]
    fn another_projection_version_is_rejected() {
        let bytes = encode("demo", &sample()).expect("encode");
        assert_eq!(
            decode("demo", 4, &bytes),
            Err(Rejected::Version {
                stored: 3,
                current: 4
            })
        );
    }

    #[test]
    fn another_projections_snapshot_is_rejected() {
        let bytes = encode("other", &sample()).expect("encode");
        assert_eq!(
            decode("demo", 3, &bytes),
            Err(Rejected::Name("other".to_owned()))
        );
    }

    /// The streamed writer produces exactly [`encode`]'s bytes, for models small
    /// and larger than the stream buffer.
    #[test]
    fn streamed_files_are_byte_identical_to_encode() {
        let dir = tempfile::tempdir().expect("tempdir");
        for model_json in [
            br#"{"count":3}"#.to_vec(),
            Vec::new(),
            (0..3 * STREAM_BUFFER_BYTES + 17)
                .map(|i| b'a' + (i % 26) as u8)
                .collect(),
        ] {
            let snapshot = Snapshot {
                model_json,
                ..sample()
            };
            write_streamed(dir.path(), "demo", |out| {
                // Several writes, as a serializer makes.
                for chunk in snapshot.model_json.chunks(4093) {
                    out.write_all(chunk).map_err(|e| e.to_string())?;
                }
                Ok(SnapshotMeta {
                    projection_version: snapshot.projection_version,
                    next_position: snapshot.next_position,
                    last_event_id: snapshot.last_event_id,
                })
            })
            .expect("write");
            let written = read_file(dir.path(), "demo").expect("read").expect("file");
            assert_eq!(written, encode("demo", &snapshot).expect("encode"));
            assert_eq!(decode("demo", 3, &written), Ok(snapshot));
            assert!(!temporary_path(dir.path(), "demo").exists());
        }
    }

    #[test]
    fn a_failed_streamed_write_keeps_the_old_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = encode("demo", &sample()).expect("encode");
        write_file(dir.path(), "demo", &first).expect("write");
        let failed = write_streamed(dir.path(), "demo", |out| {
            out.write_all(b"{\"partial").map_err(|e| e.to_string())?;
            Err("model does not serialize".into())
        });
        assert!(failed.is_err());
        assert_eq!(read_file(dir.path(), "demo").expect("read"), Some(first));
        assert!(!temporary_path(dir.path(), "demo").exists());
    }

    /// A snapshot that cannot be put in place (here the target is a directory; in
    /// production, mostly a full disk) leaves no temporary file behind: it would
    /// hold the space of a whole model on a disk that has none to spare.
    #[test]
    fn a_failed_write_removes_its_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(snapshot_path(dir.path(), "demo")).expect("blocker");
        std::fs::write(snapshot_path(dir.path(), "demo").join("keep"), b"not empty")
            .expect("blocker file");
        let snapshot = sample();
        let failed = write_streamed(dir.path(), "demo", |out| {
            out.write_all(&snapshot.model_json)
                .map_err(|e| e.to_string())?;
            Ok(SnapshotMeta {
                projection_version: snapshot.projection_version,
                next_position: snapshot.next_position,
                last_event_id: snapshot.last_event_id,
            })
        });
        assert!(failed.is_err());
        assert!(
            !temporary_path(dir.path(), "demo").exists(),
            "the temporary file is removed"
        );
    }

    #[test]
    fn files_are_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_file(dir.path(), "demo").expect("read"), None);
        let first = encode("demo", &sample()).expect("encode");
        write_file(dir.path(), "demo", &first).expect("write");
        let second = encode(
            "demo",
            &Snapshot {
                next_position: 43,
                ..sample()
            },
        )
        .expect("encode");
        write_file(dir.path(), "demo", &second).expect("write");
        assert_eq!(read_file(dir.path(), "demo").expect("read"), Some(second));
        assert!(!temporary_path(dir.path(), "demo").exists());
    }
}
