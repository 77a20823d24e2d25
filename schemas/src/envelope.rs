//! The envelope: an event with its place in the log.
//!
//! [`RecordedEvent`] is what the store reads and writes (payload still encoded);
//! [`Envelope`] is the same record with its payload decoded into today's [`Event`];
//! [`NewEvent`] is what a writer hands to `append` (the store assigns the rest).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{codec::CodecError, events::Event};

/// An event as stored: log coordinates plus the encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position in `$all`, dense from 0.
    pub position: u64,
    /// Stream name, e.g. `learner-ada`.
    pub stream: String,
    /// Revision within the stream, dense from 0.
    pub revision: u64,
    /// UUID v7, chosen by the writer so retries can be recognised.
    pub event_id: Uuid,
    /// When the log writer accepted the event; never decreases along `$all`.
    pub recorded_at: DateTime<Utc>,
    /// Dotted event type, e.g. `training.started`.
    pub event_type: String,
    /// Schema version the payload was written with.
    pub schema_version: u16,
    /// The request or command chain this event belongs to.
    pub correlation_id: Option<Uuid>,
    /// The event or command that directly caused this one.
    pub causation_id: Option<Uuid>,
    /// The payload, encoded by [`crate::codec`].
    pub payload: Vec<u8>,
}

/// An event with its payload decoded (and upcast) into today's catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Global position in `$all`.
    pub position: u64,
    /// Stream name.
    pub stream: String,
    /// Revision within the stream.
    pub revision: u64,
    /// UUID v7 of the event.
    pub event_id: Uuid,
    /// When the log writer accepted the event.
    pub recorded_at: DateTime<Utc>,
    /// Dotted event type.
    pub event_type: String,
    /// Schema version as stored (the payload is already upcast to the current one).
    pub schema_version: u16,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Causation id.
    pub causation_id: Option<Uuid>,
    /// The decoded, upcast payload.
    pub payload: Event,
}

impl Envelope {
    /// Decodes a stored record, upcasting older schema versions.
    pub fn decode(recorded: &RecordedEvent) -> Result<Self, CodecError> {
        let payload = Event::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.payload,
        )?;
        Ok(Envelope {
            position: recorded.position,
            stream: recorded.stream.clone(),
            revision: recorded.revision,
            event_id: recorded.event_id,
            recorded_at: recorded.recorded_at,
            event_type: recorded.event_type.clone(),
            schema_version: recorded.schema_version,
            correlation_id: recorded.correlation_id,
            causation_id: recorded.causation_id,
            payload,
        })
    }
}

/// An event handed to `append`. The store assigns position, revision and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUID v7 chosen by the writer.
    pub event_id: Uuid,
    /// Dotted event type.
    pub event_type: String,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// Correlation id.
    pub correlation_id: Option<Uuid>,
    /// Causation id.
    pub causation_id: Option<Uuid>,
    /// Encoded payload.
    pub payload: Vec<u8>,
}

impl NewEvent {
    /// Encodes a catalogue event with a fresh UUID v7 id.
    pub fn from_event(event: &Event) -> Result<Self, CodecError> {
        Ok(NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            correlation_id: None,
            causation_id: None,
            payload: event.encode()?,
        })
    }

    /// An event whose payload the caller encoded itself (tests, tools, foreign
    /// events). It is stored as is; readers that do not know the type show it raw.
    pub fn raw(event_type: impl Into<String>, schema_version: u16, payload: Vec<u8>) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            correlation_id: None,
            causation_id: None,
            payload,
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }
}
