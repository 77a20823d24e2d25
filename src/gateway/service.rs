//! The gateway's call path: one request from "here are messages" to "here is the
//! answer, and every dollar and decision is in the log".
//!
//! 1. **Check** the request (messages, `max_tokens`) and **resolve** `model`:
//!    `auto` (every provider), `provider/model` (pinned), or a bare model name (the
//!    providers that serve it).
//! 2. **Estimate** each candidate's cost as an upper bound: input tokens ≤ bytes
//!    of the messages (a token is at least one byte) plus a few per message, output
//!    tokens ≤ `max_tokens` (always sent upstream), priced per million tokens.
//! 3. **Route** ([`tutorlog_actors::providers::router`]) on what can be read
//!    without waiting: circuit views, budget snapshots, benchmark quality, recent
//!    success and latency. The decision is recorded as `provider.selected`.
//! 4. For each candidate in order: take a circuit **permit** (atomics), **reserve**
//!    the estimate (strict mode: durable first), **call** the provider with its
//!    timeout, then **commit** the actual cost (or release) and report the outcome
//!    to the circuit — both sent without waiting. A retryable failure (timeout,
//!    429, 5xx, connection, malformed answer) fails over to the next candidate.
//! 5. **Record** `provider.query.started` per attempt and `execution.recorded` on
//!    stream `request-{id}` (correlation id = request id), off the response path.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tutorlog_actors::{
    providers::{
        budget::Limits,
        budget_service::{
            BudgetError, BudgetHandle, Reservation, ReservationMode, ReservationRequest,
        },
        category,
        circuit::{CallOutcome, CircuitPolicy},
        circuit_service::CircuitHandle,
        circuit_view::Permit,
        router::{self, CandidateInput, RouteDecision, RouteRequest},
    },
    Clock,
};
use tutorlog_schemas::{
    events::{
        BudgetLimitKind, CallSource, ErrorKind, Event, ExecutionRecorded, ProviderQueryStarted,
        ProviderSelected,
    },
    NewEvent,
};
use tutorlog_store::{AppendCallback, EventStore, ExpectedRevision};
use uuid::Uuid;

use super::{
    adapters::{self, Adapter},
    types::{
        ChatMessage, ChatRequest, ChatResponse, EventStream, ProviderError, StreamEvent, Usage,
    },
};
use crate::config::{Config, ProviderConfig};

/// Most messages in one request.
pub const MESSAGES_MAX: usize = 256;
/// Largest total message text in one request, bytes.
pub const MESSAGE_BYTES_MAX: usize = 512 * 1024;
/// Tokens counted per message on top of its text (role and framing).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Sessions remembered for continuity at most.
pub const SESSIONS_MAX: usize = 100_000;
/// Calls a provider must have had before its success rate counts in routing.
pub const ROUTING_MIN_SAMPLES: u64 = 20;
/// Request recordings in flight at most (each one append); more waits.
pub const RECORDINGS_IN_FLIGHT_MAX: usize = 4_096;

/// Calls in flight at most: a bound no daemon reaches, there so that shutdown can
/// wait for every running call by taking all of them.
const CALLS_IN_FLIGHT_MAX: u32 = 1 << 20;

/// How long shutdown waits for running calls (each attempt is bounded by its
/// provider's timeout, so this is only reached with many slow failovers).
const SHUTDOWN_CALLS_WAIT: Duration = Duration::from_secs(60);

/// A model's prices.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// Model name.
    pub name: String,
    /// USD per million input tokens (= micro-USD per token).
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    pub output_usd_per_mtok: f64,
}

impl ModelPrice {
    /// Cost of a call in micro-USD, rounded up.
    pub fn cost_micros(&self, usage: Usage) -> u64 {
        let micros = usage.input_tokens as f64 * self.input_usd_per_mtok
            + usage.output_tokens as f64 * self.output_usd_per_mtok;
        // Saturates at u64::MAX for absurd inputs; NaN cannot occur (prices are
        // validated finite and non-negative).
        micros.ceil() as u64
    }
}

/// Upper bound of a request's input tokens: one per byte plus framing.
pub fn input_tokens_upper_bound(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| (m.content.len() + m.role.len()) as u64 + TOKENS_PER_MESSAGE)
        .sum::<u64>()
        + 3
}

/// Rolling success rate and latency of a provider, for routing.
#[derive(Debug, Default)]
struct ProviderStats {
    calls: AtomicU64,
    /// Success rate × 1e6, exponentially weighted (α = 1/16).
    success_ppm: AtomicU64,
    /// Latency in µs, exponentially weighted (α = 1/16).
    latency_micros: AtomicU64,
}

impl ProviderStats {
    fn record(&self, success: bool, latency_micros: u64) {
        let first = self.calls.fetch_add(1, Ordering::AcqRel) == 0;
        let sample = if success { 1_000_000 } else { 0 };
        let ewma = |old: u64, new: u64| {
            if first {
                new
            } else {
                old - old / 16 + new / 16
            }
        };
        let _ = self
            .success_ppm
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(ewma(old, sample))
            });
        if success {
            let _ = self
                .latency_micros
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                    Some(if old == 0 {
                        latency_micros
                    } else {
                        ewma(old, latency_micros)
                    })
                });
        }
    }

    /// `None` until [`ROUTING_MIN_SAMPLES`] calls: a few early failures are the
    /// circuit breaker's business, not a reason to reorder providers.
    fn success_rate(&self) -> Option<f64> {
        (self.calls.load(Ordering::Acquire) >= ROUTING_MIN_SAMPLES)
            .then(|| self.success_ppm.load(Ordering::Acquire) as f64 / 1e6)
    }

    fn latency_ms(&self) -> Option<f64> {
        let micros = self.latency_micros.load(Ordering::Acquire);
        (micros > 0).then(|| micros as f64 / 1000.0)
    }
}

/// What a config reload may change about a provider (SIGHUP or
/// `POST /api/v1/admin/config/reload`); read per request, swapped whole.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    /// Configured priority (lower first).
    pub priority: u32,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Models and prices; empty means "any model, free".
    pub models: Vec<ModelPrice>,
    /// Digest of the price table, recorded with every commit.
    pub price_version: String,
}

