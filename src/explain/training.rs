//! The training half of [`super::explain`]: locate a session or round by its id,
//! collect its events from the learner's stream, summarise them.

use serde_json::{json, Value};
use tutorlog_schemas::{events::AlgoRunRecord, Envelope, Event, RecordedEvent};
use tutorlog_store::{EventStore, StoreError};
use uuid::Uuid;

use super::{
    seconds, uuid_time, ExplainKind, Explanation, ScanStats, ID_TIME_MARGIN_SECS,
    LOCATE_EVENTS_MAX, LOCATE_MARGIN_SECS, SCAN_CHUNK_EVENTS, TRAINING_EVENTS_MAX,
};
use crate::log_time::{first_position_at_or_after, next_position};

/// Learner streams are `learner-{user}`.
const LEARNER_PREFIX: &str = "learner-";

/// What the id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Session(Uuid),
    Round { session: Uuid, round: Uuid },
}

/// Where the id first appears.
struct Located {
    stream: String,
    revision: u64,
    target: Target,
}

/// The session and round an event belongs to, if it is a session event.
fn session_of(event: &Event) -> Option<(Uuid, Option<Uuid>)> {
    match event {
        Event::TrainingStarted(e) => Some((e.session_id, None)),
        Event::TrainingRoundStarted(e) => Some((e.session_id, Some(e.round_id))),
        Event::TrainingRoundCompleted(e) => Some((e.session_id, Some(e.round_id))),
        Event::TrainingPaused(e) => Some((e.session_id, None)),
        Event::TrainingResumed(e) => Some((e.session_id, None)),
        Event::TrainingCompleted(e) => Some((e.session_id, None)),
        _ => None,
    }
}

fn target_in(event: &Event, id: Uuid) -> Option<Target> {
    let (session, round) = session_of(event)?;
    if session == id {
        return Some(Target::Session(session));
    }
    (round == Some(id)).then_some(Target::Round { session, round: id })
}

fn decode(recorded: &RecordedEvent) -> Option<Event> {
    if !recorded.event_type.starts_with("training.") && !recorded.event_type.starts_with("mastery.")
    {
        return None;
    }
    Envelope::decode(recorded).ok().map(|e| e.payload)
}

/// The training session or round `id`, or `None` when neither locator finds it.
pub(super) async fn explain(
    store: &dyn EventStore,
    id: Uuid,
    learner_stream: Option<&str>,
) -> Result<Option<Explanation>, StoreError> {
    let mut scan = ScanStats::default();
    let mut located = locate_by_time(store, id, &mut scan).await?;
    if located.is_none() {
        if let Some(stream) = learner_stream {
            located = locate_in_stream(store, id, stream, &mut scan).await?;
        }
    }
    let Some(located) = located else {
        return Ok(None);
    };
    let events = collect(store, &located, &mut scan).await?;
    let summary = summarise(&located, &events);
    Ok(Some(Explanation {
        id,
        kind: ExplainKind::Training,
        summary,
        events: events.into_iter().map(|(recorded, _)| recorded).collect(),
        scan,
    }))
}

async fn locate_by_time(
    store: &dyn EventStore,
    id: Uuid,
    scan: &mut ScanStats,
) -> Result<Option<Located>, StoreError> {
    let Some(made) = uuid_time(id) else {
        return Ok(None);
    };
    let end = next_position(store);
    let start =
        first_position_at_or_after(store, made - seconds(ID_TIME_MARGIN_SECS), 0, end).await?;
    let until = made + seconds(LOCATE_MARGIN_SECS);
    scan.window_first = Some(start);
    let mut cursor = start;
    while cursor < end {
        if cursor - start >= LOCATE_EVENTS_MAX {
            scan.truncated = true;
            break;
        }
        let events = store.read_all(cursor, SCAN_CHUNK_EVENTS).await?;
        let Some(tail) = events.last() else { break };
        cursor = tail.position + 1;
        for recorded in &events {
            if recorded.recorded_at > until {
                return Ok(None);
            }
            scan.all_events_read += 1;
            scan.window_last = Some(recorded.position);
            if !recorded.stream.starts_with(LEARNER_PREFIX) {
                continue;
            }
            if let Some(target) = decode(recorded).and_then(|e| target_in(&e, id)) {
                return Ok(Some(Located {
                    stream: recorded.stream.clone(),
                    revision: recorded.revision,
                    target,
                }));
            }
        }
    }
    Ok(None)
}

