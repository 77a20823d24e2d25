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
use serde::{de::IgnoredAny, Deserialize, Serialize};
use serde_json::{json, Value};
use tutorlog_projections::BenchmarkResult;
use tutorlog_schemas::events::{CallSource, Event, FeedbackRecorded, RouteCandidate};
use tutorlog_schemas::NewEvent;
use tutorlog_store::ExpectedRevision;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    gateway::{
        keys::{Caller, Refusal},
        service::{gateway_error_code, Call, Gateway, GatewayError},
        types::{ChatMessage, StreamEvent},
    },
    http::{
        error::{ApiError, ApiQuery, ErrorBody},
        learning::ApiJson,
        openapi::as_json_map,
        AppState,
    },
};

// Response structs below list their fields in alphabetical order: they replaced
// `json!` maps (sorted, serde_json has no `preserve_order` here), and this order
// keeps every answer byte-identical. `tests::answers_keep_their_bytes` checks it.

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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// `[{"type": "text", "text": "..."}]`.
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ContentPart {
    /// `text` (others are refused).
    #[serde(rename = "type")]
    #[schema(value_type = ContentPartKind)]
    pub kind: String,
    /// The text of a text part.
    #[serde(default)]
    pub text: Option<String>,
}

/// One message of a chat request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestMessage {
    /// `system`, `user`, `assistant` (or `developer`).
    #[schema(value_type = ChatRole)]
    pub role: String,
    /// The content.
    pub content: Option<Content>,
}

/// `stop`: a string or a list (documented by `stop_schema`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several, at most 4.
    Many(Vec<String>),
}

/// `stop` in the document: a string, or a list of at most
/// [`STOP_SEQUENCES_MAX`] (the derive cannot bound an untagged variant's list).
fn stop_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(string())
        .item(
            ArrayBuilder::new()
                .items(string())
                .max_items(Some(STOP_SEQUENCES_MAX)),
        )
        .description(Some("Stop sequences: one, or a list of at most 4."))
        .build();
    Schema::OneOf(one_of)
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a final chunk with usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// Body of `POST /v1/chat/completions`.
///
/// Unknown fields are ignored, except OpenAI's that change what the answer must
/// be (tool calling, structured output, log probabilities, audio): a client that
/// sends those relies on their effect, so they are refused with 400 naming the
/// field rather than dropped on the way to the provider.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 16}))]
pub struct ChatCompletionRequest {
    /// `auto` (the default: the router chooses), `provider/model` or a model name.
    #[serde(default)]
    #[schema(example = "auto")]
    pub model: Option<String>,
    /// The conversation: 1 to 256 messages, at most 1 MiB of text in all.
    #[schema(min_items = 1, max_items = 256)]
    pub messages: Vec<RequestMessage>,
    /// Most output tokens: 1 to `gateway.max_tokens_limit` (default
    /// `gateway.default_max_tokens`).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Newer name of `max_tokens` (wins when both are given).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    /// Temperature, 0 to 2.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    /// Stop sequences: one, or a list of at most 4.
    #[serde(default)]
    #[schema(schema_with = stop_schema)]
    pub stop: Option<Stop>,
    /// Stream as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// End-user id (used for spend when the key has no user), at most 128 bytes.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub user: Option<String>,
    /// Number of choices; only 1 is supported.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    /// Refused: tool calling is not supported (nor `tool_choice`, `functions`,
    /// `function_call`). Presence is all that is read, so nothing is kept.
    #[serde(default)]
    #[schema(ignore)]
    pub tools: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[doc(hidden)]
    pub tool_choice: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[doc(hidden)]
    pub functions: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[doc(hidden)]
    pub function_call: Option<IgnoredAny>,
    /// Refused unless its `type` is `text`: structured output is not supported.
    #[serde(default)]
    #[schema(ignore)]
    pub response_format: Option<ResponseFormat>,
    /// Refused when true: log probabilities are not returned (nor `top_logprobs`).
    #[serde(default)]
    #[schema(ignore)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    #[schema(ignore)]
    #[doc(hidden)]
    pub top_logprobs: Option<IgnoredAny>,
    /// Refused: audio output is not supported (nor `modalities` other than `text`).
    #[serde(default)]
    #[schema(ignore)]
    pub audio: Option<IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    #[doc(hidden)]
    pub modalities: Option<Vec<String>>,
}

/// Most `stop` sequences: OpenAI's limit, which every vendor behind it takes
/// (Gemini's is 5).
const STOP_SEQUENCES_MAX: usize = 4;

/// `response_format`: only its type is read.
#[derive(Debug, Deserialize)]
pub struct ResponseFormat {
    /// `text`, `json_object`, `json_schema`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl ChatCompletionRequest {
    /// Refuses what this gateway cannot honour: more than one choice, sampling
    /// values outside OpenAI's ranges, and the fields the type's docs name.
    fn check_supported(&self) -> Result<(), ApiError> {
        let refuse = |field: &str, what: &str| {
            Err(ApiError::bad_request(format!(
                "{field}: {what} is not supported by this gateway"
            )))
        };
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request("n: only 1 is supported"));
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ApiError::bad_request(format!(
                    "temperature: must be between 0 and 2, got {t}"
                )));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(ApiError::bad_request(format!(
                    "top_p: must be between 0 and 1, got {p}"
                )));
            }
        }
        if let Some(Stop::Many(sequences)) = &self.stop {
            if sequences.len() > STOP_SEQUENCES_MAX {
                return Err(ApiError::bad_request(format!(
                    "stop: at most {STOP_SEQUENCES_MAX} sequences, got {}",
                    sequences.len()
                )));
            }
        }
        let tool_fields = [
            ("tools", self.tools.is_some()),
            ("tool_choice", self.tool_choice.is_some()),
            ("functions", self.functions.is_some()),
            ("function_call", self.function_call.is_some()),
        ];
        if let Some((field, _)) = tool_fields.iter().find(|(_, present)| *present) {
            return refuse(field, "tool calling");
        }
        if let Some(format) = &self.response_format {
            if format.kind != "text" {
                return refuse(
                    "response_format",
                    &format!("type {:?} (structured output)", format.kind),
                );
            }
        }
        if self.logprobs == Some(true) {
            return refuse("logprobs", "returning log probabilities");
        }
        if self.top_logprobs.is_some() {
            return refuse("top_logprobs", "returning log probabilities");
        }
        if self.audio.is_some() {
            return refuse("audio", "audio output");
        }
        if let Some(kind) = self
            .modalities
            .iter()
            .flatten()
            .find(|m| m.as_str() != "text")
        {
            return refuse("modalities", &format!("output modality {kind:?}"));
        }
        Ok(())
    }
}

