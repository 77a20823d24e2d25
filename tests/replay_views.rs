//! `tutorlog replay` for the provider-side views (spend, provider_health,
//! benchmarks, routing), with filters, `--until` and `--format table`: events are
//! written straight into an embedded log, the real binary replays them, and its
//! JSON must equal the library's document for the same fold byte for byte. Then a
//! daemon started on the same data serves the same documents at
//! `GET /api/v1/views/{name}`.

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;
use tutorlog::views::view_document;
use tutorlog_projections::{
    replay_until, Benchmarks, Projection, ProviderHealth, Routing, Spend, Until,
};
use tutorlog_schemas::{
    events::{
        BenchmarkResultRecorded, BenchmarkRunCompleted, BenchmarkRunScheduled, BenchmarkRunStarted,
        BudgetCommitted, BudgetExceeded, BudgetLimitChanged, BudgetLimitKind, BudgetReleased,
        BudgetReserved, CallSource, CircuitClosed, CircuitHalfOpened, CircuitOpened, ErrorKind,
        Event, ExecutionRecorded, FeedbackRecorded, ProviderQueryCompleted, ProviderQueryFailed,
        ProviderSelected, TrainingStarted,
    },
    NewEvent,
};
use tutorlog_store::{EmbeddedStore, EventStore, ExpectedRevision};
use uuid::Uuid;

mod support;

use support::{blocking::Serve, free_port, BIN};

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn reserve(request: u128, estimate: u64, user: &str, session: &str) -> Event {
    Event::BudgetReserved(BudgetReserved {
        request_id: id(request),
        model: "gpt-4o-mini".into(),
        estimate_micros: estimate,
        period: "2027-01".into(),
        user_id: Some(user.into()),
        session_id: Some(session.into()),
    })
}

fn commit(request: u128, actual: u64) -> Event {
    Event::BudgetCommitted(BudgetCommitted {
        request_id: id(request),
        actual_micros: actual,
        input_tokens: 100,
        output_tokens: 50,
        price_version: "v1".into(),
        period: "2027-01".into(),
    })
}

fn limit(monthly: u64) -> Event {
    Event::BudgetLimitChanged(BudgetLimitChanged {
        monthly_micros: monthly,
        per_request_micros: 0,
    })
}

fn query_ok(latency: u64) -> Event {
    Event::ProviderQueryCompleted(ProviderQueryCompleted {
        request_id: id(u128::from(latency)),
        model: "gpt-4o-mini".into(),
        latency_micros: latency,
        trial: false,
    })
}

fn execution(request: u128, provider: &str, success: bool, quality: Option<f64>) -> Event {
    Event::ExecutionRecorded(ExecutionRecorded {
        request_id: id(request),
        source: CallSource::OpenAi,
        provider: Some(provider.into()),
        model: Some("gpt-4o-mini".into()),
        category: "coding".into(),
        session_id: Some("s1".into()),
        user_id: Some("ada".into()),
        success,
        attempts: 1,
        streamed: false,
        duration_micros: 20_000,
        quality,
        cost_estimate_micros: 300_000,
        cost_actual_micros: 250_000,
        input_tokens: 100,
        output_tokens: 50,
        error_kind: (!success).then_some(ErrorKind::Server),
        request_messages: None,
        response_text: None,
    })
}

fn bench_result(provider: &str, quality: f64) -> Event {
    Event::BenchmarkResultRecorded(BenchmarkResultRecorded {
        run_id: id(500),
        provider: provider.into(),
        model: "m".into(),
        category: "coding".into(),
        test_id: "coding-1".into(),
        quality,
        latency_micros: 40_000,
        cost_micros: 10,
        success: true,
        error_kind: None,
    })
}

