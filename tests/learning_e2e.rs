//! End-to-end learning: the real `tutorlog` binary on loopback, driven over HTTP
//! through a full 5-round training session and a challenge; then a restart gives
//! the same progress back, and `tutorlog replay` prints views byte-identical to the
//! live daemon's at the same position.

use std::{path::Path, process::Command};

use serde_json::{json, Value};
use tutorlog_actors::content::ItemBank;

mod support;

use support::{
    blocking::{json as parse, request, Serve},
    free_port, ADMIN_TOKEN, BIN,
};

/// `serve` with the harness's admin token.
fn start(data_dir: &Path, port: u16) -> Serve {
    Serve::start(data_dir, port, &[("TUTORLOG_ADMIN_TOKEN", ADMIN_TOKEN)])
}

/// SIGTERM, and the daemon must exit cleanly.
fn stop(daemon: Serve) {
    let status = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
}

/// The reference answer of the item with this prompt (to answer some rounds right).
fn reference_answer(prompt: &str) -> String {
    ItemBank::bundled()
        .items()
        .iter()
        .find(|item| item.prompt == prompt)
        .map(|item| item.answer.clone())
        .unwrap_or_else(|| panic!("prompt not in the bank: {prompt}"))
}

fn position(body: &Value) -> u64 {
    body["position"].as_u64().expect("position")
}

fn replay(data: &Path, view: &str, until: u64) -> String {
    let output = Command::new(BIN)
        .args([
            "replay",
            "--view",
            view,
            "--until",
            &until.to_string(),
            "--data-dir",
        ])
        .arg(data)
        .env("TUTORLOG_LOG", "warn")
        .output()
        .expect("run replay");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim_end()
        .to_owned()
}

fn assert_error(status: u16, body: &Value, want: u16, mentions: &str) {
    assert_eq!(status, want, "{body}");
    let message = body["error"]["message"].as_str().expect("error message");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(
        message.contains(mentions),
        "{message:?} should mention {mentions:?}"
    );
}

/// Runs one full session: answers right on odd rounds, wrong on even ones.
fn full_session(daemon: &Serve) -> (String, u64) {
    let (status, areas) = daemon.get("/api/v1/training/focus-areas");
    assert_eq!(status, 200);
    assert!(areas["focus_areas"]
        .as_array()
        .expect("list")
        .iter()
        .any(|a| a == "algebra"));

    let (status, started) = daemon.post(
        "/api/v1/training/start",
        &json!({ "user_id": "ada", "focus_area": "algebra" }),
    );
    assert_eq!(status, 200, "{started}");
    let session_id = started["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    assert!(started["round_id"].is_string());
    assert_eq!(started["rounds"], 5, "five rounds by default");
    let mut prompt = started["prompt"].as_str().expect("prompt").to_owned();
    let mut last = position(&started);
    for round in 1..=5u64 {
        let response = if round % 2 == 1 {
            reference_answer(&prompt)
        } else {
            "no idea".to_owned()
        };
        let (status, graded) = daemon.post(
            "/api/v1/training/round",
            &json!({ "session_id": session_id, "response": response }),
        );
        assert_eq!(status, 200, "round {round}: {graded}");
        let score = graded["score"].as_u64().expect("score");
        if round % 2 == 1 {
            assert!(score >= 90, "reference answer scored {score}");
            assert!(
                graded["mastery"]["after"].as_f64() > graded["mastery"]["before"].as_f64(),
                "{graded}"
            );
        } else {
            assert_eq!(score, 0, "{graded}");
        }
        assert!(graded["feedback"].as_str().is_some_and(|f| !f.is_empty()));
        assert!(position(&graded) > last);
        last = position(&graded);
        if round < 5 {
            assert_eq!(graded["status"], "in_progress");
            prompt = graded["next_prompt"]
                .as_str()
                .expect("next prompt")
                .to_owned();
        } else {
            assert_eq!(graded["status"], "completed");
            assert!(graded["next_prompt"].is_null());
        }
    }
    // A round on a completed session is a conflict; unknown ids are 404; bad input 400.
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": session_id, "response": "again" }),
    );
    assert_error(status, &body, 409, "completed");
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": uuid_like(), "response": "x" }),
    );
    assert_error(status, &body, 404, "session");
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": session_id }),
    );
    assert_error(status, &body, 400, "response");
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": "nope", "response": "x" }),
    );
    assert_error(status, &body, 400, "session_id");
    let (status, body) = daemon.post(
        "/api/v1/training/start",
        &json!({ "user_id": "ada", "focus_area": "astrology" }),
    );
    assert_error(status, &body, 400, "focus_area");
    let (status, body) = daemon.post(
        "/api/v1/training/start",
        &json!({ "user_id": "ada", "focus_area": "algebra", "rounds": 0 }),
    );
    assert_error(status, &body, 400, "rounds");
    (session_id, last)
}

