//! The gateway half of [`super::explain`]: find a call's chain, then summarise it.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use tutorlog_schemas::{events::ExecutionRecorded, Envelope, Event, RecordedEvent};
use tutorlog_store::{EventStore, StoreError};
use uuid::Uuid;

use super::{
    read_stream_bounded, seconds, uuid_time, ExplainKind, Explanation, ScanStats,
    ID_TIME_MARGIN_SECS, REQUEST_EVENTS_MAX, SCAN_CHUNK_EVENTS, SETTLED_TAIL_EVENTS,
    WINDOW_EVENTS_MAX, WINDOW_MARGIN_SECS,
};
use crate::log_time::first_position_at_or_after;

/// The gateway call `id`, or `None` when `request-{id}` is empty.
pub(super) async fn explain(
    store: &dyn EventStore,
    id: Uuid,
) -> Result<Option<Explanation>, StoreError> {
    let mut scan = ScanStats::default();
    let stream = format!("request-{id}");
    let own = read_stream_bounded(store, &stream, REQUEST_EVENTS_MAX, &mut scan).await?;
    if own.is_empty() {
        return Ok(None);
    }
    let mut chain = correlated_window(store, id, &stream, &own, &mut scan).await?;
    chain.extend(own);
    chain.sort_by_key(|e| e.position);
    chain.dedup_by_key(|e| e.position);
    let decoded: Vec<(&RecordedEvent, Option<Event>)> = chain
        .iter()
        .map(|e| (e, Envelope::decode(e).ok().map(|envelope| envelope.payload)))
        .collect();
    let summary = summarise(&decoded);
    Ok(Some(Explanation {
        id,
        kind: ExplainKind::Gateway,
        summary,
        events: chain,
        scan,
    }))
}

