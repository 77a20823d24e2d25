//! Pure translation between tutorlog's log model and KurrentDB's, with no I/O, so
//! every rule here is unit-tested without a server.
//!
//! - Expected revisions map one to one onto [`StreamState`].
//! - Event data is our [`RecordBody`] (bincode, via `tutorlog_schemas::codec`);
//!   event metadata is a small JSON object ([`EventMeta`]) that marks the event as
//!   ours and repeats the schema version and correlation/causation ids so KurrentDB's
//!   own tools can show them.
//! - Our dense `$all` position is the ordinal of an event among *our* events in
//!   KurrentDB's `$all` order ([`PositionIndex`]).
//! - Client errors map onto [`StoreError`].

use kurrentdb::{CurrentRevision, Position, StreamState};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{
    codec::{self, CodecError, RecordBody, RECORD_FORMAT},
    NewEvent, RecordedEvent,
};
use uuid::Uuid;

use crate::{ExpectedRevision, StoreError};

/// Written into [`RecordBody::position`] on this backend: the dense position is not
/// known when the event is written (see [`PositionIndex`]), so the body says so
/// rather than carry a guess.
pub const POSITION_UNASSIGNED: u64 = u64::MAX;

/// Maps our expectation onto the client's.
pub fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::Exists => StreamState::StreamExists,
        ExpectedRevision::Exact(revision) => StreamState::StreamRevision(revision),
    }
}

/// Maps the server's view of a stream's head back to ours.
pub fn current_revision(current: CurrentRevision) -> Option<u64> {
    match current {
        CurrentRevision::Current(revision) => Some(revision),
        CurrentRevision::NoStream => None,
    }
}

/// The exact expectation the backend sends once it has read the stream's head:
/// appending with the precise head (rather than the caller's `Any`/`Exists`) is
/// what lets the record carry the right revision and per-stream chain hash.
pub fn precise_state(head: Option<u64>) -> StreamState {
    head.map_or(StreamState::NoStream, StreamState::StreamRevision)
}

/// Maps a client error to a store error. `stream` and `expected` describe the
/// append that failed, for conflicts.
pub fn store_error(
    error: kurrentdb::Error,
    stream: &str,
    expected: ExpectedRevision,
) -> StoreError {
    use kurrentdb::Error as E;
    match error {
        E::WrongExpectedVersion { current, .. } => StoreError::WrongExpectedRevision {
            stream: stream.to_owned(),
            expected,
            actual: current_revision(current),
        },
        // Too large an append, a bad name: the request, not the server, is at fault.
        E::Grpc {
            code: tonic::Code::InvalidArgument | tonic::Code::OutOfRange,
            message,
        } =>
        {
            StoreError::InvalidInput(format!("KurrentDB refused the request: {message}"))
        }
        E::ResourceDeleted => StoreError::Unavailable(format!(
            "stream {stream:?} is deleted (tombstoned) in KurrentDB; tutorlog never deletes streams, so someone else did"
        )),
        E::AccessDenied => StoreError::Unavailable(
            "KurrentDB denied access: check the user and password in store.kurrentdb_url".into(),
        ),
        E::NotLeaderException(leader) => StoreError::Unavailable(format!(
            "the KurrentDB node is not the leader (leader is {}:{}); the client reconnects, retry",
            leader.host, leader.port
        )),
        E::DeadlineExceeded => StoreError::Unavailable("KurrentDB request timed out".into()),
        other => StoreError::Unavailable(format!("KurrentDB: {other}")),
    }
}

/// Event metadata, stored as JSON in KurrentDB's custom metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Marks the event as written by tutorlog: the [`RECORD_FORMAT`] of the data.
    /// Events without it (other applications sharing the database) are not ours and
    /// are skipped by `$all` reads and subscriptions.
    pub tutorlog: u8,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// Causation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
}

impl EventMeta {
    /// The metadata for `event`.
    pub fn of(event: &NewEvent) -> Self {
        EventMeta {
            tutorlog: RECORD_FORMAT,
            schema_version: event.schema_version,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
        }
    }

    /// JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self)
            .map_err(|e| StoreError::Codec(CodecError::Encode(format!("event metadata: {e}"))))
    }

    /// Parses metadata; `None` when the event is not one of ours (no metadata, not
    /// JSON, or no `tutorlog` marker).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Builds the record body written as the event's data. `prev_hash` is the BLAKE3
