//! The HTTP API (axum): routes, shared state, limits.

pub mod admin;
pub mod audit;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod gateway;
pub mod health;
pub mod learning;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};
use tutorlog_store::EventStore;

use crate::config::Config;

/// Says whether the daemon is ready; `Err` explains what it is waiting for.
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;
/// Says whether the log is poisoned, and why.
pub type PoisonCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The event log.
    pub store: Arc<dyn EventStore>,
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics: Option<PrometheusHandle>,
    /// Readiness of the projections.
    pub readiness: ReadinessCheck,
    /// Poisoned-log check.
    pub poisoned: PoisonCheck,
    /// The `stream_stats` read model.
    pub stats: crate::views::StatsView,
    /// The `mastery` read model.
    pub mastery: crate::views::MasteryView,
    /// The `algo_runs` read model.
    pub algo_runs: crate::views::AlgoRunsView,
    /// The `spend` read model.
    pub spend: crate::views::SpendView,
    /// The `provider_health` read model.
    pub provider_health: crate::views::ProviderHealthView,
    /// The `benchmarks` read model.
    pub benchmarks: crate::views::BenchmarksView,
    /// The `routing` read model.
    pub routing: crate::views::RoutingView,
    /// Training, challenges and the algorithm registry; `None` if not started.
    pub learning: Option<Arc<tutorlog_actors::learning::LearningService>>,
    /// The LLM gateway; `None` when no provider is configured.
    pub gateway: Option<crate::gateway::service::Gateway>,
    /// Keys accepted on `/v1/*`.
    pub api_keys: crate::gateway::keys::ApiKeys,
    /// Config reload (SIGHUP and the admin endpoint).
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// The benchmark scheduler; `None` without providers.
    pub benchmark_scheduler: Option<crate::gateway::benchmarks::BenchmarkScheduler>,
}

/// Builds the router with its limits.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/{asset}", get(dashboard::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/stats", get(crate::views::stats))
        .route("/api/v1/views/{name}", get(crate::views::view))
        .route("/api/v1/training/focus-areas", get(learning::focus_areas))
        .route("/api/v1/training/start", post(learning::start))
        .route("/api/v1/training/round", post(learning::round))
        .route("/api/v1/training/pause", post(learning::pause))
        .route("/api/v1/training/resume", post(learning::resume))
        .route("/api/v1/training/progress", get(learning::progress))
        .route("/api/v1/training/health", get(learning::health))
        .route("/api/v1/challenges/start", post(learning::challenge_start))
        .route("/api/v1/challenges/grade", post(learning::challenge_grade))
        .route("/api/v1/learning/info", get(learning::info))
        .route("/api/v1/audit/algo-runs", get(learning::algo_runs))
        .route("/api/v1/audit/requests/{id}", get(audit::request))
        .route("/api/v1/audit/views/{name}", get(audit::view_as_of))
        .route(
            "/api/v1/admin/algos/{key}/versions",
            post(learning::admin_register),
        )
        .route(
            "/api/v1/admin/algos/{key}/activate",
            post(learning::admin_activate),
        )
        .route(
            "/api/v1/admin/algos/{key}/params",
            post(learning::admin_params),
        )
        .route("/api/v1/admin/algos/{key}/run", post(learning::admin_run))
        .route("/v1/chat/completions", post(gateway::chat_completions))
        .route("/v1/models", get(gateway::models))
        .route("/api/v1/chat", post(gateway::chat))
        .route("/api/v1/feedback", post(gateway::feedback))
        .route("/api/v1/providers/select", post(gateway::select))
        .route("/api/v1/providers/status", get(gateway::providers_status))
        .route("/api/v1/providers/health", get(gateway::providers_health))
        .route("/api/v1/provider-health", get(gateway::providers_health))
        .route("/api/v1/providers/costs", get(gateway::providers_costs))
        .route("/api/v1/benchmarks", get(gateway::benchmarks))
        .route("/api/v1/budget/check", post(gateway::budget_check))
        .route("/api/v1/budget/status", get(gateway::budget_status))
        .route("/api/v1/admin/config/reload", post(admin::reload_config))
        .route(
            "/api/v1/admin/run-benchmarks",
            post(gateway::admin_run_benchmarks),
        )
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(cors(&state.config.server.cors_allowed_origins))
        .with_state(state)
}

/// CORS: off (no headers; browsers refuse cross-origin calls) unless
/// `server.cors_allowed_origins` lists origins.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
}
