//! Aggregate snapshots, Akka-Persistence style: opt-in, stored in the log, never
//! trusted blindly.
//!
//! A decider whose state can be snapshotted says so by returning a
//! [`SnapshotPolicy`] from [`crate::decider::Decider::snapshot_policy`] (the default is `None`:
//! always replay the whole stream). The [`crate::aggregate::Aggregate`] actor then
//!
//! 1. on start reads the last `aggregate.snapshot` event of stream
//!    `snapshot-{stream}` ([`snapshot_stream_name`]), checks it with [`restore`]
//!    (event type, source stream, format version, decodable state) and
//!    [`check_anchor`] (the source stream really has that revision at that `$all`
//!    position), and replays only the events after it. A snapshot that fails any
//!    check is ignored with a warning and the whole stream is replayed;
//! 2. after a message, once [`snapshot_due`] says enough events were folded since
//!    the last snapshot, appends a new one ([`snapshot_record`]) without holding up
//!    the reply.
//!
//! Snapshots live in the log itself, so they work on every `EventStore` backend
//! (KurrentDB included) and need no files of their own. They are a cache: the source
//! stream stays complete, projections ignore them, and deleting every snapshot stream
//! loses nothing but restart time.
//!
//! Pure: nothing here does I/O or imports tokio or ractor.

use serde::{de::DeserializeOwned, Serialize};
use tutorlog_schemas::events::AggregateSnapshot;
pub use tutorlog_schemas::events::{snapshot_stream_name, SNAPSHOT_STREAM_PREFIX};
use tutorlog_schemas::{CodecError, Event, NewEvent, RecordedEvent};

/// Events folded between two snapshots unless a policy says otherwise.
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 200;

/// The event type snapshots are stored as.
pub const SNAPSHOT_EVENT_TYPE: &str = "aggregate.snapshot";

/// How a decider's state is snapshotted: the format version of the encoded state,
/// how often, and the encoding itself.
///
/// Built with [`SnapshotPolicy::json`] for any `Serialize + DeserializeOwned` state,
/// or [`SnapshotPolicy::with_codec`] for a hand-written encoding.
pub struct SnapshotPolicy<S> {
    /// Version of the encoded state's shape. Bump it whenever the state's fields
    /// change *or* `evolve` would fold the same events into a different state (a new
    /// bound, a fixed rule): snapshots of another version are then ignored and the
    /// stream is replayed with today's rules.
    pub format: u32,
    /// A snapshot is written once this many events were folded since the last one
    /// (at least 1).
    pub every_events: u64,
    encode: fn(&S) -> Result<String, String>,
    decode: fn(&str) -> Result<S, String>,
}

// Derives would demand `S: Clone`; the fields are a number and function pointers.
impl<S> Clone for SnapshotPolicy<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for SnapshotPolicy<S> {}

impl<S> std::fmt::Debug for SnapshotPolicy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotPolicy")
            .field("format", &self.format)
            .field("every_events", &self.every_events)
            .finish_non_exhaustive()
    }
}

fn json_encode<S: Serialize>(state: &S) -> Result<String, String> {
    serde_json::to_string(state).map_err(|e| e.to_string())
}

fn json_decode<S: DeserializeOwned>(text: &str) -> Result<S, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

impl<S: Serialize + DeserializeOwned> SnapshotPolicy<S> {
    /// Snapshots of format `format` holding the state's serde JSON, every
    /// [`SNAPSHOT_EVERY_EVENTS_DEFAULT`] events.
    ///
    /// The workspace builds serde_json with `float_roundtrip`, so every finite `f64`
    /// comes back bit for bit; a NaN or infinity encodes as `null` and makes the
    /// snapshot undecodable (ignored: the stream is replayed), never wrong.
    pub fn json(format: u32) -> Self {
        SnapshotPolicy::with_codec(format, json_encode::<S>, json_decode::<S>)
    }
}

