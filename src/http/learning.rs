//! Learning endpoints (issue 4, item 8): training, challenges, progress, algorithm
//! registry info, the algo-runs audit and the admin registry endpoints.
//!
//! Every write answers the log `position` it reached; reads accept `min_position`.

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Path, Request, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use tutorlog_actors::{
    algo_registry::catalog::CatalogError,
    algorithms::AlgoKey,
    learning::{
        service::{ServiceError, RESPONSE_BYTES_MAX},
        LearningService,
    },
};
use tutorlog_projections::{AlgoRunFilter, AlgoRunRow};
use tutorlog_schemas::events::PauseReason;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    http::{
        error::{ApiError, ApiQuery, ErrorBody},
        openapi::as_json_map,
        AppState,
    },
    views::wait_for_position,
};

// Response structs below list their fields in alphabetical order: they replaced
// `json!` maps (sorted, serde_json has no `preserve_order` here), and this order
// keeps every answer byte-identical. `tests::answers_keep_their_bytes` checks it.

/// Most audit rows one request returns.
pub const AUDIT_ROWS_MAX: usize = 1000;

/// `Json<T>` whose rejection names the problem in our error shape (400).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    ApiError::bad_request(format!("invalid JSON body: {}", rejection.body_text()))
}

fn service(state: &AppState) -> Result<&LearningService, ApiError> {
    state.learning.as_deref().ok_or_else(|| {
        ApiError::unavailable(
            "learning_unavailable",
            "the learning service is not running",
        )
    })
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::BadRequest { field, message } => {
                ApiError::bad_request(format!("{field}: {message}"))
            }
            ServiceError::NotFound(message) => ApiError::not_found(message),
            ServiceError::Conflict { code, message } => ApiError {
                status: StatusCode::CONFLICT,
                code,
                message,
            },
            ServiceError::Command(error) => {
                tracing::error!(%error, "learner command failed");
                match error {
                    tutorlog_actors::CommandError::Store(store) => ApiError::from(store),
                    other => ApiError::unavailable("unavailable", other.to_string()),
                }
            }
            ServiceError::Internal(message) => {
                tracing::error!(%message, "learning service error");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error; see the daemon's log".into(),
                }
            }
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::Rejected(rejection) => {
                let message = rejection.to_string();
                match rejection {
                    tutorlog_actors::algo_registry::AlgoRejection::UnknownVersion { .. } => {
                        ApiError::not_found(message)
                    }
                    _ => ApiError {
                        status: StatusCode::CONFLICT,
                        code: "conflict",
                        message,
                    },
                }
            }
            CatalogError::Algo(error) => ApiError::bad_request(format!("params: {error}")),
            CatalogError::Json(message) => ApiError::bad_request(message),
            CatalogError::Command(error) => ApiError::unavailable("unavailable", error.to_string()),
            CatalogError::Stored { .. } => {
                tracing::error!(%error, "algorithm registry");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error; see the daemon's log".into(),
                }
            }
        }
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::bad_request(format!("{field}: required")))
}

/// Checks a learner's text before any lookup, so an oversized body is a 400 even
/// for an unknown id (the service checks again for its other callers).
fn bounded(text: String, field: &str) -> Result<String, ApiError> {
    if text.len() > RESPONSE_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "{field}: longer than {RESPONSE_BYTES_MAX} bytes"
        )));
    }
    Ok(text)
}

fn parse_uuid(text: &str, field: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::bad_request(format!("{field}: not a UUID")))
}

/// Finds the learner owning a session, waiting briefly for the view to reach the
/// log's end when it does not know the session yet (read-your-writes after start).
async fn owner(state: &AppState, id: Uuid, session: bool) -> Result<String, ApiError> {
    let lookup = |mastery: &tutorlog_projections::Mastery| {
        if session {
            mastery.session_owner(&id).map(str::to_owned)
        } else {
            mastery.challenge_owner(&id).map(str::to_owned)
        }
    };
    if let Some(user) = state.mastery.read(|m, _| lookup(m)) {
        return Ok(user);
    }
    if let Some(last) = state.store.last_position() {
        wait_for_position(
            &state.mastery,
            Some(last),
            &state.config,
            state.store.as_ref(),
        )
        .await?;
    }
    state.mastery.read(|m, _| lookup(m)).ok_or_else(|| {
        ApiError::not_found(if session {
            format!("unknown session {id}")
        } else {
            format!("unknown challenge {id}")
        })
    })
}

/// Body of `GET /api/v1/training/focus-areas`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FocusAreas {
    /// The item bank's focus areas (categories), e.g. `algebra`, `rust`.
    pub focus_areas: Vec<String>,
}

/// List focus areas.
///
/// `GET /api/v1/training/focus-areas`.
#[utoipa::path(
    get,
    path = "/api/v1/training/focus-areas",
    tag = "learning",
    operation_id = "training_focus_areas",
    responses(
        (status = 200, description = "The focus areas a session can start on", body = FocusAreas),
        (status = 503, description = "`learning_unavailable`: the learning service is not running", body = ErrorBody),
    )
)]
pub async fn focus_areas(State(state): State<AppState>) -> Result<Json<FocusAreas>, ApiError> {
    Ok(Json(FocusAreas {
        focus_areas: service(&state)?.focus_areas(),
    }))
}

/// Body of `POST /api/v1/training/start`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "ada", "focus_area": "algebra", "rounds": 3}))]
pub struct StartBody {
    /// Learner: 1 to 128 letters, digits, `-`, `_`, `.`, `@`.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9._@-]{1,128}$")]
    pub user_id: Option<String>,
    /// Focus area (`GET /api/v1/training/focus-areas`; case-insensitive).
    #[schema(value_type = String, required = true, example = "algebra")]
    pub focus_area: Option<String>,
    /// Rounds, 1 to 100 (default `learning.default_rounds`).
    #[schema(minimum = 1, maximum = 100)]
    pub rounds: Option<u32>,
}

