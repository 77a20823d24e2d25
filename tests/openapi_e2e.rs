//! The OpenAPI document against a running daemon: every operation it lists is
//! routed (no documented path falls through to the "no such endpoint" fallback
//! or answers 405), answers one of the statuses it documents, and the explorer
//! at `/docs` is served by the daemon itself. The other direction (no route
//! outside the document) is `http::openapi::tests` in the library.

mod support;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{client, gateway_toml, mock_provider_toml, Daemon, Mock, ADMIN_TOKEN, API_KEY};

/// A value for path parameter `parameter` the handler can parse: the first of
/// its enum (directly or through a `$ref`), a UUID where the format says so.
fn sample(document: &Value, parameter: &Value) -> String {
    let mut schema = &parameter["schema"];
    if let Some(target) = schema["$ref"].as_str() {
        schema = document
            .pointer(target.trim_start_matches('#'))
            .expect("the reference resolves");
    }
    if let Some(first) = schema["enum"].get(0).and_then(Value::as_str) {
        return first.to_owned();
    }
    if schema["format"] == "uuid" {
        return "0190b4d4-6a8f-7c2e-9b1a-3f4e5d6c7b8a".to_owned();
    }
    "x".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = Mock::start(&[]);
    let config = format!(
        "{}{}",
        gateway_toml("strict"),
        mock_provider_toml("mock", &mock.base_url(), 1, 0.0, 60)
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    let http = client();

    let response = http
        .get(format!("{}/openapi.json", daemon.url))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.expect("the document is JSON");

    // The fallback's answer, to tell "not routed" from a handler's own 404.
    let response = http
        .get(format!("{}/api/v1/no-such-thing", daemon.url))
        .send()
        .await
        .expect("GET unknown");
    assert_eq!(response.status(), 404);
    let fallback: Value = response.json().await.expect("error body");
    let fallback_message = fallback["error"]["message"].clone();
    assert!(fallback_message.is_string(), "{fallback}");

    let mut called = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else {
                continue;
            };
            let mut url_path = path.clone();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().expect("name");
                    url_path =
                        url_path.replace(&format!("{{{name}}}"), &sample(&document, parameter));
                }
            }
            let token = if path.starts_with("/api/v1/admin/") {
                ADMIN_TOKEN
            } else {
                API_KEY
            };
            let mut request = http
                .request(method.clone(), format!("{}{url_path}", daemon.url))
                .bearer_auth(token);
            if operation.get("requestBody").is_some() {
                request = request.json(&json!({}));
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            let name = format!("{method} {path}");
            assert_ne!(
                status, 405,
                "{name}: documented but the router has no such method"
            );
            if status == 404 {
                let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                assert_ne!(
                    answer["error"]["message"], fallback_message,
                    "{name}: documented but not routed"
                );
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.contains_key(&status.to_string()) || responses.contains_key("default"),
                "{name} answered {status}, which the document does not list: {body}"
            );
            called += 1;
        }
    }
    assert!(called >= 37, "called {called} operations");

    // The explorer and its assets come from the daemon (no CDN).
    let response = http
        .get(format!("{}/docs/", daemon.url))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(response.status(), 200);
    let page = response.text().await.expect("page");
    assert!(page.contains("swagger-ui"), "{page}");
    let response = http
        .get(format!("{}/docs/swagger-ui-bundle.js", daemon.url))
        .send()
        .await
        .expect("GET bundle");
    assert_eq!(response.status(), 200);
    daemon.stop();
}

/// What schemathesis (`tests/e2e/schemathesis.sh`) found, kept fixed: each was a
/// 5xx for a client mistake or an answer the document does not allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_schemathesis_found_answer_400_and_the_document_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = Mock::start(&[]);
    let config = format!(
        "{}{}",
        gateway_toml("strict"),
        mock_provider_toml("mock", &mock.base_url(), 1, 0.0, 60)
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    let http = client();

    // Positions past the end of the log (or of int64): 400 at once, not a 503
    // after `server.min_position_wait_ms`.
    for path in [
        "/api/v1/stats?min_position=99999999",
        "/api/v1/views/spend?min_position=9223372036854775808",
        "/api/v1/providers/health?min_position=99999999",
        "/api/v1/events?from=9223372036854775808",
    ] {
        let (status, body) = daemon.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
    // A version filter past int32 but within u32 is valid (the document says
    // so); past u32 it is refused.
    let (status, _) = daemon
        .get("/api/v1/audit/algo-runs?version=3000000000")
        .await;
    assert_eq!(status, 200);
    let (status, _) = daemon
        .get("/api/v1/audit/algo-runs?version=5000000000")
        .await;
    assert_eq!(status, 400);

    // An empty learner id is a missing one, not a learner without progress.
    let (status, body) = daemon.get("/api/v1/training/progress?user_id=").await;
    assert_eq!(status, 400, "{body}");

    // `user` is bounded for every caller, also one whose key names its user.
    let mut body = support::chat_body("hello", 8);
    body["user"] = json!("u".repeat(129));
    let (status, answer) = daemon.post("/v1/chat/completions", &body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("user")));

    // `null` is a body the document allows for run-benchmarks.
    let response = http
        .post(format!("{}/api/v1/admin/run-benchmarks", daemon.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .expect("POST run-benchmarks");
    assert_eq!(response.status(), 202);

    // A streamed answer is documented one event at a time.
    let (_, document) = daemon.get("/openapi.json").await;
    let stream = &document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    assert_eq!(
        stream["$ref"], "#/components/schemas/ChunkEvent",
        "{stream}"
    );
    daemon.stop();
}

/// Headless Chromium, or `None` (after saying so) where it is not installed;
/// `TUTORLOG_E2E_REQUIRE_CHROMIUM=1` (CI, as for the dashboard test) makes a
/// missing browser a failure.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = std::env::var_os("TUTORLOG_E2E_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .flat_map(|dir| [dir.join("chromium"), dir.join("chromium-browser")])
                .find(|candidate| candidate.is_file())
        });
    if found.is_none() {
        let message = "skipped: chromium not found (apt-get install chromium)";
        assert!(
            std::env::var("TUTORLOG_E2E_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "TUTORLOG_E2E_REQUIRE_CHROMIUM=1 but {message}"
        );
        eprintln!("{message}");
    }
    found
}

/// The explorer renders the whole document in a real browser, with nothing but
/// the daemon to load from (these machines have no route to a CDN, so a page
/// that needed one would render no operation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_renders_every_operation_in_headless_chromium() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "").await;
    let (_, document) = daemon.get("/openapi.json").await;
    let paths: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let url = format!("{}/docs/", daemon.url);
    let dom = tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().expect("profile dir");
        let dom_path = profile.path().join("dom.html");
        // The flags this machine needs: no sandbox (root in a container), no
        // GPU, no background networking (the network is closed).
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--virtual-time-budget=8000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            // A file, not a pipe: the DOM is larger than a pipe's buffer, and
            // nothing reads the pipe while this waits.
            .stdout(std::fs::File::create(&dom_path).expect("dom file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromium");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _killed = child.kill();
                let _reaped = child.wait();
                panic!("chromium did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "chromium exited {status}");
        std::fs::read_to_string(&dom_path).expect("the dumped DOM")
    })
    .await
    .expect("chromium task");
    for path in &paths {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "the explorer does not show {path}"
        );
    }
    daemon.stop();
}
