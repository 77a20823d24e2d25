use std::path::PathBuf;

use crate::revision::ExpectedRevision;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's revision did not match the expectation; nothing was written.
    #[error("wrong expected revision on {stream:?}: expected {expected}, stream is at {}", .actual.map_or("no stream".to_string(), |r| format!("revision {r}")))]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: ExpectedRevision,
        /// The stream's last revision, if it exists.
        actual: Option<u64>,
    },
    /// Another process holds the log directory's lock.
    #[error("log directory {} is locked by another tutorlog process (lock file {}); stop it, or open read-only", .dir.display(), .dir.join(crate::embedded::LOCK_FILE_NAME).display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A record before the tail failed its checks. The log refuses to open rather
    /// than silently drop acknowledged events.
    #[error("corrupt log record in {} at byte offset {offset}: {reason}. {hint}", .file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// What check failed.
        reason: String,
        /// What the operator can do.
        hint: &'static str,
    },
    /// An earlier write or fsync failed; the log accepts no more writes until it is
    /// reopened (which replays and truncates to the last durable record).
    #[error("log is poisoned by an earlier write failure ({0}); restart to recover")]
    Poisoned(String),
    /// The disk is full; nothing was written and appends work again once space is freed.
    #[error("no space left for the log: {0}")]
    DiskFull(String),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The caller passed something the store cannot accept.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store is read-only (opened for reading, or a backend without writes).
    #[error("store is open read-only")]
    ReadOnly,
    /// The store was shut down.
    #[error("store is closed")]
    Closed,
    /// A record's bytes could not be decoded.
    #[error(transparent)]
    Codec(#[from] tutorlog_schemas::CodecError),
    /// A remote backend is unavailable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// True for errors the caller caused (bad input, a revision conflict), as opposed
    /// to the store being unable to serve.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::WrongExpectedRevision { .. } | StoreError::InvalidInput(_)
        )
    }
}
