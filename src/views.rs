//! The read models the daemon runs, and the HTTP handlers that serve them.
//!
//! Each projection runs in its own task (tailing the committed log from its own
//! snapshot), on a runtime of their own below the request path's priority; an
//! append never waits for a projection. Readers pass
//! `?min_position=N` to wait, bounded by `server.min_position_wait_ms`, until the
//! view includes the event at position N (read-your-writes).

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{extract::State, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tutorlog_projections::{
    telemetry::describe_metrics, AlgoRuns, Benchmarks, Feed, FeedBuilder, Mastery, Projection,
    ProjectionReader, ProjectionRunner, ProviderHealth, Routing, RunnerOptions, Spend, StreamStats,
    WaitError,
};
use tutorlog_store::EventStore;

use crate::{
    background::BackgroundRuntime,
    config::Config,
    http::{
        error::{ApiError, ApiQuery},
        AppState, ReadinessCheck,
    },
};

/// Reader of the `stream_stats` view.
pub type StatsView = ProjectionReader<StreamStats>;
/// Reader of the `mastery` view.
pub type MasteryView = ProjectionReader<Mastery>;
/// Reader of the `algo_runs` view.
pub type AlgoRunsView = ProjectionReader<AlgoRuns>;
/// Reader of the `spend` view.
pub type SpendView = ProjectionReader<Spend>;
/// Reader of the `provider_health` view.
pub type ProviderHealthView = ProjectionReader<ProviderHealth>;
/// Reader of the `benchmarks` view.
pub type BenchmarksView = ProjectionReader<Benchmarks>;
/// Reader of the `routing` view.
pub type RoutingView = ProjectionReader<Routing>;

/// The view names `GET /api/v1/views/{name}` and `tutorlog replay --view` accept.
pub const VIEW_NAMES: [&str; 7] = [
    StreamStats::NAME,
    Mastery::NAME,
    AlgoRuns::NAME,
    Spend::NAME,
    ProviderHealth::NAME,
    Benchmarks::NAME,
    Routing::NAME,
];

/// The JSON document a view is served as, by the daemon and by `tutorlog replay`
/// alike (so the two are byte-identical for the same `next_position`).
pub fn view_document<P: Projection>(
    projection: &P,
    next_position: u64,
) -> Result<Value, serde_json::Error> {
    Ok(json!({ "projection": P::NAME, "next_position": next_position, "view": projection.view()? }))
}

/// The running projections.
pub struct Projections {
    /// `stream_stats`.
    pub stats: StatsView,
    stats_runner: ProjectionRunner<StreamStats>,
    /// `mastery`.
    pub mastery: MasteryView,
    mastery_runner: ProjectionRunner<Mastery>,
    /// `algo_runs`.
    pub algo_runs: AlgoRunsView,
    algo_runs_runner: ProjectionRunner<AlgoRuns>,
    /// `spend`.
    pub spend: SpendView,
    spend_runner: ProjectionRunner<Spend>,
    /// `provider_health`.
    pub provider_health: ProviderHealthView,
    provider_health_runner: ProjectionRunner<ProviderHealth>,
    /// `benchmarks`.
    pub benchmarks: BenchmarksView,
    benchmarks_runner: ProjectionRunner<Benchmarks>,
    /// `routing`.
    pub routing: RoutingView,
    routing_runner: ProjectionRunner<Routing>,
    /// The one `$all` subscription the seven runners share; kept until they stop.
    feed: Feed,
    /// The log's next position when the daemon started: ready once every view
    /// reached it.
    startup_next_position: u64,
    /// What the runners and the feed run on; stopped last.
    runtime: Option<BackgroundRuntime>,
}

/// Starts every projection from its snapshot, on their own runtime at
/// `projections.nice` (see [`crate::background`]).
pub async fn start(
    store: Arc<dyn EventStore>,
    snapshot_dir: &Path,
    config: &Config,
) -> anyhow::Result<Projections> {
    describe_metrics();
    let mut options = RunnerOptions::new(snapshot_dir);
    options.snapshot_every_events = config.projections.snapshot_every_events;
    options.snapshot_interval = Duration::from_secs(config.projections.snapshot_every_secs.max(1));
    let runtime = BackgroundRuntime::start("tutorlog-views", config.projections.nice)
        .context("starting the projections' runtime")?;
    let mut projections = runtime
        .handle()
        .spawn(start_runners(store, options))
        .await
        .context("starting projections: the task ended early")??;
    projections.runtime = Some(runtime);
    Ok(projections)
}

/// Starts the seven runners and their feed on the current runtime.
async fn start_runners(
    store: Arc<dyn EventStore>,
    options: RunnerOptions,
) -> anyhow::Result<Projections> {
    let startup_next_position = store.last_position().map_or(0, |p| p + 1);
    // Each start loads and parses its snapshot off the async threads; started
    // together, the largest snapshot sets the time instead of the sum of all.
    // All seven share one feed: each event is read and decoded once, not seven
    // times (BENCHMARKS.md, "Gateway").
    let feed = FeedBuilder::new();
    let (
        stats_runner,
        mastery_runner,
        algo_runs_runner,
        spend_runner,
        provider_health_runner,
        benchmarks_runner,
        routing_runner,
    ) = tokio::try_join!(
        ProjectionRunner::start_on(
            &feed,
            Arc::clone(&store),
            StreamStats::new(),
            options.clone()
        ),
        ProjectionRunner::start_on(&feed, Arc::clone(&store), Mastery::new(), options.clone()),
        ProjectionRunner::start_on(&feed, Arc::clone(&store), AlgoRuns::new(), options.clone()),
        ProjectionRunner::start_on(&feed, Arc::clone(&store), Spend::new(), options.clone()),
        ProjectionRunner::start_on(
            &feed,
            Arc::clone(&store),
            ProviderHealth::new(),
            options.clone()
        ),
        ProjectionRunner::start_on(
            &feed,
            Arc::clone(&store),
            Benchmarks::new(),
            options.clone()
        ),
        ProjectionRunner::start_on(&feed, Arc::clone(&store), Routing::new(), options),
    )?;
    let feed = feed.start(&*store);
    Ok(Projections {
        stats: stats_runner.reader(),
        stats_runner,
        mastery: mastery_runner.reader(),
        mastery_runner,
        algo_runs: algo_runs_runner.reader(),
        algo_runs_runner,
        spend: spend_runner.reader(),
        spend_runner,
        provider_health: provider_health_runner.reader(),
        provider_health_runner,
        benchmarks: benchmarks_runner.reader(),
        benchmarks_runner,
        routing: routing_runner.reader(),
        routing_runner,
        feed,
        startup_next_position,
        runtime: None,
    })
}

impl Projections {
    /// Ready once every projection has folded the log as it was at startup.
    pub fn readiness(&self) -> ReadinessCheck {
        let stats = self.stats.clone();
        let mastery = self.mastery.clone();
        let algo_runs = self.algo_runs.clone();
        let spend = self.spend.clone();
        let provider_health = self.provider_health.clone();
        let benchmarks = self.benchmarks.clone();
        let routing = self.routing.clone();
        let target = self.startup_next_position;
        Arc::new(move || {
            let positions = [
                (stats.name(), stats.next_position()),
                (mastery.name(), mastery.next_position()),
                (algo_runs.name(), algo_runs.next_position()),
                (spend.name(), spend.next_position()),
                (provider_health.name(), provider_health.next_position()),
                (benchmarks.name(), benchmarks.next_position()),
                (routing.name(), routing.next_position()),
            ];
            match positions.iter().find(|(_, at)| *at < target) {
                None => Ok(()),
                Some((name, at)) => Err(format!(
                    "projections catching up: {name} at {at} of {target} events"
                )),
            }
        })
    }

    /// Stops every projection, each writing a final snapshot.
    pub async fn stop(self) {
        log_exit(StreamStats::NAME, self.stats_runner.shutdown().await);
        log_exit(Mastery::NAME, self.mastery_runner.shutdown().await);
        log_exit(AlgoRuns::NAME, self.algo_runs_runner.shutdown().await);
        log_exit(Spend::NAME, self.spend_runner.shutdown().await);
        log_exit(
            ProviderHealth::NAME,
            self.provider_health_runner.shutdown().await,
        );
        log_exit(Benchmarks::NAME, self.benchmarks_runner.shutdown().await);
        log_exit(Routing::NAME, self.routing_runner.shutdown().await);
        drop(self.feed);
        drop(self.runtime);
    }
}

fn log_exit<E: std::fmt::Display>(
    name: &'static str,
    exit: Result<tutorlog_projections::RunnerExit, E>,
) {
    match exit {
        Ok(exit) => tracing::info!(
            projection = name,
            next_position = exit.next_position,
            "projection stopped"
        ),
        Err(error) => tracing::error!(projection = name, %error, "projection failed"),
    }
}

/// Query accepted by every view endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// Wait until the view includes the event at this position.
    pub min_position: Option<u64>,
}