impl ProviderSettings {
    /// The settings in a provider's configuration.
    pub fn from_config(provider: &ProviderConfig) -> Self {
        let models: Vec<ModelPrice> = provider
            .models
            .iter()
            .map(|m| ModelPrice {
                name: m.name.clone(),
                input_usd_per_mtok: m.input_usd_per_mtok,
                output_usd_per_mtok: m.output_usd_per_mtok,
            })
            .collect();
        ProviderSettings {
            priority: provider.priority,
            timeout: Duration::from_millis(provider.timeout_ms),
            price_version: price_version(&models),
            models,
        }
    }

    /// The price of `model` (free when the provider lists no models).
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if self.models.is_empty() {
            return Some(ModelPrice {
                name: model.to_owned(),
                input_usd_per_mtok: 0.0,
                output_usd_per_mtok: 0.0,
            });
        }
        self.models.iter().find(|m| m.name == model).cloned()
    }

    /// The model `auto` uses: the first listed.
    pub fn default_model(&self) -> Option<&str> {
        self.models.first().map(|m| m.name.as_str())
    }
}

/// One configured provider with its adapter, budget and circuit.
pub struct ProviderRuntime {
    /// Name.
    pub name: String,
    /// Protocol kind.
    pub kind: String,
    /// The wire protocol.
    pub adapter: Arc<dyn Adapter>,
    /// Its budget actor.
    pub budget: BudgetHandle,
    /// Its circuit actor.
    pub circuit: CircuitHandle,
    settings: ArcSwap<ProviderSettings>,
    stats: ProviderStats,
}

impl std::fmt::Debug for ProviderRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRuntime")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl ProviderRuntime {
    /// The settings in force now.
    pub fn settings(&self) -> Arc<ProviderSettings> {
        self.settings.load_full()
    }

    /// Applies reloaded settings: prices and priority from the next request on,
    /// budget limits recorded (`budget.limit.changed`) before this returns, the
    /// breaker policy from its next decision, a priority change recorded as
    /// `provider.priority.changed`.
    pub async fn apply(
        &self,
        provider: &ProviderConfig,
    ) -> Result<(), tutorlog_actors::CommandError> {
        let next = ProviderSettings::from_config(provider);
        let previous = self.settings.swap(Arc::new(next.clone()));
        self.budget
            .set_limits(Limits {
                monthly_micros: usd_to_micros(provider.monthly_budget_usd),
                per_request_micros: usd_to_micros(provider.per_request_budget_usd),
            })
            .await?;
        self.circuit.set_policy(circuit_policy(provider));
        if previous.priority != next.priority {
            self.circuit.record_priority(next.priority);
        }
        Ok(())
    }
}

/// Micro-USD from a USD amount, rounded down (limits never grow by rounding).
pub fn usd_to_micros(usd: f64) -> u64 {
    (usd * 1e6).floor().max(0.0) as u64
}

/// Digest of a provider's price table.
pub fn price_version(models: &[ModelPrice]) -> String {
    let mut hasher = blake3::Hasher::new();
    for model in models {
        hasher.update(model.name.as_bytes());
        hasher.update(&model.input_usd_per_mtok.to_le_bytes());
        hasher.update(&model.output_usd_per_mtok.to_le_bytes());
    }
    hasher.finalize().to_hex()[..16].to_owned()
}

/// What the gateway is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Request id (correlation id of every event it causes).
    pub request_id: Uuid,
    /// Where it came from.
    pub source: CallSource,
    /// `auto`, `provider/model` or a bare model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Most output tokens (default: `gateway.default_max_tokens`).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Attributed user.
    pub user_id: Option<String>,
    /// Session (for continuity and per-session spend).
    pub session_id: Option<String>,
}

impl Call {
    /// A call with defaults for everything but the messages.
    pub fn new(source: CallSource, model: &str, messages: Vec<ChatMessage>) -> Self {
        Call {
            request_id: Uuid::now_v7(),
            source,
            model: model.to_owned(),
            messages,
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: Vec::new(),
            user_id: None,
            session_id: None,
        }
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The request.
    pub request_id: Uuid,
    /// Provider that answered.
    pub provider: String,
    /// Model that answered.
    pub model: String,
    /// The text.
    pub content: String,
    /// Why it stopped.
    pub finish_reason: Option<String>,
    /// Token usage (estimated when the provider reported none).
    pub usage: Usage,
    /// Cost committed, micro-USD.
    pub cost_micros: u64,
    /// Routing category.
    pub category: &'static str,
    /// Providers tried.
    pub attempts: u32,
}

/// Why the gateway could not answer. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The request is malformed (400).
    #[error("{field}: {message}")]
    BadRequest {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No configured provider serves the model (404).
    #[error("model {0:?} is not served by any configured provider; GET /v1/models lists them")]
    ModelNotFound(String),
    /// No provider is configured (503).
    #[error("no providers are configured: add a [[providers]] entry to the config file (see tutorlog.example.toml)")]
    NoProviders,
    /// Every candidate's monthly budget is used up (402).
    #[error("{0}")]
    BudgetExceeded(String),
    /// The request's estimate is above every candidate's per-request limit (429).
    #[error("{0}")]
    PerRequestLimit(String),
    /// No candidate is healthy (open circuits) (503).
    #[error("{0}")]
    NoHealthyProvider(String),
    /// The last provider tried failed (502, or 504 on a timeout).
    #[error("provider {provider}: {error}")]
    Provider {
        /// Provider.
        provider: String,
        /// Its error.
        error: ProviderError,
    },
    /// A budget actor or the log failed (503).
    #[error("{0}")]
    Unavailable(String),
}

/// Options from `[gateway]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayOptions {
    /// Reservation durability.
    pub mode: ReservationMode,
    /// `max_tokens` when the client sets none.
    pub default_max_tokens: u32,
    /// Largest `max_tokens` accepted.
    pub max_tokens_limit: u32,
    /// Record messages and answers in `execution.recorded`.
    pub record_content: bool,
    /// Session continuity lifetime.
    pub session_ttl: Duration,
    /// How long a commit, release or circuit outcome may wait in its actor to
    /// share the next append (`store.linger_micros`, the same window the embedded
    /// log holds deferred writes for).
    pub hold: Duration,
}

