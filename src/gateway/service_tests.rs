//! Gateway call-path tests with scripted adapters on the in-memory log.

use tutorlog_actors::SystemClock;
use tutorlog_schemas::Envelope;
use tutorlog_store::MemoryStore;

use super::*;
use crate::config::{CircuitConfig, ModelConfig};
use crate::gateway::testing::Scripted;

fn provider_config(name: &str, priority: u32, monthly_usd: f64) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind: "openai".into(),
        base_url: "http://127.0.0.1:9".into(),
        api_key_env: None,
        priority,
        timeout_ms: 1_000,
        monthly_budget_usd: monthly_usd,
        per_request_budget_usd: 0.0,
        circuit: CircuitConfig::default(),
        models: vec![ModelConfig {
            name: format!("{name}-model"),
            // 1 µ$ per input token, 2 µ$ per output token.
            input_usd_per_mtok: 1.0,
            output_usd_per_mtok: 2.0,
        }],
    }
}

fn options() -> GatewayOptions {
    GatewayOptions {
        mode: ReservationMode::Strict,
        default_max_tokens: 100,
        max_tokens_limit: 1_000,
        record_content: true,
        session_ttl: Duration::from_secs(60),
        // The daemon's default, so these tests see commits held for company.
        hold: tutorlog_store::embedded::LINGER_DEFAULT,
    }
}

async fn start_gateway(
    providers: Vec<(ProviderConfig, Arc<Scripted>)>,
) -> (Gateway, Arc<dyn EventStore>) {
    start_gateway_on(Arc::new(MemoryStore::new()), providers).await
}

async fn start_gateway_on(
    store: Arc<dyn EventStore>,
    providers: Vec<(ProviderConfig, Arc<Scripted>)>,
) -> (Gateway, Arc<dyn EventStore>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut runtimes = Vec::new();
    for (config, adapter) in providers {
        runtimes.push(Arc::new(
            ProviderRuntime::start(&config, adapter, &options(), &store, &clock)
                .await
                .expect("provider starts"),
        ));
    }
    (
        Gateway::from_parts(runtimes, Arc::clone(&store), options()),
        store,
    )
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".into(),
        content: text.into(),
    }]
}

async fn request_events(store: &Arc<dyn EventStore>, id: Uuid) -> Vec<Event> {
    store
        .read_stream(&format!("request-{id}"), 0, 100)
        .await
        .expect("read")
        .iter()
        .map(|r| Envelope::decode(r).expect("decode").payload)
        .collect()
}

/// The budget's totals over every month it has seen. Each test starts on an
/// empty store, so this is the test's own spend, even when the test runs across
/// a month's end (taking `period_of(now)` after the call would then miss it).
fn every_period(
    budget: &tutorlog_actors::providers::budget::BudgetState,
) -> tutorlog_actors::providers::budget::PeriodTotals {
    let mut sum = tutorlog_actors::providers::budget::PeriodTotals::default();
    for totals in budget.periods.values() {
        sum.reserved_micros += totals.reserved_micros;
        sum.committed_micros += totals.committed_micros;
        sum.reservations += totals.reservations;
        sum.commits += totals.commits;
        sum.releases += totals.releases;
        sum.exceeded += totals.exceeded;
    }
    sum
}

#[tokio::test]
async fn a_call_is_priced_from_usage_committed_and_recorded() {
    priced_and_recorded(Arc::new(MemoryStore::new())).await;
}

/// The same call on the embedded log, which takes the call's record detached
/// (its writer reports the outcome; the memory store gives it back to a spawned
/// task): the record is there, whole, after `flush`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_recorded_on_the_embedded_log_is_there_after_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tutorlog_store::EmbeddedStore::open(dir.path()).expect("open");
    priced_and_recorded(Arc::new(store.clone())).await;
    store.close();
}

