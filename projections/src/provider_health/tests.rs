use super::*;
use crate::test_support::{assert_restore_equivalence, at, envelope_at};
use proptest::prelude::*;
use tutorlog_schemas::events::{
    CircuitClosed, CircuitHalfOpened, CircuitOpened, ProviderPriorityChanged,
    ProviderQueryCompleted,
};

fn ok(latency_micros: u64) -> Event {
    Event::ProviderQueryCompleted(ProviderQueryCompleted {
        request_id: Uuid::from_u128(u128::from(latency_micros)),
        model: "m".into(),
        latency_micros,
        trial: false,
    })
}

fn failed(kind: ErrorKind, message: &str) -> Event {
    Event::ProviderQueryFailed(ProviderQueryFailed {
        request_id: Uuid::from_u128(99),
        model: "m".into(),
        latency_micros: 5,
        error_kind: kind,
        message: message.into(),
        trial: false,
    })
}

fn opened() -> Event {
    Event::CircuitOpened(CircuitOpened {
        cause: "failure_threshold".into(),
        failures: 5,
        last_error: ErrorKind::Server,
        open_secs: 60,
        retry_at: chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_060, 0).expect("valid"),
    })
}

fn half_opened() -> Event {
    Event::CircuitHalfOpened(CircuitHalfOpened {
        cause: "open_timeout_elapsed".into(),
        max_trial_calls: 3,
    })
}

fn closed() -> Event {
    Event::CircuitClosed(CircuitClosed {
        cause: "trial_successes".into(),
        successes: 2,
    })
}

fn fold(health: &mut ProviderHealth, stream: &str, events: Vec<Event>) -> Vec<Envelope> {
    let start = health
        .model()
        .providers
        .values()
        .map(|r| r.calls)
        .sum::<u64>();
    let envelopes: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let position = start + index as u64;
            envelope_at(stream, position, at(position as i64), event)
        })
        .collect();
    for envelope in &envelopes {
        health.apply(envelope);
    }
    envelopes
}

#[test]
fn circuit_transitions_are_followed_with_their_time_and_cause() {
    let mut health = ProviderHealth::new();
    let mut events: Vec<Event> = (0..5).map(|_| failed(ErrorKind::Server, "502")).collect();
    events.extend([opened()]);
    fold(&mut health, "circuit-openai", events);
    let view = health.provider("openai").expect("openai");
    assert_eq!(view.state, CircuitState::Open);
    assert_eq!(view.since, Some(at(5)));
    assert_eq!(view.cause.as_deref(), Some("failure_threshold"));
    assert_eq!(view.times_opened, 1);

    let mut health = ProviderHealth::new();
    let envelopes = [
        envelope_at("circuit-openai", 0, at(0), opened()),
        envelope_at("circuit-openai", 1, at(60), half_opened()),
    ];
    for envelope in &envelopes {
        health.apply(envelope);
    }
    let view = health.provider("openai").expect("openai");
    assert_eq!(
        (view.state, view.since),
        (CircuitState::HalfOpen, Some(at(60)))
    );
    health.apply(&envelope_at("circuit-openai", 2, at(61), ok(10)));
    health.apply(&envelope_at("circuit-openai", 3, at(62), closed()));
    let view = health.provider("openai").expect("openai");
    assert_eq!(
        (view.state, view.since),
        (CircuitState::Closed, Some(at(62)))
    );
    assert_eq!(view.cause.as_deref(), Some("trial_successes"));
    health.apply(&envelope_at("circuit-openai", 4, at(63), opened()));
    assert_eq!(health.provider("openai").expect("p").times_opened, 2);
    let json = health.view().expect("view");
    assert_eq!(json["providers"]["openai"]["state"], "open");
}

#[test]
fn a_provider_never_tripped_is_closed_with_no_since() {
    let mut health = ProviderHealth::new();
    fold(&mut health, "circuit-groq", vec![ok(100)]);
    let view = health.provider("groq").expect("groq");
    assert_eq!((view.state, view.since), (CircuitState::Closed, None));
    assert_eq!((view.calls, view.successes, view.failures), (1, 1, 0));
    assert_eq!(view.error_rate, Some(0.0));
    assert!(health.provider("other").is_none());
}

#[test]
fn error_rate_covers_only_the_last_hundred_calls() {
    let mut health = ProviderHealth::new();
    // 50 failures, then 100 successes: the failures slide out of the window.
    let mut events: Vec<Event> = (0..50)
        .map(|_| failed(ErrorKind::Timeout, "slow"))
        .collect();
    events.extend((1..=100).map(ok));
    fold(&mut health, "circuit-openai", events);
    let view = health.provider("openai").expect("openai");
    assert_eq!((view.calls, view.failures), (150, 50));
    assert_eq!((view.window_calls, view.window_failures), (100, 0));
    assert_eq!(view.error_rate, Some(0.0));
    fold(
        &mut health,
        "circuit-openai",
        (0..25)
            .map(|_| failed(ErrorKind::RateLimited, "429"))
            .collect(),
    );
    let view = health.provider("openai").expect("openai");
    assert_eq!((view.window_calls, view.window_failures), (100, 25));
    assert_eq!(view.error_rate, Some(0.25));
    assert_eq!(view.failures_by_kind.get("timeout"), Some(&50));
    assert_eq!(view.failures_by_kind.get("rate_limited"), Some(&25));
}

