//! Tests of the why-queries on a log whose times the test sets, so that "only a
//! window was scanned" can be checked.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tutorlog_schemas::{
    events::{
        AlgoRunRecord, BudgetCommitted, BudgetReleased, BudgetReserved, CallSource, CircuitOpened,
        ErrorKind, ExecutionRecorded, FeedbackRecorded, MasteryImproved, ProviderQueryCompleted,
        ProviderQueryFailed, ProviderQueryStarted, ProviderSelected, RouteCandidate,
        TrainingCompleted, TrainingRoundCompleted, TrainingRoundStarted, TrainingStarted,
    },
    Event, NewEvent, RecordedEvent,
};
use tutorlog_store::{
    AppendResult, EventStore, ExpectedRevision, StoreError, Subscription, SubscriptionSource,
};
use uuid::{NoContext, Timestamp, Uuid};

use super::*;

/// An in-memory log with times chosen by the test.
#[derive(Default)]
struct TimedLog {
    events: Vec<RecordedEvent>,
}

impl TimedLog {
    fn push(&mut self, stream: &str, at: DateTime<Utc>, event: &Event, correlation: Option<Uuid>) {
        let revision = self.events.iter().filter(|e| e.stream == stream).count() as u64;
        let last = self.events.last().map(|e| e.recorded_at);
        let new = NewEvent::from_event(event).expect("encode");
        self.events.push(RecordedEvent {
            position: self.events.len() as u64,
            stream: stream.to_owned(),
            revision,
            event_id: new.event_id,
            // Like every backend: never earlier than the event before.
            recorded_at: last.map_or(at, |l| l.max(at)),
            event_type: new.event_type,
            schema_version: new.schema_version,
            correlation_id: correlation,
            causation_id: None,
            payload: new.payload,
        });
    }

    fn positions_where(&self, keep: impl Fn(&RecordedEvent) -> bool) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.position)
            .collect()
    }
}

struct Ended;

#[async_trait]
impl SubscriptionSource for Ended {
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        None
    }
}

#[async_trait]
impl EventStore for TimedLog {
    async fn append(
        &self,
        _stream: &str,
        _expected: ExpectedRevision,
        _events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        Err(StoreError::ReadOnly)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self
            .events
            .iter()
            .filter(|e| e.stream == stream && e.revision >= from_revision)
            .take(max)
            .cloned()
            .collect())
    }

    async fn read_all(
        &self,
        from_position: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let from = usize::try_from(from_position).unwrap_or(usize::MAX);
        Ok(self.events.iter().skip(from).take(max).cloned().collect())
    }

    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .events
            .iter()
            .rev()
            .find(|e| e.stream == stream)
            .map(|e| e.revision))
    }

    fn last_position(&self) -> Option<u64> {
        self.events.last().map(|e| e.position)
    }

    fn subscribe_all(&self, _from_position: u64) -> Subscription {
        Subscription::new(Box::new(Ended))
    }

    fn subscribe_stream(&self, _stream: &str, _from_revision: u64) -> Subscription {
        Subscription::new(Box::new(Ended))
    }
}

fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).expect("valid")
}

/// A UUID v7 made at `at`, as the gateway and learning service make theirs.
fn v7_at(at: DateTime<Utc>, salt: u16) -> Uuid {
    let seconds = u64::try_from(at.timestamp()).expect("after 1970");
    let id = Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        seconds,
        at.timestamp_subsec_nanos(),
    ));
    // Different ids for the same millisecond: vary the random bits.
    let mut bytes = *id.as_bytes();
    bytes[14] = (salt >> 8) as u8;
    bytes[15] = salt as u8;
    Uuid::from_bytes(bytes)
}

fn ms(count: i64) -> TimeDelta {
    TimeDelta::milliseconds(count)
}

fn reserved(request_id: Uuid, estimate_micros: u64) -> Event {
    Event::BudgetReserved(BudgetReserved {
        request_id,
        model: "m".into(),
        estimate_micros,
        period: "2030-03".into(),
        user_id: None,
        session_id: None,
    })
}

