//! The circuit-breaker decider: one provider's health (stream `circuit-{provider}`).
//!
//! resilience4j's count-based breaker, with the seed's numbers as defaults:
//! - **closed**: calls flow; `failure_threshold` consecutive failures that count
//!   against the provider (anything but a malformed request) open it. A success
//!   resets the count.
//! - **open**: no calls for `open_secs`. The first check after that moves it to
//!   half-open (the lock-free [`super::circuit_view::CircuitView`] does it so a
//!   request never waits; it tells the actor, which records `circuit.half_opened`).
//! - **half-open**: at most `half_open_max_calls` trial calls (permits handed out by
//!   the view). `success_threshold` trial successes close it; one trial failure
//!   opens it again for another `open_secs`.
//!
//! Results of calls that started before a transition (late results) are recorded
//! but move nothing: only trial calls decide a half-open circuit.

use chrono::{DateTime, TimeDelta, Utc};
use tutorlog_schemas::{
    events::{
        CircuitClosed, CircuitHalfOpened, CircuitOpened, ErrorKind, ProviderPriorityChanged,
        ProviderQueryCompleted, ProviderQueryFailed,
    },
    CodecError, Event, NewEvent, RecordedEvent,
};
use uuid::Uuid;

use crate::decider::{decode_via_catalogue, encode_via_catalogue, Decider, LogEvent};

/// The breaker's settings (from `providers[].circuit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open a closed circuit.
    pub failure_threshold: u32,
    /// Trial successes that close a half-open circuit.
    pub success_threshold: u32,
    /// Seconds an open circuit stays open.
    pub open_secs: u64,
    /// Trial calls allowed while half-open.
    pub half_open_max_calls: u32,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        CircuitPolicy {
            failure_threshold: 5,
            success_threshold: 2,
            open_secs: 60,
            half_open_max_calls: 3,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CircuitPhase {
    /// Calls flow.
    #[default]
    Closed,
    /// No calls until `retry_at`.
    Open {
        /// When trial calls are allowed.
        retry_at: DateTime<Utc>,
    },
    /// Trial calls decide.
    HalfOpen,
}

impl CircuitPhase {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitPhase::Closed => "closed",
            CircuitPhase::Open { .. } => "open",
            CircuitPhase::HalfOpen => "half_open",
        }
    }
}

/// What the breaker knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitState {
    /// The phase.
    pub phase: CircuitPhase,
    /// Consecutive counted failures while closed.
    pub consecutive_failures: u32,
    /// Trial successes in the current half-open phase.
    pub trial_successes: u32,
    /// How many times the circuit has opened: numbers the open/half-open episodes
    /// so the lock-free view can tell a stale publication from a new one.
    pub episode: u32,
    /// Calls recorded.
    pub calls: u64,
    /// Failed calls recorded.
    pub failures: u64,
    /// The provider's configured priority, as last recorded.
    pub priority: Option<u32>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// It answered.
    Success,
    /// It failed.
    Failure {
        /// How.
        kind: ErrorKind,
        /// Short description (no secrets).
        message: String,
    },
}

/// What callers tell a breaker.
#[derive(Debug, Clone, PartialEq)]
pub enum CircuitCommand {
    /// A call finished.
    Record {
        /// The gateway request.
        request_id: Uuid,
        /// Model called.
        model: String,
        /// Call latency.
        latency_micros: u64,
        /// How it ended.
        outcome: CallOutcome,
        /// Whether it ran on a half-open trial permit.
        trial: bool,
        /// The settings in force.
        policy: CircuitPolicy,
    },
    /// Time passed: an open circuit whose period ended becomes half-open.
    Tick {
        /// The settings in force.
        policy: CircuitPolicy,
    },
    /// The configured priority is this (recorded when it differs from the last).
    SetPriority {
        /// The priority.
        priority: u32,
        /// The settings in force.
        policy: CircuitPolicy,
    },
}

