//! Shared harness of the fault-injection tests (`tests/faults_*.rs`, described in
//! `tests/faults/README.md`): the real `tutorlog` binary as daemon, mock provider,
//! load generator and offline tools, plus the checks every fault test ends with
//! (acknowledged writes present, chain intact, live views equal to a fresh replay,
//! budgets within their limits).
//!
//! Every test runs a short mode by default (CI) and a long one with
//! `TUTORLOG_FAULTS_LONG=1`; `TUTORLOG_FAULTS_SEED=N` repeats a run (each test
//! prints the seed it used first, so a failure can be replayed).

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

#[path = "../support/mod.rs"]
mod support;

/// A running `tutorlog mock-provider` (the shared harness's), killed on drop.
pub use support::Mock as MockProvider;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tutorlog");
/// The gateway key the fault daemons accept.
pub const API_KEY: &str = "sk-faults";
/// The admin token the fault daemons accept.
pub const ADMIN_TOKEN: &str = "faults-admin-token";
/// Every view `GET /api/v1/views/{name}` serves.
pub const VIEWS: [&str; 7] = [
    "stream_stats",
    "mastery",
    "algo_runs",
    "spend",
    "provider_health",
    "benchmarks",
    "routing",
];
/// How long a (debug, on a busy 2-core machine) daemon may take to be ready.
pub const READY_WITHIN: Duration = Duration::from_secs(90);

/// Short (CI) or long mode, and the seed of this run.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// `TUTORLOG_FAULTS_LONG=1`.
    pub long: bool,
    /// `TUTORLOG_FAULTS_SEED`, else from the clock.
    pub seed: u64,
}

impl Mode {
    /// Reads the mode and seed from the environment and prints them.
    pub fn from_env(test: &str) -> Mode {
        let long = std::env::var("TUTORLOG_FAULTS_LONG").is_ok_and(|v| v == "1");
        let seed = std::env::var("TUTORLOG_FAULTS_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
            });
        eprintln!(
            "{test}: {} mode, seed {seed} (repeat with TUTORLOG_FAULTS_SEED={seed}{})",
            if long { "long" } else { "short" },
            if long { " TUTORLOG_FAULTS_LONG=1" } else { "" }
        );
        Mode { long, seed }
    }

    /// `short` or `long` by mode; `TUTORLOG_FAULTS_CYCLES` overrides both.
    pub fn cycles(&self, short: u64, long: u64) -> u64 {
        std::env::var("TUTORLOG_FAULTS_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if self.long { long } else { short })
    }
}

/// A small deterministic generator (splitmix64): the tests need reproducible
/// choices from a printed seed, nothing more.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }
}

pub use support::free_port;

/// A keep-alive HTTP client with TCP_NODELAY and a generous overall timeout (a
/// request that hangs fails the test instead of the test hanging).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// A running `tutorlog serve` whose stderr goes to a log file. Killed on drop.
pub struct Serve {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The daemon's log (stderr).
    pub log: PathBuf,
}

impl Serve {
    /// Starts `serve` with `config` (TOML) written to `dir/tutorlog.toml`, data in
    /// `data_dir`, on a free port, its log appended to `dir/serve.log`. Does not
    /// wait: see [`Serve::ready`].
    pub fn spawn(dir: &Path, data_dir: &Path, config: &str) -> Serve {
        Serve::spawn_on(dir, data_dir, config, free_port())
    }

