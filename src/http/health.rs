//! Liveness, readiness and Prometheus metrics.

use axum::{extract::State, http::header, response::IntoResponse, Json};
use serde_json::{json, Value};

use super::{error::ApiError, AppState};

/// `GET /healthz`: the process is up and its log accepts writes. A poisoned log
/// (an earlier write or fsync failed) answers 503: only a restart recovers it.
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(reason) = (state.poisoned)() {
        return Err(ApiError::unavailable(
            "storage_poisoned",
            format!("the log refuses writes after a failure ({reason}); restart the daemon"),
        ));
    }
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /readyz`: ready once every projection has caught up with the log as it
/// was at startup (so queries answer from current views), and while healthy.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(reason) = (state.poisoned)() {
        return Err(ApiError::unavailable(
            "storage_poisoned",
            format!("the log refuses writes after a failure ({reason})"),
        ));
    }
    match (state.readiness)() {
        Ok(()) => Ok(Json(
            json!({ "status": "ready", "last_position": state.store.last_position() }),
        )),
        Err(waiting) => Err(ApiError::unavailable("not_ready", waiting)),
    }
}

/// `GET /metrics`: Prometheus text format.
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
