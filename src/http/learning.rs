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
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use tutorlog_actors::{
    algo_registry::catalog::CatalogError,
    algorithms::AlgoKey,
    learning::{
        service::{ServiceError, RESPONSE_BYTES_MAX},
        LearningService,
    },
};
use tutorlog_projections::AlgoRunFilter;
use tutorlog_schemas::events::PauseReason;
use uuid::Uuid;

use crate::{
    http::{
        error::{ApiError, ApiQuery},
        AppState,
    },
    views::wait_for_position,
};

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
        wait_for_position(&state.mastery, Some(last), &state.config).await?;
    }
    state.mastery.read(|m, _| lookup(m)).ok_or_else(|| {
        ApiError::not_found(if session {
            format!("unknown session {id}")
        } else {
            format!("unknown challenge {id}")
        })
    })
}

/// `GET /api/v1/training/focus-areas`.
pub async fn focus_areas(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "focus_areas": service(&state)?.focus_areas() }),
    ))
}

/// Body of `POST /api/v1/training/start`.
#[derive(Debug, Deserialize)]
pub struct StartBody {
    /// Learner.
    pub user_id: Option<String>,
    /// Focus area.
    pub focus_area: Option<String>,
    /// Rounds.
    pub rounds: Option<u32>,
}

/// `POST /api/v1/training/start`.
pub async fn start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Json<Value>, ApiError> {
    let user_id = required(body.user_id, "user_id")?;
    let focus_area = required(body.focus_area, "focus_area")?;
    let started = service(&state)?
        .start_training(&user_id, &focus_area, body.rounds)
        .await?;
    Ok(Json(json!({
        "session_id": started.session_id,
        "round_id": started.round_id,
        "prompt": started.prompt,
        "rounds": started.rounds,
        "position": started.position,
    })))
}

/// Body of `POST /api/v1/training/round`.
#[derive(Debug, Deserialize)]
pub struct RoundBody {
    /// Session.
    pub session_id: Option<String>,
    /// The learner's response.
    pub response: Option<String>,
}

/// `POST /api/v1/training/round`.
pub async fn round(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RoundBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "score": result.score,
        "correct": result.correct,
        "feedback": result.feedback,
        "mastery": {
            "before": result.mastery_before,
            "after": result.mastery_after,
            "probability": result.probability,
            "mastered": result.mastered,
        },
        "status": result.status,
        "round_id": result.next_round_id,
        "next_prompt": result.next_prompt,
        "rounds_completed": result.rounds_completed,
        "position": result.position,
        "llm_feedback": llm.text,
        "llm_request_id": llm.request_id,
        "pause_reason": llm.paused.as_ref().map(|p| p.reason),
    })))
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
#[derive(Debug, Deserialize)]
pub struct PauseBody {
    /// Session.
    pub session_id: Option<String>,
    /// `user` (the default, and the only reason a client may give: `budget` and
    /// `provider` pauses are recorded by the gateway through
    /// `LearningService::pause_for_provider`, so the audit trail never carries a
    /// budget pause that did not happen).
    pub reason: Option<PauseReason>,
}

/// `POST /api/v1/training/pause`: the learner pauses a session.
pub async fn pause(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "session_id": session_id, "status": "paused", "position": position }),
    ))
}

/// `POST /api/v1/training/resume`.
pub async fn resume(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<Value>, ApiError> {
    let session_id = parse_uuid(&required(body.session_id, "session_id")?, "session_id")?;
    let user_id = owner(&state, session_id, true).await?;
    let position = service(&state)?.resume(&user_id, session_id).await?;
    Ok(Json(
        json!({ "session_id": session_id, "status": "in_progress", "position": position }),
    ))
}

/// Query of `GET /api/v1/training/progress`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressQuery {
    /// Learner.
    pub user_id: Option<String>,
    /// Read-your-writes.
    pub min_position: Option<u64>,
}