async fn priced_and_recorded(store: Arc<dyn EventStore>) {
    let adapter = Scripted::ok((10, 20));
    let (gateway, store) =
        start_gateway_on(store, vec![(provider_config("a", 1, 1.0), adapter.clone())]).await;
    let call = Call::new(CallSource::OpenAi, "auto", user("hello"));
    let id = call.request_id;
    let answer = gateway.complete(call).await.expect("answer");
    assert_eq!(answer.provider, "a");
    assert_eq!(answer.cost_micros, 10 + 2 * 20);
    gateway.flush().await;
    let budget = gateway.providers()[0]
        .budget
        .durable_state()
        .await
        .expect("state")
        .state;
    let totals = every_period(&budget);
    assert_eq!(totals.committed_micros, 50);
    assert_eq!(totals.reserved_micros, 0);
    let events = request_events(&store, id).await;
    let types: Vec<_> = events.iter().map(Event::event_type).collect();
    assert_eq!(
        types,
        [
            "provider.selected",
            "provider.query.started",
            "execution.recorded"
        ]
    );
    let Event::ExecutionRecorded(execution) = &events[2] else {
        panic!("execution")
    };
    assert!(execution.success);
    // The estimate bounded the actual cost: input bytes + framing, max_tokens out.
    let estimate = input_tokens_upper_bound(&user("hello")) + 2 * 100;
    assert_eq!(execution.cost_estimate_micros, estimate);
    assert!(execution.cost_actual_micros <= execution.cost_estimate_micros);
    assert_eq!(execution.response_text.as_deref(), Some("fine"));
}

#[tokio::test]
async fn a_failing_provider_fails_over_to_the_next_and_a_bad_request_does_not() {
    let broken = Scripted::failing(ErrorKind::Server);
    let healthy = Scripted::ok((1, 1));
    let (gateway, store) = start_gateway(vec![
        (provider_config("broken", 1, 0.0), broken.clone()),
        (provider_config("healthy", 2, 0.0), healthy.clone()),
    ])
    .await;
    let call = Call::new(CallSource::OpenAi, "auto", user("hi"));
    let id = call.request_id;
    let answer = gateway.complete(call).await.expect("failover");
    assert_eq!((answer.provider.as_str(), answer.attempts), ("healthy", 2));
    gateway.flush().await;
    let started = request_events(&store, id)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::ProviderQueryStarted(_)))
        .count();
    assert_eq!(started, 2);

    let refusing = Scripted::failing(ErrorKind::BadRequest);
    let spare = Scripted::ok((1, 1));
    let (gateway, _) = gateway_pair(refusing.clone(), spare.clone()).await;
    let error = gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect_err("bad request");
    assert!(
        matches!(error, GatewayError::Provider { ref error, .. } if error.kind == ErrorKind::BadRequest)
    );
    assert_eq!(
        spare.calls(),
        0,
        "a request no provider would take is not retried"
    );
}

async fn gateway_pair(
    first: Arc<Scripted>,
    second: Arc<Scripted>,
) -> (Gateway, Arc<dyn EventStore>) {
    start_gateway(vec![
        (provider_config("first", 1, 0.0), first),
        (provider_config("second", 2, 0.0), second),
    ])
    .await
}

#[tokio::test]
async fn five_failures_open_the_circuit_and_traffic_moves_on() {
    let broken = Scripted::failing(ErrorKind::Timeout);
    let healthy = Scripted::ok((1, 1));
    let (gateway, _) = gateway_pair(broken.clone(), healthy.clone()).await;
    // Pinned, so the router cannot steer around the failures.
    for _ in 0..5 {
        let error = gateway
            .complete(Call::new(
                CallSource::OpenAi,
                "first/first-model",
                user("hi"),
            ))
            .await
            .expect_err("provider fails");
        assert_eq!(gateway_error_code(&error), "provider_timeout");
    }
    // The circuit actor decides asynchronously; flush waits for it.
    gateway.flush().await;
    assert!(!gateway.providers()[0].circuit.allows());
    let error = gateway
        .complete(Call::new(
            CallSource::OpenAi,
            "first/first-model",
            user("hi"),
        ))
        .await
        .expect_err("circuit open");
    assert_eq!(gateway_error_code(&error), "no_healthy_provider");
    assert_eq!(broken.calls(), 5, "an open circuit sends nothing");
    let answer = gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect("served");
    assert_eq!(answer.provider, "second");
    assert_eq!(broken.calls(), 5);
}

