//! End-to-end dashboard test: the real daemon with three mock providers, data
//! made over HTTP (training sessions, gateway calls, a refused over-budget call,
//! an opened circuit, a benchmark run), then `GET /` rendered by headless
//! Chromium. Every number the page shows (read back by its `data-testid`) must
//! equal what the JSON API answers at the same log position.
//!
//! Chromium is found as `$TUTORLOG_E2E_CHROMIUM`, else `chromium` or
//! `chromium-browser` on `PATH`. Without one the tests print
//! `skipped: chromium not found (apt-get install chromium)` and pass, unless
//! `TUTORLOG_E2E_REQUIRE_CHROMIUM=1` (CI) makes that a failure.
//! `TUTORLOG_DASHBOARD_SCREENSHOT=PATH` also saves a PNG of the rendered page
//! (that is how `docs/dashboard.png` is made).

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{gateway_toml, mock_provider_toml, Daemon, Mock};
use tutorlog_actors::content::ItemBank;

/// What the message says when Chromium is missing (and CI does not require it).
const SKIP_MESSAGE: &str = "skipped: chromium not found (apt-get install chromium)";
/// Virtual time the page gets before its DOM is dumped: the first refresh and
/// at least one more poll (the page polls every 3 s).
const VIRTUAL_TIME_BUDGET_MS: u32 = 5_000;
/// Wall-clock limit of one Chromium run.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);
/// Each paid call: 10 prompt tokens at 1,000 µ$/token + 16 completion tokens at 2,000.
const CALL_MICROS: u64 = 10 * 1_000 + 16 * 2_000;

