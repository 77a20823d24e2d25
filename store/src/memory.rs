//! An in-memory [`EventStore`]: the same contract as the embedded log (it passes
//! the conformance suite), minus durability.
//!
//! For tests and simulations only. Its appends complete without leaving the
//! calling task (no writer thread, no fsync), so a test under
//! `tokio::time::pause` never sees tokio advance its clock while an append is in
//! flight: every timer in such a test fires exactly when the test says.
//!
//! Clones share one log; [`MemoryStore::reopen`] gives a new handle on the same
//! log (what a restart sees).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;
use tutorlog_schemas::{NewEvent, RecordedEvent};

use crate::{
    validate_stream_name, AppendResult, EventStore, ExpectedRevision, StoreError, Subscription,
    SubscriptionSource, APPEND_EVENTS_MAX,
};

#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<u64>>,
    last_time: Option<DateTime<Utc>>,
}

/// An in-memory event log. See the module docs.
#[derive(Clone)]
pub struct MemoryStore {
    log: Arc<Mutex<Log>>,
    /// The number of events in the log, for live subscriptions.
    head: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("events", &self.log.lock().events.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty log.
    pub fn new() -> Self {
        let (head, _) = watch::channel(0);
        MemoryStore {
            log: Arc::new(Mutex::new(Log::default())),
            head: Arc::new(head),
        }
    }

    /// A new handle on the same log, as a process restart would see it.
    pub fn reopen(&self) -> Self {
        self.clone()
    }

    fn read_all_sync(&self, from: u64, max: usize) -> Vec<RecordedEvent> {
        let log = self.log.lock();
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(log.events.len());
        log.events[start..].iter().take(max).cloned().collect()
    }

    fn read_stream_sync(&self, stream: &str, from: u64, max: usize) -> Vec<RecordedEvent> {
        let log = self.log.lock();
        let Some(positions) = log.streams.get(stream) else {
            return Vec::new();
        };
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(positions.len());
        positions[start..]
            .iter()
            .take(max)
            .filter_map(|&p| log.events.get(usize::try_from(p).ok()?).cloned())
            .collect()
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_stream_name(stream)?;
        if events.is_empty() {
            return Err(StoreError::InvalidInput(
                "append needs at least one event".into(),
            ));
        }
        if events.len() > APPEND_EVENTS_MAX {
            return Err(StoreError::InvalidInput(format!(
                "{} events in one append, the limit is {APPEND_EVENTS_MAX}",
                events.len()
            )));
        }
        let result = {
            let mut log = self.log.lock();
            let actual = log
                .streams
                .get(stream)
                .and_then(|p| p.len().checked_sub(1))
                .map(|r| r as u64);
            if !expected.matches(actual) {
                return Err(StoreError::WrongExpectedRevision {
                    stream: stream.to_owned(),
                    expected,
                    actual,
                });
            }
            // `recorded_at` never decreases along `$all`, as in every backend.
            let now = Utc::now().max(log.last_time.unwrap_or(DateTime::<Utc>::MIN_UTC));
            log.last_time = Some(now);
            let first_revision = actual.map_or(0, |r| r + 1);
            let first_position = log.events.len() as u64;
            for (i, event) in events.into_iter().enumerate() {
                let position = first_position + i as u64;
                log.events.push(RecordedEvent {
                    position,
                    stream: stream.to_owned(),
                    revision: first_revision + i as u64,
                    event_id: event.event_id,
                    recorded_at: now,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    correlation_id: event.correlation_id,
                    causation_id: event.causation_id,
                    payload: event.payload,
                });
                log.streams
                    .entry(stream.to_owned())
                    .or_default()
                    .push(position);
            }
            let count = log.events.len() as u64;
            // Published under the lock so subscribers see heads in order.
            self.head.send_replace(count);
            AppendResult {
                first_revision,
                last_revision: count - first_position + first_revision - 1,
                first_position,
                position: count - 1,
            }
        };
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_stream_sync(stream, from_revision, max))
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_all_sync(from_position, max))
    }

    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        let log = self.log.lock();
        Ok(log
            .streams
            .get(stream)
            .and_then(|p| p.len().checked_sub(1))
            .map(|r| r as u64))
    }

    fn last_position(&self) -> Option<u64> {
        (self.log.lock().events.len() as u64).checked_sub(1)
    }

    fn subscribe_all(&self, from_position: u64) -> Subscription {
        Subscription::new(Box::new(MemorySubscription {
            store: self.clone(),
            stream: None,
            next: from_position,
            buffer: Vec::new().into_iter(),
            head: self.head.subscribe(),
        }))
    }

    fn subscribe_stream(&self, stream: &str, from_revision: u64) -> Subscription {
        Subscription::new(Box::new(MemorySubscription {
            store: self.clone(),
            stream: Some(stream.to_owned()),
            next: from_revision,
            buffer: Vec::new().into_iter(),
            head: self.head.subscribe(),
        }))
    }
}

struct MemorySubscription {
    store: MemoryStore,
    /// `None` for `$all`.
    stream: Option<String>,
    /// Next position (`$all`) or revision (stream) to deliver.
    next: u64,
    buffer: std::vec::IntoIter<RecordedEvent>,
    head: watch::Receiver<u64>,
}

#[async_trait]
impl SubscriptionSource for MemorySubscription {
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffer.next() {
                self.next = match &self.stream {
                    None => event.position + 1,
                    Some(_) => event.revision + 1,
                };
                return Some(Ok(event));
            }
            // Mark the head seen before reading, so an append after the read
            // wakes the wait below.
            self.head.borrow_and_update();
            let batch = match &self.stream {
                None => self.store.read_all_sync(self.next, 1_000),
                Some(stream) => self.store.read_stream_sync(stream, self.next, 1_000),
            };
            if batch.is_empty() {
                // The sender lives as long as any store handle.
                if self.head.changed().await.is_err() {
                    return None;
                }
                continue;
            }
            self.buffer = batch.into_iter();
        }
    }

    fn next_buffered(&mut self) -> Option<RecordedEvent> {
        let event = self.buffer.next()?;
        self.next = match &self.stream {
            None => event.position + 1,
            Some(_) => event.revision + 1,
        };
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{run_all, Harness};

    struct Memory(MemoryStore);

    #[async_trait]
    impl Harness for Memory {
        type Store = MemoryStore;

        async fn open(&self) -> MemoryStore {
            self.0.reopen()
        }

        async fn close(&self, _store: MemoryStore) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_passes_the_conformance_suite() {
        run_all(&Memory(MemoryStore::new())).await;
    }

    /// It has no writer thread to run a callback on, so it gives a detached
    /// append back whole, and the caller appends it the usual way.
    #[tokio::test]
    async fn a_detached_append_is_given_back_unwritten_and_uncalled() {
        let store = MemoryStore::new();
        let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&called);
        let given_back = store
            .try_append_detached(
                "detached",
                ExpectedRevision::Any,
                vec![crate::conformance::test_event("kept")],
                Box::new(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst)),
            )
            .expect_err("no detached appends here");
        assert_eq!(given_back.events.len(), 1);
        assert!(store
            .read_stream("detached", 0, 10)
            .await
            .expect("read")
            .is_empty());
        drop(given_back);
        assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    }
}