fn selected(request_id: Uuid) -> Event {
    let candidate = |provider: &str, score: f64| RouteCandidate {
        provider: provider.into(),
        model: "m".into(),
        score,
        eligible: true,
        reason: "best_score".into(),
    };
    Event::ProviderSelected(ProviderSelected {
        request_id,
        session_id: None,
        user_id: Some("dev".into()),
        category: "coding".into(),
        requested_model: "auto".into(),
        candidates: vec![candidate("mock", 0.9), candidate("backup", 0.5)],
        chosen_provider: Some("mock".into()),
        chosen_model: Some("m".into()),
        reason: "best_score".into(),
    })
}

fn started(request_id: Uuid, provider: &str, attempt: u32) -> Event {
    Event::ProviderQueryStarted(ProviderQueryStarted {
        request_id,
        provider: provider.into(),
        model: "m".into(),
        attempt,
    })
}

fn execution(request_id: Uuid) -> Event {
    Event::ExecutionRecorded(ExecutionRecorded {
        request_id,
        source: CallSource::OpenAi,
        provider: Some("backup".into()),
        model: Some("m".into()),
        category: "coding".into(),
        session_id: None,
        user_id: Some("dev".into()),
        success: true,
        attempts: 2,
        streamed: false,
        duration_micros: 1_500_000,
        quality: None,
        cost_estimate_micros: 900,
        cost_actual_micros: 420,
        input_tokens: 10,
        output_tokens: 20,
        error_kind: None,
        request_messages: None,
        response_text: None,
    })
}

/// Another request's reservation and outcome, as noise.
fn noise(log: &mut TimedLog, at: DateTime<Utc>, salt: u16) {
    let other = v7_at(at, salt);
    log.push("budget-mock", at, &reserved(other, 5), Some(other));
    log.push(
        "circuit-mock",
        at,
        &Event::ProviderQueryCompleted(ProviderQueryCompleted {
            request_id: other,
            model: "m".into(),
            latency_micros: 7,
            trial: false,
        }),
        Some(other),
    );
}

/// A gateway call that failed over from `mock` (opening its circuit) to `backup`,
/// amid other requests' events, with feedback half an hour later; `busy_after`
/// other requests follow within the same second. Returns the log, the request id
/// and the positions of its events.
fn gateway_log_with(busy_after: u16) -> (TimedLog, Uuid, Vec<u64>) {
    let mut log = TimedLog::default();
    let t0 = base_time();
    for n in 0..400u16 {
        noise(&mut log, t0 + ms(i64::from(n)), n);
    }
    let start = t0 + TimeDelta::minutes(10);
    let id = v7_at(start, 9_999);
    let r = Some(id);
    log.push("budget-mock", start + ms(1), &reserved(id, 900), r);
    noise(&mut log, start + ms(2), 10_000);
    let failed = Event::ProviderQueryFailed(ProviderQueryFailed {
        request_id: id,
        model: "m".into(),
        latency_micros: 30_000,
        error_kind: ErrorKind::Server,
        message: "HTTP 503".into(),
        trial: false,
    });
    log.push("circuit-mock", start + ms(400), &failed, r);
    let opened = Event::CircuitOpened(CircuitOpened {
        cause: "failure_threshold".into(),
        failures: 5,
        last_error: ErrorKind::Server,
        open_secs: 60,
        retry_at: start + TimeDelta::seconds(60),
    });
    log.push("circuit-mock", start + ms(400), &opened, r);
    let released = Event::BudgetReleased(BudgetReleased {
        request_id: id,
        reason: "server".into(),
        period: "2030-03".into(),
    });
    log.push("budget-mock", start + ms(401), &released, r);
    log.push("budget-backup", start + ms(402), &reserved(id, 900), r);
    noise(&mut log, start + ms(600), 10_001);
    let completed = Event::ProviderQueryCompleted(ProviderQueryCompleted {
        request_id: id,
        model: "m".into(),
        latency_micros: 1_000_000,
        trial: false,
    });
    log.push("circuit-backup", start + ms(1_450), &completed, r);
    let stream = format!("request-{id}");
    for event in [
        selected(id),
        started(id, "mock", 1),
        started(id, "backup", 2),
        execution(id),
    ] {
        log.push(&stream, start + ms(1_500), &event, r);
    }
    // The commit is sent without waiting: it may land after the record.
    let committed = Event::BudgetCommitted(BudgetCommitted {
        request_id: id,
        actual_micros: 420,
        input_tokens: 10,
        output_tokens: 20,
        price_version: "p1".into(),
        period: "2030-03".into(),
    });
    log.push("budget-backup", start + ms(1_510), &committed, r);
    for n in 0..busy_after {
        noise(&mut log, start + ms(1_511), n + 40_000);
    }
    for n in 0..400u16 {
        noise(
            &mut log,
            start + TimeDelta::minutes(20) + ms(i64::from(n)),
            n + 20_000,
        );
    }
    let feedback = Event::FeedbackRecorded(FeedbackRecorded {
        request_id: id,
        rating: Some(5),
        accepted: Some(true),
        quality: None,
        comment: Some("great".into()),
    });
    log.push(&stream, start + TimeDelta::minutes(30), &feedback, r);
    noise(&mut log, start + TimeDelta::minutes(31), 30_000);
    let mine = log.positions_where(|e| e.correlation_id == r);
    (log, id, mine)
}

