//! The mock's HTTP side: routes, the fault draw, pacing.

use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, State as Shared},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
    Json, Router,
};
use tokio::{net::TcpListener, sync::watch};

use super::{
    answer::{self, Meta, Plan, Request},
    Fault, MockConfig, State, HANG_MAX,
};

/// Largest request body read.
const REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Independent draw streams per request.
const DRAW_FAULT: u64 = 0;
const DRAW_JITTER: u64 = 1;

/// Serves until `stopping` turns true (or its sender is dropped).
pub(super) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // TCP_NODELAY: without it a keep-alive client waits ~40 ms on delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "mock-provider: cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            // Err: the handle was dropped, which also means stop.
            if stopping.wait_for(|stop| *stop).await.is_err() {
                tracing::debug!("mock-provider handle dropped; stopping");
            }
        })
        .await
}

fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        // Clients configured with a base URL lacking `/v1`.
        .route("/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/mock/stats", get(stats))
        .route("/mock/config", get(config).post(configure))
        .layer(DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .layer(axum::middleware::map_response(label))
        .with_state(state)
}

async fn label(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-tutorlog-mock", HeaderValue::from_static("1"));
    response
}

async fn chat(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    let number = state.requests.fetch_add(1, Ordering::Relaxed);
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return reject(
                &state,
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {error}"),
                None,
            )
        }
    };
    if request.max_tokens() == Some(0) {
        return reject(
            &state,
            StatusCode::BAD_REQUEST,
            "max_tokens must be at least 1",
            Some("integer_below_min_value"),
        );
    }
    if !state.models.is_empty() && !state.models.contains(&request.model) {
        return reject(
            &state,
            StatusCode::NOT_FOUND,
            &format!("the model `{}` does not exist", request.model),
            Some("model_not_found"),
        );
    }
    let fault = pick_fault(&state, number);
    delay(&state, number).await;
    let plan = answer::plan(&request, state.prompt_tokens, state.completion_tokens);
    let meta = Meta {
        id: format!("chatcmpl-mock-{number}"),
        model: request.model.clone(),
        created: unix_seconds(),
    };
    match fault {
        None => success(&state, &request, &meta, plan),
        Some(Fault::Drip) => drip(state, &request, meta, plan),
        Some(fault) => {
            state.errors.fetch_add(1, Ordering::Relaxed);
            failure(&state, fault, &request, &meta, plan).await
        }
    }
}

fn pick_fault(state: &State, number: u64) -> Option<Fault> {
    let rate = f64::from_bits(state.error_rate_bits.load(Ordering::Acquire));
    if rate <= 0.0 || answer::unit(state.seed, number, DRAW_FAULT) >= rate {
        return None;
    }
    Some(Fault::from_index(state.fault.load(Ordering::Relaxed)))
}

async fn delay(state: &State, number: u64) {
    let latency = state.latency_ms.load(Ordering::Relaxed);
    let jitter = state.jitter_ms.load(Ordering::Relaxed);
    let extra = if jitter == 0 {
        0
    } else {
        answer::draw(state.seed, number, DRAW_JITTER) % (jitter + 1)
    };
    if latency + extra > 0 {
        tokio::time::sleep(Duration::from_millis(latency + extra)).await;
    }
}

fn served(state: &State, plan: Plan) {
    state
        .prompt_tokens_served
        .fetch_add(plan.prompt_tokens, Ordering::Relaxed);
    state
        .completion_tokens_served
        .fetch_add(u64::from(plan.completion_tokens), Ordering::Relaxed);
}

fn success(state: &State, request: &Request, meta: &Meta, plan: Plan) -> Response {
    served(state, plan);
    if request.stream {
        sse(Body::from(answer::stream(
            meta,
            plan,
            request.include_usage(),
        )))
    } else {
        json(StatusCode::OK, answer::completion(meta, plan))
    }
}