impl GatewayOptions {
    /// The options in `config`.
    pub fn from_config(config: &Config) -> Self {
        GatewayOptions {
            mode: ReservationMode::parse(&config.gateway.reservations)
                .unwrap_or(ReservationMode::Strict),
            default_max_tokens: config.gateway.default_max_tokens,
            max_tokens_limit: config.gateway.max_tokens_limit,
            record_content: config.gateway.record_content,
            session_ttl: Duration::from_secs(config.gateway.session_ttl_secs),
            hold: Duration::from_micros(config.store.linger_micros),
        }
    }
}

#[derive(Debug, Clone)]
struct Sticky {
    provider: String,
    category: &'static str,
    at: Instant,
}

struct Inner {
    providers: Vec<Arc<ProviderRuntime>>,
    store: Arc<dyn EventStore>,
    options: GatewayOptions,
    sessions: Mutex<HashMap<String, Sticky>>,
    /// Latest benchmark quality per (provider, category).
    /// Latest benchmark quality by provider, then category: nested so that the
    /// hot path looks it up with the names it has, without building a key.
    benchmarks: ArcSwap<HashMap<String, HashMap<String, f64>>>,
    recordings: Arc<Semaphore>,
    /// One permit per running call (whole or streamed), held until its cost is
    /// committed or released. Shutdown takes them all, then closes it: a call
    /// still running when HTTP stopped (its client hung up; a benchmark run)
    /// settles before the budget and circuit actors stop, and none starts after.
    calls: Arc<Semaphore>,
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("providers", &self.inner.providers)
            .finish()
    }
}

/// The routing decision for a call, with everything the attempts need.
struct Plan {
    call: Call,
    category: &'static str,
    max_tokens: u32,
    input_tokens: u64,
    /// (provider index, model, price, estimate) per input candidate.
    candidates: Vec<(usize, String, ModelPrice, u64)>,
    decision: RouteDecision,
    started: Instant,
    events: Vec<Event>,
}

/// A provider index, model and price a requested model resolved to.
type Resolved = (usize, String, ModelPrice);

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// Try the next candidate; the error is why this one did not serve.
    Next(GatewayError),
    /// Stop: no other candidate would do better.
    Stop(GatewayError),
}

impl Gateway {
    /// Builds the gateway for `config.providers`: an adapter, a budget actor and a
    /// circuit actor each (loading their streams).
    pub async fn start(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Gateway> {
        let options = GatewayOptions::from_config(config);
        let client = adapters::http_client();
        let mut providers = Vec::new();
        for provider in &config.providers {
            providers.push(Arc::new(
                start_provider(provider, &options, client.clone(), &store, &clock).await?,
            ));
        }
        Ok(Gateway::from_parts(providers, store, options))
    }

    /// A gateway over already-started providers (tests, benchmarks).
    pub fn from_parts(
        providers: Vec<Arc<ProviderRuntime>>,
        store: Arc<dyn EventStore>,
        options: GatewayOptions,
    ) -> Gateway {
        Gateway {
            inner: Arc::new(Inner {
                providers,
                store,
                options,
                sessions: Mutex::new(HashMap::new()),
                benchmarks: ArcSwap::from_pointee(HashMap::new()),
                recordings: Arc::new(Semaphore::new(RECORDINGS_IN_FLIGHT_MAX)),
                calls: Arc::new(Semaphore::new(CALLS_IN_FLIGHT_MAX as usize)),
            }),
        }
    }

    /// The configured providers, in configuration order.
    pub fn providers(&self) -> &[Arc<ProviderRuntime>] {
        &self.inner.providers
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderRuntime>> {
        self.inner.providers.iter().find(|p| p.name == name)
    }

    /// The reservation mode.
    pub fn options(&self) -> &GatewayOptions {
        &self.inner.options
    }

    /// Sets the latest benchmark quality of `provider` for `category` (the
    /// benchmark scheduler calls this as results come in).
    pub fn set_benchmark_quality(&self, provider: &str, category: &str, quality: f64) {
        self.inner.benchmarks.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(provider.to_owned())
                .or_default()
                .insert(category.to_owned(), quality);
            next
        });
    }

    /// Routes `call` without calling anything: the decision a real call would
    /// start from (for `POST /api/v1/providers/select`). Recorded like a call's.
    pub async fn select(&self, call: Call) -> Result<(RouteDecision, &'static str), GatewayError> {
        let plan = self.plan(call)?;
        let decision = plan.decision.clone();
        let category = plan.category;
        self.record(plan, Vec::new());
        Ok((decision, category))
    }

    /// Answers `call` whole.
    pub async fn complete(&self, call: Call) -> Result<Answer, GatewayError> {
        let _running = self.enter()?;
        let mut plan = self.plan(call)?;
        let mut last_error = None;
        let order = plan.decision.order.clone();
        for (attempt, &index) in order.iter().enumerate() {
            match self
                .attempt_complete(&mut plan, index, attempt as u32 + 1)
                .await
            {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Next(error) => keep_most_telling(&mut last_error, error),
                Attempt::Stop(error) => {
                    self.finish_failed(plan, &error);
                    return Err(error);
                }
            }
        }
        let error = last_error.unwrap_or_else(|| self.nothing_eligible(&plan));
        self.finish_failed(plan, &error);
        Err(error)
    }

