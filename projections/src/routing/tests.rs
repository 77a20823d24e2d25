use super::*;
use crate::test_support::{assert_restore_equivalence, at, envelope_at};
use proptest::prelude::*;
use tutorlog_schemas::events::{CallSource, ErrorKind};

/// Seconds from `at(0)` (2027-01-15T08:00Z) to 2027-01-16T00:00Z.
const NEXT_DAY: i64 = 57_600;

struct Call {
    id: u128,
    provider: Option<&'static str>,
    category: &'static str,
    success: bool,
    quality: Option<f64>,
    duration: u64,
    estimate: u64,
    actual: u64,
}

fn call(id: u128, provider: &'static str, success: bool) -> Call {
    Call {
        id,
        provider: Some(provider),
        category: "coding",
        success,
        quality: None,
        duration: 1_000,
        estimate: 100,
        actual: 80,
    }
}

fn execution(call: Call) -> Event {
    Event::ExecutionRecorded(ExecutionRecorded {
        request_id: Uuid::from_u128(call.id),
        source: CallSource::OpenAi,
        provider: call.provider.map(str::to_owned),
        model: call.provider.map(|p| format!("{p}-m")),
        category: call.category.into(),
        session_id: None,
        user_id: Some("ada".into()),
        success: call.success,
        attempts: if call.success { 1 } else { 2 },
        streamed: false,
        duration_micros: call.duration,
        quality: call.quality,
        cost_estimate_micros: call.estimate,
        cost_actual_micros: call.actual,
        input_tokens: 3,
        output_tokens: 4,
        error_kind: (!call.success).then_some(ErrorKind::Server),
        request_messages: None,
        response_text: None,
    })
}

fn feedback(id: u128, rating: Option<u8>, accepted: Option<bool>) -> Event {
    Event::FeedbackRecorded(FeedbackRecorded {
        request_id: Uuid::from_u128(id),
        rating,
        accepted,
        quality: None,
        comment: None,
    })
}

fn envelope(position: u64, second: i64, event: Event) -> Envelope {
    let stream = match &event {
        Event::ExecutionRecorded(e) => format!("request-{}", e.request_id),
        Event::FeedbackRecorded(f) => format!("request-{}", f.request_id),
        _ => "other".to_owned(),
    };
    envelope_at(&stream, position, at(second), event)
}

fn row<'a>(routing: &'a Routing, provider: &str, category: &str, day: &str) -> &'a RoutingRow {
    routing
        .provider(provider)
        .and_then(|models| models.get(&format!("{provider}-m")))
        .and_then(|categories| categories.get(category))
        .and_then(|days| days.get(day))
        .expect("row")
}

#[test]
fn executions_aggregate_per_provider_model_category_and_day() {
    let mut routing = Routing::new();
    let events = [
        execution(Call {
            quality: Some(80.0),
            duration: 1_000,
            ..call(1, "openai", true)
        }),
        execution(Call {
            quality: Some(60.0),
            duration: 3_000,
            ..call(2, "openai", true)
        }),
        execution(Call {
            duration: 8_000,
            actual: 0,
            ..call(3, "openai", false)
        }),
        execution(Call {
            category: "math",
            ..call(4, "openai", true)
        }),
    ];
    for (index, event) in events.into_iter().enumerate() {
        routing.apply(&envelope(index as u64, index as i64, event));
    }
    routing.apply(&envelope(4, NEXT_DAY, execution(call(5, "openai", true))));
    let coding = row(&routing, "openai", "coding", "2027-01-15");
    assert_eq!(
        (coding.requests, coding.successes, coding.failovers),
        (3, 2, 1)
    );
    assert_eq!(
        (coding.quality_count, coding.duration_max_micros),
        (2, 8_000)
    );
    assert_eq!(
        (coding.cost_estimate_micros, coding.cost_actual_micros),
        (300, 160)
    );
    assert_eq!(coding.errors_by_kind.get("server"), Some(&1));
    let view = coding.view();
    assert_eq!(view.success_rate, 2.0 / 3.0);
    assert_eq!(view.mean_quality, Some(70.0));
    assert_eq!(view.mean_latency_micros, 4_000.0);
    assert_eq!(view.cost_ratio, Some(160.0 / 300.0));
    assert_eq!(view.mean_rating, None);
    assert_eq!(row(&routing, "openai", "math", "2027-01-15").requests, 1);
    assert_eq!(
        row(&routing, "openai", "coding", "2027-01-16").requests,
        1,
        "a new UTC day"
    );
    let json = routing.view().expect("view");
    let day = &json["providers"]["openai"]["openai-m"]["coding"]["2027-01-15"];
    assert_eq!(day["requests"], 3);
    assert_eq!(day["mean_quality"], 70.0);
    assert!(json.get("recent_requests").is_none());
    assert_eq!(json["executions_total"], 5);
}

#[test]
fn feedback_joins_its_execution_by_request_id() {
    let mut routing = Routing::new();
    routing.apply(&envelope(0, 0, execution(call(1, "openai", true))));
    routing.apply(&envelope(1, 0, execution(call(2, "openai", true))));
    // Feedback may come days later: it lands on the execution's day.
    routing.apply(&envelope(2, NEXT_DAY, feedback(1, Some(5), Some(true))));
    routing.apply(&envelope(3, NEXT_DAY, feedback(2, Some(2), Some(false))));
    routing.apply(&envelope(4, NEXT_DAY, feedback(2, None, None)));
    routing.apply(&envelope(5, NEXT_DAY, feedback(77, Some(1), None)));
    let row = row(&routing, "openai", "coding", "2027-01-15");
    assert_eq!((row.feedback, row.accepted, row.rejected), (3, 1, 1));
    assert_eq!(row.view().mean_rating, Some(3.5));
    assert_eq!(routing.model().feedback_total, 4);
    assert_eq!(routing.model().feedback_unmatched, 1);
}

