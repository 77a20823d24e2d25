//! Why-queries for auditors: the chain of events behind one gateway call or one
//! training session or round, found without reading the whole log.
//!
//! **Gateway request** (`request-{id}` exists). Every gateway event carries
//! `correlation_id = request id`. The request's own stream holds the decision,
//! the attempts, the execution record and later feedback, written in one append
//! after the call; the reservation, commit or release and the circuit outcomes
//! and transitions live on `budget-{provider}` / `circuit-{provider}`, a little
//! before (reservation) or around (commit, outcomes) that append. So:
//!
//! 1. read `request-{id}` (at most [`REQUEST_EVENTS_MAX`] events);
//! 2. take the positions of its call events (all but `feedback.recorded`, which may
//!    come days later) and widen them into a window of `$all`. It starts at the
//!    request id's UUID v7 time (the id is made before anything is reserved) less
//!    [`ID_TIME_MARGIN_SECS`], or without one at the record's time minus the
//!    execution's `duration_micros` less [`WINDOW_MARGIN_SECS`], found by binary
//!    search on `recorded_at`. It ends once every `provider.query.started` attempt
//!    has its reservation, its commit or release and its circuit outcome (these are
//!    sent without waiting, so they may land after the record), plus
//!    [`SETTLED_TAIL_EVENTS`] for transitions in the same append; failing that,
//!    [`WINDOW_MARGIN_SECS`] after the record. Never more than
//!    [`WINDOW_EVENTS_MAX`] events either side;
//! 3. scan only that window, keeping events whose correlation id is the request's.
//!
//! **Training** (the id is a session id or a round id, both UUID v7). The id's
//! embedded time locates the event that introduced it (`training.started` or
//! `training.round.started`, appended within moments of the id being made): a
//! binary search on `recorded_at` for that time less [`ID_TIME_MARGIN_SECS`], then
//! a scan of at most [`LOCATE_EVENTS_MAX`] events up to [`LOCATE_MARGIN_SECS`]
//! after it. From there only the learner's
//! own stream is read forward until the session (or round) completes, at most
//! [`TRAINING_EVENTS_MAX`] events. `mastery.decayed` belongs to the session event
//! right after it and `mastery.improved` to the one right before it (the learner
//! decider appends them in that order in one batch). A caller that knows the
//! learner (the daemon's mastery view knows every session's owner) passes the
//! stream as a hint, used when the time search finds nothing.
//!
//! The result lists the events in position order in the envelope JSON form
//! ([`tutorlog_schemas::json::envelope_json`]) with a summary for people.

mod gateway;
mod training;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use tutorlog_schemas::{json::envelope_json, RecordedEvent};
use tutorlog_store::{EventStore, StoreError};
use uuid::Uuid;

/// Most events read from one `request-{id}` stream.
pub const REQUEST_EVENTS_MAX: usize = 10_000;
/// Slack around a gateway call's window, seconds.
pub const WINDOW_MARGIN_SECS: i64 = 10;
/// Slack before a request id's UUID v7 time (made before anything was reserved),
/// seconds: clock granularity only.
pub const ID_TIME_MARGIN_SECS: i64 = 1;
/// Events scanned past the point where every attempt has its reservation,
/// settlement and circuit outcome: circuit transitions share the outcome's append.
pub const SETTLED_TAIL_EVENTS: u64 = 64;
/// Most `$all` events scanned on each side of a gateway call's own events.
pub const WINDOW_EVENTS_MAX: u64 = 100_000;
/// How long after a training id's UUID v7 time the event naming it may be
/// recorded (a slow actor, a retried append), seconds.
pub const LOCATE_MARGIN_SECS: i64 = 60;
/// Most `$all` events scanned to locate a training id.
pub const LOCATE_EVENTS_MAX: u64 = 100_000;
/// Most learner-stream events read for one session or round.
pub const TRAINING_EVENTS_MAX: usize = 20_000;
/// Events per read while scanning.
const SCAN_CHUNK_EVENTS: usize = 1_000;

/// What an id turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainKind {
    /// A gateway call.
    Gateway,
    /// A training session or round.
    Training,
}

impl ExplainKind {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExplainKind::Gateway => "gateway",
            ExplainKind::Training => "training",
        }
    }
}

/// How much of the log a query read, for the summary (and for tests that check it
/// stayed small).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// First `$all` position scanned (`None`: no `$all` scan).
    pub window_first: Option<u64>,
    /// Last `$all` position scanned.
    pub window_last: Option<u64>,
    /// `$all` events read while scanning.
    pub all_events_read: u64,
    /// Stream events read.
    pub stream_events_read: u64,
    /// Whether a bound stopped the scan before its natural end.
    pub truncated: bool,
}

impl ScanStats {
    fn json(&self) -> Value {
        json!({
            "window_first_position": self.window_first,
            "window_last_position": self.window_last,
            "all_events_read": self.all_events_read,
            "stream_events_read": self.stream_events_read,
            "truncated": self.truncated,
        })
    }
}

/// The answer to a why-query.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The id asked about.
    pub id: Uuid,
    /// What it is.
    pub kind: ExplainKind,
    /// For people: what was decided and why, cost, outcome.
    pub summary: Value,
    /// The chain, in position order.
    pub events: Vec<RecordedEvent>,
    /// What was read to find it.
    pub scan: ScanStats,
}

impl Explanation {
    /// `{"request_id", "kind", "summary", "events"}`; `summary.scan` says what was read.
    pub fn to_json(&self) -> Value {
        let mut summary = self.summary.clone();
        if let Value::Object(map) = &mut summary {
            map.insert("scan".into(), self.scan.json());
        }
        json!({
            "request_id": self.id,
            "kind": self.kind.as_str(),
            "summary": summary,
            "events": self.events.iter().map(envelope_json).collect::<Vec<_>>(),
        })
    }
}

/// Why a why-query failed (an unknown id is `Ok(None)`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Explains `id`: a gateway request if `request-{id}` exists, else a training
/// session or round. `learner_stream` is an optional hint (`learner-{user}`) for
/// training ids. `None` when the log knows no such id.
pub async fn explain(
    store: &dyn EventStore,
    id: Uuid,
    learner_stream: Option<&str>,
) -> Result<Option<Explanation>, ExplainError> {
    if let Some(found) = gateway::explain(store, id).await? {
        return Ok(Some(found));
    }
    Ok(training::explain(store, id, learner_stream).await?)
}

/// The time embedded in a UUID v7 (or v1/v6) id.
pub fn uuid_time(id: Uuid) -> Option<DateTime<Utc>> {
    let (seconds, nanos) = id.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
}

fn seconds(count: i64) -> TimeDelta {
    TimeDelta::seconds(count)
}

/// Reads a whole stream, at most `max` events.
async fn read_stream_bounded(
    store: &dyn EventStore,
    stream: &str,
    max: usize,
    scan: &mut ScanStats,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    let mut revision = 0u64;
    while out.len() < max {
        let chunk = (max - out.len()).min(SCAN_CHUNK_EVENTS);
        let events = store.read_stream(stream, revision, chunk).await?;
        let Some(last) = events.last() else { break };
        revision = last.revision + 1;
        scan.stream_events_read += u64::try_from(events.len()).unwrap_or(0);
        out.extend(events);
    }
    if out.len() >= max {
        scan.truncated = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