    /// Answers `call` as a stream. Failover happens only before the first byte;
    /// the returned stream commits the cost and records the call when it ends or is
    /// dropped.
    pub async fn stream(&self, call: Call) -> Result<AnswerStream, GatewayError> {
        let running = self.enter()?;
        let mut plan = self.plan(call)?;
        let mut last_error = None;
        let order = plan.decision.order.clone();
        for (attempt, &index) in order.iter().enumerate() {
            let number = attempt as u32 + 1;
            let (provider, model, price, estimate) = self.candidate(&plan, index);
            let permit = match self.admit(&mut plan, &provider, &model, estimate).await {
                Ok(permit) => permit,
                Err(Attempt::Next(error)) => {
                    keep_most_telling(&mut last_error, error);
                    continue;
                }
                Err(Attempt::Stop(error) | Attempt::Done(error)) => {
                    self.finish_failed(plan, &error);
                    return Err(error);
                }
            };
            plan.events
                .push(started_event(&plan, &provider, &model, number));
            let request = chat_request(&plan, &model);
            let call_started = Instant::now();
            match provider
                .adapter
                .stream(&request, provider.settings().timeout)
                .await
            {
                Ok(events) => {
                    return Ok(AnswerStream {
                        inner: events,
                        state: Some(StreamState {
                            gateway: self.clone(),
                            plan,
                            provider,
                            model,
                            price,
                            estimate,
                            permit: Some(permit),
                            call_started,
                            attempts: number,
                            text: String::new(),
                            usage: None,
                            finish_reason: None,
                            _running: running,
                        }),
                    })
                }
                Err(error) => {
                    let outcome =
                        self.failed(&provider, &model, &plan, permit, call_started, &error);
                    match outcome {
                        Attempt::Next(e) => keep_most_telling(&mut last_error, e),
                        Attempt::Stop(e) | Attempt::Done(e) => {
                            self.finish_failed(plan, &e);
                            return Err(e);
                        }
                    }
                }
            }
        }
        let error = last_error.unwrap_or_else(|| self.nothing_eligible(&plan));
        self.finish_failed(plan, &error);
        Err(error)
    }

    /// Waits until every recording, commit, release and circuit outcome sent so
    /// far is durable.
    pub async fn flush(&self) {
        // Someone waits: what the log holds back for company goes now.
        self.inner.store.expedite();
        let all = u32::try_from(RECORDINGS_IN_FLIGHT_MAX).unwrap_or(u32::MAX);
        if let Ok(permits) = self.inner.recordings.acquire_many(all).await {
            drop(permits);
        }
        for provider in &self.inner.providers {
            provider.budget.flush().await;
            provider.circuit.flush().await;
        }
    }

