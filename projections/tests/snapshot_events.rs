//! Aggregate snapshots (`aggregate.snapshot` in streams `snapshot-{stream}`, written
//! by the actors) are a cache for restarts, not domain facts: every read model
//! folds to the same model with or without them. Only `stream_stats`, which counts
//! every record, sees them.

use chrono::{DateTime, Utc};
use tutorlog_projections::{AlgoRuns, Mastery, Projection, StreamStats};
use tutorlog_schemas::events::{
    AggregateSnapshot, AlgoRunRecord, TrainingRoundCompleted, TrainingRoundStarted, TrainingStarted,
};
use tutorlog_schemas::{Envelope, Event, NewEvent, RecordedEvent};
use uuid::Uuid;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
}

fn envelope(stream: &str, position: u64, revision: u64, payload: Event) -> Envelope {
    Envelope {
        position,
        stream: stream.into(),
        revision,
        event_id: Uuid::from_u128(u128::from(position) + 1),
        recorded_at: at(position as i64),
        event_type: payload.event_type().into(),
        schema_version: payload.schema_version(),
        correlation_id: None,
        causation_id: None,
        payload,
    }
}

fn recorded(envelope: &Envelope) -> RecordedEvent {
    let new = NewEvent::from_event(&envelope.payload).expect("encode");
    RecordedEvent {
        position: envelope.position,
        stream: envelope.stream.clone(),
        revision: envelope.revision,
        event_id: envelope.event_id,
        recorded_at: envelope.recorded_at,
        event_type: new.event_type,
        schema_version: new.schema_version,
        correlation_id: None,
        causation_id: None,
        payload: new.payload,
    }
}

fn run(key: &str) -> AlgoRunRecord {
    AlgoRunRecord {
        run_id: Uuid::now_v7(),
        key: key.into(),
        version: 1,
        params_checksum: "00".into(),
        input_summary: "{}".into(),
        output_summary: "{}".into(),
    }
}

/// A learner's session; positions leave gaps for snapshots in between.
fn learner_events() -> Vec<Envelope> {
    let session_id = Uuid::from_u128(7);
    let mut events = vec![Event::TrainingStarted(TrainingStarted {
        session_id,
        user_id: "ada".into(),
        focus_area: "algebra".into(),
        rounds: 3,
        provider_plan: Vec::new(),
    })];
    for round in 1..=3u32 {
        events.push(Event::TrainingRoundStarted(TrainingRoundStarted {
            session_id,
            round_id: Uuid::from_u128(u128::from(round)),
            round_number: round,
            item_id: format!("algebra-{round}"),
            prompt: "p".into(),
            difficulty: "easy".into(),
            started_at: at(i64::from(round) * 60),
            algo_runs: vec![run("adaptive")],
        }));
        events.push(Event::TrainingRoundCompleted(TrainingRoundCompleted {
            session_id,
            round_id: Uuid::from_u128(u128::from(round)),
            round_number: round,
            focus_area: "algebra".into(),
            item_id: format!("algebra-{round}"),
            response_digest: String::new(),
            score: 90,
            correct: true,
            feedback: "ok".into(),
            mistake_tag: None,
            mastery_before: f64::from(round - 1) * 20.0,
            mastery_after: f64::from(round) * 20.0,
            probability_after: f64::from(round) * 0.2,
            next_review_due: Some(at(86_400)),
            revision_card: String::new(),
            completed_at: at(i64::from(round) * 60 + 30),
            algo_runs: vec![run("mastery"), run("revision")],
        }));
    }
    (0u64..)
        .zip(events)
        .map(|(revision, event)| envelope("learner-ada", revision * 2, revision, event))
        .collect()
}

fn snapshot(after: &Envelope, revision: u64) -> Envelope {
    let payload = Event::AggregateSnapshot(AggregateSnapshot {
        stream: "learner-ada".into(),
        revision: after.revision,
        position: after.position,
        format: 1,
        state_json: r#"{"user_id":"ada","sessions":{},"mastery":{},"challenges":{}}"#.into(),
    });
    envelope(
        "snapshot-learner-ada",
        after.position + 1,
        revision,
        payload,
    )
}

fn fold<P: Projection>(mut projection: P, envelopes: &[Envelope]) -> P {
    for envelope in envelopes {
        projection.apply_raw(&recorded(envelope));
        projection.apply(envelope);
    }
    projection
}

#[test]
fn read_models_ignore_snapshot_events() {
    let plain = learner_events();
    let mut with_snapshots = Vec::new();
    for (index, envelope) in plain.iter().enumerate() {
        with_snapshots.push(envelope.clone());
        if index % 3 == 2 {
            let revision = (index / 3) as u64;
            with_snapshots.push(snapshot(envelope, revision));
        }
    }
    assert!(with_snapshots.len() > plain.len());

    let mastery = fold(Mastery::new(), &plain);
    let mastery_too = fold(Mastery::new(), &with_snapshots);
    assert_eq!(mastery.model(), mastery_too.model());
    assert!(mastery.learner("ada").is_some());
    assert!(mastery_too.learner("snapshot-learner-ada").is_none());

    let runs = fold(AlgoRuns::new(), &plain);
    let runs_too = fold(AlgoRuns::new(), &with_snapshots);
    assert_eq!(runs.model(), runs_too.model());

    // stream_stats counts every record, snapshots included, as a known type.
    let stats = fold(StreamStats::new(), &with_snapshots);
    let model = stats.model();
    assert_eq!(model.events_total, with_snapshots.len() as u64);
    assert_eq!(
        model.events_by_type.get("aggregate.snapshot").copied(),
        Some((with_snapshots.len() - plain.len()) as u64)
    );
    assert_eq!(model.events_of_unknown_type, 0);
    assert_eq!(model.stream_count, 2);
}