#[tokio::test]
async fn an_exhausted_budget_is_402_and_a_free_provider_takes_over() {
    // The estimate of "hi" is 13 input tokens + 100 output at 1 and 2 µ$: 213 µ$;
    // each call actually costs 10 + 2·20 = 50 µ$. 300 µ$ afford two calls.
    let dear = Scripted::ok((10, 20));
    let (gateway, _) =
        start_gateway(vec![(provider_config("dear", 1, 0.0003), dear.clone())]).await;
    let first = gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect("first fits");
    assert_eq!(first.cost_micros, 50);
    // 250 left: the second fits, then 200 left < 213: the third does not.
    gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect("second fits");
    let error = gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect_err("exhausted");
    assert!(matches!(error, GatewayError::BudgetExceeded(_)), "{error}");
    assert_eq!(gateway_error_code(&error), "budget_exceeded");

    let free = Scripted::ok((1, 1));
    let (both, _) = start_gateway(vec![
        (provider_config("dear", 1, 0.0001), Scripted::ok((10, 20))),
        (provider_config("free", 2, 0.0), free.clone()),
    ])
    .await;
    let answer = both
        .complete(Call::new(CallSource::OpenAi, "auto", user("hi")))
        .await
        .expect("free provider serves");
    assert_eq!(answer.provider, "free");
}