/// Circuit events (a subset of the catalogue).
#[derive(Debug, Clone, PartialEq)]
pub enum CircuitEvent {
    /// `provider.query.completed`.
    Completed(ProviderQueryCompleted),
    /// `provider.query.failed`.
    Failed(ProviderQueryFailed),
    /// `circuit.opened`.
    Opened(CircuitOpened),
    /// `circuit.half_opened`.
    HalfOpened(CircuitHalfOpened),
    /// `circuit.closed`.
    Closed(CircuitClosed),
    /// `provider.priority.changed`.
    PriorityChanged(ProviderPriorityChanged),
}

impl From<CircuitEvent> for Event {
    fn from(event: CircuitEvent) -> Event {
        match event {
            CircuitEvent::Completed(e) => Event::ProviderQueryCompleted(e),
            CircuitEvent::Failed(e) => Event::ProviderQueryFailed(e),
            CircuitEvent::Opened(e) => Event::CircuitOpened(e),
            CircuitEvent::HalfOpened(e) => Event::CircuitHalfOpened(e),
            CircuitEvent::Closed(e) => Event::CircuitClosed(e),
            CircuitEvent::PriorityChanged(e) => Event::ProviderPriorityChanged(e),
        }
    }
}

impl TryFrom<Event> for CircuitEvent {
    type Error = Event;

    fn try_from(event: Event) -> Result<Self, Event> {
        match event {
            Event::ProviderQueryCompleted(e) => Ok(CircuitEvent::Completed(e)),
            Event::ProviderQueryFailed(e) => Ok(CircuitEvent::Failed(e)),
            Event::CircuitOpened(e) => Ok(CircuitEvent::Opened(e)),
            Event::CircuitHalfOpened(e) => Ok(CircuitEvent::HalfOpened(e)),
            Event::CircuitClosed(e) => Ok(CircuitEvent::Closed(e)),
            Event::ProviderPriorityChanged(e) => Ok(CircuitEvent::PriorityChanged(e)),
            other => Err(other),
        }
    }
}

impl LogEvent for CircuitEvent {
    fn to_new_event(&self) -> Result<NewEvent, CodecError> {
        encode_via_catalogue(self)
    }

    fn from_recorded(recorded: &RecordedEvent) -> Result<Option<Self>, CodecError> {
        decode_via_catalogue(recorded)
    }
}

/// The circuit decider. Commands are never refused.
#[derive(Debug)]
pub struct Circuit;

fn opened(
    cause: &str,
    failures: u32,
    last_error: ErrorKind,
    policy: &CircuitPolicy,
    now: DateTime<Utc>,
) -> CircuitEvent {
    let open_secs = policy.open_secs;
    let retry_at = now + TimeDelta::seconds(i64::try_from(open_secs).unwrap_or(i64::MAX / 1_000));
    CircuitEvent::Opened(CircuitOpened {
        cause: cause.to_owned(),
        failures,
        last_error,
        open_secs,
        retry_at,
    })
}

impl Decider for Circuit {
    type State = CircuitState;
    type Command = CircuitCommand;
    type Event = CircuitEvent;
    type Rejection = std::convert::Infallible;

    fn stream_name(id: &str) -> String {
        format!("circuit-{id}")
    }

