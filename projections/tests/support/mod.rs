//! Helpers shared by the integration tests: a projection that proves exactly-once
//! delivery, and store and event builders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tutorlog_projections::{Projection, RunnerOptions};
use tutorlog_schemas::{
    events::{TrainingResumed, TrainingStarted},
    Envelope, Event, NewEvent, RecordedEvent,
};
use tutorlog_store::{
    conformance::test_event, EmbeddedStore, EventStore, ExpectedRevision, StoreOptions,
};

/// Generous bound for waits that should finish in milliseconds.
pub const WAIT: Duration = Duration::from_secs(10);

/// Counts how often each event reached the projection. Panics (failing the runner
/// task, hence the test) on a duplicate or an event out of order, and records
/// duplicates in the model too for a readable assertion.
#[derive(Debug, Default)]
pub struct Counting {
    model: CountingModel,
}

/// The counting model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountingModel {
    /// Event id → times seen by `apply_raw` (every event).
    pub seen: BTreeMap<String, u32>,
    /// Event id → times seen by `apply` (known types only).
    pub decoded: BTreeMap<String, u32>,
    /// Event ids seen more than once.
    pub duplicates: Vec<String>,
    /// Events seen; equals the next position when folding is exactly once.
    pub events: u64,
}

impl Projection for Counting {
    const NAME: &'static str = "counting";
    type Model = CountingModel;

    fn apply(&mut self, envelope: &Envelope) {
        *self
            .model
            .decoded
            .entry(envelope.event_id.to_string())
            .or_insert(0) += 1;
    }

    fn apply_raw(&mut self, recorded: &RecordedEvent) {
        let id = recorded.event_id.to_string();
        let count = self.model.seen.entry(id.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            self.model.duplicates.push(id.clone());
        }
        assert_eq!(
            *count, 1,
            "event {id} at position {} applied twice",
            recorded.position
        );
        assert_eq!(
            recorded.position, self.model.events,
            "event {id} out of order"
        );
        self.model.events += 1;
    }

    fn model(&self) -> &CountingModel {
        &self.model
    }

    fn restore(&mut self, model: CountingModel) {
        self.model = model;
    }
}

/// Asserts `model` saw exactly the events `expected` (in any order), each once.
pub fn assert_exactly_once(model: &CountingModel, expected: &[String]) {
    assert!(
        model.duplicates.is_empty(),
        "duplicates: {:?}",
        model.duplicates
    );
    assert_eq!(model.events, expected.len() as u64);
    assert_eq!(model.seen.len(), expected.len());
    for id in expected {
        assert_eq!(model.seen.get(id), Some(&1), "event {id}");
    }
}

/// Opens (or reopens) the embedded log in `dir`, with small preallocation.
pub fn open_store(dir: &Path) -> Arc<EmbeddedStore> {
    let options = StoreOptions {
        segment_bytes: 1 << 20,
        preallocate_bytes: 4096,
        ..StoreOptions::default()
    };
    Arc::new(EmbeddedStore::open_with(dir, options).expect("open store"))
}

/// Runner options snapshotting every `every_events` events (timer effectively off).
pub fn options(snapshot_dir: &Path, every_events: u64) -> RunnerOptions {
    RunnerOptions {
        snapshot_every_events: every_events,
        snapshot_interval: Duration::from_secs(3600),
        batch_events_max: 64,
        ..RunnerOptions::new(snapshot_dir)
    }
}

/// The `index`-th event of a mix: catalogue events and raw `test.event`s (a type
/// the catalogue does not know).
pub fn mixed_event(index: usize) -> NewEvent {
    match index % 3 {
        0 => NewEvent::from_event(&Event::TrainingStarted(TrainingStarted {
            session_id: uuid::Uuid::now_v7(),
            user_id: format!("learner-{index}"),
            focus_area: "algebra".into(),
            rounds: 5,
            provider_plan: vec!["local".into()],
        }))
        .expect("encode"),
        1 => NewEvent::from_event(&Event::TrainingResumed(TrainingResumed {
            session_id: uuid::Uuid::now_v7(),
        }))
        .expect("encode"),
        _ => test_event(&format!("raw-{index}")),
    }
}

/// Appends `events` to `stream` in one call; returns their ids.
pub async fn append(store: &EmbeddedStore, stream: &str, events: Vec<NewEvent>) -> Vec<String> {
    let ids = events.iter().map(|e| e.event_id.to_string()).collect();
    store
        .append(stream, ExpectedRevision::Any, events)
        .await
        .expect("append");
    ids
}

/// Appends `count` mixed events to `stream` in one call; returns their ids.
pub async fn append_mixed(store: &EmbeddedStore, stream: &str, count: usize) -> Vec<String> {
    append(store, stream, (0..count).map(mixed_event).collect()).await
}

/// The position of the last event; panics on an empty log.
pub fn last_position(store: &EmbeddedStore) -> u64 {
    store.last_position().expect("log is not empty")
}
