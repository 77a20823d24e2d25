//! Shared harness for end-to-end tests: the real `tutorlog` binary as a daemon and
//! as a mock provider, on loopback ports.

#![allow(dead_code)]

pub mod blocking;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tutorlog");
/// The admin token the daemons in these tests accept.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";
/// The gateway key the daemons in these tests accept.
pub const API_KEY: &str = "sk-e2e";

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// How long until the next UTC month begins, from `now`.
pub fn until_next_month(now: chrono::DateTime<chrono::Utc>) -> Duration {
    use chrono::{Datelike, TimeZone};
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next = chrono::Utc
        .with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    (next - now).to_std().unwrap_or_default()
}

/// Waits out a month boundary that would fall within `span` from now.
///
/// Budgets are monthly, taken from event time (the wall clock): a test that
/// counts calls against one month's limit would see a second limit if the
/// month turned mid-test. Rare (a few minutes a month), but a false failure in
/// CI all the same.
pub async fn clear_of_month_end(span: Duration) {
    let left = until_next_month(chrono::Utc::now());
    if left < span {
        eprintln!("waiting {left:?} for the month to turn before a budget test");
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `tutorlog mock-provider`.
pub struct Mock {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Mock {
    /// Starts a mock provider with extra flags; waits for its address line.
    pub fn start(flags: &[&str]) -> Mock {
        let mut child = Command::new(BIN)
            .args(["mock-provider", "--listen", "127.0.0.1:0"])
            .args(flags)
            .env("TUTORLOG_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mock-provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("mock address line");
        let url = line.trim().rsplit(' ').next().expect("address").to_owned();
        assert!(url.starts_with("http://"), "unexpected banner {line:?}");
        Mock {
            proc: Proc { child },
            url,
        }
    }

    /// The base URL a provider entry uses for it.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// `POST /mock/config` (faults, latency, tokens at runtime); it must answer
    /// 200. Returns the mock's answer (its settings now).
    pub async fn configure(&self, settings: &serde_json::Value) -> serde_json::Value {
        let response = client()
            .post(format!("{}/mock/config", self.url))
            .json(settings)
            .send()
            .await
            .expect("POST /mock/config");
        assert_eq!(response.status(), 200, "mock config {settings}");
        response.json().await.expect("mock config JSON")
    }

    /// `GET /mock/stats`: what the mock served.
    pub async fn stats(&self) -> serde_json::Value {
        client()
            .get(format!("{}/mock/stats", self.url))
            .send()
            .await
            .expect("GET /mock/stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// A running `tutorlog serve`.
pub struct Daemon {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    /// Writes `config` (TOML, without `[server]`) beside `data_dir` and starts
    /// `serve` on a free port; waits for `/readyz`.
    pub async fn start(dir: &Path, config: &str) -> Daemon {
        let port = free_port();
        let config_path = dir.join("tutorlog.toml");
        std::fs::write(&config_path, with_listen(config, port)).expect("write config");
        Daemon::start_with(dir, &config_path, port).await
    }

    /// Starts `serve` with an existing config file on `port`.
    pub async fn start_with(dir: &Path, config: &Path, port: u16) -> Daemon {
        Daemon::spawn(dir, config, port, &[], None).await
    }

    /// [`Daemon::start`] with extra environment variables and the daemon's
    /// stderr (its log, at debug level) written to `log`.
    pub async fn start_logged(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Daemon {
        let port = free_port();
        let config_path = dir.join("tutorlog.toml");
        std::fs::write(&config_path, with_listen(config, port)).expect("write config");
        Daemon::spawn(dir, &config_path, port, env, Some(log)).await
    }

    async fn spawn(
        dir: &Path,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Daemon {
        // The port was free when `free_port` let go of it, but the daemon binds
        // only after it opened the store: another test may take it first. Then
        // the daemon exits at once, and it is started again on another port
        // (`--listen` wins over the config file's `server.listen`).
        // An exit for any other reason repeats on every port, and its own error
        // (on stderr, or in `log`) says why.
        let mut port = port;
        let mut exits = Vec::new();
        for _attempt in 0..3 {
            match Daemon::spawn_on(dir, config, port, env, log).await {
                Ok(daemon) => return daemon,
                Err(status) => {
                    eprintln!("serve on port {port} exited before it was ready ({status}); its port may have been taken, so it starts again on another");
                    exits.push(format!("port {port}: {status}"));
                    port = free_port();
                }
            }
        }
        panic!(
            "serve exited before it was ready three times ({}): not a port race, see its error{}",
            exits.join(", "),
            log.map_or(" above".to_owned(), |path| format!(
                " in {}",
                path.display()
            ))
        );
    }

    /// One start: the daemon once `/readyz` answers 200, or how it exited first.
    async fn spawn_on(
        dir: &Path,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Result<Daemon, std::process::ExitStatus> {
        let data_dir = dir.join("data");
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::inherit(),
        };
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TUTORLOG_LOG", if log.is_some() { "debug" } else { "warn" })
            .env("TUTORLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn serve");
        let mut daemon = Daemon {
            proc: Proc { child },
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            config: config.to_path_buf(),
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let ready = match client.get(format!("{}/readyz", daemon.url)).send().await {
                Ok(response) => response.status() == 200,
                Err(_) => false,
            };
            // Checked after the answer: a 200 that comes after our daemon
            // exited is from a process that took the port, and must not count.
            if let Ok(Some(status)) = daemon.proc.child.try_wait() {
                return Err(status);
            }
            if ready {
                return Ok(daemon);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("daemon not ready within 60 s");
    }

    /// Waits until the log's head (`/readyz`) stays put across `between` and
    /// `pause`, and returns its next position. It watches the store itself, not
    /// a projection, whose fold a loaded machine may hold back. `between` gets
    /// the next position seen first (e.g. to read the views at it).
    pub async fn wait_still(&self, pause: Duration, between: impl AsyncFn(u64)) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, ready) = self.get("/readyz").await;
            let next = ready["last_position"].as_u64().map_or(0, |last| last + 1);
            between(next).await;
            tokio::time::sleep(pause).await;
            let (_, again) = self.get("/readyz").await;
            if again["last_position"] == ready["last_position"] {
                return next;
            }
            assert!(Instant::now() < deadline, "the log kept growing for 30 s");
        }
    }

    /// Stops the daemon with SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.proc.child.id();
        // `kill` sends SIGTERM: the daemon's graceful shutdown path.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let status = self.proc.child.wait().expect("wait");
        assert!(status.success(), "daemon exited with {status}");
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POST JSON with the gateway key.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// POST JSON with the admin token.
    pub async fn post_admin(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Runs `tutorlog ARGS --data-dir DIR` and returns stdout.
    pub fn tool(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("TUTORLOG_LOG", "error")
            .output()
            .expect("run tool");
        assert!(
            output.status.success(),
            "tutorlog {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }
}

/// `config` with `server.listen` set to `port` (in its `[server]` table if it
/// starts with one).
fn with_listen(config: &str, port: u16) -> String {
    let server = server_keys(&format!("127.0.0.1:{port}"));
    match config.strip_prefix("[server]\n") {
        Some(rest) => format!("[server]\n{server}{rest}"),
        None => format!("[server]\n{server}\n{config}"),
    }
}

/// The `[server]` key every test daemon gets: a `min_position` wait long
/// enough for a fold that a loaded CI machine holds back (the default 2 s
/// answers 503 first; tests want the view, not the 503).
pub const MIN_POSITION_WAIT: &str = "min_position_wait_ms = 30000\n";

/// The `[server]` keys of a test daemon listening on `listen`.
pub fn server_keys(listen: &str) -> String {
    format!("listen = \"{listen}\"\n{MIN_POSITION_WAIT}")
}

/// A keep-alive client with TCP_NODELAY.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client")
}

/// A chat completion body.
pub fn chat_body(text: &str, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
    })
}

/// A `[[providers]]` entry for a mock at `base_url`.
pub fn mock_provider_toml(
    name: &str,
    base_url: &str,
    priority: u32,
    monthly_usd: f64,
    open_secs: u64,
) -> String {
    mock_provider_toml_with(name, base_url, priority, monthly_usd, 3000, open_secs)
}

/// [`mock_provider_toml`] with the provider's timeout.
pub fn mock_provider_toml_with(
    name: &str,
    base_url: &str,
    priority: u32,
    monthly_usd: f64,
    timeout_ms: u64,
    open_secs: u64,
) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"mock\"\nbase_url = \"{base_url}\"\npriority = {priority}\ntimeout_ms = {timeout_ms}\nmonthly_budget_usd = {monthly_usd}\ncircuit = {{ failure_threshold = 5, success_threshold = 2, open_secs = {open_secs}, half_open_max_calls = 3 }}\nmodels = [{{ name = \"mock-1\", input_usd_per_mtok = 1000.0, output_usd_per_mtok = 2000.0 }}]\n\n"
    )
}

/// The `[gateway]` section these tests use.
pub fn gateway_toml(reservations: &str) -> String {
    format!(
        "[gateway]\napi_keys = [{{ key = \"{API_KEY}\", user_id = \"e2e\" }}]\nreservations = \"{reservations}\"\ndefault_max_tokens = 16\n\n"
    )
}
