//! The OpenAPI document against a running daemon: every operation it lists is
//! routed (no documented path falls through to the "no such endpoint" fallback
//! or answers 405), answers one of the statuses it documents, and the explorer
//! at `/docs` is served by the daemon itself. The other direction (no route
//! outside the document) is `http::openapi::tests` in the library.

mod support;

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
