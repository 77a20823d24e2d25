//! `tutorlog events`: print the log as JSON lines.

use std::io::Write;

use anyhow::Context;
use tutorlog_schemas::json::envelope_json;
use tutorlog_store::EmbeddedStore;

use crate::cli::EventsArgs;

/// Prints envelopes, one JSON object per line, from a read-only view of the log.
pub fn run(args: &EventsArgs) -> anyhow::Result<()> {
    let dir = super::log_dir(&args.data_dir);
    let store = EmbeddedStore::open_read_only(&dir)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut left = args.limit.unwrap_or(u64::MAX);
    let mut cursor = args.from;
    while left > 0 {
        let chunk = (left.min(1000)) as usize;
        let events = match &args.stream {
            Some(stream) => store.read_stream_blocking(stream, cursor, chunk)?,
            None => store.read_all_blocking(cursor, chunk)?,
        };
        let Some(last) = events.last() else { break };
        cursor = if args.stream.is_some() {
            last.revision + 1
        } else {
            last.position + 1
        };
        left -= events.len() as u64;
        for event in &events {
            let line = serde_json::to_string(&envelope_json(event))?;
            if let Err(error) = writeln!(out, "{line}") {
                // A closed pipe (`| head`) is a normal way to stop reading.
                if error.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(error.into());
            }
        }
    }
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
