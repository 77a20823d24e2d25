//! `GET /api/v1/audit/requests/{id}`: why-queries (see [`crate::explain`]).

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::Value;
use uuid::Uuid;

use super::{error::ApiError, AppState};
use crate::explain::{explain, ExplainError};

impl From<ExplainError> for ApiError {
    fn from(error: ExplainError) -> Self {
        match error {
            ExplainError::Store(store) => ApiError::from(store),
        }
    }
}

/// The chain of events behind a gateway request or a training session or round:
/// 400 for an id that is not a UUID, 404 for one the log does not know.
pub async fn request(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request(format!("request id {id:?} is not a UUID")))?;
    // The mastery view knows every session's learner: a hint for ids whose time
    // does not locate them.
    let hint = state.mastery.read(|mastery, _| {
        mastery
            .session_owner(&id)
            .map(|user| format!("learner-{user}"))
    });
    match explain(state.store.as_ref(), id, hint.as_deref()).await? {
        Some(found) => Ok(Json(found.to_json())),
        None => Err(ApiError::not_found(format!(
            "no gateway request, training session or round {id} in the log"
        ))),
    }
}
