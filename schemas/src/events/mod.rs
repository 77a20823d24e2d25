//! The event catalogue: one struct per event type at its current schema version,
//! and the [`Event`] enum over all of them.
//!
//! Payloads are encoded as the bare struct (never as the enum), keyed by the
//! envelope's `event_type` and `schema_version`, so reordering or adding enum variants
//! never changes stored bytes. Older shapes live in [`crate::upcast`].
//!
//! Each domain keeps its payload structs in its own module (`learning`, `config`,
//! ...); this file holds only the list. To add an event: define its struct in the
//! domain's module, add one line to the `catalogue!` list below. A stored event is
//! never renamed and its meaning never changes.

use crate::codec::{self, CodecError};

mod aggregate;
mod algo;
mod config;
mod gateway;
mod learning;
mod provider;

pub use aggregate::*;
pub use algo::*;
pub use config::*;
pub use gateway::*;
pub use learning::*;
pub use provider::*;

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident($ty:ident) = ($name:literal, $version:literal); )*) => {
        /// Every event type tutorlog writes, at its current schema version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $(#[$doc])* $variant($ty), )*
        }

        /// `(event_type, current schema_version)` for every catalogue entry.
        pub const CATALOGUE: &[(&str, u16)] = &[ $( ($name, $version), )* ];

        impl Event {
            /// The dotted event type name.
            pub fn event_type(&self) -> &'static str {
                match self { $( Event::$variant(_) => $name, )* }
            }

            /// The schema version this build writes for this type.
            pub fn schema_version(&self) -> u16 {
                match self { $( Event::$variant(_) => $version, )* }
            }

            /// Encodes the payload (the bare struct).
            pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
                match self { $( Event::$variant(inner) => codec::encode(inner), )* }
            }

            /// The payload as JSON, for export and the HTTP event reader.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self { $( Event::$variant(inner) => serde_json::to_value(inner), )* };
                // Catalogue structs hold only strings, numbers, ids and lists, which
                // always serialize; a failure here is a bug in a new event type.
                value.unwrap_or_else(|e| serde_json::json!({ "json_error": e.to_string() }))
            }

            /// Parses a payload's JSON form (as [`Event::to_json`] writes it) as
            /// `event_type` at its current schema version: the reverse of
            /// `to_json`, for tools that build events from JSON (benchmark drivers,
            /// fixtures).
            pub fn from_json(event_type: &str, value: serde_json::Value) -> Result<Event, String> {
                match event_type {
                    $( $name => serde_json::from_value::<$ty>(value)
                        .map(Event::$variant)
                        .map_err(|e| format!("{event_type}: {e}")), )*
                    _ => Err(format!("unknown event type {event_type:?}")),
                }
            }

            /// Decodes a payload stored as `event_type` at `schema_version`,
            /// upcasting older versions to today's shape.
            pub fn decode(event_type: &str, schema_version: u16, bytes: &[u8]) -> Result<Event, CodecError> {
                match event_type {
                    $( $name => {
                        if schema_version == $version {
                            return codec::decode::<$ty>(bytes).map(Event::$variant);
                        }
                        if schema_version > $version {
                            return Err(CodecError::UnknownSchemaVersion {
                                event_type: event_type.to_owned(),
                                schema_version,
                                max_known: $version,
                            });
                        }
                        crate::upcast::decode_old(event_type, schema_version, bytes)
                    } )*
                    _ => Err(CodecError::UnknownEventType {
                        event_type: event_type.to_owned(),
                        schema_version,
                    }),
                }
            }
        }
    };
}

