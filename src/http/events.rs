//! `GET /api/v1/events`: the log as JSON, for people and tools.

use axum::{extract::State, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use tutorlog_schemas::json::envelope_json;

use super::{
    error::{ApiError, ApiQuery},
    AppState,
};

/// Events returned when `limit` is not given.
pub const EVENTS_LIMIT_DEFAULT: usize = 100;
/// Most events one request returns.
pub const EVENTS_LIMIT_MAX: usize = 1000;

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Read one stream instead of `$all`.
    pub stream: Option<String>,
    /// First position (for `$all`) or revision (for a stream); default 0.
    pub from: Option<u64>,
    /// Most events to return (1–1000, default 100).
    pub limit: Option<usize>,
}

/// Reads `$all` or one stream from a position or revision.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(EVENTS_LIMIT_DEFAULT);
    if limit == 0 || limit > EVENTS_LIMIT_MAX {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {EVENTS_LIMIT_MAX}, got {limit}"
        )));
    }
    let from = query.from.unwrap_or(0);
    let events = match &query.stream {
        Some(stream) if stream.is_empty() => {
            return Err(ApiError::bad_request("`stream` must not be empty"))
        }
        Some(stream) => state.store.read_stream(stream, from, limit).await?,
        None => state.store.read_all(from, limit).await?,
    };
    let next_from = from + events.len() as u64;
    Ok(Json(json!({
        "events": events.iter().map(envelope_json).collect::<Vec<_>>(),
        "next_from": next_from,
        "last_position": state.store.last_position(),
    })))
}
