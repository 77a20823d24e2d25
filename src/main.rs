//! The `tutorlog` binary: parses the command line and reports failures as one
//! line on stderr with a non-zero exit code.

mod allocator;

use clap::Parser;
use tutorlog::{
    cli::{AuditCommand, Cli, Command, ConfigCommand},
    commands, config, daemon, telemetry,
};

/// mimalloc instead of glibc malloc: see BENCHMARKS.md, "Learning" (RSS and CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` print as clap renders them, on stdout.
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("error: {}", one_line(&error.render().to_string()));
            std::process::exit(2);
        }
    };
    if matches!(cli.command, Command::Serve(_)) {
        allocator::purge_freed_memory_at_once();
    }
    telemetry::init_logging(cli.log_format);
    if let Err(error) = run(cli) {
        eprintln!("error: {}", chain_line(&error));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            if let Err(error) = allocator::disable_transparent_huge_pages() {
                tracing::warn!(%error, "could not turn transparent huge pages off; freed memory will fault back in as 2 MiB pages");
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("tutorlog-worker")
                .build()?;
            runtime.block_on(daemon::serve(args))
        }
        Command::Events(args) => tool_runtime()?.block_on(commands::events::run(&args)),
        Command::Replay(args) => commands::replay::run(&args),
        Command::MockProvider(args) => tutorlog::mock_provider::run(&args),
        Command::Export { command } => tool_runtime()?.block_on(commands::export::run(&command)),
        Command::Explain(args) => tool_runtime()?.block_on(commands::explain::run(&args)),
        Command::Load(args) => commands::load::run(&args),
        Command::Algo { command } => commands::algo::run(&command),
        Command::Audit {
            command: AuditCommand::Verify { data_dir, store },
        } => tool_runtime()?.block_on(commands::audit::verify_log(&data_dir, &store)),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = config::Config::load(&file)?;
            let effective: serde_json::Value = serde_json::from_str(&config.effective_json())?;
            println!("{}", serde_json::to_string_pretty(&effective)?);
            eprintln!("{}: valid", file.display());
            Ok(())
        }
    }
}

/// The error and its causes on one line, as `{:#}` prints them, less the causes
/// a message already quotes: our errors name their cause in their own text (the
/// HTTP answers and the log show only that), so `{:#}` would print it twice.
fn chain_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A clap error on one line: the message and its details, without the usage
/// block and the `--help` hint.
fn one_line(rendered: &str) -> String {
    let mut parts = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error:").unwrap_or(line).trim());
        }
    }
    parts.join(" ")
}

/// A small runtime for one-shot tools that read the log.
fn tool_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::chain_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Quoting {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_printed_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(Quoting {
            path: "a.toml",
            source: io(),
        });
        assert_eq!(chain_line(&error), "cannot read a.toml: no such file");
        // Context that does not quote its cause still shows it.
        let error = anyhow::Error::new(io()).context("opening the log");
        assert_eq!(chain_line(&error), "opening the log: no such file");
    }
}
