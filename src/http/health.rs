//! Liveness, readiness and Prometheus metrics.

use axum::{extract::State, http::header, response::IntoResponse, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ErrorBody},
    AppState,
};

/// Body of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Body of `GET /readyz`. Fields are in alphabetical order, as the `json!` map
/// this replaced wrote them, so the bytes on the wire did not change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// The log's last position; `null` for an empty log.
    pub last_position: Option<u64>,
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Liveness.
///
/// `GET /healthz`: the process is up and its log accepts writes. A poisoned log
/// (an earlier write or fsync failed) answers 503: only a restart recovers it.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses(
        (status = 200, description = "The process is up and the log accepts writes", body = Health),
        (status = 503, description = "`storage_poisoned`: an earlier write or fsync failed; restart the daemon", body = ErrorBody),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if let Some(reason) = (state.poisoned)() {
        return Err(ApiError::unavailable(
            "storage_poisoned",
            format!("the log refuses writes after a failure ({reason}); restart the daemon"),
        ));
    }
    Ok(Json(Health { status: "ok" }))
}

/// Readiness.
///
/// `GET /readyz`: ready once every projection has caught up with the log as it
/// was at startup (so queries answer from current views), and while healthy.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Every projection has folded the log as it was at startup", body = Ready),
        (status = 503, description = "`not_ready` (projections still catching up) or `storage_poisoned`", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if let Some(reason) = (state.poisoned)() {
        return Err(ApiError::unavailable(
            "storage_poisoned",
            format!("the log refuses writes after a failure ({reason})"),
        ));
    }
    match (state.readiness)() {
        Ok(()) => Ok(Json(Ready {
            last_position: state.store.last_position(),
            status: "ready",
        })),
        Err(waiting) => Err(ApiError::unavailable("not_ready", waiting)),
    }
}

/// Prometheus metrics.
///
/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format (`tutorlog_*` series)",
            body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let last = state.store.last_position().map_or(-1.0, |p| p as f64);
    metrics::gauge!("tutorlog_log_last_position").set(last);
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
