//! `GET /api/v1/events`: the log as JSON, for people and tools.

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tutorlog_schemas::json::envelope_json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    error::{ApiError, ApiQuery, ErrorBody},
    AppState,
};

/// Events returned when `limit` is not given.
pub const EVENTS_LIMIT_DEFAULT: usize = 100;
/// Most events one request returns.
pub const EVENTS_LIMIT_MAX: usize = 1000;

/// Query of `GET /api/v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Read one stream instead of `$all`.
    #[param(min_length = 1, example = "config")]
    pub stream: Option<String>,
    /// First position (for `$all`) or revision (for a stream); default 0, at
    /// most 2^63 - 1 (positions are `int64`).
    #[param(maximum = 9223372036854775807_i64)]
    pub from: Option<u64>,
    /// Most events to return (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One event as JSON, as `tutorlog events` prints it. Documentation only: the
/// daemon builds it with `tutorlog_schemas::json::envelope_json`.
#[derive(Debug, ToSchema)]
pub struct EventJson {
    /// Global position in `$all`.
    pub position: u64,
    /// The stream, e.g. `learner-ada`, `budget-openai`, `config`.
    pub stream: String,
    /// Revision within the stream (0-based).
    pub revision: u64,
    /// Dotted event type, e.g. `training.round.completed`.
    pub event_type: String,
    /// Version of the payload's shape.
    pub schema_version: u16,
    /// When the log recorded it (RFC 3339, microseconds, UTC).
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The event's id (UUID v7).
    pub event_id: Uuid,
    /// The request or session this event belongs to.
    pub correlation_id: Option<Uuid>,
    /// The event that caused this one.
    pub causation_id: Option<Uuid>,
    /// The typed payload as JSON; `null` when it does not decode (then
    /// `payload_hex` and `decode_error` say why).
    pub payload: Value,
    /// The raw payload, hex, when it does not decode.
    pub payload_hex: Option<String>,
    /// Why the payload did not decode.
    pub decode_error: Option<String>,
}

/// Body of `GET /api/v1/events`. Fields in alphabetical order: the bytes match
/// the `json!` map this replaced.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// The events, in log (or stream) order.
    #[schema(value_type = Vec<EventJson>)]
    pub events: Vec<Value>,
    /// The log's last position; `null` for an empty log.
    pub last_position: Option<u64>,
    /// `from` for the next page.
    pub next_from: u64,
}

/// Read the event log.
///
/// Reads `$all` or one stream from a position or revision.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "events_list",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        (status = 400, description = "A bad query: `limit` outside 1–1000, an empty `stream`, a negative `from` or an unknown parameter", body = ErrorBody),
        (status = 503, description = "The log is not accepting requests (`storage_unavailable`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let limit = query.limit.unwrap_or(EVENTS_LIMIT_DEFAULT);
    if limit == 0 || limit > EVENTS_LIMIT_MAX {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {EVENTS_LIMIT_MAX}, got {limit}"
        )));
    }
    let from = query.from.unwrap_or(0);
    if from > crate::views::MAX_POSITION {
        return Err(ApiError::bad_request(format!(
            "`from` must be at most {}, got {from}",
            crate::views::MAX_POSITION
        )));
    }
    let events = match &query.stream {
        Some(stream) if stream.is_empty() => {
            return Err(ApiError::bad_request("`stream` must not be empty"))
        }
        Some(stream) => state.store.read_stream(stream, from, limit).await?,
        None => state.store.read_all(from, limit).await?,
    };
    let next_from = from + events.len() as u64;
    Ok(Json(EventsPage {
        events: events.iter().map(envelope_json).collect(),
        last_position: state.store.last_position(),
        next_from,
    }))
}