    /// [`Serve::spawn`] on `port` (a restart on the same port keeps the effective
    /// configuration, and so records no new `config.applied`).
    pub fn spawn_on(dir: &Path, data_dir: &Path, config: &str, port: u16) -> Serve {
        let config_path = dir.join("tutorlog.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.join("serve.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("serve log");
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TUTORLOG_LOG", "info")
            .env("TUTORLOG_ADMIN_TOKEN", ADMIN_TOKEN)
            .env_remove("TUTORLOG_CONFIG")
            .env_remove("TUTORLOG_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn serve");
        Serve {
            child: Some(child),
            port,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// [`Serve::spawn`], then waits for `/readyz`.
    pub async fn start(dir: &Path, data_dir: &Path, config: &str) -> Result<Serve, String> {
        let mut serve = Serve::spawn(dir, data_dir, config);
        serve.ready(READY_WITHIN).await?;
        Ok(serve)
    }

    /// Waits until `/readyz` answers 200, failing early if the process exits.
    pub async fn ready(&mut self, within: Duration) -> Result<(), String> {
        let http = client();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "daemon exited with {status} before it was ready; log tail:\n{}",
                    self.log_tail(20)
                ));
            }
            if let Ok(response) = http.get(format!("{}/readyz", self.url)).send().await {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "daemon not ready within {within:?}; log tail:\n{}",
            self.log_tail(20)
        ))
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL and reap: a crash, with no shutdown code run.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already dead is fine: the point is that it is gone.
            if child.kill().is_err() {
                eprintln!("daemon was already gone at SIGKILL");
            }
            child.wait().expect("reap daemon");
        }
    }

    /// SIGTERM and wait for the graceful shutdown (final snapshots, final sync).
    pub fn terminate(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        signal(child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("daemon exited with {status} on SIGTERM"))
                };
            }
            if Instant::now() > deadline {
                child.kill().map_err(|e| e.to_string())?;
                child.wait().map_err(|e| e.to_string())?;
                return Err("daemon did not stop within 60 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// GET `path`: status and body text.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let response = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {path} body: {e}"))?;
        Ok((status, text))
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> Result<(u16, Value), String> {
        let (status, text) = self.get_text(path).await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// POST JSON `body` to `path` with the gateway key: status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let response = client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (e.g. `-INT`) to `pid` with `kill(1)` (the crate denies unsafe
/// code, so no `libc::kill`).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
    // A process that already exited is not an error here.
    if !status.success() {
        eprintln!("kill {signal} {pid}: process already gone");
    }
}

/// A `[[providers]]` entry for a mock (model `mock-1` at 1,000 µ$ per input and
/// 2,000 µ$ per output token, so every cost is a whole number of micro-USD).
pub fn provider_toml(name: &str, base_url: &str, priority: u32, monthly_usd: f64) -> String {
    provider_toml_with(name, base_url, priority, monthly_usd, 3000, 1)
}

/// [`provider_toml`] with a timeout and the circuit's open time.
pub fn provider_toml_with(
    name: &str,
    base_url: &str,
    priority: u32,
    monthly_usd: f64,
    timeout_ms: u64,
    open_secs: u64,
) -> String {
    support::mock_provider_toml_with(name, base_url, priority, monthly_usd, timeout_ms, open_secs)
}

/// Micro-USD per input and output token of [`provider_toml`]'s model.
pub const PRICE_MICROS: (u64, u64) = (1_000, 2_000);

/// The `[gateway]` section of the fault daemons.
pub fn gateway_toml(reservations: &str) -> String {
    format!(
        "[gateway]\napi_keys = [{{ key = \"{API_KEY}\", user_id = \"faults\" }}]\nreservations = \"{reservations}\"\ndefault_max_tokens = 16\n\n"
    )
}

