//! Provider faults under concurrent load: two mock providers behind the gateway,
//! one of them ("flaky", tried first) switched live (`POST /mock/config`) through
//! every fault the mock has (HTTP 500, 429, malformed JSON, truncated answers,
//! hangs, slow drips), then failing outright and recovering, while clients send
//! streamed and whole requests, pinned to it and routed (`auto`), at once.
//!
//! - no request hangs: a whole answer comes within the provider's timeout (pinned)
//!   or the sum of both providers' timeouts (`auto` fails over once), plus slack;
//!   a stream's first byte likewise, and no gap between its chunks is longer than
//!   the timeout plus slack; every stream ends (`[DONE]` or an `error` event);
//! - once idle, every reservation is committed or released (the spend view and
//!   the `budget-*` streams hold no open reservation);
//! - the spend reconciles exactly (to the micro-USD, so to the cent) with the
//!   mocks' own count of served tokens (`/mock/stats`) × prices: the commits of
//!   calls the provider answered whole carry exactly the tokens it served; what a
//!   broken stream was charged on top (the gateway charges what it saw when a
//!   stream breaks, which the mock does not count as served) is reported apart
//!   and must match the failed streamed calls in the log;
//! - the breaker opens on consecutive failures and closes again after the mock
//!   recovers (`circuit.opened` → `circuit.half_opened` → `circuit.closed`).
//!
//! Short mode: 2.5 s per fault, one open/close cycle. Long
//! (`TUTORLOG_FAULTS_LONG=1`): 20 s per fault, three cycles.

#[path = "faults/common.rs"]
mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    client, gateway_toml, log_events, provider_toml_with, MockProvider, Mode, Rng, Serve, API_KEY,
    PRICE_MICROS,
};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The flaky provider's timeout.
const FLAKY_TIMEOUT: Duration = Duration::from_millis(800);
/// The steady provider's timeout.
const STEADY_TIMEOUT: Duration = Duration::from_millis(2_000);
/// What a busy 2-core machine may add to any bound ("no hang", not a latency
/// target).
const SLACK: Duration = Duration::from_millis(3_000);
/// Concurrent clients.
const CLIENTS: u64 = 12;

fn config(flaky: &MockProvider, steady: &MockProvider) -> String {
    format!(
        "{}{}{}",
        gateway_toml("strict"),
        provider_toml_with(
            "flaky",
            &flaky.base_url(),
            1,
            1000.0,
            FLAKY_TIMEOUT.as_millis() as u64,
            1
        ),
        provider_toml_with(
            "steady",
            &steady.base_url(),
            2,
            1000.0,
            STEADY_TIMEOUT.as_millis() as u64,
            1
        ),
    )
}

/// What one request saw.
#[derive(Debug, Clone)]
struct Seen {
    phase: &'static str,
    pinned: bool,
    stream: bool,
    status: u16,
    total: Duration,
    first_byte: Duration,
    longest_gap: Duration,
    /// A stream ended with `[DONE]` or an `error` event (whole answers: true).
    ended: bool,
}

/// The bounds a request must keep.
fn check_bounds(seen: &Seen) -> Result<(), String> {
    let whole_bound = if seen.pinned {
        FLAKY_TIMEOUT + SLACK
    } else {
        FLAKY_TIMEOUT + STEADY_TIMEOUT + SLACK
    };
    if !seen.stream && seen.total > whole_bound {
        return Err(format!(
            "a whole answer took {:?} > {whole_bound:?}: {seen:?}",
            seen.total
        ));
    }
    if seen.stream {
        if seen.first_byte > whole_bound {
            return Err(format!(
                "a stream's first byte took {:?} > {whole_bound:?}: {seen:?}",
                seen.first_byte
            ));
        }
        let gap_bound = FLAKY_TIMEOUT.max(STEADY_TIMEOUT) + SLACK;
        if seen.longest_gap > gap_bound {
            return Err(format!(
                "a stream was silent for {:?} > {gap_bound:?}: {seen:?}",
                seen.longest_gap
            ));
        }
        if seen.status == 200 && !seen.ended {
            return Err(format!("a stream never ended: {seen:?}"));
        }
    }
    Ok(())
}

async fn one_request(
    url: &str,
    phase: &'static str,
    pinned: bool,
    stream: bool,
    text: &str,
) -> Seen {
    let body = json!({
        "model": if pinned { "flaky/mock-1" } else { "auto" },
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 16,
        "stream": stream,
    });
    let started = Instant::now();
    let response = client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await;
    let mut seen = Seen {
        phase,
        pinned,
        stream,
        status: 0,
        total: Duration::ZERO,
        first_byte: Duration::ZERO,
        longest_gap: Duration::ZERO,
        ended: !stream,
    };
    let Ok(response) = response else {
        seen.total = started.elapsed();
        return seen;
    };
    seen.status = response.status().as_u16();
    seen.first_byte = started.elapsed();
    let mut last = Instant::now();
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let now = Instant::now();
        seen.longest_gap = seen.longest_gap.max(now - last);
        last = now;
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => break,
        }
    }
    seen.total = started.elapsed();
    if stream {
        seen.ended = text.contains("data: [DONE]") || text.contains("\"error\"");
    }
    seen
}