/// of the previous record's data *in the same stream* (zeros for revision 0):
/// with many writers no client knows the previous record of `$all`.
pub fn record_body(
    stream: &str,
    revision: u64,
    event: &NewEvent,
    prev_hash: [u8; 32],
    written_at_micros: i64,
) -> RecordBody {
    RecordBody {
        format: RECORD_FORMAT,
        prev_hash,
        position: POSITION_UNASSIGNED,
        revision,
        recorded_at_micros: written_at_micros,
        event_id: *event.event_id.as_bytes(),
        correlation_id: event.correlation_id.map(|id| *id.as_bytes()),
        causation_id: event.causation_id.map(|id| *id.as_bytes()),
        schema_version: event.schema_version,
        stream: stream.to_owned(),
        event_type: event.event_type.clone(),
        payload: event.payload.clone(),
    }
}

/// Hash of one record's data, the link of the per-stream chain.
pub fn chain_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// What KurrentDB says about a stored event, independent of the client's types so
/// that decoding is testable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCoordinates<'a> {
    /// KurrentDB stream name.
    pub stream: &'a str,
    /// KurrentDB stream revision.
    pub revision: u64,
    /// KurrentDB event id.
    pub event_id: Uuid,
    /// KurrentDB event type.
    pub event_type: &'a str,
}

fn mismatch(coordinates: &StoredCoordinates<'_>, what: &str) -> StoreError {
    StoreError::Codec(CodecError::Decode(format!(
        "KurrentDB event {} ({:?} revision {}): {what}",
        coordinates.event_id, coordinates.stream, coordinates.revision
    )))
}

/// Decodes event data into our event at `position` and time `recorded_at_micros`,
/// checking that the body agrees with where KurrentDB stored it (a record copied
/// or moved between streams by another tool is refused, not misread).
pub fn decode_event(
    coordinates: &StoredCoordinates<'_>,
    data: &[u8],
    position: u64,
    recorded_at_micros: i64,
) -> Result<(RecordedEvent, RecordBody), StoreError> {
    let body = codec::decode_record(data).map_err(|e| mismatch(coordinates, &e.to_string()))?;
    if body.stream != coordinates.stream {
        return Err(mismatch(
            coordinates,
            &format!("record says stream {:?}", body.stream),
        ));
    }
    if body.revision != coordinates.revision {
        return Err(mismatch(
            coordinates,
            &format!("record says revision {}", body.revision),
        ));
    }
    if body.event_id != *coordinates.event_id.as_bytes() {
        return Err(mismatch(coordinates, "record carries another event id"));
    }
    if body.event_type != coordinates.event_type {
        return Err(mismatch(
            coordinates,
            &format!("record says event type {:?}", body.event_type),
        ));
    }
    let mut recorded = body.clone().into_recorded()?;
    recorded.position = position;
    recorded.recorded_at = codec::micros_to_time(recorded_at_micros)?;
    Ok((recorded, body))
}

/// One of our events in `$all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    commit: u64,
    prepare: u64,
    /// Server time, clamped so that it never decreases along `$all`.
    micros: i64,
}

/// Why an event could not be added to the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KurrentDB $all position {got} is not after {last}: $all went backwards")]
pub struct OutOfOrder {
    /// The position offered.
    pub got: String,
    /// The last indexed position.
    pub last: String,
}

/// The dense position mapping: entry `n` is the KurrentDB `$all` position
/// (commit, prepare) of our `n`-th event, in `$all` order.
///
/// KurrentDB's positions are byte offsets in its transaction file (sparse, and
/// shared with system and foreign events). Every node scans `$all` in the same
/// order and counts the same events, so every node assigns the same dense
/// position to each event without any extra write or coordination. 24 bytes of
/// memory per event.
#[derive(Debug, Default, Clone)]
pub struct PositionIndex {
    entries: Vec<IndexEntry>,
}

impl PositionIndex {
    /// Appends the next event of `$all`; returns its dense position. `created_micros`
    /// is the server's timestamp; the stored time is clamped to never go back.
    pub fn push(&mut self, at: Position, created_micros: i64) -> Result<u64, OutOfOrder> {
        let micros = match self.entries.last() {
            Some(last) => {
                if (at.commit, at.prepare) <= (last.commit, last.prepare) {
                    return Err(OutOfOrder {
                        got: at.to_string(),
                        last: Position {
                            commit: last.commit,
                            prepare: last.prepare,
                        }
                        .to_string(),
                    });
                }
                created_micros.max(last.micros)
            }
            None => created_micros,
        };
        self.entries.push(IndexEntry {
            commit: at.commit,
            prepare: at.prepare,
            micros,
        });
        Ok(self.entries.len() as u64 - 1)
    }

    /// Number of indexed events (the next dense position).
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether no event is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last dense position, if any.
    pub fn last_position(&self) -> Option<u64> {
        self.len().checked_sub(1)
    }

    /// The KurrentDB position of the last indexed event.
    pub fn last(&self) -> Option<Position> {
        self.entries.last().map(|e| Position {
            commit: e.commit,
            prepare: e.prepare,
        })
    }