async fn locate_in_stream(
    store: &dyn EventStore,
    id: Uuid,
    stream: &str,
    scan: &mut ScanStats,
) -> Result<Option<Located>, StoreError> {
    let mut revision = 0u64;
    while scan.stream_events_read < LOCATE_EVENTS_MAX {
        let events = store
            .read_stream(stream, revision, SCAN_CHUNK_EVENTS)
            .await?;
        let Some(tail) = events.last() else {
            return Ok(None);
        };
        revision = tail.revision + 1;
        scan.stream_events_read += u64::try_from(events.len()).unwrap_or(0);
        for recorded in &events {
            if let Some(target) = decode(recorded).and_then(|e| target_in(&e, id)) {
                return Ok(Some(Located {
                    stream: stream.to_owned(),
                    revision: recorded.revision,
                    target,
                }));
            }
        }
    }
    scan.truncated = true;
    Ok(None)
}

fn belongs(target: Target, event: &Event) -> bool {
    match (target, session_of(event)) {
        (Target::Session(session), Some((s, _))) => s == session,
        (Target::Round { round, .. }, Some((_, r))) => r == Some(round),
        _ => false,
    }
}

/// Whether nothing of the target can follow `event`.
fn ends(target: Target, event: &Event) -> bool {
    match (target, event) {
        (Target::Session(session), Event::TrainingCompleted(e)) => e.session_id == session,
        (Target::Round { round, .. }, Event::TrainingRoundCompleted(e)) => e.round_id == round,
        _ => false,
    }
}

/// Reads the learner stream from just before the id's first event until the
/// target ends (plus one event, for a trailing `mastery.improved`), then keeps the
/// target's events and the mastery events attached to them.
async fn collect(
    store: &dyn EventStore,
    located: &Located,
    scan: &mut ScanStats,
) -> Result<Vec<(RecordedEvent, Option<Event>)>, StoreError> {
    let mut window: Vec<(RecordedEvent, Option<Event>)> = Vec::new();
    let mut revision = located.revision.saturating_sub(1);
    let mut ended_at: Option<usize> = None;
    'read: while window.len() < TRAINING_EVENTS_MAX {
        let events = store
            .read_stream(&located.stream, revision, SCAN_CHUNK_EVENTS)
            .await?;
        let Some(tail) = events.last() else { break };
        revision = tail.revision + 1;
        scan.stream_events_read += u64::try_from(events.len()).unwrap_or(0);
        for recorded in events {
            let event = decode(&recorded);
            let is_end = event.as_ref().is_some_and(|e| ends(located.target, e));
            window.push((recorded, event));
            if ended_at.is_some_and(|at| window.len() > at + 1) {
                break 'read;
            }
            if is_end {
                ended_at = Some(window.len() - 1);
            }
        }
    }
    if ended_at.is_none() && window.len() >= TRAINING_EVENTS_MAX {
        scan.truncated = true;
    }
    Ok(attach(located.target, window))
}

fn attach(
    target: Target,
    window: Vec<(RecordedEvent, Option<Event>)>,
) -> Vec<(RecordedEvent, Option<Event>)> {
    let member: Vec<bool> = window
        .iter()
        .map(|(_, e)| e.as_ref().is_some_and(|e| belongs(target, e)))
        .collect();
    let keep: Vec<bool> = window
        .iter()
        .enumerate()
        .map(|(index, (_, event))| match event {
            _ if member.get(index).copied().unwrap_or(false) => true,
            Some(Event::MasteryDecayed(_)) => member.get(index + 1).copied().unwrap_or(false),
            Some(Event::MasteryImproved(_)) => index
                .checked_sub(1)
                .and_then(|i| member.get(i).copied())
                .unwrap_or(false),
            _ => false,
        })
        .collect();
    window
        .into_iter()
        .zip(keep)
        .filter_map(|(event, keep)| keep.then_some(event))
        .collect()
}

fn runs_json(runs: &[AlgoRunRecord], round_id: Uuid, event: &str) -> Vec<Value> {
    runs.iter()
        .map(|run| {
            json!({
                "run_id": run.run_id, "key": run.key, "version": run.version,
                "params_checksum": run.params_checksum,
                "input": serde_json::from_str::<Value>(&run.input_summary).unwrap_or(Value::String(run.input_summary.clone())),
                "output": serde_json::from_str::<Value>(&run.output_summary).unwrap_or(Value::String(run.output_summary.clone())),
                "round_id": round_id, "carried_by": event,
            })
        })
        .collect()
}