fn gateway_log() -> (TimedLog, Uuid, Vec<u64>) {
    gateway_log_with(0)
}

#[tokio::test]
async fn a_gateway_chain_is_complete_ordered_and_nothing_else() {
    let (log, id, mine) = gateway_log();
    let found = explain(&log, id, None)
        .await
        .expect("explain")
        .expect("found");
    assert_eq!(found.kind, ExplainKind::Gateway);
    let positions: Vec<u64> = found.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, mine, "exactly the request's events, in order");
    let types: Vec<&str> = found.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "budget.reserved",
            "provider.query.failed",
            "circuit.opened",
            "budget.released",
            "budget.reserved",
            "provider.query.completed",
            "provider.selected",
            "provider.query.started",
            "provider.query.started",
            "execution.recorded",
            "budget.committed",
            "feedback.recorded",
        ]
    );
    // Only the window around the call was scanned, not the 1,600 other events.
    assert!(found.scan.all_events_read < 20, "scanned {:?}", found.scan);
    assert!(!found.scan.truncated);

    let json = found.to_json();
    assert_eq!(json["request_id"], serde_json::json!(id));
    assert_eq!(json["kind"], "gateway");
    assert_eq!(json["events"].as_array().map(Vec::len), Some(mine.len()));
    assert_eq!(json["events"][0]["payload"]["estimate_micros"], 900);
    let summary = &json["summary"];
    assert_eq!(summary["outcome"], "succeeded");
    assert_eq!(summary["decision"]["chosen_provider"], "mock");
    assert_eq!(
        summary["decision"]["candidates"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(summary["attempts"][0]["outcome"], "failed");
    assert_eq!(summary["attempts"][0]["error_kind"], "server");
    assert_eq!(summary["attempts"][1]["outcome"], "completed");
    assert_eq!(summary["reservations"][0]["provider"], "mock");
    assert_eq!(summary["reservations"][0]["outcome"], "released");
    assert_eq!(summary["reservations"][1]["outcome"], "committed");
    assert_eq!(summary["reservations"][1]["actual_micros"], 420);
    assert_eq!(summary["cost"]["estimate_micros"], 900);
    assert_eq!(summary["cost"]["actual_usd"], "$0.000420");
    assert_eq!(summary["circuit_transitions"][0]["provider"], "mock");
    assert_eq!(summary["feedback"][0]["rating"], 5);
    let text = summary["text"].as_str().expect("text");
    assert!(
        text.contains("routed to mock/m") && text.contains("answered by backup/m"),
        "{text}"
    );
    assert!(summary["scan"]["all_events_read"].as_u64().is_some());
}

#[tokio::test]
async fn a_busy_log_is_scanned_only_until_the_call_is_settled() {
    let (log, id, mine) = gateway_log_with(5_000);
    let found = explain(&log, id, None)
        .await
        .expect("explain")
        .expect("found");
    let positions: Vec<u64> = found.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, mine);
    // Every attempt settled at the commit: the 10,000 events recorded in the same
    // second after it are not read, beyond the short tail.
    assert!(
        found.scan.all_events_read < 20 + SETTLED_TAIL_EVENTS,
        "{:?}",
        found.scan
    );
    assert!(found.scan.all_events_read > SETTLED_TAIL_EVENTS);
    assert!(!found.scan.truncated);
}

