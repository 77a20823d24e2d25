//! Gateway endpoints: the OpenAI-compatible `POST /v1/chat/completions` (JSON or
//! SSE) and `GET /v1/models`, and the seed's provider endpoints under `/api/v1`.
//!
//! Status codes: 400 bad input (the message names the field), 401 a missing or
//! wrong API key, 402 monthly budget exhausted, 404 unknown model, 429 above a
//! per-request limit, 502 the provider failed, 503 no provider configured or
//! healthy, 504 the provider timed out.

use std::convert::Infallible;

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tutorlog_schemas::events::{CallSource, Event, FeedbackRecorded};
use tutorlog_schemas::NewEvent;
use tutorlog_store::ExpectedRevision;
use uuid::Uuid;

use crate::{
    gateway::{
        keys::{Caller, Refusal},
        service::{gateway_error_code, Call, Gateway, GatewayError},
        types::{ChatMessage, StreamEvent},
    },
    http::{
        error::{ApiError, ApiQuery},
        learning::ApiJson,
        AppState,
    },
};

/// Header carrying a session id for continuity on `/v1/chat/completions`.
pub const SESSION_HEADER: &str = "x-tutorlog-session";
/// Longest feedback comment, bytes.
pub const COMMENT_BYTES_MAX: usize = 4096;

fn gateway(state: &AppState) -> Result<&Gateway, ApiError> {
    state.gateway.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "no_providers",
            "the gateway has no providers: add a [[providers]] entry to the config file (see tutorlog.example.toml)",
        )
    })
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        let status = match &error {
            GatewayError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            GatewayError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            GatewayError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            GatewayError::PerRequestLimit(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::NoProviders
            | GatewayError::NoHealthyProvider(_)
            | GatewayError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Provider { error, .. }
                if error.kind == tutorlog_schemas::events::ErrorKind::Timeout =>
            {
                StatusCode::GATEWAY_TIMEOUT
            }
            GatewayError::Provider { .. } => StatusCode::BAD_GATEWAY,
        };
        if matches!(error, GatewayError::Unavailable(_)) {
            tracing::error!(%error, "gateway unavailable");
        }
        ApiError {
            status,
            code: gateway_error_code(&error),
            message: error.to_string(),
        }
    }
}

/// Checks the gateway API key (`Authorization: Bearer <key>`): 401 for a missing
/// or unknown key, 429 with `Retry-After` for a key over its rate.
#[allow(clippy::result_large_err)]
fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    state.api_keys.check(presented).map_err(|refusal| match refusal {
        Refusal::Unknown => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_api_key",
            message: "missing or unknown API key: send Authorization: Bearer <key> with a key from gateway.api_keys".into(),
        }
        .into_response(),
        Refusal::RateLimited { retry_after_secs } => {
            let mut response = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: format!(
                    "this API key is over gateway.rate_limit_per_sec; retry in {retry_after_secs:.3} s"
                ),
            }
            .into_response();
            let seconds = retry_after_secs.ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    })
}

