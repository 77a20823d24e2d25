//! [`Feed`]: one `$all` subscription whose events are decoded once and handed to
//! several runners.
//!
//! Each runner used to hold its own subscription, so every event was read from the
//! log, framed and decoded seven times in the daemon (the gateway profile in
//! BENCHMARKS.md, "Gateway", put that at a third of the daemon's CPU). A feed
//! reads and decodes once and sends every subscriber the same batch behind an
//! [`Arc`]; each subscriber gets only the events from its own start position on,
//! so a runner still sees a dense run of positions and still checks it.
//!
//! A feed starts from the lowest start position of its subscribers. A subscriber
//! that falls behind holds the others back once [`FEED_QUEUE_EVENTS`] events wait
//! for it: the log is never dropped for a slow view, and the bound (in events, not
//! batches: live batches are a group commit each, a handful of events) keeps what
//! waits in memory to a few tens of MB while leaving a view seconds of live traffic
//! to spend on a snapshot before the others wait.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinHandle,
};
use tutorlog_schemas::{Envelope, RecordedEvent};
use tutorlog_store::{EventStore, StoreError, Subscription};

/// Most events in one batch handed to the subscribers.
pub(crate) const FEED_BATCH_EVENTS_MAX: usize = 256;
/// Events queued per subscriber before the feed waits for it.
pub(crate) const FEED_QUEUE_EVENTS: usize = 65_536;

const _: () = assert!(FEED_BATCH_EVENTS_MAX <= FEED_QUEUE_EVENTS);

/// One event as the feed read it, decoded once for every subscriber.
#[derive(Debug)]
pub(crate) struct FeedEvent {
    pub(crate) recorded: RecordedEvent,
    /// `None` when the payload did not decode (an unknown type or a bad payload):
    /// the runner decodes again to get its own error, which is rare enough.
    pub(crate) envelope: Option<Envelope>,
}

/// Events `batch[start..]` for one subscriber, positions dense and ascending.
#[derive(Debug, Clone)]
pub(crate) struct FeedSlice {
    batch: Arc<Vec<FeedEvent>>,
    start: usize,
}

impl FeedSlice {
    pub(crate) fn events(&self) -> &[FeedEvent] {
        &self.batch[self.start..]
    }
}

/// What a subscriber receives: events, or the subscription's failure (after which
/// nothing more comes). The end of the log (store closed) is the channel closing.
pub(crate) type FeedDelivery = Result<FeedSlice, Arc<StoreError>>;

struct Subscriber {
    from_position: u64,
    sender: mpsc::UnboundedSender<FeedDelivery>,
    /// Events this subscriber has room for; the feed takes, the receiver gives back.
    room: Arc<Semaphore>,
}

/// A subscriber's end: slices, and the room it gives back once it has folded them.
pub(crate) struct FeedReceiver {
    receiver: mpsc::UnboundedReceiver<FeedDelivery>,
    room: Arc<Semaphore>,
}

impl FeedReceiver {
    /// Waits for at least one delivery and takes up to `limit`; 0 once the feed ended.
    pub(crate) async fn recv_many(&mut self, into: &mut Vec<FeedDelivery>, limit: usize) -> usize {
        self.receiver.recv_many(into, limit).await
    }

    /// Gives back the room of `events` events received and done with.
    pub(crate) fn release(&self, events: usize) {
        self.room.add_permits(events);
    }
}

/// Collects subscribers (each runner's start position) before the feed starts.
/// Runners are started against it, usually in parallel, then
/// [`FeedBuilder::start`] opens the one subscription.
#[derive(Default)]
pub struct FeedBuilder {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl std::fmt::Debug for FeedBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedBuilder")
            .field("subscribers", &self.subscribers.lock().len())
            .finish()
    }
}

impl FeedBuilder {
    /// A feed with no subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber wanting every event from `from_position` on.
    pub(crate) fn subscribe(&self, from_position: u64) -> FeedReceiver {
        let (sender, receiver) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(FEED_QUEUE_EVENTS));
        self.subscribers.lock().push(Subscriber {
            from_position,
            sender,
            room: Arc::clone(&room),
        });
        FeedReceiver { receiver, room }
    }

    /// Subscribes to `$all` from the lowest start position and starts handing out
    /// events on a new task. With no subscribers it starts nothing.
    pub fn start<S: EventStore + ?Sized>(self, store: &S) -> Feed {
        let subscribers = self.subscribers.into_inner();
        let Some(from_position) = subscribers.iter().map(|s| s.from_position).min() else {
            return Feed { task: None };
        };
        let subscription = store.subscribe_all(from_position);
        Feed {
            task: Some(tokio::spawn(run(subscription, subscribers))),
        }
    }
}