#[tokio::test]
async fn models_resolve_pinned_bare_or_not_at_all() {
    let (gateway, _) = gateway_pair(Scripted::ok((1, 1)), Scripted::ok((1, 1))).await;
    let answer = gateway
        .complete(Call::new(
            CallSource::OpenAi,
            "second/second-model",
            user("hi"),
        ))
        .await
        .expect("pinned");
    assert_eq!(answer.provider, "second");
    let answer = gateway
        .complete(Call::new(CallSource::OpenAi, "second-model", user("hi")))
        .await
        .expect("bare");
    assert_eq!(answer.provider, "second");
    for unknown in ["nope", "second/nope", "third/x"] {
        let error = gateway
            .complete(Call::new(CallSource::OpenAi, unknown, user("hi")))
            .await
            .expect_err("unknown model");
        assert!(
            matches!(error, GatewayError::ModelNotFound(_)),
            "{unknown}: {error}"
        );
    }
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let (gateway, _) = gateway_pair(Scripted::ok((1, 1)), Scripted::ok((1, 1))).await;
    let cases = [
        (
            Call::new(CallSource::OpenAi, "auto", Vec::new()),
            "messages",
        ),
        (
            Call::new(
                CallSource::OpenAi,
                "auto",
                vec![ChatMessage {
                    role: "robot".into(),
                    content: "x".into(),
                }],
            ),
            "messages",
        ),
        (
            Call {
                max_tokens: Some(0),
                ..Call::new(CallSource::OpenAi, "auto", user("hi"))
            },
            "max_tokens",
        ),
        (
            Call {
                max_tokens: Some(1_001),
                ..Call::new(CallSource::OpenAi, "auto", user("hi"))
            },
            "max_tokens",
        ),
    ];
    for (call, field) in cases {
        match gateway.complete(call).await {
            Err(GatewayError::BadRequest { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected a bad request on {field}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_sticks_to_its_provider() {
    let first = Scripted::ok((1, 1));
    let second = Scripted::ok((1, 1));
    let (gateway, _) = gateway_pair(first.clone(), second.clone()).await;
    // Pin the first call to `second`; the session then stays there on `auto`.
    let mut call = Call::new(
        CallSource::Chat,
        "second/second-model",
        user("explain sorting code"),
    );
    call.session_id = Some("s1".into());
    gateway.complete(call).await.expect("pinned");
    for _ in 0..3 {
        let mut call = Call::new(CallSource::Chat, "auto", user("and merge sort code?"));
        call.session_id = Some("s1".into());
        let answer = gateway.complete(call).await.expect("sticky");
        assert_eq!(answer.provider, "second");
    }
    assert_eq!(first.calls(), 0);
}

#[tokio::test]
async fn benchmark_quality_steers_its_own_category_only() {
    let first = Scripted::ok((1, 1));
    let second = Scripted::ok((1, 1));
    let (gateway, _) = gateway_pair(first.clone(), second.clone()).await;
    gateway.set_benchmark_quality("first", "coding", 40.0);
    gateway.set_benchmark_quality("second", "coding", 95.0);
    gateway.set_benchmark_quality("second", "math", 10.0);
    let coding = Call::new(CallSource::Chat, "auto", user("debug this function"));
    assert_eq!(
        gateway.complete(coding).await.expect("coding").provider,
        "second"
    );
    // `first` has no math score, so it gets the mean of the others' (10): a tie,
    // and the configured priority decides.
    let math = Call::new(CallSource::Chat, "auto", user("Solve 2x+5=15"));
    assert_eq!(
        gateway.complete(math).await.expect("math").provider,
        "first"
    );
    // Nobody has a research score: priority again.
    let research = Call::new(CallSource::Chat, "auto", user("research and compare"));
    assert_eq!(
        gateway.complete(research).await.expect("research").provider,
        "first"
    );
    // A newer score replaces the old one.
    gateway.set_benchmark_quality("first", "coding", 99.0);
    let coding = Call::new(CallSource::Chat, "auto", user("debug this function"));
    assert_eq!(
        gateway.complete(coding).await.expect("coding").provider,
        "first"
    );
    assert_eq!((first.calls(), second.calls()), (3, 1));
}

#[tokio::test]
async fn a_stream_settles_at_its_end_and_a_dropped_one_still_commits() {
    let adapter = Scripted::ok((3, 4));
    let (gateway, store) = start_gateway(vec![(provider_config("a", 1, 1.0), adapter)]).await;
    let call = Call::new(CallSource::OpenAi, "auto", user("stream please"));
    let id = call.request_id;
    let mut stream = gateway.stream(call).await.expect("stream");
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        if let StreamEvent::Delta(delta) = event.expect("event") {
            text.push_str(&delta);
        }
    }
    assert_eq!(text, "fine");
    let dropped = Call::new(CallSource::OpenAi, "auto", user("never read"));
    let dropped_id = dropped.request_id;
    drop(gateway.stream(dropped).await.expect("stream"));
    gateway.flush().await;
    let budget = gateway.providers()[0]
        .budget
        .durable_state()
        .await
        .expect("state")
        .state;
    let totals = every_period(&budget);
    assert_eq!(totals.reserved_micros, 0, "both reservations closed");
    assert_eq!(totals.commits, 2);
    for (request, streamed_ok) in [(id, true), (dropped_id, false)] {
        let events = request_events(&store, request).await;
        let Some(Event::ExecutionRecorded(execution)) = events.last() else {
            panic!("no execution record for {request}")
        };
        assert!(execution.streamed);
        assert_eq!(execution.success, streamed_ok);
    }
    // The client going away is not the provider's fault.
    let circuit = gateway.providers()[0]
        .circuit
        .durable_state()
        .await
        .expect("state")
        .state;
    assert_eq!(circuit.failures, 0);
}

/// A call still running when shutdown begins (its client hung up, or a benchmark
/// run) is answered and its cost committed durably before the budget actor stops;
/// a call after that is refused as unavailable.
#[tokio::test]
async fn shutdown_settles_running_calls_first_and_refuses_new_ones() {
    let adapter = Scripted::slow((10, 20), Duration::from_millis(300));
    let (gateway, store) =
        start_gateway(vec![(provider_config("a", 1, 1.0), adapter.clone())]).await;
    let running = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .complete(Call::new(CallSource::OpenAi, "auto", user("hello")))
                .await
        }
    });
    while adapter.calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gateway.shutdown().await;
    let answer = running.await.expect("join").expect("answered");
    assert_eq!(answer.cost_micros, 10 + 2 * 20);
    let committed: Vec<Event> = store
        .read_stream("budget-a", 0, 100)
        .await
        .expect("read")
        .iter()
        .map(|r| Envelope::decode(r).expect("decode").payload)
        .filter(|e| e.event_type() == "budget.committed")
        .collect();
    assert_eq!(
        committed.len(),
        1,
        "the commit is durable before the actor stopped"
    );
    let refused = gateway
        .complete(Call::new(CallSource::OpenAi, "auto", user("late")))
        .await;
    assert!(
        matches!(refused, Err(GatewayError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(
        adapter.calls(),
        1,
        "the late call never reached the provider"
    );
}
