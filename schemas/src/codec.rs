//! The only place that knows the byte format: bincode 2.0.1 (serde mode) with
//! fixed-width little-endian integers and a size limit.
//!
//! Two things are encoded here: event payloads (one struct per event type and
//! schema version) and log record bodies ([`RecordBody`]), which the store frames with
//! a length and a CRC32C.
//!
//! Record bodies are read and written by hand ([`encode_record_into`],
//! [`decode_record`]) in exactly the bytes bincode's serde mode produced for the
//! derived [`RecordBody`] (the layout is spelled out on [`RecordBody`]); a proptest
//! checks the two byte for byte. bincode's serde path decoded `payload` and the
//! fixed-size arrays one byte at a time, which was most of the read path's CPU.
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
///
/// Byte layout (little endian, fields in declaration order, no padding; the bytes
/// bincode 2 in serde mode with fixed-width integers gives the derived impls):
/// `format` u8, `prev_hash` 32 bytes, `position` u64, `revision` u64,
/// `recorded_at_micros` i64, `event_id` 16 bytes, `correlation_id` and
/// `causation_id` each a tag byte (0 = none, 1 = some) followed by 16 bytes when
/// some, `schema_version` u16, then `stream`, `event_type` (UTF-8) and `payload`,
/// each as a u64 length followed by that many bytes.
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

/// A record body that borrows its variable-length fields, for encoding without
/// copying them into a [`RecordBody`] first (the log writer encodes straight from
/// the caller's events into its batch buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBodyRef<'a> {
    /// See [`RecordBody::format`].
    pub format: u8,
    /// See [`RecordBody::prev_hash`].
    pub prev_hash: [u8; 32],
    /// See [`RecordBody::position`].
    pub position: u64,
    /// See [`RecordBody::revision`].
    pub revision: u64,
    /// See [`RecordBody::recorded_at_micros`].
    pub recorded_at_micros: i64,
    /// See [`RecordBody::event_id`].
    pub event_id: [u8; 16],
    /// See [`RecordBody::correlation_id`].
    pub correlation_id: Option<[u8; 16]>,
    /// See [`RecordBody::causation_id`].
    pub causation_id: Option<[u8; 16]>,
    /// See [`RecordBody::schema_version`].
    pub schema_version: u16,
    /// See [`RecordBody::stream`].
    pub stream: &'a str,
    /// See [`RecordBody::event_type`].
    pub event_type: &'a str,
    /// See [`RecordBody::payload`].
    pub payload: &'a [u8],
}

/// Bytes of the fixed-size fields of a record body with both optional ids absent:
/// format, hash, position, revision, time, event id, two option tags, schema
/// version and the three u64 length prefixes.
const RECORD_FIXED_BYTES: usize = 1 + 32 + 8 + 8 + 8 + 16 + 1 + 1 + 2 + 3 * 8;

impl RecordBody {
    /// A borrowed view of this body, for [`encode_record_into`].
    pub fn as_body_ref(&self) -> RecordBodyRef<'_> {
        RecordBodyRef {
            format: self.format,
            prev_hash: self.prev_hash,
            position: self.position,
            revision: self.revision,
            recorded_at_micros: self.recorded_at_micros,
            event_id: self.event_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            schema_version: self.schema_version,
            stream: &self.stream,
            event_type: &self.event_type,
            payload: &self.payload,
        }
    }
}

impl RecordBodyRef<'_> {
    /// Exact length of this body's encoding, computed without encoding it.
    pub fn encoded_len(&self) -> usize {
        RECORD_FIXED_BYTES
            + if self.correlation_id.is_some() { 16 } else { 0 }
            + if self.causation_id.is_some() { 16 } else { 0 }
            + self.stream.len()
            + self.event_type.len()
            + self.payload.len()
    }
}

