//! Admin endpoints that are not about one domain (bearer token required).

use axum::{extract::State, http::HeaderMap, http::StatusCode, Json};
use serde_json::{json, Value};

use crate::{
    http::{error::ApiError, learning::authorize, AppState},
    reload::ReloadError,
};

/// `POST /api/v1/admin/config/reload`: the same as SIGHUP. 200 with the changed
/// keys; 400 when the file is invalid (the message names the key) or changes keys
/// that need a restart (named); 409 without a config file.
pub async fn reload_config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let reloader = state.reloader.as_ref().ok_or_else(|| {
        ApiError::unavailable("reload_unavailable", "config reload is not available")
    })?;
    match reloader.reload().await {
        Ok(reloaded) => Ok(Json(json!({
            "applied": !reloaded.changes.is_empty(),
            "changes": reloaded.changes,
        }))),
        Err(error @ (ReloadError::Invalid(_) | ReloadError::RestartRequired(_))) => {
            Err(ApiError::bad_request(error.to_string()))
        }
        Err(error @ ReloadError::NoFile) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_config_file",
            message: error.to_string(),
        }),
        Err(error @ ReloadError::Apply(_)) => {
            tracing::error!(%error, "config reload failed");
            Err(ApiError::unavailable("reload_failed", error.to_string()))
        }
    }
}