/// Body of `POST /api/v1/training/start`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingStarted {
    /// The log position the start reached (for `min_position`).
    pub position: u64,
    /// The first round's prompt.
    pub prompt: String,
    /// The first round.
    pub round_id: Uuid,
    /// Rounds in the session.
    pub rounds: u32,
    /// The new session.
    pub session_id: Uuid,
}

/// Start a training session.
///
/// `POST /api/v1/training/start`.
#[utoipa::path(
    post,
    path = "/api/v1/training/start",
    tag = "learning",
    operation_id = "training_start",
    request_body = StartBody,
    responses(
        (status = 200, description = "The session started; answer its first prompt with `POST /api/v1/training/round`", body = TrainingStarted,
            links(
                ("round" = (operation_id = "training_round", description = "Answer the session's first round",
                    request_body = json!({"session_id": "$response.body#/session_id"}))),
                ("pause" = (operation_id = "training_pause", description = "Pause the session",
                    request_body = json!({"session_id": "$response.body#/session_id"}))),
                ("progress" = (operation_id = "training_progress", description = "The learner's mastery",
                    parameters(("user_id" = "$request.body#/user_id"), ("min_position" = "$response.body#/position")))),
                ("explain" = (operation_id = "audit_request", description = "The events behind the session",
                    parameters(("id" = "$response.body#/session_id")))),
            )),
        (status = 400, description = "A missing or bad field (the message names it), an unknown focus area, or a body that is not JSON", body = ErrorBody),
        (status = 409, description = "A conflicting write; retry", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<TrainingStarted>, ApiError> {
    let user_id = required(body.user_id, "user_id")?;
    let focus_area = required(body.focus_area, "focus_area")?;
    let started = service(&state)?
        .start_training(&user_id, &focus_area, body.rounds)
        .await?;
    Ok(Json(TrainingStarted {
        position: started.position,
        prompt: started.prompt,
        round_id: started.round_id,
        rounds: started.rounds,
        session_id: started.session_id,
    }))
}

/// Body of `POST /api/v1/training/round`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"session_id": "0193a1b2-0000-7000-8000-000000000001", "response": "x = 4"}))]
pub struct RoundBody {
    /// Session (UUID).
    #[schema(value_type = String, format = Uuid, required = true)]
    pub session_id: Option<String>,
    /// The learner's response (at most 16 KiB).
    #[schema(value_type = String, required = true, max_length = 16384)]
    pub response: Option<String>,
}

/// How a round moved the learner's mastery of the focus area.
#[derive(Debug, Serialize, ToSchema)]
pub struct MasteryChange {
    /// Mastery (0–100) after the round.
    pub after: f64,
    /// Mastery (0–100) before the round.
    pub before: f64,
    /// Whether `after` reaches `learning.mastery_threshold`.
    pub mastered: bool,
    /// P(correct next time), 0–1.
    pub probability: f64,
}

/// Body of `POST /api/v1/training/round`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundAnswer {
    /// Whether the response was judged correct.
    pub correct: bool,
    /// The grader's feedback.
    pub feedback: String,
    /// Tutor feedback from the gateway (with `learning.llm_feedback` on).
    pub llm_feedback: Option<String>,
    /// The gateway request behind `llm_feedback` (for `/api/v1/audit/requests/{id}`).
    pub llm_request_id: Option<Uuid>,
    /// The mastery change.
    pub mastery: MasteryChange,
    /// The next round's prompt; `null` when the session is over or paused.
    pub next_prompt: Option<String>,
    /// `budget` or `provider` when the LLM feedback step paused the session.
    pub pause_reason: Option<&'static str>,
    /// The log position the round reached.
    pub position: u64,
    /// The next round; `null` when the session is over.
    pub round_id: Option<Uuid>,
    /// Rounds answered so far.
    pub rounds_completed: u32,
    /// Score, 0–100.
    pub score: u32,
    /// `in_progress`, `completed` or `paused`.
    pub status: &'static str,
}

/// Answer a round.
///
/// `POST /api/v1/training/round`.
#[utoipa::path(
    post,
    path = "/api/v1/training/round",
    tag = "learning",
    operation_id = "training_round",
    request_body = RoundBody,
    responses(
        (status = 200, description = "The round is graded and recorded", body = RoundAnswer,
            links(
                ("next" = (operation_id = "training_round", description = "Answer the next round",
                    request_body = json!({"session_id": "$request.body#/session_id"}))),
            )),
        (status = 400, description = "A missing or bad field (`session_id` not a UUID, `response` over 16 KiB), or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 409, description = "`session_completed`, `session_expired`, `session_paused`, or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn round(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RoundBody>,
) -> Result<Json<RoundAnswer>, ApiError> {
    let session_id = parse_uuid(&required(body.session_id, "session_id")?, "session_id")?;
    let response = bounded(required(body.response, "response")?, "response")?;
    let user_id = owner(&state, session_id, true).await?;
    let mut result = service(&state)?
        .round(&user_id, session_id, &response)
        .await?;
    let llm = tutor_feedback(&state, &user_id, session_id, &response, &result).await?;
    if let Some(paused) = &llm.paused {
        result.status = "paused";
        result.position = result.position.max(paused.position);
    }
    Ok(Json(RoundAnswer {
        correct: result.correct,
        feedback: result.feedback,
        llm_feedback: llm.text,
        llm_request_id: llm.request_id,
        mastery: MasteryChange {
            after: result.mastery_after,
            before: result.mastery_before,
            mastered: result.mastered,
            probability: result.probability,
        },
        next_prompt: result.next_prompt,
        pause_reason: llm.paused.as_ref().map(|p| p.reason),
        position: result.position,
        round_id: result.next_round_id,
        rounds_completed: result.rounds_completed,
        score: result.score,
        status: result.status,
    }))
}

/// What the optional LLM feedback step did.
#[derive(Default)]
struct TutorFeedback {
    text: Option<String>,
    request_id: Option<Uuid>,
    paused: Option<Paused>,
}

struct Paused {
    reason: &'static str,
    position: u64,
}

/// With `learning.llm_feedback` on: asks the gateway for tutor feedback on the
/// graded round (source `training`, attributed to the learner and session). When
/// no provider can afford it, or none is healthy, the session is paused with
/// reason `budget` / `provider` (seed 000's integration flow); the round itself is
/// already graded and durable either way.
async fn tutor_feedback(
    state: &AppState,
    user_id: &str,
    session_id: Uuid,
    response: &str,
    result: &tutorlog_actors::learning::service::RoundResult,
) -> Result<TutorFeedback, ApiError> {
    use crate::gateway::service::{Call, GatewayError};
    use tutorlog_actors::learning::service::ProviderPause;
    let learning = &state.config.learning;
    let (true, Some(gateway)) = (learning.llm_feedback, state.gateway.as_ref()) else {
        return Ok(TutorFeedback::default());
    };
    if result.status != "in_progress" && result.status != "completed" {
        return Ok(TutorFeedback::default());
    }
    let mut call = Call::new(
        tutorlog_schemas::events::CallSource::Training,
        &learning.llm_feedback_model,
        vec![
            crate::gateway::types::ChatMessage {
                role: "system".into(),
                content: "You are a patient, encouraging tutor. In at most three sentences, tell the learner what was right, what to fix, and one next step.".into(),
            },
            crate::gateway::types::ChatMessage {
                role: "user".into(),
                content: format!(
                    "Learner's answer: {response}\nScore: {}/100\nGrader's notes: {}",
                    result.score, result.feedback
                ),
            },
        ],
    );
    call.max_tokens = Some(learning.llm_feedback_max_tokens);
    call.user_id = Some(user_id.to_owned());
    call.session_id = Some(session_id.to_string());
    let request_id = call.request_id;
    let gateway = gateway.clone();
    let answer = tokio::spawn(async move { gateway.complete(call).await })
        .await
        .map_err(|e| ApiError::unavailable("internal", format!("gateway task failed: {e}")))?;
    let cause = match answer {
        Ok(answer) => {
            return Ok(TutorFeedback {
                text: Some(answer.content),
                request_id: Some(request_id),
                paused: None,
            })
        }
        Err(GatewayError::BudgetExceeded(_) | GatewayError::PerRequestLimit(_)) => {
            ProviderPause::Budget
        }
        Err(GatewayError::NoHealthyProvider(_) | GatewayError::Provider { .. }) => {
            ProviderPause::Provider
        }
        Err(error) => {
            // A misconfigured model is the operator's problem, not the learner's:
            // the graded round stands, without LLM feedback.
            tracing::warn!(%error, "LLM feedback unavailable");
            return Ok(TutorFeedback {
                request_id: Some(request_id),
                ..TutorFeedback::default()
            });
        }
    };
    if result.status == "completed" {
        // Nothing left to pause.
        return Ok(TutorFeedback {
            request_id: Some(request_id),
            ..TutorFeedback::default()
        });
    }
    let reason = match cause {
        ProviderPause::Budget => "budget",
        ProviderPause::Provider => "provider",
    };
    let outcome = service(state)?
        .pause_for_provider(user_id, session_id, cause)
        .await?;
    Ok(TutorFeedback {
        text: None,
        request_id: Some(request_id),
        paused: Some(Paused {
            reason,
            position: outcome.position,
        }),
    })
}

/// Body of `POST /api/v1/training/pause` and `/resume`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"session_id": "0193a1b2-0000-7000-8000-000000000001"}))]
pub struct PauseBody {
    /// Session (UUID).
    #[schema(value_type = String, format = Uuid, required = true)]
    pub session_id: Option<String>,
    /// `user` (the default, and the only reason a client may give: `budget` and
    /// `provider` pauses are recorded by the gateway through
    /// `LearningService::pause_for_provider`, so the audit trail never carries a
    /// budget pause that did not happen). Ignored by `/resume`.
    #[schema(value_type = Option<ClientPauseReason>)]
    pub reason: Option<PauseReason>,
}

/// The pause reason a client may give. Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ClientPauseReason {
    /// The learner asked for a pause.
    User,
}

/// Body of the answers of `POST /api/v1/training/pause` and `/resume`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatus {
    /// The log position the change reached.
    pub position: u64,
    /// The session.
    pub session_id: Uuid,
    /// `paused` or `in_progress`.
    pub status: &'static str,
}

/// Pause a session.
///
/// `POST /api/v1/training/pause`: the learner pauses a session.
#[utoipa::path(
    post,
    path = "/api/v1/training/pause",
    tag = "learning",
    operation_id = "training_pause",
    request_body = PauseBody,
    responses(
        (status = 200, description = "The session is paused", body = SessionStatus,
            links(
                ("resume" = (operation_id = "training_resume", description = "Resume the session",
                    request_body = json!({"session_id": "$response.body#/session_id"}))),
            )),
        (status = 400, description = "A missing or bad field (a `reason` other than `user`), or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 409, description = "`session_completed`, `session_expired`, `session_paused`, or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<SessionStatus>, ApiError> {
    let session_id = parse_uuid(&required(body.session_id, "session_id")?, "session_id")?;
    if body
        .reason
        .is_some_and(|reason| reason != PauseReason::User)
    {
        return Err(ApiError::bad_request(
            "reason: only \"user\" can be given; budget and provider pauses come from the gateway",
        ));
    }
    let user_id = owner(&state, session_id, true).await?;
    let position = service(&state)?
        .pause(&user_id, session_id, PauseReason::User)
        .await?;
    Ok(Json(SessionStatus {
        position,
        session_id,
        status: "paused",
    }))
}

/// Resume a session.
///
/// `POST /api/v1/training/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/training/resume",
    tag = "learning",
    operation_id = "training_resume",
    request_body = PauseBody,
    responses(
        (status = 200, description = "The session is in progress again", body = SessionStatus),
        (status = 400, description = "A missing or bad field, or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
        (status = 409, description = "`not_paused`, `session_completed`, `session_expired`, or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<SessionStatus>, ApiError> {
    let session_id = parse_uuid(&required(body.session_id, "session_id")?, "session_id")?;
    let user_id = owner(&state, session_id, true).await?;
    let position = service(&state)?.resume(&user_id, session_id).await?;
    Ok(Json(SessionStatus {
        position,
        session_id,
        status: "in_progress",
    }))
}

/// Query of `GET /api/v1/training/progress`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgressQuery {
    /// Learner.
    #[param(value_type = String, required = true, example = "ada")]
    pub user_id: Option<String>,
    /// Wait (bounded by `server.min_position_wait_ms`) until the view includes the
    /// event at this position (read-your-writes after a write's `position`).
    pub min_position: Option<u64>,
}

/// One focus area of `GET /api/v1/training/progress`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FocusProgress {
    /// Rounds answered.
    pub attempts: u64,
    /// Rounds answered correctly.
    pub correct: u64,
    /// The focus area.
    pub focus_area: String,
    /// Last round answered.
    pub last_practised: Option<DateTime<Utc>>,
    /// Whether `mastery` reaches `mastery_threshold`.
    pub mastered: bool,
    /// Mastery, 0–100, with decay applied.
    pub mastery: f64,
    /// When spaced repetition wants the next review.
    pub next_review_due: Option<DateTime<Utc>>,
    /// P(correct next time), 0–1.
    pub probability: f64,
    /// Sessions completed.
    pub sessions_completed: u64,
    /// Sessions started.
    pub sessions_started: u64,
    /// Correct answers in a row.
    pub streak: u64,
}

/// Body of `GET /api/v1/training/progress`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// One row per focus area practised (none for an unknown learner).
    pub focus_areas: Vec<FocusProgress>,
    /// `learning.mastery_threshold`.
    pub mastery_threshold: f64,
    /// Events `0..next_position` are folded into these rows.
    pub next_position: u64,
    /// The learner.
    pub user_id: String,
}

/// A learner's mastery per focus area.
///
/// `GET /api/v1/training/progress?user_id=`: mastery per focus area.
#[utoipa::path(
    get,
    path = "/api/v1/training/progress",
    tag = "learning",
    operation_id = "training_progress",
    params(ProgressQuery),
    responses(
        (status = 200, description = "Mastery per focus area, from the `mastery` view", body = Progress),
        (status = 400, description = "`user_id` missing, a bad `min_position`, or an unknown parameter", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn progress(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProgressQuery>,
) -> Result<Json<Progress>, ApiError> {
    let user_id = required(query.user_id.filter(|u| !u.is_empty()), "user_id")?;
    wait_for_position(
        &state.mastery,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
    let threshold = state.config.learning.mastery_threshold;
    let (areas, next_position) = state.mastery.read(|mastery, next| {
        let areas: Vec<FocusProgress> = mastery
            .learner(&user_id)
            .map(|rows| {
                rows.iter()
                    .map(|(area, row)| FocusProgress {
                        attempts: row.attempts,
                        correct: row.correct,
                        focus_area: area.clone(),
                        last_practised: row.last_practised,
                        mastered: row.mastery >= threshold,
                        mastery: row.mastery,
                        next_review_due: row.next_review_due,
                        probability: row.probability,
                        sessions_completed: row.sessions_completed,
                        sessions_started: row.sessions_started,
                        streak: row.streak,
                    })
                    .collect()
            })
            .unwrap_or_default();
        (areas, next)
    });
    Ok(Json(Progress {
        focus_areas: areas,
        mastery_threshold: threshold,
        next_position,
        user_id,
    }))
}

/// The learner actors' registry, as `GET /api/v1/training/health` reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LearnerActors {
    /// Actors that crashed (and were restarted from the log).
    pub crashed: u64,
    /// Actors stopping.
    pub draining: usize,
    /// Actors running.
    pub live: usize,
    /// Actors stopped after their idle timeout.
    pub passivated: u64,
    /// Actors started since the daemon started.
    pub spawned: u64,
}

/// Body of `GET /api/v1/training/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingHealth {
    /// Focus areas in the item bank.
    pub focus_areas: usize,
    /// Items in the bank.
    pub items: usize,
    /// The learner actors.
    pub learner_actors: LearnerActors,
    /// Events folded into the `mastery` view.
    pub mastery_view_next_position: u64,
    /// Always `ok`.
    pub status: &'static str,
}

/// Learning service health.
///
/// `GET /api/v1/training/health`.
#[utoipa::path(
    get,
    path = "/api/v1/training/health",
    tag = "learning",
    operation_id = "training_health",
    responses(
        (status = 200, description = "The learning service is up", body = TrainingHealth),
        (status = 503, description = "The learning service is not running or its registry does not answer", body = ErrorBody),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<TrainingHealth>, ApiError> {
    let service = service(&state)?;
    let stats = service
        .learners()
        .stats()
        .await
        .map_err(|e| ApiError::unavailable("unavailable", e.to_string()))?;
    Ok(Json(TrainingHealth {
        focus_areas: service.focus_areas().len(),
        items: service.bank().len(),
        learner_actors: LearnerActors {
            crashed: stats.crashed,
            draining: stats.draining,
            live: stats.live,
            passivated: stats.passivated,
            spawned: stats.spawned,
        },
        mastery_view_next_position: state.mastery.next_position(),
        status: "ok",
    }))
}

/// Body of `POST /api/v1/challenges/start`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": "ada", "difficulty": "easy", "category": "algebra"}))]
pub struct ChallengeStartBody {
    /// Learner: 1 to 128 letters, digits, `-`, `_`, `.`, `@`.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9._@-]{1,128}$")]
    pub user_id: Option<String>,
    /// `easy` / `medium` / `hard`, case-insensitive (default: any).
    #[schema(value_type = Option<DifficultyName>)]
    pub difficulty: Option<String>,
    /// Category (a focus area; default: any).
    #[schema(example = "algebra")]
    pub category: Option<String>,
}

/// The difficulties of the challenge bank. Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DifficultyName {
    /// Easy.
    Easy,
    /// Medium.
    Medium,
    /// Hard.
    Hard,
}

/// Body of `POST /api/v1/challenges/start`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeStarted {
    /// The item's category.
    pub category: String,
    /// The new challenge; grade it with `POST /api/v1/challenges/grade`.
    pub challenge_id: Uuid,
    /// The item's difficulty.
    pub difficulty: String,
    /// The log position the start reached.
    pub position: u64,
    /// The question.
    pub prompt: String,
}

/// Hand out a challenge.
///
/// `POST /api/v1/challenges/start`.
#[utoipa::path(
    post,
    path = "/api/v1/challenges/start",
    tag = "learning",
    operation_id = "challenge_start",
    request_body = ChallengeStartBody,
    responses(
        (status = 200, description = "A challenge item was handed out", body = ChallengeStarted,
            links(
                ("grade" = (operation_id = "challenge_grade", description = "Answer the challenge",
                    request_body = json!({"challenge_id": "$response.body#/challenge_id"}))),
            )),
        (status = 400, description = "A missing or bad field (unknown difficulty or category, no matching item), or a body that is not JSON", body = ErrorBody),
        (status = 409, description = "A conflicting write; retry", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn challenge_start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeStartBody>,
) -> Result<Json<ChallengeStarted>, ApiError> {
    let user_id = required(body.user_id, "user_id")?;
    let handed = service(&state)?
        .start_challenge(
            &user_id,
            body.difficulty.as_deref(),
            body.category.as_deref(),
        )
        .await?;
    Ok(Json(ChallengeStarted {
        category: handed.category,
        challenge_id: handed.challenge_id,
        difficulty: handed.difficulty,
        position: handed.position,
        prompt: handed.prompt,
    }))
}

/// Body of `POST /api/v1/challenges/grade`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"challenge_id": "0193a1b2-0000-7000-8000-000000000002", "answer": "42"}))]
pub struct ChallengeGradeBody {
    /// Challenge (UUID).
    #[schema(value_type = String, format = Uuid, required = true)]
    pub challenge_id: Option<String>,
    /// Answer (at most 16 KiB).
    #[schema(value_type = String, required = true, max_length = 16384)]
    pub answer: Option<String>,
}

/// Body of `POST /api/v1/challenges/grade`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeGradedAnswer {
    /// The challenge.
    pub challenge_id: Uuid,
    /// Whether the answer was judged correct.
    pub correct: bool,
    /// The grader's feedback.
    pub feedback: String,
    /// The mistake pattern the answer showed, if any.
    pub mistake_tag: Option<String>,
    /// The log position the grade reached.
    pub position: u64,
    /// Score, 0–100.
    pub score: u32,
}

/// Grade a challenge answer.
///
/// `POST /api/v1/challenges/grade`.
#[utoipa::path(
    post,
    path = "/api/v1/challenges/grade",
    tag = "learning",
    operation_id = "challenge_grade",
    request_body = ChallengeGradeBody,
    responses(
        (status = 200, description = "The answer is graded and recorded", body = ChallengeGradedAnswer),
        (status = 400, description = "A missing or bad field (`challenge_id` not a UUID, `answer` over 16 KiB), or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown challenge", body = ErrorBody),
        (status = 409, description = "`challenge_completed` (graded already), or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn challenge_grade(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeGradeBody>,
) -> Result<Json<ChallengeGradedAnswer>, ApiError> {
    let challenge_id = parse_uuid(
        &required(body.challenge_id, "challenge_id")?,
        "challenge_id",
    )?;
    let answer = bounded(required(body.answer, "answer")?, "answer")?;
    let user_id = owner(&state, challenge_id, false).await?;
    let graded = service(&state)?
        .grade_challenge(&user_id, challenge_id, &answer)
        .await?;
    Ok(Json(ChallengeGradedAnswer {
        challenge_id,
        correct: graded.correct,
        feedback: graded.feedback,
        mistake_tag: graded.mistake_tag,
        position: graded.position,
        score: graded.score,
    }))
}

/// One version of an algorithm in `GET /api/v1/learning/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlgoVersionInfo {
    /// What the version does differently.
    pub description: String,
    /// SHA-256 of its canonical params JSON, when params were set.
    pub params_checksum: Option<String>,
    /// `ACTIVE`, `EXPERIMENTAL` or `DEPRECATED`.
    pub status: &'static str,
    /// The version number.
    pub version: u32,
}

/// One algorithm key in `GET /api/v1/learning/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlgorithmInfo {
    /// The ACTIVE version's params (`null` without one).
    pub active_params: Value,
    /// The ACTIVE version (`null` without one).
    pub active_version: Option<u32>,
    /// `mastery`, `revision`, `difficulty`, `adaptive` or `mistakes`.
    pub algo_key: &'static str,
    /// SHA-256 of the ACTIVE version's params.
    pub params_checksum: Option<String>,
    /// Every registered version, oldest first.
    pub versions: Vec<AlgoVersionInfo>,
}

/// Body of `GET /api/v1/learning/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LearningInfo {
    /// One entry per algorithm key.
    pub algorithms: Vec<AlgorithmInfo>,
}

