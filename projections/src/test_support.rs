//! Helpers for the read models' unit tests: envelopes built by hand (no store, no
//! tokio) and the fold-versus-snapshot-restore check every projection must pass.

use chrono::{DateTime, Utc};
use tutorlog_schemas::{Envelope, Event};
use uuid::Uuid;

use crate::projection::Projection;

/// 2027-01-15T08:00:00Z plus `seconds`.
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
}

/// An envelope of `stream` at `position`, recorded at `recorded_at`.
pub(crate) fn envelope_at(
    stream: &str,
    position: u64,
    recorded_at: DateTime<Utc>,
    payload: Event,
) -> Envelope {
    Envelope {
        position,
        stream: stream.into(),
        revision: position,
        event_id: Uuid::from_u128(u128::from(position) + 1),
        recorded_at,
        event_type: payload.event_type().into(),
        schema_version: payload.schema_version(),
        correlation_id: None,
        causation_id: None,
        payload,
    }
}

fn model_json<P: Projection>(projection: &P) -> String {
    serde_json::to_string(projection.model()).expect("model serializes")
}

fn view_json<P: Projection>(projection: &P) -> String {
    serde_json::to_string(&projection.view().expect("view")).expect("view serializes")
}

/// Folding `events` in one go equals folding a prefix, snapshotting the model as
/// JSON (what the runner writes), restoring it into a fresh projection and folding
/// the rest, at every cut point: same model JSON and same view JSON, byte for byte.
pub(crate) fn assert_restore_equivalence<P: Projection>(new: impl Fn() -> P, events: &[Envelope]) {
    let mut whole = new();
    for event in events {
        whole.apply(event);
    }
    let (whole_model, whole_view) = (model_json(&whole), view_json(&whole));
    for cut in 0..=events.len() {
        let mut first = new();
        for event in &events[..cut] {
            first.apply(event);
        }
        let snapshot = model_json(&first);
        let model: P::Model = serde_json::from_str(&snapshot).expect("snapshot deserializes");
        let mut resumed = new();
        resumed.restore(model);
        assert_eq!(
            model_json(&resumed),
            snapshot,
            "snapshot round trip at {cut}"
        );
        for event in &events[cut..] {
            resumed.apply(event);
        }
        assert_eq!(
            model_json(&resumed),
            whole_model,
            "model after restore at {cut}"
        );
        assert_eq!(
            view_json(&resumed),
            whole_view,
            "view after restore at {cut}"
        );
    }
}