/// Message content: a string, or OpenAI's list of parts (only text parts count).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// `[{"type": "text", "text": "..."}]`.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// `text` (others are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a text part.
    #[serde(default)]
    pub text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Deserialize)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant` (or `developer`).
    pub role: String,
    /// The content.
    pub content: Option<Content>,
}

/// `stop`: a string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// Body of `POST /v1/chat/completions` (unknown OpenAI fields are ignored).
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// `auto`, `provider/model` or a model name.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<RequestMessage>,
    /// Most output tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Newer name of `max_tokens`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// Stream as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// End-user id (used for spend when the key has no user).
    #[serde(default)]
    pub user: Option<String>,
    /// Number of choices; only 1 is supported.
    #[serde(default)]
    pub n: Option<u32>,
}

fn messages(request: Vec<RequestMessage>) -> Result<Vec<ChatMessage>, ApiError> {
    request
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let content = match message.content {
                None => String::new(),
                Some(Content::Text(text)) => text,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        if part.kind != "text" {
                            return Err(ApiError::bad_request(format!(
                                "messages[{i}].content: only text parts are supported, got {:?}",
                                part.kind
                            )));
                        }
                        text.push_str(part.text.as_deref().unwrap_or_default());
                    }
                    text
                }
            };
            Ok(ChatMessage {
                role: message.role,
                content,
            })
        })
        .collect()
}

fn limited(text: Option<String>, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if t.len() > max => Err(ApiError::bad_request(format!(
            "{field}: at most {max} bytes"
        ))),
        other => Ok(other),
    }
}

fn created() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let caller = match caller(&state, &headers) {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let gateway = gateway(&state)?.clone();
    if body.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("n: only 1 is supported"));
    }
    let user_id = match caller {
        Caller::Key {
            user_id: Some(user),
        } => Some(user),
        _ => limited(body.user, "user", 128)?,
    };
    let session_id = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let session_id = limited(session_id, SESSION_HEADER, 128)?;
    let stop = match body.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let call = Call {
        request_id: Uuid::now_v7(),
        source: CallSource::OpenAi,
        model: body.model.unwrap_or_else(|| "auto".to_owned()),
        messages: messages(body.messages)?,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        stop,
        user_id,
        session_id,
    };
    if body.stream {
        let include_usage = body.stream_options.is_some_and(|o| o.include_usage);
        return stream_completion(gateway, call, include_usage).await;
    }
    // Run the call in its own task: a client that hangs up does not cut the call
    // between "provider answered" and "cost committed".
    let answer = tokio::spawn(async move { gateway.complete(call).await })
        .await
        .map_err(|error| {
            ApiError::unavailable("internal", format!("gateway task failed: {error}"))
        })??;
    let id = format!("chatcmpl-{}", answer.request_id.simple());
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created(),
        "model": format!("{}/{}", answer.provider, answer.model),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.content},
            "finish_reason": answer.finish_reason.unwrap_or_else(|| "stop".into()),
        }],
        "usage": {
            "prompt_tokens": answer.usage.input_tokens,
            "completion_tokens": answer.usage.output_tokens,
            "total_tokens": answer.usage.input_tokens + answer.usage.output_tokens,
        },
        "tutorlog": {
            "request_id": answer.request_id,
            "provider": answer.provider,
            "category": answer.category,
            "attempts": answer.attempts,
            "cost_usd": answer.cost_micros as f64 / 1e6,
        },
    });
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&answer.request_id.to_string()) {
        response
            .headers_mut()
            .insert("x-tutorlog-request-id", value);
    }
    Ok(response)
}

async fn stream_completion(
    gateway: Gateway,
    call: Call,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let answer = gateway.stream(call).await?;
    let id = format!("chatcmpl-{}", answer.request_id().simple());
    let model = format!("{}/{}", answer.provider(), answer.model());
    let created = created();
    let request_id = answer.request_id();
    let chunk = move |delta: Value, finish: Option<String>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    struct Streaming<F> {
        answer: crate::gateway::service::AnswerStream,
        chunk: F,
        first: bool,
        /// Events to send before reading on; `done` once the last is queued.
        queue: std::collections::VecDeque<String>,
        done: bool,
        finish: Option<String>,
        usage: Option<crate::gateway::types::Usage>,
        include_usage: bool,
    }
    let start = Streaming {
        answer,
        chunk,
        first: true,
        queue: std::collections::VecDeque::new(),
        done: false,
        finish: None,
        usage: None,
        include_usage,
    };
    let events = futures::stream::unfold(start, |mut s| async move {
        loop {
            if let Some(data) = s.queue.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), s));
            }
            if s.done {
                return None;
            }
            match s.answer.next().await {
                Some(Ok(StreamEvent::Delta(text))) => {
                    let delta = if s.first {
                        json!({"role": "assistant", "content": text})
                    } else {
                        json!({"content": text})
                    };
                    s.first = false;
                    s.queue.push_back((s.chunk)(delta, None).to_string());
                }
                Some(Ok(StreamEvent::Finish(reason))) => s.finish = reason,
                Some(Ok(StreamEvent::Usage(usage))) => s.usage = Some(usage),
                Some(Err(error)) => {
                    // OpenAI's clients raise on an `error` object in the stream.
                    s.done = true;
                    let body =
                        json!({"error": {"code": "provider_error", "message": error.to_string()}});
                    s.queue.push_back(body.to_string());
                }
                None => {
                    s.done = true;
                    let finish = s.finish.take().unwrap_or_else(|| "stop".into());
                    s.queue
                        .push_back((s.chunk)(json!({}), Some(finish)).to_string());
                    if s.include_usage {
                        let mut usage_chunk = (s.chunk)(json!({}), None);
                        usage_chunk["choices"] = json!([]);
                        let usage = s.usage.unwrap_or_default();
                        usage_chunk["usage"] = json!({
                            "prompt_tokens": usage.input_tokens,
                            "completion_tokens": usage.output_tokens,
                            "total_tokens": usage.input_tokens + usage.output_tokens,
                        });
                        s.queue.push_back(usage_chunk.to_string());
                    }
                    s.queue.push_back("[DONE]".to_owned());
                }
            }
        }
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response
            .headers_mut()
            .insert("x-tutorlog-request-id", value);
    }
    Ok(response)
}

/// `GET /v1/models`: every `provider/model`, plus bare names.
pub async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = caller(&state, &headers) {
        return refused;
    }
    let mut data = vec![json!({"id": "auto", "object": "model", "owned_by": "tutorlog"})];
    if let Some(gateway) = &state.gateway {
        for provider in gateway.providers() {
            for model in &provider.settings().models {
                data.push(json!({
                    "id": format!("{}/{}", provider.name, model.name),
                    "object": "model",
                    "owned_by": provider.name,
                }));
            }
        }
    }
    Json(json!({"object": "list", "data": data})).into_response()
}

/// Body of `POST /api/v1/chat`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    /// The learner or user.
    pub user_id: Option<String>,
    /// Session for continuity.
    pub session_id: Option<String>,
    /// The message.
    pub message: String,
    /// `auto` (default), `provider/model` or a model name.
    pub model: Option<String>,
    /// Most output tokens.
    pub max_tokens: Option<u32>,
}

/// `POST /api/v1/chat`: a routed, session-aware single message (seed 003).
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChatBody>,
) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?.clone();
    let mut call = Call::new(
        CallSource::Chat,
        body.model.as_deref().unwrap_or("auto"),
        vec![ChatMessage {
            role: "user".into(),
            content: body.message,
        }],
    );
    call.user_id = limited(body.user_id, "user_id", 128)?;
    call.session_id = limited(body.session_id, "session_id", 128)?;
    call.max_tokens = body.max_tokens;
    let answer = tokio::spawn(async move { gateway.complete(call).await })
        .await
        .map_err(|error| {
            ApiError::unavailable("internal", format!("gateway task failed: {error}"))
        })??;
    Ok(Json(json!({
        "request_id": answer.request_id,
        "provider": answer.provider,
        "model": answer.model,
        "category": answer.category,
        "content": answer.content,
        "attempts": answer.attempts,
        "usage": {"input_tokens": answer.usage.input_tokens, "output_tokens": answer.usage.output_tokens},
        "cost_usd": answer.cost_micros as f64 / 1e6,
    })))
}

/// Body of `POST /api/v1/providers/select`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectBody {
    /// The message to route.
    pub message: String,
    /// Session for continuity.
    pub session_id: Option<String>,
    /// `auto` (default), `provider/model` or a model name.
    pub model: Option<String>,
    /// Most output tokens (for the estimate).
    pub max_tokens: Option<u32>,
}

/// `POST /api/v1/providers/select`: the routing decision, recorded, without a call.
pub async fn select(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SelectBody>,
) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?;
    let mut call = Call::new(
        CallSource::Chat,
        body.model.as_deref().unwrap_or("auto"),
        vec![ChatMessage {
            role: "user".into(),
            content: body.message,
        }],
    );
    call.session_id = limited(body.session_id, "session_id", 128)?;
    call.max_tokens = body.max_tokens;
    let request_id = call.request_id;
    let (decision, category) = gateway.select(call).await?;
    // Candidates come best first, the eligible ones before the rest.
    let first = decision.candidates.iter().find(|c| c.eligible);
    Ok(Json(json!({
        "request_id": request_id,
        "category": category,
        "reason": decision.reason,
        "provider": first.map(|c| c.provider.clone()),
        "model": first.map(|c| c.model.clone()),
        "candidates": decision.candidates,
    })))
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// `GET /api/v1/providers/status`: availability, prices and recent stats.
pub async fn providers_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?;
    let providers: Vec<Value> = gateway
        .providers()
        .iter()
        .map(|p| {
            let budget = p.budget.snapshot();
            let settings = p.settings();
            json!({
                "name": p.name,
                "kind": p.kind,
                "priority": settings.priority,
                "available": p.circuit.allows() && budget.remaining_micros != Some(0),
                "circuit": p.circuit.phase().as_str(),
                "timeout_ms": settings.timeout.as_millis() as u64,
                "models": settings.models.iter().map(|m| json!({
                    "name": m.name,
                    "input_usd_per_mtok": m.input_usd_per_mtok,
                    "output_usd_per_mtok": m.output_usd_per_mtok,
                })).collect::<Vec<_>>(),
                "requests": budget.totals.reservations,
            })
        })
        .collect();
    Ok(Json(json!({ "providers": providers })))
}

fn budget_rows(gateway: &Gateway) -> Vec<Value> {
    gateway
        .providers()
        .iter()
        .map(|p| {
            let b = p.budget.snapshot();
            let free = b.limits.monthly_micros == 0;
            let spent = b.totals.committed_micros;
            json!({
                "provider": p.name,
                "period": b.period,
                "free": free,
                "total_usd": usd(b.limits.monthly_micros),
                "per_request_usd": usd(b.limits.per_request_micros),
                "spent_usd": usd(spent),
                "reserved_usd": usd(b.totals.reserved_micros),
                "remaining_usd": b.remaining_micros.map(usd),
                "percent_used": if free { 0.0 } else {
                    ((spent + b.totals.reserved_micros) as f64 / b.limits.monthly_micros as f64 * 10_000.0).round() / 100.0
                },
                "requests": b.totals.reservations,
                "exceeded": b.totals.exceeded,
            })
        })
        .collect()
}

/// `GET /api/v1/budget/status`: per provider, this month (seed 000's
/// `getBudgetStatus`: total, spent, remaining, percent used), live.
pub async fn budget_status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?;
    Ok(Json(json!({ "providers": budget_rows(gateway) })))
}

/// Body of `POST /api/v1/budget/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetCheckBody {
    /// Only this provider (default: all).
    pub provider: Option<String>,
    /// The cost to check, USD.
    pub estimated_cost_usd: f64,
}