/// The roles a message may have. Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// OpenAI's newer name for `system`.
    Developer,
    /// The user.
    User,
    /// An earlier answer.
    Assistant,
}

/// The content part types accepted. Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ContentPartKind {
    /// Text; other part types (images, audio) are refused with 400.
    Text,
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

/// `choices[].message` of a chat completion.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    /// The answer.
    pub content: String,
    /// Always `assistant`.
    pub role: &'static str,
}

/// One choice of a chat completion (there is always exactly one).
#[derive(Debug, Serialize, ToSchema)]
pub struct Choice {
    /// `stop`, `length`, ...
    pub finish_reason: String,
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
}

/// Token counts in OpenAI's names.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionUsage {
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// What tutorlog adds to an OpenAI answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TutorlogMeta {
    /// Providers tried (more than 1 after a failover).
    pub attempts: u32,
    /// The detected category (`coding`, `math`, `research`, `language`, `empathy`, `general`).
    pub category: &'static str,
    /// What the call cost, USD.
    pub cost_usd: f64,
    /// The provider that answered.
    pub provider: String,
    /// The gateway request (for `/api/v1/audit/requests/{id}` and `/api/v1/feedback`).
    pub request_id: Uuid,
}

/// Body of a non-streaming `POST /v1/chat/completions` answer (OpenAI's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    /// One choice.
    pub choices: Vec<Choice>,
    /// Unix time, seconds.
    pub created: i64,
    /// `chatcmpl-…`.
    pub id: String,
    /// `provider/model` that answered.
    pub model: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// tutorlog's additions.
    pub tutorlog: TutorlogMeta,
    /// Token counts.
    pub usage: CompletionUsage,
}

/// One server-sent event of a streamed chat completion, as OpenAPI 3.1 reads a
/// `text/event-stream` schema (each event, not the whole stream). Documentation
/// only: the handler writes the events with axum's `Sse`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"data": "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"4\"},\"finish_reason\":null}]}"}))]
pub struct ChunkEvent {
    /// A `chat.completion.chunk` object as JSON text; the last event is `[DONE]`.
    pub data: String,
    /// The event type, when set (`message` by default).
    pub event: Option<String>,
    /// The event id, when set.
    pub id: Option<String>,
}

/// Chat completion (OpenAI-compatible).
///
/// `POST /v1/chat/completions`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "gateway",
    operation_id = "chat_completions",
    security(("api_key" = [])),
    params(
        ("x-tutorlog-session" = Option<String>, Header, description = "A session id (at most 128 bytes) for session continuity: the router prefers the provider that served the session last"),
    ),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The answer: JSON, or with `stream: true` server-sent events of `chat.completion.chunk` objects ending with `data: [DONE]`",
            headers(("x-tutorlog-request-id" = String, description = "The gateway request id")),
            links(
                ("feedback" = (operation_id = "feedback", description = "Rate the answer",
                    request_body = json!({"request_id": "$response.header.x-tutorlog-request-id"}))),
                ("explain" = (operation_id = "audit_request", description = "Why this provider, at what cost",
                    parameters(("id" = "$response.header.x-tutorlog-request-id")))),
            ),
            content(
                (ChatCompletion = "application/json"),
                (ChunkEvent = "text/event-stream"),
            )),
        (status = 400, description = "A bad field (the message names it: empty `messages`, an unknown role, a non-text part, `n` other than 1, `max_tokens`, `temperature` or `top_p` out of range, more than 4 `stop` sequences, or a field whose effect the gateway cannot give: `tools`, `response_format` other than `text`, `logprobs`, audio), or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_api_key`: a missing or unknown API key", body = ErrorBody),
        (status = 402, description = "The monthly budget of every provider that could serve it is spent", body = ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves that model", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this key is over `gateway.rate_limit_per_sec` (see `Retry-After`), or the call is over a provider's per-request budget",
            headers(("retry-after" = u64, description = "Seconds to wait (rate limit only)")),
            body = ErrorBody),
        (status = 502, description = "The provider failed", body = ErrorBody),
        (status = 503, description = "`no_providers` (none configured) or no healthy provider (circuits open)", body = ErrorBody),
        (status = 504, description = "The provider timed out", body = ErrorBody),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<ChatCompletionRequest>, ApiError>,
) -> Result<Response, ApiError> {
    // The key first, as OpenAI does: a caller without one learns nothing about
    // what the body should have been.
    let caller = match caller(&state, &headers) {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let ApiJson(body) = body?;
    let gateway = gateway(&state)?.clone();
    body.check_supported()?;
    // Checked whoever calls: the document bounds `user` for every request, and a
    // key with its own user must not make an over-long one acceptable.
    let body_user = limited(body.user, "user", 128)?;
    let user_id = match caller {
        Caller::Key {
            user_id: Some(user),
        } => Some(user),
        _ => body_user,
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
    let body = ChatCompletion {
        choices: vec![Choice {
            finish_reason: answer.finish_reason.unwrap_or_else(|| "stop".into()),
            index: 0,
            message: AssistantMessage {
                content: answer.content,
                role: "assistant",
            },
        }],
        created: created(),
        id,
        model: format!("{}/{}", answer.provider, answer.model),
        object: "chat.completion",
        tutorlog: TutorlogMeta {
            attempts: answer.attempts,
            category: answer.category,
            cost_usd: answer.cost_micros as f64 / 1e6,
            provider: answer.provider,
            request_id: answer.request_id,
        },
        usage: CompletionUsage {
            completion_tokens: answer.usage.output_tokens,
            prompt_tokens: answer.usage.input_tokens,
            total_tokens: answer.usage.input_tokens + answer.usage.output_tokens,
        },
    };
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

/// One model of `GET /v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEntry {
    /// `auto` or `provider/model`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// The provider (`tutorlog` for `auto`).
    pub owned_by: String,
}

/// Body of `GET /v1/models` (OpenAI's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// `auto`, then every `provider/model`.
    pub data: Vec<ModelEntry>,
    /// Always `list`.
    pub object: &'static str,
}

/// List models (OpenAI-compatible).
///
/// `GET /v1/models`: every `provider/model`, plus bare names.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "gateway",
    operation_id = "models",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The models the gateway routes to", body = ModelList),
        (status = 401, description = "`invalid_api_key`: a missing or unknown API key", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this key is over `gateway.rate_limit_per_sec`",
            headers(("retry-after" = u64, description = "Seconds to wait")),
            body = ErrorBody),
    )
)]
pub async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = caller(&state, &headers) {
        return refused;
    }
    let mut data = vec![ModelEntry {
        id: "auto".to_owned(),
        object: "model",
        owned_by: "tutorlog".to_owned(),
    }];
    if let Some(gateway) = &state.gateway {
        for provider in gateway.providers() {
            for model in &provider.settings().models {
                data.push(ModelEntry {
                    id: format!("{}/{}", provider.name, model.name),
                    object: "model",
                    owned_by: provider.name.clone(),
                });
            }
        }
    }
    Json(ModelList {
        data,
        object: "list",
    })
    .into_response()
}

