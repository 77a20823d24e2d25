//! End-to-end: the real `tutorlog` binary on loopback.
//!
//! Starts `serve` on an empty directory, checks the health, readiness, metrics and
//! event endpoints and their error shapes, runs `events` and `audit verify` beside
//! it, refuses a second writer, stops on SIGTERM and restarts on the same data.

use std::{path::Path, process::Command};

use serde_json::Value;

mod support;

use support::{
    blocking::{tutorlog as run, Serve},
    free_port, BIN,
};

#[test]
fn serve_answers_stops_cleanly_and_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let daemon = Serve::start(&data, free_port(), &[]);

    let (status, body) = daemon.get("/healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    #[cfg(target_os = "linux")]
    assert_views_threads_run_niced(daemon.pid());
    #[cfg(target_os = "linux")]
    assert_transparent_huge_pages_off(daemon.pid());

    // The daemon records its configuration as the first event, then the algorithm
    // registry registers its default versions (algo.* events, counted here).
    let (status, body) = daemon.get("/api/v1/events?limit=100");
    assert_eq!(status, 200);
    let events = body["events"].as_array().expect("events");
    assert_eq!(events[0]["event_type"], "config.applied");
    assert_eq!(events[0]["position"], 0);
    assert!(events[1..].iter().all(|e| e["event_type"]
        .as_str()
        .is_some_and(|t| t.starts_with("algo."))));
    let startup_events = events.len() as u64;
    assert_eq!(body["next_from"], startup_events);
    let (status, body) = daemon.get("/api/v1/events?stream=config&from=0");
    assert_eq!(
        (status, body["events"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // Read-your-writes on a view.
    let (status, body) = daemon.get(&format!(
        "/api/v1/stats?min_position={}",
        startup_events - 1
    ));
    assert_eq!(status, 200);
    assert_eq!(body["view"]["events_total"], startup_events);

    // Client mistakes are 4xx in the documented shape, never 500.
    for (path, want) in [
        ("/api/v1/events?limit=0", 400),
        ("/api/v1/events?limit=100000", 400),
        ("/api/v1/events?from=-1", 400),
        ("/api/v1/events?stream=", 400),
        ("/api/v1/events?bogus=1", 400),
        ("/api/v1/stats?min_position=x", 400),
        ("/no/such/thing", 404),
    ] {
        let (status, body) = daemon.get(path);
        assert_eq!(status, want, "{path}: {body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{path}: {body}"
        );
    }
    // A position past the end of the log is a client mistake on the embedded
    // log (this daemon wrote every position there is): 400 at once, not a 503
    // after the wait (schemathesis found it). Past int64, on any backend.
    for position in ["999", "9223372036854775808"] {
        let (status, body) = daemon.get(&format!("/api/v1/stats?min_position={position}"));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{position}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("min_position")),
            "{body}"
        );
    }

    let (status, metrics) = daemon.get_text("/metrics");
    assert_eq!(status, 200);
    for name in [
        "tutorlog_log_appends_total",
        "tutorlog_log_fsync_seconds",
        "tutorlog_projection_lag_events",
        "tutorlog_log_last_position",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    // A second writer on the same directory is refused with a clear message.
    let second = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("TUTORLOG_LOG", "warn")
        .output()
        .expect("second serve");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("locked by another tutorlog process"),
        "{stderr}"
    );

    // Readers work while the daemon runs.
    let events = run(&["events"], &data);
    assert!(
        events.status.success(),
        "{}",
        String::from_utf8_lossy(&events.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&events.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len() as u64, startup_events);
    assert_eq!(lines[0]["event_type"], "config.applied");
    let verify = run(&["audit", "verify"], &data);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout)
        .contains(&format!("records        {startup_events}")));

    let status = daemon.terminate();
    assert!(status.success(), "serve exited with {status}");

    // State comes back; the new listen address is recorded as a config change.
    let daemon = Serve::start(&data, free_port(), &[]);
    let (_, body) = daemon.get(&format!("/api/v1/stats?min_position={startup_events}"));
    // Only the config change is new: the registry is seeded once.
    assert_eq!(body["view"]["events_total"], startup_events + 1);
    let (_, body) = daemon.get("/api/v1/events?stream=config&from=1");
    assert_eq!(
        body["events"][0]["payload"]["changes"],
        serde_json::json!(["server.listen"])
    );
    let status = daemon.terminate();
    assert!(status.success());
}

#[test]
fn audit_verify_names_the_file_and_offset_of_damage() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let daemon = Serve::start(&data, free_port(), &[]);
    assert!(daemon.terminate().success());
    let segment = data.join("log").join("0000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes[20] ^= 0x01;
    std::fs::write(&segment, &bytes).expect("write");
    let verify = run(&["audit", "verify"], &data);
    assert!(!verify.status.success());
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains("0000000000.seg") && stderr.contains("byte offset 0"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
}

#[test]
fn config_check_names_the_bad_key() {
    let root = tempfile::tempdir().expect("tempdir");
    let file = root.path().join("bad.toml");
    std::fs::write(&file, "[learning]\nweekly_decay = 3.0\n").expect("write");
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("learning.weekly_decay"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("tutorlog.example.toml");
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&example)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `serve` turns transparent huge pages off for itself (`src/allocator.rs`):
/// the kernel reports `THP_enabled: 0` for the process.
#[cfg(target_os = "linux")]
fn assert_transparent_huge_pages_off(pid: u32) {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return; // the operator's choice wins
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        return; // kernels before 5.0 do not report it
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

/// The projections' runtime threads (`tutorlog-views`) run at the default
/// `projections.nice` (10) above the request path's workers (`tutorlog-worker`).
#[cfg(target_os = "linux")]
fn assert_views_threads_run_niced(pid: u32) {
    let mut views = Vec::new();
    let mut workers = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    for task in tasks {
        let path = task.expect("task entry").path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Field 19 of stat is the nice value; the name in field 2 may hold spaces,
        // so count from the ")" that ends it.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let nice: i32 = after_name
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice in /proc/PID/task/TID/stat");
        match comm.trim() {
            "tutorlog-views" => views.push(nice),
            "tutorlog-worker" => workers.push(nice),
            _ => {}
        }
    }
    assert!(
        !views.is_empty() && !workers.is_empty(),
        "views {views:?}, workers {workers:?}"
    );
    let worker = workers[0];
    assert!(workers.iter().all(|&n| n == worker), "workers {workers:?}");
    assert!(
        views.iter().all(|&n| n == (worker + 10).min(19)),
        "views {views:?}, workers {workers:?}"
    );
}
