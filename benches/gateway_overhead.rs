//! Gateway overhead and throughput against the physical limits, with LiteLLM's
//! proxy side by side: the same client load goes straight to the mock provider,
//! through `tutorlog serve` (strict and fast reservations) and through LiteLLM,
//! interleaved slice by slice in one run, with the raw fsync cycle (256-byte
//! `pwrite` + `fdatasync` on a preallocated file) measured in paired slices on the
//! same filesystem. See `BENCHMARKS.md`, "Gateway".
//!
//! ```text
//! cargo bench --bench gateway_overhead -- [--quick] [--seconds S] [--rounds R]
//!     [--loads c1,c32,r100,r1000] [--targets direct,strict,fast,tensorzero,litellm]
//!     [--tensorzero PYTHON | --no-tensorzero] [--litellm PATH | --no-litellm]
//!     [--dir PATH] [--keep]
//!     [--perf TARGET:LOAD:FILE] [--tutorlog PATH] [--baseline PATH]
//!     [--config-extra FILE]
//! ```
//!
//! TensorZero's gateway runs from its PyPI package (`tensorzero`, whose wheel
//! holds the whole Rust gateway; `benches/gateway/tensorzero_host.py` starts its
//! HTTP server with `_start_http_gateway`, the helper behind
//! `patch_openai_client`), with observability off, as TensorZero's own
//! benchmarks run it. `benches/gateway/setup_tensorzero.sh` installs it.
//!
//! `--baseline PATH` adds the targets `strict-base` and `fast-base`: the same two
//! daemons from another build, in the same interleaved rounds, for a before/after
//! comparison that the machine's weather cannot tilt. `--config-extra FILE`
//! appends FILE's TOML to the config of `strict` and `fast` only (not of the
//! `-base` daemons): with `--baseline` naming the same binary, an A/B of one
//! setting.
//!
//! Loads: `cN` is N keep-alive connections in a closed loop (each sends its next
//! request when the last answer is read); `rN` is an open loop at N requests/s over
//! [`OPEN_LOOP_CONNECTIONS`] connections, each request timed from its intended
//! send time whenever its connection was still busy then (so a stall is charged to
//! every request it delayed: no coordinated omission).

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{Read, Write},
    net::{SocketAddr, TcpStream as StdTcpStream},
    os::unix::{fs::FileExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, header, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connections of the open-loop loads.
const OPEN_LOOP_CONNECTIONS: usize = 32;
/// Longest wait for one answer before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Unmeasured load before each slice (connections opened, caches warm).
const WARM_UP: Duration = Duration::from_millis(300);
/// After a slice, its target must be this quiet before the next slice starts.
const SETTLE_WINDOW: Duration = Duration::from_millis(200);
/// Longest wait for that.
const SETTLE_MAX: Duration = Duration::from_secs(20);
/// Size of the raw fsync file; cycles wrap around inside it.
const RAW_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes per raw cycle (one log record's order of size).
const RAW_RECORD_BYTES: usize = 256;
/// Histogram range, nanoseconds.
const HISTOGRAM_NANOS_MAX: u64 = 120_000_000_000;
/// TensorZero's p99 overhead as the issue quotes it, measured on this kind of
/// machine by others (ms): at one connection, and at 1,000 requests/s. The
/// verdicts use the same run's TensorZero instead when it ran.
const TENSORZERO_P99_C1_MS: f64 = 0.36;
const TENSORZERO_P99_R1000_MS: f64 = 0.78;
/// TensorZero's throughput to a zero-latency mock as the issue quotes it.
const TENSORZERO_THROUGHPUT: f64 = 6_442.0;
/// The throughput target is this multiple of TensorZero's.
const THROUGHPUT_TARGET_FACTOR: f64 = 2.0;
/// The one request every target gets (same bytes to all).
const REQUEST_BODY: &str = r#"{"model":"mock-1","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}"#;
/// The same request in TensorZero's OpenAI-compatible dialect (its model names
/// carry a `tensorzero::model_name::` prefix).
const TENSORZERO_REQUEST_BODY: &str = r#"{"model":"tensorzero::model_name::mock-1","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}"#;
/// The gateway key of the benchmark daemons.
const API_KEY: &str = "sk-gwbench";

// ---------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone, Copy, PartialEq)]
enum Load {
    /// N connections, closed loop.
    Closed(usize),
    /// Requests/s, open loop.
    Rate(u32),
}

impl Load {
    fn parse(text: &str) -> Load {
        let number = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or_else(|| fail(&format!("bad load {text:?} (cN or rN)")))
        };
        match text.split_at(1.min(text.len())) {
            ("c", n) => Load::Closed(number(n) as usize),
            ("r", n) => Load::Rate(number(n)),
            _ => fail(&format!("bad load {text:?} (cN or rN)")),
        }
    }

    fn name(self) -> String {
        match self {
            Load::Closed(n) => format!("c{n}"),
            Load::Rate(r) => format!("r{r}"),
        }
    }

    fn describe(self) -> String {
        match self {
            Load::Closed(1) => "1 keep-alive connection, closed loop".into(),
            Load::Closed(n) => format!("{n} keep-alive connections, closed loop"),
            Load::Rate(r) => format!(
                "open loop at {r} requests/s over {OPEN_LOOP_CONNECTIONS} keep-alive connections"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Direct,
    Strict,
    Fast,
    /// `strict` from the `--baseline` build.
    StrictBase,
    /// `fast` from the `--baseline` build.
    FastBase,
    TensorZero,
    LiteLlm,
}

impl Kind {
    fn parse(text: &str) -> Kind {
        match text {
            "direct" => Kind::Direct,
            "strict" => Kind::Strict,
            "fast" => Kind::Fast,
            "strict-base" => Kind::StrictBase,
            "fast-base" => Kind::FastBase,
            "tensorzero" => Kind::TensorZero,
            "litellm" => Kind::LiteLlm,
            other => fail(&format!(
                "unknown target {other:?} (direct, strict, fast, strict-base, fast-base, tensorzero, litellm)"
            )),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Direct => "direct to mock",
            Kind::Strict => "tutorlog strict",
            Kind::Fast => "tutorlog fast",
            Kind::StrictBase => "baseline strict",
            Kind::FastBase => "baseline fast",
            Kind::TensorZero => "tensorzero",
            Kind::LiteLlm => "litellm",
        }
    }
}

struct Args {
    seconds: f64,
    rounds: usize,
    loads: Vec<Load>,
    kinds: Vec<Kind>,
    litellm: Option<PathBuf>,
    /// The Python of a venv with the `tensorzero` package.
    tensorzero: Option<PathBuf>,
    dir: Option<PathBuf>,
    keep: bool,
    /// (target, load, perf.data path): `perf record` the target during that load.
    perf: Option<(Kind, Load, PathBuf)>,
    /// The `tutorlog` binary to measure (default: the one this bench was built with).
    tutorlog: PathBuf,
    /// Another build, for the `strict-base` and `fast-base` targets.
    baseline: Option<PathBuf>,
    /// TOML appended to the `strict` and `fast` daemons' config.
    config_extra: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 4.0,
        rounds: 3,
        loads: ["c1", "c32", "r100", "r1000"].map(Load::parse).to_vec(),
        kinds: vec![
            Kind::Direct,
            Kind::Strict,
            Kind::Fast,
            Kind::TensorZero,
            Kind::LiteLlm,
        ],
        litellm: None,
        tensorzero: None,
        dir: None,
        keep: false,
        perf: None,
        tutorlog: PathBuf::from(BIN),
        baseline: None,
        config_extra: String::new(),
    };
    let (mut quick, mut seconds_given, mut rounds_given, mut no_litellm, mut no_tensorzero) =
        (false, false, false, false, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--seconds" => {
                args.seconds = value("--seconds")
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .unwrap_or_else(|| fail("--seconds needs a positive number"));
                seconds_given = true;
            }
            "--rounds" => {
                args.rounds = value("--rounds")
                    .parse()
                    .ok()
                    .filter(|r| *r > 0)
                    .unwrap_or_else(|| fail("--rounds needs a positive count"));
                rounds_given = true;
            }
            "--loads" => args.loads = value("--loads").split(',').map(Load::parse).collect(),
            "--targets" => {
                args.kinds = value("--targets").split(',').map(Kind::parse).collect();
                args.kinds.sort();
                args.kinds.dedup();
            }
            "--litellm" => args.litellm = Some(PathBuf::from(value("--litellm"))),
            "--no-litellm" => no_litellm = true,
            "--tensorzero" => args.tensorzero = Some(PathBuf::from(value("--tensorzero"))),
            "--no-tensorzero" => no_tensorzero = true,
            "--dir" => args.dir = Some(PathBuf::from(value("--dir"))),
            "--keep" => args.keep = true,
            "--perf" => args.perf = Some(parse_perf(&value("--perf"))),
            "--tutorlog" => args.tutorlog = PathBuf::from(value("--tutorlog")),
            "--baseline" => args.baseline = Some(PathBuf::from(value("--baseline"))),
            "--config-extra" => {
                let path = value("--config-extra");
                args.config_extra = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| fail(&format!("--config-extra {path}: {error}")));
            }
            "--quick" => quick = true,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            "--help" | "-h" => {
                println!("{}", USAGE);
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if quick {
        args.seconds = if seconds_given { args.seconds } else { 1.0 };
        args.rounds = if rounds_given { args.rounds } else { 1 };
    }
    if !args.kinds.contains(&Kind::Direct) {
        fail("--targets must include direct: every overhead is relative to it");
    }
    match &args.baseline {
        Some(_) => {
            for kind in [Kind::StrictBase, Kind::FastBase] {
                if !args.kinds.contains(&kind) {
                    args.kinds.push(kind);
                }
            }
            args.kinds.sort();
        }
        None if args
            .kinds
            .iter()
            .any(|k| matches!(k, Kind::StrictBase | Kind::FastBase)) =>
        {
            fail("strict-base and fast-base need --baseline PATH")
        }
        None => {}
    }
    resolve_peer(&LITELLM, &mut args.litellm, &mut args.kinds, no_litellm);
    resolve_peer(
        &TENSORZERO,
        &mut args.tensorzero,
        &mut args.kinds,
        no_tensorzero,
    );
    args
}

const USAGE: &str = "gateway_overhead [--quick] [--seconds S] [--rounds R] \
[--loads c1,c32,r100,r1000] [--targets direct,strict,fast,tensorzero,litellm] \
[--tensorzero PYTHON | --no-tensorzero] [--litellm PATH | --no-litellm] [--dir PATH] [--keep] [--perf TARGET:LOAD:FILE] \
[--tutorlog PATH] [--baseline PATH] [--config-extra FILE]";

fn parse_perf(text: &str) -> (Kind, Load, PathBuf) {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(load), Some(file)) => {
            (Kind::parse(kind), Load::parse(load), PathBuf::from(file))
        }
        _ => fail("--perf needs TARGET:LOAD:FILE, e.g. fast:c32:fast.data"),
    }
}

/// A peer's program: the one its flag names, else `default` (relative to the
/// checkout, where its setup script installs it) when that exists; without
/// either (or with `--no-…`), the run goes on without that peer.
struct Peer {
    kind: Kind,
    name: &'static str,
    flag: &'static str,
    default: &'static str,
    setup: &'static str,
}

const LITELLM: Peer = Peer {
    kind: Kind::LiteLlm,
    name: "LiteLLM",
    flag: "--litellm",
    default: "target/litellm-venv/bin/litellm",
    setup: "benches/gateway/setup_litellm.sh",
};

const TENSORZERO: Peer = Peer {
    kind: Kind::TensorZero,
    name: "TensorZero",
    flag: "--tensorzero",
    default: "target/tensorzero-venv/bin/python",
    setup: "benches/gateway/setup_tensorzero.sh",
};

fn resolve_peer(peer: &Peer, program: &mut Option<PathBuf>, kinds: &mut Vec<Kind>, skip: bool) {
    if skip {
        kinds.retain(|k| *k != peer.kind);
        *program = None;
        return;
    }
    if program.is_none() {
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join(peer.default);
        if default.exists() {
            *program = Some(default);
        }
    }
    match program {
        Some(path) if !path.exists() => {
            fail(&format!("{} {}: no such file", peer.flag, path.display()))
        }
        Some(_) => {}
        None if kinds.contains(&peer.kind) => {
            eprintln!(
                "gateway_overhead: {} not found ({} installs it); running without it",
                peer.name, peer.setup
            );
            kinds.retain(|k| *k != peer.kind);
        }
        None => {}
    }
}

fn fail(message: &str) -> ! {
    eprintln!("gateway_overhead: {message}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------
// The machine

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().replace('\n', "; "))
        .unwrap_or_else(|_| "unavailable".into())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn print_machine(when: &str) {
    println!(
        "machine {when}: {}; loadavg {}; cpu pressure {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        read_trimmed("/proc/loadavg"),
        read_trimmed("/proc/pressure/cpu")
    );
}

/// Clock ticks per second of `/proc/*/stat` times.
fn clock_ticks() -> f64 {
    command_output("getconf", &["CLK_TCK"])
        .parse()
        .unwrap_or(100.0)
}

/// `pid` and every live descendant.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, _)) = proc_stat(id) {
                parents.push((id, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        for &(id, ppid) in &parents {
            if ppid == parent && !tree.contains(&id) {
                tree.push(id);
            }
        }
        index += 1;
    }
    tree
}

/// utime + stime of `pid` and every live descendant, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(proc_stat)
        .map(|(_, ticks)| ticks)
        .sum()
}

/// Per thread of `pid`'s process tree: (ns spent runnable but waiting for a CPU,
/// times it got one), from `/proc/PID/task/TID/schedstat`. This is the guest
/// scheduler's run-queue delay: time a hypervisor took from a running vCPU does
/// not show here (that is steal).
fn run_delays(pid: u32) -> HashMap<u32, (u64, u64)> {
    let mut delays = HashMap::new();
    for process in process_tree(pid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let fields: Vec<u64> = text
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [_, delay, slices] = fields[..] {
                delays.insert(tid, (delay, slices));
            }
        }
    }
    delays
}