/// Body of `POST /api/v1/chat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": "ada", "session_id": "s1", "message": "Explain recursion in one line"}))]
pub struct ChatBody {
    /// The learner or user, at most 128 bytes (a key with its own user wins).
    pub user_id: Option<String>,
    /// Session for continuity.
    pub session_id: Option<String>,
    /// The message.
    pub message: String,
    /// `auto` (default), `provider/model` or a model name.
    pub model: Option<String>,
    /// Most output tokens: 1 to `gateway.max_tokens_limit` (default
    /// `gateway.default_max_tokens`).
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
}

/// Token counts of `POST /api/v1/chat`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// Answer of `POST /api/v1/chat`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatAnswer {
    /// Providers tried (more than 1 after a failover).
    pub attempts: u32,
    /// The detected category.
    pub category: &'static str,
    /// The answer.
    pub content: String,
    /// What the call cost, USD.
    pub cost_usd: f64,
    /// The model that answered.
    pub model: String,
    /// The provider that answered.
    pub provider: String,
    /// The gateway request (for `/api/v1/audit/requests/{id}` and `/api/v1/feedback`).
    pub request_id: Uuid,
    /// Token counts.
    pub usage: TokenUsage,
}

/// Routed chat message.
///
/// `POST /api/v1/chat`: a routed, session-aware single message (seed 003).
/// It spends provider budget like `/v1/chat/completions`, so it takes the same
/// API key (when `gateway.api_keys` has any) and the same per-key rate limit.
#[utoipa::path(
    post,
    path = "/api/v1/chat",
    tag = "gateway",
    operation_id = "chat",
    security(("api_key" = [])),
    request_body = ChatBody,
    responses(
        (status = 200, description = "The answer", body = ChatAnswer,
            links(
                ("feedback" = (operation_id = "feedback", description = "Rate the answer",
                    request_body = json!({"request_id": "$response.body#/request_id"}))),
                ("explain" = (operation_id = "audit_request", description = "Why this provider, at what cost",
                    parameters(("id" = "$response.body#/request_id")))),
            )),
        (status = 400, description = "A bad field (the message names it), an unknown field, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "`invalid_api_key`: a missing or unknown API key", body = ErrorBody),
        (status = 402, description = "The monthly budget of every provider that could serve it is spent", body = ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves that model", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this key is over `gateway.rate_limit_per_sec` (see `Retry-After`), or the call is over a provider's per-request budget",
            headers(("retry-after" = u64, description = "Seconds to wait (rate limit only)")),
            body = ErrorBody),
        (status = 502, description = "The provider failed", body = ErrorBody),
        (status = 503, description = "`no_providers` (none configured) or no healthy provider (circuits open)", body = ErrorBody),
        (status = 504, description = "The provider timed out", body = ErrorBody),
    )
)]
pub async fn chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<ChatBody>, ApiError>,
) -> Result<Response, ApiError> {
    let caller = match caller(&state, &headers) {
        Ok(caller) => caller,
        Err(refused) => return Ok(refused),
    };
    let ApiJson(body) = body?;
    let gateway = gateway(&state)?.clone();
    let mut call = Call::new(
        CallSource::Chat,
        body.model.as_deref().unwrap_or("auto"),
        vec![ChatMessage {
            role: "user".into(),
            content: body.message,
        }],
    );
    let body_user = limited(body.user_id, "user_id", 128)?;
    call.user_id = match caller {
        Caller::Key {
            user_id: Some(user),
        } => Some(user),
        _ => body_user,
    };
    call.session_id = limited(body.session_id, "session_id", 128)?;
    call.max_tokens = body.max_tokens;
    let answer = tokio::spawn(async move { gateway.complete(call).await })
        .await
        .map_err(|error| {
            ApiError::unavailable("internal", format!("gateway task failed: {error}"))
        })??;
    Ok(Json(ChatAnswer {
        attempts: answer.attempts,
        category: answer.category,
        content: answer.content,
        cost_usd: answer.cost_micros as f64 / 1e6,
        model: answer.model,
        provider: answer.provider,
        request_id: answer.request_id,
        usage: TokenUsage {
            input_tokens: answer.usage.input_tokens,
            output_tokens: answer.usage.output_tokens,
        },
    })
    .into_response())
}

