//! `tutorlog events`: print the log as JSON lines.

use std::io::Write;

use tutorlog_schemas::json::envelope_json;

use crate::{backend, cli::EventsArgs};

/// Prints envelopes, one JSON object per line, from a read-only view of the log.
pub async fn run(args: &EventsArgs) -> anyhow::Result<()> {
    let handle = backend::open_reader(&args.store.config(), &args.data_dir).await?;
    let store = handle.store.as_ref();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut left = args.limit.unwrap_or(u64::MAX);
    let mut cursor = args.from;
    while left > 0 {
        let chunk = (left.min(1000)) as usize;
        let events = match &args.stream {
            Some(stream) => store.read_stream(stream, cursor, chunk).await?,
            None => store.read_all(cursor, chunk).await?,
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