#[tokio::test]
async fn unknown_ids_are_none() {
    let (log, _, _) = gateway_log();
    let unknown = v7_at(base_time() + TimeDelta::minutes(10), 1);
    assert!(explain(&log, unknown, None)
        .await
        .expect("explain")
        .is_none());
    assert!(explain(&log, Uuid::from_u128(5), None)
        .await
        .expect("explain")
        .is_none());
    assert!(explain(&TimedLog::default(), unknown, None)
        .await
        .expect("explain")
        .is_none());
}

fn run(round: u32) -> AlgoRunRecord {
    AlgoRunRecord {
        run_id: Uuid::from_u128(u128::from(round) + 500),
        key: "mastery".into(),
        version: 1,
        params_checksum: "ab".into(),
        input_summary: r#"{"p_known":0.3}"#.into(),
        output_summary: r#"{"p_known":0.5}"#.into(),
    }
}

fn round_started(session_id: Uuid, round_id: Uuid, number: u32, at: DateTime<Utc>) -> Event {
    Event::TrainingRoundStarted(TrainingRoundStarted {
        session_id,
        round_id,
        round_number: number,
        item_id: format!("algebra-linear-00{number}"),
        prompt: "Solve".into(),
        difficulty: "easy".into(),
        started_at: at,
        algo_runs: Vec::new(),
    })
}

fn round_completed(session_id: Uuid, round_id: Uuid, number: u32, at: DateTime<Utc>) -> Event {
    Event::TrainingRoundCompleted(TrainingRoundCompleted {
        session_id,
        round_id,
        round_number: number,
        focus_area: "algebra".into(),
        item_id: format!("algebra-linear-00{number}"),
        response_digest: "00".into(),
        score: 60 + 20 * number,
        correct: number > 1,
        feedback: "ok".into(),
        mistake_tag: None,
        mastery_before: 30.0,
        mastery_after: 50.0,
        probability_after: 0.5,
        next_review_due: None,
        revision_card: "{}".into(),
        completed_at: at,
        algo_runs: vec![run(number)],
    })
}

fn improved() -> Event {
    Event::MasteryImproved(MasteryImproved {
        focus_area: "algebra".into(),
        before: 30.0,
        after: 50.0,
        mastered: false,
    })
}

struct TrainingLog {
    log: TimedLog,
    session: Uuid,
    rounds: [Uuid; 2],
    /// Positions of the session's events (mastery events included).
    session_positions: Vec<u64>,
    /// Positions of round 2's events.
    round_positions: Vec<u64>,
}