/// Body of `POST /api/v1/providers/select`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "Write a SQL query that counts rows"}))]
pub struct SelectBody {
    /// The message to route.
    pub message: String,
    /// Session for continuity.
    pub session_id: Option<String>,
    /// `auto` (default), `provider/model` or a model name.
    pub model: Option<String>,
    /// Most output tokens (for the estimate): 1 to `gateway.max_tokens_limit`.
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
}

/// One candidate of a routing decision (the `provider.selected` event's).
#[derive(Debug, ToSchema)]
pub struct Candidate {
    /// Provider name.
    pub provider: String,
    /// Model it would serve the request with.
    pub model: String,
    /// Routing score (higher is better); meaningful only among eligible candidates.
    pub score: f64,
    /// Whether it could take the request (circuit, budget, model).
    pub eligible: bool,
    /// Why it scored as it did, or why it was not eligible.
    pub reason: String,
}

/// Answer of `POST /api/v1/providers/select`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Selection {
    /// Every candidate, best first, the eligible ones before the rest.
    #[schema(value_type = Vec<Candidate>)]
    #[serde(serialize_with = "as_json_map")]
    pub candidates: Vec<RouteCandidate>,
    /// The detected category.
    pub category: &'static str,
    /// The chosen model; `null` when no candidate is eligible.
    pub model: Option<String>,
    /// The chosen provider; `null` when no candidate is eligible.
    pub provider: Option<String>,
    /// `pinned`, `session_continuity`, `best_score` or `no_candidate`.
    pub reason: &'static str,
    /// The recorded decision's request id.
    pub request_id: Uuid,
}

/// Routing decision without a call.
///
/// `POST /api/v1/providers/select`: the routing decision, recorded, without a call.
#[utoipa::path(
    post,
    path = "/api/v1/providers/select",
    tag = "providers",
    operation_id = "providers_select",
    request_body = SelectBody,
    responses(
        (status = 200, description = "The routing decision (recorded as `provider.selected`)", body = Selection,
            links(
                ("explain" = (operation_id = "audit_request", description = "The recorded decision",
                    parameters(("id" = "$response.body#/request_id")))),
            )),
        (status = 400, description = "A bad field (the message names it), an unknown field, or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "`model_not_found`: no provider serves that model", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "`no_providers`: the gateway has no providers", body = ErrorBody),
    )
)]
pub async fn select(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SelectBody>,
) -> Result<Json<Selection>, ApiError> {
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
    let (provider, model) = (
        first.map(|c| c.provider.clone()),
        first.map(|c| c.model.clone()),
    );
    Ok(Json(Selection {
        candidates: decision.candidates,
        category,
        model,
        provider,
        reason: decision.reason,
        request_id,
    }))
}

fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// A model's prices in `GET /api/v1/providers/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPrices {
    /// USD per million input tokens.
    pub input_usd_per_mtok: f64,
    /// Model name as the provider knows it.
    pub name: String,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
}

/// One provider of `GET /api/v1/providers/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderStatus {
    /// Circuit allows calls and budget is left.
    pub available: bool,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// `openai`, `anthropic`, `gemini`, `ollama` or `mock`.
    pub kind: String,
    /// Its models and prices.
    pub models: Vec<ModelPrices>,
    /// The provider's name.
    pub name: String,
    /// Lower is tried first.
    pub priority: u32,
    /// Reservations this month.
    pub requests: u64,
    /// Call timeout, ms.
    pub timeout_ms: u64,
}

/// Body of `GET /api/v1/providers/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersStatus {
    /// One row per configured provider.
    pub providers: Vec<ProviderStatus>,
}

/// Provider availability and prices.
///
/// `GET /api/v1/providers/status`: availability, prices and recent stats.
#[utoipa::path(
    get,
    path = "/api/v1/providers/status",
    tag = "providers",
    operation_id = "providers_status",
    responses(
        (status = 200, description = "Every provider's availability, prices and requests", body = ProvidersStatus),
        (status = 503, description = "`no_providers`: the gateway has no providers", body = ErrorBody),
    )
)]
pub async fn providers_status(
    State(state): State<AppState>,
) -> Result<Json<ProvidersStatus>, ApiError> {
    let gateway = gateway(&state)?;
    let providers: Vec<ProviderStatus> = gateway
        .providers()
        .iter()
        .map(|p| {
            let budget = p.budget.snapshot();
            let settings = p.settings();
            ProviderStatus {
                available: p.circuit.allows() && budget.remaining_micros != Some(0),
                circuit: p.circuit.phase().as_str(),
                kind: p.kind.clone(),
                models: settings
                    .models
                    .iter()
                    .map(|m| ModelPrices {
                        input_usd_per_mtok: m.input_usd_per_mtok,
                        name: m.name.clone(),
                        output_usd_per_mtok: m.output_usd_per_mtok,
                    })
                    .collect(),
                name: p.name.clone(),
                priority: settings.priority,
                requests: budget.totals.reservations,
                timeout_ms: settings.timeout.as_millis() as u64,
            }
        })
        .collect();
    Ok(Json(ProvidersStatus { providers }))
}