impl<S> SnapshotPolicy<S> {
    /// A policy with a hand-written state encoding.
    pub fn with_codec(
        format: u32,
        encode: fn(&S) -> Result<String, String>,
        decode: fn(&str) -> Result<S, String>,
    ) -> Self {
        SnapshotPolicy {
            format,
            every_events: SNAPSHOT_EVERY_EVENTS_DEFAULT,
            encode,
            decode,
        }
    }

    /// The same policy, snapshotting every `every_events` events (at least 1).
    pub fn every(self, every_events: u64) -> Self {
        SnapshotPolicy {
            every_events: every_events.max(1),
            ..self
        }
    }

    /// Encodes a state as the policy's text form.
    pub fn encode_state(&self, state: &S) -> Result<String, String> {
        (self.encode)(state)
    }

    /// Decodes a state from the policy's text form.
    pub fn decode_state(&self, text: &str) -> Result<S, String> {
        (self.decode)(text)
    }
}

/// Whether a snapshot should be written now: the aggregate has folded up to
/// `revision` and the last snapshot written (or attempted) covers `covered`.
///
/// Counting from the last snapshot rather than testing `revision % every` means an
/// append of many events that jumps over a multiple still snapshots, and a restart
/// from a snapshot keeps the same spacing.
pub fn snapshot_due(covered: Option<u64>, revision: Option<u64>, every_events: u64) -> bool {
    let Some(revision) = revision else {
        return false;
    };
    let folded = revision.saturating_add(1);
    let in_snapshot = covered.map_or(0, |c| c.saturating_add(1));
    folded.saturating_sub(in_snapshot) >= every_events.max(1)
}

/// The record to append to `snapshot-{stream}` for `state` as of `revision` (at
/// `$all` `position`).
pub fn snapshot_record<S>(
    policy: &SnapshotPolicy<S>,
    stream: &str,
    state: &S,
    revision: u64,
    position: u64,
) -> Result<NewEvent, CodecError> {
    let state_json = policy.encode_state(state).map_err(CodecError::Encode)?;
    NewEvent::from_event(&Event::AggregateSnapshot(AggregateSnapshot {
        stream: stream.to_owned(),
        revision,
        position,
        format: policy.format,
        state_json,
    }))
}

/// A state read back from a snapshot, not yet checked against its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored<S> {
    /// The state as of `revision`.
    pub state: S,
    /// The last revision folded into it.
    pub revision: u64,
    /// The `$all` position of that revision's event.
    pub position: u64,
}

/// Why a stored snapshot was not used (the stream is replayed from its start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotRejected {
    /// The snapshot stream's last record is not an `aggregate.snapshot`.
    #[error("the last record is {0:?}, not an aggregate.snapshot")]
    NotASnapshot(String),
    /// The record does not decode as today's `aggregate.snapshot`.
    #[error("the snapshot record does not decode: {0}")]
    Undecodable(String),
    /// The snapshot is of another stream.
    #[error("the snapshot is of stream {found:?}, not {expected:?}")]
    OtherStream {
        /// The stream being loaded.
        expected: String,
        /// The stream the snapshot names.
        found: String,
    },
    /// The state was written in another format version.
    #[error("the snapshot has state format {found}, this build reads {expected}")]
    OtherFormat {
        /// The policy's format.
        expected: u32,
        /// The snapshot's format.
        found: u32,
    },
    /// The state does not decode with the policy.
    #[error("the snapshot's state does not decode: {0}")]
    BadState(String),
    /// The snapshot covers a revision the stream does not have.
    #[error("the snapshot covers revision {revision}, beyond the stream's end")]
    BeyondStreamEnd {
        /// The snapshot's revision.
        revision: u64,
    },
    /// The stream's event at the snapshot's revision is not the one it covered.
    #[error("the snapshot covers revision {revision} at position {snapshot}, but the stream has it at {stream}")]
    PositionMismatch {
        /// The snapshot's revision.
        revision: u64,
        /// The position the snapshot recorded.
        snapshot: u64,
        /// The position the stream has for that revision.
        stream: u64,
    },
}