/// Appends the encoding of `body` to `out` and returns its length
/// ([`RecordBodyRef::encoded_len`]). Like the bincode encoder it replaces, it does
/// not enforce [`RECORD_BODY_BYTES_MAX`]: callers that frame bodies check the
/// length themselves (the decoder refuses larger bodies).
pub fn encode_record_into(body: &RecordBodyRef<'_>, out: &mut Vec<u8>) -> usize {
    fn option16(out: &mut Vec<u8>, id: &Option<[u8; 16]>) {
        match id {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                out.extend_from_slice(id);
            }
        }
    }
    fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let len = body.encoded_len();
    out.reserve(len);
    let start = out.len();
    out.push(body.format);
    out.extend_from_slice(&body.prev_hash);
    out.extend_from_slice(&body.position.to_le_bytes());
    out.extend_from_slice(&body.revision.to_le_bytes());
    out.extend_from_slice(&body.recorded_at_micros.to_le_bytes());
    out.extend_from_slice(&body.event_id);
    option16(out, &body.correlation_id);
    option16(out, &body.causation_id);
    out.extend_from_slice(&body.schema_version.to_le_bytes());
    bytes(out, body.stream.as_bytes());
    bytes(out, body.event_type.as_bytes());
    bytes(out, body.payload);
    debug_assert_eq!(out.len() - start, len);
    len
}

/// Encodes a record body.
pub fn encode_record(body: &RecordBody) -> Result<Vec<u8>, CodecError> {
    let body = body.as_body_ref();
    let mut out = Vec::with_capacity(body.encoded_len());
    encode_record_into(&body, &mut out);
    Ok(out)
}

/// Decodes a record body and checks its format byte.
///
/// Refuses, without panicking and without allocating more than the input's size:
/// an unknown format, a body cut short anywhere, an option tag other than 0 or 1,
/// a length prefix beyond the bytes present, invalid UTF-8 in `stream` or
/// `event_type`, a body larger than [`RECORD_BODY_BYTES_MAX`], and trailing bytes.
pub fn decode_record(bytes: &[u8]) -> Result<RecordBody, CodecError> {
    let body = decode_record_ref(bytes)?;
    Ok(RecordBody {
        format: body.format,
        prev_hash: body.prev_hash,
        position: body.position,
        revision: body.revision,
        recorded_at_micros: body.recorded_at_micros,
        event_id: body.event_id,
        correlation_id: body.correlation_id,
        causation_id: body.causation_id,
        schema_version: body.schema_version,
        stream: body.stream.to_owned(),
        event_type: body.event_type.to_owned(),
        payload: body.payload.to_vec(),
    })
}

/// [`decode_record`] without copying: the strings and the payload borrow from
/// `bytes` (the log's recovery scan needs only the stream name and coordinates).
/// The same checks, errors included.
pub fn decode_record_ref(bytes: &[u8]) -> Result<RecordBodyRef<'_>, CodecError> {
    // The format byte is the first field; check it before trusting the rest.
    match bytes.first() {
        Some(&RECORD_FORMAT) => {}
        Some(&other) => return Err(CodecError::UnknownRecordFormat(other)),
        None => return Err(CodecError::Decode("empty record body".into())),
    }
    let mut reader = Reader { rest: bytes };
    let body = RecordBodyRef {
        format: reader.array::<1>()?[0],
        prev_hash: reader.array()?,
        position: u64::from_le_bytes(reader.array()?),
        revision: u64::from_le_bytes(reader.array()?),
        recorded_at_micros: i64::from_le_bytes(reader.array()?),
        event_id: reader.array()?,
        correlation_id: reader.option16()?,
        causation_id: reader.option16()?,
        schema_version: u16::from_le_bytes(reader.array()?),
        stream: reader.str()?,
        event_type: reader.str()?,
        payload: reader.byte_slice()?,
    };
    let read = bytes.len() - reader.rest.len();
    if read > RECORD_BODY_BYTES_MAX {
        return Err(CodecError::Decode(format!(
            "record body of {read} bytes exceeds the limit of {RECORD_BODY_BYTES_MAX}"
        )));
    }
    if !reader.rest.is_empty() {
        return Err(CodecError::TrailingBytes(reader.rest.len()));
    }
    Ok(body)
}

#[cold]
#[inline(never)]
fn cut_short(needed: usize, left: usize) -> CodecError {
    CodecError::Decode(format!(
        "record body cut short: {needed} bytes needed, {left} left"
    ))
}

#[cold]
#[inline(never)]
fn length_too_long(len: u64, left: usize) -> CodecError {
    CodecError::Decode(format!("length {len} exceeds the {left} bytes left"))
}

