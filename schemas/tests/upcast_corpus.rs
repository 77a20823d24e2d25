//! Decodes the committed corpus of records written with old schema versions.
//!
//! The files in `tests/corpus/` were produced once by
//! `TUTORLOG_WRITE_CORPUS=1 cargo test -p tutorlog-schemas --test upcast_corpus`
//! and must never be regenerated for an existing version: they stand for events
//! already sitting in users' logs.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use tutorlog_schemas::{
    codec::{self, RecordBody, RECORD_FORMAT},
    events::{Event, TrainingStarted},
    upcast::TrainingStartedV1,
    Envelope,
};
use uuid::Uuid;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

const SESSION: u128 = 0x0191_2c3e_5f00_7000_8000_0000_0000_0001;

fn v1_payload() -> TrainingStartedV1 {
    TrainingStartedV1 {
        session_id: Uuid::from_u128(SESSION),
        user_id: "ada".into(),
        focus_area: "algebra".into(),
        rounds: 5,
    }
}

fn v1_record() -> RecordBody {
    RecordBody {
        format: RECORD_FORMAT,
        prev_hash: [0; 32],
        position: 0,
        revision: 0,
        recorded_at_micros: Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 30, 0)
            .single()
            .map(|t| t.timestamp_micros())
            .unwrap_or_default(),
        event_id: *Uuid::from_u128(SESSION + 1).as_bytes(),
        correlation_id: None,
        causation_id: None,
        schema_version: 1,
        stream: "learner-ada".into(),
        event_type: "training.started".into(),
        payload: codec::encode(&v1_payload()).expect("encode v1"),
    }
}

#[test]
fn training_started_v1_upcasts_to_current() {
    let path = corpus_dir().join("training.started.v1.record");
    if std::env::var_os("TUTORLOG_WRITE_CORPUS").is_some() && !path.exists() {
        std::fs::create_dir_all(corpus_dir()).expect("mkdir");
        std::fs::write(&path, codec::encode_record(&v1_record()).expect("encode")).expect("write");
    }
    let bytes = std::fs::read(&path).expect("corpus file is committed");

    // The byte format is frozen: today's encoder must still produce the stored bytes.
    assert_eq!(
        codec::encode_record(&v1_record()).expect("encode"),
        bytes,
        "record format drifted"
    );

    let recorded = codec::decode_record(&bytes)
        .expect("decode record")
        .into_recorded()
        .expect("time");
    assert_eq!(recorded.schema_version, 1);
    let envelope = Envelope::decode(&recorded).expect("upcast");
    assert_eq!(
        envelope.schema_version, 1,
        "envelope keeps the stored version"
    );
    assert_eq!(
        envelope.payload,
        Event::TrainingStarted(TrainingStarted {
            session_id: Uuid::from_u128(SESSION),
            user_id: "ada".into(),
            focus_area: "algebra".into(),
            rounds: 5,
            provider_plan: vec![],
        })
    );
}