fn uuid_like() -> &'static str {
    "01900000-0000-7000-8000-000000000000"
}

fn challenge(daemon: &Serve) -> u64 {
    let (status, started) = daemon.post(
        "/api/v1/challenges/start",
        &json!({ "user_id": "ada", "difficulty": "medium", "category": "geometry" }),
    );
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["difficulty"], "medium");
    let id = started["challenge_id"]
        .as_str()
        .expect("challenge_id")
        .to_owned();
    let answer = reference_answer(started["prompt"].as_str().expect("prompt"));
    let (status, graded) = daemon.post(
        "/api/v1/challenges/grade",
        &json!({ "challenge_id": id, "answer": answer }),
    );
    assert_eq!(status, 200, "{graded}");
    assert!(graded["score"].as_u64().expect("score") >= 90, "{graded}");
    let (status, body) = daemon.post(
        "/api/v1/challenges/grade",
        &json!({ "challenge_id": id, "answer": answer }),
    );
    assert_error(status, &body, 409, "graded");
    let (status, body) = daemon.post(
        "/api/v1/challenges/grade",
        &json!({ "challenge_id": uuid_like(), "answer": "x" }),
    );
    assert_error(status, &body, 404, "challenge");
    let (status, body) = daemon.post(
        "/api/v1/challenges/start",
        &json!({ "user_id": "ada", "difficulty": "brutal" }),
    );
    assert_error(status, &body, 400, "difficulty");
    position(&graded)
}

/// Pause and resume over HTTP (a second learner, so ada's numbers stay as they are):
/// every write answers a position, a paused session refuses rounds with 409 until
/// resumed, and a read with `min_position` sees the write.
fn pause_and_resume(daemon: &Serve) -> u64 {
    let (status, started) = daemon.post(
        "/api/v1/training/start",
        &json!({ "user_id": "bob", "focus_area": "algebra", "rounds": 2 }),
    );
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["rounds"], 2);
    let session_id = started["session_id"].as_str().expect("session").to_owned();
    let prompt = started["prompt"].as_str().expect("prompt").to_owned();
    let session = json!({ "session_id": session_id });

    let (status, paused) = daemon.post("/api/v1/training/pause", &session);
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert!(position(&paused) > position(&started));
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": session_id, "response": reference_answer(&prompt) }),
    );
    assert_error(status, &body, 409, "paused");
    assert_eq!(body["error"]["code"], "session_paused");
    // Pausing twice changes nothing (same position); only the gateway pauses for
    // budget or provider, through the service, not over HTTP.
    let (status, again) = daemon.post("/api/v1/training/pause", &session);
    assert_eq!(status, 200, "{again}");
    assert_eq!(position(&again), position(&paused));
    let (status, body) = daemon.post(
        "/api/v1/training/pause",
        &json!({ "session_id": session_id, "reason": "budget" }),
    );
    assert_error(status, &body, 400, "reason");
    let (status, body) = daemon.post(
        "/api/v1/training/pause",
        &json!({ "session_id": session_id, "reason": "sleepy" }),
    );
    assert_error(status, &body, 400, "reason");
    let (status, body) = daemon.post(
        "/api/v1/training/pause",
        &json!({ "session_id": uuid_like() }),
    );
    assert_error(status, &body, 404, "session");
    let (status, body) = daemon.post("/api/v1/training/resume", &json!({}));
    assert_error(status, &body, 400, "session_id");

    let (status, resumed) = daemon.post("/api/v1/training/resume", &session);
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "in_progress");
    assert!(position(&resumed) > position(&paused));
    let (status, body) = daemon.post("/api/v1/training/resume", &session);
    assert_error(status, &body, 409, "not paused");
    let (status, graded) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": session_id, "response": reference_answer(&prompt) }),
    );
    assert_eq!(status, 200, "{graded}");
    assert_eq!(graded["status"], "in_progress");
    assert!(position(&graded) > position(&resumed));

    // Read-your-writes: progress at the round's position has the round.
    let (status, body) = daemon.get(&format!(
        "/api/v1/training/progress?user_id=bob&min_position={}",
        position(&graded)
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["focus_areas"][0]["attempts"], 1, "{body}");
    assert!(body["next_position"].as_u64() > Some(position(&graded)));
    position(&graded)
}

