//! End-to-end gateway tests: the real daemon in front of real mock-provider
//! processes on loopback.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{chat_body, client, gateway_toml, mock_provider_toml, Daemon, Mock, API_KEY};

/// Each call: 10 prompt tokens at 1,000 µ$ + 16 completion tokens at 2,000 µ$.
const CALL_MICROS: u64 = 10 * 1_000 + 16 * 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_provider_opens_its_circuit_fails_over_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flaky = Mock::start(&["--error-rate", "1", "--fault", "http500"]);
    let steady = Mock::start(&[]);
    // The open interval is long enough that the calls and the health check below
    // finish inside it on a loaded CI machine; the half-open rule itself is
    // tested with a paused clock in the circuit decider's tests.
    let open = Duration::from_secs(OPEN_SECS);
    let config = format!(
        "{}{}{}",
        gateway_toml("strict"),
        mock_provider_toml("flaky", &flaky.base_url(), 1, 0.0, OPEN_SECS),
        mock_provider_toml("steady", &steady.base_url(), 2, 0.0, OPEN_SECS),
    );
    let daemon = Daemon::start(dir.path(), &config).await;

    // Every client call succeeds: the first five through a failover.
    let mut served_by = Vec::new();
    for i in 0..5 {
        served_by.push(served(&daemon, &format!("hello {i}")).await);
    }
    assert!(
        served_by.iter().all(|(p, a)| p == "steady" && *a == 2),
        "five failures, each failed over: {served_by:?}"
    );
    // Outcomes reach the circuit actor without the call waiting for it, so the
    // fifth failure opens the circuit a moment after its call was answered.
    let opened_by = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let (_, health) = daemon.get("/api/v1/provider-health").await;
        if health["providers"][0]["state"] == "open" || Instant::now() > opened_by {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let opened_at = Instant::now();
    let flaky_state = &health["providers"][0];
    assert_eq!(flaky_state["provider"], "flaky");
    assert_eq!(flaky_state["state"], "open", "{health}");
    // While it is open, calls go straight to the next provider.
    for i in 0..3 {
        let (provider, attempts) = served(&daemon, &format!("open {i}")).await;
        assert_eq!((provider.as_str(), attempts), ("steady", 1));
    }
    assert!(
        opened_at.elapsed() < open,
        "the open-circuit calls took longer than open_secs; the test cannot tell them apart from half-open trials"
    );

    // The mock recovers; after open_secs trial calls close the circuit.
    let (status, _) = post_json(
        &format!("{}/mock/config", flaky.url),
        &json!({"error_rate": 0.0}),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(open.saturating_sub(opened_at.elapsed()) + Duration::from_millis(200)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut back = false;
    while Instant::now() < deadline {
        served(&daemon, "again").await;
        let (_, health) = daemon.get("/api/v1/provider-health").await;
        if health["providers"][0]["state"] == "closed" {
            back = true;
            break;
        }
    }
    assert!(back, "half-open trials closed the circuit");
    let (provider, _) = served(&daemon, "after").await;
    assert_eq!(provider, "flaky", "priority order again");

    // The transitions are in the log, with their causes. They are published as
    // decided and made durable a moment later, so wait for them, bounded.
    let expected = ["circuit.opened", "circuit.half_opened", "circuit.closed"];
    let mut transitions: Vec<String> = Vec::new();
    for _ in 0..100 {
        let events = daemon.tool(&["events", "--stream", "circuit-flaky"]);
        transitions = events
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|e| e["event_type"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("circuit."))
            .collect();
        if transitions.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(transitions, expected);
    daemon.stop();
}

/// The circuits' open interval in the failover test.
const OPEN_SECS: u64 = 5;

/// Sends one chat completion that must succeed; returns who served it and in
/// how many attempts.
async fn served(daemon: &Daemon, message: &str) -> (String, u64) {
    let (status, body) = daemon
        .post("/v1/chat/completions", &chat_body(message, 16))
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["tutorlog"]["provider"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        body["tutorlog"]["attempts"].as_u64().unwrap_or(0),
    )
}

async fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let response = client().post(url).json(body).send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_calls_never_overspend_a_budget_for_twenty() {
    support::clear_of_month_end(Duration::from_secs(300)).await;
    for mode in ["strict", "fast"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mock = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "16"]);
        let limit_micros = 20 * CALL_MICROS;
        let config = format!(
            "{}{}",
            gateway_toml(mode),
            mock_provider_toml("paid", &mock.base_url(), 1, limit_micros as f64 / 1e6, 60),
        );
        let daemon = Daemon::start(dir.path(), &config).await;
        let http = client();
        let mut calls = Vec::new();
        for i in 0..500 {
            let http = http.clone();
            let url = format!("{}/v1/chat/completions", daemon.url);
            calls.push(tokio::spawn(async move {
                let response = http
                    .post(url)
                    .bearer_auth(API_KEY)
                    .json(&chat_body(&format!("q{i}"), 16))
                    .send()
                    .await
                    .expect("send");
                response.status().as_u16()
            }));
        }
        let mut statuses = std::collections::BTreeMap::new();
        for call in calls {
            *statuses.entry(call.await.expect("task")).or_insert(0) += 1;
        }
        let ok = statuses.get(&200).copied().unwrap_or(0);
        let refused = statuses.get(&402).copied().unwrap_or(0);
        assert!(ok <= 20, "{mode}: {statuses:?}");
        assert!(
            ok >= 15,
            "{mode}: the budget is used, not wasted: {statuses:?}"
        );
        assert_eq!(
            ok + refused,
            500,
            "{mode}: every other call is 402: {statuses:?}"
        );
        // Commits are sent without waiting (the response never waits for them):
        // the spend converges right after the last response.
        let mut spent = 0;
        for _ in 0..100 {
            let (_, status) = daemon.get("/api/v1/budget/status").await;
            spent = (status["providers"][0]["spent_usd"]
                .as_f64()
                .unwrap_or(f64::MAX)
                * 1e6)
                .round() as u64;
            if spent == ok * CALL_MICROS && status["providers"][0]["reserved_usd"] == json!(0.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            spent <= limit_micros,
            "{mode}: spent {spent} of {limit_micros}"
        );
        assert_eq!(
            spent,
            ok * CALL_MICROS,
            "{mode}: priced from the mock's usage"
        );
        // The spend view, live and replayed from the log at the same position, is
        // the same document, byte for byte.
        let last = daemon
            .tool(&["events", "--from", "0"])
            .lines()
            .count()
            .saturating_sub(1);
        let live = http
            .get(format!(
                "{}/api/v1/views/spend?min_position={last}",
                daemon.url
            ))
            .send()
            .await
            .expect("GET spend")
            .text()
            .await
            .expect("body");
        let live_doc: Value = serde_json::from_str(&live).expect("JSON");
        let next = live_doc["next_position"].as_u64().expect("next_position");
        let replayed = daemon.tool(&[
            "replay",
            "--view",
            "spend",
            "--until",
            &(next - 1).to_string(),
        ]);
        assert_eq!(replayed.trim_end(), live, "{mode}: replay equals live");
        let paid = &live_doc["view"]["providers"]["paid"];
        let committed: u64 = paid["periods"]
            .as_object()
            .expect("periods")
            .values()
            .map(|p| p["committed_micros"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(committed, ok * CALL_MICROS, "{mode}: the spend view agrees");
        // The mock's own count of served tokens agrees with the spend.
        let (_, stats) = get_json(&format!("{}/mock/stats", mock.url)).await;
        assert_eq!(
            stats["completion_tokens_served"],
            json!(ok * 16),
            "{mode}: {stats}"
        );
        daemon.stop();
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The Python interpreter with the `openai` package: `TUTORLOG_E2E_PYTHON`, else
/// `python3` if it can import it. CI sets `TUTORLOG_E2E_REQUIRE_PYTHON=1`, which
/// turns a missing client into a failure instead of a skip.
fn python_with_openai() -> Option<String> {
    let candidates = std::env::var("TUTORLOG_E2E_PYTHON").into_iter().chain([
        "target/e2e-venv/bin/python".to_owned(),
        "python3".to_owned(),
    ]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import openai"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        std::env::var("TUTORLOG_E2E_REQUIRE_PYTHON").is_err(),
        "TUTORLOG_E2E_REQUIRE_PYTHON is set but no Python with `openai` was found"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_works_through_the_gateway_and_spend_is_priced() {
    support::clear_of_month_end(Duration::from_secs(300)).await;
    let Some(python) = python_with_openai() else {
        eprintln!("skipped: no Python with the `openai` package (pip install openai, or set TUTORLOG_E2E_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "16"]);
    let config = format!(
        "{}{}",
        gateway_toml("strict"),
        mock_provider_toml("mock", &mock.base_url(), 1, 10.0, 60),
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/openai_client.py");
    let base = format!("{}/v1", daemon.url);
    // Blocking is fine on its own thread: the daemon is another process.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(script)
            .arg(base)
            .arg(API_KEY)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    assert!(
        output.status.success(),
        "openai client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("client JSON");
    let complete = &seen["complete"];
    assert!(
        complete["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("[mock]")),
        "{seen}"
    );
    assert_eq!(complete["model"], "mock/mock-1");
    assert_eq!(
        (
            complete["prompt_tokens"].as_u64(),
            complete["completion_tokens"].as_u64()
        ),
        (Some(10), Some(16))
    );
    let stream = &seen["stream"];
    assert!(stream["chunks"].as_u64().unwrap_or(0) >= 3, "{seen}");
    assert!(
        stream["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("[mock]")),
        "{seen}"
    );
    assert_eq!(
        (
            stream["prompt_tokens"].as_u64(),
            stream["completion_tokens"].as_u64()
        ),
        (Some(10), Some(16))
    );
    assert!(seen["models"]
        .as_array()
        .is_some_and(|m| m.contains(&json!("mock/mock-1"))));
    assert_eq!(seen["unknown_model"], "NotFoundError");

    // Two calls, each priced from the mock's usage.
    let (_, stats) = get_json(&format!("{}/mock/stats", mock.url)).await;
    assert_eq!(stats["completion_tokens_served"], json!(32), "{stats}");
    let mut spent = 0;
    for _ in 0..100 {
        let (_, status) = daemon.get("/api/v1/budget/status").await;
        spent = (status["providers"][0]["spent_usd"].as_f64().unwrap_or(0.0) * 1e6).round() as u64;
        if spent == 2 * CALL_MICROS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(spent, 2 * CALL_MICROS);
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_session_pauses_with_reason_budget_when_feedback_is_unaffordable() {
    support::clear_of_month_end(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Output tokens only are priced: every feedback call reserves and costs exactly
    // 200 × 2,000 µ$ = $0.40; $0.50 pays for one.
    let mock = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "200"]);
    let config = format!(
        "[learning]\nllm_feedback = true\nllm_feedback_max_tokens = 200\n\n{}[[providers]]\nname = \"tutor\"\nkind = \"mock\"\nbase_url = \"{}\"\nmonthly_budget_usd = 0.5\nmodels = [{{ name = \"mock-1\", input_usd_per_mtok = 0.0, output_usd_per_mtok = 2000.0 }}]\n",
        gateway_toml("strict"),
        mock.base_url()
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    let (status, started) = daemon
        .post(
            "/api/v1/training/start",
            &json!({"user_id": "ada", "focus_area": "algebra", "rounds": 5}),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let session = started["session_id"].as_str().expect("session").to_owned();

    let (status, first) = daemon
        .post(
            "/api/v1/training/round",
            &json!({"session_id": session, "response": "x = 4"}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "in_progress");
    assert!(
        first["llm_feedback"]
            .as_str()
            .is_some_and(|t| t.starts_with("[mock]")),
        "{first}"
    );

    let (status, second) = daemon
        .post(
            "/api/v1/training/round",
            &json!({"session_id": session, "response": "x = 5"}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "paused", "{second}");
    assert_eq!(second["pause_reason"], "budget");
    assert!(second["llm_feedback"].is_null());

    let (status, refused) = daemon
        .post(
            "/api/v1/training/round",
            &json!({"session_id": session, "response": "x = 6"}),
        )
        .await;
    assert_eq!(status, 409, "a paused session refuses rounds: {refused}");
    let (status, _) = daemon
        .post("/api/v1/training/resume", &json!({"session_id": session}))
        .await;
    assert_eq!(status, 200);

    let events = daemon.tool(&["events", "--stream", "learner-ada"]);
    let paused: Vec<Value> = events
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["event_type"] == "training.paused")
        .collect();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["payload"]["reason"], "budget", "{paused:?}");
    let budget = daemon.tool(&["events", "--stream", "budget-tutor"]);
    assert!(budget.contains("provider.budget.exceeded"));
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_prices_and_priorities_reload_without_a_restart() {
    support::clear_of_month_end(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "16"]);
    let write = |budget: f64, priority: u32, base_url: &str| {
        let text = format!(
            "{}{}",
            gateway_toml("strict"),
            mock_provider_toml("paid", base_url, priority, budget, 60)
        );
        std::fs::write(dir.path().join("tutorlog.toml"), text).expect("write");
    };
    // $0.00001 affords nothing.
    let config = format!(
        "{}{}",
        gateway_toml("strict"),
        mock_provider_toml("paid", &mock.base_url(), 1, 0.00001, 60)
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    let (status, body) = daemon
        .post("/v1/chat/completions", &chat_body("hi", 16))
        .await;
    assert_eq!(status, 402, "{body}");

    // Without the admin token: 401. With it: the new budget and priority apply.
    let (status, _) = daemon.post("/api/v1/admin/config/reload", &json!({})).await;
    assert_eq!(status, 401);
    // `Daemon::start` prepends [server]: keep it when rewriting.
    let server = format!(
        "[server]\n{}\n",
        support::server_keys(daemon.url.trim_start_matches("http://"))
    );
    write(5.0, 3, &mock.base_url());
    let mut text = std::fs::read_to_string(dir.path().join("tutorlog.toml")).expect("read");
    text.insert_str(0, &server);
    std::fs::write(dir.path().join("tutorlog.toml"), &text).expect("write");
    let (status, reloaded) = daemon
        .post_admin("/api/v1/admin/config/reload", &json!({}))
        .await;
    assert_eq!(status, 200, "{reloaded}");
    let changes: Vec<&str> = reloaded["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        changes,
        ["providers[0].monthly_budget_usd", "providers[0].priority"]
    );
    let (status, body) = daemon
        .post("/v1/chat/completions", &chat_body("hi", 16))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, providers) = daemon.get("/api/v1/providers/status").await;
    assert_eq!(providers["providers"][0]["priority"], 3);

    // A key that needs a restart is refused, by name, and nothing changes.
    let mut moved = text.replace(&mock.base_url(), "http://127.0.0.1:9/v1");
    moved = moved.replace("monthly_budget_usd = 5", "monthly_budget_usd = 6");
    std::fs::write(dir.path().join("tutorlog.toml"), moved).expect("write");
    let (status, refused) = daemon
        .post_admin("/api/v1/admin/config/reload", &json!({}))
        .await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("providers[0].base_url"), "{message}");
    let (_, budget) = daemon.get("/api/v1/budget/status").await;
    assert_eq!(budget["providers"][0]["total_usd"], json!(5.0));

    // SIGHUP does the same.
    std::fs::write(
        dir.path().join("tutorlog.toml"),
        text.replace("monthly_budget_usd = 5", "monthly_budget_usd = 7"),
    )
    .expect("write");
    let pid = daemon.proc.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let mut total = Value::Null;
    for _ in 0..100 {
        let (_, budget) = daemon.get("/api/v1/budget/status").await;
        total = budget["providers"][0]["total_usd"].clone();
        if total == json!(7.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, json!(7.0));

    // Each applied reload is a config.applied event naming its changes, and a
    // budget.limit.changed on the provider's budget stream. The SIGHUP's events
    // may land a moment after the budget above shows 7 (its status is published
    // as decided), so wait for them, bounded.
    let mut applied: Vec<Value> = Vec::new();
    let mut limits = 0;
    for _ in 0..100 {
        applied = daemon
            .tool(&["events", "--stream", "config"])
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect();
        limits = daemon
            .tool(&["events", "--stream", "budget-paid"])
            .matches("budget.limit.changed")
            .count();
        if applied.len() >= 3 && limits >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied.len(), 3, "start + two reloads");
    assert_eq!(
        applied[1]["payload"]["changes"],
        json!(["providers[0].monthly_budget_usd", "providers[0].priority"])
    );
    assert_eq!(limits, 3);
    daemon.stop();
}

#[test]
fn the_month_boundary_guard_counts_to_the_next_utc_month() {
    use chrono::TimeZone;
    let at = |y, m, d, h, min, s| {
        chrono::Utc
            .with_ymd_and_hms(y, m, d, h, min, s)
            .single()
            .expect("valid time")
    };
    assert_eq!(
        support::until_next_month(at(2026, 12, 31, 23, 59, 0)),
        Duration::from_secs(60)
    );
    assert_eq!(
        support::until_next_month(at(2027, 2, 28, 0, 0, 0)),
        Duration::from_secs(86_400)
    );
    assert_eq!(
        support::until_next_month(at(2026, 12, 4, 12, 0, 0)),
        Duration::from_secs(27 * 86_400 + 12 * 3_600)
    );
}