/// The events on other streams that carry `id` as correlation id, from the window
/// of `$all` around the request's call events.
async fn correlated_window(
    store: &dyn EventStore,
    id: Uuid,
    stream: &str,
    own: &[RecordedEvent],
    scan: &mut ScanStats,
) -> Result<Vec<RecordedEvent>, StoreError> {
    // Feedback may come much later; the call's other events are around the call.
    let call: Vec<&RecordedEvent> = own
        .iter()
        .filter(|e| e.event_type != "feedback.recorded")
        .collect();
    let anchor: Vec<&RecordedEvent> = if call.is_empty() {
        own.iter().collect()
    } else {
        call
    };
    let (Some(first), Some(last)) = (
        anchor.iter().min_by_key(|e| e.position),
        anchor.iter().max_by_key(|e| e.position),
    ) else {
        return Ok(Vec::new());
    };
    let duration = anchor
        .iter()
        .filter_map(|e| match Envelope::decode(e).ok()?.payload {
            Event::ExecutionRecorded(execution) => Some(execution.duration_micros),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let by_duration = first.recorded_at
        - TimeDelta::microseconds(i64::try_from(duration).unwrap_or(i64::MAX / 2))
        - seconds(WINDOW_MARGIN_SECS);
    let start_time = match uuid_time(id) {
        Some(made) => (made - seconds(ID_TIME_MARGIN_SECS)).min(first.recorded_at),
        None => by_duration,
    };
    let low = first.position.saturating_sub(WINDOW_EVENTS_MAX);
    let start = first_position_at_or_after(store, start_time, low, first.position).await?;
    let window = Window {
        after_position: last.position,
        end_time: last.recorded_at + seconds(WINDOW_MARGIN_SECS),
        hard_end: last.position.saturating_add(WINDOW_EVENTS_MAX),
        attempts: own
            .iter()
            .filter(|e| e.event_type == "provider.query.started")
            .count(),
    };
    scan_window(store, id, stream, start, &window, scan).await
}

/// Where a scan may stop.
struct Window {
    /// The request's last call event: the scan always goes past it.
    after_position: u64,
    /// Past the call and this time, stop.
    end_time: DateTime<Utc>,
    /// Past this position, stop (and say so).
    hard_end: u64,
    /// Attempts the request made: each has a reservation, a settlement and an
    /// outcome to find.
    attempts: usize,
}

/// Counts the found events each attempt should have, to stop early.
#[derive(Default)]
struct Settled {
    reservations: usize,
    settlements: usize,
    outcomes: usize,
}

impl Settled {
    fn count(&mut self, event_type: &str) {
        match event_type {
            "budget.reserved" => self.reservations += 1,
            "budget.committed" | "budget.released" => self.settlements += 1,
            "provider.query.completed" | "provider.query.failed" => self.outcomes += 1,
            _ => {}
        }
    }

    fn covers(&self, attempts: usize) -> bool {
        attempts > 0
            && self.reservations >= attempts
            && self.settlements >= attempts
            && self.outcomes >= attempts
    }
}

/// Scans `$all` from `start` (see [`Window`] for where it stops), keeping
/// correlated events not on `stream`.
async fn scan_window(
    store: &dyn EventStore,
    id: Uuid,
    stream: &str,
    start: u64,
    window: &Window,
    scan: &mut ScanStats,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut found = Vec::new();
    let mut settled = Settled::default();
    let mut tail_left: Option<u64> = None;
    let mut cursor = start;
    scan.window_first = Some(start);
    'scan: loop {
        if cursor > window.hard_end {
            scan.truncated = true;
            break;
        }
        let events = store.read_all(cursor, SCAN_CHUNK_EVENTS).await?;
        let Some(tail) = events.last() else { break };
        cursor = tail.position + 1;
        for event in events {
            let past_call = event.position > window.after_position;
            if tail_left == Some(0) || (past_call && event.recorded_at > window.end_time) {
                break 'scan;
            }
            scan.all_events_read += 1;
            scan.window_last = Some(event.position);
            if event.correlation_id == Some(id) && event.stream != stream {
                settled.count(&event.event_type);
                found.push(event);
            }
            tail_left = match tail_left {
                Some(left) => Some(left.saturating_sub(1)),
                None if past_call && settled.covers(window.attempts) => Some(SETTLED_TAIL_EVENTS),
                None => None,
            };
        }
    }
    Ok(found)
}

/// `budget-mock` → `mock`.
fn provider_of(stream: &str, prefix: &str) -> Option<String> {
    stream.strip_prefix(prefix).map(str::to_owned)
}

fn usd(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[derive(Default)]
struct Facts {
    decision: Option<Value>,
    category: Option<String>,
    attempts: Vec<Value>,
    outcomes: Vec<(Option<String>, Value)>,
    reservations: Vec<Value>,
    circuit: Vec<Value>,
    feedback: Vec<Value>,
    execution: Option<ExecutionRecorded>,
    estimates: u64,
    committed: u64,
    exceeded: bool,
}

fn summarise(chain: &[(&RecordedEvent, Option<Event>)]) -> Value {
    let mut facts = Facts::default();
    for (recorded, event) in chain {
        if let Some(event) = event {
            facts.add(recorded, event);
        }
    }
    facts.into_json()
}

impl Facts {
    fn add(&mut self, recorded: &RecordedEvent, event: &Event) {
        let budget = provider_of(&recorded.stream, "budget-");
        let circuit = provider_of(&recorded.stream, "circuit-");
        match event {
            Event::ProviderSelected(selected) => {
                self.category = Some(selected.category.clone());
                self.decision = Some(json!({
                    "requested_model": selected.requested_model,
                    "chosen_provider": selected.chosen_provider,
                    "chosen_model": selected.chosen_model,
                    "reason": selected.reason,
                    "candidates": selected.candidates.iter().map(|c| json!({
                        "provider": c.provider, "model": c.model, "score": c.score,
                        "eligible": c.eligible, "reason": c.reason,
                    })).collect::<Vec<_>>(),
                }));
            }
            Event::ProviderQueryStarted(started) => self.attempts.push(json!({
                "attempt": started.attempt, "provider": started.provider,
                "model": started.model, "outcome": "no outcome recorded",
            })),
            Event::ProviderQueryCompleted(done) => self.outcome(
                circuit,
                json!({ "outcome": "completed", "latency_micros": done.latency_micros, "trial": done.trial }),
            ),
            Event::ProviderQueryFailed(failed) => self.outcome(
                circuit,
                json!({
                    "outcome": "failed", "error_kind": failed.error_kind.as_str(),
                    "message": failed.message, "latency_micros": failed.latency_micros,
                    "trial": failed.trial,
                }),
            ),
            Event::CircuitOpened(_) | Event::CircuitHalfOpened(_) | Event::CircuitClosed(_) => {
                self.circuit.push(json!({
                    "provider": circuit, "event": recorded.event_type, "detail": event.to_json(),
                }));
            }
            Event::FeedbackRecorded(feedback) => self.feedback.push(json!({
                "rating": feedback.rating, "accepted": feedback.accepted,
                "quality": feedback.quality, "comment": feedback.comment,
            })),
            Event::ExecutionRecorded(execution) => self.execution = Some(execution.clone()),
            _ => self.add_budget(budget, event),
        }
    }

    fn add_budget(&mut self, provider: Option<String>, event: &Event) {
        match event {
            Event::BudgetReserved(reserved) => {
                self.estimates += reserved.estimate_micros;
                self.reservations.push(json!({
                    "provider": provider, "model": reserved.model,
                    "estimate_micros": reserved.estimate_micros, "period": reserved.period,
                    "outcome": "open",
                }));
            }
            Event::BudgetCommitted(committed) => {
                self.committed += committed.actual_micros;
                self.settle(
                    provider,
                    json!({ "outcome": "committed", "actual_micros": committed.actual_micros,
                            "input_tokens": committed.input_tokens, "output_tokens": committed.output_tokens,
                            "price_version": committed.price_version }),
                );
            }
            Event::BudgetReleased(released) => self.settle(
                provider,
                json!({ "outcome": "released", "release_reason": released.reason }),
            ),
            Event::BudgetExceeded(exceeded) => {
                self.exceeded = true;
                self.reservations.push(json!({
                    "provider": provider, "outcome": "exceeded",
                    "estimate_micros": exceeded.estimate_micros,
                    "limit": match exceeded.limit {
                        tutorlog_schemas::events::BudgetLimitKind::Monthly => "monthly",
                        tutorlog_schemas::events::BudgetLimitKind::PerRequest => "per_request",
                    },
                    "limit_micros": exceeded.limit_micros,
                    "remaining_micros": exceeded.remaining_micros, "period": exceeded.period,
                }));
            }
            _ => {}
        }
    }

    /// Keeps a call outcome for the attempt it belongs to: outcomes come before the
    /// attempts in the log (the request's own events are appended after the call),
    /// so they are matched once everything is read.
    fn outcome(&mut self, provider: Option<String>, outcome: Value) {
        self.outcomes.push((provider, outcome));
    }

    /// Merges a commit or release into the earliest open reservation there.
    fn settle(&mut self, provider: Option<String>, outcome: Value) {
        merge_into_first(&mut self.reservations, provider, "open", outcome);
    }

    fn into_json(mut self) -> Value {
        // Each outcome goes to the earliest attempt on its provider without one.
        for (provider, outcome) in std::mem::take(&mut self.outcomes) {
            merge_into_first(&mut self.attempts, provider, "no outcome recorded", outcome);
        }
        let text = self.text();
        let outcome = match (&self.execution, &self.decision) {
            (Some(e), _) if e.success => "succeeded",
            (Some(_), _) if self.exceeded => "refused: budget exceeded",
            (Some(_), _) => "failed",
            (None, Some(_)) => "routed only (no call recorded)",
            (None, None) => "unknown",
        };
        let estimate = self
            .execution
            .as_ref()
            .map(|e| e.cost_estimate_micros)
            .filter(|e| *e > 0)
            .unwrap_or(self.estimates);
        let actual = self
            .execution
            .as_ref()
            .map_or(self.committed, |e| e.cost_actual_micros.max(self.committed));
        json!({
            "text": text,
            "outcome": outcome,
            "category": self.category,
            "decision": self.decision,
            "attempts": self.attempts,
            "reservations": self.reservations,
            "cost": {
                "estimate_micros": estimate, "actual_micros": actual,
                "estimate_usd": usd(estimate), "actual_usd": usd(actual),
            },
            "circuit_transitions": self.circuit,
            "execution": self.execution.as_ref().map(|e| json!({
                "source": e.source, "provider": e.provider, "model": e.model,
                "success": e.success, "attempts": e.attempts, "streamed": e.streamed,
                "duration_micros": e.duration_micros, "input_tokens": e.input_tokens,
                "output_tokens": e.output_tokens, "error_kind": e.error_kind.map(|k| k.as_str()),
            })),
            "feedback": self.feedback,
        })
    }

    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(decision) = &self.decision {
            let candidates = decision["candidates"].as_array().map_or(0, Vec::len);
            parts.push(format!(
                "routed to {} (reason: {}) among {candidates} candidate(s)",
                match (
                    decision["chosen_provider"].as_str(),
                    decision["chosen_model"].as_str()
                ) {
                    (Some(p), Some(m)) => format!("{p}/{m}"),
                    _ => "no provider".to_owned(),
                },
                decision["reason"].as_str().unwrap_or("?"),
            ));
        }
        if self.exceeded {
            parts.push("a budget refused the reservation".to_owned());
        }
        if let Some(e) = &self.execution {
            let by = match (&e.provider, &e.model) {
                (Some(p), Some(m)) => format!("{p}/{m}"),
                _ => "no provider".to_owned(),
            };
            if e.success {
                parts.push(format!(
                    "answered by {by} after {} attempt(s) in {} ms",
                    e.attempts,
                    e.duration_micros / 1000
                ));
            } else {
                let kind = e
                    .error_kind
                    .map_or("no provider could take it", |k| k.as_str());
                parts.push(format!("failed after {} attempt(s): {kind}", e.attempts));
            }
            parts.push(format!(
                "cost {} against an estimate of {}",
                usd(e.cost_actual_micros.max(self.committed)),
                usd(if e.cost_estimate_micros > 0 {
                    e.cost_estimate_micros
                } else {
                    self.estimates
                })
            ));
        }
        if !self.circuit.is_empty() {
            parts.push(format!("{} circuit transition(s)", self.circuit.len()));
        }
        if !self.feedback.is_empty() {
            parts.push(format!("{} feedback event(s)", self.feedback.len()));
        }
        parts.join("; ")
    }
}

fn merge_into_first(rows: &mut [Value], provider: Option<String>, pending: &str, with: Value) {
    let slot = rows.iter_mut().find(|row| {
        row["outcome"] == pending && provider.as_deref().is_none_or(|p| row["provider"] == p)
    });
    if let (Some(Value::Object(row)), Value::Object(with)) = (slot, with) {
        row.extend(with);
    }
}