    /// KurrentDB position and clamped time of dense position `position`.
    pub fn get(&self, position: u64) -> Option<(Position, i64)> {
        let entry = self.entries.get(usize::try_from(position).ok()?)?;
        Some((
            Position {
                commit: entry.commit,
                prepare: entry.prepare,
            },
            entry.micros,
        ))
    }

    /// Dense position and clamped time of the event at KurrentDB position `at`.
    pub fn lookup(&self, at: Position) -> Option<(u64, i64)> {
        let key = (at.commit, at.prepare);
        let n = self
            .entries
            .binary_search_by(|e| (e.commit, e.prepare).cmp(&key))
            .ok()?;
        Some((n as u64, self.entries[n].micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(commit: u64, prepare: u64) -> Position {
        Position { commit, prepare }
    }

    #[test]
    fn expected_revisions_map_one_to_one() {
        assert_eq!(stream_state(ExpectedRevision::Any), StreamState::Any);
        assert_eq!(
            stream_state(ExpectedRevision::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            stream_state(ExpectedRevision::Exists),
            StreamState::StreamExists
        );
        assert_eq!(
            stream_state(ExpectedRevision::Exact(7)),
            StreamState::StreamRevision(7)
        );
        assert_eq!(current_revision(CurrentRevision::Current(3)), Some(3));
        assert_eq!(current_revision(CurrentRevision::NoStream), None);
        assert_eq!(precise_state(None), StreamState::NoStream);
        assert_eq!(precise_state(Some(0)), StreamState::StreamRevision(0));
    }

    #[test]
    fn conflicts_map_to_wrong_expected_revision() {
        let error = store_error(
            kurrentdb::Error::WrongExpectedVersion {
                expected: StreamState::StreamRevision(1),
                current: CurrentRevision::Current(4),
            },
            "learner-ada",
            ExpectedRevision::Exact(1),
        );
        match error {
            StoreError::WrongExpectedRevision {
                stream,
                expected,
                actual,
            } => {
                assert_eq!(stream, "learner-ada");
                assert_eq!(expected, ExpectedRevision::Exact(1));
                assert_eq!(actual, Some(4));
            }
            other => panic!("got {other:?}"),
        }
        let error = store_error(
            kurrentdb::Error::WrongExpectedVersion {
                expected: StreamState::StreamExists,
                current: CurrentRevision::NoStream,
            },
            "s",
            ExpectedRevision::Exists,
        );
        assert!(matches!(
            error,
            StoreError::WrongExpectedRevision { actual: None, .. }
        ));
        assert!(error.is_client_error());
    }

    #[test]
    fn other_errors_map_to_unavailable_or_invalid_input() {
        let any = ExpectedRevision::Any;
        for error in [
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::AccessDenied,
            kurrentdb::Error::ResourceDeleted,
            kurrentdb::Error::ServerError("boom".into()),
            kurrentdb::Error::GrpcConnectionError(
                kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(10),
            ),
            kurrentdb::Error::NotLeaderException(kurrentdb::Endpoint {
                host: "node2".into(),
                port: 2113,
            }),
            kurrentdb::Error::Grpc {
                code: tonic::Code::Unavailable,
                message: "down".into(),
            },
        ] {
            let mapped = store_error(error, "s", any);
            assert!(
                matches!(mapped, StoreError::Unavailable(_)),
                "{mapped:?} should be Unavailable"
            );
            assert!(!mapped.is_client_error());
        }
        let mapped = store_error(
            kurrentdb::Error::Grpc {
                code: tonic::Code::InvalidArgument,
                message: "maximum append size exceeded".into(),
            },
            "s",
            any,
        );
        assert!(matches!(mapped, StoreError::InvalidInput(_)));
    }

    #[test]
    fn metadata_round_trips_and_marks_our_events() {
        let event = NewEvent::raw("training.started", 3, vec![1, 2])
            .with_correlation(Uuid::from_u128(1))
            .with_causation(Uuid::from_u128(2));
        let meta = EventMeta::of(&event);
        let bytes = meta.encode().expect("encode");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["tutorlog"], 1);
        assert_eq!(json["schema_version"], 3);
        assert_eq!(
            json["correlation_id"],
            "00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(EventMeta::decode(&bytes), Some(meta));

        let bare = EventMeta::of(&NewEvent::raw("x", 1, vec![]));
        let bytes = bare.encode().expect("encode");
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf8"),
            r#"{"tutorlog":1,"schema_version":1}"#
        );
        assert_eq!(EventMeta::decode(&bytes), Some(bare));

        // Foreign events: no metadata, other JSON, not JSON.
        assert_eq!(EventMeta::decode(b""), None);
        assert_eq!(EventMeta::decode(br#"{"$correlationId":"x"}"#), None);
        assert_eq!(EventMeta::decode(b"\x00\x01"), None);
    }

    fn stored(body: &RecordBody) -> StoredCoordinates<'_> {
        StoredCoordinates {
            stream: &body.stream,
            revision: body.revision,
            event_id: Uuid::from_bytes(body.event_id),
            event_type: &body.event_type,
        }
    }

    #[test]
    fn record_data_round_trips_with_position_and_time_from_the_index() {
        let event = NewEvent::raw("mastery.improved", 2, b"payload".to_vec())
            .with_correlation(Uuid::from_u128(9));
        let body = record_body("learner-ada", 4, &event, [5; 32], 1_700_000_000_000_000);
        assert_eq!(body.position, POSITION_UNASSIGNED);
        let data = codec::encode_record(&body).expect("encode");
        let coordinates = stored(&body);
        let (recorded, decoded) =
            decode_event(&coordinates, &data, 41, 1_700_000_000_000_123).expect("decode");
        assert_eq!(decoded, body);
        assert_eq!(recorded.position, 41);
        assert_eq!(recorded.revision, 4);
        assert_eq!(recorded.stream, "learner-ada");
        assert_eq!(recorded.event_id, event.event_id);
        assert_eq!(recorded.event_type, "mastery.improved");
        assert_eq!(recorded.schema_version, 2);
        assert_eq!(recorded.correlation_id, Some(Uuid::from_u128(9)));
        assert_eq!(recorded.causation_id, None);
        assert_eq!(recorded.payload, b"payload");
        assert_eq!(
            recorded.recorded_at.timestamp_micros(),
            1_700_000_000_000_123
        );
    }

    #[test]
    fn records_that_disagree_with_kurrentdb_are_refused() {
        let event = NewEvent::raw("t", 1, vec![1]);
        let body = record_body("s", 2, &event, [0; 32], 0);
        let data = codec::encode_record(&body).expect("encode");
        let good = stored(&body);
        let other_id = Uuid::from_u128(77);
        for bad in [
            StoredCoordinates {
                stream: "other",
                ..good.clone()
            },
            StoredCoordinates {
                revision: 3,
                ..good.clone()
            },
            StoredCoordinates {
                event_id: other_id,
                ..good.clone()
            },
            StoredCoordinates {
                event_type: "u",
                ..good.clone()
            },
        ] {
            assert!(matches!(
                decode_event(&bad, &data, 0, 0),
                Err(StoreError::Codec(_))
            ));
        }
        assert!(matches!(
            decode_event(&good, b"{\"json\":1}", 0, 0),
            Err(StoreError::Codec(_))
        ));
    }

    #[test]
    fn chain_hash_is_blake3_of_the_data() {
        assert_eq!(chain_hash(b"abc"), *blake3::hash(b"abc").as_bytes());
        assert_ne!(chain_hash(b"abc"), chain_hash(b"abd"));
    }

    #[test]
    fn positions_are_dense_ordinals_in_all_order() {
        let mut index = PositionIndex::default();
        assert!(index.is_empty());
        assert_eq!(index.last_position(), None);
        // Sparse commit/prepare positions; a two-event batch shares a commit position.
        assert_eq!(index.push(pos(100, 100), 10), Ok(0));
        assert_eq!(index.push(pos(250, 200), 20), Ok(1));
        assert_eq!(index.push(pos(250, 230), 20), Ok(2));
        assert_eq!(index.push(pos(9_000, 9_000), 30), Ok(3));
        assert_eq!(index.len(), 4);
        assert_eq!(index.last_position(), Some(3));
        assert_eq!(index.last(), Some(pos(9_000, 9_000)));
        assert_eq!(index.lookup(pos(250, 230)), Some((2, 20)));
        assert_eq!(index.lookup(pos(100, 100)), Some((0, 10)));
        // A position that is not one of ours (a system or foreign event).
        assert_eq!(index.lookup(pos(250, 210)), None);
        assert_eq!(index.lookup(pos(1, 1)), None);
        assert_eq!(index.get(3), Some((pos(9_000, 9_000), 30)));
        assert_eq!(index.get(4), None);
        assert_eq!(index.get(u64::MAX), None);
    }

    #[test]
    fn positions_never_go_back_and_time_is_clamped() {
        let mut index = PositionIndex::default();
        index.push(pos(100, 100), 50).expect("first");
        assert!(index.push(pos(100, 100), 60).is_err(), "duplicate");
        assert!(index.push(pos(90, 90), 60).is_err(), "backwards");
        // Server clock stepped back: time is held at the previous value.
        assert_eq!(index.push(pos(200, 200), 40), Ok(1));
        assert_eq!(index.get(1), Some((pos(200, 200), 50)));
        assert_eq!(index.push(pos(300, 300), 70), Ok(2));
        assert_eq!(index.get(2), Some((pos(300, 300), 70)));
    }
}
