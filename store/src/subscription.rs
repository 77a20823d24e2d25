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
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}
