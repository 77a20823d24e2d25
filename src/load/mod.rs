//! `tutorlog load`: the load generator for demos and benchmarks (docs/load.md).
//!
//! Simulated learners run whole training sessions and challenges, answering from
//! the item bank with a realistic share of right and wrong answers, and chat
//! through the gateway. The traffic is driven either open loop (a fixed arrival
//! rate, latency from each request's due time) or closed loop (C clients, each
//! waiting for its answer). The generator runs on one thread, to leave the other
//! core to the daemon on small machines.
//!
//! - [`answers`]: matching a prompt to its bank item, right and wrong answers, skill.
//! - [`schedule`]: the open-loop due times.
//! - [`scenario`]: the learners and the requests.
//! - [`stats`], [`report`]: histograms, counts and the printed report.
//! - [`record`]: `--record`, one line per acknowledged write.

pub mod answers;
pub mod chat;
pub mod record;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod stats;

use std::{
    future::Future,
    path::PathBuf,
    rc::Rc,
    str::FromStr,
    time::{Duration, Instant},
};

use serde::Deserialize;

use self::{
    record::Recorder,
    report::{MixReport, RecordReport, Report, RunInfo},
    scenario::{error_chain, Context, Setup},
    schedule::Schedule,
};

/// Closed-loop clients when `--concurrency` is not given.
pub const CONCURRENCY_DEFAULT: u32 = 64;
/// Most requests in flight in open loop when `--concurrency` is not given: beyond
/// it, due requests wait (and their latency shows the wait).
pub const OPEN_LOOP_IN_FLIGHT_DEFAULT: u32 = 4096;
/// Most clients or requests in flight.
pub const CONCURRENCY_MAX: u32 = 65_536;
/// Most learners.
pub const LEARNERS_MAX: u32 = 10_000_000;
/// A request with no full answer by then is a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection not made by then is a connection error.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After the window, how long a request due in it may still wait for a free
/// learner before it is given up.
pub const WAIT_AFTER_END_MAX: Duration = Duration::from_secs(5);
/// After the window, how long in-flight requests may take to finish.
pub const DRAIN_MAX: Duration = Duration::from_secs(40);
/// How often the progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

// In-flight requests (each bounded by the request timeout) end within the drain.
const _: () =
    assert!(DRAIN_MAX.as_secs() > WAIT_AFTER_END_MAX.as_secs() + REQUEST_TIMEOUT.as_secs());
const _: () = assert!(CONCURRENCY_DEFAULT <= CONCURRENCY_MAX);
const _: () = assert!(OPEN_LOOP_IN_FLIGHT_DEFAULT <= CONCURRENCY_MAX);

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The target did not answer at all at the start.
    #[error("cannot reach the target {target}: {message} (is `tutorlog serve` running and listening there?)")]
    Connect {
        /// Base URL.
        target: String,
        /// The transport error.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The `--record` file could not be opened or written.
    #[error("--record {path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `--mix training:challenges:chat`: relative shares of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix(pub [u32; 3]);

impl Default for Mix {
    fn default() -> Self {
        Mix([6, 2, 2])
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(':').collect();
        let [training, challenges, chat] = parts.as_slice() else {
            return Err(format!(
                "{text:?}: expected three weights training:challenges:chat, e.g. 6:2:2"
            ));
        };
        let weight = |name: &str, part: &str| {
            part.trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| format!("{text:?}: the {name} weight {part:?} is not a whole number from 0 to 1000000"))
        };
        let mix = Mix([
            weight("training", training)?,
            weight("challenges", challenges)?,
            weight("chat", chat)?,
        ]);
        if mix.0.iter().all(|w| *w == 0) {
            return Err(format!("{text:?}: at least one weight must be above 0"));
        }
        Ok(mix)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}:{b}:{c}")
    }
}

/// A run's settings (the command's flags).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL of the daemon, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Simulated learners.
    pub learners: u32,
    /// Open loop at this many requests per second; closed loop when `None`.
    pub rate: Option<f64>,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up before the window (sent, not measured).
    pub warmup: Duration,
    /// Shares of the three scenarios.
    pub mix: Mix,
    /// Closed-loop clients, or the open loop's in-flight cap (defaults above).
    pub concurrency: Option<u32>,
    /// Rounds per training session (`None`: the daemon's default).
    pub rounds: Option<u32>,
    /// Stop once this many training sessions have ended.
    pub sessions: Option<u64>,
    /// Gateway API key.
    pub api_key: String,
    /// Gateway model (`auto`, `provider/model` or a model name).
    pub model: String,
    /// Chance of a right answer for an average learner (0–1).
    pub correct_share: f64,
    /// Seeds the learners, their answers and the mix.
    pub seed: u64,
    /// `--record FILE`.
    pub record: Option<PathBuf>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

