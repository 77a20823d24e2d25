//! The API's one error type: every failure becomes
//! `{"error": {"code": "...", "message": "..."}}` with the right status.
//!
//! Client mistakes get a 4xx that says what to fix; server-side failures are logged
//! in full and answered with a short message that leaks no internals.

use axum::{
    extract::{rejection::QueryRejection, FromRequestParts, Query},
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{de::DeserializeOwned, Serialize};
use tutorlog_store::StoreError;
use utoipa::ToSchema;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What happened and, for client errors, what to change.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// 404: no such resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// 503: the daemon cannot serve this right now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: message.into(),
        }
    }
}

/// The body of every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "bad_request", "message": "limit: must be 1 to 1000"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `bad_request`, `not_found`,
    /// `invalid_api_key`, `budget_exceeded`, `not_caught_up`.
    pub code: &'static str,
    /// What happened and, for client errors, what to change.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::WrongExpectedRevision { .. } => ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: error.to_string(),
            },
            StoreError::InvalidInput(message) => ApiError::bad_request(message.clone()),
            StoreError::DiskFull(_) => {
                tracing::error!(%error, "append failed: disk full");
                ApiError::unavailable(
                    "storage_full",
                    "the log's disk is full; the write was not stored",
                )
            }
            StoreError::Poisoned(_)
            | StoreError::Closed
            | StoreError::Unavailable(_)
            | StoreError::Locked { .. }
            | StoreError::ReadOnly => {
                tracing::error!(%error, "store unavailable");
                ApiError::unavailable(
                    "storage_unavailable",
                    "the event log is not accepting requests; see the daemon's log",
                )
            }
            StoreError::Corrupt { .. } | StoreError::Io { .. } | StoreError::Codec(_) => {
                tracing::error!(%error, "store error");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal storage error; see the daemon's log".into(),
                }
            }
        }
    }
}

/// `Query<T>` whose rejection is an [`ApiError`] in our shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
}

/// Answers unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}
