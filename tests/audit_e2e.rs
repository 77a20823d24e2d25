//! Audits replay the past: every view captured live in the middle of a recorded
//! demo is given back, byte for byte, by `tutorlog replay --until` and by
//! `GET /api/v1/audit/views/{name}?as_of=` after more traffic went by.

mod support;

use serde_json::{json, Value};
use support::{chat_body, client, gateway_toml, mock_provider_toml, Daemon, Mock};

const VIEWS: [&str; 7] = [
    "stream_stats",
    "mastery",
    "algo_runs",
    "spend",
    "provider_health",
    "benchmarks",
    "routing",
];

async fn traffic(daemon: &Daemon, user: &str) {
    let (status, started) = daemon
        .post(
            "/api/v1/training/start",
            &json!({"user_id": user, "focus_area": "algebra", "rounds": 2}),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let session = started["session_id"].as_str().expect("session").to_owned();
    for answer in ["x = 5", "I don't know"] {
        let (status, body) = daemon
            .post(
                "/api/v1/training/round",
                &json!({"session_id": session, "response": answer}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for text in [
        "Explain merge sort code",
        "Solve 2x + 5 = 15",
        "I'm so frustrated",
    ] {
        let (status, body) = daemon
            .post("/v1/chat/completions", &chat_body(text, 16))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn raw(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// Waits until the log stops growing (commits and records are asynchronous) and
/// returns its next position; the views are then read with `min_position`,
/// which waits for their folds.
async fn settle(daemon: &Daemon) -> u64 {
    daemon
        .wait_still(std::time::Duration::from_millis(500), async |_| {})
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_served_mid_demo_come_back_from_replay_and_as_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "16"]);
    let config = format!(
        "{}{}",
        gateway_toml("strict"),
        mock_provider_toml("mock", &mock.base_url(), 1, 10.0, 60),
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    traffic(&daemon, "ada").await;
    let next = settle(&daemon).await;
    let mut captured = Vec::new();
    for view in VIEWS {
        let (status, body) = raw(&format!(
            "{}/api/v1/views/{view}?min_position={}",
            daemon.url,
            next - 1
        ))
        .await;
        assert_eq!(status, 200, "{view}: {body}");
        let document: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            document["next_position"],
            json!(next),
            "{view} is at the log's end"
        );
        captured.push((view, body));
    }
    // More history after the captured moment.
    traffic(&daemon, "grace").await;
    settle(&daemon).await;
    let until = (next - 1).to_string();
    for (view, live) in &captured {
        let replayed = daemon.tool(&["replay", "--view", view, "--until", &until]);
        assert_eq!(replayed.trim_end(), live, "replay --until of {view}");
        let (status, as_of) = raw(&format!(
            "{}/api/v1/audit/views/{view}?as_of={until}",
            daemon.url
        ))
        .await;
        assert_eq!(status, 200, "{view}: {as_of}");
        assert_eq!(&as_of, live, "as_of of {view}");
    }
    // And the view now is not the captured one: the test would notice a replay
    // that ignored --until.
    let (_, now) = raw(&format!("{}/api/v1/views/mastery", daemon.url)).await;
    assert_ne!(&now, &captured[1].1);

    // Bad input names the parameter; unknown views are 404.
    let (status, body) = raw(&format!(
        "{}/api/v1/audit/views/spend?as_of=yesterday",
        daemon.url
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("as_of"));
    let (status, _) = raw(&format!("{}/api/v1/audit/views/nope", daemon.url)).await;
    assert_eq!(status, 404);
    let (status, body) = raw(&format!(
        "{}/api/v1/audit/views/benchmarks?user=ada",
        daemon.url
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw(&format!(
        "{}/api/v1/audit/views/spend?provider=mock",
        daemon.url
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\"filter\":{\"provider\":\"mock\"}"),
        "{body}"
    );
    daemon.stop();
}