/// `POST /api/v1/budget/check`: seed 000's `canAfford` per provider.
pub async fn budget_check(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BudgetCheckBody>,
) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?;
    if !body.estimated_cost_usd.is_finite() || body.estimated_cost_usd < 0.0 {
        return Err(ApiError::bad_request(
            "estimated_cost_usd: must be a non-negative number",
        ));
    }
    let estimate = (body.estimated_cost_usd * 1e6).ceil() as u64;
    if let Some(name) = &body.provider {
        if gateway.provider(name).is_none() {
            return Err(ApiError::not_found(format!("unknown provider {name:?}")));
        }
    }
    let checks: Vec<Value> = gateway
        .providers()
        .iter()
        .filter(|p| body.provider.as_ref().is_none_or(|name| &p.name == name))
        .map(|p| {
            let b = p.budget.snapshot();
            json!({
                "provider": p.name,
                "can_afford": b.can_afford(estimate),
                "remaining_usd": b.remaining_micros.map(usd),
                "per_request_usd": usd(b.limits.per_request_micros),
            })
        })
        .collect();
    Ok(Json(
        json!({ "estimated_cost_usd": body.estimated_cost_usd, "checks": checks }),
    ))
}

/// `GET /api/v1/providers/health` and `GET /api/v1/provider-health`: per
/// provider, the circuit as the breaker sees it now (lock-free view) beside the
/// `provider_health` read model (error rate, latency p50/p99, last failure).
pub async fn providers_health(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<crate::views::ViewQuery>,
) -> Result<Json<Value>, ApiError> {
    let gateway = gateway(&state)?;
    crate::views::wait_for_position(&state.provider_health, query.min_position, &state.config)
        .await?;
    let (providers, next_position) = state.provider_health.read(|health, next| {
        let rows: Vec<Value> = gateway
            .providers()
            .iter()
            .map(|p| {
                let phase = p.circuit.phase();
                let retry_at = match phase {
                    tutorlog_actors::providers::circuit_view::ViewPhase::Open { retry_at_ms } => {
                        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(retry_at_ms)
                            .map(|t| t.to_rfc3339())
                    }
                    _ => None,
                };
                json!({
                    "provider": p.name,
                    "state": phase.as_str(),
                    "available": p.circuit.allows(),
                    "retry_at": retry_at,
                    "history": health.provider(&p.name),
                })
            })
            .collect();
        (rows, next)
    });
    Ok(Json(
        json!({ "providers": providers, "next_position": next_position }),
    ))
}