/// A cursor over a record body being decoded.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let Some((head, tail)) = self.rest.split_at_checked(n) else {
            return Err(cut_short(n, self.rest.len()));
        };
        self.rest = tail;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn option16(&mut self) -> Result<Option<[u8; 16]>, CodecError> {
        match self.array::<1>()?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.array()?)),
            tag => Err(CodecError::Decode(format!("invalid option tag {tag}"))),
        }
    }

    /// A u64 length prefix and that many bytes; the length is checked against the
    /// bytes present before anything is allocated.
    #[inline]
    fn byte_slice(&mut self) -> Result<&'a [u8], CodecError> {
        let len = u64::from_le_bytes(self.array()?);
        match usize::try_from(len) {
            Ok(len) if len <= self.rest.len() => self.take(len),
            _ => Err(length_too_long(len, self.rest.len())),
        }
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let bytes = self.byte_slice()?;
        std::str::from_utf8(bytes).map_err(|e| CodecError::Decode(format!("invalid UTF-8: {e}")))
    }
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
    use proptest::prelude::*;

    /// The serde/bincode path the hand-written codec replaced (the derived impls of
    /// [`RecordBody`] are the reference layout).
    fn encode_record_bincode(body: &RecordBody) -> Vec<u8> {
        encode(body).expect("bincode encode")
    }

    fn decode_record_bincode(bytes: &[u8]) -> Result<RecordBody, CodecError> {
        decode(bytes)
    }

    fn arb_body() -> impl Strategy<Value = RecordBody> {
        (
            (
                any::<u8>(),
                any::<[u8; 32]>(),
                any::<u64>(),
                any::<u64>(),
                any::<i64>(),
                any::<[u8; 16]>(),
            ),
            (
                any::<Option<[u8; 16]>>(),
                any::<Option<[u8; 16]>>(),
                any::<u16>(),
                ".{0,40}",
                "\\PC{0,24}",
                proptest::collection::vec(any::<u8>(), 0..600),
            ),
        )
            .prop_map(
                |(
                    (format, prev_hash, position, revision, recorded_at_micros, event_id),
                    (correlation_id, causation_id, schema_version, stream, event_type, payload),
                )| RecordBody {
                    format,
                    prev_hash,
                    position,
                    revision,
                    recorded_at_micros,
                    event_id,
                    correlation_id,
                    causation_id,
                    schema_version,
                    stream,
                    event_type,
                    payload,
                },
            )
    }

    proptest! {
        #[test]
        fn hand_written_codec_matches_bincode(body in arb_body()) {
            let bytes = encode_record(&body).expect("encode");
            prop_assert_eq!(&bytes, &encode_record_bincode(&body));
            prop_assert_eq!(bytes.len(), body.as_body_ref().encoded_len());
            let mut appended = vec![9u8; 3];
            prop_assert_eq!(encode_record_into(&body.as_body_ref(), &mut appended), bytes.len());
            prop_assert_eq!(&appended[3..], &bytes[..]);
            let mut current = body.clone();
            current.format = RECORD_FORMAT;
            let bytes = encode_record(&current).expect("encode");
            prop_assert_eq!(decode_record(&bytes).expect("decode"), current.clone());
            prop_assert_eq!(decode_record_ref(&bytes).expect("decode ref"), current.as_body_ref());
            prop_assert_eq!(decode_record_bincode(&bytes).expect("bincode decode"), current);
        }

        #[test]
        fn hand_written_decoder_agrees_with_bincode_on_mutations(
            body in arb_body(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut body = body;
            body.format = RECORD_FORMAT;
            let mut bytes = encode_record(&body).expect("encode");
            for (at, value) in flips {
                let at = at.index(bytes.len());
                if at > 0 {
                    bytes[at] = value;
                }
            }
            let cut = cut.index(bytes.len() + 1);
            let bytes = &bytes[..cut];
            let ours = decode_record(bytes);
            let reference = if bytes.first() == Some(&RECORD_FORMAT) {
                decode_record_bincode(bytes)
            } else {
                Err(CodecError::Decode("format".into()))
            };
            match (ours, reference) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "hand-written {:?} vs bincode {:?}", a, b),
            }
        }
    }

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