/// `GET /api/v1/training/progress?user_id=`: mastery per focus area.
pub async fn progress(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProgressQuery>,
) -> Result<Json<Value>, ApiError> {
    let user_id = required(query.user_id, "user_id")?;
    wait_for_position(&state.mastery, query.min_position, &state.config).await?;
    let threshold = state.config.learning.mastery_threshold;
    let (areas, next_position) = state.mastery.read(|mastery, next| {
        let areas: Vec<Value> = mastery
            .learner(&user_id)
            .map(|rows| {
                rows.iter()
                    .map(|(area, row)| {
                        json!({
                            "focus_area": area,
                            "mastery": row.mastery,
                            "probability": row.probability,
                            "mastered": row.mastery >= threshold,
                            "attempts": row.attempts,
                            "correct": row.correct,
                            "streak": row.streak,
                            "last_practised": row.last_practised,
                            "next_review_due": row.next_review_due,
                            "sessions_started": row.sessions_started,
                            "sessions_completed": row.sessions_completed,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        (areas, next)
    });
    Ok(Json(json!({
        "user_id": user_id,
        "mastery_threshold": threshold,
        "focus_areas": areas,
        "next_position": next_position,
    })))
}

/// `GET /api/v1/training/health`.
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let service = service(&state)?;
    let stats = service
        .learners()
        .stats()
        .await
        .map_err(|e| ApiError::unavailable("unavailable", e.to_string()))?;
    Ok(Json(json!({
        "status": "ok",
        "items": service.bank().len(),
        "focus_areas": service.focus_areas().len(),
        "learner_actors": { "live": stats.live, "draining": stats.draining, "spawned": stats.spawned, "passivated": stats.passivated, "crashed": stats.crashed },
        "mastery_view_next_position": state.mastery.next_position(),
    })))
}

/// Body of `POST /api/v1/challenges/start`.
#[derive(Debug, Deserialize)]
pub struct ChallengeStartBody {
    /// Learner.
    pub user_id: Option<String>,
    /// `easy` / `medium` / `hard`.
    pub difficulty: Option<String>,
    /// Category.
    pub category: Option<String>,
}

/// `POST /api/v1/challenges/start`.
pub async fn challenge_start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeStartBody>,
) -> Result<Json<Value>, ApiError> {
    let user_id = required(body.user_id, "user_id")?;
    let handed = service(&state)?
        .start_challenge(
            &user_id,
            body.difficulty.as_deref(),
            body.category.as_deref(),
        )
        .await?;
    Ok(Json(json!({
        "challenge_id": handed.challenge_id,
        "prompt": handed.prompt,
        "category": handed.category,
        "difficulty": handed.difficulty,
        "position": handed.position,
    })))
}

/// Body of `POST /api/v1/challenges/grade`.
#[derive(Debug, Deserialize)]
pub struct ChallengeGradeBody {
    /// Challenge.
    pub challenge_id: Option<String>,
    /// Answer.
    pub answer: Option<String>,
}

/// `POST /api/v1/challenges/grade`.
pub async fn challenge_grade(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeGradeBody>,
) -> Result<Json<Value>, ApiError> {
    let challenge_id = parse_uuid(
        &required(body.challenge_id, "challenge_id")?,
        "challenge_id",
    )?;
    let answer = bounded(required(body.answer, "answer")?, "answer")?;
    let user_id = owner(&state, challenge_id, false).await?;
    let graded = service(&state)?
        .grade_challenge(&user_id, challenge_id, &answer)
        .await?;
    Ok(Json(json!({
        "challenge_id": challenge_id,
        "score": graded.score,
        "correct": graded.correct,
        "feedback": graded.feedback,
        "mistake_tag": graded.mistake_tag,
        "position": graded.position,
    })))
}

/// `GET /api/v1/learning/info`: versions, ACTIVE version and params checksum per key.
pub async fn info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let catalog = service(&state)?.catalog();
    let algorithms: Vec<Value> = catalog
        .states()
        .iter()
        .map(|(key, algo)| {
            let active = algo.active();
            let params: Value = active
                .and_then(|(_, info)| info.params.as_ref())
                .and_then(|(json, _)| serde_json::from_str(json).ok())
                .unwrap_or(Value::Null);
            json!({
                "algo_key": key.as_str(),
                "active_version": active.map(|(n, _)| n),
                "params_checksum": active.and_then(|(_, i)| i.params.as_ref().map(|(_, c)| c.clone())),
                "active_params": params,
                "versions": algo.versions.iter().map(|(n, v)| json!({
                    "version": n,
                    "status": v.status.as_str(),
                    "description": v.description,
                    "params_checksum": v.params.as_ref().map(|(_, c)| c.clone()),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "algorithms": algorithms })))
}

/// Query of `GET /api/v1/audit/algo-runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgoRunsQuery {
    /// Key.
    pub key: Option<String>,
    /// Version.
    pub version: Option<u32>,
    /// Learner.
    pub user_id: Option<String>,
    /// Trigger.
    pub trigger: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Started before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Most rows (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Read-your-writes.
    pub min_position: Option<u64>,
}

/// `GET /api/v1/audit/algo-runs`.
pub async fn algo_runs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AlgoRunsQuery>,
) -> Result<Json<Value>, ApiError> {
    wait_for_position(&state.algo_runs, query.min_position, &state.config).await?;
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
    Ok(Json(
        json!({ "runs": runs, "next_position": next_position }),
    ))
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

/// Body of `POST /api/v1/admin/algos/{key}/versions`.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    /// Version number.
    pub version: Option<u32>,
    /// Description.
    pub description: Option<String>,
    /// Params (a JSON object; missing fields take defaults).
    pub params: Option<Value>,
}

/// `POST /api/v1/admin/algos/{key}/versions`: register an EXPERIMENTAL version.
pub async fn admin_register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    let version = required(body.version, "version")?;
    let params = body.params.unwrap_or_else(|| json!({})).to_string();
    let position = service(&state)?
        .catalog()
        .register(key, version, body.description.unwrap_or_default(), &params)
        .await?;
    Ok(Json(
        json!({ "algo_key": key.as_str(), "version": version, "status": "EXPERIMENTAL", "position": position }),
    ))
}

/// Body of `POST /api/v1/admin/algos/{key}/activate`.
#[derive(Debug, Deserialize)]
pub struct ActivateBody {
    /// Version to activate.
    pub version: Option<u32>,
}

/// `POST /api/v1/admin/algos/{key}/activate`.
pub async fn admin_activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ActivateBody>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let key = algo_key(&key)?;
    let version = required(body.version, "version")?;
    let position = service(&state)?.catalog().activate(key, version).await?;
    Ok(Json(
        json!({ "algo_key": key.as_str(), "active_version": version, "position": position }),
    ))
}

/// Body of `POST /api/v1/admin/algos/{key}/params`.
#[derive(Debug, Deserialize)]
pub struct ParamsBody {
    /// Version (default: the ACTIVE one).
    pub version: Option<u32>,
    /// Params.
    pub params: Option<Value>,
}

/// `POST /api/v1/admin/algos/{key}/params`.
pub async fn admin_params(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ParamsBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({ "algo_key": key.as_str(), "version": version, "params_checksum": checksum, "position": position }),
    ))
}

/// `POST /api/v1/admin/algos/{key}/run`: run a batch algorithm (`difficulty`,
/// `mistakes`) now, as an audited run with trigger `manual`.
pub async fn admin_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "run_id": run.run_id,
        "algo_key": key.as_str(),
        "status": status,
        "output": output,
        "error": error,
        "position": run.position,
    })))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-and-more", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
