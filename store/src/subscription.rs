use async_trait::async_trait;
use tutorlog_schemas::RecordedEvent;

use crate::StoreError;

/// The backend side of a subscription: yields events in order, first those already
/// in the log (catch-up), then new ones as they become durable (live).
#[async_trait]
pub trait SubscriptionSource: Send {
    /// The next event, or `None` once the store has shut down and every durable
    /// event was delivered.
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>>;

    /// The next event if it is already in hand, without reading or waiting; `None`
    /// when the next one needs a read or a wait (or the source buffers nothing, the
    /// default). Lets a reader take a whole fetched chunk at once after
    /// [`SubscriptionSource::next`] returned its first event.
    fn next_buffered(&mut self) -> Option<RecordedEvent> {
        None
    }
}

/// A catch-up then live subscription to `$all` or one stream: no gap, no duplicate,
/// in log order.
pub struct Subscription {
    source: Box<dyn SubscriptionSource>,
}

impl Subscription {
    /// Wraps a backend's source.
    pub fn new(source: Box<dyn SubscriptionSource>) -> Self {
        Subscription { source }
    }

    /// The next event; see [`SubscriptionSource::next`].
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        self.source.next().await
    }

    /// The next event if it is already in hand; see
    /// [`SubscriptionSource::next_buffered`].
    pub fn next_buffered(&mut self) -> Option<RecordedEvent> {
        self.source.next_buffered()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}