impl LoadOptions {
    /// Checks ranges; returns the concurrency in effect.
    fn validate(&self) -> Result<u32, LoadError> {
        let invalid = |m: String| Err(LoadError::Invalid(m));
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return invalid(format!(
                "--target {:?}: must be an http:// or https:// URL",
                self.target
            ));
        }
        if self.learners == 0 || self.learners > LEARNERS_MAX {
            return invalid(format!("--learners: must be 1 to {LEARNERS_MAX}"));
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= schedule::RATE_MAX) {
                return invalid(format!(
                    "--rate: must be above 0 and at most {}",
                    schedule::RATE_MAX
                ));
            }
        }
        if self.duration.is_zero() {
            return invalid("--duration: must be above 0".into());
        }
        if !(0.0..=1.0).contains(&self.correct_share) {
            return invalid("--correct-share: must be from 0 to 1".into());
        }
        if self.rounds == Some(0) {
            return invalid("--rounds: must be at least 1".into());
        }
        if self.sessions == Some(0) {
            return invalid("--sessions: must be at least 1".into());
        }
        let default = match self.rate {
            Some(_) => OPEN_LOOP_IN_FLIGHT_DEFAULT,
            None => CONCURRENCY_DEFAULT,
        };
        let concurrency = self.concurrency.unwrap_or(default);
        if concurrency == 0 || concurrency > CONCURRENCY_MAX {
            return invalid(format!("--concurrency: must be 1 to {CONCURRENCY_MAX}"));
        }
        Ok(concurrency)
    }
}

/// Runs the load and reports. `stop` ends the run early (Ctrl-C): what was
/// measured until then is reported. Must be awaited on a current-thread runtime
/// or inside `block_on` (it runs its tasks on a `LocalSet`).
pub async fn run(
    options: LoadOptions,
    stop: impl Future<Output = ()>,
) -> Result<Report, LoadError> {
    tokio::task::LocalSet::new()
        .run_until(run_local(options, stop))
        .await
}

