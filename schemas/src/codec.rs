//! The only place that knows the byte format: bincode 2.0.1 (serde mode) with
//! fixed-width little-endian integers and a size limit.
//!
//! Two things are encoded here: event payloads (one struct per event type and
//! schema version) and log record bodies ([`RecordBody`]), which the store frames with
//! a length and a CRC32C.
//!
//! bincode's serde mode cannot `deserialize_any`: payload types must not use
//! `#[serde(flatten)]`, untagged enums or `serde_json::Value` (free-form JSON is
//! carried as a canonical JSON `String`).

use chrono::{DateTime, TimeZone, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::RecordedEvent;

/// Largest encoded record body accepted by the decoder, in bytes. The store frames
/// bodies with a u32 length and refuses anything larger before writing.
pub const RECORD_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Version of the [`RecordBody`] layout; bumped only with a reader for the old one.
pub const RECORD_FORMAT: u8 = 1;

const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<RECORD_BODY_BYTES_MAX>,
> = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<RECORD_BODY_BYTES_MAX>();

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (too large, or a serde error).
    #[error("encode failed: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode failed: {0}")]
    Decode(String),
    /// The bytes decoded but left unread bytes behind: a sign of the wrong type.
    #[error("decode left {0} trailing bytes")]
    TrailingBytes(usize),
    /// The event type is not in this build's catalogue.
    #[error("unknown event type {event_type:?} (schema version {schema_version})")]
    UnknownEventType {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u16,
    },
    /// The event type is known but this schema version is newer than this build.
    #[error("event type {event_type:?} has schema version {schema_version}, this build reads up to {max_known}")]
    UnknownSchemaVersion {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u16,
        /// The newest version this build knows.
        max_known: u16,
    },
    /// An older schema version for which this build has no upcaster.
    #[error("event type {event_type:?} schema version {schema_version} has no upcaster")]
    NoUpcaster {
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u16,
    },
    /// A record body written in a layout this build does not read.
    #[error("unknown record format {0}")]
    UnknownRecordFormat(u8),
    /// A timestamp outside chrono's range.
    #[error("timestamp out of range: {0} µs")]
    Timestamp(i64),
}

/// Encodes one value with the log's bincode configuration.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes one value, rejecting trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, CONFIG)
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

/// The body of one log record, as framed by the store: the event with its log
/// coordinates and the BLAKE3 hash of the previous record's body, which makes the
/// whole log a hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBody {
    /// [`RECORD_FORMAT`] at the time of writing.
    pub format: u8,
    /// BLAKE3 of the previous record's body; all zeros for position 0.
    pub prev_hash: [u8; 32],
    /// Global position in `$all`, dense from 0.
    pub position: u64,
    /// Stream revision, dense from 0 within the stream.
    pub revision: u64,
    /// Microseconds since the Unix epoch, stamped by the log writer.
    pub recorded_at_micros: i64,
    /// UUID v7 bytes.
    pub event_id: [u8; 16],
    /// Correlation id bytes, if any.
    pub correlation_id: Option<[u8; 16]>,
    /// Causation id bytes, if any.
    pub causation_id: Option<[u8; 16]>,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// Stream name.
    pub stream: String,
    /// Dotted event type name.
    pub event_type: String,
    /// The encoded payload (see [`crate::events`]).
    pub payload: Vec<u8>,
}

impl RecordBody {
    /// Builds a body for `event` chained to `prev_hash`.
    pub fn from_recorded(event: &RecordedEvent, prev_hash: [u8; 32]) -> Self {
        RecordBody {
            format: RECORD_FORMAT,
            prev_hash,
            position: event.position,
            revision: event.revision,
            recorded_at_micros: event.recorded_at.timestamp_micros(),
            event_id: *event.event_id.as_bytes(),
            correlation_id: event.correlation_id.map(|id| *id.as_bytes()),
            causation_id: event.causation_id.map(|id| *id.as_bytes()),
            schema_version: event.schema_version,
            stream: event.stream.clone(),
            event_type: event.event_type.clone(),
            payload: event.payload.clone(),
        }
    }

    /// Turns the body back into the event it carries.
    pub fn into_recorded(self) -> Result<RecordedEvent, CodecError> {
        Ok(RecordedEvent {
            position: self.position,
            stream: self.stream,
            revision: self.revision,
            event_id: Uuid::from_bytes(self.event_id),
            recorded_at: micros_to_time(self.recorded_at_micros)?,
            event_type: self.event_type,
            schema_version: self.schema_version,
            correlation_id: self.correlation_id.map(Uuid::from_bytes),
            causation_id: self.causation_id.map(Uuid::from_bytes),
            payload: self.payload,
        })
    }
}

/// Encodes a record body.
pub fn encode_record(body: &RecordBody) -> Result<Vec<u8>, CodecError> {
    encode(body)
}

/// Decodes a record body and checks its format byte.
pub fn decode_record(bytes: &[u8]) -> Result<RecordBody, CodecError> {
    // The format byte is the first field; check it before trusting the rest.
    match bytes.first() {
        Some(&RECORD_FORMAT) => {}
        Some(&other) => return Err(CodecError::UnknownRecordFormat(other)),
        None => return Err(CodecError::Decode("empty record body".into())),
    }
    decode(bytes)
}

/// Converts microseconds since the epoch to a UTC time.
pub fn micros_to_time(micros: i64) -> Result<DateTime<Utc>, CodecError> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or(CodecError::Timestamp(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBody {
        RecordBody {
            format: RECORD_FORMAT,
            prev_hash: [7; 32],
            position: 42,
            revision: 3,
            recorded_at_micros: 1_700_000_000_000_000,
            event_id: [1; 16],
            correlation_id: Some([2; 16]),
            causation_id: None,
            schema_version: 2,
            stream: "learner-ada".into(),
            event_type: "training.started".into(),
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn record_round_trips() {
        let bytes = encode_record(&sample()).expect("encode");
        assert_eq!(decode_record(&bytes).expect("decode"), sample());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode_record(&sample()).expect("encode");
        bytes.push(0);
        assert!(matches!(
            decode_record(&bytes),
            Err(CodecError::TrailingBytes(1))
        ));
    }

    #[test]
    fn unknown_format_is_rejected() {
        let mut bytes = encode_record(&sample()).expect("encode");
        bytes[0] = 9;
        assert!(matches!(
            decode_record(&bytes),
            Err(CodecError::UnknownRecordFormat(9))
        ));
    }

    #[test]
    fn truncated_bodies_fail_cleanly() {
        let bytes = encode_record(&sample()).expect("encode");
        for cut in 0..bytes.len() {
            assert!(
                decode_record(&bytes[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A string length claiming 2^63 bytes must fail on the limit, not abort.
        let mut bytes = encode_record(&sample()).expect("encode");
        let stream_len_offset = 1 + 32 + 8 + 8 + 8 + 16 + 17 + 1 + 2;
        bytes[stream_len_offset..stream_len_offset + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_record(&bytes).is_err());
    }
}