/// The run-queue delay and CPU slices the threads in `after` accrued since
/// `before` (a thread started in between counts from zero; one that ended is
/// lost, which only the tokio blocking pool's idle threads do).
fn run_delay_since(
    before: &HashMap<u32, (u64, u64)>,
    after: &HashMap<u32, (u64, u64)>,
) -> (u64, u64) {
    after.iter().fold((0, 0), |(delay, slices), (tid, now)| {
        let was = before.get(tid).copied().unwrap_or((0, 0));
        (
            delay + now.0.saturating_sub(was.0),
            slices + now.1.saturating_sub(was.1),
        )
    })
}

/// utime + stime of `pid` alone (this client: its children are the servers).
fn own_ticks(pid: u32) -> u64 {
    proc_stat(pid).map_or(0, |(_, ticks)| ticks)
}

/// (ppid, utime + stime) from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its closing paren.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Jiffies of all CPUs from `/proc/stat`.
#[derive(Clone, Copy, Default)]
struct MachineJiffies {
    /// Not idle: ours, other tenants' and the hypervisor's (steal).
    busy: u64,
    /// Taken by the hypervisor for other guests while this one had work to run.
    steal: u64,
    total: u64,
}

fn machine_jiffies() -> MachineJiffies {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return MachineJiffies::default();
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    MachineJiffies {
        busy: total.saturating_sub(idle),
        steal: values.get(7).copied().unwrap_or(0),
        total,
    }
}

