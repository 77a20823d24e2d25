//! Command-line interface (clap). Every flag has a `TUTORLOG_*` environment
//! variable where it makes sense for a daemon.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tutorlog: an event-sourced adaptive-learning daemon on an LLM gateway.
#[derive(Debug, Parser)]
#[command(name = "tutorlog", version, about, propagate_version = true)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TUTORLOG_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Print events from the log as JSON lines (works while `serve` runs).
    Events(EventsArgs),
    /// Audit commands.
    Audit {
        /// Audit subcommand.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Offline evaluation of the learning algorithms (`algo predict`, `algo evaluate`).
    Algo {
        /// Algo subcommand.
        #[command(subcommand)]
        command: crate::commands::algo::AlgoCommand,
    },
    /// Print a view (stream_stats, mastery, algo_runs, spend, provider_health,
    /// benchmarks, routing) as of a position or time, as the daemon serves it at
    /// /api/v1/views/{name}, or as a table; optionally one stream, user or provider.
    Replay(crate::commands::replay::ReplayArgs),
    /// Run the mock LLM provider (OpenAI-compatible, for tests and benchmarks;
    /// docs/mock-provider.md).
    MockProvider(crate::mock_provider::MockProviderArgs),
    /// Export datasets from the log (`export dataset`).
    Export {
        /// Export subcommand.
        #[command(subcommand)]
        command: crate::commands::export::ExportCommand,
    },
    /// Show the chain of events behind one gateway request or training session/round.
    Explain(crate::commands::explain::ExplainArgs),
    /// Generate load against a running daemon: training, challenges and chat, open
    /// or closed loop, with latency percentiles per endpoint (docs/load.md).
    Load(crate::commands::load::LoadArgs),
    /// Validate a configuration file and print the effective configuration.
    Config {
        /// Config subcommand.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Which log backend a command uses; overrides `[store]` in the config file.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Log backend: `embedded` (the segmented log in DATA_DIR/log) or `kurrentdb`
    /// (needs a build with `--features kurrentdb`) [default: embedded].
    #[arg(long = "store", env = "TUTORLOG_STORE", value_parser = ["embedded", "kurrentdb"])]
    pub backend: Option<String>,
    /// KurrentDB connection string, e.g. `esdb://127.0.0.1:2113?tls=false`.
    #[arg(long, env = "TUTORLOG_KURRENTDB_URL")]
    pub kurrentdb_url: Option<String>,
}

impl StoreArgs {
    /// Applies the flags to a configuration.
    pub fn apply(&self, config: &mut crate::config::Config) {
        if let Some(backend) = &self.backend {
            config.store.backend = backend.clone();
        }
        if let Some(url) = &self.kurrentdb_url {
            config.store.kurrentdb_url = Some(url.clone());
        }
    }

    /// The `[store]` section these flags select, on top of the defaults.
    pub fn config(&self) -> crate::config::Config {
        let mut config = crate::config::Config::default();
        self.apply(&mut config);
        config
    }
}

/// `tutorlog serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Configuration file [default: ./tutorlog.toml if present].
    #[arg(long, env = "TUTORLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `server.data_dir`) [default: ./data].
    #[arg(long, env = "TUTORLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides `server.listen`) [default: 127.0.0.1:8080].
    #[arg(long, env = "TUTORLOG_LISTEN")]
    pub listen: Option<String>,
    /// Log backend.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tutorlog events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Data directory of the daemon.
    #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// First position (or revision with --stream).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Most events to print [default: all].
    #[arg(long)]
    pub limit: Option<u64>,
    /// Log backend.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tutorlog audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's checksum and the whole hash chain.
    Verify {
        /// Data directory of the daemon.
        #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Log backend.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `tutorlog config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE; print the effective configuration as JSON.
    Check {
        /// The file.
        file: PathBuf,
    },
}
