//! `tutorlog replay`: fold a view from the log as of a position or time and print it
//! as the same JSON document the daemon serves at `GET /api/v1/views/{name}`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use tutorlog_projections::{replay_until, AlgoRuns, Mastery, Projection, StreamStats, Until};
use tutorlog_store::EmbeddedStore;

use crate::views::{view_document, VIEW_NAMES};

/// `tutorlog replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Data directory of the daemon (read-only; works while `serve` runs).
    #[arg(long, env = "TUTORLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The view: mastery, algo_runs or stream_stats.
    #[arg(long)]
    pub view: String,
    /// Fold events up to this log position (inclusive) or RFC 3339 time; default: all.
    #[arg(long)]
    pub until: Option<String>,
}

/// Parses `--until`: a position (digits) or an RFC 3339 time.
pub fn parse_until(text: &str) -> anyhow::Result<Until> {
    if let Ok(position) = text.parse::<u64>() {
        return Ok(Until::Position(position));
    }
    let time = DateTime::parse_from_rfc3339(text).with_context(|| {
        format!("--until {text:?}: neither a log position nor an RFC 3339 time")
    })?;
    Ok(Until::Time(time.with_timezone(&Utc)))
}

async fn document<P: Projection>(
    store: &EmbeddedStore,
    projection: P,
    until: Until,
) -> anyhow::Result<serde_json::Value> {
    let replayed = replay_until(store, projection, until)
        .await
        .with_context(|| format!("replaying {}", P::NAME))?;
    Ok(view_document(&replayed.projection, replayed.next_position)?)
}

/// Prints the view as JSON on stdout.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let until = match &args.until {
        Some(text) => parse_until(text)?,
        None => Until::Position(u64::MAX),
    };
    let dir = super::log_dir(&args.data_dir);
    let store = EmbeddedStore::open_read_only(&dir)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(async {
        match args.view.as_str() {
            StreamStats::NAME => document(&store, StreamStats::new(), until).await,
            Mastery::NAME => document(&store, Mastery::new(), until).await,
            AlgoRuns::NAME => document(&store, AlgoRuns::new(), until).await,
            other => bail!(
                "--view {other:?}: unknown view; known: {}",
                VIEW_NAMES.join(", ")
            ),
        }
    })?;
    println!("{}", serde_json::to_string(&body)?);
    Ok(())
}
