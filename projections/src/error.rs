//! Why a projection stopped, and why a read-your-writes wait gave up.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tutorlog_schemas::CodecError;
use tutorlog_store::StoreError;

/// Why a runner or a replay stopped. Each of these leaves the model consistent up
/// to the last applied position; none is ignored, so a projection never silently
/// diverges from the log.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// An event of a known type could not be decoded (corrupt payload, a schema
    /// version newer than this build, no upcaster). Unknown event types are skipped
    /// instead; this is not.
    #[error("projection {projection}: cannot decode event at position {position} ({event_type:?} v{schema_version}): {source}")]
    Decode {
        /// The projection.
        projection: &'static str,
        /// Position of the event.
        position: u64,
        /// Its stored type.
        event_type: String,
        /// Its stored schema version.
        schema_version: u16,
        /// The codec's reason.
        #[source]
        source: CodecError,
    },
    /// Reading or subscribing to the log failed.
    #[error("projection {projection}: store error: {source}")]
    Store {
        /// The projection.
        projection: &'static str,
        /// The store's error (shared: one subscription can feed several runners).
        #[source]
        source: Arc<StoreError>,
    },
    /// The log delivered an event at an unexpected position (a gap or a repeat);
    /// the store broke its contract, so the projection stops rather than diverge.
    #[error("projection {projection}: expected the event at position {expected}, got {got}")]
    PositionGap {
        /// The projection.
        projection: &'static str,
        /// The position it needed next.
        expected: u64,
        /// The position it got.
        got: u64,
    },
    /// The log ended before a position it had reported as durable.
    #[error("projection {projection}: log ended at position {reached}, expected events up to {expected_last}")]
    LogEndedEarly {
        /// The projection.
        projection: &'static str,
        /// The last position the store reported.
        expected_last: u64,
        /// The next position that could not be read.
        reached: u64,
    },
    /// A snapshot could not be encoded or written.
    #[error("projection {projection}: snapshot {}: {reason}", .path.display())]
    Snapshot {
        /// The projection.
        projection: &'static str,
        /// The snapshot file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The runner's options are out of range.
    #[error("projection {projection}: invalid runner options: {reason}")]
    InvalidOptions {
        /// The projection.
        projection: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The runner task panicked (a bug in a projection) or was cancelled.
    #[error("projection {projection}: runner task failed: {reason}")]
    TaskFailed {
        /// The projection.
        projection: &'static str,
        /// The panic message or cancellation.
        reason: String,
    },
}

/// Why [`crate::ProjectionReader::wait_for`] returned without the position applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The projection did not reach the position in time.
    #[error("projection {projection} did not reach position {position} within {timeout:?} (next position {next_position})")]
    Timeout {
        /// The projection.
        projection: &'static str,
        /// The position waited for.
        position: u64,
        /// The next position it will apply (everything before it is applied).
        next_position: u64,
        /// How long it waited.
        timeout: Duration,
    },
    /// The runner stopped (shutdown, store closed or error) before the position.
    #[error("projection {projection} stopped at next position {next_position} before reaching position {position}")]
    Stopped {
        /// The projection.
        projection: &'static str,
        /// The position waited for.
        position: u64,
        /// The next position it would have applied.
        next_position: u64,
    },
}
