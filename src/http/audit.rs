//! `GET /api/v1/audit/requests/{id}`: why-queries (see [`crate::explain`]).

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    error::{ApiError, ErrorBody},
    events::EventJson,
    views::{ViewDocument, ViewName},
    AppState,
};
use crate::explain::{explain, ExplainError};

impl From<ExplainError> for ApiError {
    fn from(error: ExplainError) -> Self {
        match error {
            ExplainError::Store(store) => ApiError::from(store),
        }
    }
}

/// What kind of id an explanation is about.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ExplanationKind {
    /// A gateway request (`request-{id}`).
    Gateway,
    /// A training session or round.
    Training,
}

/// Body of `GET /api/v1/audit/requests/{id}` (docs/explain.md). Documentation
/// only: the daemon builds it with `Explanation::to_json`.
#[derive(Debug, ToSchema)]
pub struct Explanation {
    /// The id asked about.
    pub request_id: Uuid,
    /// What the id is.
    pub kind: ExplanationKind,
    /// The decision in brief (provider chosen and why, cost, score, ...), with
    /// `scan`: how much of the log the query read.
    #[schema(value_type = Object)]
    pub summary: Value,
    /// Every event behind it, in log order.
    pub events: Vec<EventJson>,
}

/// Explain a request, session or round.
///
/// The chain of events behind a gateway request or a training session or round:
/// 400 for an id that is not a UUID, 404 for one the log does not know.
#[utoipa::path(
    get,
    path = "/api/v1/audit/requests/{id}",
    tag = "audit",
    operation_id = "audit_request",
    params(
        ("id" = String, Path, format = Uuid, description = "A gateway request id (`tutorlog.request_id` of an answer), a training session id or a round id (UUID)"),
    ),
    responses(
        (status = 200, description = "The chain of events and a summary", body = Explanation),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No gateway request, training session or round with that id", body = ErrorBody),
        (status = 503, description = "The log is not accepting requests", body = ErrorBody),
    )
)]
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

/// Query of `GET /api/v1/audit/views/{name}`.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// An RFC 3339 time or a log position (inclusive); default: the whole log.
    #[param(example = "2027-01-15T08:00:00Z")]
    pub as_of: Option<String>,
    /// Keep only this user's rows (views that have users).
    pub user: Option<String>,
    /// Keep only this provider's rows (views that have providers).
    pub provider: Option<String>,
}

/// Replays built on demand at once, at most: each reads the log from the start.
pub const AS_OF_REPLAYS_MAX: usize = 2;

static AS_OF_REPLAYS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(AS_OF_REPLAYS_MAX);

/// A view as of a past time or position.
///
/// `GET /api/v1/audit/views/{name}?as_of=`: the view as it stood at a past time or
/// position, built on demand from the log — the same document
/// `tutorlog replay --view NAME --until AS_OF` prints, and the one
/// `GET /api/v1/views/{name}` served at that position. 503 when
/// [`AS_OF_REPLAYS_MAX`] replays are already running.
#[utoipa::path(
    get,
    path = "/api/v1/audit/views/{name}",
    tag = "audit",
    operation_id = "audit_view_as_of",
    params(
        ("name" = ViewName, Path, description = "The view (docs/views.md)"),
        AsOfQuery,
    ),
    responses(
        (status = 200, description = "The view as it stood at `as_of`, with `filter` when narrowed", body = ViewDocument),
        (status = 400, description = "`as_of` is neither a position nor an RFC 3339 time, both `user` and `provider` were given, the view has no such rows, or an unknown parameter", body = ErrorBody),
        (status = 404, description = "No view of that name", body = ErrorBody),
        (status = 503, description = "`replays_busy`: two as-of replays are already running; retry shortly. `replay_failed`: the log could not be read", body = ErrorBody),
    )
)]
pub async fn view_as_of(
    State(state): State<AppState>,
    Path(name): Path<String>,
    crate::http::error::ApiQuery(query): crate::http::error::ApiQuery<AsOfQuery>,
) -> Result<Json<Value>, ApiError> {
    use tutorlog_projections::{
        replay_until, AlgoRuns, Benchmarks, Mastery, Narrow, Projection, ProviderHealth, Routing,
        Spend, StreamStats, Until, ViewFilter,
    };

    async fn build<P: Narrow>(
        state: &AppState,
        projection: P,
        until: Until,
        filter: Option<&ViewFilter>,
    ) -> Result<Value, ApiError> {
        let replayed = replay_until(state.store.as_ref(), projection, until)
            .await
            .map_err(|error| {
                tracing::error!(%error, view = P::NAME, "as-of replay failed");
                ApiError::unavailable("replay_failed", format!("replaying {}: {error}", P::NAME))
            })?;
        let projection = match filter {
            Some(filter) => replayed.projection.narrowed(filter),
            None => replayed.projection,
        };
        let mut document = crate::views::view_document(&projection, replayed.next_position)
            .map_err(|error| ApiError::unavailable("internal", error.to_string()))?;
        if let (Some(filter), Some(object)) = (filter, document.as_object_mut()) {
            let value = match filter {
                ViewFilter::User(user) => serde_json::json!({ "user": user }),
                ViewFilter::Provider(provider) => serde_json::json!({ "provider": provider }),
            };
            object.insert("filter".to_owned(), value);
        }
        Ok(document)
    }

    let until = match &query.as_of {
        None => Until::Position(u64::MAX),
        Some(text) => crate::commands::replay::parse_until(text).map_err(|_| {
            ApiError::bad_request(format!(
                "as_of: {text:?} is neither a log position nor an RFC 3339 time"
            ))
        })?,
    };
    let filter = match (&query.user, &query.provider) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("user, provider: give at most one"))
        }
        (Some(user), None) => Some(ViewFilter::User(user.clone())),
        (None, Some(provider)) => Some(ViewFilter::Provider(provider.clone())),
        (None, None) => None,
    };
    let Some(accepted) = crate::commands::replay::view_filters(&name) else {
        return Err(ApiError::not_found(format!(
            "unknown view {name:?}; known: {}",
            crate::views::VIEW_NAMES.join(", ")
        )));
    };
    if let Some(filter) = &filter {
        if !accepted.contains(&filter.kind()) {
            return Err(ApiError::bad_request(format!(
                "{}: view {name} has no such rows",
                filter.kind().flag().trim_start_matches("--")
            )));
        }
    }
    let _permit = AS_OF_REPLAYS.try_acquire().map_err(|_| {
        ApiError::unavailable(
            "replays_busy",
            format!("{AS_OF_REPLAYS_MAX} as-of replays are running; retry shortly"),
        )
    })?;
    let filter = filter.as_ref();
    let document = match name.as_str() {
        StreamStats::NAME => build(&state, StreamStats::new(), until, filter).await?,
        Mastery::NAME => build(&state, Mastery::new(), until, filter).await?,
        AlgoRuns::NAME => build(&state, AlgoRuns::new(), until, filter).await?,
        Spend::NAME => build(&state, Spend::new(), until, filter).await?,
        ProviderHealth::NAME => build(&state, ProviderHealth::new(), until, filter).await?,
        Benchmarks::NAME => build(&state, Benchmarks::new(), until, filter).await?,
        Routing::NAME => build(&state, Routing::new(), until, filter).await?,
        _ => return Err(ApiError::not_found(format!("unknown view {name:?}"))),
    };
    Ok(Json(document))
}
