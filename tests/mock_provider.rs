//! End-to-end: the real `tutorlog mock-provider` binary on a free loopback port,
//! driven through the gateway's own adapters (kind `mock`). Answers and their
//! usage, the stats that must match that usage, every fault and its
//! classification, and switching faults on and off at runtime.

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{json, Value};
use tutorlog::{
    config::{CircuitConfig, ProviderConfig},
    gateway::{
        adapters::{build, http_client, Adapter},
        types::{ChatMessage, ChatRequest, ErrorKind, ProviderError, StreamEvent, Usage},
    },
};

mod support;

use support::{Mock, BIN};

/// The gateway's own adapter (kind `mock`) for `mock`.
fn adapter(mock: &Mock) -> Arc<dyn Adapter> {
    let provider = ProviderConfig {
        name: "mock".into(),
        kind: "mock".into(),
        base_url: mock.base_url(),
        api_key_env: None,
        priority: 1,
        timeout_ms: 5_000,
        monthly_budget_usd: 0.0,
        per_request_budget_usd: 0.0,
        circuit: CircuitConfig::default(),
        models: Vec::new(),
    };
    build(&provider, http_client()).expect("adapter")
}

fn request(max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: "mock-small".into(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "What is two plus two?".into(),
        }],
        max_tokens,
        temperature: None,
        top_p: None,
        stop: Vec::new(),
    }
}

/// A stream's text, finish reason and usage, or the error that ended it.
async fn stream(
    adapter: &dyn Adapter,
    request: &ChatRequest,
    timeout: Duration,
) -> Result<(String, Option<String>, Option<Usage>), ProviderError> {
    let mut events = adapter.stream(request, timeout).await?;
    let (mut text, mut finish, mut usage) = (String::new(), None, None);
    while let Some(event) = events.next().await {
        match event? {
            StreamEvent::Delta(delta) => text.push_str(&delta),
            StreamEvent::Finish(reason) => finish = reason,
            StreamEvent::Usage(u) => usage = Some(u),
        }
    }
    Ok((text, finish, usage))
}

#[tokio::test]
async fn answers_and_stats_agree() {
    let mock = Mock::start(&[
        "--completion-tokens",
        "8",
        "--models",
        "mock-small,mock-large",
    ]);
    let adapter = adapter(&mock);
    let mut seen = Usage::default();

    let answer = adapter
        .complete(&request(100), Duration::from_secs(5))
        .await
        .expect("complete");
    assert!(answer.content.starts_with("[mock]"), "{}", answer.content);
    assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
    // 21 message bytes: ceil(21 / 4) = 6 prompt tokens.
    let usage = answer.usage.expect("usage");
    assert_eq!((usage.input_tokens, usage.output_tokens), (6, 8));
    seen.input_tokens += usage.input_tokens;
    seen.output_tokens += usage.output_tokens;

    let (text, finish, usage) = stream(adapter.as_ref(), &request(100), Duration::from_secs(5))
        .await
        .expect("stream");
    assert_eq!(text, answer.content, "a stream says what complete says");
    assert_eq!(finish.as_deref(), Some("stop"));
    let usage = usage.expect("include_usage honoured");
    seen.input_tokens += usage.input_tokens;
    seen.output_tokens += usage.output_tokens;

    let short = adapter
        .complete(&request(3), Duration::from_secs(5))
        .await
        .expect("short");
    assert_eq!(short.finish_reason.as_deref(), Some("length"));
    let usage = short.usage.expect("usage");
    assert_eq!(usage.output_tokens, 3, "max_tokens caps completion tokens");
    seen.input_tokens += usage.input_tokens;
    seen.output_tokens += usage.output_tokens;

    let unknown = ChatRequest {
        model: "gpt-4".into(),
        ..request(10)
    };
    let error = adapter
        .complete(&unknown, Duration::from_secs(5))
        .await
        .expect_err("unknown model");
    assert_eq!(
        (error.kind, error.status),
        (ErrorKind::BadRequest, Some(404))
    );

    assert_eq!(
        mock.stats().await,
        json!({
            "requests": 4,
            "errors": 1,
            "prompt_tokens_served": seen.input_tokens,
            "completion_tokens_served": seen.output_tokens,
        })
    );

    let models = http_client()
        .get(format!("{}/v1/models", mock.url))
        .send()
        .await
        .expect("models");
    assert_eq!(
        models
            .headers()
            .get("x-tutorlog-mock")
            .map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let models: Value = models.json().await.expect("json");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["mock-small", "mock-large"]);
}