/// Bad input is a 400 whose message names the field.
fn bad_input(daemon: &Serve) {
    let cases = [
        (
            "/api/v1/training/start",
            json!({ "focus_area": "algebra" }),
            "user_id",
        ),
        (
            "/api/v1/training/start",
            json!({ "user_id": "a b", "focus_area": "algebra" }),
            "user_id",
        ),
        (
            "/api/v1/training/start",
            json!({ "user_id": "ada" }),
            "focus_area",
        ),
        (
            "/api/v1/training/start",
            json!({ "user_id": "ada", "focus_area": "algebra", "rounds": "five" }),
            "rounds",
        ),
        (
            "/api/v1/training/start",
            json!({ "user_id": "ada", "focus_area": "algebra", "rounds": 101 }),
            "rounds",
        ),
        (
            "/api/v1/training/round",
            json!({ "session_id": 7, "response": "x" }),
            "session_id",
        ),
        (
            "/api/v1/training/round",
            json!({ "session_id": uuid_like(), "response": "x".repeat(16 * 1024 + 1) }),
            "response",
        ),
        (
            "/api/v1/challenges/start",
            json!({ "difficulty": "easy" }),
            "user_id",
        ),
        (
            "/api/v1/challenges/start",
            json!({ "user_id": "ada", "category": "astrology" }),
            "category",
        ),
        (
            "/api/v1/challenges/grade",
            json!({ "answer": "x" }),
            "challenge_id",
        ),
        (
            "/api/v1/challenges/grade",
            json!({ "challenge_id": "nope", "answer": "x" }),
            "challenge_id",
        ),
        (
            "/api/v1/challenges/grade",
            json!({ "challenge_id": uuid_like() }),
            "answer",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = daemon.post(path, &body);
        assert_error(status, &answer, 400, field);
    }
    let (status, answer) = parse(
        "start",
        request(
            &daemon.addr,
            "POST",
            "/api/v1/training/start",
            Some("{not json"),
            None,
        ),
    );
    assert_error(status, &answer, 400, "JSON");
    for (path, field) in [
        ("/api/v1/training/progress", "user_id"),
        (
            "/api/v1/training/progress?user_id=ada&min_position=soon",
            "min_position",
        ),
        ("/api/v1/audit/algo-runs?min_position=-1", "min_position"),
        ("/api/v1/audit/algo-runs?limit=0", "limit"),
    ] {
        let (status, answer) = daemon.get(path);
        assert_error(status, &answer, 400, field);
    }
}

fn admin(daemon: &Serve) -> u64 {
    let path = "/api/v1/admin/algos/adaptive/params";
    let body = json!({ "params": { "target_accuracy": 0.7, "exploration_rate": 0.2 } });
    let (status, _) = daemon.post_admin(path, &body, None);
    assert_eq!(status, 401);
    let (status, _) = daemon.post_admin(path, &body, Some("wrong"));
    assert_eq!(status, 401);
    let (status, set) = daemon.post_admin(path, &body, Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "{set}");
    let (status, body) = daemon.post_admin(
        "/api/v1/admin/algos/mastery/activate",
        &json!({ "version": 9 }),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(status, 404, "{body}");
    let (status, info) = daemon.get("/api/v1/learning/info");
    assert_eq!(status, 200);
    let algorithms = info["algorithms"].as_array().expect("algorithms");
    assert_eq!(algorithms.len(), 5);
    for algorithm in algorithms {
        let active = algorithm["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .filter(|v| v["status"] == "ACTIVE")
            .count();
        assert_eq!(active, 1, "{algorithm}");
        assert_eq!(
            algorithm["params_checksum"].as_str().map(str::len),
            Some(64)
        );
    }
    let adaptive = algorithms
        .iter()
        .find(|a| a["algo_key"] == "adaptive")
        .expect("adaptive");
    assert_eq!(adaptive["params_checksum"], set["params_checksum"]);
    // Batch runs on demand are audited runs (started, then succeeded).
    let mut last = 0;
    for key in ["difficulty", "mistakes"] {
        let path = format!("/api/v1/admin/algos/{key}/run");
        let (status, _) = daemon.post_admin(&path, &json!({}), None);
        assert_eq!(status, 401);
        let (status, run) = daemon.post_admin(&path, &json!({}), Some(ADMIN_TOKEN));
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "SUCCESS", "{run}");
        last = position(&run);
    }
    let (status, runs) = daemon.get(&format!(
        "/api/v1/audit/algo-runs?trigger=manual&status=SUCCESS&min_position={last}"
    ));
    assert_eq!(status, 200);
    let keys: Vec<&str> = runs["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    assert_eq!(keys, ["mistakes", "difficulty"], "{runs}");
    assert!(last > set["position"].as_u64().expect("position"));
    last
}

fn progress(daemon: &Serve, min_position: u64) -> Value {
    let (status, body) = daemon.get(&format!(
        "/api/v1/training/progress?user_id=ada&min_position={min_position}"
    ));
    assert_eq!(status, 200, "{body}");
    let areas = body["focus_areas"].as_array().expect("areas").clone();
    Value::Array(areas)
}

#[test]
fn a_full_session_and_a_challenge_survive_a_restart_and_replay_identically() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let port = free_port();
    let daemon = start(&data, port);

    let (session_id, _) = full_session(&daemon);
    challenge(&daemon);
    bad_input(&daemon);
    let bob = pause_and_resume(&daemon);
    let last = admin(&daemon);
    assert!(last > bob);

    let before = progress(&daemon, last);
    let algebra = before
        .as_array()
        .and_then(|a| a.iter().find(|r| r["focus_area"] == "algebra"))
        .expect("algebra")
        .clone();
    assert_eq!(algebra["attempts"], 5);
    assert_eq!(algebra["correct"], 3);
    assert_eq!(algebra["sessions_completed"], 1);
    assert!(algebra["next_review_due"].is_string() && algebra["last_practised"].is_string());

    let (status, runs) = daemon.get(&format!(
        "/api/v1/audit/algo-runs?key=mastery&user_id=ada&min_position={last}"
    ));
    assert_eq!(status, 200);
    let runs = runs["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|r| r["status"] == "SUCCESS"
        && r["trigger"] == "submit"
        && r["session_id"] == session_id.as_str()));
    let (status, body) = daemon.get("/api/v1/audit/algo-runs?limit=0");
    assert_eq!(status, 400, "{body}");

    let mastery_live = daemon.get_ok(&format!("/api/v1/views/mastery?min_position={last}"));
    let runs_live = daemon.get_ok(&format!("/api/v1/views/algo_runs?min_position={last}"));
    let next: u64 = serde_json::from_str::<Value>(&mastery_live).expect("json")["next_position"]
        .as_u64()
        .expect("next");
    stop(daemon);

    let daemon = start(&data, port);
    assert_eq!(progress(&daemon, last), before, "progress after restart");
    let mastery_again = daemon.get_ok(&format!("/api/v1/views/mastery?min_position={last}"));
    let runs_again = daemon.get_ok(&format!("/api/v1/views/algo_runs?min_position={last}"));
    assert_eq!(mastery_again, mastery_live);
    assert_eq!(runs_again, runs_live);
    // The session stays completed after the restart (its state came back from the log).
    let (status, body) = daemon.post(
        "/api/v1/training/round",
        &json!({ "session_id": session_id, "response": "x" }),
    );
    assert_error(status, &body, 409, "completed");
    stop(daemon);

    assert_eq!(replay(&data, "mastery", next - 1), mastery_live);
    assert_eq!(replay(&data, "algo_runs", next - 1), runs_live);
}