#[derive(Default)]
struct Session {
    user: Option<String>,
    focus_area: Option<String>,
    rounds_planned: Option<u32>,
    status: &'static str,
    rounds: Vec<Value>,
    pauses: Vec<Value>,
    algo_runs: Vec<Value>,
    scores: Vec<u32>,
    mastery: Option<(f64, f64)>,
}

fn summarise(located: &Located, events: &[(RecordedEvent, Option<Event>)]) -> Value {
    let mut session = Session {
        user: located
            .stream
            .strip_prefix(LEARNER_PREFIX)
            .map(str::to_owned),
        status: "in_progress",
        ..Session::default()
    };
    for event in events.iter().filter_map(|(_, e)| e.as_ref()) {
        session.add(event);
    }
    let (session_id, round_id) = match located.target {
        Target::Session(s) => (s, None),
        Target::Round { session, round } => (session, Some(round)),
    };
    session.into_json(session_id, round_id)
}

impl Session {
    fn add(&mut self, event: &Event) {
        match event {
            Event::TrainingStarted(e) => {
                self.focus_area = Some(e.focus_area.clone());
                self.rounds_planned = Some(e.rounds);
            }
            Event::TrainingRoundStarted(e) => {
                self.algo_runs.extend(runs_json(
                    &e.algo_runs,
                    e.round_id,
                    "training.round.started",
                ));
                self.rounds.push(json!({
                    "round_id": e.round_id, "round_number": e.round_number, "item_id": e.item_id,
                    "difficulty": e.difficulty, "prompt": e.prompt, "started_at": e.started_at,
                    "graded": false,
                }));
            }
            Event::TrainingRoundCompleted(e) => self.completed(e),
            Event::TrainingPaused(e) => {
                self.status = "paused";
                self.pauses.push(json!({ "reason": e.reason }));
            }
            Event::TrainingResumed(_) => self.status = "in_progress",
            Event::TrainingCompleted(_) => self.status = "completed",
            _ => {}
        }
    }

    fn completed(&mut self, e: &tutorlog_schemas::events::TrainingRoundCompleted) {
        self.focus_area.get_or_insert_with(|| e.focus_area.clone());
        self.algo_runs.extend(runs_json(
            &e.algo_runs,
            e.round_id,
            "training.round.completed",
        ));
        self.scores.push(e.score);
        self.mastery = Some(match self.mastery {
            Some((before, _)) => (before, e.mastery_after),
            None => (e.mastery_before, e.mastery_after),
        });
        let graded = json!({
            "round_id": e.round_id, "round_number": e.round_number, "item_id": e.item_id,
            "graded": true, "score": e.score, "correct": e.correct, "feedback": e.feedback,
            "mistake_tag": e.mistake_tag, "mastery_before": e.mastery_before,
            "mastery_after": e.mastery_after, "next_review_due": e.next_review_due,
            "completed_at": e.completed_at,
        });
        let existing = self
            .rounds
            .iter_mut()
            .find(|r| r["round_id"] == json!(e.round_id));
        match (existing, graded) {
            (Some(Value::Object(row)), Value::Object(graded)) => row.extend(graded),
            (_, graded) => self.rounds.push(graded),
        }
    }

    fn into_json(self, session_id: Uuid, round_id: Option<Uuid>) -> Value {
        let graded = self.scores.len();
        let mean = if graded == 0 {
            None
        } else {
            let total: u64 = self.scores.iter().map(|s| u64::from(*s)).sum();
            Some(total / u64::try_from(graded).unwrap_or(1))
        };
        let mut text = format!(
            "{} practised {}: {graded} round(s) graded",
            self.user.as_deref().unwrap_or("a learner"),
            self.focus_area
                .as_deref()
                .unwrap_or("an unknown focus area"),
        );
        if let Some(mean) = mean {
            text.push_str(&format!(", mean score {mean}"));
        }
        if let Some((before, after)) = self.mastery {
            text.push_str(&format!(", mastery {before:.1} → {after:.1}"));
        }
        if round_id.is_none() {
            text.push_str(&format!("; session {}", self.status));
        }
        json!({
            "text": text,
            "session_id": session_id,
            "round_id": round_id,
            "user_id": self.user,
            "focus_area": self.focus_area,
            "rounds_planned": self.rounds_planned,
            "status": if round_id.is_some() { None } else { Some(self.status) },
            "rounds": self.rounds,
            "pauses": self.pauses,
            "algo_runs": self.algo_runs,
        })
    }
}