/// Runs `tutorlog ARGS --data-dir DIR`: stdout, or the error with stderr.
pub fn tool(args: &[&str], data_dir: &Path) -> Result<String, String> {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TUTORLOG_LOG", "error")
        .output()
        .map_err(|e| format!("run tutorlog {args:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "tutorlog {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("tutorlog {args:?}: {e}"))
}

/// `tutorlog audit verify`: its report, or why it failed.
pub fn audit_verify(data_dir: &Path) -> Result<String, String> {
    tool(&["audit", "verify"], data_dir)
}

/// Every event in the log (`tutorlog events`), in position order.
pub fn log_events(data_dir: &Path) -> Result<Vec<Value>, String> {
    let text = tool(&["events"], data_dir)?;
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let event: Value =
            serde_json::from_str(line).map_err(|e| format!("event line {index}: {e}"))?;
        if event["position"].as_u64() != Some(index as u64) {
            return Err(format!(
                "event line {index} has position {}",
                event["position"]
            ));
        }
        events.push(event);
    }
    Ok(events)
}

/// Compares every view the daemon serves with `tutorlog replay --view V --until
/// next_position-1` of the same log: the documents must be byte-identical.
/// Returns the smallest `next_position` seen.
pub async fn views_match_replay(serve: &Serve) -> Result<u64, String> {
    let mut lowest = u64::MAX;
    for view in VIEWS {
        let (status, live) = serve.get_text(&format!("/api/v1/views/{view}")).await?;
        if status != 200 {
            return Err(format!("GET view {view}: {status} {live}"));
        }
        let document: Value =
            serde_json::from_str(&live).map_err(|e| format!("view {view}: {e}"))?;
        let next = document["next_position"]
            .as_u64()
            .ok_or_else(|| format!("view {view} has no next_position"))?;
        lowest = lowest.min(next);
        let Some(until) = next.checked_sub(1) else {
            continue;
        };
        let replayed = tool(
            &["replay", "--view", view, "--until", &until.to_string()],
            &serve.data_dir,
        )?;
        if replayed.trim_end() != live {
            return Err(format!(
                "view {view} at next_position {next}: live and replayed differ\nlive:     {}\nreplayed: {}",
                clip(&live),
                clip(replayed.trim_end())
            ));
        }
    }
    Ok(lowest)
}

fn clip(text: &str) -> String {
    if text.len() <= 600 {
        return text.to_owned();
    }
    let mut end = 600;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// What the acknowledged-write check found.
#[derive(Debug, Default, Clone, Copy)]
pub struct AckCheck {
    /// Learning writes (with a position) found at their position.
    pub positioned: u64,
    /// Chat answers whose reservation was found.
    pub chats: u64,
    /// Chat answers whose `request-{id}` record did not survive (it is written off
    /// the response path, so a crash may take it: counted, not a failure).
    pub chat_records_missing: u64,
}

/// Checks every `--record` line in `record` against `events`:
/// - a learning write: the event at its `position` is on `learner-{user_id}` and
///   names its session or challenge id;
/// - a chat answer (strict reservations): a `budget.reserved` for its request id is
///   in the log (the reservation was durable before the provider was called).
pub fn check_acks(record: &Path, events: &[Value]) -> Result<AckCheck, String> {
    let text = match std::fs::read_to_string(record) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("reading {}: {error}", record.display())),
    };
    let mut reserved: HashMap<String, u64> = HashMap::new();
    let mut recorded: HashMap<String, u64> = HashMap::new();
    for event in events {
        let position = event["position"].as_u64().unwrap_or(u64::MAX);
        if event["event_type"] == "budget.reserved" {
            if let Some(id) = event["payload"]["request_id"].as_str() {
                reserved.insert(id.to_owned(), position);
            }
        }
        if let Some(id) = event["stream"]
            .as_str()
            .and_then(|s| s.strip_prefix("request-"))
        {
            recorded.insert(id.to_owned(), position);
        }
    }
    let mut check = AckCheck::default();
    for (number, line) in text.lines().enumerate() {
        // The generator flushes whole lines; a line cut by its own death is the
        // only unparsable one it can leave, at the very end.
        let Ok(ack) = serde_json::from_str::<Value>(line) else {
            if number + 1 == text.lines().count() {
                continue;
            }
            return Err(format!("record line {number} does not parse: {line}"));
        };
        if let Some(position) = ack["position"].as_u64() {
            check_learning_ack(&ack, position, events)?;
            check.positioned += 1;
        } else if let Some(id) = ack["request_id"].as_str() {
            if !reserved.contains_key(id) {
                return Err(format!(
                    "acknowledged chat {id} has no durable budget.reserved: {line}"
                ));
            }
            if !recorded.contains_key(id) {
                check.chat_records_missing += 1;
            }
            check.chats += 1;
        } else {
            return Err(format!(
                "record line without position or request id: {line}"
            ));
        }
    }
    Ok(check)
}

fn check_learning_ack(ack: &Value, position: u64, events: &[Value]) -> Result<(), String> {
    let event = events.get(position as usize).ok_or_else(|| {
        format!(
            "LOST: acknowledged position {position} is past the log's end ({} events): {ack}",
            events.len()
        )
    })?;
    let user = ack["user_id"].as_str().unwrap_or("");
    let stream = format!("learner-{user}");
    if event["stream"].as_str() != Some(stream.as_str()) {
        return Err(format!(
            "acknowledged position {position} holds {} on {} instead of a {stream} event: {ack}",
            event["event_type"], event["stream"]
        ));
    }
    let payload = event["payload"].to_string();
    for key in ["session_id", "challenge_id"] {
        if let Some(id) = ack[key].as_str() {
            if !payload.contains(id) {
                return Err(format!(
                    "acknowledged position {position} ({}) does not name {key} {id}: {ack}",
                    event["event_type"]
                ));
            }
        }
    }
    Ok(())
}

/// What the budget check found.
#[derive(Debug, Default, Clone)]
pub struct BudgetCheck {
    /// Reservations with neither commit nor release, per provider.
    pub open: BTreeMap<String, u64>,
    /// Micro-USD committed, per provider (all periods).
    pub committed: BTreeMap<String, u64>,
}