/// The algorithm registry.
///
/// `GET /api/v1/learning/info`: versions, ACTIVE version and params checksum per key.
#[utoipa::path(
    get,
    path = "/api/v1/learning/info",
    tag = "learning",
    operation_id = "learning_info",
    responses(
        (status = 200, description = "The algorithm registry", body = LearningInfo),
        (status = 503, description = "`learning_unavailable`: the learning service is not running", body = ErrorBody),
    )
)]
pub async fn info(State(state): State<AppState>) -> Result<Json<LearningInfo>, ApiError> {
    let catalog = service(&state)?.catalog();
    let algorithms: Vec<AlgorithmInfo> = catalog
        .states()
        .iter()
        .map(|(key, algo)| {
            let active = algo.active();
            let params: Value = active
                .and_then(|(_, info)| info.params.as_ref())
                .and_then(|(json, _)| serde_json::from_str(json).ok())
                .unwrap_or(Value::Null);
            AlgorithmInfo {
                active_params: params,
                active_version: active.map(|(n, _)| n),
                algo_key: key.as_str(),
                params_checksum: active
                    .and_then(|(_, i)| i.params.as_ref().map(|(_, c)| c.clone())),
                versions: algo
                    .versions
                    .iter()
                    .map(|(n, v)| AlgoVersionInfo {
                        description: v.description.clone(),
                        params_checksum: v.params.as_ref().map(|(_, c)| c.clone()),
                        status: v.status.as_str(),
                        version: *n,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(LearningInfo { algorithms }))
}

/// Query of `GET /api/v1/audit/algo-runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlgoRunsQuery {
    /// Only this algorithm key.
    #[param(example = "mastery")]
    pub key: Option<String>,
    /// Only this version. The bound is stated because unsigned 32-bit is
    /// otherwise documented as `int32`, which stops at 2^31 - 1.
    #[param(maximum = 4294967295_u32)]
    pub version: Option<u32>,
    /// Only this learner.
    pub user_id: Option<String>,
    /// Only this trigger: `manual`, `submit`, `nightly`, `cron`, `api`.
    pub trigger: Option<String>,
    /// Only this status: `RUNNING`, `SUCCESS`, `FAILED`.
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Started before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Most rows (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Wait (bounded) until the view includes the event at this position.
    pub min_position: Option<u64>,
}

/// Body of `GET /api/v1/audit/algo-runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlgoRunsPage {
    /// Events `0..next_position` are folded into these rows.
    pub next_position: u64,
    /// Matching runs, newest first.
    #[serde(serialize_with = "as_json_map")]
    pub runs: Vec<AlgoRunRow>,
}

/// Algorithm runs (audit).
///
/// `GET /api/v1/audit/algo-runs`.
#[utoipa::path(
    get,
    path = "/api/v1/audit/algo-runs",
    tag = "audit",
    operation_id = "audit_algo_runs",
    params(AlgoRunsQuery),
    responses(
        (status = 200, description = "Algorithm runs, newest first", body = AlgoRunsPage),
        (status = 400, description = "A bad query: `limit` outside 1–1000, a time that is not RFC 3339, or an unknown parameter", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn algo_runs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AlgoRunsQuery>,
) -> Result<Json<AlgoRunsPage>, ApiError> {
    wait_for_position(
        &state.algo_runs,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_ROWS_MAX {
        return Err(ApiError::bad_request(format!(
            "limit: must be 1 to {AUDIT_ROWS_MAX}"
        )));
    }
    let filter = AlgoRunFilter {
        key: query.key,
        version: query.version,
        user_id: query.user_id,
        trigger: query.trigger,
        status: query.status,
        from: query.from,
        to: query.to,
    };
    let (runs, next_position) = state
        .algo_runs
        .read(|runs, next| (runs.query(&filter, limit), next));
    Ok(Json(AlgoRunsPage {
        next_position,
        runs,
    }))
}

/// Checks `Authorization: Bearer <token>` against the env var named by
/// `server.admin_token_env`, in constant time. 401 otherwise.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: message.to_owned(),
    };
    let expected = std::env::var(&state.config.server.admin_token_env).unwrap_or_default();
    if expected.is_empty() {
        return Err(unauthorized(&format!(
            "admin endpoints are disabled: set {} to a token",
            state.config.server.admin_token_env
        )));
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(unauthorized("missing or wrong bearer token"))
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (index, byte) in b.iter().enumerate() {
        diff |= a.get(index).copied().unwrap_or(0) ^ byte;
    }
    diff == 0
}

fn algo_key(text: &str) -> Result<AlgoKey, ApiError> {
    text.parse::<AlgoKey>()
        .map_err(|e| ApiError::not_found(e.to_string()))
}

/// The algorithm keys the registry knows. Documentation only (the
/// registry's `AlgoKey`; a test keeps the two lists equal).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AlgoKeyName {
    /// Mastery tracing (BKT / Elo with decay).
    Mastery,
    /// Spaced repetition (SM-2 / FSRS).
    Revision,
    /// Difficulty calibration (batch).
    Difficulty,
    /// Adaptive item selection.
    Adaptive,
    /// Mistake-pattern mining (batch).
    Mistakes,
}

/// Body of `POST /api/v1/admin/algos/{key}/versions`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 2, "description": "faster decay", "params": {"weekly_decay": 0.05}}))]
pub struct RegisterBody {
    /// Version number.
    #[schema(value_type = u32, required = true)]
    pub version: Option<u32>,
    /// Description.
    pub description: Option<String>,
    /// Params (a JSON object; missing fields take defaults).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

/// Answer of `POST /api/v1/admin/algos/{key}/versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionRegistered {
    /// The key.
    pub algo_key: &'static str,
    /// The log position the registration reached (`null` when nothing new was recorded).
    pub position: Option<u64>,
    /// Always `EXPERIMENTAL`: activate it to use it.
    pub status: &'static str,
    /// The version.
    pub version: u32,
}

/// Register an algorithm version.
///
/// `POST /api/v1/admin/algos/{key}/versions`: register an EXPERIMENTAL version.
#[utoipa::path(
    post,
    path = "/api/v1/admin/algos/{key}/versions",
    tag = "admin",
    operation_id = "admin_algo_register",
    security(("admin_token" = [])),
    params(("key" = AlgoKeyName, Path, description = "The algorithm key")),
    request_body = RegisterBody,
    responses(
        (status = 200, description = "The version is registered as EXPERIMENTAL", body = VersionRegistered,
            links(
                ("activate" = (operation_id = "admin_algo_activate", description = "Activate the version",
                    parameters(("key" = "$request.path.key")),
                    request_body = json!({"version": "$response.body#/version"}))),
                ("params" = (operation_id = "admin_algo_params", description = "Set the version's params",
                    parameters(("key" = "$request.path.key")),
                    request_body = json!({"version": "$response.body#/version"}))),
            )),
        (status = 400, description = "`version` missing, params that do not fit the algorithm, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled (no token set)", body = ErrorBody),
        (status = 404, description = "Unknown algorithm key", body = ErrorBody),
        (status = 409, description = "The version exists already, or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn admin_register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Json<VersionRegistered>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    let version = required(body.version, "version")?;
    let params = body.params.unwrap_or_else(|| json!({})).to_string();
    let position = service(&state)?
        .catalog()
        .register(key, version, body.description.unwrap_or_default(), &params)
        .await?;
    Ok(Json(VersionRegistered {
        algo_key: key.as_str(),
        position,
        status: "EXPERIMENTAL",
        version,
    }))
}

/// Body of `POST /api/v1/admin/algos/{key}/activate`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 2}))]
pub struct ActivateBody {
    /// Version to activate.
    #[schema(value_type = u32, required = true)]
    pub version: Option<u32>,
}

/// Answer of `POST /api/v1/admin/algos/{key}/activate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionActivated {
    /// The version now ACTIVE.
    pub active_version: u32,
    /// The key.
    pub algo_key: &'static str,
    /// The log position the activation reached (`null` when nothing new was recorded).
    pub position: Option<u64>,
}

/// Activate an algorithm version.
///
/// `POST /api/v1/admin/algos/{key}/activate`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/algos/{key}/activate",
    tag = "admin",
    operation_id = "admin_algo_activate",
    security(("admin_token" = [])),
    params(("key" = AlgoKeyName, Path, description = "The algorithm key")),
    request_body = ActivateBody,
    responses(
        (status = 200, description = "The version is ACTIVE (the previous one DEPRECATED)", body = VersionActivated),
        (status = 400, description = "`version` missing, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled", body = ErrorBody),
        (status = 404, description = "Unknown algorithm key or version", body = ErrorBody),
        (status = 409, description = "The version cannot be activated (already ACTIVE, deprecated), or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn admin_activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ActivateBody>,
) -> Result<Json<VersionActivated>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    let version = required(body.version, "version")?;
    let position = service(&state)?.catalog().activate(key, version).await?;
    Ok(Json(VersionActivated {
        active_version: version,
        algo_key: key.as_str(),
        position,
    }))
}

/// Body of `POST /api/v1/admin/algos/{key}/params`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"params": {"weekly_decay": 0.03}}))]
pub struct ParamsBody {
    /// Version (default: the ACTIVE one).
    pub version: Option<u32>,
    /// Params: a JSON object (missing fields take defaults).
    #[schema(value_type = Object, required = true)]
    pub params: Option<Value>,
}

/// Answer of `POST /api/v1/admin/algos/{key}/params`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParamsSet {
    /// The key.
    pub algo_key: &'static str,
    /// SHA-256 of the canonical params JSON now in effect.
    pub params_checksum: Option<String>,
    /// The log position the change reached (`null` when nothing new was recorded).
    pub position: Option<u64>,
    /// The version whose params changed.
    pub version: u32,
}

/// Set an algorithm version's params.
///
/// `POST /api/v1/admin/algos/{key}/params`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/algos/{key}/params",
    tag = "admin",
    operation_id = "admin_algo_params",
    security(("admin_token" = [])),
    params(("key" = AlgoKeyName, Path, description = "The algorithm key")),
    request_body = ParamsBody,
    responses(
        (status = 200, description = "The params are set", body = ParamsSet),
        (status = 400, description = "`params` missing, not an object or not valid for the algorithm, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled", body = ErrorBody),
        (status = 404, description = "Unknown algorithm key or version, or no ACTIVE version", body = ErrorBody),
        (status = 409, description = "The version's params cannot change (deprecated), or a conflicting write", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn admin_params(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ParamsBody>,
) -> Result<Json<ParamsSet>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    let catalog = service(&state)?.catalog();
    let version = match body.version {
        Some(version) => version,
        None => catalog
            .active(key)
            .map(|a| a.version)
            .ok_or_else(|| ApiError::not_found(format!("{key} has no ACTIVE version")))?,
    };
    let params = required(body.params, "params")?;
    if !params.is_object() {
        return Err(ApiError::bad_request("params: must be a JSON object"));
    }
    let position = catalog
        .set_params(key, version, &params.to_string())
        .await?;
    let checksum = catalog.states().get(&key).and_then(|s| {
        s.versions
            .get(&version)
            .and_then(|v| v.params.as_ref().map(|(_, c)| c.clone()))
    });
    Ok(Json(ParamsSet {
        algo_key: key.as_str(),
        params_checksum: checksum,
        position,
        version,
    }))
}

/// Answer of `POST /api/v1/admin/algos/{key}/run`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRunAnswer {
    /// The key.
    pub algo_key: &'static str,
    /// Why the run failed (`status` `FAILED`).
    pub error: Option<String>,
    /// The run's output (`status` `SUCCESS`), else `null`.
    pub output: Value,
    /// The log position of the run's last event.
    pub position: Option<u64>,
    /// The audited run (`GET /api/v1/audit/algo-runs`).
    pub run_id: Uuid,
    /// `SUCCESS` or `FAILED`.
    pub status: &'static str,
}

/// Run a batch algorithm now.
///
/// `POST /api/v1/admin/algos/{key}/run`: run a batch algorithm (`difficulty`,
/// `mistakes`) now, as an audited run with trigger `manual`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/algos/{key}/run",
    tag = "admin",
    operation_id = "admin_algo_run",
    security(("admin_token" = [])),
    params(("key" = AlgoKeyName, Path, description = "A batch algorithm: `difficulty` or `mistakes`")),
    responses(
        (status = 200, description = "The run finished (see `status`)", body = BatchRunAnswer),
        (status = 400, description = "The key has no batch run", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled", body = ErrorBody),
        (status = 404, description = "Unknown algorithm key, or no ACTIVE version", body = ErrorBody),
        (status = 409, description = "A conflicting write", body = ErrorBody),
        (status = 503, description = "The learning service or the log is unavailable", body = ErrorBody),
    )
)]
pub async fn admin_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Json<BatchRunAnswer>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    if !matches!(key, AlgoKey::Difficulty | AlgoKey::Mistakes) {
        return Err(ApiError::bad_request(format!(
            "key: {key} has no batch run (difficulty, mistakes)"
        )));
    }
    let catalog = service(&state)?.catalog();
    let run = tutorlog_actors::algo_registry::batch::run_batch(
        state.store.as_ref(),
        catalog,
        key,
        tutorlog_schemas::events::RunTrigger::Manual,
        Utc::now(),
    )
    .await?;
    let (status, output, error) = match &run.result {
        Ok(output) => (
            "SUCCESS",
            serde_json::from_str::<Value>(output).unwrap_or(Value::Null),
            None,
        ),
        Err(error) => ("FAILED", Value::Null, Some(error.clone())),
    };
    Ok(Json(BatchRunAnswer {
        algo_key: key.as_str(),
        error,
        output,
        position: run.position,
        run_id: run.run_id,
        status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::test_support::assert_same_bytes_as_a_json_map as same_bytes;

    #[test]
    fn answers_keep_their_bytes() {
        let id = Uuid::nil();
        same_bytes(&FocusAreas {
            focus_areas: vec!["algebra".into()],
        });
        same_bytes(&TrainingStarted {
            position: 1,
            prompt: "p".into(),
            round_id: id,
            rounds: 3,
            session_id: id,
        });
        same_bytes(&RoundAnswer {
            correct: true,
            feedback: "f".into(),
            llm_feedback: Some("l".into()),
            llm_request_id: Some(id),
            mastery: MasteryChange {
                after: 1.5,
                before: 0.5,
                mastered: false,
                probability: 0.25,
            },
            next_prompt: Some("n".into()),
            pause_reason: Some("budget"),
            position: 2,
            round_id: Some(id),
            rounds_completed: 1,
            score: 90,
            status: "in_progress",
        });
        same_bytes(&SessionStatus {
            position: 3,
            session_id: id,
            status: "paused",
        });
        same_bytes(&Progress {
            focus_areas: vec![FocusProgress {
                attempts: 1,
                correct: 1,
                focus_area: "algebra".into(),
                last_practised: Some(Utc::now()),
                mastered: true,
                mastery: 80.0,
                next_review_due: Some(Utc::now()),
                probability: 0.9,
                sessions_completed: 1,
                sessions_started: 1,
                streak: 1,
            }],
            mastery_threshold: 80.0,
            next_position: 4,
            user_id: "ada".into(),
        });
        same_bytes(&TrainingHealth {
            focus_areas: 10,
            items: 130,
            learner_actors: LearnerActors {
                crashed: 0,
                draining: 0,
                live: 1,
                passivated: 2,
                spawned: 3,
            },
            mastery_view_next_position: 5,
            status: "ok",
        });
        same_bytes(&ChallengeStarted {
            category: "algebra".into(),
            challenge_id: id,
            difficulty: "easy".into(),
            position: 6,
            prompt: "p".into(),
        });
        same_bytes(&ChallengeGradedAnswer {
            challenge_id: id,
            correct: false,
            feedback: "f".into(),
            mistake_tag: Some("sign".into()),
            position: 7,
            score: 10,
        });
        same_bytes(&LearningInfo {
            algorithms: vec![AlgorithmInfo {
                active_params: json!({"b": 1, "a": 2}),
                active_version: Some(1),
                algo_key: "mastery",
                params_checksum: Some("c".into()),
                versions: vec![AlgoVersionInfo {
                    description: "d".into(),
                    params_checksum: Some("c".into()),
                    status: "ACTIVE",
                    version: 1,
                }],
            }],
        });
        same_bytes(&AlgoRunsPage {
            next_position: 8,
            runs: vec![AlgoRunRow {
                run_id: id,
                key: "mastery".into(),
                version: 1,
                params_checksum: "c".into(),
                user_id: Some("ada".into()),
                session_id: Some(id),
                trigger: "submit".into(),
                status: "SUCCESS".into(),
                started_at: Utc::now(),
                completed_at: Some(Utc::now()),
                input_summary: "{}".into(),
                output_summary: Some("{}".into()),
                error: None,
                position: 1,
            }],
        });
        same_bytes(&VersionRegistered {
            algo_key: "mastery",
            position: Some(9),
            status: "EXPERIMENTAL",
            version: 2,
        });
        same_bytes(&VersionActivated {
            active_version: 2,
            algo_key: "mastery",
            position: Some(10),
        });
        same_bytes(&ParamsSet {
            algo_key: "mastery",
            params_checksum: Some("c".into()),
            position: Some(11),
            version: 2,
        });
        same_bytes(&BatchRunAnswer {
            algo_key: "difficulty",
            error: Some("e".into()),
            output: json!({"z": 1, "a": [1]}),
            position: Some(12),
            run_id: id,
            status: "FAILED",
        });
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-and-more", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
