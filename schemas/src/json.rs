//! The JSON form of an envelope, shared by `tutorlog events`, the HTTP event reader
//! and exports.
//!
//! A record whose payload this build cannot decode (an unknown type, a future
//! version) is still shown, with its payload as hex and the reason, so that reading
//! the log never fails on one odd event.

use serde_json::{json, Value};

use crate::{envelope::RecordedEvent, events::Event};

/// The JSON object for one stored record.
pub fn envelope_json(recorded: &RecordedEvent) -> Value {
    let mut object = json!({
        "position": recorded.position,
        "stream": recorded.stream,
        "revision": recorded.revision,
        "event_type": recorded.event_type,
        "schema_version": recorded.schema_version,
        "recorded_at": recorded.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "event_id": recorded.event_id,
        "correlation_id": recorded.correlation_id,
        "causation_id": recorded.causation_id,
    });
    let decoded = Event::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    );
    if let Value::Object(map) = &mut object {
        match decoded {
            Ok(event) => {
                map.insert("payload".into(), event.to_json());
            }
            Err(error) => {
                map.insert("payload".into(), Value::Null);
                map.insert(
                    "payload_hex".into(),
                    Value::String(hex::encode(&recorded.payload)),
                );
                map.insert("decode_error".into(), Value::String(error.to_string()));
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TrainingResumed;
    use chrono::Utc;
    use uuid::Uuid;

    fn recorded(event_type: &str, payload: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            position: 5,
            stream: "learner-ada".into(),
            revision: 1,
            event_id: Uuid::now_v7(),
            recorded_at: Utc::now(),
            event_type: event_type.into(),
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            payload,
        }
    }

    #[test]
    fn known_events_show_their_payload() {
        let session_id = Uuid::now_v7();
        let event = Event::TrainingResumed(TrainingResumed { session_id });
        let value = envelope_json(&recorded(
            "training.resumed",
            event.encode().expect("encode"),
        ));
        assert_eq!(value["payload"]["session_id"], json!(session_id));
        assert_eq!(value["position"], json!(5));
        assert!(value.get("decode_error").is_none());
    }

    #[test]
    fn unknown_events_show_hex_and_reason() {
        let value = envelope_json(&recorded("x.y", vec![0xab, 0xcd]));
        assert_eq!(value["payload_hex"], json!("abcd"));
        assert!(value["decode_error"]
            .as_str()
            .expect("reason")
            .contains("x.y"));
    }
}
