//! Provider domain events: streams `budget-{provider}` (reservations and spend) and
//! `circuit-{provider}` (call outcomes and breaker transitions).
//!
//! Money is carried as whole micro-dollars (`u64`, 1 USD = 1,000,000): prices are
//! configured in USD per million tokens, so `tokens × price` is already micro-dollars,
//! and integer sums reconcile exactly where float sums would drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `budget.reserved` (v1): an estimated cost was set aside before a provider call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReserved {
    /// The gateway request (also the envelope's correlation id).
    pub request_id: Uuid,
    /// Model the call goes to.
    pub model: String,
    /// Upper bound of the call's cost, in micro-USD.
    pub estimate_micros: u64,
    /// Budget period (calendar month of the event time, UTC), `YYYY-MM`.
    pub period: String,
    /// User the spend is attributed to, if known.
    pub user_id: Option<String>,
    /// Session the call belongs to, if any.
    pub session_id: Option<String>,
}

/// `budget.committed` (v1): the actual cost of a reserved call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCommitted {
    /// The gateway request.
    pub request_id: Uuid,
    /// Actual cost from the response's token usage, in micro-USD.
    pub actual_micros: u64,
    /// Input (prompt) tokens the provider reported.
    pub input_tokens: u64,
    /// Output (completion) tokens the provider reported.
    pub output_tokens: u64,
    /// Digest of the price table the cost was computed with.
    pub price_version: String,
    /// Period of the reservation this commits.
    pub period: String,
}

/// `budget.released` (v1): a reservation was given back without spending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReleased {
    /// The gateway request.
    pub request_id: Uuid,
    /// Why (`provider_error`, `timeout`, `reconciled`, ...).
    pub reason: String,
    /// Period of the reservation this releases.
    pub period: String,
}

/// Which limit a refused reservation hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetLimitKind {
    /// The monthly budget.
    Monthly,
    /// The per-request budget.
    PerRequest,
}

/// `provider.budget.exceeded` (v1): a reservation did not fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetExceeded {
    /// The gateway request.
    pub request_id: Uuid,
    /// The estimate that did not fit, in micro-USD.
    pub estimate_micros: u64,
    /// Which limit.
    pub limit: BudgetLimitKind,
    /// That limit, in micro-USD.
    pub limit_micros: u64,
    /// What was left of it (monthly: limit − committed − reserved), in micro-USD.
    pub remaining_micros: u64,
    /// Budget period.
    pub period: String,
}

/// `budget.limit.changed` (v1): the configured limits changed (first start or reload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLimitChanged {
    /// Monthly limit in micro-USD; 0 = free provider, never blocks.
    pub monthly_micros: u64,
    /// Per-request limit in micro-USD; 0 = none.
    pub per_request_micros: u64,
}

/// How a provider call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No answer within the timeout.
    Timeout,
    /// HTTP 429 from the provider.
    RateLimited,
    /// HTTP 5xx from the provider.
    Server,
    /// HTTP 401/403: the key is wrong or lacks rights.
    Auth,
    /// HTTP 400/404/422: the request was refused as malformed.
    BadRequest,
    /// The connection failed or broke.
    Connect,
    /// The answer could not be understood (malformed JSON, truncated stream).
    Malformed,
}

impl ErrorKind {
    /// The snake_case name used in JSON, metrics and views.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server",
            ErrorKind::Auth => "auth",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Connect => "connect",
            ErrorKind::Malformed => "malformed",
        }
    }

    /// Whether another provider may succeed where this one failed (the gateway
    /// fails over), as opposed to a request that no provider would take.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorKind::BadRequest)
    }

    /// Whether the failure says something about the provider's health (counts
    /// toward opening its circuit). A malformed request is the client's fault.
    pub fn counts_against_provider(self) -> bool {
        !matches!(self, ErrorKind::BadRequest)
    }
}

/// `provider.query.completed` (v1): a provider call succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderQueryCompleted {
    /// The gateway request.
    pub request_id: Uuid,
    /// Model called.
    pub model: String,
    /// Wall time of the call, microseconds.
    pub latency_micros: u64,
    /// Whether it was a half-open trial call.
    pub trial: bool,
}

/// `provider.query.failed` (v1): a provider call failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderQueryFailed {
    /// The gateway request.
    pub request_id: Uuid,
    /// Model called.
    pub model: String,
    /// Wall time until the failure, microseconds.
    pub latency_micros: u64,
    /// How it failed.
    pub error_kind: ErrorKind,
    /// Short description (never contains a secret).
    pub message: String,
    /// Whether it was a half-open trial call.
    pub trial: bool,
}

/// `circuit.opened` (v1): calls to the provider stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitOpened {
    /// What opened it: `failure_threshold` (from closed) or `trial_failed` (from
    /// half-open).
    pub cause: String,
    /// Consecutive failures counted when it opened.
    pub failures: u32,
    /// The error kind of the failure that opened it.
    pub last_error: ErrorKind,
    /// Seconds until trial calls are allowed.
    pub open_secs: u64,
    /// When trial calls are allowed (decision time + `open_secs`).
    pub retry_at: DateTime<Utc>,
}

/// `circuit.half_opened` (v1): the open period ended; trial calls are allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitHalfOpened {
    /// Always `open_timeout_elapsed` today.
    pub cause: String,
    /// Trial calls allowed.
    pub max_trial_calls: u32,
}

/// `circuit.closed` (v1): the provider is healthy again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitClosed {
    /// Always `trial_successes` today.
    pub cause: String,
    /// Successful trial calls that closed it.
    pub successes: u32,
}

/// `provider.priority.changed` (v1): the configured priority changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderPriorityChanged {
    /// Previous priority (`None` on first start).
    pub previous: Option<u32>,
    /// New priority (lower is tried first).
    pub priority: u32,
}