async fn run_local(
    options: LoadOptions,
    stop: impl Future<Output = ()>,
) -> Result<Report, LoadError> {
    let concurrency = options.validate()?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency as usize)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| LoadError::Client(error_chain(&e)))?;
    let target = options.target.trim_end_matches('/').to_owned();
    let focus_areas = focus_areas(&client, &target).await?;
    let recorder = match &options.record {
        Some(path) => Some(Recorder::open(path).map_err(|source| LoadError::Record {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let end = measure_from + options.duration;
    let context = Rc::new(Context::new(Setup {
        client,
        target: target.clone(),
        focus_areas,
        learners: options.learners,
        rounds: options.rounds,
        sessions_max: options.sessions,
        api_key: options.api_key.clone(),
        model: options.model.clone(),
        correct_share: options.correct_share,
        seed: options.seed,
        recorder,
        measure_from,
        end,
    }));
    let window = Window {
        start,
        measure_from,
        end,
    };
    let bar = options.progress.then(|| progress_bar(window));
    let background = spawn_background(&context, bar.clone(), start);
    let driver = drive(&context, &options, concurrency, window);
    tokio::pin!(driver);
    tokio::pin!(stop);
    tokio::select! {
        () = &mut driver => {}
        () = &mut stop => {
            context.stop();
            driver.await;
        }
    }
    background.abort();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    context.flush_record();
    finish(&context, &options, concurrency, window)
}

/// The run's timeline: warm-up from `start`, measured from `measure_from` to `end`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// `GET /api/v1/training/focus-areas`: the start-up check that the target answers
/// at all (a failure to connect ends the run) and the areas learners pick from.
/// When learning is unavailable, the bank's categories stand in, so its requests
/// are still sent and their errors reported.
async fn focus_areas(client: &reqwest::Client, target: &str) -> Result<Vec<String>, LoadError> {
    #[derive(Deserialize)]
    struct Areas {
        focus_areas: Vec<String>,
    }
    let url = format!("{target}/api/v1/training/focus-areas");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| LoadError::Connect {
            target: target.to_owned(),
            message: error_chain(&e),
        })?;
    let ok = response.status().is_success();
    let areas = match response.json::<Areas>().await {
        Ok(areas) if ok && !areas.focus_areas.is_empty() => areas.focus_areas,
        _ => tutorlog_actors::content::ItemBank::bundled()
            .focus_areas()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    Ok(areas)
}

fn progress_bar(window: Window) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new((window.end - window.start).as_secs());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The record-file flusher and the progress bar's updates.
fn spawn_background(
    context: &Rc<Context>,
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
) -> tokio::task::AbortHandle {
    let context = Rc::clone(context);
    let handle = tokio::task::spawn_local(async move {
        let mut flush_at = Instant::now() + record::FLUSH_INTERVAL;
        loop {
            tokio::time::sleep(PROGRESS_INTERVAL.min(record::FLUSH_INTERVAL)).await;
            if Instant::now() >= flush_at {
                context.flush_record();
                flush_at = Instant::now() + record::FLUSH_INTERVAL;
            }
            if let Some(bar) = &bar {
                let (requests, failed) = context.progress();
                bar.set_position(start.elapsed().as_secs());
                bar.set_message(format!("{requests} requests measured, {failed} failed"));
            }
        }
    });
    handle.abort_handle()
}

/// Runs the open or closed loop until `end` or a stop.
async fn drive(context: &Rc<Context>, options: &LoadOptions, concurrency: u32, window: Window) {
    let weights = options.mix.0;
    match options.rate {
        Some(rate) => open_loop(context, weights, rate, concurrency, window.start).await,
        None => closed_loop(context, weights, concurrency).await,
    }
}

/// `concurrency` clients, each sending its next request when the last is answered.
async fn closed_loop(context: &Rc<Context>, weights: [u32; 3], concurrency: u32) {
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let context = Rc::clone(context);
            tokio::task::spawn_local(async move {
                while !context.stopping() && !context.past_end(Instant::now()) {
                    let scenario = context.pick(weights);
                    context.step(scenario, Instant::now()).await;
                }
            })
        })
        .collect();
    for client in clients {
        // A client task only ends by returning; a panic in one is a bug to surface.
        if let Err(error) = client.await {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Requests due at `start + i / rate`, each sent on time (or as soon as the
/// generator can) whatever the answers before it are doing.
async fn open_loop(
    context: &Rc<Context>,
    weights: [u32; 3],
    rate: f64,
    in_flight_max: u32,
    start: Instant,
) {
    let schedule = Schedule::new(start, rate);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight_max as usize));
    let mut tasks = tokio::task::JoinSet::new();
    let mut index = 0u64;
    loop {
        let due = schedule.due(index);
        if context.past_end(due) || context.stopping() {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        // A stop may have come during the sleep.
        if context.stopping() {
            break;
        }
        let Ok(permit) = std::sync::Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let scenario = context.pick(weights);
        context.note_send_lag(due);
        let task_context = Rc::clone(context);
        tasks.spawn_local(async move {
            task_context.step(scenario, due).await;
            drop(permit);
        });
        index += 1;
        // Reap finished tasks so the set stays as small as what is in flight.
        while let Some(done) = tasks.try_join_next() {
            surface_panic(done);
        }
    }
    let drained = tokio::time::timeout(DRAIN_MAX, async {
        while let Some(done) = tasks.join_next().await {
            surface_panic(done);
        }
    })
    .await;
    if drained.is_err() {
        // Cannot happen with the request timeout below the drain bound; stop waiting.
        tasks.abort_all();
    }
}

fn surface_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

fn finish(
    context: &Context,
    options: &LoadOptions,
    concurrency: u32,
    window: Window,
) -> Result<Report, LoadError> {
    let Window {
        start,
        measure_from,
        end,
    } = window;
    let (record_error, record_summary) = context.take_record_outcome();
    if let (Some(source), Some((path, _))) = (record_error, &record_summary) {
        return Err(LoadError::Record {
            path: path.clone(),
            source,
        });
    }
    let stopped_at = context.stopped_at().filter(|at| *at < end);
    let window_end = stopped_at.unwrap_or(end);
    let measured = window_end.saturating_duration_since(measure_from);
    let stopped_early = stopped_at.is_some();
    let scheduled = options.rate.map(|rate| {
        let schedule = Schedule::new(start, rate);
        schedule
            .count_within(window_end - start)
            .saturating_sub(schedule.count_within(measure_from - start))
    });
    let [training, challenges, chat] = options.mix.0;
    let run = RunInfo {
        target: options.target.trim_end_matches('/').to_owned(),
        mode: if options.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate: options.rate,
        concurrency,
        learners: options.learners,
        mix: MixReport {
            training,
            challenges,
            chat,
        },
        seed: options.seed,
        warmup_secs: options.warmup.as_secs_f64(),
        duration_secs: measured.as_secs_f64(),
        stopped_early,
        scheduled_requests: scheduled,
    };
    let record = record_summary.map(|(file, lines)| RecordReport { file, lines });
    Ok(Report::new(
        run,
        &context.stats(),
        context.sessions_open(),
        record,
    ))
}

#[cfg(test)]
mod tests;