#[tokio::test]
async fn every_fault_classifies_and_the_provider_recovers() {
    let mock = Mock::start(&["--prompt-tokens", "11", "--seed", "3"]);
    let adapter = adapter(&mock);
    let timeout = Duration::from_secs(5);

    mock.configure(&json!({"error_rate": 1.0, "fault": "http500"}))
        .await;
    let error = adapter
        .complete(&request(10), timeout)
        .await
        .expect_err("500");
    assert_eq!((error.kind, error.status), (ErrorKind::Server, Some(500)));
    assert!(
        error.message.contains("[mock] injected fault"),
        "{}",
        error.message
    );
    let error = stream(adapter.as_ref(), &request(10), timeout)
        .await
        .expect_err("500");
    assert_eq!(error.kind, ErrorKind::Server);

    mock.configure(&json!({"fault": "http429"})).await;
    let error = adapter
        .complete(&request(10), timeout)
        .await
        .expect_err("429");
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(1)));

    for fault in ["malformed", "truncate"] {
        mock.configure(&json!({"fault": fault})).await;
        let error = adapter
            .complete(&request(10), timeout)
            .await
            .expect_err(fault);
        assert_eq!(
            error.kind,
            ErrorKind::Malformed,
            "{fault} complete: {error}"
        );
        let error = stream(adapter.as_ref(), &request(10), timeout)
            .await
            .expect_err(fault);
        assert_eq!(error.kind, ErrorKind::Malformed, "{fault} stream: {error}");
    }

    mock.configure(&json!({"fault": "hang"})).await;
    let short = Duration::from_millis(300);
    // The hang lasts an hour: any bound far below it proves the timeout works,
    // and a loaded CI machine can fire a timer a second late.
    let slack = Duration::from_secs(5);
    let started = Instant::now();
    let error = adapter
        .complete(&request(10), short)
        .await
        .expect_err("hang");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < short + slack, "{:?}", started.elapsed());
    let started = Instant::now();
    let error = stream(adapter.as_ref(), &request(10), short)
        .await
        .expect_err("hang");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < short + slack, "{:?}", started.elapsed());

    let before = mock.stats().await;
    assert_eq!(before["errors"], 9);
    assert_eq!(before["prompt_tokens_served"], 0, "no tokens for failures");

    // Recovery: the same adapter, the same process, faults off.
    let now = mock.configure(&json!({"error_rate": 0.0})).await;
    assert_eq!(now["error_rate"], 0.0);
    let answer = adapter
        .complete(&request(10), timeout)
        .await
        .expect("recovered");
    assert_eq!(
        answer.usage,
        Some(Usage {
            input_tokens: 11,
            output_tokens: 10
        })
    );
    let after = mock.stats().await;
    assert_eq!(after["errors"], 9);
    assert_eq!(
        after["requests"],
        before["requests"].as_u64().expect("n") + 1
    );
    assert_eq!(after["prompt_tokens_served"], 11);
}

#[tokio::test]
async fn a_bad_config_change_is_refused() {
    let mock = Mock::start(&[]);
    let response = http_client()
        .post(format!("{}/mock/config", mock.url))
        .json(&json!({"error_rate": 3}))
        .send()
        .await
        .expect("config");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("error_rate must be between 0 and 1"));
    let response = http_client()
        .post(format!("{}/mock/config", mock.url))
        .json(&json!({"error_rat": 0.5}))
        .send()
        .await
        .expect("config");
    assert_eq!(response.status(), 400, "unknown keys are refused");
}

#[test]
fn bad_flags_fail_with_the_flag_named() {
    for (flags, needle) in [
        (
            &["--error-rate", "1.5"][..],
            "--error-rate must be between 0 and 1",
        ),
        (&["--completion-tokens", "0"][..], "--completion-tokens"),
        (&["--fault", "explode"][..], "--fault"),
    ] {
        let output = Command::new(BIN)
            .args(["mock-provider", "--listen", "127.0.0.1:0"])
            .args(flags)
            .output()
            .expect("run");
        assert!(!output.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{flags:?}: {stderr}");
    }
}