/// One provider's budget this month, in `GET /api/v1/budget/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetRow {
    /// `provider.budget.exceeded` events this month.
    pub exceeded: u64,
    /// A monthly budget of 0: never blocks.
    pub free: bool,
    /// Per-request limit, USD (0: none).
    pub per_request_usd: f64,
    /// (spent + reserved) / total, percent with 2 decimals (0 when free).
    pub percent_used: f64,
    /// The month, `YYYY-MM`.
    pub period: String,
    /// The provider.
    pub provider: String,
    /// What is left, USD; `null` for a free provider.
    pub remaining_usd: Option<f64>,
    /// Reservations this month.
    pub requests: u64,
    /// Reserved, not yet committed, USD.
    pub reserved_usd: f64,
    /// Committed, USD.
    pub spent_usd: f64,
    /// The monthly budget, USD.
    pub total_usd: f64,
}

/// Body of `GET /api/v1/budget/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetStatus {
    /// One row per configured provider.
    pub providers: Vec<BudgetRow>,
}

fn budget_rows(gateway: &Gateway) -> Vec<BudgetRow> {
    gateway
        .providers()
        .iter()
        .map(|p| {
            let b = p.budget.snapshot();
            let free = b.limits.monthly_micros == 0;
            let spent = b.totals.committed_micros;
            let percent_used = if free {
                0.0
            } else {
                ((spent + b.totals.reserved_micros) as f64 / b.limits.monthly_micros as f64
                    * 10_000.0)
                    .round()
                    / 100.0
            };
            BudgetRow {
                exceeded: b.totals.exceeded,
                free,
                per_request_usd: usd(b.limits.per_request_micros),
                percent_used,
                period: b.period.clone(),
                provider: p.name.clone(),
                remaining_usd: b.remaining_micros.map(usd),
                requests: b.totals.reservations,
                reserved_usd: usd(b.totals.reserved_micros),
                spent_usd: usd(spent),
                total_usd: usd(b.limits.monthly_micros),
            }
        })
        .collect()
}

/// This month's budgets.
///
/// `GET /api/v1/budget/status`: per provider, this month (seed 000's
/// `getBudgetStatus`: total, spent, remaining, percent used), live.
#[utoipa::path(
    get,
    path = "/api/v1/budget/status",
    tag = "providers",
    operation_id = "budget_status",
    responses(
        (status = 200, description = "Every provider's budget this month, live from the budget actors", body = BudgetStatus),
        (status = 503, description = "`no_providers`: the gateway has no providers", body = ErrorBody),
    )
)]
pub async fn budget_status(State(state): State<AppState>) -> Result<Json<BudgetStatus>, ApiError> {
    let gateway = gateway(&state)?;
    Ok(Json(BudgetStatus {
        providers: budget_rows(gateway),
    }))
}

/// Body of `POST /api/v1/budget/check`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"estimated_cost_usd": 0.01}))]
pub struct BudgetCheckBody {
    /// Only this provider (default: all).
    pub provider: Option<String>,
    /// The cost to check, USD (non-negative).
    #[schema(minimum = 0.0)]
    pub estimated_cost_usd: f64,
}

/// One provider of `POST /api/v1/budget/check`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AffordCheck {
    /// Whether a reservation of the estimate would succeed now.
    pub can_afford: bool,
    /// Per-request limit, USD (0: none).
    pub per_request_usd: f64,
    /// The provider.
    pub provider: String,
    /// What is left this month, USD; `null` for a free provider.
    pub remaining_usd: Option<f64>,
}

/// Answer of `POST /api/v1/budget/check`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetCheck {
    /// One row per provider checked.
    pub checks: Vec<AffordCheck>,
    /// The estimate checked, USD.
    pub estimated_cost_usd: f64,
}

/// Can providers afford a cost.
///
/// `POST /api/v1/budget/check`: seed 000's `canAfford` per provider.
#[utoipa::path(
    post,
    path = "/api/v1/budget/check",
    tag = "providers",
    operation_id = "budget_check",
    request_body = BudgetCheckBody,
    responses(
        (status = 200, description = "Whether each provider can afford the estimate now", body = BudgetCheck),
        (status = 400, description = "A negative or missing estimate, an unknown field, or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "`no_providers`: the gateway has no providers", body = ErrorBody),
    )
)]
pub async fn budget_check(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BudgetCheckBody>,
) -> Result<Json<BudgetCheck>, ApiError> {
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
    let checks: Vec<AffordCheck> = gateway
        .providers()
        .iter()
        .filter(|p| body.provider.as_ref().is_none_or(|name| &p.name == name))
        .map(|p| {
            let b = p.budget.snapshot();
            AffordCheck {
                can_afford: b.can_afford(estimate),
                per_request_usd: usd(b.limits.per_request_micros),
                provider: p.name.clone(),
                remaining_usd: b.remaining_micros.map(usd),
            }
        })
        .collect();
    Ok(Json(BudgetCheck {
        checks,
        estimated_cost_usd: body.estimated_cost_usd,
    }))
}

/// One provider of `GET /api/v1/providers/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderHealthRow {
    /// Whether the circuit lets calls through now.
    pub available: bool,
    /// The `provider_health` view's row (docs/views.md): error rate, latency
    /// p50/p99, last failure; `null` before the first call.
    #[schema(value_type = Option<Object>)]
    #[serde(serialize_with = "as_json_map")]
    pub history: Option<tutorlog_projections::ProviderHealthView>,
    /// The provider.
    pub provider: String,
    /// When an open circuit lets a trial call through (RFC 3339).
    pub retry_at: Option<String>,
    /// `closed`, `open` or `half_open`, as the breaker sees it now.
    pub state: &'static str,
}

