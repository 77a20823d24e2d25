//! The drivers against a small in-process stand-in for the daemon (the real one
//! is driven in `tests/load_e2e.rs`): chat JSON and SSE, open-loop pacing, the
//! coordinated-omission correction, and the start-up connection check.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use super::{stats::Scenario, *};

const KEY: &str = "sk-test";

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<AtomicU64>,
    /// Call number that stalls, and for how long (ms); 0: none.
    stall_call: u64,
    stall_ms: u64,
    /// Serialises requests so a stall holds everything behind it up.
    gate: Arc<tokio::sync::Mutex<()>>,
}

async fn areas() -> Json<Value> {
    Json(json!({"focus_areas": ["algebra"]}))
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let _serialised = fake.gate.lock().await;
    let call = fake.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if call == fake.stall_call {
        tokio::time::sleep(Duration::from_millis(fake.stall_ms)).await;
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KEY}")) {
        let error =
            json!({"error": {"code": "invalid_api_key", "message": "missing or unknown API key"}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    let id = format!("00000000-0000-7000-8000-{call:012}");
    if body["stream"] == json!(true) {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]});
        let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
        return (
            [
                ("content-type", "text/event-stream"),
                ("x-tutorlog-request-id", id.as_str()),
            ],
            sse,
        )
            .into_response();
    }
    let answer =
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]});
    ([("x-tutorlog-request-id", id.as_str())], Json(answer)).into_response()
}

async fn serve(fake: Fake) -> String {
    let app = Router::new()
        .route("/api/v1/training/focus-areas", get(areas))
        .route("/v1/chat/completions", post(chat))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{address}")
}

fn options(target: String) -> LoadOptions {
    LoadOptions {
        target,
        learners: 8,
        rate: None,
        duration: Duration::from_millis(600),
        warmup: Duration::ZERO,
        mix: Mix([0, 0, 1]),
        concurrency: Some(2),
        rounds: None,
        sessions: None,
        api_key: KEY.into(),
        model: "auto".into(),
        correct_share: 0.7,
        seed: 5,
        record: None,
        progress: false,
    }
}

fn endpoint<'a>(report: &'a Report, label: &str) -> &'a report::EndpointReport {
    report
        .endpoints
        .iter()
        .find(|e| e.endpoint == label)
        .unwrap_or_else(|| panic!("no {label} in {:?}", report.endpoints))
}

#[test]
fn mix_parses_three_weights() {
    assert_eq!("6:2:2".parse::<Mix>(), Ok(Mix([6, 2, 2])));
    assert_eq!(" 1 :0: 0".parse::<Mix>(), Ok(Mix([1, 0, 0])));
    assert_eq!(Mix::default().to_string(), "6:2:2");
    for bad in ["", "1:2", "1:2:3:4", "a:1:1", "-1:1:1", "0:0:0", "1.5:1:1"] {
        assert!(bad.parse::<Mix>().is_err(), "{bad:?}");
    }
}

#[test]
fn options_are_checked() {
    let good = options("http://127.0.0.1:1".into());
    assert_eq!(good.validate().ok(), Some(2));
    let mut open = good.clone();
    open.rate = Some(10.0);
    open.concurrency = None;
    assert_eq!(open.validate().ok(), Some(OPEN_LOOP_IN_FLIGHT_DEFAULT));
    let mut closed = good.clone();
    closed.concurrency = None;
    assert_eq!(closed.validate().ok(), Some(CONCURRENCY_DEFAULT));
    let bad: [fn(&mut LoadOptions); 8] = [
        |o| o.target = "127.0.0.1:8080".into(),
        |o| o.learners = 0,
        |o| o.rate = Some(0.0),
        |o| o.rate = Some(f64::NAN),
        |o| o.duration = Duration::ZERO,
        |o| o.correct_share = 1.5,
        |o| o.rounds = Some(0),
        |o| o.concurrency = Some(0),
    ];
    for change in bad {
        let mut o = good.clone();
        change(&mut o);
        assert!(matches!(o.validate(), Err(LoadError::Invalid(_))), "{o:?}");
    }
}