#[test]
fn latency_percentiles_of_a_known_sequence() {
    let mut health = ProviderHealth::new();
    // 1..=100 ms in a scrambled order, plus failures (not in the latency window).
    let mut events: Vec<Event> = (0..100u64)
        .map(|i| ok((i * 37 % 100 + 1) * 1_000))
        .collect();
    events.push(failed(ErrorKind::Server, "boom"));
    fold(&mut health, "circuit-openai", events);
    let view = health.provider("openai").expect("openai");
    assert_eq!(view.latency_samples, 100);
    assert_eq!(view.latency_p50_micros, Some(50_000));
    assert_eq!(view.latency_p99_micros, Some(99_000));
    // 1,500 more: only the last 1,000 successes count.
    fold(&mut health, "circuit-openai", (1..=1_500).map(ok).collect());
    let view = health.provider("openai").expect("openai");
    assert_eq!(view.latency_samples, LATENCY_WINDOW_CALLS as u64);
    assert_eq!(view.latency_p50_micros, Some(1_000));
    assert_eq!(view.latency_p99_micros, Some(1_490));
}

#[test]
fn the_last_failure_and_the_priority_are_kept() {
    let mut health = ProviderHealth::new();
    health.apply(&envelope_at(
        "circuit-openai",
        0,
        at(0),
        failed(ErrorKind::Auth, "401"),
    ));
    health.apply(&envelope_at(
        "circuit-openai",
        1,
        at(9),
        failed(ErrorKind::Connect, "refused"),
    ));
    health.apply(&envelope_at(
        "circuit-openai",
        2,
        at(10),
        Event::ProviderPriorityChanged(ProviderPriorityChanged {
            previous: None,
            priority: 3,
        }),
    ));
    let view = health.provider("openai").expect("openai");
    let last = view.last_failure.expect("last failure");
    assert_eq!(
        (last.at, last.kind, last.message.as_str()),
        (at(9), ErrorKind::Connect, "refused")
    );
    assert_eq!(view.priority, Some(3));
    assert_eq!(view.last_call_at, Some(at(9)));
    let json = health.view().expect("view");
    assert_eq!(
        json["providers"]["openai"]["last_failure"]["kind"],
        "connect"
    );
    assert!(json["providers"]["openai"].get("recent_calls").is_none());
}

#[test]
fn other_streams_are_ignored_and_narrowing_keeps_one_provider() {
    let mut health = ProviderHealth::new();
    health.apply(&envelope_at("budget-openai", 0, at(0), ok(1)));
    health.apply(&envelope_at("circuit-", 1, at(1), ok(1)));
    assert!(health.model().providers.is_empty());
    fold(&mut health, "circuit-a", vec![ok(1)]);
    fold(&mut health, "circuit-b", vec![ok(2)]);
    let narrowed = health.narrowed(&ViewFilter::Provider("b".into()));
    assert_eq!(narrowed.model().providers.keys().collect::<Vec<_>>(), ["b"]);
}

fn scenario() -> Vec<Envelope> {
    let events = [
        ok(5),
        failed(ErrorKind::Server, "a"),
        failed(ErrorKind::Server, "b"),
        opened(),
        half_opened(),
        ok(7),
        ok(9),
        closed(),
        Event::ProviderPriorityChanged(ProviderPriorityChanged {
            previous: Some(1),
            priority: 2,
        }),
        failed(ErrorKind::Malformed, "c"),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| envelope_at("circuit-openai", i as u64, at(i as i64), e))
        .collect()
}

#[test]
fn folding_across_a_snapshot_restore_equals_one_fold() {
    assert_restore_equivalence(ProviderHealth::new, &scenario());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_call_history_survives_restore(raw in proptest::collection::vec((0u8..6, 0u8..2, 1u64..10_000), 0..120)) {
        let events: Vec<Envelope> = raw.into_iter().enumerate().map(|(i, (kind, provider, latency))| {
            let event = match kind {
                0 | 1 => ok(latency),
                2 => failed(ErrorKind::Timeout, "t"),
                3 => opened(),
                4 => half_opened(),
                _ => closed(),
            };
            let stream = if provider == 0 { "circuit-a" } else { "circuit-b" };
            envelope_at(stream, i as u64, at(i as i64), event)
        }).collect();
        let mut health = ProviderHealth::new();
        for event in &events {
            health.apply(event);
        }
        for row in health.model().providers.values() {
            prop_assert_eq!(row.calls, row.successes + row.failures);
            prop_assert!(row.recent_calls.len() <= ERROR_WINDOW_CALLS);
        }
        assert_restore_equivalence(ProviderHealth::new, &events);
    }
}