/// A running feed. Dropping it stops the feed (its subscribers then see the
/// channel close); it also ends on its own when every subscriber is gone or the
/// store closes.
#[derive(Debug)]
pub struct Feed {
    task: Option<JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn decoded(recorded: RecordedEvent) -> FeedEvent {
    let envelope = Envelope::decode(&recorded).ok();
    FeedEvent { recorded, envelope }
}

async fn run(mut subscription: Subscription, mut subscribers: Vec<Subscriber>) {
    loop {
        let first = match subscription.next().await {
            None => return,
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                let error = Arc::new(error);
                for subscriber in &subscribers {
                    // A subscriber already gone needs no error.
                    let _ = subscriber.sender.send(Err(Arc::clone(&error)));
                }
                return;
            }
        };
        let mut batch = Vec::with_capacity(FEED_BATCH_EVENTS_MAX.min(64));
        batch.push(decoded(first));
        while batch.len() < FEED_BATCH_EVENTS_MAX {
            match subscription.next_buffered() {
                Some(event) => batch.push(decoded(event)),
                None => break,
            }
        }
        let first_position = batch[0].recorded.position;
        let next_position = first_position + batch.len() as u64;
        let batch = Arc::new(batch);
        let mut index = 0;
        while index < subscribers.len() {
            let subscriber = &subscribers[index];
            if subscriber.from_position >= next_position {
                index += 1;
                continue;
            }
            let slice = FeedSlice {
                batch: Arc::clone(&batch),
                start: subscriber.from_position.saturating_sub(first_position) as usize,
            };
            // At most FEED_BATCH_EVENTS_MAX, so the cast cannot truncate.
            let events = slice.events().len() as u32;
            let room = tokio::select! {
                room = subscriber.room.acquire_many(events) => room.ok(),
                () = subscriber.sender.closed() => None,
            };
            // The receiver gives the room back after folding (`FeedReceiver::release`).
            let sent = room.is_some_and(|room| {
                room.forget();
                subscriber.sender.send(Ok(slice)).is_ok()
            });
            if sent {
                index += 1;
            } else {
                subscribers.swap_remove(index);
            }
        }
        if subscribers.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutorlog_store::{ExpectedRevision, MemoryStore, NewEvent};

    fn raw(label: &str) -> NewEvent {
        NewEvent::raw("test.event", 1, label.as_bytes().to_vec())
    }

    async fn positions(receiver: &mut FeedReceiver, count: usize) -> Vec<u64> {
        let mut positions = Vec::new();
        while positions.len() < count {
            let mut got = Vec::new();
            let received = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                receiver.recv_many(&mut got, 1),
            )
            .await
            .expect("feed stalled");
            assert_eq!(received, 1, "feed ended");
            let slice = got.pop().expect("one").expect("feed failed");
            positions.extend(slice.events().iter().map(|e| e.recorded.position));
            receiver.release(slice.events().len());
        }
        positions
    }

    #[tokio::test]
    async fn each_subscriber_gets_a_dense_run_from_its_own_start() {
        let store = MemoryStore::new();
        for i in 0..10 {
            store
                .append("s", ExpectedRevision::Any, vec![raw(&format!("{i}"))])
                .await
                .expect("append");
        }
        let builder = FeedBuilder::new();
        let mut from_zero = builder.subscribe(0);
        let mut from_seven = builder.subscribe(7);
        let mut from_twelve = builder.subscribe(12);
        let _feed = builder.start(&store);
        for i in 10..15 {
            store
                .append("s", ExpectedRevision::Any, vec![raw(&format!("{i}"))])
                .await
                .expect("append");
        }
        assert_eq!(
            positions(&mut from_zero, 15).await,
            (0..15).collect::<Vec<_>>()
        );
        assert_eq!(
            positions(&mut from_seven, 8).await,
            (7..15).collect::<Vec<_>>()
        );
        assert_eq!(
            positions(&mut from_twelve, 3).await,
            (12..15).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_departed_subscriber_does_not_stop_the_others() {
        let store = MemoryStore::new();
        let builder = FeedBuilder::new();
        let gone = builder.subscribe(0);
        let mut kept = builder.subscribe(0);
        let _feed = builder.start(&store);
        drop(gone);
        for i in 0..3 {
            store
                .append("s", ExpectedRevision::Any, vec![raw(&format!("{i}"))])
                .await
                .expect("append");
        }
        assert_eq!(positions(&mut kept, 3).await, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn the_feed_ends_when_the_store_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = tutorlog_store::EmbeddedStore::open(dir.path()).expect("open");
        store
            .append("s", ExpectedRevision::Any, vec![raw("a")])
            .await
            .expect("append");
        let builder = FeedBuilder::new();
        let mut receiver = builder.subscribe(0);
        let _feed = builder.start(&store);
        assert_eq!(positions(&mut receiver, 1).await, vec![0]);
        store.close();
        let mut rest = Vec::new();
        let end = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            receiver.recv_many(&mut rest, 1),
        )
        .await
        .expect("feed did not end");
        assert_eq!(end, 0, "channel closes after the store closes");
    }
}