/// Query of `GET /api/v1/providers/costs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsQuery {
    /// Month `YYYY-MM` (default: the current one).
    pub period: Option<String>,
    /// Wait until the view includes this position.
    pub min_position: Option<u64>,
}

/// `GET /api/v1/providers/costs`: spend per provider for a month, with its models,
/// from the `spend` read model (seed 000's cost summary).
pub async fn providers_costs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CostsQuery>,
) -> Result<Json<Value>, ApiError> {
    let period = match query.period {
        Some(period) => {
            let valid = period.len() == 7
                && chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").is_ok();
            if !valid {
                return Err(ApiError::bad_request("period: must be YYYY-MM"));
            }
            period
        }
        None => tutorlog_actors::providers::budget::period_of(chrono::Utc::now()),
    };
    crate::views::wait_for_position(&state.spend, query.min_position, &state.config).await?;
    let names: Vec<String> = state
        .gateway
        .as_ref()
        .map(|g| g.providers().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let (providers, next_position) = state.spend.read(|spend, next| {
        let rows: Vec<Value> = names
            .iter()
            .map(|name| {
                json!({
                    "provider": name,
                    "period": period,
                    "spend": spend.period(name, &period),
                })
            })
            .collect();
        (rows, next)
    });
    Ok(Json(json!({
        "period": period,
        "providers": providers,
        "next_position": next_position,
    })))
}

/// Query of `GET /api/v1/benchmarks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarksQuery {
    /// Only this category.
    pub category: Option<String>,
    /// Only results at most this old (hours; default 24, as the seed's
    /// `get_latest_benchmarks`).
    pub max_age_hours: Option<u32>,
    /// Wait until the view includes this position.
    pub min_position: Option<u64>,
}