/// Every event type the four views fold, in several appends (so they carry
/// increasing times). Returns the position of the first event after the January
/// reservation of request 1 and before its commit.
async fn write_log(store: &EmbeddedStore) -> u64 {
    let budget = vec![
        limit(10_000_000),
        reserve(1, 300_000, "ada", "s1"),
        reserve(2, 200_000, "bob", "s2"),
    ];
    append(store, "budget-openai", budget).await;
    let before_commit = store.last_position().expect("written");
    let budget = vec![
        commit(1, 250_000),
        Event::BudgetReleased(BudgetReleased {
            request_id: id(2),
            reason: "provider_error".into(),
            period: "2027-01".into(),
        }),
        Event::BudgetExceeded(BudgetExceeded {
            request_id: id(3),
            estimate_micros: 20_000_000,
            limit: BudgetLimitKind::Monthly,
            limit_micros: 10_000_000,
            remaining_micros: 9_750_000,
            period: "2027-01".into(),
        }),
    ];
    append(store, "budget-openai", budget).await;
    let free = vec![limit(0), reserve(4, 0, "ada", "s1"), commit(4, 0)];
    append(store, "budget-ollama", free).await;
    let circuit = vec![
        query_ok(10_000),
        query_ok(30_000),
        query_ok(20_000),
        Event::ProviderQueryFailed(ProviderQueryFailed {
            request_id: id(9),
            model: "gpt-4o-mini".into(),
            latency_micros: 5,
            error_kind: ErrorKind::Timeout,
            message: "no answer in 30 s".into(),
            trial: false,
        }),
        Event::CircuitOpened(CircuitOpened {
            cause: "failure_threshold".into(),
            failures: 5,
            last_error: ErrorKind::Timeout,
            open_secs: 60,
            retry_at: chrono::DateTime::<chrono::Utc>::from_timestamp(1_800_000_060, 0)
                .expect("valid"),
        }),
        Event::CircuitHalfOpened(CircuitHalfOpened {
            cause: "open_timeout_elapsed".into(),
            max_trial_calls: 3,
        }),
        Event::CircuitClosed(CircuitClosed {
            cause: "trial_successes".into(),
            successes: 2,
        }),
    ];
    append(store, "circuit-openai", circuit).await;
    append(store, "circuit-ollama", vec![query_ok(1_000)]).await;
    let request = vec![
        Event::ProviderSelected(ProviderSelected {
            request_id: id(1),
            session_id: Some("s1".into()),
            user_id: Some("ada".into()),
            category: "coding".into(),
            requested_model: "auto".into(),
            candidates: Vec::new(),
            chosen_provider: Some("openai".into()),
            chosen_model: Some("gpt-4o-mini".into()),
            reason: "best_score".into(),
        }),
        execution(1, "openai", true, Some(90.0)),
        Event::FeedbackRecorded(FeedbackRecorded {
            request_id: id(1),
            rating: Some(5),
            accepted: Some(true),
            quality: None,
            comment: None,
        }),
    ];
    append(store, &format!("request-{}", id(1)), request).await;
    append(
        store,
        &format!("request-{}", id(2)),
        vec![execution(2, "ollama", false, None)],
    )
    .await;
    let benchmarks = vec![
        Event::BenchmarkRunScheduled(BenchmarkRunScheduled {
            run_id: id(500),
            trigger: "manual".into(),
            categories: vec!["coding".into()],
            providers: vec!["openai".into(), "ollama".into()],
        }),
        Event::BenchmarkRunStarted(BenchmarkRunStarted {
            run_id: id(500),
            tests: 3,
        }),
        bench_result("openai", 80.0),
        bench_result("openai", 100.0),
        bench_result("ollama", 50.0),
        Event::BenchmarkRunCompleted(BenchmarkRunCompleted {
            run_id: id(500),
            results: 3,
            failures: 0,
            duration_micros: 1_000_000,
        }),
    ];
    append(store, "benchmarks", benchmarks).await;
    for user in ["ada", "bob"] {
        let started = Event::TrainingStarted(TrainingStarted {
            session_id: Uuid::now_v7(),
            user_id: user.into(),
            focus_area: "algebra".into(),
            rounds: 5,
            provider_plan: Vec::new(),
        });
        append(store, &format!("learner-{user}"), vec![started]).await;
    }
    before_commit
}

