//! End-to-end: the real `tutorlog` binary on loopback.
//!
//! Starts `serve` on an empty directory, checks the health, readiness, metrics and
//! event endpoints and their error shapes, runs `events` and `audit verify` beside
//! it, refuses a second writer, stops on SIGTERM and restarts on the same data.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tutorlog");

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    fn start(data_dir: &Path) -> Daemon {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TUTORLOG_LOG", "warn")
            .env_remove("TUTORLOG_CONFIG")
            .current_dir(data_dir.parent().expect("parent"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tutorlog serve");
        let daemon = Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = get(&format!("{}/readyz", self.base)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon not ready within 30 s");
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY-free: libc::kill is a plain syscall wrapper; no memory is shared.
        let rc = send_sigterm(pid);
        assert_eq!(rc, 0, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn send_sigterm(pid: i32) -> i32 {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ignored_already_dead = self.child.kill();
            let _ignored_reaped = self.child.wait();
        }
    }
}

/// A minimal blocking HTTP/1.1 GET, so the test needs no HTTP client stack.
fn get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("not http"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).expect("GET");
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {body:?}"));
    (status, value)
}

fn run(args: &[&str], data_dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TUTORLOG_LOG", "warn")
        .output()
        .expect("run tutorlog")
}

#[test]
fn serve_answers_stops_cleanly_and_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let daemon = Daemon::start(&data);

    let (status, body) = get_json(&format!("{}/healthz", daemon.base));
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));

    // The daemon records its configuration as the first event, then the algorithm
    // registry registers its default versions (algo.* events, counted here).
    let (status, body) = get_json(&format!("{}/api/v1/events?limit=100", daemon.base));
    assert_eq!(status, 200);
    let events = body["events"].as_array().expect("events");
    assert_eq!(events[0]["event_type"], "config.applied");
    assert_eq!(events[0]["position"], 0);
    assert!(events[1..].iter().all(|e| e["event_type"]
        .as_str()
        .is_some_and(|t| t.starts_with("algo."))));
    let startup_events = events.len() as u64;
    assert_eq!(body["next_from"], startup_events);
    let (status, body) = get_json(&format!(
        "{}/api/v1/events?stream=config&from=0",
        daemon.base
    ));
    assert_eq!(
        (status, body["events"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // Read-your-writes on a view.
    let (status, body) = get_json(&format!(
        "{}/api/v1/stats?min_position={}",
        daemon.base,
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
        let (status, body) = get_json(&format!("{}{path}", daemon.base));
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
        let (status, body) = get_json(&format!(
            "{}/api/v1/stats?min_position={position}",
            daemon.base
        ));
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

    let (status, metrics) = get(&format!("{}/metrics", daemon.base)).expect("metrics");
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
    let daemon = Daemon::start(&data);
    let (_, body) = get_json(&format!(
        "{}/api/v1/stats?min_position={startup_events}",
        daemon.base
    ));
    // Only the config change is new: the registry is seeded once.
    assert_eq!(body["view"]["events_total"], startup_events + 1);
    let (_, body) = get_json(&format!(
        "{}/api/v1/events?stream=config&from=1",
        daemon.base
    ));
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
    let daemon = Daemon::start(&data);
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
