//! The HTTP API (axum): routes, shared state, limits.

pub mod admin;
pub mod audit;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod gateway;
pub mod health;
pub mod learning;
pub mod openapi;
pub mod views;

use std::{sync::Arc, time::Duration};

use axum::{extract::DefaultBodyLimit, http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};
use tutorlog_store::EventStore;
use utoipa_axum::routes;

use crate::config::Config;

/// Says whether the daemon is ready; `Err` explains what it is waiting for.
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;
/// Says whether the log is poisoned, and why.
pub type PoisonCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What every handler can reach: one shared [`AppStateInner`]. Handlers get the
/// state by value, once per request; behind one `Arc` that is a single count
/// instead of twenty-odd (a gateway profile showed the field-by-field clone and
/// drop at 1.8 % of the daemon's CPU).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    /// Shares `inner` with every handler.
    pub fn new(inner: AppStateInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppStateInner {
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

/// Every route, documented or listed: the only place routes are added (see
/// [`openapi`]). Needs no state, so tests can inspect it.
pub fn routes() -> openapi::Routes {
    openapi::RouteTable::new()
        .unlisted("GET", "/", get(dashboard::index))
        .unlisted("GET", "/dashboard/{asset}", get(dashboard::asset))
        .api(routes!(health::healthz))
        .api(routes!(health::readyz))
        .api(routes!(health::metrics))
        .api(routes!(events::list))
        .api(routes!(views::stats))
        .api(routes!(views::view))
        .api(routes!(learning::focus_areas))
        .api(routes!(learning::start))
        .api(routes!(learning::round))
        .api(routes!(learning::pause))
        .api(routes!(learning::resume))
        .api(routes!(learning::progress))
        .api(routes!(learning::health))
        .api(routes!(learning::challenge_start))
        .api(routes!(learning::challenge_grade))
        .api(routes!(learning::info))
        .api(routes!(learning::algo_runs))
        .api(routes!(audit::request))
        .api(routes!(audit::view_as_of))
        .api(routes!(learning::admin_register))
        .api(routes!(learning::admin_activate))
        .api(routes!(learning::admin_params))
        .api(routes!(learning::admin_run))
        .api(routes!(gateway::chat_completions))
        .api(routes!(gateway::models))
        .api(routes!(gateway::chat))
        .api(routes!(gateway::feedback))
        .api(routes!(gateway::select))
        .api(routes!(gateway::providers_status))
        .api(routes!(gateway::providers_health))
        .api(routes!(gateway::provider_health))
        .api(routes!(gateway::providers_costs))
        .api(routes!(gateway::benchmarks))
        .api(routes!(gateway::budget_check))
        .api(routes!(gateway::budget_status))
        .api(routes!(admin::reload_config))
        .api(routes!(gateway::admin_run_benchmarks))
        .finish()
}

/// Builds the router with its limits.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.body_limit_bytes;
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    routes()
        .router
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