async fn append(store: &EmbeddedStore, stream: &str, events: Vec<Event>) {
    let events = events
        .iter()
        .map(|event| NewEvent::from_event(event).expect("encode"))
        .collect();
    store
        .append(stream, ExpectedRevision::Any, events)
        .await
        .expect("append");
    // A later append gets a later `recorded_at`, for `--until TIME`.
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn run_replay(data: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("replay")
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("TUTORLOG_LOG", "warn")
        .env_remove("TUTORLOG_STORE")
        .output()
        .expect("run replay")
}

fn replay_ok(data: &Path, extra: &[&str]) -> String {
    let output = run_replay(data, extra);
    assert!(
        output.status.success(),
        "replay {extra:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

fn replay_json(data: &Path, extra: &[&str]) -> Value {
    serde_json::from_str(&replay_ok(data, extra)).expect("replay prints JSON")
}

fn replay_refused(data: &Path, extra: &[&str], mentions: &str) {
    let output = run_replay(data, extra);
    assert!(!output.status.success(), "{extra:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line of error for {extra:?}: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(mentions),
        "{extra:?}: {stderr:?} should mention {mentions:?}"
    );
    assert!(output.stdout.is_empty());
}

/// The library's document for `projection` folded up to `until`.
async fn library_document<P: Projection>(
    store: &EmbeddedStore,
    projection: P,
    until: Until,
) -> String {
    let replayed = replay_until(store, projection, until)
        .await
        .expect("replay");
    let document = view_document(&replayed.projection, replayed.next_position).expect("view");
    serde_json::to_string(&document).expect("json")
}

fn check_full_views(data: &Path) {
    let spend = replay_json(data, &["--view", "spend"]);
    let january = &spend["view"]["providers"]["openai"]["periods"]["2027-01"];
    assert_eq!(january["limit_micros"], 10_000_000);
    assert_eq!(january["reserved_micros"], 0);
    assert_eq!(january["committed_micros"], 250_000);
    assert_eq!(january["remaining_micros"], 9_750_000);
    assert_eq!(january["percent_used"], 2.5);
    assert_eq!(january["counts"]["exceeded"], 1);
    assert_eq!(january["counts"]["releases"], 1);
    let free = &spend["view"]["providers"]["ollama"]["periods"]["2027-01"];
    assert_eq!(
        (&free["free"], &free["limit_micros"]),
        (&Value::Bool(true), &Value::from(0))
    );
    assert_eq!(spend["view"]["users"]["ada"]["requests"], 2);
    assert_eq!(spend["view"]["sessions"]["s1"]["committed_micros"], 250_000);

    let health = replay_json(data, &["--view", "provider_health"]);
    let openai = &health["view"]["providers"]["openai"];
    assert_eq!(openai["state"], "closed");
    assert_eq!(openai["calls"], 4);
    assert_eq!(openai["error_rate"], 0.25);
    assert_eq!(openai["latency_p50_micros"], 20_000);
    assert_eq!(openai["latency_p99_micros"], 30_000);
    assert_eq!(openai["last_failure"]["kind"], "timeout");
    assert_eq!(openai["times_opened"], 1);

    let benchmarks = replay_json(data, &["--view", "benchmarks"]);
    let coding = &benchmarks["view"]["latest"]["openai"]["coding"];
    assert_eq!(
        (&coding["mean_quality"], &coding["tests"]),
        (&Value::from(90.0), &Value::from(2))
    );
    assert_eq!(coding["run_completed"], true);
    assert_eq!(benchmarks["view"]["runs"][0]["status"], "completed");

    let routing = replay_json(data, &["--view", "routing"]);
    let days = routing["view"]["providers"]["openai"]["gpt-4o-mini"]["coding"]
        .as_object()
        .expect("days");
    let row = days.values().next().expect("one day");
    assert_eq!(
        (&row["requests"], &row["feedback"]),
        (&Value::from(1), &Value::from(1))
    );
    assert_eq!(row["mean_quality"], 90.0);
    assert_eq!(row["cost_ratio"], 250_000.0 / 300_000.0);
    assert_eq!(routing["view"]["executions_total"], 2);
}

fn check_filters(data: &Path) {
    let openai = replay_json(data, &["--view", "provider_health", "--provider", "openai"]);
    let providers = openai["view"]["providers"].as_object().expect("providers");
    assert_eq!(providers.keys().collect::<Vec<_>>(), ["openai"]);
    assert_eq!(openai["filter"]["provider"], "openai");
    for view in ["spend", "benchmarks", "routing"] {
        let key = if view == "benchmarks" {
            "latest"
        } else {
            "providers"
        };
        let narrowed = replay_json(data, &["--view", view, "--provider", "ollama"]);
        let keys: Vec<String> = narrowed["view"][key]
            .as_object()
            .expect("map")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["ollama"], "{view}");
    }
    let ada = replay_json(data, &["--view", "spend", "--user", "ada"]);
    let users: Vec<&String> = ada["view"]["users"]
        .as_object()
        .expect("users")
        .keys()
        .collect();
    assert_eq!(users, ["ada"]);
    assert!(ada["view"]["providers"]
        .as_object()
        .expect("providers")
        .is_empty());
    let ada = replay_json(data, &["--view", "mastery", "--user", "ada"]);
    let learners: Vec<&String> = ada["view"]["learners"]
        .as_object()
        .expect("learners")
        .keys()
        .collect();
    assert_eq!(learners, ["ada"]);
    // --stream folds one stream only: the free provider's budget.
    let one = replay_json(data, &["--view", "spend", "--stream", "budget-ollama"]);
    let providers = one["view"]["providers"].as_object().expect("providers");
    assert_eq!(providers.keys().collect::<Vec<_>>(), ["ollama"]);
    let full = replay_json(data, &["--view", "spend"]);
    assert_eq!(one["next_position"], full["next_position"]);
    let stats = replay_json(data, &["--view", "stream_stats", "--stream", "benchmarks"]);
    assert_eq!(stats["view"]["events_total"], 6);
}

fn check_refusals(data: &Path) {
    replay_refused(data, &["--view", "nope"], "unknown view");
    replay_refused(
        data,
        &["--view", "stream_stats", "--user", "ada"],
        "--user does not apply to view stream_stats",
    );
    replay_refused(
        data,
        &["--view", "routing", "--user", "ada"],
        "--user does not apply to view routing",
    );
    replay_refused(
        data,
        &["--view", "mastery", "--provider", "openai"],
        "--provider does not apply",
    );
    replay_refused(
        data,
        &["--view", "spend", "--user", "ada", "--provider", "openai"],
        "alternatives",
    );
    replay_refused(
        data,
        &["--view", "spend", "--until", "yesterday"],
        "--until",
    );
    let output = Command::new(BIN)
        .args([
            "replay",
            "--view",
            "spend",
            "--data-dir",
            "/nonexistent/tutorlog",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
}

fn check_tables(data: &Path) {
    for (view, header) in [
        ("stream_stats", "EVENT TYPE"),
        ("mastery", "FOCUS AREA"),
        ("algo_runs", "TRIGGER"),
        ("spend", "REMAINING"),
        ("provider_health", "P99 MS"),
        ("benchmarks", "QUALITY"),
        ("routing", "ACTUAL USD"),
    ] {
        let table = replay_ok(data, &["--view", view, "--format", "table"]);
        assert!(
            table.starts_with(&format!("{view} as of next_position")),
            "{table}"
        );
        assert!(table.contains(header), "{view}: {table}");
    }
    let spend = replay_ok(data, &["--view", "spend", "--format", "table"]);
    assert!(
        spend.contains("10.000000") && spend.contains("0.250000") && spend.contains("free"),
        "{spend}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_prints_every_provider_view_as_the_library_folds_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let store = EmbeddedStore::open(data.join("log")).expect("open log");
    let before_commit = write_log(&store).await;
    let last = store.last_position().expect("written");
    let events = store.read_all(0, 1_000).await.expect("read");

    // The binary's JSON is the library's document, byte for byte, for every view
    // and bound.
    let middle_time = events[before_commit as usize].recorded_at;
    let last_by_time = events
        .iter()
        .filter(|e| e.recorded_at <= middle_time)
        .map(|e| e.position)
        .max()
        .expect("some");
    for (until, flag) in [
        (Until::Position(u64::MAX), None),
        (
            Until::Position(before_commit),
            Some(before_commit.to_string()),
        ),
        (Until::Time(middle_time), Some(middle_time.to_rfc3339())),
    ] {
        let mut args = Vec::new();
        if let Some(flag) = &flag {
            args.extend(["--until", flag.as_str()]);
        }
        let run = |view: &'static str| {
            let mut with_view = vec!["--view", view];
            with_view.extend(args.iter().copied());
            replay_ok(&data, &with_view)
        };
        assert_eq!(
            run("spend"),
            library_document(&store, Spend::new(), until).await
        );
        assert_eq!(
            run("provider_health"),
            library_document(&store, ProviderHealth::new(), until).await
        );
        assert_eq!(
            run("benchmarks"),
            library_document(&store, Benchmarks::new(), until).await
        );
        assert_eq!(
            run("routing"),
            library_document(&store, Routing::new(), until).await
        );
    }
    // As of the reservations, before the commit: 500,000 reserved, nothing spent.
    let early = replay_json(
        &data,
        &["--view", "spend", "--until", &before_commit.to_string()],
    );
    assert_eq!(early["next_position"], before_commit + 1);
    let january = &early["view"]["providers"]["openai"]["periods"]["2027-01"];
    assert_eq!(
        (&january["reserved_micros"], &january["committed_micros"]),
        (&Value::from(500_000), &Value::from(0))
    );
    let by_time = replay_json(
        &data,
        &["--view", "spend", "--until", &middle_time.to_rfc3339()],
    );
    assert_eq!(by_time["next_position"], last_by_time + 1);
    assert_eq!(
        replay_json(&data, &["--view", "routing"])["next_position"],
        last + 1
    );
    store.close();
    // The lock file goes with the last handle; the daemon below needs it.
    drop(store);

    check_full_views(&data);
    check_filters(&data);
    check_refusals(&data);
    check_tables(&data);

    // The daemon serves the same documents (it appends `config.applied` on start,
    // which these views do not fold, so compare at the daemon's position).
    let mut daemon = Serve::start(&data, free_port(), &[]);
    for view in ["spend", "provider_health", "benchmarks", "routing"] {
        let live = daemon.get_ok(&format!("/api/v1/views/{view}?min_position={last}"));
        let next = serde_json::from_str::<Value>(&live).expect("json")["next_position"]
            .as_u64()
            .expect("next_position");
        assert!(daemon.is_running(), "daemon exited");
        let offline = replay_ok(&data, &["--view", view, "--until", &(next - 1).to_string()]);
        assert_eq!(offline, live, "{view}");
    }
    let (status, body) = daemon.get_text("/api/v1/views/nope");
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("routing"),
        "the error lists the views: {body}"
    );
}
