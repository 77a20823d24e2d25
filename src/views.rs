//! The read models the daemon runs, and the HTTP handlers that serve them.
//!
//! Each projection runs in its own task (tailing the committed log from its own
//! snapshot); an append never waits for a projection. Readers pass
//! `?min_position=N` to wait, bounded by `server.min_position_wait_ms`, until the
//! view includes the event at position N (read-your-writes).

use std::{path::Path, sync::Arc, time::Duration};

use axum::{extract::State, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tutorlog_projections::{
    telemetry::describe_metrics, Projection, ProjectionReader, ProjectionRunner, RunnerOptions,
    StreamStats, WaitError,
};
use tutorlog_store::EventStore;

use crate::{
    config::Config,
    http::{
        error::{ApiError, ApiQuery},
        AppState, ReadinessCheck,
    },
};

/// Reader of the `stream_stats` view.
pub type StatsView = ProjectionReader<StreamStats>;

/// The running projections.
pub struct Projections {
    /// `stream_stats`.
    pub stats: StatsView,
    stats_runner: ProjectionRunner<StreamStats>,
    /// The log's next position when the daemon started: ready once every view
    /// reached it.
    startup_next_position: u64,
}

/// Starts every projection from its snapshot.
pub async fn start(
    store: Arc<dyn EventStore>,
    snapshot_dir: &Path,
    config: &Config,
) -> anyhow::Result<Projections> {
    describe_metrics();
    let startup_next_position = store.last_position().map_or(0, |p| p + 1);
    let mut options = RunnerOptions::new(snapshot_dir);
    options.snapshot_every_events = config.projections.snapshot_every_events;
    options.snapshot_interval = Duration::from_secs(config.projections.snapshot_every_secs.max(1));
    let stats_runner = ProjectionRunner::start(store, StreamStats::new(), options).await?;
    Ok(Projections {
        stats: stats_runner.reader(),
        stats_runner,
        startup_next_position,
    })
}

impl Projections {
    /// Ready once every projection has folded the log as it was at startup.
    pub fn readiness(&self) -> ReadinessCheck {
        let stats = self.stats.clone();
        let target = self.startup_next_position;
        Arc::new(move || {
            let at = stats.next_position();
            if at >= target {
                Ok(())
            } else {
                Err(format!(
                    "projections catching up: {} at {at} of {target} events",
                    stats.name()
                ))
            }
        })
    }

    /// Stops every projection, each writing a final snapshot.
    pub async fn stop(self) {
        match self.stats_runner.shutdown().await {
            Ok(exit) => tracing::info!(
                projection = StreamStats::NAME,
                next_position = exit.next_position,
                "projection stopped"
            ),
            Err(error) => {
                tracing::error!(projection = StreamStats::NAME, %error, "projection failed")
            }
        }
    }
}

/// Query accepted by every view endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// Wait until the view includes the event at this position.
    pub min_position: Option<u64>,
}

/// Waits for `min_position` (bounded), mapping a miss to 503.
pub async fn wait_for_position<P: Projection>(
    reader: &ProjectionReader<P>,
    min_position: Option<u64>,
    config: &Config,
) -> Result<(), ApiError> {
    let Some(position) = min_position else {
        return Ok(());
    };
    let timeout = Duration::from_millis(config.server.min_position_wait_ms);
    reader
        .wait_for(position, timeout)
        .await
        .map_err(|error| match error {
            WaitError::Timeout { .. } => ApiError::unavailable(
                "not_caught_up",
                format!("{error}; retry, or ask without min_position"),
            ),
            WaitError::Stopped { .. } => ApiError::unavailable(
                "projection_stopped",
                format!("{error}; see the daemon's log"),
            ),
        })
}

/// `GET /api/v1/stats`: log statistics from the `stream_stats` view.
pub async fn stats(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    wait_for_position(&state.stats, query.min_position, &state.config).await?;
    let (view, next_position) = state.stats.view().map_err(|error| {
        tracing::error!(%error, "stream_stats view does not serialize");
        ApiError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "view unavailable".into(),
        }
    })?;
    Ok(Json(
        json!({ "projection": StreamStats::NAME, "next_position": next_position, "view": view }),
    ))
}