/// Ada's two-round session, interleaved with Bob's session on the same focus area
/// and gateway noise, after a later session of Ada's own.
fn training_log() -> TrainingLog {
    let mut log = TimedLog::default();
    let t0 = base_time();
    for n in 0..300u16 {
        noise(&mut log, t0 + ms(i64::from(n)), n);
    }
    let start = t0 + TimeDelta::minutes(15);
    let session = v7_at(start, 1);
    let rounds = [v7_at(start, 2), v7_at(start + ms(50_000), 3)];
    let bob = v7_at(start, 4);
    let bob_round = v7_at(start, 5);
    let mut session_positions = Vec::new();
    let mut round_positions = Vec::new();
    let mut ada = |log: &mut TimedLog, at, event: &Event, round2: bool| {
        log.push("learner-ada", at, event, None);
        let position = log.events.len() as u64 - 1;
        session_positions.push(position);
        if round2 {
            round_positions.push(position);
        }
    };
    let started = Event::TrainingStarted(TrainingStarted {
        session_id: session,
        user_id: "ada".into(),
        focus_area: "algebra".into(),
        rounds: 2,
        provider_plan: Vec::new(),
    });
    ada(&mut log, start + ms(5), &started, false);
    ada(
        &mut log,
        start + ms(5),
        &round_started(session, rounds[0], 1, start),
        false,
    );
    let bob_started = Event::TrainingStarted(TrainingStarted {
        session_id: bob,
        user_id: "bob".into(),
        focus_area: "algebra".into(),
        rounds: 1,
        provider_plan: Vec::new(),
    });
    log.push("learner-bob", start + ms(6), &bob_started, None);
    log.push(
        "learner-bob",
        start + ms(6),
        &round_started(bob, bob_round, 1, start),
        None,
    );
    noise(&mut log, start + ms(10_000), 1_000);
    let at = start + ms(50_000);
    ada(
        &mut log,
        at,
        &round_completed(session, rounds[0], 1, at),
        false,
    );
    ada(&mut log, at, &improved(), false);
    ada(
        &mut log,
        at,
        &round_started(session, rounds[1], 2, at),
        true,
    );
    log.push(
        "learner-bob",
        at + ms(1),
        &round_completed(bob, bob_round, 1, at),
        None,
    );
    log.push("learner-bob", at + ms(1), &improved(), None);
    let done = Event::TrainingCompleted(TrainingCompleted {
        session_id: bob,
        rounds_completed: 1,
    });
    log.push("learner-bob", at + ms(1), &done, None);
    let at = start + ms(90_000);
    ada(
        &mut log,
        at,
        &round_completed(session, rounds[1], 2, at),
        true,
    );
    ada(&mut log, at, &improved(), true);
    let done = Event::TrainingCompleted(TrainingCompleted {
        session_id: session,
        rounds_completed: 2,
    });
    ada(&mut log, at, &done, false);
    // Ada's next session: its decay and start must not be attached to this one.
    let later = start + TimeDelta::days(8);
    let next = v7_at(later, 6);
    log.push(
        "learner-ada",
        later,
        &Event::TrainingStarted(TrainingStarted {
            session_id: next,
            user_id: "ada".into(),
            focus_area: "algebra".into(),
            rounds: 1,
            provider_plan: Vec::new(),
        }),
        None,
    );
    for n in 0..300u16 {
        noise(&mut log, later + ms(i64::from(n)), n + 2_000);
    }
    TrainingLog {
        log,
        session,
        rounds,
        session_positions,
        round_positions,
    }
}

#[tokio::test]
async fn a_session_is_its_events_and_algorithm_runs() {
    let training = training_log();
    let found = explain(&training.log, training.session, None)
        .await
        .expect("explain")
        .expect("found");
    assert_eq!(found.kind, ExplainKind::Training);
    let positions: Vec<u64> = found.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, training.session_positions);
    assert!(found.events.iter().all(|e| e.stream == "learner-ada"));
    assert!(found.scan.all_events_read < 20, "{:?}", found.scan);
    let summary = &found.to_json()["summary"];
    assert_eq!(summary["user_id"], "ada");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["rounds_planned"], 2);
    assert_eq!(summary["rounds"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["rounds"][1]["score"], 100);
    assert_eq!(summary["rounds"][1]["graded"], true);
    assert_eq!(summary["algo_runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["algo_runs"][0]["output"]["p_known"], 0.5);
    let text = summary["text"].as_str().expect("text");
    assert!(
        text.contains("ada practised algebra: 2 round(s) graded, mean score 90"),
        "{text}"
    );
}

#[tokio::test]
async fn a_round_is_its_own_events_only() {
    let training = training_log();
    let found = explain(&training.log, training.rounds[1], None)
        .await
        .expect("explain")
        .expect("found");
    let positions: Vec<u64> = found.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, training.round_positions);
    let summary = &found.to_json()["summary"];
    assert_eq!(summary["round_id"], serde_json::json!(training.rounds[1]));
    assert_eq!(summary["session_id"], serde_json::json!(training.session));
    assert_eq!(summary["rounds"][0]["item_id"], "algebra-linear-002");
    assert!(summary["status"].is_null());
}

#[tokio::test]
async fn an_id_without_a_time_needs_the_learner_hint() {
    let mut log = TimedLog::default();
    let session = Uuid::from_u128(77);
    let at = base_time();
    log.push(
        "learner-ada",
        at,
        &Event::TrainingStarted(TrainingStarted {
            session_id: session,
            user_id: "ada".into(),
            focus_area: "algebra".into(),
            rounds: 1,
            provider_plan: Vec::new(),
        }),
        None,
    );
    assert!(explain(&log, session, None)
        .await
        .expect("explain")
        .is_none());
    let found = explain(&log, session, Some("learner-ada"))
        .await
        .expect("explain")
        .expect("found with the hint");
    assert_eq!(found.events.len(), 1);
    assert_eq!(found.to_json()["summary"]["status"], "in_progress");
}