/// `GET /api/v1/benchmarks?category=`: latest result per provider × category.
pub async fn benchmarks(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BenchmarksQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(category) = &query.category {
        if !tutorlog_actors::providers::category::CATEGORIES.contains(&category.as_str()) {
            return Err(ApiError::bad_request(format!(
                "category: one of {:?}",
                tutorlog_actors::providers::category::CATEGORIES
            )));
        }
    }
    let hours = query.max_age_hours.unwrap_or(24);
    if hours == 0 || hours > 24 * 365 {
        return Err(ApiError::bad_request("max_age_hours: between 1 and 8760"));
    }
    crate::views::wait_for_position(&state.benchmarks, query.min_position, &state.config).await?;
    let now = chrono::Utc::now();
    let (results, next_position) = state.benchmarks.read(|benchmarks, next| {
        let latest = benchmarks.latest(
            query.category.as_deref(),
            chrono::TimeDelta::hours(i64::from(hours)),
            now,
        );
        (latest, next)
    });
    Ok(Json(json!({
        "category": query.category,
        "max_age_hours": hours,
        "results": results,
        "running": state.benchmark_scheduler.as_ref().and_then(|s| s.running()),
        "next_position": next_position,
    })))
}

/// Body of `POST /api/v1/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// The gateway request (`tutorlog.request_id` of its answer).
    pub request_id: Uuid,
    /// Rating 1–5.
    pub rating: Option<u8>,
    /// Whether the answer was accepted.
    pub accepted: Option<bool>,
    /// Quality 0–100.
    pub quality: Option<f64>,
    /// A comment.
    pub comment: Option<String>,
}

