//! `tutorlog load`: the load generator (docs/load.md). The logic is in
//! [`crate::load`]; this is the command's edge: flags, the runtime, Ctrl-C, and
//! where the report goes.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;

use crate::load::{self, LoadOptions, Mix};

/// `tutorlog load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the daemon.
    #[arg(
        long,
        value_name = "URL",
        env = "TUTORLOG_LOAD_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,
    /// Simulated learners (each runs one session or challenge at a time).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub learners: u32,
    /// Open loop: a fixed arrival rate, requests per second, spread evenly; latency
    /// is measured from each request's due time. Without it: closed loop.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Measured window, seconds (after the warm-up).
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub duration: f64,
    /// Warm-up before the window, seconds: requests due then are sent but not counted.
    #[arg(long, value_name = "S", default_value_t = 0.0)]
    pub warmup: f64,
    /// Relative shares of requests, training:challenges:chat.
    #[arg(long, value_name = "T:C:G", default_value_t = Mix::default())]
    pub mix: Mix,
    /// Closed loop: clients [default: 64]. Open loop: most requests in flight
    /// [default: 4096].
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,
    /// Rounds per training session [default: the daemon's, 5].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Stop once this many training sessions have ended (completed or abandoned);
    /// with `--learners` as large, every learner runs exactly one session.
    #[arg(long, value_name = "N")]
    pub sessions: Option<u64>,
    /// Gateway API key for /v1/chat/completions.
    #[arg(
        long,
        value_name = "K",
        env = "TUTORLOG_API_KEY",
        default_value = "sk-local-dev",
        hide_env_values = true
    )]
    pub api_key: String,
    /// Gateway model: `auto`, `provider/model` or a model name.
    #[arg(long, value_name = "M", default_value = "auto")]
    pub model: String,
    /// Chance that an average learner answers an average item right (0–1); skill
    /// starts a little below it and rises with practice.
    #[arg(long, value_name = "F", default_value_t = 0.7)]
    pub correct_share: f64,
    /// Seed for learners, answers and the mix [default: from the clock, printed].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Also write the report as JSON to FILE (`-` for stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Append one JSON line per acknowledged (2xx) write to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .with_context(|| format!("{flag} {value}: must be a non-negative number of seconds"))
}

impl LoadArgs {
    /// The run's options.
    pub fn options(&self) -> anyhow::Result<LoadOptions> {
        let seed = self.seed.unwrap_or_else(|| {
            // Any value will do; the report prints it so the run can be repeated.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(LoadOptions {
            target: self.target.clone(),
            learners: self.learners,
            rate: self.rate,
            duration: seconds(self.duration, "--duration")?,
            warmup: seconds(self.warmup, "--warmup")?,
            mix: self.mix,
            concurrency: self.concurrency,
            rounds: self.rounds,
            sessions: self.sessions,
            api_key: self.api_key.clone(),
            model: self.model.clone(),
            correct_share: self.correct_share,
            seed,
            record: self.record.clone(),
            progress: true,
        })
    }
}

/// Runs the load, prints the table (or the JSON with `--json -`), writes `--json`.
pub fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    // One thread: the generator shares small machines with the daemon it measures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: never stop early.
            std::future::pending::<()>().await;
        }
    };
    let report = runtime.block_on(load::run(options, stop))?;
    let json = serde_json::to_string_pretty(&report)?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{json}"),
        Some(path) => {
            print!("{}", report.render());
            std::fs::write(path, format!("{json}\n"))
                .with_context(|| format!("--json {}", path.display()))?;
        }
        None => print!("{}", report.render()),
    }
    Ok(())
}
