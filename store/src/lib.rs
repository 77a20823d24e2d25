//! The tutorlog event store.
//!
//! [`EventStore`] is the only seam between tutorlog and its log. Two backends
//! implement it: the embedded segmented log in [`embedded`] (the default) and, behind
//! the `kurrentdb` feature, KurrentDB. Both must pass [`conformance`].
//!
//! Guarantees every backend gives:
//! - `append` returns only after the events are durable; a failed append wrote
//!   nothing that any reader will ever see.
//! - `$all` positions are dense from 0 and totally ordered; a stream's revisions are
//!   dense from 0. `recorded_at` never decreases along `$all`.
//! - Subscriptions deliver catch-up then live events with no gap and no duplicate.

pub mod conformance;
pub mod embedded;
mod error;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
pub mod memory;
mod revision;
mod subscription;

#[cfg(feature = "kurrentdb")]
pub use self::kurrentdb::KurrentStore;
use async_trait::async_trait;
pub use embedded::{EmbeddedStore, StoreOptions};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use revision::{AppendResult, ExpectedRevision};
pub use subscription::{Subscription, SubscriptionSource};
pub use tutorlog_schemas::{NewEvent, RecordedEvent};

/// Longest stream name accepted, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 256;
/// Most events in one `append` call.
pub const APPEND_EVENTS_MAX: usize = 10_000;
/// Most events one read call returns.
pub const READ_EVENTS_MAX: usize = 10_000;

/// Gets the outcome of an [`EventStore::try_append_detached`] append. It runs on
/// the log's own thread (the embedded writer), so it must be short and never
/// block: drop a permit, log an error.
pub type AppendCallback = Box<dyn FnOnce(Result<AppendResult, StoreError>) + Send + 'static>;

/// An append [`EventStore::try_append_detached`] did not queue, given back whole so
/// that the caller can append it the usual way.
pub struct NotQueued {
    /// The events, unwritten.
    pub events: Vec<NewEvent>,
    /// The callback, not called.
    pub done: AppendCallback,
}

impl std::fmt::Debug for NotQueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotQueued")
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// An append-only log of events grouped into streams, with a global order (`$all`).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its current revision matches `expected`, and
    /// returns once they are durable. All events of one call land together, in order,
    /// at consecutive revisions and positions, or none does.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// [`EventStore::append`] for events no caller is waiting on (a gateway call's
    /// record, a cost committed after the answer went out): the same guarantee,
    /// acknowledged only once durable, but the log may hold the append back for a
    /// short while so that it shares an fsync with later ones (the embedded log's
    /// `linger`). An append a caller waits on, or [`EventStore::expedite`], ends
    /// that wait. The default is a plain append.
    async fn append_deferred(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append(stream, expected, events).await
    }

    /// [`EventStore::append_deferred`] without a task waiting for it: the append is
    /// queued before this returns, and `done` gets its outcome once it is durable
    /// (or failed), on the log's own thread. A gateway call's record takes this
    /// way, so that no task wakes up again for a write its client never waits on.
    ///
    /// Gives the events and `done` back, unqueued and uncalled, when this log
    /// cannot take the append that way now (the default: no such queue; the
    /// embedded log: its queue is full, so the caller should wait its turn).
    fn try_append_detached(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        done: AppendCallback,
    ) -> Result<(), NotQueued> {
        let _ = (stream, expected);
        Err(NotQueued { events, done })
    }

    /// Asks the log to write what [`EventStore::append_deferred`] holds back now:
    /// someone is waiting behind it. The default does nothing.
    fn expedite(&self) {}

    /// Reads up to `max` events of `stream` starting at revision `from_revision`.
    /// An unknown stream reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `max` events of `$all` starting at `from_position`.
    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The last revision of `stream`, or `None` when it has no events.
    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError>;

    /// The position of the last durable event, or `None` for an empty log.
    fn last_position(&self) -> Option<u64>;

    /// Catch-up then live subscription to `$all` from `from_position`.
    fn subscribe_all(&self, from_position: u64) -> Subscription;

    /// Catch-up then live subscription to one stream from `from_revision`.
    fn subscribe_stream(&self, stream: &str, from_revision: u64) -> Subscription;
}

/// Checks a stream name: non-empty, bounded, and not a reserved `$` name.
pub fn validate_stream_name(stream: &str) -> Result<(), StoreError> {
    if stream.is_empty() {
        return Err(StoreError::InvalidInput("stream name is empty".into()));
    }
    if stream.len() > STREAM_NAME_BYTES_MAX {
        return Err(StoreError::InvalidInput(format!(
            "stream name is {} bytes, the limit is {STREAM_NAME_BYTES_MAX}",
            stream.len()
        )));
    }
    if stream.starts_with('$') {
        return Err(StoreError::InvalidInput(format!(
            "stream names starting with '$' are reserved: {stream:?}"
        )));
    }
    if stream.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(format!(
            "stream name has control characters: {stream:?}"
        )));
    }
    Ok(())
}