/// Decodes and checks a stored snapshot for `stream` against `policy`. The caller
/// must still [`check_anchor`] it against the stream before using it.
pub fn restore<S>(
    policy: &SnapshotPolicy<S>,
    stream: &str,
    recorded: &RecordedEvent,
) -> Result<Restored<S>, SnapshotRejected> {
    if recorded.event_type != SNAPSHOT_EVENT_TYPE {
        return Err(SnapshotRejected::NotASnapshot(recorded.event_type.clone()));
    }
    let snapshot = match Event::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    ) {
        Ok(Event::AggregateSnapshot(snapshot)) => snapshot,
        Ok(other) => {
            return Err(SnapshotRejected::NotASnapshot(
                other.event_type().to_owned(),
            ))
        }
        Err(error) => return Err(SnapshotRejected::Undecodable(error.to_string())),
    };
    if snapshot.stream != stream {
        return Err(SnapshotRejected::OtherStream {
            expected: stream.to_owned(),
            found: snapshot.stream,
        });
    }
    if snapshot.format != policy.format {
        return Err(SnapshotRejected::OtherFormat {
            expected: policy.format,
            found: snapshot.format,
        });
    }
    let state = policy
        .decode_state(&snapshot.state_json)
        .map_err(SnapshotRejected::BadState)?;
    Ok(Restored {
        state,
        revision: snapshot.revision,
        position: snapshot.position,
    })
}

