//! `provider_health`: per provider — circuit state and since when, calls and
//! failures, the error rate over the last [`ERROR_WINDOW_CALLS`] calls, latency
//! percentiles over the last [`LATENCY_WINDOW_CALLS`] successful calls, the last
//! failure, and failures by error kind. Folded from the `circuit-{provider}`
//! streams.
//!
//! The windows are fixed rings stored in the model, and percentiles are computed
//! when the view is asked for (nearest rank over a sorted copy), so the view is a
//! pure function of the events and survives a snapshot restore exactly.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{
    events::{ErrorKind, ProviderQueryFailed},
    Envelope, Event,
};
use uuid::Uuid;

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
    ring::Ring,
    spend::keep_key,
};

/// Stream prefix of circuit aggregates: `circuit-{provider}`.
pub const CIRCUIT_STREAM_PREFIX: &str = "circuit-";
/// Calls in the error-rate window.
pub const ERROR_WINDOW_CALLS: usize = 100;
/// Successful calls in the latency window.
pub const LATENCY_WINDOW_CALLS: usize = 1_000;

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    #[default]
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A few trial calls are allowed.
    HalfOpen,
}

/// The most recent failed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFailure {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// How it failed.
    pub kind: ErrorKind,
    /// The provider's message.
    pub message: String,
    /// Model called.
    pub model: String,
    /// The gateway request.
    pub request_id: Uuid,
}

/// One provider, as stored (the view adds the figures computed from the windows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealthRow {
    /// Circuit state.
    pub state: CircuitState,
    /// When the circuit entered `state`; `None` when it never changed (closed).
    pub since: Option<DateTime<Utc>>,
    /// The cause carried by the last transition.
    pub cause: Option<String>,
    /// Times the circuit opened.
    pub times_opened: u64,
    /// Priority (lower is tried first), from `provider.priority.changed`.
    pub priority: Option<u32>,
    /// Calls recorded.
    pub calls: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// Failures per error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The most recent failure.
    pub last_failure: Option<LastFailure>,
    /// When the last call was recorded.
    pub last_call_at: Option<DateTime<Utc>>,
    /// Outcome of each of the last calls: `true` when it failed.
    pub recent_calls: Ring<bool, ERROR_WINDOW_CALLS>,
    /// Latency of each of the last successful calls, microseconds.
    pub recent_latencies_micros: Ring<u64, LATENCY_WINDOW_CALLS>,
}

/// The `provider_health` model: provider → row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderHealthModel {
    /// Provider → row.
    pub providers: BTreeMap<String, ProviderHealthRow>,
}

/// One provider as the view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderHealthView {
    /// Circuit state.
    pub state: CircuitState,
    /// When it entered that state.
    pub since: Option<DateTime<Utc>>,
    /// Cause of the last transition.
    pub cause: Option<String>,
    /// Times the circuit opened.
    pub times_opened: u64,
    /// Priority.
    pub priority: Option<u32>,
    /// Calls recorded.
    pub calls: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed.
    pub failures: u64,
    /// Calls in the error-rate window (at most [`ERROR_WINDOW_CALLS`]).
    pub window_calls: u64,
    /// Failed calls in the window.
    pub window_failures: u64,
    /// `window_failures / window_calls`; `None` before the first call.
    pub error_rate: Option<f64>,
    /// Successful calls in the latency window (at most [`LATENCY_WINDOW_CALLS`]).
    pub latency_samples: u64,
    /// Median latency of the window, microseconds.
    pub latency_p50_micros: Option<u64>,
    /// 99th-percentile latency of the window, microseconds.
    pub latency_p99_micros: Option<u64>,
    /// Failures per error kind.
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The most recent failure.
    pub last_failure: Option<LastFailure>,
    /// When the last call was recorded.
    pub last_call_at: Option<DateTime<Utc>>,
}

impl ProviderHealthRow {
    /// The row with its window figures computed.
    pub fn view(&self) -> ProviderHealthView {
        let window_calls = self.recent_calls.len() as u64;
        let window_failures = self.recent_calls.iter().filter(|failed| *failed).count() as u64;
        let error_rate = (window_calls > 0).then(|| window_failures as f64 / window_calls as f64);
        let [p50, p99] = self.recent_latencies_micros.percentiles([50, 99]);
        ProviderHealthView {
            state: self.state,
            since: self.since,
            cause: self.cause.clone(),
            times_opened: self.times_opened,
            priority: self.priority,
            calls: self.calls,
            successes: self.successes,
            failures: self.failures,
            window_calls,
            window_failures,
            error_rate,
            latency_samples: self.recent_latencies_micros.len() as u64,
            latency_p50_micros: p50,
            latency_p99_micros: p99,
            failures_by_kind: self.failures_by_kind.clone(),
            last_failure: self.last_failure.clone(),
            last_call_at: self.last_call_at,
        }
    }