#[test]
fn a_call_without_a_provider_is_counted_under_none() {
    let mut routing = Routing::new();
    let event = execution(Call {
        provider: None,
        estimate: 0,
        actual: 0,
        ..call(1, "x", false)
    });
    routing.apply(&envelope(0, 0, event));
    let days = routing
        .provider(NO_PROVIDER)
        .and_then(|m| m.get(NO_PROVIDER))
        .and_then(|c| c.get("coding"))
        .expect("row");
    let row = days.get("2027-01-15").expect("day");
    assert_eq!((row.requests, row.successes), (1, 0));
    assert_eq!(row.view().cost_ratio, None);
}

#[test]
fn the_join_index_is_bounded_and_rebuilt_on_restore() {
    let mut routing = Routing::new();
    for id in 0..(RECENT_REQUESTS_MAX as u128 + 10) {
        routing.apply(&envelope(id as u64, 0, execution(call(id, "openai", true))));
    }
    assert_eq!(routing.model().recent_requests.len(), RECENT_REQUESTS_MAX);
    assert!(!routing
        .model()
        .recent_requests
        .contains_key(&Uuid::from_u128(9)));
    assert!(routing
        .model()
        .recent_requests
        .contains_key(&Uuid::from_u128(10)));
    let mut restored = Routing::new();
    restored.restore(routing.model().clone());
    let next = RECENT_REQUESTS_MAX as u128 + 10;
    restored.apply(&envelope(
        next as u64,
        0,
        execution(call(next, "openai", true)),
    ));
    assert_eq!(restored.model().recent_requests.len(), RECENT_REQUESTS_MAX);
    assert!(!restored
        .model()
        .recent_requests
        .contains_key(&Uuid::from_u128(10)));
    // Feedback on a forgotten request is counted, not joined.
    restored.apply(&envelope(next as u64 + 1, 0, feedback(3, Some(5), None)));
    assert_eq!(restored.model().feedback_unmatched, 1);
}

#[test]
fn narrowing_keeps_one_provider() {
    let mut routing = Routing::new();
    routing.apply(&envelope(0, 0, execution(call(1, "openai", true))));
    routing.apply(&envelope(1, 0, execution(call(2, "groq", true))));
    let groq = routing.narrowed(&ViewFilter::Provider("groq".into()));
    assert_eq!(groq.model().providers.keys().collect::<Vec<_>>(), ["groq"]);
    assert_eq!(groq.model().executions_total, 2);
    assert!(groq.model().recent_requests.is_empty());
}

fn scenario() -> Vec<Envelope> {
    let events = [
        execution(Call {
            quality: Some(12.5),
            ..call(1, "openai", true)
        }),
        execution(call(2, "groq", false)),
        feedback(1, Some(4), Some(true)),
        execution(Call {
            category: "math",
            ..call(3, "openai", true)
        }),
        feedback(2, None, Some(false)),
        feedback(9, Some(1), None),
        execution(call(1, "openai", true)),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| envelope(i as u64, i as i64 * 20_000, e))
        .collect()
}

#[test]
fn folding_across_a_snapshot_restore_equals_one_fold() {
    assert_restore_equivalence(Routing::new, &scenario());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_routing_history_survives_restore(raw in proptest::collection::vec((any::<bool>(), 0u128..8, 0u8..2, any::<bool>(), proptest::option::of(0.0f64..100.0), 0i64..200_000), 0..50)) {
        let mut events: Vec<Envelope> = Vec::new();
        let mut second = 0;
        for (index, (is_feedback, id, provider, success, quality, step)) in raw.into_iter().enumerate() {
            second += step;
            let provider = ["openai", "groq"][usize::from(provider)];
            let event = if is_feedback {
                feedback(id, quality.map(|q| (q as u8 % 5) + 1), Some(success))
            } else {
                execution(Call { quality, ..call(id, provider, success) })
            };
            events.push(envelope(index as u64, second, event));
        }
        assert_restore_equivalence(Routing::new, &events);
    }
}

#[test]
#[ignore = "measurement: cargo test -p tutorlog-projections --release --lib routing -- --ignored --nocapture"]
fn snapshot_size_with_a_full_join_index() {
    let mut routing = Routing::new();
    for index in 0..(RECENT_REQUESTS_MAX as u128) {
        let id = Uuid::now_v7().as_u128();
        let event = execution(call(id, ["openai", "groq"][index as usize % 2], true));
        routing.apply(&envelope(index as u64, index as i64, event));
    }
    let started = std::time::Instant::now();
    let json = serde_json::to_vec(routing.model()).expect("json");
    let written = started.elapsed();
    let started = std::time::Instant::now();
    let back: RoutingModel = serde_json::from_slice(&json).expect("back");
    eprintln!(
        "routing snapshot with {} recent requests: {} bytes, serialized in {written:?}, parsed in {:?}",
        back.recent_requests.len(),
        json.len(),
        started.elapsed()
    );
}
