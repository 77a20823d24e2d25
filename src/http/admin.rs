//! Admin endpoints that are not about one domain (bearer token required).

use axum::{extract::State, http::HeaderMap, http::StatusCode, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    http::{
        error::{ApiError, ErrorBody},
        learning::authorize,
        AppState,
    },
    reload::ReloadError,
};

/// Answer of `POST /api/v1/admin/config/reload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigReloaded {
    /// Whether anything changed.
    pub applied: bool,
    /// Dotted keys that changed (empty: the file matched the running config).
    pub changes: Vec<String>,
}

/// Reload the config file.
///
/// `POST /api/v1/admin/config/reload`: the same as SIGHUP. 200 with the changed
/// keys; 400 when the file is invalid (the message names the key) or changes keys
/// that need a restart (named); 409 without a config file.
#[utoipa::path(
    post,
    path = "/api/v1/admin/config/reload",
    tag = "admin",
    operation_id = "admin_config_reload",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The config file was re-read; `changes` names what changed", body = ConfigReloaded),
        (status = 400, description = "The file is invalid (the message names the key) or changes keys that need a restart", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled", body = ErrorBody),
        (status = 409, description = "`no_config_file`: the daemon was started without one", body = ErrorBody),
        (status = 503, description = "Reload is unavailable or applying the change failed", body = ErrorBody),
    )
)]
pub async fn reload_config(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ConfigReloaded>, ApiError> {
    authorize(&state, &headers)?;
    let reloader = state.reloader.as_ref().ok_or_else(|| {
        ApiError::unavailable("reload_unavailable", "config reload is not available")
    })?;
    match reloader.reload().await {
        Ok(reloaded) => Ok(Json(ConfigReloaded {
            applied: !reloaded.changes.is_empty(),
            changes: reloaded.changes,
        })),
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