catalogue! {
    /// A session began.
    TrainingStarted(TrainingStarted) = ("training.started", 2);
    /// A session paused.
    TrainingPaused(TrainingPaused) = ("training.paused", 1);
    /// A paused session resumed.
    TrainingResumed(TrainingResumed) = ("training.resumed", 1);
    /// A session finished.
    TrainingCompleted(TrainingCompleted) = ("training.completed", 1);
    /// A round's item was put to the learner.
    TrainingRoundStarted(TrainingRoundStarted) = ("training.round.started", 1);
    /// A round was graded, with its mastery update.
    TrainingRoundCompleted(TrainingRoundCompleted) = ("training.round.completed", 1);
    /// Mastery of a focus area went up.
    MasteryImproved(MasteryImproved) = ("mastery.improved", 1);
    /// Mastery of a focus area decayed for lack of practice.
    MasteryDecayed(MasteryDecayed) = ("mastery.decayed", 1);
    /// A challenge was handed out.
    ChallengeStarted(ChallengeStarted) = ("challenge.started", 1);
    /// A challenge was graded.
    ChallengeCompleted(ChallengeCompleted) = ("challenge.completed", 1);
    /// An algorithm version was registered.
    AlgoVersionRegistered(AlgoVersionRegistered) = ("algo.version.registered", 1);
    /// An algorithm version became the active one.
    AlgoVersionActivated(AlgoVersionActivated) = ("algo.version.activated", 1);
    /// An algorithm version was retired.
    AlgoVersionDeprecated(AlgoVersionDeprecated) = ("algo.version.deprecated", 1);
    /// A version's active params changed.
    AlgoParamsSet(AlgoParamsSet) = ("algo.params.set", 1);
    /// An algorithm run began.
    AlgoRunStarted(AlgoRunStarted) = ("algo.run.started", 1);
    /// An algorithm run finished.
    AlgoRunSucceeded(AlgoRunSucceeded) = ("algo.run.succeeded", 1);
    /// An algorithm run failed.
    AlgoRunFailed(AlgoRunFailed) = ("algo.run.failed", 1);
    /// A configuration took effect.
    ConfigApplied(ConfigApplied) = ("config.applied", 1);
    /// An estimated cost was set aside before a provider call.
    BudgetReserved(BudgetReserved) = ("budget.reserved", 1);
    /// A reserved call's actual cost.
    BudgetCommitted(BudgetCommitted) = ("budget.committed", 1);
    /// A reservation was given back.
    BudgetReleased(BudgetReleased) = ("budget.released", 1);
    /// A reservation did not fit the budget.
    BudgetExceeded(BudgetExceeded) = ("provider.budget.exceeded", 1);
    /// A provider's budget limits changed.
    BudgetLimitChanged(BudgetLimitChanged) = ("budget.limit.changed", 1);
    /// A provider call succeeded.
    ProviderQueryCompleted(ProviderQueryCompleted) = ("provider.query.completed", 1);
    /// A provider call failed.
    ProviderQueryFailed(ProviderQueryFailed) = ("provider.query.failed", 1);
    /// A provider's circuit opened.
    CircuitOpened(CircuitOpened) = ("circuit.opened", 1);
    /// A provider's circuit allows trial calls.
    CircuitHalfOpened(CircuitHalfOpened) = ("circuit.half_opened", 1);
    /// A provider's circuit closed.
    CircuitClosed(CircuitClosed) = ("circuit.closed", 1);
    /// A provider's priority changed.
    ProviderPriorityChanged(ProviderPriorityChanged) = ("provider.priority.changed", 1);
    /// The router chose a provider for a request.
    ProviderSelected(ProviderSelected) = ("provider.selected", 1);
    /// A call went out to a provider.
    ProviderQueryStarted(ProviderQueryStarted) = ("provider.query.started", 1);
    /// A gateway call's decision and outcome.
    ExecutionRecorded(ExecutionRecorded) = ("execution.recorded", 1);
    /// Feedback on a gateway answer.
    FeedbackRecorded(FeedbackRecorded) = ("feedback.recorded", 1);
    /// A benchmark run was scheduled.
    BenchmarkRunScheduled(BenchmarkRunScheduled) = ("benchmark.run.scheduled", 1);
    /// A benchmark run started.
    BenchmarkRunStarted(BenchmarkRunStarted) = ("benchmark.run.started", 1);
    /// One benchmark test's result.
    BenchmarkResultRecorded(BenchmarkResultRecorded) = ("benchmark.result.recorded", 1);
    /// A benchmark run finished.
    BenchmarkRunCompleted(BenchmarkRunCompleted) = ("benchmark.run.completed", 1);
    /// An aggregate's state as of a revision of its stream (stream `snapshot-{stream}`).
    AggregateSnapshot(AggregateSnapshot) = ("aggregate.snapshot", 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn arb_event() -> impl Strategy<Value = Event> {
        let uuid = any::<u128>().prop_map(Uuid::from_u128);
        prop_oneof![
            (
                uuid.clone(),
                ".*",
                ".*",
                any::<u32>(),
                proptest::collection::vec(".*", 0..4)
            )
                .prop_map(
                    |(session_id, user_id, focus_area, rounds, provider_plan)| {
                        Event::TrainingStarted(TrainingStarted {
                            session_id,
                            user_id,
                            focus_area,
                            rounds,
                            provider_plan,
                        })
                    }
                ),
            (
                uuid.clone(),
                prop_oneof![
                    Just(PauseReason::User),
                    Just(PauseReason::Budget),
                    Just(PauseReason::Provider)
                ]
            )
                .prop_map(|(session_id, reason)| Event::TrainingPaused(
                    TrainingPaused { session_id, reason }
                )),
            uuid.clone()
                .prop_map(|session_id| Event::TrainingResumed(TrainingResumed { session_id })),
            (uuid, any::<u32>()).prop_map(|(session_id, rounds_completed)| {
                Event::TrainingCompleted(TrainingCompleted {
                    session_id,
                    rounds_completed,
                })
            }),
            (
                ".*",
                proptest::option::of(".*"),
                proptest::collection::vec(".*", 0..4),
                ".*",
            )
                .prop_map(|(digest, previous_digest, changes, effective_json)| {
                    Event::ConfigApplied(ConfigApplied {
                        digest,
                        previous_digest,
                        changes,
                        effective_json,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn every_event_round_trips(event in arb_event()) {
            let bytes = event.encode().expect("encode");
            let back = Event::decode(event.event_type(), event.schema_version(), &bytes).expect("decode");
            prop_assert_eq!(back, event);
        }

        #[test]
        fn json_round_trips(event in arb_event()) {
            let back = Event::from_json(event.event_type(), event.to_json()).expect("from_json");
            prop_assert_eq!(back, event);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), index in 0usize..5, version in 0u16..4) {
            let (event_type, _) = CATALOGUE[index % CATALOGUE.len()];
            let _ = Event::decode(event_type, version, &bytes);
        }
    }

    #[test]
    fn unknown_types_and_future_versions_are_named() {
        let err = Event::decode("nope.nothing", 1, &[]).expect_err("unknown");
        assert!(err.to_string().contains("nope.nothing"));
        let err = Event::decode("training.started", 9, &[]).expect_err("future");
        assert!(matches!(
            err,
            CodecError::UnknownSchemaVersion { max_known: 2, .. }
        ));
    }

    #[test]
    fn learning_and_algo_events_round_trip() {
        let at =
            chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_000, 123_000).expect("valid");
        let events = [
            Event::TrainingRoundCompleted(TrainingRoundCompleted {
                session_id: Uuid::from_u128(7),
                round_id: Uuid::from_u128(8),
                round_number: 2,
                focus_area: "algebra".into(),
                item_id: "algebra-001".into(),
                response_digest: "ab".into(),
                score: 90,
                correct: true,
                feedback: "good".into(),
                mistake_tag: Some("sign-error".into()),
                mastery_before: 41.5,
                mastery_after: 55.25,
                probability_after: 0.5525,
                next_review_due: Some(at),
                revision_card: "{}".into(),
                completed_at: at,
                algo_runs: vec![AlgoRunRecord {
                    run_id: Uuid::from_u128(9),
                    key: "mastery".into(),
                    version: 1,
                    params_checksum: "00".into(),
                    input_summary: "{}".into(),
                    output_summary: "{\"p\":0.5}".into(),
                }],
            }),
            Event::AlgoRunStarted(AlgoRunStarted {
                run_id: Uuid::from_u128(1),
                key: "difficulty".into(),
                version: 1,
                params_checksum: "ff".into(),
                user_id: None,
                session_id: Some(Uuid::from_u128(2)),
                trigger: RunTrigger::Cron,
                input_summary: "{}".into(),
            }),
            Event::AlgoVersionRegistered(AlgoVersionRegistered {
                key: "mastery".into(),
                version: 2,
                status: AlgoStatus::Experimental,
                description: "elo".into(),
            }),
        ];
        for event in events {
            let bytes = event.encode().expect("encode");
            let back =
                Event::decode(event.event_type(), event.schema_version(), &bytes).expect("decode");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn provider_and_gateway_events_round_trip() {
        let request_id = Uuid::from_u128(42);
        let events = [
            Event::BudgetReserved(BudgetReserved {
                request_id,
                model: "gpt-4o-mini".into(),
                estimate_micros: 1_234,
                period: "2026-12".into(),
                user_id: Some("ada".into()),
                session_id: None,
            }),
            Event::BudgetCommitted(BudgetCommitted {
                request_id,
                actual_micros: 999,
                input_tokens: 10,
                output_tokens: 20,
                price_version: "ab12".into(),
                period: "2026-12".into(),
            }),
            Event::BudgetExceeded(BudgetExceeded {
                request_id,
                estimate_micros: 5,
                limit: BudgetLimitKind::PerRequest,
                limit_micros: 4,
                remaining_micros: 4,
                period: "2026-12".into(),
            }),
            Event::ProviderQueryFailed(ProviderQueryFailed {
                request_id,
                model: "m".into(),
                latency_micros: 7,
                error_kind: ErrorKind::RateLimited,
                message: "429".into(),
                trial: true,
            }),
            Event::CircuitOpened(CircuitOpened {
                cause: "failure_threshold".into(),
                failures: 5,
                last_error: ErrorKind::Server,
                open_secs: 60,
                retry_at: chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_060, 0)
                    .expect("valid"),
            }),
            Event::ProviderSelected(ProviderSelected {
                request_id,
                session_id: Some("s1".into()),
                user_id: None,
                category: "coding".into(),
                requested_model: "auto".into(),
                candidates: vec![RouteCandidate {
                    provider: "mock".into(),
                    model: "mock-1".into(),
                    score: 0.75,
                    eligible: true,
                    reason: "best_score".into(),
                }],
                chosen_provider: Some("mock".into()),
                chosen_model: Some("mock-1".into()),
                reason: "best_score".into(),
            }),
            Event::ExecutionRecorded(ExecutionRecorded {
                request_id,
                source: CallSource::OpenAi,
                provider: Some("mock".into()),
                model: Some("mock-1".into()),
                category: "general".into(),
                session_id: None,
                user_id: Some("dev".into()),
                success: false,
                attempts: 2,
                streamed: true,
                duration_micros: 1_000,
                quality: Some(88.5),
                cost_estimate_micros: 10,
                cost_actual_micros: 0,
                input_tokens: 0,
                output_tokens: 0,
                error_kind: Some(ErrorKind::Timeout),
                request_messages: Some("[]".into()),
                response_text: None,
            }),
            Event::BenchmarkResultRecorded(BenchmarkResultRecorded {
                run_id: Uuid::from_u128(1),
                provider: "mock".into(),
                model: "mock-1".into(),
                category: "math".into(),
                test_id: "math-1".into(),
                quality: 100.0,
                latency_micros: 5,
                cost_micros: 0,
                success: true,
                error_kind: None,
            }),
        ];
        for event in events {
            let bytes = event.encode().expect("encode");
            let back =
                Event::decode(event.event_type(), event.schema_version(), &bytes).expect("decode");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn aggregate_snapshots_round_trip_and_name_their_stream() {
        let event = Event::AggregateSnapshot(AggregateSnapshot {
            stream: "learner-ada".into(),
            revision: 4_999,
            position: 123_456,
            format: 1,
            state_json: r#"{"user_id":"ada","note":"quotes \" and ünïcode"}"#.into(),
        });
        let bytes = event.encode().expect("encode");
        let back = Event::decode("aggregate.snapshot", 1, &bytes).expect("decode");
        assert_eq!(back, event);
        assert_eq!(event.event_type(), "aggregate.snapshot");
        assert_eq!(snapshot_stream_name("learner-ada"), "snapshot-learner-ada");
        assert!(event.to_json()["state_json"].is_string());
    }

    #[test]
    fn catalogue_names_are_unique_and_dotted() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(CATALOGUE.iter().all(|(n, v)| n.contains('.') && *v >= 1));
    }
}