// ---------------------------------------------------------------------------
// Processes

/// A child process stopped (SIGTERM, then SIGKILL) on drop.
struct Proc {
    child: Child,
    name: String,
    /// Signal its whole process group (LiteLLM's workers).
    group: bool,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let target = if self.group {
            format!("-{}", self.pid())
        } else {
            self.pid().to_string()
        };
        if let Err(error) = Command::new("kill").args(["-TERM", "--", &target]).status() {
            eprintln!("gateway_overhead: kill {}: {error}", self.name);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "gateway_overhead: {} did not stop on SIGTERM; killing it",
            self.name
        );
        if let Err(error) = self.child.kill() {
            eprintln!("gateway_overhead: kill {}: {error}", self.name);
        }
        if let Err(error) = self.child.wait() {
            eprintln!("gateway_overhead: wait {}: {error}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The binary under test (built by `cargo bench` with the bench profile).
const BIN: &str = env!("CARGO_BIN_EXE_tutorlog");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One blocking HTTP/1.1 GET (readiness checks and stats).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = StdTcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn wait_ready(name: &str, proc: &mut Proc, addr: SocketAddr, path: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = proc.child.try_wait() {
            fail(&format!("{name} exited during start-up with {status}"));
        }
        if matches!(http_get(addr, path), Some((200, _))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fail(&format!(
        "{name} not ready on {addr}{path} within {seconds} s"
    ));
}

fn start_mock(bin: &Path) -> (Proc, SocketAddr) {
    let port = free_port();
    let child = Command::new(bin)
        .args(["mock-provider", "--listen", &format!("127.0.0.1:{port}")])
        .env("TUTORLOG_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tutorlog mock-provider");
    let mut proc = Proc {
        child,
        name: "mock-provider".into(),
        group: false,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready("mock-provider", &mut proc, addr, "/mock/stats", 30);
    (proc, addr)
}

fn daemon_config(port: u16, mode: &str, mock: SocketAddr) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"

[gateway]
api_keys = [{{ key = "{API_KEY}", user_id = "gwbench" }}]
reservations = "{mode}"
default_max_tokens = 16

[[providers]]
name = "mock"
kind = "mock"
base_url = "http://{mock}/v1"
priority = 1
timeout_ms = 10000
monthly_budget_usd = 1000000.0
models = [{{ name = "mock-1", input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}]
"#
    )
}

/// `label` names the data directory (several daemons may share a `mode`).
fn start_daemon(
    bin: &Path,
    dir: &Path,
    (label, mode, extra): (&str, &str, &str),
    mock: SocketAddr,
) -> (Proc, SocketAddr) {
    let port = free_port();
    let home = dir.join(format!("tutorlog-{label}"));
    std::fs::create_dir_all(&home).expect("daemon directory");
    let config = home.join("tutorlog.toml");
    let text = format!("{}\n{extra}", daemon_config(port, mode, mock));
    std::fs::write(&config, text).expect("daemon config");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(home.join("data"))
        .env("TUTORLOG_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tutorlog serve");
    let mut proc = Proc {
        child,
        name: format!("tutorlog serve ({label})"),
        group: false,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(&proc.name.clone(), &mut proc, addr, "/readyz", 60);
    (proc, addr)
}

/// A fresh random LiteLLM master key: the proxy refuses to start without one, or
/// with a weak one.
fn master_key() -> String {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sk-{hex}")
}

fn litellm_config(mock: SocketAddr, master_key: &str) -> String {
    format!(
        "model_list:\n  - model_name: mock-1\n    litellm_params:\n      model: openai/mock-1\n      \
         api_base: http://{mock}/v1\n      api_key: sk-mock\nlitellm_settings:\n  \
         drop_params: true\n  telemetry: false\ngeneral_settings:\n  master_key: {master_key}\n"
    )
}

fn start_litellm(
    dir: &Path,
    litellm: &Path,
    mock: SocketAddr,
    master_key: &str,
) -> (Proc, SocketAddr) {
    let port = free_port();
    let home = dir.join("litellm");
    std::fs::create_dir_all(&home).expect("litellm directory");
    let config = home.join("config.yaml");
    std::fs::write(&config, litellm_config(mock, master_key)).expect("litellm config");
    let log = File::create(home.join("litellm.log")).expect("litellm log");
    let child = Command::new(litellm)
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", "1"])
        .current_dir(&home)
        // No network here: use the cost map shipped in the package.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False")
        .env("NO_DOCS", "True")
        .stdout(log.try_clone().expect("litellm log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("spawn litellm");
    let mut proc = Proc {
        child,
        name: "litellm".into(),
        group: true,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready("litellm", &mut proc, addr, "/health/liveliness", 180);
    (proc, addr)
}

/// TensorZero's configuration: the mock as an OpenAI-compatible provider, no
/// key, observability off (no ClickHouse or Postgres here; TensorZero's own
/// latency benchmarks run it that way too).
fn tensorzero_config(mock: SocketAddr) -> String {
    format!(
        r#"[gateway.observability]
enabled = false

[models."mock-1"]
routing = ["mock"]

[models."mock-1".providers.mock]
type = "openai"
model_name = "mock-1"
api_base = "http://{mock}/v1/"
api_key_location = "none"
"#
    )
}

fn start_tensorzero(dir: &Path, python: &Path, mock: SocketAddr) -> (Proc, SocketAddr) {
    let home = dir.join("tensorzero");
    std::fs::create_dir_all(&home).expect("tensorzero directory");
    let config = home.join("tensorzero.toml");
    std::fs::write(&config, tensorzero_config(mock)).expect("tensorzero config");
    let address_file = home.join("address");
    let log = File::create(home.join("tensorzero.log")).expect("tensorzero log");
    let host = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/gateway/tensorzero_host.py");
    let child = Command::new(python)
        .arg(host)
        .arg(&config)
        .arg(&address_file)
        .current_dir(&home)
        .env("RUST_LOG", "error")
        .stdout(log.try_clone().expect("tensorzero log"))
        .stderr(log)
        .spawn()
        .expect("spawn tensorzero");
    let mut proc = Proc {
        child,
        name: "tensorzero".into(),
        group: false,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let base_url = loop {
        if let Ok(text) = std::fs::read_to_string(&address_file) {
            break text.trim().to_owned();
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            fail(&format!(
                "tensorzero exited with {status} before it listened; see {}",
                home.join("tensorzero.log").display()
            ));
        }
        if Instant::now() > deadline {
            fail("tensorzero did not start within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // "http://127.0.0.1:PORT/openai/v1"
    let addr = base_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .unwrap_or_else(|| fail(&format!("tensorzero base URL {base_url:?}: no address")));
    (proc, addr)
}

fn package_version(python: &Path, package: &str) -> String {
    command_output(
        &python.to_string_lossy(),
        &[
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{package}'))"),
        ],
    )
}

fn litellm_version(litellm: &Path) -> String {
    package_version(&litellm.with_file_name("python"), "litellm")
}

// ---------------------------------------------------------------------------
// The client: hyper HTTP/1.1, one connection per task, TCP_NODELAY

struct Target {
    kind: Kind,
    addr: SocketAddr,
    /// Where its chat completions are, and the request body in its dialect.
    path: &'static str,
    body: Bytes,
    authorization: Option<String>,
    /// Process answering (its CPU is counted per slice); `None` for the mock
    /// itself, counted separately.
    pid: Option<u32>,
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = match tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(tcp) => tcp.map_err(|e| format!("connect {addr}: {e}"))?,
        Err(_) => {
            return Err(format!(
                "connect {addr}: no answer within {REQUEST_TIMEOUT:?}"
            ))
        }
    };
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("gateway_overhead: connection: {error}");
        }
    });
    Ok(sender)
}

/// One request on a kept-alive connection; the whole body is read.
async fn request(sender: &mut Sender, target: &Target, body: &Bytes) -> Result<(), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let mut builder = Request::post(target.path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = &target.authorization {
        builder = builder.header(header::AUTHORIZATION, authorization.as_str());
    }
    let request = builder
        .body(Full::new(body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ));
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, HISTOGRAM_NANOS_MAX, 3).expect("histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What one connection saw in a slice.
struct Samples {
    /// Latency, from the send (closed loop) or the intended send time (open loop).
    latency: Histogram<u64>,
    /// Open loop: latency from the actual send (what coordinated omission shows).
    service: Histogram<u64>,
    ok: u64,
    /// Answers to warm-up requests (not in `latency`; in `service`).
    warm_up_ok: u64,
    errors: u64,
    /// Open loop: requests due before the end that were never sent.
    unsent: u64,
    first_error: Option<String>,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            latency: histogram(),
            service: histogram(),
            ok: 0,
            warm_up_ok: 0,
            errors: 0,
            unsent: 0,
            first_error: None,
        }
    }

    fn record(&mut self, outcome: Result<(), String>, latency: Duration, service: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latency.saturating_record(nanos(latency));
                self.service.saturating_record(nanos(service));
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    /// A warm-up request: counted apart, its service time kept, a failure kept
    /// as the first error (so a target that never answers says why).
    fn record_warm_up(&mut self, outcome: Result<(), String>, service: Duration) {
        match outcome {
            Ok(()) => {
                self.warm_up_ok += 1;
                self.service.saturating_record(nanos(service));
            }
            Err(error) => {
                self.first_error.get_or_insert(format!("(warm-up) {error}"));
            }
        }
    }

    fn merge(&mut self, other: Samples) {
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        self.service
            .add(&other.service)
            .expect("same histogram bounds");
        self.ok += other.ok;
        self.warm_up_ok += other.warm_up_ok;
        self.errors += other.errors;
        self.unsent += other.unsent;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One timed request, reconnecting after a failure.
async fn timed(sender: &mut Option<Sender>, target: &Target, body: &Bytes) -> Result<(), String> {
    if sender.is_none() {
        *sender = Some(connect(target.addr).await?);
    }
    let Some(live) = sender.as_mut() else {
        return Err("no connection".into());
    };
    let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, request(live, target, body)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
    };
    if outcome.is_err() {
        *sender = None;
    }
    outcome
}

async fn closed_worker(
    target: Arc<Target>,
    body: Bytes,
    measure: Instant,
    end: Instant,
) -> Samples {
    let mut samples = Samples::new();
    let mut sender = None;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let outcome = timed(&mut sender, &target, &body).await;
        let taken = sent.elapsed();
        if sent >= measure {
            samples.record(outcome, taken, taken);
        } else {
            samples.record_warm_up(outcome, taken);
        }
    }
    samples
}

/// Connection `index` of `connections` sends requests `index`, `index +
/// connections`, ... of a schedule at `rate`/s that starts at `start`.
async fn open_worker(
    target: Arc<Target>,
    body: Bytes,
    (index, connections, rate): (usize, usize, f64),
    (start, measure, end): (Instant, Instant, Instant),
) -> Samples {
    let mut samples = Samples::new();
    let mut sender = match connect(target.addr).await {
        Ok(sender) => Some(sender),
        Err(error) => {
            samples.record(Err(error), Duration::ZERO, Duration::ZERO);
            None
        }
    };
    let mut previous_done = start;
    for n in (index..).step_by(connections) {
        let intended = start + Duration::from_secs_f64(n as f64 / rate);
        if intended >= end {
            break;
        }
        if Instant::now() >= end {
            // Behind schedule at the end: the rest were due and never sent.
            samples.unsent += due_in_window(n, connections, rate, start, (measure, end));
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let sent = Instant::now();
        let outcome = timed(&mut sender, &target, &body).await;
        let done = Instant::now();
        // Busy at its intended time: it waited for the connection, and that wait
        // is the server's doing. Idle: only the timer's lateness separates the two
        // times, and that is the client's.
        let from = if previous_done > intended {
            intended
        } else {
            sent
        };
        previous_done = done;
        if intended >= measure {
            samples.record(outcome, done - from, done - sent);
        } else {
            samples.record_warm_up(outcome, done - sent);
        }
    }
    samples
}

/// How many of requests `first`, `first + step`, ... are due inside `window`.
fn due_in_window(
    first: usize,
    step: usize,
    rate: f64,
    start: Instant,
    (from, to): (Instant, Instant),
) -> u64 {
    let mut count = 0;
    for n in (first..).step_by(step) {
        let intended = start + Duration::from_secs_f64(n as f64 / rate);
        if intended >= to {
            break;
        }
        if intended >= from {
            count += 1;
        }
    }
    count
}

/// Runs one load against one target for `seconds` after the warm-up.
async fn run_load(target: Arc<Target>, load: Load, seconds: f64) -> Samples {
    let body = target.body.clone();
    let start = Instant::now();
    let measure = start + WARM_UP;
    let end = measure + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    match load {
        Load::Closed(connections) => {
            for _ in 0..connections {
                tasks.push(tokio::spawn(closed_worker(
                    Arc::clone(&target),
                    body.clone(),
                    measure,
                    end,
                )));
            }
        }
        Load::Rate(rate) => {
            for index in 0..OPEN_LOOP_CONNECTIONS {
                tasks.push(tokio::spawn(open_worker(
                    Arc::clone(&target),
                    body.clone(),
                    (index, OPEN_LOOP_CONNECTIONS, f64::from(rate)),
                    (start, measure, end),
                )));
            }
        }
    }
    let mut all = Samples::new();
    for task in tasks {
        all.merge(task.await.expect("load task"));
    }
    all
}

// ---------------------------------------------------------------------------
// Raw fsync baseline

/// A zero-filled, synced file: writes into it never grow it, so `fdatasync` has
/// no metadata to commit (the state the log keeps its segment tail in).
fn preallocated_file(path: &Path) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("creating the raw baseline file");
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let mut offset = 0u64;
    while offset < RAW_FILE_BYTES {
        file.write_all_at(&zeros, offset)
            .expect("zero-filling the raw baseline file");
        offset += zeros.len() as u64;
    }
    file.sync_all().expect("syncing the raw baseline file");
    file
}

/// Raw cycles in one slice: (cycle latencies, cycles, elapsed).
struct RawSlice {
    latency: Histogram<u64>,
    cycles: u64,
    elapsed: Duration,
}

fn raw_slice(file: &File, offset: &mut u64, seconds: f64) -> RawSlice {
    let data: Vec<u8> = (0..RAW_RECORD_BYTES).map(|i| (i % 251) as u8 + 1).collect();
    let mut latency = histogram();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut cycles = 0;
    while start.elapsed() < limit || cycles < 20 {
        if *offset + RAW_RECORD_BYTES as u64 > RAW_FILE_BYTES {
            *offset = 0;
        }
        let t = Instant::now();
        file.write_all_at(&data, *offset).expect("raw pwrite");
        file.sync_data().expect("raw fdatasync");
        latency.saturating_record(nanos(t.elapsed()));
        *offset += RAW_RECORD_BYTES as u64;
        cycles += 1;
    }
    RawSlice {
        latency,
        cycles,
        elapsed: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// Slices and results

/// Everything one (load, target) pair measured, over all rounds.
struct Cell {
    samples: Samples,
    seconds: f64,
    /// CPU ticks of the target's process, the mock and the client.
    ticks_target: u64,
    ticks_mock: u64,
    ticks_client: u64,
    /// The target's threads' run-queue delay (ns) and CPU slices.
    run_delay_ns: u64,
    run_slices: u64,
    /// Machine busy, steal and total jiffies during the slices.
    machine_busy: u64,
    machine_steal: u64,
    machine_total: u64,
    /// Per round: (p50, p99) in ns.
    rounds: Vec<(u64, u64)>,
}

impl Cell {
    fn new() -> Cell {
        Cell {
            samples: Samples::new(),
            seconds: 0.0,
            ticks_target: 0,
            ticks_mock: 0,
            ticks_client: 0,
            run_delay_ns: 0,
            run_slices: 0,
            machine_busy: 0,
            machine_steal: 0,
            machine_total: 0,
            rounds: Vec::new(),
        }
    }

    fn rate(&self) -> f64 {
        self.samples.ok as f64 / self.seconds.max(1e-9)
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.samples.latency.value_at_quantile(q) as f64 / 1e6
    }
}

/// The raw fsync slices paired with one load point.
struct RawCell {
    latency: Histogram<u64>,
    cycles: u64,
    elapsed: Duration,
}

impl RawCell {
    fn mean_ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e3 / self.cycles.max(1) as f64
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1e6
    }
}

struct Bench {
    targets: Vec<Arc<Target>>,
    mock_pid: u32,
    raw_file: File,
    raw_offset: u64,
    clock_ticks: f64,
    perf: Option<(Kind, Load, PathBuf)>,
}

impl Bench {
    /// One slice of `load` on `target`, its CPU use added to `cell`.
    async fn slice(&self, target: &Arc<Target>, load: Load, seconds: f64, cell: &mut Cell) {
        let me = std::process::id();
        let perf = self.start_perf(target, load);
        let delays_before = target.pid.map(run_delays).unwrap_or_default();
        let before = (
            target.pid.map_or(0, cpu_ticks),
            cpu_ticks(self.mock_pid),
            own_ticks(me),
            machine_jiffies(),
        );
        let samples = run_load(Arc::clone(target), load, seconds).await;
        settle(target.pid);
        let after = (
            target.pid.map_or(0, cpu_ticks),
            cpu_ticks(self.mock_pid),
            own_ticks(me),
            machine_jiffies(),
        );
        let delays_after = target.pid.map(run_delays).unwrap_or_default();
        stop_perf(perf);
        let (delay, slices) = run_delay_since(&delays_before, &delays_after);
        cell.run_delay_ns += delay;
        cell.run_slices += slices;
        cell.ticks_target += after.0.saturating_sub(before.0);
        cell.ticks_mock += after.1.saturating_sub(before.1);
        cell.ticks_client += after.2.saturating_sub(before.2);
        cell.machine_busy += after.3.busy.saturating_sub(before.3.busy);
        cell.machine_steal += after.3.steal.saturating_sub(before.3.steal);
        cell.machine_total += after.3.total.saturating_sub(before.3.total);
        cell.seconds += seconds;
        cell.rounds.push((
            samples.latency.value_at_quantile(0.5),
            samples.latency.value_at_quantile(0.99),
        ));
        cell.samples.merge(samples);
    }

    fn start_perf(&self, target: &Target, load: Load) -> Option<Child> {
        let (kind, perf_load, file) = self.perf.as_ref()?;
        if *kind != target.kind || *perf_load != load {
            return None;
        }
        let pid = target.pid.unwrap_or(self.mock_pid);
        let child = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,32768", "-o"])
            .arg(file)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                // perf attaches in a few tens of ms; let it see the whole slice.
                std::thread::sleep(Duration::from_millis(200));
                Some(child)
            }
            Err(error) => {
                eprintln!("gateway_overhead: perf record: {error}");
                None
            }
        }
    }

    fn raw(&mut self, seconds: f64, cell: &mut Option<RawCell>) {
        let slice = raw_slice(&self.raw_file, &mut self.raw_offset, seconds);
        match cell {
            Some(c) => {
                c.latency
                    .add(&slice.latency)
                    .expect("same histogram bounds");
                c.cycles += slice.cycles;
                c.elapsed += slice.elapsed;
            }
            None => {
                *cell = Some(RawCell {
                    latency: slice.latency,
                    cycles: slice.cycles,
                    elapsed: slice.elapsed,
                })
            }
        }
    }
}

/// Waits (at most [`SETTLE_MAX`]) until `pid` has used at most one clock tick in
/// [`SETTLE_WINDOW`]: work a slice left behind (projections catching up, requests
/// the client gave up on) is charged to that slice, not to the next target's.
fn settle(pid: Option<u32>) {
    let Some(pid) = pid else {
        return;
    };
    let deadline = Instant::now() + SETTLE_MAX;
    let mut last = cpu_ticks(pid);
    while Instant::now() < deadline {
        std::thread::sleep(SETTLE_WINDOW);
        let now = cpu_ticks(pid);
        if now.saturating_sub(last) <= 1 {
            return;
        }
        last = now;
    }
    eprintln!("gateway_overhead: pid {pid} still busy {SETTLE_MAX:?} after its slice");
}

fn stop_perf(perf: Option<Child>) {
    let Some(mut child) = perf else {
        return;
    };
    let pid = child.id().to_string();
    if let Err(error) = Command::new("kill").args(["-INT", &pid]).status() {
        eprintln!("gateway_overhead: stopping perf: {error}");
    }
    if let Err(error) = child.wait() {
        eprintln!("gateway_overhead: waiting for perf: {error}");
    }
}

/// The order of one round's slices: rotated by the round, and reversed in odd
/// rounds. A slice leaves the machine warm or busy for the next one; with plain
/// rotation every target always followed the same one, and an A/A run (one
/// build as both `fast` and `fast-base`, c32, 6 rounds) then showed a 7 %
/// throughput difference that was only the order.
fn slice_order(count: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).map(|step| (step + round) % count).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// All slices of one load point: `rounds` rounds, each a raw fsync slice and
/// one slice per target in the order of [`slice_order`].
async fn measure_load(bench: &mut Bench, load: Load, args: &Args) -> (Vec<Cell>, RawCell) {
    let mut cells: Vec<Cell> = bench.targets.iter().map(|_| Cell::new()).collect();
    let mut raw = None;
    let raw_seconds = (args.seconds / 2.0).clamp(0.5, 2.0);
    for round in 0..args.rounds {
        bench.raw(raw_seconds, &mut raw);
        for index in slice_order(bench.targets.len(), round) {
            let target = Arc::clone(&bench.targets[index]);
            bench
                .slice(&target, load, args.seconds, &mut cells[index])
                .await;
        }
    }
    (cells, raw.expect("at least one round"))
}

// ---------------------------------------------------------------------------
// Report

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn print_load(load: Load, targets: &[Arc<Target>], cells: &[Cell], raw: &RawCell, ticks: f64) {
    println!();
    println!("== {}: {} ==", load.name(), load.describe());
    println!(
        "raw fsync cycle ({RAW_RECORD_BYTES} B pwrite + fdatasync, paired slices): mean {:.3} ms, \
         p50 {:.3}, p99 {:.3}, p99.9 {:.3} ({} cycles)",
        raw.mean_ms(),
        raw.quantile_ms(0.5),
        raw.quantile_ms(0.99),
        raw.quantile_ms(0.999),
        raw.cycles
    );
    println!(
        "{:<16} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>15} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5}",
        "target", "ok", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "ovh p50", "ovh p99", "ovh p99.9",
        "ovh p99 rounds", "cpu gw", "mock", "client", "rq/req", "rq/run", "mach", "steal", "err"
    );
    let direct = &cells[0];
    for (target, cell) in targets.iter().zip(cells) {
        print_row(target, cell, direct, ticks, load);
    }
}

fn print_row(target: &Target, cell: &Cell, direct: &Cell, ticks: f64, load: Load) {
    // A target that answered nothing (LiteLLM at 1,000 requests/s) has no
    // per-request figures, rather than its totals divided by one.
    let answered = cell.samples.ok > 0;
    let per_request = |t: u64| {
        if answered {
            format!("{:.3}", t as f64 * 1e3 / ticks / cell.samples.ok as f64)
        } else {
            "-".to_owned()
        }
    };
    let is_direct = target.kind == Kind::Direct;
    let overhead = |q: f64| {
        if is_direct || !answered {
            "-".to_owned()
        } else {
            format!("{:.3}", cell.quantile_ms(q) - direct.quantile_ms(q))
        }
    };
    let spread = if is_direct || !answered {
        "-".to_owned()
    } else {
        let per_round: Vec<f64> = cell
            .rounds
            .iter()
            .zip(&direct.rounds)
            .map(|((_, p99), (_, d99))| ms(*p99) - ms(*d99))
            .collect();
        let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let max = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{min:.3}..{max:.3}")
    };
    let gateway_cpu = if target.pid.is_some() {
        per_request(cell.ticks_target)
    } else {
        "-".to_owned()
    };
    let (queued_per_request, queued_per_run) = if target.pid.is_some() && answered {
        (
            format!(
                "{:.1}",
                cell.run_delay_ns as f64 / 1e3 / cell.samples.ok as f64
            ),
            format!(
                "{:.1}",
                cell.run_delay_ns as f64 / 1e3 / cell.run_slices.max(1) as f64
            ),
        )
    } else {
        ("-".to_owned(), "-".to_owned())
    };
    let machine = cell.machine_busy as f64 / cell.machine_total.max(1) as f64;
    let steal = cell.machine_steal as f64 / cell.machine_total.max(1) as f64;
    let errors = cell.samples.errors + cell.samples.unsent;
    println!(
        "{:<16} {:>7} {:>8.0} {:>7.3} {:>7.3} {:>8.3} {:>8} {:>8} {:>9} {:>15} {:>6} {:>6} {:>6} {:>6} {:>6} {:>4.0}% {:>4.1}% {:>5}",
        target.kind.label(),
        cell.samples.ok,
        cell.rate(),
        cell.quantile_ms(0.5),
        cell.quantile_ms(0.99),
        cell.quantile_ms(0.999),
        overhead(0.5),
        overhead(0.99),
        overhead(0.999),
        spread,
        gateway_cpu,
        per_request(cell.ticks_mock),
        per_request(cell.ticks_client),
        queued_per_request,
        queued_per_run,
        machine * 100.0,
        steal * 100.0,
        errors
    );
    if let Load::Rate(rate) = load {
        let due = cell.samples.ok + cell.samples.errors + cell.samples.unsent;
        let expected = f64::from(rate) * cell.seconds;
        if (due as f64) < 0.95 * expected || cell.samples.unsent > 0 {
            let answered = cell.samples.ok + cell.samples.warm_up_ok;
            let wall = cell.seconds + cell.rounds.len() as f64 * WARM_UP.as_secs_f64();
            println!(
                "{:<16} did not sustain {rate}/s: {} of ~{expected:.0} due requests sent; \
                 {answered} answered in the slices with their warm-ups ({:.0}/s), \
                 p50/p99 from the actual send {:.3}/{:.3} ms",
                "",
                cell.samples.ok + cell.samples.errors,
                answered as f64 / wall,
                ms(cell.samples.service.value_at_quantile(0.5)),
                ms(cell.samples.service.value_at_quantile(0.99)),
            );
        }
    }
    if let Some(error) = &cell.samples.first_error {
        println!("{:<16} first error: {error}", "");
    }
}

/// The issue's targets, judged on this run's figures.
/// The TensorZero figure a verdict compares with: this run's when it ran,
/// else the one the issue quotes.
fn tensorzero_reference(measured: Option<f64>, quoted: f64) -> (f64, &'static str) {
    match measured {
        Some(value) => (value, "this run"),
        None => (quoted, "quoted"),
    }
}

fn print_targets(results: &[(Load, Vec<Cell>, RawCell)], targets: &[Arc<Target>]) {
    println!();
    println!("== targets ==");
    let position = |kind| targets.iter().position(|t| t.kind == kind);
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    for (load, cells, raw) in results {
        let quoted = match load {
            Load::Closed(1) => TENSORZERO_P99_C1_MS,
            Load::Rate(1000) => TENSORZERO_P99_R1000_MS,
            _ => continue,
        };
        let overhead_p99 =
            |index: usize| cells[index].quantile_ms(0.99) - cells[0].quantile_ms(0.99);
        let (reference, source) =
            tensorzero_reference(position(Kind::TensorZero).map(overhead_p99), quoted);
        if let Some(fast) = position(Kind::Fast) {
            let value = overhead_p99(fast);
            println!(
                "{:<6} fast p99 overhead {value:.3} ms <= TensorZero ({source}) {reference:.3} ms: {:.2}x  {}  (quoted: {quoted} ms)",
                load.name(),
                value / reference,
                verdict(value <= reference)
            );
        }
        if let Some(strict) = position(Kind::Strict) {
            let value = overhead_p99(strict);
            let limit = reference + raw.quantile_ms(0.99);
            let beyond_fast = position(Kind::Fast).map(|f| value - overhead_p99(f));
            println!(
                "{:<6} strict p99 overhead {value:.3} ms <= TensorZero ({source}) {reference:.3} + raw fsync p99 {:.3} = {limit:.3} ms: {:.2}x  {}  \
                 (strict - fast: {} ms = {} mean raw cycles)",
                load.name(),
                raw.quantile_ms(0.99),
                value / limit,
                verdict(value <= limit),
                beyond_fast.map_or("-".into(), |b| format!("{b:.3}")),
                beyond_fast.map_or("-".into(), |b| format!("{:.1}", b / raw.mean_ms())),
            );
        }
    }
    print_throughput_targets(results, targets);
}

fn print_throughput_targets(results: &[(Load, Vec<Cell>, RawCell)], targets: &[Arc<Target>]) {
    let Some((_, cells, _)) = results.iter().find(|(l, _, _)| *l == Load::Closed(32)) else {
        return;
    };
    let measured = targets
        .iter()
        .position(|t| t.kind == Kind::TensorZero)
        .map(|index| cells[index].rate());
    let (reference, source) = tensorzero_reference(measured, TENSORZERO_THROUGHPUT);
    let goal = reference * THROUGHPUT_TARGET_FACTOR;
    let direct = cells[0].rate();
    for (target, cell) in targets.iter().zip(cells).skip(1) {
        if target.kind == Kind::TensorZero {
            continue;
        }
        let rate = cell.rate();
        let verdict = if rate >= goal { "PASS" } else { "MISS" };
        println!(
            "c32    {:<16} {rate:.0} req/s >= {THROUGHPUT_TARGET_FACTOR} x TensorZero ({source}) {reference:.0} = {goal:.0}: {:.2}x  {verdict}  \
             ({:.2} of direct-to-mock {direct:.0} req/s through the same client; quoted TensorZero: {TENSORZERO_THROUGHPUT})",
            target.kind.label(),
            rate / goal,
            rate / direct.max(1e-9)
        );
    }
}

// ---------------------------------------------------------------------------
// Main

fn scratch_dir(args: &Args) -> tempfile::TempDir {
    let parent = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&parent).expect("scratch parent directory");
    tempfile::Builder::new()
        .prefix("gwbench-")
        .tempdir_in(&parent)
        .expect("scratch directory")
}

fn filesystem_type(dir: &Path) -> String {
    let text = command_output("df", &["--output=fstype", &dir.to_string_lossy()]);
    text.lines().nth(1).unwrap_or("unknown").trim().to_owned()
}

struct Running {
    _procs: Vec<Proc>,
    targets: Vec<Arc<Target>>,
    mock_pid: u32,
    mock: SocketAddr,
}

fn start_all(args: &Args, dir: &Path) -> Running {
    let (mock_proc, mock) = start_mock(&args.tutorlog);
    let mock_pid = mock_proc.pid();
    println!("mock-provider pid {mock_pid} on {mock}");
    let mut procs = vec![mock_proc];
    let mut targets = Vec::new();
    for &kind in &args.kinds {
        let (addr, pid, authorization) = match kind {
            Kind::Direct => (mock, None, None),
            Kind::Strict | Kind::Fast | Kind::StrictBase | Kind::FastBase => {
                let baseline = || args.baseline.as_ref().expect("checked in parse_args");
                let extra = args.config_extra.as_str();
                let (binary, setup) = match kind {
                    Kind::Strict => (&args.tutorlog, ("strict", "strict", extra)),
                    Kind::Fast => (&args.tutorlog, ("fast", "fast", extra)),
                    Kind::StrictBase => (baseline(), ("strict-base", "strict", "")),
                    _ => (baseline(), ("fast-base", "fast", "")),
                };
                let (proc, addr) = start_daemon(binary, dir, setup, mock);
                let pid = proc.pid();
                procs.push(proc);
                (addr, Some(pid), Some(format!("Bearer {API_KEY}")))
            }
            Kind::TensorZero => {
                let python = args
                    .tensorzero
                    .as_deref()
                    .expect("resolved TensorZero path");
                let (proc, addr) = start_tensorzero(dir, python, mock);
                println!(
                    "tensorzero {} ({})",
                    package_version(python, "tensorzero"),
                    python.display()
                );
                let pid = proc.pid();
                procs.push(proc);
                (addr, Some(pid), None)
            }
            Kind::LiteLlm => {
                let litellm = args.litellm.as_deref().expect("resolved LiteLLM path");
                let key = master_key();
                let (proc, addr) = start_litellm(dir, litellm, mock, &key);
                println!(
                    "litellm {} ({})",
                    litellm_version(litellm),
                    litellm.display()
                );
                let pid = proc.pid();
                procs.push(proc);
                (addr, Some(pid), Some(format!("Bearer {key}")))
            }
        };
        println!(
            "{:<16} on {addr}{}",
            kind.label(),
            pid.map_or(String::new(), |p| format!(", pid {p}"))
        );
        let (path, body) = match kind {
            Kind::TensorZero => ("/openai/v1/chat/completions", TENSORZERO_REQUEST_BODY),
            _ => ("/v1/chat/completions", REQUEST_BODY),
        };
        targets.push(Arc::new(Target {
            kind,
            addr,
            path,
            body: Bytes::from_static(body.as_bytes()),
            authorization,
            pid,
        }));
    }
    Running {
        _procs: procs,
        targets,
        mock_pid,
        mock,
    }
}

fn main() {
    let args = parse_args();
    let dir = scratch_dir(&args);
    println!(
        "gateway_overhead: {} s per slice, {} rounds, loads {}; dir {} ({})",
        args.seconds,
        args.rounds,
        args.loads
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(","),
        dir.path().display(),
        filesystem_type(dir.path())
    );
    println!(
        "machine: {} cpus, {}",
        command_output("nproc", &[]),
        cpu_model()
    );
    println!("tutorlog binary: {}", args.tutorlog.display());
    if let Some(baseline) = &args.baseline {
        println!("baseline binary: {}", baseline.display());
    }
    print_machine("at the start");
    let running = start_all(&args, dir.path());
    let mut bench = Bench {
        targets: running.targets.clone(),
        mock_pid: running.mock_pid,
        raw_file: preallocated_file(&dir.path().join("raw-fsync.bin")),
        raw_offset: 0,
        clock_ticks: clock_ticks(),
        perf: args.perf.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let mut results = Vec::new();
    for &load in &args.loads {
        let (cells, raw) = runtime.block_on(measure_load(&mut bench, load, &args));
        print_load(load, &bench.targets, &cells, &raw, bench.clock_ticks);
        results.push((load, cells, raw));
    }
    print_targets(&results, &bench.targets);
    print_column_notes();
    if let Some((200, stats)) = http_get(running.mock, "/mock/stats") {
        println!("mock stats: {stats}");
    }
    print_machine("at the end");
    drop(running);
    if args.keep {
        println!("kept {}", dir.keep().display());
    }
}

fn print_column_notes() {
    println!();
    println!(
        "columns: ovh = this target's percentile minus direct-to-mock's at the same load; \
         ovh p99 rounds = range of per-round p99 overheads; cpu gw/mock/client = CPU ms per \
         answered request of the target process (its whole process tree, until it is idle \
         again after the slice), the mock and this client, from /proc/PID/stat; rq/req, rq/run = microseconds the target's \
         threads spent runnable but waiting for a CPU (the guest scheduler's run-queue delay, \
         /proc/PID/task/TID/schedstat), per answered request and per time a thread got the CPU; mach = whole-machine CPU busy during the slices (other \
         tenants and steal included); steal = the share of the machine's CPU time the hypervisor \
         gave to other guests during the slices (high steal: bad weather, compare only within the run); err = errors + open-loop requests never sent"
    );
}