/// A correct answer paced one token per `drip_ms`; counted once fully sent.
fn drip(state: Arc<State>, request: &Request, meta: Meta, plan: Plan) -> Response {
    let pace = Duration::from_millis(state.drip_ms.load(Ordering::Relaxed));
    let include_usage = request.include_usage();
    let pieces: Vec<Bytes> = if request.stream {
        answer::pieces(plan, include_usage)
            .map(|piece| {
                let mut out = Vec::new();
                answer::event(&mut out, &meta, plan, include_usage, piece);
                Bytes::from(out)
            })
            .collect()
    } else {
        let whole = answer::completion(&meta, plan);
        let size = whole.len().div_ceil(plan.completion_tokens.max(1) as usize);
        whole
            .chunks(size.max(1))
            .map(Bytes::copy_from_slice)
            .collect()
    };
    let stream = futures::stream::unfold(
        (pieces.into_iter(), state, true),
        move |(mut pieces, state, first)| async move {
            let piece = pieces.next()?;
            if !first {
                let mut stopping = state.stopping.clone();
                tokio::select! {
                    () = tokio::time::sleep(pace) => {}
                    _ = stopping.wait_for(|stop| *stop) => return None,
                }
            }
            if pieces.as_slice().is_empty() {
                served(&state, plan);
            }
            Some((Ok::<_, Infallible>(piece), (pieces, state, false)))
        },
    );
    let body = Body::from_stream(stream);
    if request.stream {
        sse(body)
    } else {
        json_body(StatusCode::OK, body)
    }
}

async fn failure(
    state: &State,
    fault: Fault,
    request: &Request,
    meta: &Meta,
    plan: Plan,
) -> Response {
    match fault {
        Fault::Http500 => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            answer::error(
                "injected fault: internal server error",
                "server_error",
                None,
            ),
        ),
        Fault::Http429 => {
            let mut response = json(
                StatusCode::TOO_MANY_REQUESTS,
                answer::error(
                    "injected fault: rate limit reached, retry after 1 s",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Fault::Malformed if request.stream => sse(Body::from(format!(
            "data: {{\"id\": \"{}\", \"choices\": [{}]}}\n\n",
            meta.id,
            answer::LABEL
        ))),
        Fault::Malformed => json(
            StatusCode::OK,
            format!(
                "{{\"id\": \"{}\", \"object\": \"chat.completion\", \"choices\": [{}",
                meta.id,
                answer::LABEL
            )
            .into_bytes(),
        ),
        Fault::Truncate if request.stream => sse(Body::from(answer::truncated_stream(meta, plan))),
        Fault::Truncate => {
            let mut whole = answer::completion(meta, plan);
            whole.truncate(whole.len() / 2);
            json(StatusCode::OK, whole)
        }
        Fault::Hang => {
            let mut stopping = state.stopping.clone();
            // Ok or Err, timed out or released: answer only so the server can stop.
            if tokio::time::timeout(HANG_MAX, stopping.wait_for(|stop| *stop))
                .await
                .is_err()
            {
                tracing::debug!("mock-provider: a hanging request reached HANG_MAX");
            }
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                answer::error(
                    "injected fault: hung until the mock stopped",
                    "server_error",
                    None,
                ),
            )
        }
        // Drip is a success; `chat` sends it before calling here.
        Fault::Drip => success(state, request, meta, plan),
    }
}

fn reject(state: &State, status: StatusCode, message: &str, code: Option<&str>) -> Response {
    state.errors.fetch_add(1, Ordering::Relaxed);
    json(
        status,
        answer::error(message, "invalid_request_error", code),
    )
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    json_body(status, Body::from(body))
}

fn json_body(status: StatusCode, body: Body) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn sse(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn models(Shared(state): Shared<Arc<State>>) -> Response {
    let created = unix_seconds();
    let names: Vec<&str> = if state.models.is_empty() {
        vec!["mock"]
    } else {
        state.models.iter().map(String::as_str).collect()
    };
    let data: Vec<serde_json::Value> = names
        .into_iter()
        .map(|id| {
            serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "tutorlog-mock"})
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn stats(Shared(state): Shared<Arc<State>>) -> Response {
    Json(state.stats()).into_response()
}

async fn config(Shared(state): Shared<Arc<State>>) -> Response {
    Json(state.config()).into_response()
}

async fn configure(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    let change: MockConfig = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(error) => {
            return json(
                StatusCode::BAD_REQUEST,
                answer::error(
                    &format!("invalid config: {error}"),
                    "invalid_request_error",
                    None,
                ),
            )
        }
    };
    match state.configure(&change) {
        Ok(now) => {
            tracing::info!(?change, "mock-provider: config changed");
            Json(now).into_response()
        }
        Err(error) => json(
            StatusCode::BAD_REQUEST,
            answer::error(&error.to_string(), "invalid_request_error", None),
        ),
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