/// Body of `GET /api/v1/providers/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersHealth {
    /// Events `0..next_position` are folded into `history`.
    pub next_position: u64,
    /// One row per configured provider.
    pub providers: Vec<ProviderHealthRow>,
}

/// Query of the provider endpoints that read one view.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MinPositionParam {
    /// Wait (bounded by `server.min_position_wait_ms`) until the view includes
    /// the event at this position.
    pub min_position: Option<u64>,
}

/// Provider circuits and health.
///
/// `GET /api/v1/providers/health` and `GET /api/v1/provider-health`: per
/// provider, the circuit as the breaker sees it now (lock-free view) beside the
/// `provider_health` read model (error rate, latency p50/p99, last failure).
#[utoipa::path(
    get,
    path = "/api/v1/providers/health",
    tag = "providers",
    operation_id = "providers_health",
    params(MinPositionParam),
    responses(
        (status = 200, description = "Every provider's circuit and health history", body = ProvidersHealth),
        (status = 400, description = "A bad query string", body = ErrorBody),
        (status = 503, description = "`no_providers`, or `not_caught_up`: the view did not reach `min_position` in time", body = ErrorBody),
    )
)]
pub async fn providers_health(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<crate::views::ViewQuery>,
) -> Result<Json<ProvidersHealth>, ApiError> {
    let gateway = gateway(&state)?;
    crate::views::wait_for_position(
        &state.provider_health,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
    let (providers, next_position) = state.provider_health.read(|health, next| {
        let rows: Vec<ProviderHealthRow> = gateway
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
                ProviderHealthRow {
                    available: p.circuit.allows(),
                    history: health.provider(&p.name),
                    provider: p.name.clone(),
                    retry_at,
                    state: phase.as_str(),
                }
            })
            .collect();
        (rows, next)
    });
    Ok(Json(ProvidersHealth {
        next_position,
        providers,
    }))
}

/// Provider circuits and health (alias).
///
/// `GET /api/v1/provider-health`: the same as `GET /api/v1/providers/health`
/// (the seed's name for it).
#[utoipa::path(
    get,
    path = "/api/v1/provider-health",
    tag = "providers",
    operation_id = "provider_health",
    params(MinPositionParam),
    responses(
        (status = 200, description = "Every provider's circuit and health history", body = ProvidersHealth),
        (status = 400, description = "A bad query string", body = ErrorBody),
        (status = 503, description = "`no_providers`, or `not_caught_up`: the view did not reach `min_position` in time", body = ErrorBody),
    )
)]
pub async fn provider_health(
    state: State<AppState>,
    query: ApiQuery<crate::views::ViewQuery>,
) -> Result<Json<ProvidersHealth>, ApiError> {
    providers_health(state, query).await
}

/// Query of `GET /api/v1/providers/costs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostsQuery {
    /// Month `YYYY-MM` (default: the current one).
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2027-01")]
    pub period: Option<String>,
    /// Wait until the view includes this position.
    pub min_position: Option<u64>,
}

/// One provider of `GET /api/v1/providers/costs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCost {
    /// The month.
    pub period: String,
    /// The provider.
    pub provider: String,
    /// The `spend` view's row for this provider and month (docs/views.md:
    /// limit, reserved, committed, remaining, percent used, counts, models);
    /// `null` when nothing was spent.
    #[schema(value_type = Option<Object>)]
    #[serde(serialize_with = "as_json_map")]
    pub spend: Option<tutorlog_projections::spend::PeriodSpend>,
}

/// Body of `GET /api/v1/providers/costs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersCosts {
    /// Events `0..next_position` are folded into these rows.
    pub next_position: u64,
    /// The month, `YYYY-MM`.
    pub period: String,
    /// One row per configured provider.
    pub providers: Vec<ProviderCost>,
}

/// Spend per provider for a month.
///
/// `GET /api/v1/providers/costs`: spend per provider for a month, with its models,
/// from the `spend` read model (seed 000's cost summary).
#[utoipa::path(
    get,
    path = "/api/v1/providers/costs",
    tag = "providers",
    operation_id = "providers_costs",
    params(CostsQuery),
    responses(
        (status = 200, description = "Spend per provider for the month", body = ProvidersCosts),
        (status = 400, description = "`period` is not `YYYY-MM`, or an unknown parameter", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn providers_costs(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CostsQuery>,
) -> Result<Json<ProvidersCosts>, ApiError> {
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
    crate::views::wait_for_position(
        &state.spend,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
    let names: Vec<String> = state
        .gateway
        .as_ref()
        .map(|g| g.providers().iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let (providers, next_position) = state.spend.read(|spend, next| {
        let rows: Vec<ProviderCost> = names
            .iter()
            .map(|name| ProviderCost {
                period: period.clone(),
                provider: name.clone(),
                spend: spend.period(name, &period).cloned(),
            })
            .collect();
        (rows, next)
    });
    Ok(Json(ProvidersCosts {
        next_position,
        period,
        providers,
    }))
}

/// Query of `GET /api/v1/benchmarks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BenchmarksQuery {
    /// Only this category: `coding`, `math`, `research`, `language`, `empathy`, `general`.
    #[param(value_type = Option<CategoryName>, example = "coding")]
    pub category: Option<String>,
    /// Only results at most this old (hours, 1–8760; default 24, as the seed's
    /// `get_latest_benchmarks`).
    #[param(minimum = 1, maximum = 8760)]
    pub max_age_hours: Option<u32>,
    /// Wait until the view includes this position.
    pub min_position: Option<u64>,
}

/// The request categories the router and the benchmarks know
/// (`tutorlog_actors::providers::category::CATEGORIES`; a test keeps the two
/// lists equal). Documentation only.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum CategoryName {
    /// Programming.
    Coding,
    /// Mathematics.
    Math,
    /// Research and facts.
    Research,
    /// Language and writing.
    Language,
    /// Emotional support.
    Empathy,
    /// Anything else.
    General,
}

/// Body of `GET /api/v1/benchmarks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BenchmarksAnswer {
    /// The category asked for, if any.
    pub category: Option<String>,
    /// The age limit applied, hours.
    pub max_age_hours: u32,
    /// Events `0..next_position` are folded into `results`.
    pub next_position: u64,
    /// Latest result per provider × category, by category then provider.
    #[serde(serialize_with = "as_json_map")]
    pub results: Vec<BenchmarkResult>,
    /// The run in progress, if any.
    pub running: Option<Uuid>,
}

/// Latest benchmark results.
///
/// `GET /api/v1/benchmarks?category=`: latest result per provider × category.
#[utoipa::path(
    get,
    path = "/api/v1/benchmarks",
    tag = "providers",
    operation_id = "benchmarks",
    params(BenchmarksQuery),
    responses(
        (status = 200, description = "The latest benchmark results", body = BenchmarksAnswer),
        (status = 400, description = "An unknown category, `max_age_hours` outside 1–8760, or an unknown parameter", body = ErrorBody),
        (status = 503, description = "`not_caught_up`: the view did not reach `min_position` in time; retry", body = ErrorBody),
    )
)]
pub async fn benchmarks(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BenchmarksQuery>,
) -> Result<Json<BenchmarksAnswer>, ApiError> {
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
    crate::views::wait_for_position(
        &state.benchmarks,
        query.min_position,
        &state.config,
        state.store.as_ref(),
    )
    .await?;
    let now = chrono::Utc::now();
    let (results, next_position) = state.benchmarks.read(|benchmarks, next| {
        let latest = benchmarks.latest(
            query.category.as_deref(),
            chrono::TimeDelta::hours(i64::from(hours)),
            now,
        );
        (latest, next)
    });
    Ok(Json(BenchmarksAnswer {
        category: query.category,
        max_age_hours: hours,
        next_position,
        results,
        running: state.benchmark_scheduler.as_ref().and_then(|s| s.running()),
    }))
}