    fn decide(
        state: &CircuitState,
        command: &CircuitCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CircuitEvent>, Self::Rejection> {
        let mut events = Vec::new();
        let policy = match command {
            CircuitCommand::Record { policy, .. }
            | CircuitCommand::Tick { policy }
            | CircuitCommand::SetPriority { policy, .. } => policy,
        };
        // Time first: an open circuit whose period ended is half-open by now,
        // whatever the command.
        let mut phase = state.phase;
        if let CircuitPhase::Open { retry_at } = phase {
            if now >= retry_at {
                events.push(CircuitEvent::HalfOpened(CircuitHalfOpened {
                    cause: "open_timeout_elapsed".into(),
                    max_trial_calls: policy.half_open_max_calls,
                }));
                phase = CircuitPhase::HalfOpen;
            }
        }
        if let CircuitCommand::SetPriority { priority, .. } = command {
            if state.priority != Some(*priority) {
                events.push(CircuitEvent::PriorityChanged(ProviderPriorityChanged {
                    previous: state.priority,
                    priority: *priority,
                }));
            }
            return Ok(events);
        }
        let CircuitCommand::Record {
            request_id,
            model,
            latency_micros,
            outcome,
            trial,
            ..
        } = command
        else {
            return Ok(events);
        };
        // Only a trial call decides a half-open circuit.
        let decides = match phase {
            CircuitPhase::Closed => true,
            CircuitPhase::HalfOpen => *trial,
            CircuitPhase::Open { .. } => false,
        };
        match outcome {
            CallOutcome::Success => {
                events.push(CircuitEvent::Completed(ProviderQueryCompleted {
                    request_id: *request_id,
                    model: model.clone(),
                    latency_micros: *latency_micros,
                    trial: *trial,
                }));
                let successes = if phase == CircuitPhase::HalfOpen {
                    state.trial_successes + 1
                } else {
                    0
                };
                if decides
                    && phase == CircuitPhase::HalfOpen
                    && successes >= policy.success_threshold
                {
                    events.push(CircuitEvent::Closed(CircuitClosed {
                        cause: "trial_successes".into(),
                        successes,
                    }));
                }
            }
            CallOutcome::Failure { kind, message } => {
                events.push(CircuitEvent::Failed(ProviderQueryFailed {
                    request_id: *request_id,
                    model: model.clone(),
                    latency_micros: *latency_micros,
                    error_kind: *kind,
                    message: message.clone(),
                    trial: *trial,
                }));
                if decides && kind.counts_against_provider() {
                    match phase {
                        CircuitPhase::Closed => {
                            let failures = state.consecutive_failures + 1;
                            if failures >= policy.failure_threshold {
                                events.push(opened(
                                    "failure_threshold",
                                    failures,
                                    *kind,
                                    policy,
                                    now,
                                ));
                            }
                        }
                        CircuitPhase::HalfOpen => {
                            events.push(opened("trial_failed", 1, *kind, policy, now));
                        }
                        CircuitPhase::Open { .. } => {}
                    }
                }
            }
        }
        Ok(events)
    }

    fn evolve(mut state: CircuitState, event: &CircuitEvent) -> CircuitState {
        match event {
            CircuitEvent::Completed(completed) => {
                state.calls += 1;
                match state.phase {
                    CircuitPhase::Closed => state.consecutive_failures = 0,
                    CircuitPhase::HalfOpen if completed.trial => state.trial_successes += 1,
                    _ => {}
                }
            }
            CircuitEvent::Failed(failed) => {
                state.calls += 1;
                state.failures += 1;
                if state.phase == CircuitPhase::Closed
                    && failed.error_kind.counts_against_provider()
                {
                    state.consecutive_failures += 1;
                }
            }
            CircuitEvent::Opened(opened) => {
                state.phase = CircuitPhase::Open {
                    retry_at: opened.retry_at,
                };
                state.consecutive_failures = 0;
                state.trial_successes = 0;
                state.episode += 1;
            }
            CircuitEvent::HalfOpened(_) => {
                state.phase = CircuitPhase::HalfOpen;
                state.trial_successes = 0;
            }
            CircuitEvent::Closed(_) => {
                state.phase = CircuitPhase::Closed;
                state.consecutive_failures = 0;
                state.trial_successes = 0;
            }
            CircuitEvent::PriorityChanged(changed) => state.priority = Some(changed.priority),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::reference_time;

    const POLICY: CircuitPolicy = CircuitPolicy {
        failure_threshold: 5,
        success_threshold: 2,
        open_secs: 60,
        half_open_max_calls: 3,
    };

    fn record(id: u128, outcome: CallOutcome, trial: bool) -> CircuitCommand {
        CircuitCommand::Record {
            request_id: Uuid::from_u128(id),
            model: "m".into(),
            latency_micros: 100,
            outcome,
            trial,
            policy: POLICY,
        }
    }

    fn fail(kind: ErrorKind) -> CallOutcome {
        CallOutcome::Failure {
            kind,
            message: "boom".into(),
        }
    }

    /// Runs commands in order at `now`, folding what each decides.
    fn run(
        mut state: CircuitState,
        commands: &[CircuitCommand],
        now: DateTime<Utc>,
    ) -> (CircuitState, Vec<CircuitEvent>) {
        let mut all = Vec::new();
        for command in commands {
            let events = Circuit::decide(&state, command, now).expect("infallible");
            state = Circuit::fold(state, &events);
            all.extend(events);
        }
        (state, all)
    }

    fn open_after_five_failures() -> (CircuitState, DateTime<Utc>) {
        let now = reference_time();
        let failures: Vec<_> = (0..5)
            .map(|i| record(i, fail(ErrorKind::Server), false))
            .collect();
        let (state, _) = run(CircuitState::default(), &failures, now);
        (state, now)
    }

    #[test]
    fn closed_opens_after_the_failure_threshold_and_not_before() {
        let now = reference_time();
        let four: Vec<_> = (0..4)
            .map(|i| record(i, fail(ErrorKind::Timeout), false))
            .collect();
        let (state, events) = run(CircuitState::default(), &four, now);
        assert_eq!(state.phase, CircuitPhase::Closed);
        assert_eq!(state.consecutive_failures, 4);
        assert!(events.iter().all(|e| matches!(e, CircuitEvent::Failed(_))));
        let events = Circuit::decide(&state, &record(9, fail(ErrorKind::Server), false), now)
            .expect("infallible");
        assert_eq!(
            events[1],
            CircuitEvent::Opened(CircuitOpened {
                cause: "failure_threshold".into(),
                failures: 5,
                last_error: ErrorKind::Server,
                open_secs: 60,
                retry_at: now + TimeDelta::seconds(60),
            })
        );
        let state = Circuit::fold(state, &events);
        assert_eq!(
            state.phase,
            CircuitPhase::Open {
                retry_at: now + TimeDelta::seconds(60)
            }
        );
        assert_eq!(state.episode, 1);
    }

    #[test]
    fn a_success_resets_the_consecutive_count() {
        let now = reference_time();
        let mut commands: Vec<_> = (0..4)
            .map(|i| record(i, fail(ErrorKind::Server), false))
            .collect();
        commands.push(record(10, CallOutcome::Success, false));
        commands.extend((20..24).map(|i| record(i, fail(ErrorKind::Server), false)));
        let (state, _) = run(CircuitState::default(), &commands, now);
        assert_eq!(state.phase, CircuitPhase::Closed);
        assert_eq!(state.consecutive_failures, 4);
        assert_eq!((state.calls, state.failures), (9, 8));
    }

    #[test]
    fn bad_requests_do_not_count_against_the_provider() {
        let now = reference_time();
        let commands: Vec<_> = (0..10)
            .map(|i| record(i, fail(ErrorKind::BadRequest), false))
            .collect();
        let (state, _) = run(CircuitState::default(), &commands, now);
        assert_eq!(state.phase, CircuitPhase::Closed);
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(state.failures, 10);
    }

    #[test]
    fn open_stays_open_until_its_period_ends_then_half_opens() {
        let (state, opened_at) = open_after_five_failures();
        let early = Circuit::decide(
            &state,
            &CircuitCommand::Tick { policy: POLICY },
            opened_at + TimeDelta::seconds(59),
        )
        .expect("infallible");
        assert!(early.is_empty());
        let events = Circuit::decide(
            &state,
            &CircuitCommand::Tick { policy: POLICY },
            opened_at + TimeDelta::seconds(60),
        )
        .expect("infallible");
        assert_eq!(
            events,
            vec![CircuitEvent::HalfOpened(CircuitHalfOpened {
                cause: "open_timeout_elapsed".into(),
                max_trial_calls: 3,
            })]
        );
        assert_eq!(Circuit::fold(state, &events).phase, CircuitPhase::HalfOpen);
    }

    #[test]
    fn late_results_while_open_move_nothing() {
        let (state, opened_at) = open_after_five_failures();
        let (after, events) = run(
            state,
            &[
                record(50, CallOutcome::Success, false),
                record(51, fail(ErrorKind::Server), false),
            ],
            opened_at + TimeDelta::seconds(1),
        );
        assert_eq!(after.phase, state.phase);
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn half_open_closes_after_the_success_threshold_of_trials() {
        let (state, opened_at) = open_after_five_failures();
        let later = opened_at + TimeDelta::seconds(61);
        let (state, _) = run(state, &[CircuitCommand::Tick { policy: POLICY }], later);
        // A late, non-trial success does not count.
        let (state, _) = run(state, &[record(60, CallOutcome::Success, false)], later);
        assert_eq!(
            (state.phase, state.trial_successes),
            (CircuitPhase::HalfOpen, 0)
        );
        let (state, _) = run(state, &[record(61, CallOutcome::Success, true)], later);
        assert_eq!(state.phase, CircuitPhase::HalfOpen);
        let events = Circuit::decide(&state, &record(62, CallOutcome::Success, true), later)
            .expect("infallible");
        assert_eq!(
            events[1],
            CircuitEvent::Closed(CircuitClosed {
                cause: "trial_successes".into(),
                successes: 2,
            })
        );
        let state = Circuit::fold(state, &events);
        assert_eq!(state.phase, CircuitPhase::Closed);
        assert_eq!(state.consecutive_failures, 0);
    }

    #[test]
    fn a_trial_failure_opens_again_for_a_new_period() {
        let (state, opened_at) = open_after_five_failures();
        let later = opened_at + TimeDelta::seconds(70);
        let (state, events) = run(
            state,
            &[record(70, fail(ErrorKind::RateLimited), true)],
            later,
        );
        assert!(matches!(events[0], CircuitEvent::HalfOpened(_)));
        assert_eq!(
            events[2],
            CircuitEvent::Opened(CircuitOpened {
                cause: "trial_failed".into(),
                failures: 1,
                last_error: ErrorKind::RateLimited,
                open_secs: 60,
                retry_at: later + TimeDelta::seconds(60),
            })
        );
        assert_eq!(state.episode, 2);
        assert_eq!(
            state.phase,
            CircuitPhase::Open {
                retry_at: later + TimeDelta::seconds(60)
            }
        );
    }

    #[test]
    fn a_priority_is_recorded_only_when_it_changes() {
        let set = |priority| CircuitCommand::SetPriority {
            priority,
            policy: POLICY,
        };
        let first = Circuit::given([])
            .when(set(2))
            .then([CircuitEvent::PriorityChanged(ProviderPriorityChanged {
                previous: None,
                priority: 2,
            })]);
        assert_eq!(first.priority, Some(2));
        let history = [CircuitEvent::PriorityChanged(ProviderPriorityChanged {
            previous: None,
            priority: 2,
        })];
        Circuit::given(history.clone()).when(set(2)).then([]);
        Circuit::given(history)
            .when(set(1))
            .then([CircuitEvent::PriorityChanged(ProviderPriorityChanged {
                previous: Some(2),
                priority: 1,
            })]);
    }

    #[test]
    fn replaying_the_events_gives_the_same_state() {
        let (state, opened_at) = open_after_five_failures();
        let later = opened_at + TimeDelta::seconds(61);
        let (final_state, _) = run(
            state,
            &[
                record(80, CallOutcome::Success, true),
                record(81, CallOutcome::Success, true),
            ],
            later,
        );
        let now = reference_time();
        let mut events = Vec::new();
        let mut replayed = CircuitState::default();
        for (i, command) in (0..5)
            .map(|i| (now, record(i, fail(ErrorKind::Server), false)))
            .chain([
                (later, record(80, CallOutcome::Success, true)),
                (later, record(81, CallOutcome::Success, true)),
            ])
        {
            let decided = Circuit::decide(&replayed, &command, i).expect("infallible");
            replayed = Circuit::fold(replayed, &decided);
            events.extend(decided);
        }
        assert_eq!(replayed, final_state);
        assert_eq!(Circuit::fold(CircuitState::default(), &events), final_state);
    }
}