/// The largest position a client may name: positions are `int64` in the OpenAPI
/// document (JSON clients lose precision past it), and no log gets there.
pub const MAX_POSITION: u64 = i64::MAX as u64;

/// Waits for `min_position` (bounded), mapping a miss to 503.
///
/// A position no log could have written yet is the client's mistake, not the
/// daemon's: past [`MAX_POSITION`] always, and, on the embedded log (this
/// daemon is its only writer, so every position a write answered is already
/// at or below its head), past the head. Those answer 400 at once instead of a
/// 503 after the wait. On KurrentDB another node may have written it, so the
/// daemon waits as usual.
pub async fn wait_for_position<P: Projection>(
    reader: &ProjectionReader<P>,
    min_position: Option<u64>,
    config: &Config,
    store: &dyn EventStore,
) -> Result<(), ApiError> {
    let Some(position) = min_position else {
        return Ok(());
    };
    check_position(position, config, store.last_position())?;
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

/// The 400 cases of [`wait_for_position`]; `last` is the log's last position.
fn check_position(position: u64, config: &Config, last: Option<u64>) -> Result<(), ApiError> {
    if position > MAX_POSITION {
        return Err(ApiError::bad_request(format!(
            "min_position: at most {MAX_POSITION}"
        )));
    }
    if config.store.backend == "embedded" && last.is_none_or(|last| position > last) {
        let head = last.map_or_else(
            || "the log is empty".to_owned(),
            |l| format!("the last is {l}"),
        );
        return Err(ApiError::bad_request(format!(
            "min_position: {position} is past the end of the log ({head}); pass a position a write answered"
        )));
    }
    Ok(())
}

/// `GET /api/v1/stats`: log statistics from the `stream_stats` view.
pub async fn stats(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    wait_for_position(
        &state.stats,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
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

fn internal_view_error(name: &str, error: serde_json::Error) -> ApiError {
    tracing::error!(%error, view = name, "view does not serialize");
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "view unavailable".into(),
    }
}

async fn document<P: Projection>(
    reader: &ProjectionReader<P>,
    min_position: Option<u64>,
    state: &AppState,
) -> Result<Value, ApiError> {
    wait_for_position(reader, min_position, &state.config, state.store.as_ref()).await?;
    reader
        .read(|projection, next_position| view_document(projection, next_position))
        .map_err(|error| internal_view_error(P::NAME, error))
}

/// `GET /api/v1/views/{name}`: a whole view as `{"projection", "next_position",
/// "view"}`, the same document `tutorlog replay --view` prints.
pub async fn view(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    ApiQuery(query): ApiQuery<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    let body = match name.as_str() {
        StreamStats::NAME => document(&state.stats, query.min_position, &state).await?,
        Mastery::NAME => document(&state.mastery, query.min_position, &state).await?,
        AlgoRuns::NAME => document(&state.algo_runs, query.min_position, &state).await?,
        Spend::NAME => document(&state.spend, query.min_position, &state).await?,
        ProviderHealth::NAME => {
            document(&state.provider_health, query.min_position, &state).await?
        }
        Benchmarks::NAME => document(&state.benchmarks, query.min_position, &state).await?,
        Routing::NAME => document(&state.routing, query.min_position, &state).await?,
        _ => {
            return Err(ApiError::not_found(format!(
                "unknown view {name:?}; known: {}",
                VIEW_NAMES.join(", ")
            )))
        }
    };
    Ok(Json(body))
}