/// Checks the spend view (`GET /api/v1/views/spend`) against the log's budget
/// events: for every provider and month, committed + reserved ≤ limit (for a paid
/// provider), and the reserved figure is exactly the sum of the estimates of the
/// reservations the log holds open, so no open reservation is ever forgotten
/// (after a crash in strict mode they count as spent). Also checks that each
/// reservation is closed at most once.
pub fn check_budgets(spend: &Value, events: &[Value]) -> Result<BudgetCheck, String> {
    // provider -> request -> (period, estimate)
    let mut open: BTreeMap<String, BTreeMap<String, (String, u64)>> = BTreeMap::new();
    let mut check = BudgetCheck::default();
    for event in events {
        let Some(provider) = event["stream"]
            .as_str()
            .and_then(|s| s.strip_prefix("budget-"))
        else {
            continue;
        };
        let payload = &event["payload"];
        let id = payload["request_id"].as_str().unwrap_or("").to_owned();
        match event["event_type"].as_str() {
            Some("budget.reserved") => {
                let period = payload["period"].as_str().unwrap_or("").to_owned();
                let estimate = payload["estimate_micros"].as_u64().unwrap_or(0);
                let slot = open.entry(provider.to_owned()).or_default();
                if slot.insert(id.clone(), (period, estimate)).is_some() {
                    return Err(format!("request {id} reserved twice on {provider}"));
                }
            }
            Some(kind @ ("budget.committed" | "budget.released")) => {
                let slot = open.entry(provider.to_owned()).or_default();
                if slot.remove(&id).is_none() {
                    return Err(format!(
                        "{kind} for {id} on {provider} closes no open reservation"
                    ));
                }
                if kind == "budget.committed" {
                    *check.committed.entry(provider.to_owned()).or_default() +=
                        payload["actual_micros"].as_u64().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    let providers = spend["view"]["providers"]
        .as_object()
        .ok_or("spend view has no providers")?;
    for (provider, row) in providers {
        let held = open.get(provider).cloned().unwrap_or_default();
        check.open.insert(provider.clone(), held.len() as u64);
        if row["open_reservations"].as_u64() != Some(held.len() as u64) {
            return Err(format!(
                "{provider}: spend view shows {} open reservations, the log holds {}",
                row["open_reservations"],
                held.len()
            ));
        }
        let periods = row["periods"].as_object().cloned().unwrap_or_default();
        for (period, figures) in &periods {
            let reserved = figures["reserved_micros"].as_u64().unwrap_or(0);
            let committed = figures["committed_micros"].as_u64().unwrap_or(0);
            let limit = figures["limit_micros"].as_u64().unwrap_or(0);
            let held_here: u64 = held
                .values()
                .filter(|(p, _)| p == period)
                .map(|(_, estimate)| estimate)
                .sum();
            if reserved != held_here {
                return Err(format!(
                    "{provider} {period}: reserved {reserved} µ$ in the view, open reservations in the log hold {held_here} µ$"
                ));
            }
            if figures["free"] != Value::Bool(true) && committed + reserved > limit {
                return Err(format!(
                    "{provider} {period}: OVERSPENT: committed {committed} + reserved {reserved} > limit {limit} µ$"
                ));
            }
        }
    }
    Ok(check)
}

/// Runs `tutorlog load` against `url` for `duration_secs` with `--record`, in the
/// background. Stop it early with [`Load::interrupt`].
pub struct Load {
    child: Option<Child>,
    /// Where its report goes (JSON).
    pub report: PathBuf,
}

impl Load {
    /// Starts the generator: `mix` as `T:C:G`, closed loop with `concurrency`
    /// clients, learners `load{seed}-*`.
    pub fn start(
        url: &str,
        record: &Path,
        report: &Path,
        seed: u64,
        duration_secs: f64,
        mix: &str,
        concurrency: u32,
    ) -> Load {
        let child = Command::new(BIN)
            .args(["load", "--target", url, "--mix", mix])
            .args(["--duration", &format!("{duration_secs:.2}")])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--learners", &(concurrency * 4).to_string()])
            .args(["--rounds", "3", "--seed", &seed.to_string()])
            .args(["--api-key", API_KEY])
            .arg("--record")
            .arg(record)
            .arg("--json")
            .arg(report)
            .env("TUTORLOG_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tutorlog load");
        Load {
            child: Some(child),
            report: report.to_path_buf(),
        }
    }

    /// SIGINT (the generator flushes its record file and reports), then waits.
    pub fn interrupt(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "-INT");
        }
        self.wait();
    }

    /// Waits for the generator to end (at most 60 s, then kills it).
    pub fn wait(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("load generator did not stop; killing it");
        if child.kill().is_ok() {
            let _reaped = child.wait();
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.kill().is_ok() {
                let _reaped = child.wait();
            }
        }
    }
}

/// Reads a counter or gauge from a Prometheus text page: the sum over every
/// series of `name` (labels ignored); `None` when the metric is absent.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(value) = value {
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}