/// Body of `POST /api/v1/feedback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"request_id": "0193a1b2-0000-7000-8000-000000000003", "rating": 5, "accepted": true}))]
pub struct FeedbackBody {
    /// The gateway request (`tutorlog.request_id` of its answer).
    pub request_id: Uuid,
    /// Rating 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<u8>,
    /// Whether the answer was accepted.
    pub accepted: Option<bool>,
    /// Quality 0–100.
    #[schema(minimum = 0.0, maximum = 100.0)]
    pub quality: Option<f64>,
    /// A comment (at most 4096 bytes).
    #[schema(max_length = 4096)]
    pub comment: Option<String>,
}

/// Answer of `POST /api/v1/feedback`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackRecordedAnswer {
    /// The log position of `feedback.recorded`.
    pub position: u64,
    /// The request the feedback is about.
    pub request_id: Uuid,
}

/// Rate a gateway answer.
///
/// `POST /api/v1/feedback`: records `feedback.recorded` on the request's stream.
#[utoipa::path(
    post,
    path = "/api/v1/feedback",
    tag = "gateway",
    operation_id = "feedback",
    request_body = FeedbackBody,
    responses(
        (status = 200, description = "The feedback is recorded", body = FeedbackRecordedAnswer),
        (status = 400, description = "A bad field (rating outside 1–5, quality outside 0–100, comment over 4 KiB), an unknown field, or a body that is not JSON", body = ErrorBody),
        (status = 404, description = "Unknown request", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "The log is not accepting requests", body = ErrorBody),
    )
)]
pub async fn feedback(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FeedbackBody>,
) -> Result<Json<FeedbackRecordedAnswer>, ApiError> {
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
    Ok(Json(FeedbackRecordedAnswer {
        position: result.position,
        request_id: body.request_id,
    }))
}

/// Body of `POST /api/v1/admin/run-benchmarks` (all fields optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"categories": ["math"]}))]
pub struct RunBenchmarksBody {
    /// Categories to run (default: all six).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Providers to run them on (default: all).
    #[serde(default)]
    pub providers: Vec<String>,
}

/// Answer of `POST /api/v1/admin/run-benchmarks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BenchmarkRunStarted {
    /// The run (the one already running, if so).
    pub run_id: Uuid,
    /// `started` or `already_running`.
    pub status: &'static str,
}