#[tokio::test]
async fn chat_json_and_streams_are_measured_and_recorded() {
    let target = serve(Fake::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("acks.jsonl");
    let mut opts = options(target);
    opts.record = Some(record.clone());
    let report = run(opts, std::future::pending()).await.expect("run");
    let plain = endpoint(&report, "POST /v1/chat/completions");
    let streamed = endpoint(&report, "POST /v1/chat/completions (stream)");
    let first = endpoint(&report, "POST /v1/chat/completions (stream, first chunk)");
    assert!(plain.requests > 0 && streamed.requests > 0, "{report:?}");
    assert_eq!(first.requests, streamed.requests);
    assert_eq!(report.total.failed, 0, "{report:?}");
    assert_eq!(report.total.requests, plain.requests + streamed.requests);
    assert_eq!(
        report.learning.counters.chats_completed,
        report.total.requests
    );
    assert!(
        report.position_max.is_none(),
        "chat answers carry no position"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&record)
        .expect("record")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, report.total.requests);
    assert_eq!(
        report.record.as_ref().map(|r| r.lines),
        Some(lines.len() as u64)
    );
    for line in &lines {
        assert_eq!(line["endpoint"], "/v1/chat/completions");
        assert_eq!(line["status"], 200);
        assert!(
            line["request_id"].as_str().is_some_and(|id| id.len() == 36),
            "{line}"
        );
        assert!(line["user_id"]
            .as_str()
            .is_some_and(|u| u.starts_with("load5-")));
    }
}

#[tokio::test]
async fn a_refused_key_is_reported_not_fatal() {
    let target = serve(Fake::default()).await;
    let mut opts = options(target);
    opts.api_key = "sk-wrong".into();
    let report = run(opts, std::future::pending()).await.expect("run");
    assert_eq!(report.total.ok, 0);
    assert!(report.total.failed > 0);
    let chat = report.scenarios.first().expect("chat scenario");
    assert_eq!(chat.scenario, Scenario::Chat);
    let unavailable = chat.unavailable.as_deref().unwrap_or_default();
    assert!(
        unavailable.starts_with("401: ") && unavailable.contains("invalid_api_key"),
        "{unavailable}"
    );
    assert!(report.render().contains("UNAVAILABLE: 401"));
}

#[tokio::test]
async fn open_loop_sends_at_the_rate() {
    let target = serve(Fake::default()).await;
    let mut opts = options(target);
    opts.rate = Some(200.0);
    opts.concurrency = None;
    opts.duration = Duration::from_secs(1);
    let report = run(opts, std::future::pending()).await.expect("run");
    assert_eq!(report.run.mode, "open");
    assert_eq!(report.run.scheduled_requests, Some(200));
    assert_eq!(report.total.requests, 200, "every due request is sent");
    assert!(report
        .send_lag
        .is_some_and(|lag| lag.count == report.total.requests));
}

#[tokio::test]
async fn open_loop_latency_shows_a_stall_that_closed_loop_hides() {
    // One call stalls 400 ms while holding up every call behind it.
    let stall = |target_call: u64| Fake {
        stall_call: target_call,
        stall_ms: 400,
        ..Fake::default()
    };
    let mut open = options(serve(stall(20)).await);
    open.rate = Some(100.0);
    open.concurrency = None;
    open.duration = Duration::from_millis(1500);
    let open = run(open, std::future::pending()).await.expect("open run");
    let mut closed = options(serve(stall(20)).await);
    closed.concurrency = Some(1);
    closed.duration = Duration::from_millis(1500);
    let closed = run(closed, std::future::pending())
        .await
        .expect("closed run");
    let p90 = |report: &Report| {
        report
            .endpoints
            .iter()
            .filter(|e| !e.endpoint.contains("first chunk"))
            .map(|e| e.latency.p90_ms)
            .fold(0.0, f64::max)
    };
    // Open loop: the ~40 requests due during the stall wait up to 400 ms each, over
    // 10 % of the 150 sent. Closed loop: one slow request among hundreds.
    assert!(p90(&open) > 100.0, "open p90 {} ms", p90(&open));
    // Relative, not absolute: a loaded machine slows every request alike.
    assert!(
        p90(&closed) < p90(&open) / 2.0,
        "closed p90 {} ms, open p90 {} ms",
        p90(&closed),
        p90(&open)
    );
    let max = |report: &Report| {
        report
            .endpoints
            .iter()
            .map(|e| e.latency.max_ms)
            .fold(0.0, f64::max)
    };
    assert!(max(&open) >= 390.0 && max(&closed) >= 390.0);
}

#[tokio::test]
async fn an_unreachable_target_fails_at_start() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let error = run(
        options(format!("http://127.0.0.1:{port}")),
        std::future::pending(),
    )
    .await
    .expect_err("nothing listens there");
    let text = error.to_string();
    assert!(matches!(error, LoadError::Connect { .. }), "{text}");
    assert!(text.contains("cannot reach the target"), "{text}");
}

#[tokio::test]
async fn a_stop_ends_the_run_early_with_what_was_measured() {
    let target = serve(Fake::default()).await;
    let mut opts = options(target);
    opts.duration = Duration::from_secs(60);
    let report = run(opts, tokio::time::sleep(Duration::from_millis(300)))
        .await
        .expect("run");
    assert!(report.run.stopped_early);
    assert!(
        // Stopped at 0.3 s of a 60 s run; the margin is for a loaded machine.
        report.run.duration_secs < 5.0,
        "{}",
        report.run.duration_secs
    );
    assert!(report.total.requests > 0);
}