/// `POST /api/v1/feedback`: records `feedback.recorded` on the request's stream.
pub async fn feedback(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FeedbackBody>,
) -> Result<Json<Value>, ApiError> {
    if body.rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(ApiError::bad_request("rating: must be 1 to 5"));
    }
    if body.quality.is_some_and(|q| !(0.0..=100.0).contains(&q)) {
        return Err(ApiError::bad_request("quality: must be 0 to 100"));
    }
    let comment = limited(body.comment, "comment", COMMENT_BYTES_MAX)?;
    let stream = format!("request-{}", body.request_id);
    let event = Event::FeedbackRecorded(FeedbackRecorded {
        request_id: body.request_id,
        rating: body.rating,
        accepted: body.accepted,
        quality: body.quality,
        comment,
    });
    let record = NewEvent::from_event(&event)
        .map_err(|e| ApiError::bad_request(format!("feedback does not encode: {e}")))?
        .with_correlation(body.request_id);
    let result = state
        .store
        .append(&stream, ExpectedRevision::Exists, vec![record])
        .await
        .map_err(|error| match error {
            tutorlog_store::StoreError::WrongExpectedRevision { .. } => {
                ApiError::not_found(format!("unknown request {}", body.request_id))
            }
            other => other.into(),
        })?;
    Ok(Json(
        json!({ "request_id": body.request_id, "position": result.position }),
    ))
}

/// Body of `POST /api/v1/admin/run-benchmarks` (all fields optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBenchmarksBody {
    /// Categories to run (default: all six).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Providers to run them on (default: all).
    #[serde(default)]
    pub providers: Vec<String>,
}

/// `POST /api/v1/admin/run-benchmarks` (admin): starts a run and answers 202 with
/// its id; results land on stream `benchmarks` and in `GET /api/v1/benchmarks`.
pub async fn admin_run_benchmarks(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    crate::http::learning::authorize(&state, &headers)?;
    let scheduler = state.benchmark_scheduler.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "no_providers",
            "benchmarks need providers: add a [[providers]] entry to the config file",
        )
    })?;
    // An empty body means "everything".
    let body: RunBenchmarksBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunBenchmarksBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let request = crate::gateway::benchmarks::RunRequest {
        trigger: "manual".into(),
        categories: body.categories,
        providers: body.providers,
    };
    use crate::gateway::benchmarks::{BenchmarkError, RunStarted};
    let started = scheduler.run(request).await.map_err(|error| match error {
        BenchmarkError::BadRequest(message) => ApiError::bad_request(message),
        BenchmarkError::Store(error) => error.into(),
        BenchmarkError::Stopped => ApiError::unavailable("benchmarks_stopped", error.to_string()),
    })?;
    let (run_id, status) = match started {
        RunStarted::Started(id) => (id, "started"),
        RunStarted::AlreadyRunning(id) => (id, "already_running"),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run_id": run_id, "status": status })),
    )
        .into_response())
}
