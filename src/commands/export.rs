//! `tutorlog export dataset`: fine-tuning examples and preference pairs from the log
//! (the rules are in [`crate::export`]; the file shapes in docs/export.md).
//!
//! Reads a read-only view of the log (works beside a running daemon) up to the last
//! position at the start, so a daemon appending meanwhile does not change the
//! result, and writes each file to a temporary name, syncs it and renames it, the
//! manifest last: a directory with a manifest holds a complete export.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use tutorlog_actors::content::ItemBank;
use tutorlog_store::{EventStore, READ_EVENTS_MAX};

use crate::{
    backend,
    cli::StoreArgs,
    export::{self, BuildOptions, SourceRange, Sources, MANIFEST_FILE_NAME, MIN_QUALITY_DEFAULT},
    log_time,
};

/// `tutorlog export ...`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write train/validation/test JSONL (OpenAI chat format), preference pairs and a
    /// manifest from graded rounds and recorded gateway exchanges.
    Dataset(DatasetArgs),
}

/// `tutorlog export dataset`.
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Data directory of the daemon (read-only; works while `serve` runs).
    #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Directory to write the files to (created if missing; files are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Least composite quality score (0–100) an example or pair needs [default: 70].
    #[arg(long, value_name = "SCORE", allow_negative_numbers = true)]
    pub min_quality: Option<String>,
    /// Only events recorded at or after this RFC 3339 time.
    #[arg(long, value_name = "RFC3339")]
    pub since: Option<String>,
    /// Item bank file (TOML or JSON) [default: the bank built into tutorlog].
    #[arg(long, value_name = "FILE")]
    pub items: Option<PathBuf>,
    /// Log backend.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Parses `--min-quality`: a finite number ≥ 0 (above 100 keeps nothing).
pub fn parse_min_quality(text: Option<&str>) -> anyhow::Result<f64> {
    let Some(text) = text else {
        return Ok(MIN_QUALITY_DEFAULT);
    };
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => bail!("--min-quality {text:?}: expected a number from 0 to 100"),
    }
}

/// Parses `--since`.
pub fn parse_since(text: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    let Some(text) = text else { return Ok(None) };
    let time = DateTime::parse_from_rfc3339(text.trim()).with_context(|| {
        format!("--since {text:?}: expected an RFC 3339 time such as 2026-03-01T00:00:00Z")
    })?;
    Ok(Some(time.with_timezone(&Utc)))
}

/// Runs `export dataset`.
pub async fn run(command: &ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Dataset(args) = command;
    let min_quality = parse_min_quality(args.min_quality.as_deref())?;
    let since = parse_since(args.since.as_deref())?;
    let loaded;
    let bank = match &args.items {
        Some(path) => {
            loaded = ItemBank::from_path(path)?;
            &loaded
        }
        None => ItemBank::bundled(),
    };
    let handle = backend::open_reader(&args.store.config(), &args.data_dir).await?;
    let (sources, first, last) = read_sources(handle.store.as_ref(), since).await?;
    let dataset = export::build(&sources, bank, &BuildOptions { min_quality });
    let range = SourceRange {
        first_position: first,
        last_position: last,
        since,
        min_quality,
        bank_fingerprint: bank.fingerprint(),
        bank_items: bank.len(),
    };
    let files = export::render(&dataset, &sources.stats, &range);
    write_files(&args.out, &files)?;
    let [train, validation, test] = [0, 1, 2].map(|slot| dataset.splits[slot].len());
    println!(
        "{}",
        serde_json::json!({
            "out": args.out,
            "version": files.version,
            "train": train,
            "validation": validation,
            "test": test,
            "preferences": dataset.preferences.len(),
        })
    );
    Ok(())
}

/// Folds `[first position at or after since, last position now]` into sources.
async fn read_sources(
    store: &dyn EventStore,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<(Sources, Option<u64>, Option<u64>)> {
    let mut sources = Sources::new();
    let end = log_time::next_position(store);
    let start = match since {
        Some(time) => log_time::first_position_at_or_after(store, time, 0, end).await?,
        None => 0,
    };
    let progress = indicatif::ProgressBar::with_draw_target(
        Some(end.saturating_sub(start)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let mut cursor = start;
    let mut last = None;
    while cursor < end {
        let chunk = usize::try_from(end - cursor)
            .unwrap_or(READ_EVENTS_MAX)
            .min(READ_EVENTS_MAX);
        let events = store.read_all(cursor, chunk).await?;
        let Some(tail) = events.last() else { break };
        cursor = tail.position + 1;
        for event in events.iter().filter(|e| e.position < end) {
            sources.apply(event)?;
            last = Some(event.position);
        }
        progress.inc(u64::try_from(events.len()).unwrap_or(0));
    }
    progress.finish_and_clear();
    let first = last.map(|_| start);
    Ok((sources, first, last))
}

fn write_files(out: &Path, files: &export::ExportFiles) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // An old manifest beside half-replaced data files would vouch for them: remove
    // it first, write it last.
    let manifest = out.join(MANIFEST_FILE_NAME);
    match std::fs::remove_file(&manifest) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("removing {}", manifest.display()))
        }
    }
    for (name, bytes) in &files.data {
        write_atomically(out, name, bytes)?;
    }
    write_atomically(out, MANIFEST_FILE_NAME, &files.manifest)?;
    // The renames are durable once the directory is synced.
    std::fs::File::open(out)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("syncing {}", out.display()))?;
    Ok(())
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_with_a_message_naming_them() {
        assert_eq!(parse_min_quality(None).expect("default"), 70.0);
        assert_eq!(parse_min_quality(Some("101")).expect("101"), 101.0);
        for bad in ["abc", "-1", "NaN", "inf", ""] {
            let error = parse_min_quality(Some(bad)).expect_err(bad);
            assert!(error.to_string().contains("--min-quality"), "{error}");
        }
        assert!(parse_since(None).expect("none").is_none());
        let since = parse_since(Some("2026-03-01T00:00:00+01:00"))
            .expect("valid")
            .expect("some");
        assert_eq!(since.to_rfc3339(), "2026-02-28T23:00:00+00:00");
        let error = parse_since(Some("yesterday")).expect_err("bad");
        assert!(format!("{error:#}").contains("--since"), "{error:#}");
    }
}