/// Checks a restored snapshot against the source stream's event at its revision
/// (`first`: the first record of a read starting at that revision, `None` when the
/// read came back empty).
pub fn check_anchor<S>(
    restored: &Restored<S>,
    first: Option<&RecordedEvent>,
) -> Result<(), SnapshotRejected> {
    let Some(first) = first.filter(|r| r.revision == restored.revision) else {
        return Err(SnapshotRejected::BeyondStreamEnd {
            revision: restored.revision,
        });
    };
    if first.position != restored.position {
        return Err(SnapshotRejected::PositionMismatch {
            revision: restored.revision,
            snapshot: restored.position,
            stream: first.position,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::reference_time;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    struct Tally {
        count: u64,
        mean: f64,
    }

    fn policy() -> SnapshotPolicy<Tally> {
        SnapshotPolicy::json(3).every(10)
    }

    fn recorded(new: NewEvent, stream: &str, revision: u64, position: u64) -> RecordedEvent {
        RecordedEvent {
            position,
            stream: stream.into(),
            revision,
            event_id: new.event_id,
            recorded_at: reference_time(),
            event_type: new.event_type,
            schema_version: new.schema_version,
            correlation_id: None,
            causation_id: None,
            payload: new.payload,
        }
    }

    fn stored(state: &Tally, revision: u64, position: u64) -> RecordedEvent {
        let new = snapshot_record(&policy(), "tally-a", state, revision, position).expect("encode");
        recorded(new, "snapshot-tally-a", 0, position + 1)
    }

    #[test]
    fn due_once_every_n_events_since_the_last_snapshot() {
        // Nothing folded, nothing to snapshot.
        assert!(!snapshot_due(None, None, 10));
        // Revisions 0..=8 are nine events; the tenth makes it due.
        assert!(!snapshot_due(None, Some(8), 10));
        assert!(snapshot_due(None, Some(9), 10));
        // After a snapshot at 9, the next is due at 19, not before.
        assert!(!snapshot_due(Some(9), Some(18), 10));
        assert!(snapshot_due(Some(9), Some(19), 10));
        // One append of many events that jumps over the interval still snapshots.
        assert!(snapshot_due(Some(9), Some(57), 10));
        // A snapshot never runs ahead of the state (and would not be due if it did).
        assert!(!snapshot_due(Some(30), Some(20), 10));
        // An interval of 0 means every event, never "never".
        assert!(snapshot_due(Some(4), Some(5), 0));
        assert!(!snapshot_due(Some(5), Some(5), 0));
        // The default interval.
        assert!(!snapshot_due(
            None,
            Some(198),
            SNAPSHOT_EVERY_EVENTS_DEFAULT
        ));
        assert!(snapshot_due(None, Some(199), SNAPSHOT_EVERY_EVENTS_DEFAULT));
    }

    #[test]
    fn a_snapshot_round_trips_with_exact_floats() {
        let state = Tally {
            count: 7,
            mean: 0.1 + 0.2,
        };
        let record = stored(&state, 41, 1000);
        assert_eq!(record.event_type, SNAPSHOT_EVENT_TYPE);
        let restored = restore(&policy(), "tally-a", &record).expect("restore");
        assert_eq!(
            restored,
            Restored {
                state: state.clone(),
                revision: 41,
                position: 1000
            }
        );
        assert_eq!(restored.state.mean.to_bits(), state.mean.to_bits());
    }

    #[test]
    fn another_stream_format_or_state_is_rejected() {
        let record = stored(&Tally::default(), 1, 2);
        assert!(matches!(
            restore(&policy(), "tally-b", &record),
            Err(SnapshotRejected::OtherStream { .. })
        ));
        let newer: SnapshotPolicy<Tally> = SnapshotPolicy::json(4);
        assert_eq!(
            restore(&newer, "tally-a", &record),
            Err(SnapshotRejected::OtherFormat {
                expected: 4,
                found: 3
            })
        );
        // A state whose shape changed without a format bump fails to decode.
        let wrong = NewEvent::from_event(&Event::AggregateSnapshot(AggregateSnapshot {
            stream: "tally-a".into(),
            revision: 1,
            position: 2,
            format: 3,
            state_json: r#"{"count":"seven"}"#.into(),
        }))
        .expect("encode");
        assert!(matches!(
            restore(
                &policy(),
                "tally-a",
                &recorded(wrong, "snapshot-tally-a", 0, 3)
            ),
            Err(SnapshotRejected::BadState(_))
        ));
        // NaN encodes as null: the snapshot is refused, never read as a wrong number.
        let nan = stored(
            &Tally {
                count: 1,
                mean: f64::NAN,
            },
            1,
            2,
        );
        assert!(matches!(
            restore(&policy(), "tally-a", &nan),
            Err(SnapshotRejected::BadState(_))
        ));
    }

    #[test]
    fn garbage_and_foreign_records_are_rejected() {
        let mut garbage = stored(&Tally::default(), 1, 2);
        garbage.payload.truncate(5);
        assert!(matches!(
            restore(&policy(), "tally-a", &garbage),
            Err(SnapshotRejected::Undecodable(_))
        ));
        let mut future = stored(&Tally::default(), 1, 2);
        future.schema_version = 9;
        assert!(matches!(
            restore(&policy(), "tally-a", &future),
            Err(SnapshotRejected::Undecodable(_))
        ));
        let foreign = recorded(
            NewEvent::raw("tally.added", 1, b"{}".to_vec()),
            "snapshot-tally-a",
            0,
            1,
        );
        assert_eq!(
            restore(&policy(), "tally-a", &foreign),
            Err(SnapshotRejected::NotASnapshot("tally.added".into()))
        );
    }

    #[test]
    fn the_anchor_must_be_the_streams_event_at_that_revision() {
        let restored = Restored {
            state: Tally::default(),
            revision: 5,
            position: 50,
        };
        let event = |revision, position| {
            recorded(
                NewEvent::raw("tally.added", 1, Vec::new()),
                "tally-a",
                revision,
                position,
            )
        };
        assert_eq!(check_anchor(&restored, Some(&event(5, 50))), Ok(()));
        assert_eq!(
            check_anchor(&restored, None),
            Err(SnapshotRejected::BeyondStreamEnd { revision: 5 })
        );
        assert_eq!(
            check_anchor(&restored, Some(&event(6, 60))),
            Err(SnapshotRejected::BeyondStreamEnd { revision: 5 })
        );
        assert_eq!(
            check_anchor(&restored, Some(&event(5, 51))),
            Err(SnapshotRejected::PositionMismatch {
                revision: 5,
                snapshot: 50,
                stream: 51
            })
        );
    }
}
