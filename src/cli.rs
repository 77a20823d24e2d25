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
    /// Validate a configuration file and print the effective configuration.
    Config {
        /// Config subcommand.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `tutorlog serve`.
#[derive(Debug, Args)]
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
}

/// `tutorlog audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's checksum and the whole hash chain.
    Verify {
        /// Data directory of the daemon.
        #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
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
