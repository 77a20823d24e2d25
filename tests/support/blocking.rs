//! The synchronous side of the harness: `serve` as a child process and a minimal
//! blocking HTTP/1.1 client, for tests that need no async runtime (and no HTTP
//! client stack between them and the bytes the daemon sends).

use std::{
    io::{Read, Write},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::BIN;

/// How long a started daemon may take to answer `/readyz` (the machine is shared
/// and slow when several builds run).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running `tutorlog serve` on a loopback port, killed on drop if still alive.
pub struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Serve {
    /// Starts `serve` on `data_dir` and `port` (keep the port on a restart when
    /// the test wants the effective configuration, and so the log, unchanged)
    /// with `env` added, and waits until it is ready. No configuration file or
    /// store selection leaks in from the caller's environment.
    pub fn start(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Serve {
        // Only the test daemons' `min_position` wait ([`super::MIN_POSITION_WAIT`]).
        let parent = data_dir.parent().expect("data dir has a parent");
        let config = parent.join("serve-test.toml");
        std::fs::write(&config, format!("[server]\n{}", super::MIN_POSITION_WAIT))
            .expect("write the test config");
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TUTORLOG_LOG", "warn")
            .env_remove("TUTORLOG_CONFIG")
            .env_remove("TUTORLOG_STORE")
            .envs(env.iter().copied())
            .current_dir(parent)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command.spawn().expect("spawn tutorlog serve");
        let mut daemon = Serve {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok((200, _)) = request(&daemon.addr, "GET", "/readyz", None, None) {
                return daemon;
            }
            assert!(daemon.is_running(), "serve exited before it was ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon not ready within {READY_WITHIN:?}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// GET, the body parsed as JSON (a test failure if it is not).
    pub fn get(&self, path: &str) -> (u16, Value) {
        json(path, request(&self.addr, "GET", path, None, None))
    }

    /// GET, the body as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        request(&self.addr, "GET", path, None, None).expect("GET")
    }

    /// GET that must answer 200; the body as text.
    pub fn get_ok(&self, path: &str) -> String {
        let (status, body) = self.get_text(path);
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// POST a JSON body without credentials.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_admin(path, body, None)
    }

    /// POST a JSON body with `token` as the bearer token, if any.
    pub fn post_admin(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        json(
            path,
            request(&self.addr, "POST", path, Some(&body.to_string()), token),
        )
    }

    /// SIGTERM, then waits (at most 20 s) for the exit, so the log is closed
    /// cleanly before the test reads the directory.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
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

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ignored_already_dead = self.child.kill();
            let _ignored_reaped = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with a JSON
/// body and a bearer token if given. Returns the status and the body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
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

/// A response's body as JSON; `path` names the request in a failure.
pub fn json(path: &str, response: std::io::Result<(u16, String)>) -> (u16, Value) {
    let (status, body) = response.unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {body:?}"));
    (status, value)
}

/// Runs a `tutorlog` subcommand on `data_dir` and returns its output.
pub fn tutorlog(args: &[&str], data_dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TUTORLOG_LOG", "warn")
        .output()
        .expect("run tutorlog")
}