/// Clients sending until `stop`; every answer goes to `seen`.
fn spawn_clients(
    url: &str,
    seed: u64,
    phase: Arc<Mutex<&'static str>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|client_index| {
            let url = url.to_owned();
            let phase = Arc::clone(&phase);
            let stop = Arc::clone(&stop);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut rng = Rng::new(seed ^ client_index);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let pinned = rng.range(0, 3) == 0;
                    let stream = rng.range(0, 2) == 0;
                    let text = format!(
                        "client {client_index} question {n}: explain {}",
                        "x".repeat(rng.range(0, 40) as usize)
                    );
                    let current = *phase.lock();
                    let result = one_request(&url, current, pinned, stream, &text).await;
                    seen.lock().push(result);
                    n += 1;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_never_hang_and_spend_reconciles_with_what_was_served() {
    let mode = Mode::from_env("faults_provider");
    let per_fault = if mode.long {
        Duration::from_secs(20)
    } else {
        Duration::from_millis(2_500)
    };
    let breaker_cycles = mode.cycles(1, 3);
    let started = Instant::now();
    let flaky = MockProvider::start(&["--seed", &mode.seed.to_string()]);
    let steady = MockProvider::start(&["--latency-ms", "5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(
        dir.path(),
        &dir.path().join("data"),
        &config(&flaky, &steady),
    )
    .await
    .expect("daemon starts");

    let phase = Arc::new(Mutex::new("healthy"));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let clients = spawn_clients(
        &serve.url,
        mode.seed,
        Arc::clone(&phase),
        Arc::clone(&stop),
        Arc::clone(&seen),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;

    let faults: [(&'static str, Value); 6] = [
        ("http500", json!({"fault": "http500", "error_rate": 0.5})),
        ("http429", json!({"fault": "http429", "error_rate": 0.5})),
        (
            "malformed",
            json!({"fault": "malformed", "error_rate": 0.5}),
        ),
        ("truncate", json!({"fault": "truncate", "error_rate": 0.5})),
        ("hang", json!({"fault": "hang", "error_rate": 0.3})),
        // 16 tokens × 100 ms: a whole answer outlasts the 800 ms timeout; a
        // stream's chunks come well within it.
        (
            "drip",
            json!({"fault": "drip", "error_rate": 0.5, "drip_ms": 100}),
        ),
    ];
    for (name, settings) in &faults {
        *phase.lock() = name;
        flaky.configure(settings).await;
        tokio::time::sleep(per_fault).await;
    }
    // The breaker: every call fails, it opens; the mock recovers, it closes.
    let mut transitions = Vec::new();
    for cycle in 0..breaker_cycles {
        *phase.lock() = "down";
        flaky
            .configure(&json!({"fault": "http500", "error_rate": 1.0}))
            .await;
        wait_for_circuit(&serve, "open", Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("breaker cycle {cycle}: {e}"));
        *phase.lock() = "recovering";
        flaky.configure(&json!({"error_rate": 0.0})).await;
        wait_for_circuit(&serve, "closed", Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("breaker cycle {cycle}: {e}"));
        transitions.push(cycle);
    }
    *phase.lock() = "healthy again";
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }

    let seen = seen.lock().clone();
    let mut failures = Vec::new();
    for request in &seen {
        if let Err(message) = check_bounds(request) {
            failures.push(message);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests broke a bound (seed {}):\n{}",
        failures.len(),
        seen.len(),
        mode.seed,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let statuses = tally(&seen);
    let worst = |keep: &dyn Fn(&Seen) -> bool, of: &dyn Fn(&Seen) -> Duration| {
        seen.iter()
            .filter(|s| keep(s))
            .map(of)
            .max()
            .unwrap_or_default()
    };
    let worst = format!(
        "slowest whole answer pinned {:?} (timeout {FLAKY_TIMEOUT:?}), routed {:?}; slowest first stream byte {:?}; longest silence in a stream {:?}",
        worst(&|s| !s.stream && s.pinned, &|s| s.total),
        worst(&|s| !s.stream && !s.pinned, &|s| s.total),
        worst(&|s| s.stream, &|s| s.first_byte),
        worst(&|s| s.stream, &|s| s.longest_gap),
    );

    // Idle: every reservation closed, then the spend against the mocks' counts.
    let events = wait_until_settled(&serve).await;
    let reconciled = reconcile(&serve, &events, &[("flaky", &flaky), ("steady", &steady)]).await;
    let circuit: Vec<String> = events
        .iter()
        .filter(|e| e["stream"] == "circuit-flaky")
        .filter_map(|e| e["event_type"].as_str())
        .filter(|t| t.starts_with("circuit."))
        .map(str::to_owned)
        .collect();
    let opened = circuit.iter().filter(|t| *t == "circuit.opened").count();
    let closed = circuit.iter().filter(|t| *t == "circuit.closed").count();
    assert!(
        opened >= breaker_cycles as usize && closed >= breaker_cycles as usize,
        "{circuit:?}"
    );
    assert_eq!(
        circuit.last().map(String::as_str),
        Some("circuit.closed"),
        "{circuit:?}"
    );
    common::views_match_replay(&serve)
        .await
        .expect("views equal a replay");
    println!(
        "faults_provider: OK (seed {}): {} requests ({}), none past its bound ({worst}); every reservation closed; {reconciled}; breaker opened {opened}× and closed {closed}×; {:.0} s",
        mode.seed,
        seen.len(),
        statuses,
        started.elapsed().as_secs_f64()
    );
}

fn tally(seen: &[Seen]) -> String {
    let mut by: BTreeMap<(&str, u16), u64> = BTreeMap::new();
    for request in seen {
        *by.entry((request.phase, request.status)).or_default() += 1;
    }
    let mut phases: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((phase, status), count) in by {
        phases
            .entry(phase)
            .or_default()
            .push(format!("{status}×{count}"));
    }
    phases
        .into_iter()
        .map(|(phase, parts)| format!("{phase}: {}", parts.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn wait_for_circuit(serve: &Serve, state: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (_, health) = serve.get_json("/api/v1/provider-health").await?;
        let flaky = health["providers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["provider"] == "flaky"))
            .cloned()
            .unwrap_or(Value::Null);
        if flaky["state"] == state {
            return Ok(());
        }
        last = flaky;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "circuit of flaky not {state} within {within:?}: {last}"
    ))
}

/// Waits until no reservation is open in the log and the spend view has caught
/// up with it; returns the log's events.
async fn wait_until_settled(serve: &Serve) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = log_events(&serve.data_dir).expect("events");
        let (_, spend) = serve
            .get_json(&format!(
                "/api/v1/views/spend?min_position={}",
                events.len() - 1
            ))
            .await
            .expect("spend view");
        let check = common::check_budgets(&spend, &events).expect("budgets add up");
        let open: u64 = check.open.values().sum();
        let caught_up = spend["next_position"].as_u64() == Some(events.len() as u64);
        if open == 0 && caught_up {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{open} reservations still open 30 s after the load stopped: {:?}",
            check.open
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Per provider: the commits of calls it answered whole carry exactly the tokens
/// its mock served; the rest of its committed spend is what broken streams were
/// charged, matching the failed streamed calls recorded in the log.
async fn reconcile(serve: &Serve, events: &[Value], mocks: &[(&str, &MockProvider)]) -> String {
    // request id -> (provider, success, streamed), from execution.recorded.
    let mut outcome: HashMap<String, (String, bool, bool)> = HashMap::new();
    for event in events {
        if event["event_type"] == "execution.recorded" {
            let p = &event["payload"];
            outcome.insert(
                p["request_id"].as_str().unwrap_or("").to_owned(),
                (
                    p["provider"].as_str().unwrap_or("").to_owned(),
                    p["success"] == true,
                    p["streamed"] == true,
                ),
            );
        }
    }
    let (_, spend) = serve.get_json("/api/v1/views/spend").await.expect("spend");
    let mut summary = Vec::new();
    for (provider, mock) in mocks {
        let stream = format!("budget-{provider}");
        let (mut input, mut output, mut whole_micros, mut broken_micros, mut broken) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        for event in events.iter().filter(|e| e["stream"] == stream.as_str()) {
            if event["event_type"] != "budget.committed" {
                continue;
            }
            let p = &event["payload"];
            let id = p["request_id"].as_str().unwrap_or("");
            let actual = p["actual_micros"].as_u64().unwrap_or(0);
            match outcome.get(id) {
                Some((by, true, _)) if by == provider => {
                    input += p["input_tokens"].as_u64().unwrap_or(0);
                    output += p["output_tokens"].as_u64().unwrap_or(0);
                    whole_micros += actual;
                }
                Some((by, false, true)) if by == provider => {
                    broken_micros += actual;
                    broken += 1;
                }
                other => {
                    panic!("{provider}: a commit for {id} whose call is recorded as {other:?}")
                }
            }
        }
        let stats = mock.stats().await;
        let served_in = stats["prompt_tokens_served"]
            .as_u64()
            .expect("prompt tokens");
        let served_out = stats["completion_tokens_served"]
            .as_u64()
            .expect("completion tokens");
        assert_eq!(
            (input, output),
            (served_in, served_out),
            "{provider}: tokens committed for whole answers vs served by the mock ({stats})"
        );
        let served_micros = served_in * PRICE_MICROS.0 + served_out * PRICE_MICROS.1;
        assert_eq!(
            whole_micros, served_micros,
            "{provider}: cost of what was served"
        );
        let committed: u64 = spend["view"]["providers"][provider]["periods"]
            .as_object()
            .map(|periods| {
                periods
                    .values()
                    .filter_map(|p| p["committed_micros"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(
            committed,
            whole_micros + broken_micros,
            "{provider}: the spend view's committed total"
        );
        summary.push(format!(
            "{provider}: ${:.6} committed = ${:.6} served ({served_in} in + {served_out} out tokens) + ${:.6} charged for {broken} broken streams",
            committed as f64 / 1e6,
            served_micros as f64 / 1e6,
            broken_micros as f64 / 1e6
        ));
    }
    summary.join("; ")
}
