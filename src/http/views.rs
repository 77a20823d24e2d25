//! The read-model endpoints, documented: `GET /api/v1/stats` and
//! `GET /api/v1/views/{name}` (the handlers live in [`crate::views`]).

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiQuery, ErrorBody},
    AppState,
};
use crate::views::ViewQuery;

/// A view as served by `GET /api/v1/views/{name}` and printed by
/// `tutorlog replay --view` (docs/views.md has each view's shape). Documentation
/// only: the daemon builds it with [`crate::views::view_document`].
#[derive(Debug, ToSchema)]
#[schema(example = json!({"projection": "stream_stats", "next_position": 12, "view": {"events_total": 12}}))]
pub struct ViewDocument {
    /// The view's name, e.g. `spend`.
    pub projection: String,
    /// Events `0..next_position` are folded into `view`.
    pub next_position: u64,
    /// The read model itself; each view's fields are in docs/views.md.
    #[schema(value_type = Object)]
    pub view: Value,
    /// Only on a filtered as-of view: `{"user": U}` or `{"provider": P}`.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
}

/// The names `GET /api/v1/views/{name}` accepts ([`crate::views::VIEW_NAMES`];
/// a test keeps the two lists equal). Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ViewName {
    /// Events per type, streams, last position and time.
    StreamStats,
    /// Per learner × focus area mastery.
    Mastery,
    /// The audit table of algorithm runs.
    AlgoRuns,
    /// Money per provider × month, per model, user and session.
    Spend,
    /// Circuit state, error rate and latency per provider.
    ProviderHealth,
    /// Latest benchmark result per provider × category.
    Benchmarks,
    /// Per provider × model × category × day routing performance.
    Routing,
}

/// Log statistics.
///
/// `GET /api/v1/stats`: log statistics (the `stream_stats` view).
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "views",
    operation_id = "stats",
    params(
        ("min_position" = Option<u64>, Query, description = "Wait (bounded by `server.min_position_wait_ms`) until the view includes the event at this position"),
    ),
    responses(
        (status = 200, description = "The `stream_stats` view", body = ViewDocument),
        (status = 400, description = "A bad query string", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn stats(
    state: State<AppState>,
    query: ApiQuery<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::views::stats(state, query).await
}

/// A read model (view).
///
/// `GET /api/v1/views/{name}`: a whole view as `{"projection", "next_position",
/// "view"}`, the same document `tutorlog replay --view` prints.
#[utoipa::path(
    get,
    path = "/api/v1/views/{name}",
    tag = "views",
    operation_id = "view",
    params(
        ("name" = ViewName, Path, description = "The view (docs/views.md)"),
        ("min_position" = Option<u64>, Query, description = "Wait (bounded) until the view includes the event at this position"),
    ),
    responses(
        (status = 200, description = "The view", body = ViewDocument),
        (status = 400, description = "A bad query string", body = ErrorBody),
        (status = 404, description = "No view of that name", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn view(
    state: State<AppState>,
    name: Path<String>,
    query: ApiQuery<ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    crate::views::view(state, name, query).await
}