    /// Whether [`Gateway::shutdown`] has begun (calls are refused from then on).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.calls.is_closed()
    }

    /// A permit for one call; refused once shutdown has begun.
    fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, GatewayError> {
        Arc::clone(&self.inner.calls)
            .try_acquire_owned()
            .map_err(|_| GatewayError::Unavailable("the daemon is shutting down".into()))
    }

    /// Waits (bounded) for running calls to settle and refuses new ones, then
    /// [`Gateway::flush`], then stops the budget and circuit actors.
    pub async fn shutdown(&self) {
        let calls = &self.inner.calls;
        match tokio::time::timeout(SHUTDOWN_CALLS_WAIT, calls.acquire_many(CALLS_IN_FLIGHT_MAX))
            .await
        {
            Ok(Ok(all)) => all.forget(),
            Ok(Err(_closed)) => {}
            Err(_elapsed) => tracing::warn!(
                running = CALLS_IN_FLIGHT_MAX as usize - calls.available_permits(),
                "calls still running after {SHUTDOWN_CALLS_WAIT:?}; stopping without them \
                 (strict reservations stay counted as spent)"
            ),
        }
        calls.close();
        self.flush().await;
        for provider in &self.inner.providers {
            provider.budget.shutdown().await;
            provider.circuit.shutdown().await;
        }
    }

    fn candidate(
        &self,
        plan: &Plan,
        index: usize,
    ) -> (Arc<ProviderRuntime>, String, ModelPrice, u64) {
        let (provider, model, price, estimate) = &plan.candidates[index];
        (
            Arc::clone(&self.inner.providers[*provider]),
            model.clone(),
            price.clone(),
            *estimate,
        )
    }

    fn plan(&self, call: Call) -> Result<Plan, GatewayError> {
        let started = Instant::now();
        if self.inner.providers.is_empty() {
            return Err(GatewayError::NoProviders);
        }
        check_messages(&call.messages)?;
        let max_tokens = call
            .max_tokens
            .unwrap_or(self.inner.options.default_max_tokens);
        if max_tokens == 0 || max_tokens > self.inner.options.max_tokens_limit {
            return Err(GatewayError::BadRequest {
                field: "max_tokens",
                message: format!(
                    "must be between 1 and {}",
                    self.inner.options.max_tokens_limit
                ),
            });
        }
        let (pinned, resolved) = self.resolve(&call.model)?;
        let input_tokens = input_tokens_upper_bound(&call.messages);
        let last_user = call
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map_or("", |m| m.content.as_str());
        let category = category::detect(last_user);
        let benchmarks = self.inner.benchmarks.load();
        let mut candidates = Vec::with_capacity(resolved.len());
        let mut inputs = Vec::with_capacity(resolved.len());
        for (index, model, price) in resolved {
            let provider = &self.inner.providers[index];
            let estimate = price.cost_micros(Usage {
                input_tokens,
                output_tokens: u64::from(max_tokens),
            });
            inputs.push(CandidateInput {
                provider: provider.name.clone(),
                model: model.clone(),
                priority: provider.settings().priority,
                circuit_allows: provider.circuit.allows(),
                circuit_phase: provider.circuit.phase().as_str(),
                affordable: provider.budget.snapshot().can_afford(estimate),
                estimate_micros: estimate,
                quality: benchmarks
                    .get(provider.name.as_str())
                    .and_then(|by_category| by_category.get(category))
                    .copied(),
                success_rate: provider.stats.success_rate(),
                latency_ms: provider.stats.latency_ms(),
            });
            candidates.push((index, model, price, estimate));
        }
        let sticky = call.session_id.as_ref().and_then(|session| {
            let sessions = self.inner.sessions.lock();
            sessions
                .get(session)
                .filter(|s| s.at.elapsed() < self.inner.options.session_ttl)
                .map(|s| (s.provider.clone(), s.category))
        });
        let decision = router::route(
            RouteRequest {
                category,
                pinned,
                sticky: sticky.as_ref().map(|(p, c)| (p.as_str(), *c)),
            },
            &inputs,
        );
        let first = decision.order.first().map(|&i| &inputs[i]);
        let selected = Event::ProviderSelected(ProviderSelected {
            request_id: call.request_id,
            session_id: call.session_id.clone(),
            user_id: call.user_id.clone(),
            category: category.to_owned(),
            requested_model: call.model.clone(),
            candidates: decision.candidates.clone(),
            chosen_provider: first.map(|c| c.provider.clone()),
            chosen_model: first.map(|c| c.model.clone()),
            reason: decision.reason.to_owned(),
        });
        Ok(Plan {
            call,
            category,
            max_tokens,
            input_tokens,
            candidates,
            decision,
            started,
            events: vec![selected],
        })
    }

    /// `(pinned, [(provider index, model, price)])` for a requested model.
    fn resolve(&self, requested: &str) -> Result<(bool, Vec<Resolved>), GatewayError> {
        let providers = &self.inner.providers;
        if requested.is_empty() || requested == "auto" {
            let all = providers
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let settings = p.settings();
                    let model = settings.default_model().unwrap_or("default").to_owned();
                    settings.price(&model).map(|price| (i, model, price))
                })
                .collect();
            return Ok((false, all));
        }
        if let Some((name, model)) = requested.split_once('/') {
            if let Some(index) = providers.iter().position(|p| p.name == name) {
                return match providers[index].settings().price(model) {
                    Some(price) => Ok((true, vec![(index, model.to_owned(), price)])),
                    None => Err(GatewayError::ModelNotFound(requested.to_owned())),
                };
            }
        }
        let serving: Vec<_> = providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.settings()
                    .models
                    .iter()
                    .find(|m| m.name == requested)
                    .map(|price| (i, requested.to_owned(), price.clone()))
            })
            .collect();
        if serving.is_empty() {
            return Err(GatewayError::ModelNotFound(requested.to_owned()));
        }
        Ok((serving.len() == 1, serving))
    }

    /// Circuit permit and budget reservation for one attempt.
    async fn admit(
        &self,
        plan: &mut Plan,
        provider: &ProviderRuntime,
        model: &str,
        estimate: u64,
    ) -> Result<Permit, Attempt<GatewayError>> {
        let permit = provider.circuit.try_acquire().map_err(|rejected| {
            Attempt::Next(GatewayError::NoHealthyProvider(format!(
                "provider {}: {rejected}",
                provider.name
            )))
        })?;
        let reservation = provider
            .budget
            .reserve(ReservationRequest {
                request_id: plan.call.request_id,
                model: model.to_owned(),
                estimate_micros: estimate,
                user_id: plan.call.user_id.clone(),
                session_id: plan.call.session_id.clone(),
            })
            .await;
        match reservation {
            Ok(Reservation::Reserved { .. }) => Ok(permit),
            Ok(Reservation::Exceeded(exceeded)) => {
                let message = match exceeded.limit {
                    BudgetLimitKind::Monthly => format!(
                        "provider {}: monthly budget exhausted for {} ({} of {} micro-USD left, this request needs up to {})",
                        provider.name, exceeded.period, exceeded.remaining_micros, exceeded.limit_micros, exceeded.estimate_micros
                    ),
                    BudgetLimitKind::PerRequest => format!(
                        "provider {}: this request may cost up to {} micro-USD, above the per-request limit of {}; lower max_tokens or shorten the messages",
                        provider.name, exceeded.estimate_micros, exceeded.limit_micros
                    ),
                };
                Err(Attempt::Next(match exceeded.limit {
                    BudgetLimitKind::Monthly => GatewayError::BudgetExceeded(message),
                    BudgetLimitKind::PerRequest => GatewayError::PerRequestLimit(message),
                }))
            }
            Err(BudgetError::Rejected(rejection)) => Err(Attempt::Stop(GatewayError::BadRequest {
                field: "request_id",
                message: rejection.to_string(),
            })),
            Err(BudgetError::Command(error)) => Err(Attempt::Stop(GatewayError::Unavailable(
                format!("provider {}: budget unavailable: {error}", provider.name),
            ))),
        }
    }

    async fn attempt_complete(
        &self,
        plan: &mut Plan,
        index: usize,
        number: u32,
    ) -> Attempt<Answer> {
        let (provider, model, price, estimate) = self.candidate(plan, index);
        let permit = match self.admit(plan, &provider, &model, estimate).await {
            Ok(permit) => permit,
            Err(Attempt::Next(e)) => return Attempt::Next(e),
            Err(Attempt::Stop(e) | Attempt::Done(e)) => return Attempt::Stop(e),
        };
        plan.events
            .push(started_event(plan, &provider, &model, number));
        let request = chat_request(plan, &model);
        let call_started = Instant::now();
        match provider
            .adapter
            .complete(&request, provider.settings().timeout)
            .await
        {
            Ok(response) => Attempt::Done(self.succeeded(
                plan,
                &provider,
                &model,
                &price,
                estimate,
                permit,
                call_started,
                response,
                number,
            )),
            Err(error) => {
                match self.failed(&provider, &model, plan, permit, call_started, &error) {
                    Attempt::Next(e) => Attempt::Next(e),
                    Attempt::Stop(e) | Attempt::Done(e) => Attempt::Stop(e),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn succeeded(
        &self,
        plan: &mut Plan,
        provider: &ProviderRuntime,
        model: &str,
        price: &ModelPrice,
        estimate: u64,
        permit: Permit,
        call_started: Instant,
        response: ChatResponse,
        attempts: u32,
    ) -> Answer {
        let latency = micros_since(call_started);
        // Without reported usage the estimate is charged: never under-count spend.
        let usage = response.usage.unwrap_or(Usage {
            input_tokens: plan.input_tokens,
            output_tokens: u64::from(plan.max_tokens),
        });
        let cost = price.cost_micros(usage);
        let request_id = plan.call.request_id;
        provider.budget.commit(
            request_id,
            cost,
            usage.input_tokens,
            usage.output_tokens,
            &provider.settings().price_version,
        );
        provider
            .circuit
            .record(permit, request_id, model, latency, CallOutcome::Success);
        provider.stats.record(true, latency);
        self.remember_session(plan, &provider.name);
        metrics::histogram!("tutorlog_gateway_provider_seconds", "provider" => provider.name.clone())
            .record(latency as f64 / 1e6);
        let answer = Answer {
            request_id,
            provider: provider.name.clone(),
            model: model.to_owned(),
            content: response.content,
            finish_reason: response.finish_reason,
            usage,
            cost_micros: cost,
            category: plan.category,
            attempts,
        };
        let execution = ExecutionRecorded {
            request_id,
            source: plan.call.source,
            provider: Some(provider.name.clone()),
            model: Some(model.to_owned()),
            category: plan.category.to_owned(),
            session_id: plan.call.session_id.clone(),
            user_id: plan.call.user_id.clone(),
            success: true,
            attempts,
            streamed: false,
            duration_micros: micros_since(plan.started),
            quality: None,
            cost_estimate_micros: estimate,
            cost_actual_micros: cost,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            error_kind: None,
            request_messages: self.messages_json(&plan.call.messages),
            response_text: self
                .inner
                .options
                .record_content
                .then(|| answer.content.clone()),
        };
        self.observe(plan, latency, true);
        let plan = std::mem::replace(plan, empty_plan());
        self.record(plan, vec![Event::ExecutionRecorded(execution)]);
        answer
    }

    fn failed(
        &self,
        provider: &ProviderRuntime,
        model: &str,
        plan: &Plan,
        permit: Permit,
        call_started: Instant,
        error: &ProviderError,
    ) -> Attempt<GatewayError> {
        let latency = micros_since(call_started);
        let request_id = plan.call.request_id;
        provider.budget.release(request_id, error.kind.as_str());
        provider.circuit.record(
            permit,
            request_id,
            model,
            latency,
            CallOutcome::Failure {
                kind: error.kind,
                message: error.message.clone(),
            },
        );
        if error.kind.counts_against_provider() {
            provider.stats.record(false, latency);
        }
        metrics::counter!("tutorlog_gateway_provider_errors_total", "provider" => provider.name.clone(), "kind" => error.kind.as_str())
            .increment(1);
        let gateway_error = GatewayError::Provider {
            provider: provider.name.clone(),
            error: error.clone(),
        };
        if error.kind.is_retryable() {
            Attempt::Next(gateway_error)
        } else {
            Attempt::Stop(gateway_error)
        }
    }

    /// The error for a call where no candidate was even tried.
    fn nothing_eligible(&self, plan: &Plan) -> GatewayError {
        let reasons: Vec<String> = plan
            .decision
            .candidates
            .iter()
            .map(|c| format!("{}: {}", c.provider, c.reason))
            .collect();
        GatewayError::NoHealthyProvider(format!(
            "no provider can take this request ({})",
            reasons.join("; ")
        ))
    }

    fn finish_failed(&self, mut plan: Plan, error: &GatewayError) {
        let attempts = plan
            .events
            .iter()
            .filter(|e| matches!(e, Event::ProviderQueryStarted(_)))
            .count();
        let kind = match error {
            GatewayError::Provider { error, .. } => Some(error.kind),
            _ => None,
        };
        let last = plan.events.iter().rev().find_map(|e| match e {
            Event::ProviderQueryStarted(s) => Some((s.provider.clone(), s.model.clone())),
            _ => None,
        });
        let execution = ExecutionRecorded {
            request_id: plan.call.request_id,
            source: plan.call.source,
            provider: last.as_ref().map(|(p, _)| p.clone()),
            model: last.map(|(_, m)| m),
            category: plan.category.to_owned(),
            session_id: plan.call.session_id.clone(),
            user_id: plan.call.user_id.clone(),
            success: false,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            streamed: false,
            duration_micros: micros_since(plan.started),
            quality: None,
            cost_estimate_micros: 0,
            cost_actual_micros: 0,
            input_tokens: 0,
            output_tokens: 0,
            error_kind: kind,
            request_messages: self.messages_json(&plan.call.messages),
            response_text: None,
        };
        let outcome = gateway_error_code(error);
        metrics::counter!("tutorlog_gateway_requests_total", "outcome" => outcome).increment(1);
        plan.events.push(Event::ExecutionRecorded(execution));
        self.record(plan, Vec::new());
    }

    fn observe(&self, plan: &Plan, provider_micros: u64, success: bool) {
        let total = micros_since(plan.started);
        metrics::counter!("tutorlog_gateway_requests_total", "outcome" => if success { "ok" } else { "error" })
            .increment(1);
        metrics::histogram!("tutorlog_gateway_overhead_seconds")
            .record(total.saturating_sub(provider_micros) as f64 / 1e6);
    }

    fn remember_session(&self, plan: &Plan, provider: &str) {
        let Some(session) = &plan.call.session_id else {
            return;
        };
        let mut sessions = self.inner.sessions.lock();
        if sessions.len() >= SESSIONS_MAX && !sessions.contains_key(session) {
            let ttl = self.inner.options.session_ttl;
            sessions.retain(|_, s| s.at.elapsed() < ttl);
            if sessions.len() >= SESSIONS_MAX {
                sessions.clear();
            }
        }
        sessions.insert(
            session.clone(),
            Sticky {
                provider: provider.to_owned(),
                category: plan.category,
                at: Instant::now(),
            },
        );
    }

    fn messages_json(&self, messages: &[ChatMessage]) -> Option<String> {
        self.inner
            .options
            .record_content
            .then(|| serde_json::to_string(messages).unwrap_or_default())
    }

    /// Appends the plan's events (and `more`) to `request-{id}` off the response
    /// path; shutdown waits for these.
    fn record(&self, plan: Plan, more: Vec<Event>) {
        let request_id = plan.call.request_id;
        let mut records = Vec::with_capacity(plan.events.len() + more.len());
        for event in plan.events.iter().chain(&more) {
            match NewEvent::from_event(event) {
                Ok(record) => records.push(record.with_correlation(request_id)),
                Err(error) => tracing::error!(%error, "gateway event does not encode"),
            }
        }
        if records.is_empty() {
            return;
        }
        let stream = format!("request-{request_id}");
        let recordings = Arc::clone(&self.inner.recordings);
        // Where the log can queue it now, the log's writer reports the outcome and
        // no task wakes up again for it: a spawned task costs this call two more
        // runs on a worker and a wake-up from the writer thread (BENCHMARKS.md,
        // "Gateway").
        if let Ok(permit) = Arc::clone(&recordings).try_acquire_owned() {
            let name = stream.clone();
            let done: AppendCallback = Box::new(move |appended| {
                drop(permit);
                if let Err(error) = appended {
                    tracing::warn!(%error, stream = %name, "could not record the gateway call");
                }
            });
            // `Any`, not `NoStream`: a `select` and the call it precedes may share a
            // request id when a client reuses one.
            match self.inner.store.try_append_detached(
                &stream,
                ExpectedRevision::Any,
                records,
                done,
            ) {
                Ok(()) => return,
                // Dropping the callback returns the permit.
                Err(not_queued) => records = not_queued.events,
            }
        }
        let store = Arc::clone(&self.inner.store);
        tokio::spawn(async move {
            let Ok(_permit) = recordings.acquire_owned().await else {
                return;
            };
            // Deferred: the answer has gone out, so the record may share the next
            // call's fsync instead of paying for its own.
            let appended = store
                .append_deferred(&stream, ExpectedRevision::Any, records)
                .await;
            if let Err(error) = appended {
                tracing::warn!(%error, %stream, "could not record the gateway call");
            }
        });
    }
}

fn empty_plan() -> Plan {
    Plan {
        call: Call::new(CallSource::Chat, "", Vec::new()),
        category: "general",
        max_tokens: 0,
        input_tokens: 0,
        candidates: Vec::new(),
        decision: RouteDecision {
            candidates: Vec::new(),
            order: Vec::new(),
            reason: "",
        },
        started: Instant::now(),
        events: Vec::new(),
    }
}

/// The stable error code of a gateway error (for metrics and HTTP).
pub fn gateway_error_code(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::BadRequest { .. } => "bad_request",
        GatewayError::ModelNotFound(_) => "model_not_found",
        GatewayError::NoProviders => "no_providers",
        GatewayError::BudgetExceeded(_) => "budget_exceeded",
        GatewayError::PerRequestLimit(_) => "per_request_limit",
        GatewayError::NoHealthyProvider(_) => "no_healthy_provider",
        GatewayError::Provider { error, .. } if error.kind == ErrorKind::Timeout => {
            "provider_timeout"
        }
        GatewayError::Provider { .. } => "provider_error",
        GatewayError::Unavailable(_) => "unavailable",
    }
}

/// Keeps the error that tells the client most about why nothing served it: a
/// provider's own failure, then a budget refusal, then an open circuit.
fn keep_most_telling(kept: &mut Option<GatewayError>, new: GatewayError) {
    fn rank(error: &GatewayError) -> u8 {
        match error {
            GatewayError::Provider { .. } => 3,
            GatewayError::BudgetExceeded(_) | GatewayError::PerRequestLimit(_) => 2,
            _ => 1,
        }
    }
    if kept.as_ref().is_none_or(|k| rank(&new) >= rank(k)) {
        *kept = Some(new);
    }
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn started_event(plan: &Plan, provider: &ProviderRuntime, model: &str, attempt: u32) -> Event {
    Event::ProviderQueryStarted(ProviderQueryStarted {
        request_id: plan.call.request_id,
        provider: provider.name.clone(),
        model: model.to_owned(),
        attempt,
    })
}

fn chat_request(plan: &Plan, model: &str) -> ChatRequest {
    ChatRequest {
        model: model.to_owned(),
        messages: plan.call.messages.clone(),
        max_tokens: plan.max_tokens,
        temperature: plan.call.temperature,
        top_p: plan.call.top_p,
        stop: plan.call.stop.clone(),
    }
}

fn check_messages(messages: &[ChatMessage]) -> Result<(), GatewayError> {
    let bad = |message: String| GatewayError::BadRequest {
        field: "messages",
        message,
    };
    if messages.is_empty() {
        return Err(bad("must hold at least one message".into()));
    }
    if messages.len() > MESSAGES_MAX {
        return Err(bad(format!("at most {MESSAGES_MAX} messages")));
    }
    let mut bytes = 0;
    for (i, message) in messages.iter().enumerate() {
        if !matches!(
            message.role.as_str(),
            "system" | "user" | "assistant" | "developer"
        ) {
            return Err(bad(format!(
                "messages[{i}].role must be system, user or assistant, got {:?}",
                message.role
            )));
        }
        bytes += message.content.len();
    }
    if bytes > MESSAGE_BYTES_MAX {
        return Err(bad(format!(
            "at most {MESSAGE_BYTES_MAX} bytes of text in all"
        )));
    }
    Ok(())
}

async fn start_provider(
    provider: &ProviderConfig,
    options: &GatewayOptions,
    client: reqwest::Client,
    store: &Arc<dyn EventStore>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<ProviderRuntime> {
    let adapter = adapters::build(provider, client)?;
    ProviderRuntime::start(provider, adapter, options, store, clock).await
}

impl ProviderRuntime {
    /// Starts `provider`'s budget and circuit actors around `adapter`.
    pub async fn start(
        provider: &ProviderConfig,
        adapter: Arc<dyn Adapter>,
        options: &GatewayOptions,
        store: &Arc<dyn EventStore>,
        clock: &Arc<dyn Clock>,
    ) -> anyhow::Result<ProviderRuntime> {
        let actor_timeout = Duration::from_secs(30);
        let budget = BudgetHandle::start(
            &provider.name,
            Limits {
                monthly_micros: usd_to_micros(provider.monthly_budget_usd),
                per_request_micros: usd_to_micros(provider.per_request_budget_usd),
            },
            options.mode,
            Arc::clone(store),
            Arc::clone(clock),
            actor_timeout,
            options.hold,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the budget of provider {}: {e}", provider.name))?;
        let circuit = CircuitHandle::start(
            &provider.name,
            circuit_policy(provider),
            Arc::clone(store),
            Arc::clone(clock),
            actor_timeout,
            options.hold,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting the circuit of provider {}: {e}", provider.name))?;
        circuit.record_priority(provider.priority);
        Ok(ProviderRuntime {
            name: provider.name.clone(),
            kind: provider.kind.clone(),
            adapter,
            budget,
            circuit,
            settings: ArcSwap::from_pointee(ProviderSettings::from_config(provider)),
            stats: ProviderStats::default(),
        })
    }
}

/// The breaker policy of a configured provider.
pub fn circuit_policy(provider: &ProviderConfig) -> CircuitPolicy {
    CircuitPolicy {
        failure_threshold: provider.circuit.failure_threshold,
        success_threshold: provider.circuit.success_threshold,
        open_secs: provider.circuit.open_secs,
        half_open_max_calls: provider.circuit.half_open_max_calls,
    }
}

/// A streamed answer that settles the call (commit, circuit, record) when it
/// ends, fails, or is dropped by a client that went away.
pub struct AnswerStream {
    inner: EventStream,
    state: Option<StreamState>,
}

struct StreamState {
    gateway: Gateway,
    plan: Plan,
    provider: Arc<ProviderRuntime>,
    model: String,
    price: ModelPrice,
    estimate: u64,
    permit: Option<Permit>,
    call_started: Instant,
    attempts: u32,
    text: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    /// Held until the stream has settled (see `Inner::calls`).
    _running: tokio::sync::OwnedSemaphorePermit,
}

impl AnswerStream {
    /// Request id.
    pub fn request_id(&self) -> Uuid {
        self.state
            .as_ref()
            .map_or(Uuid::nil(), |s| s.plan.call.request_id)
    }

    /// Provider answering.
    pub fn provider(&self) -> &str {
        self.state.as_ref().map_or("", |s| s.provider.name.as_str())
    }

    /// Model answering.
    pub fn model(&self) -> &str {
        self.state.as_ref().map_or("", |s| s.model.as_str())
    }

    /// The next piece; `None` after the end (the call is then settled).
    pub async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        let state = self.state.as_mut()?;
        let idle = state.provider.settings().timeout;
        let item = match tokio::time::timeout(idle, self.inner.next()).await {
            Ok(item) => item,
            Err(_) => Some(Err(ProviderError::new(
                ErrorKind::Timeout,
                format!("no stream data for {} ms", idle.as_millis()),
            ))),
        };
        match item {
            Some(Ok(event)) => {
                match &event {
                    StreamEvent::Delta(text) => state.text.push_str(text),
                    StreamEvent::Usage(usage) => state.usage = Some(*usage),
                    StreamEvent::Finish(reason) => state.finish_reason.clone_from(reason),
                }
                Some(Ok(event))
            }
            Some(Err(error)) => {
                self.settle(Some(error.clone()), false);
                Some(Err(error))
            }
            None => {
                self.settle(None, false);
                None
            }
        }
    }

    /// Settles the call. `cancelled`: the client went away, which says nothing
    /// about the provider (no circuit outcome; a trial permit goes back).
    fn settle(&mut self, error: Option<ProviderError>, cancelled: bool) {
        let Some(mut state) = self.state.take() else {
            return;
        };
        let latency = micros_since(state.call_started);
        let request_id = state.plan.call.request_id;
        let provider = Arc::clone(&state.provider);
        // Tokens were generated even if the stream broke: charge what was seen
        // (bytes bound tokens from above) when the provider did not say.
        let usage = state.usage.unwrap_or(Usage {
            input_tokens: state.plan.input_tokens,
            output_tokens: (state.text.len() as u64).min(u64::from(state.plan.max_tokens)),
        });
        let cost = state.price.cost_micros(usage);
        provider.budget.commit(
            request_id,
            cost,
            usage.input_tokens,
            usage.output_tokens,
            &provider.settings().price_version,
        );
        let outcome = match &error {
            None => CallOutcome::Success,
            Some(error) => CallOutcome::Failure {
                kind: error.kind,
                message: error.message.clone(),
            },
        };
        if let Some(permit) = state.permit.take() {
            if cancelled {
                drop(permit);
            } else {
                provider
                    .circuit
                    .record(permit, request_id, &state.model, latency, outcome);
                provider.stats.record(error.is_none(), latency);
            }
        }
        if error.is_none() {
            state.gateway.remember_session(&state.plan, &provider.name);
        }
        let gateway = state.gateway.clone();
        gateway.observe(&state.plan, latency, error.is_none());
        let execution = ExecutionRecorded {
            request_id,
            source: state.plan.call.source,
            provider: Some(provider.name.clone()),
            model: Some(state.model.clone()),
            category: state.plan.category.to_owned(),
            session_id: state.plan.call.session_id.clone(),
            user_id: state.plan.call.user_id.clone(),
            success: error.is_none(),
            attempts: state.attempts,
            streamed: true,
            duration_micros: micros_since(state.plan.started),
            quality: None,
            cost_estimate_micros: state.estimate,
            cost_actual_micros: cost,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            error_kind: error.as_ref().map(|e| e.kind),
            request_messages: gateway.messages_json(&state.plan.call.messages),
            response_text: gateway
                .inner
                .options
                .record_content
                .then(|| std::mem::take(&mut state.text)),
        };
        let plan = std::mem::replace(&mut state.plan, empty_plan());
        gateway.record(plan, vec![Event::ExecutionRecorded(execution)]);
    }
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        if self.state.is_some() {
            self.settle(
                Some(ProviderError::new(
                    ErrorKind::Connect,
                    "the client went away before the stream ended",
                )),
                true,
            );
        }
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