    fn transition(&mut self, state: CircuitState, cause: &str, at: DateTime<Utc>) {
        self.state = state;
        self.since = Some(at);
        self.cause = Some(cause.to_owned());
    }

    fn failed(&mut self, failed: &ProviderQueryFailed, at: DateTime<Utc>) {
        self.calls += 1;
        self.failures += 1;
        self.last_call_at = Some(at);
        self.recent_calls.push(true);
        *self
            .failures_by_kind
            .entry(failed.error_kind.as_str().to_owned())
            .or_insert(0) += 1;
        self.last_failure = Some(LastFailure {
            at,
            kind: failed.error_kind,
            message: failed.message.clone(),
            model: failed.model.clone(),
            request_id: failed.request_id,
        });
    }

    fn succeeded(&mut self, latency_micros: u64, at: DateTime<Utc>) {
        self.calls += 1;
        self.successes += 1;
        self.last_call_at = Some(at);
        self.recent_calls.push(false);
        self.recent_latencies_micros.push(latency_micros);
    }
}

/// The row of `provider`, created on its first event.
fn row_of<'a>(model: &'a mut ProviderHealthModel, provider: &str) -> &'a mut ProviderHealthRow {
    model.providers.entry(provider.to_owned()).or_default()
}

/// The `provider_health` projection.
#[derive(Debug, Clone, Default)]
pub struct ProviderHealth {
    model: ProviderHealthModel,
}

impl ProviderHealth {
    /// An empty projection.
    pub fn new() -> Self {
        ProviderHealth::default()
    }

    /// One provider's health, with its window figures.
    pub fn provider(&self, provider: &str) -> Option<ProviderHealthView> {
        self.model
            .providers
            .get(provider)
            .map(ProviderHealthRow::view)
    }
}

impl Projection for ProviderHealth {
    const NAME: &'static str = "provider_health";
    type Model = ProviderHealthModel;

    fn apply(&mut self, envelope: &Envelope) {
        let Some(provider) = envelope.stream.strip_prefix(CIRCUIT_STREAM_PREFIX) else {
            return;
        };
        if provider.is_empty() {
            return;
        }
        let at = envelope.recorded_at;
        let row = match &envelope.payload {
            Event::ProviderQueryCompleted(_)
            | Event::ProviderQueryFailed(_)
            | Event::CircuitOpened(_)
            | Event::CircuitHalfOpened(_)
            | Event::CircuitClosed(_)
            | Event::ProviderPriorityChanged(_) => row_of(&mut self.model, provider),
            _ => return,
        };
        match &envelope.payload {
            Event::ProviderQueryCompleted(done) => row.succeeded(done.latency_micros, at),
            Event::ProviderQueryFailed(failed) => row.failed(failed, at),
            Event::CircuitOpened(opened) => {
                row.transition(CircuitState::Open, &opened.cause, at);
                row.times_opened += 1;
            }
            Event::CircuitHalfOpened(half) => {
                row.transition(CircuitState::HalfOpen, &half.cause, at)
            }
            Event::CircuitClosed(closed) => row.transition(CircuitState::Closed, &closed.cause, at),
            Event::ProviderPriorityChanged(changed) => row.priority = Some(changed.priority),
            _ => {}
        }
    }

    fn model(&self) -> &ProviderHealthModel {
        &self.model
    }

    fn restore(&mut self, model: ProviderHealthModel) {
        self.model = model;
    }

    /// `{"providers": {name: ProviderHealthView}}`: figures instead of the raw windows.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        let providers: BTreeMap<&str, ProviderHealthView> = self
            .model
            .providers
            .iter()
            .map(|(name, row)| (name.as_str(), row.view()))
            .collect();
        Ok(serde_json::json!({ "providers": serde_json::to_value(providers)? }))
    }
}

impl Narrow for ProviderHealth {
    const FILTERS: &'static [FilterKind] = &[FilterKind::Provider];

    fn narrowed(&self, filter: &ViewFilter) -> Self {
        match filter {
            ViewFilter::Provider(provider) => ProviderHealth {
                model: ProviderHealthModel {
                    providers: keep_key(&self.model.providers, provider),
                },
            },
            ViewFilter::User(_) => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