/// The browser to use, or `None` (after saying so) to skip the test.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = std::env::var_os("TUTORLOG_E2E_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["chromium", "chromium-browser"]
                .into_iter()
                .find_map(on_path)
        });
    if found.is_none() {
        assert!(
            std::env::var("TUTORLOG_E2E_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "TUTORLOG_E2E_REQUIRE_CHROMIUM=1 but {SKIP_MESSAGE}"
        );
        eprintln!("{SKIP_MESSAGE}");
    }
    found
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// What one headless Chromium run left: its stdout (the DOM with `--dump-dom`)
/// and its stderr (console messages, with `--enable-logging=stderr`).
struct ChromiumRun {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `url` with `action` (`--dump-dom` or
/// `--screenshot=...`). The flags are the ones this machine needs: no sandbox
/// (root in a container), no GPU, and no background networking (the network is
/// closed; without them Chromium retries Google's hosts at every start).
fn chromium(browser: &Path, url: &str, action: &[String]) -> ChromiumRun {
    let scratch = tempfile::tempdir().expect("chromium scratch dir");
    let profile = scratch.path().join("profile");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--log-level=0",
            &format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _killed = child.kill();
            let _reaped = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_TIMEOUT:?}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = ChromiumRun {
        stdout: std::fs::read_to_string(&stdout_path).expect("chromium stdout"),
        stderr: std::fs::read_to_string(&stderr_path).expect("chromium stderr"),
    };
    assert!(status.success(), "chromium exited {status}: {}", run.stderr);
    run
}

/// The page as Chromium rendered it: `data-testid` → the text of that element.
struct Page {
    values: BTreeMap<String, String>,
}

impl Page {
    /// Loads `url` and parses the rendered DOM. Checks the page refreshed at
    /// least once and that the browser reported no policy violation or script
    /// error on its console.
    fn load(browser: &Path, url: &str) -> Page {
        let run = chromium(browser, url, &["--dump-dom".to_owned()]);
        let dom = run.stdout;
        assert!(
            dom.contains("data-state=\"ready\""),
            "the page never rendered: {}",
            dom.get(..2_000).unwrap_or(&dom)
        );
        for line in run.stderr.lines().filter(|line| line.contains("CONSOLE")) {
            let bad = [
                "Content Security Policy",
                "Content-Security-Policy",
                "Uncaught",
            ];
            assert!(
                !bad.iter().any(|needle| line.contains(needle)),
                "console: {line}"
            );
        }
        Page {
            values: testids(&dom),
        }
    }

    fn text(&self, id: &str) -> &str {
        self.values.get(id).map(String::as_str).unwrap_or_else(|| {
            let known: Vec<&String> = self.values.keys().collect();
            panic!("no data-testid {id:?} on the page; it has {known:?}")
        })
    }

    fn has(&self, id: &str) -> bool {
        self.values.contains_key(id)
    }

    fn integer(&self, id: &str) -> u64 {
        let text = self.text(id);
        text.parse()
            .unwrap_or_else(|e| panic!("{id}: {text:?} is not an integer: {e}"))
    }

    fn assert_integer(&self, id: &str, expected: u64) {
        assert_eq!(self.integer(id), expected, "{id}");
    }

    /// Shown with `decimals` digits: within half a unit of the last digit.
    fn assert_decimal(&self, id: &str, expected: f64, decimals: i32) {
        let text = self.text(id);
        let shown: f64 = text
            .parse()
            .unwrap_or_else(|e| panic!("{id}: {text:?} is not a number: {e}"));
        assert_eq!(
            text.split_once('.').map_or(0, |(_, f)| f.len()),
            usize::try_from(decimals).expect("decimals"),
            "{id}: {text:?}"
        );
        let half_unit = 0.5 * 10f64.powi(-decimals) + 1e-9;
        assert!(
            (shown - expected).abs() <= half_unit,
            "{id}: page shows {text}, the API says {expected}"
        );
    }

    /// A dollar amount shown with six decimals must be the micro-dollars exactly.
    fn assert_usd(&self, id: &str, micros: u64) {
        assert_eq!(
            self.text(id),
            format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
            "{id}"
        );
    }
}

/// Every `data-testid="ID"` in `dom` with the text up to the element's first
/// child tag (the page puts each number alone in its element). An id must be
/// unique on the page.
fn testids(dom: &str) -> BTreeMap<String, String> {
    const MARK: &str = "data-testid=\"";
    let mut values = BTreeMap::new();
    let mut rest = dom;
    while let Some(start) = rest.find(MARK) {
        rest = &rest[start + MARK.len()..];
        let Some(end) = rest.find('"') else { break };
        let id = unescape(&rest[..end]);
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let text = &rest[open_end + 1..];
        let text = &text[..text.find('<').unwrap_or(text.len())];
        let text = unescape(text.trim());
        if let Some(earlier) = values.insert(id.clone(), text) {
            panic!("data-testid {id:?} is on the page twice (first {earlier:?})");
        }
        rest = &rest[end..];
    }
    values
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

async fn get_ok(daemon: &Daemon, path: &str) -> Value {
    let (status, body) = daemon.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until nothing is being written and every view has folded the whole
/// log; returns the log's next position.
async fn wait_idle(daemon: &Daemon) -> u64 {
    let fold_all = async |next: u64| {
        if next == 0 {
            return;
        }
        for view in [
            "stream_stats",
            "mastery",
            "spend",
            "routing",
            "benchmarks",
            "algo_runs",
            "provider_health",
        ] {
            get_ok(
                daemon,
                &format!("/api/v1/views/{view}?min_position={}", next - 1),
            )
            .await;
        }
    };
    daemon
        .wait_still(Duration::from_millis(300), fold_all)
        .await
}

/// Loads the page when the daemon is idle; retried if an event slipped in
/// between (the page must show the position it was idle at).
async fn load_idle(daemon: &Daemon, browser: &Path) -> (Page, u64) {
    for _ in 0..3 {
        let next = wait_idle(daemon).await;
        let page = Page::load(browser, &format!("{}/", daemon.url));
        if page.integer("log-next-position") == next && wait_idle(daemon).await == next {
            return (page, next);
        }
    }
    panic!("the log kept moving while the page loaded");
}

/// The reference answer of the item with this prompt (to answer a round right).
fn reference_answer(prompt: &str) -> String {
    ItemBank::bundled()
        .items()
        .iter()
        .find(|item| item.prompt == prompt)
        .map(|item| item.answer.clone())
        .unwrap_or_else(|| panic!("prompt not in the bank: {prompt}"))
}

/// One training session of `rounds` rounds; `right(round)` says which to answer
/// with the reference answer.
async fn train(daemon: &Daemon, user: &str, area: &str, rounds: u64, right: fn(u64) -> bool) {
    let (status, started) = daemon
        .post(
            "/api/v1/training/start",
            &json!({ "user_id": user, "focus_area": area, "rounds": rounds }),
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let session = started["session_id"].clone();
    let mut prompt = started["prompt"].as_str().expect("prompt").to_owned();
    for round in 1..=rounds {
        let response = if right(round) {
            reference_answer(&prompt)
        } else {
            "no idea".to_owned()
        };
        let (status, graded) = daemon
            .post(
                "/api/v1/training/round",
                &json!({ "session_id": session, "response": response }),
            )
            .await;
        assert_eq!(status, 200, "round {round}: {graded}");
        if let Some(next) = graded["next_prompt"].as_str() {
            prompt = next.to_owned();
        }
    }
}

async fn chat(daemon: &Daemon, model: &str, text: &str) -> u16 {
    let body = json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 16,
    });
    daemon.post("/v1/chat/completions", &body).await.0
}

/// Drives every panel's data: three learners, gateway calls on three providers
/// (one refused over budget, one circuit opened), and a benchmark run.
async fn make_data(daemon: &Daemon) {
    let areas = get_ok(daemon, "/api/v1/training/focus-areas").await;
    let areas: Vec<&str> = areas["focus_areas"]
        .as_array()
        .expect("focus areas")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(areas.len() >= 2, "{areas:?}");
    train(daemon, "ada", areas[0], 5, |_| true).await;
    train(daemon, "bob", areas[0], 3, |round| round == 1).await;
    train(daemon, "cy", areas[1], 4, |round| round % 2 == 0).await;

    // The paid provider's budget holds two calls: the third is refused (402).
    let mut paid = BTreeMap::new();
    for i in 0..4 {
        let status = chat(daemon, "paid/mock-1", &format!("paid {i}")).await;
        *paid.entry(status).or_insert(0) += 1;
    }
    assert_eq!(paid.get(&200), Some(&2), "{paid:?}");
    assert_eq!(paid.get(&402), Some(&2), "{paid:?}");
    for i in 0..6 {
        assert_eq!(
            chat(daemon, "steady/mock-1", &format!("steady {i}")).await,
            200
        );
    }
    // Five failures open the flaky provider's circuit (open for 10 minutes).
    for i in 0..5 {
        assert_eq!(
            chat(daemon, "flaky/mock-1", &format!("flaky {i}")).await,
            502
        );
    }
    for i in 0..3 {
        assert_eq!(
            chat(daemon, "auto", &format!("write a haiku {i}")).await,
            200
        );
    }

    let (status, started) = daemon
        .post_admin(
            "/api/v1/admin/run-benchmarks",
            &json!({ "categories": ["coding", "math", "empathy"], "providers": ["steady"] }),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = get_ok(daemon, "/api/v1/views/benchmarks").await;
        let done = view["view"]["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .any(|run| run["run_id"] == run_id && run["status"] != "running");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "benchmark run never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_number_on_the_dashboard_matches_the_api() {
    support::clear_of_month_end(Duration::from_secs(300)).await;
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let paid = Mock::start(&["--prompt-tokens", "10", "--completion-tokens", "16"]);
    let steady = Mock::start(&["--latency-ms", "8", "--jitter-ms", "30", "--seed", "7"]);
    let flaky = Mock::start(&["--error-rate", "1", "--fault", "http500"]);
    let paid_limit_usd = (2 * CALL_MICROS + CALL_MICROS / 2) as f64 / 1e6;
    let config = format!(
        "{}{}{}{}",
        gateway_toml("strict"),
        mock_provider_toml("paid", &paid.base_url(), 1, paid_limit_usd, 600),
        mock_provider_toml("steady", &steady.base_url(), 2, 0.0, 600),
        mock_provider_toml("flaky", &flaky.base_url(), 3, 0.0, 600),
    );
    let daemon = Daemon::start(dir.path(), &config).await;
    make_data(&daemon).await;

    let (page, next) = load_idle(&daemon, &browser).await;
    let at = format!("min_position={}", next - 1);
    let stats = get_ok(&daemon, &format!("/api/v1/views/stream_stats?{at}")).await;
    assert_eq!(stats["next_position"], next);
    page.assert_integer(
        "events-total",
        stats["view"]["events_total"].as_u64().expect("total"),
    );
    page.assert_integer(
        "streams-count",
        stats["view"]["stream_count"].as_u64().expect("streams"),
    );

    check_mastery(
        &page,
        &get_ok(&daemon, &format!("/api/v1/views/mastery?{at}")).await,
    );
    let budget = get_ok(&daemon, "/api/v1/budget/status").await;
    check_spend(
        &page,
        &get_ok(&daemon, &format!("/api/v1/views/spend?{at}")).await,
        &budget,
    );
    check_health(
        &page,
        &get_ok(&daemon, &format!("/api/v1/provider-health?{at}")).await,
    );
    check_routing(
        &page,
        &get_ok(&daemon, &format!("/api/v1/views/routing?{at}")).await,
    );
    check_benchmarks(
        &page,
        &get_ok(&daemon, &format!("/api/v1/views/benchmarks?{at}")).await,
    );
    check_algo_runs(
        &page,
        &get_ok(&daemon, &format!("/api/v1/audit/algo-runs?limit=20&{at}")).await,
    );

    if let Some(path) = std::env::var_os("TUTORLOG_DASHBOARD_SCREENSHOT") {
        let path = std::path::absolute(PathBuf::from(path)).expect("screenshot path");
        chromium(
            &browser,
            &format!("{}/", daemon.url),
            &[
                format!("--screenshot={}", path.display()),
                "--window-size=1280,1500".to_owned(),
                "--hide-scrollbars".to_owned(),
            ],
        );
        println!("screenshot: {}", path.display());
    }
    daemon.stop();
}

/// Checks the page's view positions against the documents the test fetched.
fn check_position(page: &Page, view: &str, doc: &Value) {
    page.assert_integer(
        &format!("position-{view}"),
        doc["next_position"].as_u64().expect("next_position"),
    );
}

fn check_mastery(page: &Page, doc: &Value) {
    check_position(page, "mastery", doc);
    let learners = doc["view"]["learners"].as_object().expect("learners");
    assert_eq!(learners.len(), 3, "ada, bob and cy trained");
    page.assert_integer("learners-count", learners.len() as u64);
    // focus area → (mastery values, attempts)
    let mut areas: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut attempts = 0;
    for rows in learners.values() {
        for (area, row) in rows.as_object().expect("rows") {
            areas
                .entry(area)
                .or_default()
                .push(row["mastery"].as_f64().expect("mastery"));
            attempts += row["attempts"].as_u64().expect("attempts");
        }
    }
    assert_eq!(attempts, 12);
    page.assert_integer("attempts-total", attempts);
    page.assert_integer("focus-areas-count", areas.len() as u64);
    let challenges: u64 = doc["view"]["challenges"]
        .as_object()
        .expect("challenges")
        .values()
        .filter_map(|c| c["completed"].as_u64())
        .sum();
    page.assert_integer("challenges-completed", challenges);
    for (area, masteries) in &areas {
        page.assert_integer(&format!("mastery-learners-{area}"), masteries.len() as u64);
        let mean = masteries.iter().sum::<f64>() / masteries.len() as f64;
        page.assert_decimal(&format!("mastery-mean-{area}"), mean, 1);
        let mut bins = [0u64; 10];
        for mastery in masteries {
            bins[((mastery / 10.0).floor() as usize).min(9)] += 1;
        }
        for (index, count) in bins.iter().enumerate() {
            page.assert_integer(&format!("mastery-bin-{area}-{index}"), *count);
        }
    }
}

fn check_spend(page: &Page, doc: &Value, budget: &Value) {
    check_position(page, "spend", doc);
    let period = budget["providers"][0]["period"].as_str().expect("period");
    assert_eq!(page.text("spend-period"), period);
    let mut exceeded_total = 0;
    for live in budget["providers"].as_array().expect("budget rows") {
        let name = live["provider"].as_str().expect("provider");
        let row = &doc["view"]["providers"][name]["periods"][period];
        let micros = |key: &str| row[key].as_u64().unwrap_or(0);
        page.assert_usd(
            &format!("spend-committed-usd-{name}"),
            micros("committed_micros"),
        );
        page.assert_usd(
            &format!("spend-reserved-usd-{name}"),
            micros("reserved_micros"),
        );
        // The budget actor (live) and the spend view (the log) agree when idle.
        let live_spent = (live["spent_usd"].as_f64().expect("spent_usd") * 1e6).round() as u64;
        assert_eq!(live_spent, micros("committed_micros"), "{name}");
        page.assert_integer(
            &format!("spend-commits-{name}"),
            row["counts"]["commits"].as_u64().unwrap_or(0),
        );
        let exceeded = row["counts"]["exceeded"].as_u64().unwrap_or(0);
        page.assert_integer(&format!("spend-exceeded-{name}"), exceeded);
        exceeded_total += exceeded;
        if live["free"] == true {
            assert_eq!(page.text(&format!("spend-free-{name}")), "free");
        } else {
            page.assert_usd(&format!("spend-limit-usd-{name}"), micros("limit_micros"));
            page.assert_decimal(
                &format!("spend-percent-used-{name}"),
                row["percent_used"].as_f64().expect("percent_used"),
                2,
            );
        }
    }
    assert!(page.has("spend-limit-usd-paid"), "paid has a limit");
    page.assert_usd("spend-committed-usd-paid", 2 * CALL_MICROS);
    assert!(exceeded_total >= 2, "the refused calls are counted");
}

fn check_health(page: &Page, doc: &Value) {
    check_position(page, "provider_health", doc);
    for row in doc["providers"].as_array().expect("providers") {
        let name = row["provider"].as_str().expect("provider");
        assert_eq!(
            page.text(&format!("health-state-{name}")),
            row["state"].as_str().expect("state"),
            "{name}"
        );
        let history = &row["history"];
        page.assert_integer(
            &format!("health-calls-{name}"),
            history["calls"].as_u64().unwrap_or(0),
        );
        page.assert_integer(
            &format!("health-failures-{name}"),
            history["failures"].as_u64().unwrap_or(0),
        );
        page.assert_decimal(
            &format!("health-error-rate-{name}"),
            history["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            1,
        );
        for (key, id) in [
            ("latency_p50_micros", "health-latency-p50-ms"),
            ("latency_p99_micros", "health-latency-p99-ms"),
        ] {
            match history[key].as_u64() {
                Some(micros) => {
                    page.assert_decimal(&format!("{id}-{name}"), micros as f64 / 1e3, 1)
                }
                None => assert_eq!(page.text(&format!("{id}-{name}")), "—"),
            }
        }
    }
    assert_eq!(page.text("health-last-failure-steady"), "—");
    let flaky = doc["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|row| row["provider"] == "flaky")
        .expect("flaky");
    let last_failure = &flaky["history"]["last_failure"];
    let at = last_failure["at"].as_str().expect("last failure time");
    assert_eq!(
        page.text("health-last-failure-flaky"),
        format!(
            "{} at {}",
            last_failure["kind"].as_str().expect("kind"),
            at.get(11..19).expect("an RFC 3339 time")
        )
    );
    assert_eq!(page.text("health-state-flaky"), "open");
    assert_eq!(page.text("health-state-steady"), "closed");
    page.assert_integer("health-failures-flaky", 5);
}

fn check_routing(page: &Page, doc: &Value) {
    check_position(page, "routing", doc);
    page.assert_integer(
        "routing-executions-total",
        doc["view"]["executions_total"]
            .as_u64()
            .expect("executions_total"),
    );
    let providers = doc["view"]["providers"].as_object().expect("providers");
    for (name, models) in providers {
        let (mut requests, mut successes, mut failovers, mut duration, mut cost) = (0, 0, 0, 0, 0);
        for categories in models.as_object().expect("models").values() {
            for days in categories.as_object().expect("categories").values() {
                for row in days.as_object().expect("days").values() {
                    let field = |key: &str| row[key].as_u64().expect(key);
                    requests += field("requests");
                    successes += field("successes");
                    failovers += field("failovers");
                    duration += field("duration_sum_micros");
                    cost += field("cost_actual_micros");
                }
            }
        }
        page.assert_integer(&format!("routing-requests-{name}"), requests);
        page.assert_integer(&format!("routing-successes-{name}"), successes);
        page.assert_integer(&format!("routing-failovers-{name}"), failovers);
        let rate = if requests > 0 {
            successes as f64 / requests as f64
        } else {
            0.0
        };
        page.assert_decimal(&format!("routing-success-rate-{name}"), rate * 100.0, 1);
        let mean = if requests > 0 {
            duration as f64 / requests as f64
        } else {
            0.0
        };
        page.assert_decimal(&format!("routing-mean-latency-ms-{name}"), mean / 1e3, 1);
        page.assert_usd(&format!("routing-cost-actual-usd-{name}"), cost);
    }
    assert!(page.integer("routing-requests-steady") >= 6);
    page.assert_decimal("routing-success-rate-flaky", 0.0, 1);
}

fn check_benchmarks(page: &Page, doc: &Value) {
    check_position(page, "benchmarks", doc);
    let latest = doc["view"]["latest"].as_object().expect("latest");
    assert!(latest.contains_key("steady"), "{latest:?}");
    for (provider, categories) in latest {
        for (category, row) in categories.as_object().expect("categories") {
            let id = |what: &str| format!("bench-{what}-{provider}-{category}");
            let value = |key: &str| row[key].as_f64().expect(key);
            page.assert_decimal(&id("quality"), value("mean_quality"), 1);
            page.assert_decimal(&id("success-rate"), value("success_rate") * 100.0, 1);
            page.assert_decimal(&id("latency-ms"), value("mean_latency_micros") / 1e3, 1);
        }
    }
    let runs = doc["view"]["runs"].as_array().expect("runs");
    let last = runs.last().expect("a run");
    assert_eq!(
        page.text("bench-last-run-status"),
        last["status"].as_str().expect("status")
    );
    for (id, key) in [
        ("bench-last-run-results", "results"),
        ("bench-last-run-planned", "tests_planned"),
        ("bench-last-run-failures", "failures"),
    ] {
        page.assert_integer(id, last[key].as_u64().expect(key));
    }
}

fn check_algo_runs(page: &Page, doc: &Value) {
    check_position(page, "algo_runs", doc);
    let runs = doc["runs"].as_array().expect("runs");
    assert!(!runs.is_empty(), "training rounds record algorithm runs");
    page.assert_integer("algo-runs-shown", runs.len() as u64);
    for status in ["SUCCESS", "RUNNING", "FAILED"] {
        let count = runs.iter().filter(|run| run["status"] == status).count();
        page.assert_integer(&format!("algo-runs-status-{status}"), count as u64);
    }
    for (index, run) in runs.iter().enumerate() {
        assert_eq!(
            page.text(&format!("algo-run-key-{index}")),
            run["key"].as_str().expect("key")
        );
        assert_eq!(
            page.text(&format!("algo-run-status-{index}")),
            run["status"].as_str().expect("status")
        );
        page.assert_integer(
            &format!("algo-run-version-{index}"),
            run["version"].as_u64().expect("version"),
        );
        let started = run["started_at"]
            .as_str()
            .expect("started_at")
            .replace('T', " ");
        assert_eq!(
            page.text(&format!("algo-run-started-{index}")),
            started.get(..19).expect("an RFC 3339 time")
        );
    }
    assert!(
        !page.has(&format!("algo-run-key-{}", runs.len())),
        "no more rows than the API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_providers_the_dashboard_says_so_and_still_shows_learners() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), "").await;
    let areas = get_ok(&daemon, "/api/v1/training/focus-areas").await;
    let area = areas["focus_areas"][0]
        .as_str()
        .expect("a focus area")
        .to_owned();
    train(&daemon, "ada", &area, 2, |_| true).await;

    let (page, _) = load_idle(&daemon, &browser).await;
    for panel in ["spend", "health", "routing", "benchmarks"] {
        assert_eq!(
            page.text(&format!("no-providers-{panel}")),
            "no providers configured",
            "{panel}"
        );
    }
    page.assert_integer("learners-count", 1);
    page.assert_integer(&format!("mastery-learners-{area}"), 1);
    page.assert_integer("attempts-total", 2);
    daemon.stop();
}
