//! `tutorlog load` against the real daemon: `serve` on a free port with a fresh
//! data directory, three seconds of training and challenges, then the report's
//! figures and the `--record` lines checked against the log (`tutorlog events`).

use std::{collections::HashMap, path::Path, process::Command};

use serde_json::Value;

mod support;

use support::{blocking::Serve, free_port, BIN};

/// Every event in the log, by position: (stream, event type).
fn log_events(data_dir: &Path) -> HashMap<u64, (String, String)> {
    let output = Command::new(BIN)
        .args(["events", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("tutorlog events");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("event JSON");
            let position = event["position"].as_u64().expect("position");
            let stream = event["stream"].as_str().expect("stream").to_owned();
            let kind = event["event_type"].as_str().expect("event_type").to_owned();
            (position, (stream, kind))
        })
        .collect()
}

#[test]
fn load_runs_sessions_and_every_recorded_write_is_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let port = free_port();
    let daemon = Serve::start(&data_dir, port, &[]);
    let report_path = dir.path().join("report.json");
    let record_path = dir.path().join("acks.jsonl");
    let output = Command::new(BIN)
        .args(["load", "--target", &format!("http://127.0.0.1:{port}")])
        .args(["--mix", "1:1:0", "--duration", "3", "--warmup", "0.5"])
        .args([
            "--concurrency",
            "8",
            "--learners",
            "32",
            "--rounds",
            "3",
            "--seed",
            "7",
        ])
        .arg("--json")
        .arg(&report_path)
        .arg("--record")
        .arg(&record_path)
        .output()
        .expect("tutorlog load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("POST /api/v1/training/round"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");

    assert!(
        report["total"]["requests_per_sec"].as_f64().expect("rate") > 0.0,
        "{report}"
    );
    assert_eq!(report["total"]["server_errors"], 0, "{report}");
    assert_eq!(report["total"]["failed"], 0, "{report}");
    assert_eq!(report["total"]["learner_waits"], 0, "{report}");
    assert!(
        report["learning"]["sessions_completed"]
            .as_u64()
            .expect("completed")
            > 0
    );
    assert!(
        report["learning"]["challenges_graded"]
            .as_u64()
            .expect("graded")
            > 0
    );
    assert_eq!(report["learning"]["grader_disagreements"], 0, "{report}");
    assert_eq!(report["learning"]["unknown_prompts"], 0, "{report}");
    let rounds = report["learning"]["rounds"].as_u64().expect("rounds");
    let correct = report["learning"]["rounds_graded_correct"]
        .as_u64()
        .expect("correct");
    assert!(
        correct > 0 && correct < rounds,
        "a mix of right and wrong: {correct}/{rounds}"
    );
    let endpoints: Vec<&str> = report["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["endpoint"].as_str().expect("label"))
        .collect();
    assert_eq!(
        endpoints,
        [
            "POST /api/v1/training/start",
            "POST /api/v1/training/round",
            "POST /api/v1/challenges/start",
            "POST /api/v1/challenges/grade",
        ]
    );
    for endpoint in report["endpoints"].as_array().expect("endpoints") {
        let latency = &endpoint["latency"];
        assert!(
            latency["p50_ms"].as_f64() <= latency["p99_ms"].as_f64(),
            "{endpoint}"
        );
        assert!(
            latency["p99_ms"].as_f64() <= latency["max_ms"].as_f64(),
            "{endpoint}"
        );
    }

    let status = daemon.terminate();
    assert!(status.success(), "daemon exit: {status}");
    let events = log_events(&data_dir);
    let records: Vec<Value> = std::fs::read_to_string(&record_path)
        .expect("record file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("record JSON"))
        .collect();
    assert!(records.len() as u64 >= report["total"]["ok"].as_u64().expect("ok"));
    let mut highest = 0;
    for record in &records {
        let position = record["position"]
            .as_u64()
            .expect("a write answer has a position");
        let user = record["user_id"].as_str().expect("user_id");
        let (stream, kind) = events
            .get(&position)
            .unwrap_or_else(|| panic!("acknowledged position {position} not in the log: {record}"));
        assert_eq!(stream, &format!("learner-{user}"), "{record} is {kind}");
        highest = highest.max(position);
    }
    assert_eq!(report["position_max"].as_u64(), Some(highest));
}

#[test]
fn an_unreachable_target_is_a_clear_error() {
    let port = free_port();
    let output = Command::new(BIN)
        .args([
            "load",
            "--target",
            &format!("http://127.0.0.1:{port}"),
            "--duration",
            "1",
        ])
        .output()
        .expect("tutorlog load");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot reach the target http://127.0.0.1:"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
