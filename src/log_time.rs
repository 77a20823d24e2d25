//! Finding positions in `$all` by time, for tools that read a window of the log
//! (`export dataset --since`, `explain`) instead of all of it.
//!
//! Every backend guarantees that `recorded_at` never decreases along `$all` and that
//! positions are dense, so "the first event recorded at or after T" is a binary
//! search of one-event reads: about 40 reads for a trillion events.

use chrono::{DateTime, Utc};
use tutorlog_store::{EventStore, StoreError};

/// The first position in `[low, high)` whose event was recorded at or after `time`,
/// or `high` when there is none.
pub async fn first_position_at_or_after(
    store: &dyn EventStore,
    time: DateTime<Utc>,
    low: u64,
    high: u64,
) -> Result<u64, StoreError> {
    let (mut low, mut high) = (low, high);
    while low < high {
        let middle = low + (high - low) / 2;
        let probe = store.read_all(middle, 1).await?;
        match probe.first() {
            Some(event) if event.recorded_at < time => low = event.position.max(middle) + 1,
            // Past the end (or at a time not before `time`): the answer is at or
            // before `middle`.
            _ => high = middle,
        }
    }
    Ok(low)
}

/// The log's next position (one past the last event), 0 for an empty log.
pub fn next_position(store: &dyn EventStore) -> u64 {
    store
        .last_position()
        .map_or(0, |last| last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutorlog_schemas::{events::TrainingResumed, Event, NewEvent};
    use tutorlog_store::{ExpectedRevision, MemoryStore};
    use uuid::Uuid;

    #[tokio::test]
    async fn finds_the_first_event_at_or_after_a_time() {
        let store = MemoryStore::new();
        let mut times = Vec::new();
        for _ in 0..37 {
            let event = Event::TrainingResumed(TrainingResumed {
                session_id: Uuid::now_v7(),
            });
            let record = NewEvent::from_event(&event).expect("encode");
            let result = store
                .append("learner-ada", ExpectedRevision::Any, vec![record])
                .await
                .expect("append");
            let read = store.read_all(result.position, 1).await.expect("read");
            times.push(read.first().expect("event").recorded_at);
        }
        let end = next_position(&store);
        assert_eq!(end, 37);
        for (index, time) in times.iter().enumerate() {
            let found = first_position_at_or_after(&store, *time, 0, end)
                .await
                .expect("search");
            // Equal times are possible (same microsecond): the first of them.
            let expected = times.iter().position(|t| t >= time).expect("some");
            assert_eq!(found, expected as u64, "event {index}");
        }
        let after = *times.last().expect("last") + chrono::TimeDelta::seconds(1);
        assert_eq!(
            first_position_at_or_after(&store, after, 0, end)
                .await
                .expect("search"),
            end
        );
        let before = times[0] - chrono::TimeDelta::seconds(1);
        assert_eq!(
            first_position_at_or_after(&store, before, 5, end)
                .await
                .expect("search"),
            5
        );
    }
}