/// Run the benchmark suite now.
///
/// `POST /api/v1/admin/run-benchmarks` (admin): starts a run and answers 202 with
/// its id; results land on stream `benchmarks` and in `GET /api/v1/benchmarks`.
#[utoipa::path(
    post,
    path = "/api/v1/admin/run-benchmarks",
    tag = "admin",
    operation_id = "admin_run_benchmarks",
    security(("admin_token" = [])),
    request_body(content = Option<RunBenchmarksBody>, description = "What to run; an empty body runs everything"),
    responses(
        (status = 202, description = "The run started (or one is already running)", body = BenchmarkRunStarted),
        (status = 400, description = "An unknown category or provider, an unknown field, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "A missing or wrong admin token, or admin endpoints disabled", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = ErrorBody),
        (status = 503, description = "`no_providers`: benchmarks need providers; or the scheduler stopped", body = ErrorBody),
    )
)]
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
    // An empty body or `null` (the document allows it) means "everything".
    let body: RunBenchmarksBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunBenchmarksBody::default()
    } else {
        serde_json::from_slice::<Option<RunBenchmarksBody>>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
            .unwrap_or_default()
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
        Json(BenchmarkRunStarted { run_id, status }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::test_support::assert_same_bytes_as_a_json_map as same_bytes;

    fn check(extra: Value) -> Result<(), String> {
        let mut body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
        for (key, value) in extra.as_object().expect("object") {
            body[key] = value.clone();
        }
        let request: ChatCompletionRequest = serde_json::from_value(body).expect("parses");
        request.check_supported().map_err(|error| error.message)
    }

    #[test]
    fn fields_whose_effect_the_gateway_cannot_give_are_refused_by_name() {
        for (extra, field) in [
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tools",
            ),
            (json!({"tool_choice": "auto"}), "tool_choice"),
            (json!({"functions": []}), "functions"),
            (json!({"function_call": "none"}), "function_call"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {}}}),
                "response_format",
            ),
            (json!({"logprobs": true}), "logprobs"),
            (json!({"top_logprobs": 3}), "top_logprobs"),
            (json!({"audio": {"voice": "alloy"}}), "audio"),
            (json!({"modalities": ["text", "audio"]}), "modalities"),
            (json!({"n": 2}), "n"),
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"temperature": -0.1}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
        ] {
            let message = check(extra.clone()).expect_err(&extra.to_string());
            assert!(
                message.starts_with(&format!("{field}:")),
                "{extra}: {message}"
            );
        }
    }

    #[test]
    fn harmless_or_neutral_values_of_those_fields_pass() {
        for extra in [
            json!({}),
            json!({"response_format": {"type": "text"}}),
            json!({"logprobs": false}),
            json!({"modalities": ["text"]}),
            json!({"tools": null, "audio": null}),
            json!({"temperature": 0, "top_p": 1, "n": 1}),
            json!({"stop": "\n"}),
            json!({"stop": ["a", "b", "c", "d"]}),
            json!({"temperature": 2.0, "seed": 7, "presence_penalty": 0.5}),
        ] {
            assert_eq!(check(extra.clone()), Ok(()), "{extra}");
        }
    }

    #[test]
    fn answers_keep_their_bytes() {
        let id = Uuid::nil();
        same_bytes(&ChatCompletion {
            choices: vec![Choice {
                finish_reason: "stop".into(),
                index: 0,
                message: AssistantMessage {
                    content: "4".into(),
                    role: "assistant",
                },
            }],
            created: 1,
            id: "chatcmpl-0".into(),
            model: "mock/mock-1".into(),
            object: "chat.completion",
            tutorlog: TutorlogMeta {
                attempts: 1,
                category: "math",
                cost_usd: 0.5,
                provider: "mock".into(),
                request_id: id,
            },
            usage: CompletionUsage {
                completion_tokens: 1,
                prompt_tokens: 2,
                total_tokens: 3,
            },
        });
        same_bytes(&ModelList {
            data: vec![ModelEntry {
                id: "auto".into(),
                object: "model",
                owned_by: "tutorlog".into(),
            }],
            object: "list",
        });
        same_bytes(&ChatAnswer {
            attempts: 1,
            category: "general",
            content: "c".into(),
            cost_usd: 0.25,
            model: "m".into(),
            provider: "p".into(),
            request_id: id,
            usage: TokenUsage {
                input_tokens: 1,
                output_tokens: 2,
            },
        });
        same_bytes(&Selection {
            candidates: vec![RouteCandidate {
                provider: "p".into(),
                model: "m".into(),
                score: 1.0,
                eligible: true,
                reason: "r".into(),
            }],
            category: "general",
            model: Some("m".into()),
            provider: Some("p".into()),
            reason: "best_score",
            request_id: id,
        });
        same_bytes(&ProvidersStatus {
            providers: vec![ProviderStatus {
                available: true,
                circuit: "closed",
                kind: "mock".into(),
                models: vec![ModelPrices {
                    input_usd_per_mtok: 1.0,
                    name: "m".into(),
                    output_usd_per_mtok: 2.0,
                }],
                name: "p".into(),
                priority: 1,
                requests: 2,
                timeout_ms: 3,
            }],
        });
        same_bytes(&BudgetStatus {
            providers: vec![BudgetRow {
                exceeded: 0,
                free: false,
                per_request_usd: 0.1,
                percent_used: 2.5,
                period: "2027-01".into(),
                provider: "p".into(),
                remaining_usd: Some(9.75),
                requests: 2,
                reserved_usd: 0.0,
                spent_usd: 0.25,
                total_usd: 10.0,
            }],
        });
        same_bytes(&BudgetCheck {
            checks: vec![AffordCheck {
                can_afford: true,
                per_request_usd: 0.0,
                provider: "p".into(),
                remaining_usd: None,
            }],
            estimated_cost_usd: 0.01,
        });
        same_bytes(&ProvidersHealth {
            next_position: 1,
            providers: vec![ProviderHealthRow {
                available: false,
                history: None,
                provider: "p".into(),
                retry_at: Some("2027-01-15T08:00:00+00:00".into()),
                state: "open",
            }],
        });
        same_bytes(&ProvidersCosts {
            next_position: 2,
            period: "2027-01".into(),
            providers: vec![ProviderCost {
                period: "2027-01".into(),
                provider: "p".into(),
                spend: Some(tutorlog_projections::spend::PeriodSpend::default()),
            }],
        });
        same_bytes(&BenchmarksAnswer {
            category: Some("coding".into()),
            max_age_hours: 24,
            next_position: 3,
            results: vec![BenchmarkResult {
                provider: "p".into(),
                category: "coding".into(),
                model: "m".into(),
                run_id: id,
                tests: 1,
                successes: 1,
                success_rate: 1.0,
                mean_quality: 90.0,
                mean_latency_micros: 1.0,
                cost_micros: 2,
                recorded_at: chrono::Utc::now(),
                run_completed: true,
            }],
            running: Some(id),
        });
        same_bytes(&FeedbackRecordedAnswer {
            position: 4,
            request_id: id,
        });
        same_bytes(&BenchmarkRunStarted {
            run_id: id,
            status: "started",
        });
    }
}
