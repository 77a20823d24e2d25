//! `stream_stats`: log-level counts — events per event type, streams, totals, and
//! the last position and time. Built from raw records, so it counts event types
//! this build does not know as well.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{events::CATALOGUE, Envelope, RecordedEvent};

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
};

/// Most distinct event types counted by name; further types are counted under
/// [`OTHER_EVENT_TYPES`], so a writer inventing types cannot grow the model forever.
pub const EVENT_TYPES_TRACKED_MAX: usize = 1024;
/// The `events_by_type` key for event types beyond [`EVENT_TYPES_TRACKED_MAX`].
pub const OTHER_EVENT_TYPES: &str = "(other)";

/// The `stream_stats` model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatsModel {
    /// Events in the log.
    pub events_total: u64,
    /// Events per event type (known or not).
    pub events_by_type: BTreeMap<String, u64>,
    /// Events whose type is not in this build's catalogue.
    pub events_of_unknown_type: u64,
    /// Distinct streams (streams whose revision 0 was seen).
    pub stream_count: u64,
    /// Position of the last event.
    pub last_position: Option<u64>,
    /// When the last event was recorded.
    pub last_recorded_at: Option<DateTime<Utc>>,
}

/// The `stream_stats` projection.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    model: StreamStatsModel,
}

impl StreamStats {
    /// An empty projection.
    pub fn new() -> Self {
        StreamStats::default()
    }
}

impl Projection for StreamStats {
    const NAME: &'static str = "stream_stats";
    type Model = StreamStatsModel;

    /// Everything is counted in [`Projection::apply_raw`].
    fn apply(&mut self, _envelope: &Envelope) {}

    fn apply_raw(&mut self, recorded: &RecordedEvent) {
        let model = &mut self.model;
        model.events_total += 1;
        let event_type = recorded.event_type.as_str();
        let tracked = model.events_by_type.contains_key(event_type)
            || model.events_by_type.len() < EVENT_TYPES_TRACKED_MAX;
        let key = if tracked {
            event_type
        } else {
            OTHER_EVENT_TYPES
        };
        *model.events_by_type.entry(key.to_owned()).or_insert(0) += 1;
        if !CATALOGUE.iter().any(|(name, _)| *name == event_type) {
            model.events_of_unknown_type += 1;
        }
        // Revisions are dense from 0, so revision 0 marks a stream's first event.
        if recorded.revision == 0 {
            model.stream_count += 1;
        }
        model.last_position = Some(recorded.position);
        model.last_recorded_at = Some(recorded.recorded_at);
    }

    fn model(&self) -> &StreamStatsModel {
        &self.model
    }

    fn restore(&mut self, model: StreamStatsModel) {
        self.model = model;
    }
}

impl Narrow for StreamStats {
    /// Log-level counts belong to no user or provider (`--stream` still applies).
    const FILTERS: &'static [FilterKind] = &[];

    fn narrowed(&self, _filter: &ViewFilter) -> Self {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::fold_record;

    fn recorded(position: u64, stream: &str, revision: u64, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            position,
            stream: stream.to_owned(),
            revision,
            event_id: uuid_from(position),
            recorded_at: DateTime::<Utc>::from_timestamp(1_700_000_000 + position as i64, 0)
                .expect("valid time"),
            event_type: event_type.to_owned(),
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            payload: Vec::new(),
        }
    }

    fn uuid_from(position: u64) -> uuid::Uuid {
        uuid::Uuid::from_u128(u128::from(position))
    }

    #[test]
    fn counts_unknown_types_and_streams() {
        let mut stats = StreamStats::new();
        let events = [
            recorded(0, "a", 0, "future.thing"),
            recorded(1, "a", 1, "future.thing"),
            recorded(2, "b", 0, "other.unknown"),
        ];
        for event in &events {
            fold_record(&mut stats, event).expect("unknown types are skipped");
        }
        let model = stats.model();
        assert_eq!(model.events_total, 3);
        assert_eq!(model.events_of_unknown_type, 3);
        assert_eq!(model.stream_count, 2);
        assert_eq!(model.events_by_type.get("future.thing"), Some(&2));
        assert_eq!(model.last_position, Some(2));
        assert_eq!(model.last_recorded_at, Some(events[2].recorded_at));
    }

    #[test]
    fn event_types_are_bounded() {
        let mut stats = StreamStats::new();
        let extra = 5;
        for index in 0..EVENT_TYPES_TRACKED_MAX + extra {
            stats.apply_raw(&recorded(
                index as u64,
                "s",
                index as u64,
                &format!("t.{index}"),
            ));
        }
        let model = stats.model();
        assert_eq!(model.events_by_type.len(), EVENT_TYPES_TRACKED_MAX + 1);
        assert_eq!(
            model.events_by_type.get(OTHER_EVENT_TYPES),
            Some(&(extra as u64))
        );
        stats.apply_raw(&recorded(9999, "s", 9999, "t.0"));
        assert_eq!(stats.model().events_by_type.get("t.0"), Some(&2));
    }
}
