//! The pure core of every aggregate: a *decider*.
//!
//! ```text
//! decide(&State, &Command, now) -> Result<Vec<Event>, Rejection>
//! evolve(State, &Event)         -> State
//! ```
//!
//! A decider does no I/O and never reads a clock: `now` is an argument, and any
//! randomness must be seeded from event data. That makes every business rule a plain
//! function, tested with [`Given`] (`given(events).when(command).then(events)`)
//! without tokio, actors or a log. The actor in [`crate::aggregate`] wraps a decider
//! and does the loading, appending and replying.
//!
//! How a decider's events map to log records is the event type's business
//! ([`LogEvent`]): the catalogue enum [`tutorlog_schemas::Event`] implements it, and a
//! domain that keeps a narrower enum of its own can implement it in a few lines with
//! [`encode_via_catalogue`] and [`decode_via_catalogue`].
//!
//! Nothing in this module may import tokio or ractor.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use tutorlog_schemas::{CodecError, Event, NewEvent, RecordedEvent};

use crate::snapshot::SnapshotPolicy;

/// An event type that can be written to and read back from the log.
pub trait LogEvent: Sized {
    /// Encodes the event as a record to append (with a fresh event id).
    fn to_new_event(&self) -> Result<NewEvent, CodecError>;

    /// Decodes a stored record. `Ok(None)` means "a record this aggregate does not
    /// fold" (it still counts for the stream's revision); an `Err` means the record
    /// should be understood but cannot be, and loading must stop.
    fn from_recorded(recorded: &RecordedEvent) -> Result<Option<Self>, CodecError>;
}

impl LogEvent for Event {
    fn to_new_event(&self) -> Result<NewEvent, CodecError> {
        NewEvent::from_event(self)
    }

    fn from_recorded(recorded: &RecordedEvent) -> Result<Option<Self>, CodecError> {
        Event::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.payload,
        )
        .map(Some)
    }
}

/// [`LogEvent::to_new_event`] for a domain enum that converts into the catalogue.
pub fn encode_via_catalogue<E>(event: &E) -> Result<NewEvent, CodecError>
where
    E: Clone + Into<Event>,
{
    NewEvent::from_event(&event.clone().into())
}

/// [`LogEvent::from_recorded`] for a domain enum that is a subset of the catalogue:
/// catalogue events the domain enum does not take (`TryFrom` fails) are skipped.
pub fn decode_via_catalogue<E>(recorded: &RecordedEvent) -> Result<Option<E>, CodecError>
where
    E: TryFrom<Event>,
{
    let event = Event::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )?;
    Ok(E::try_from(event).ok())
}

/// A pure aggregate: business rules as two functions over a state.
pub trait Decider: 'static {
    /// What the aggregate knows; `Default` is the state of an empty stream.
    type State: Default + Clone + Send + 'static;
    /// What callers ask for.
    type Command: Send + 'static;
    /// What happened (what gets stored).
    type Event: LogEvent + Send + 'static;
    /// Why a command was refused: a business answer, not a failure.
    type Rejection: Send + 'static;

    /// The log stream holding the aggregate with this id, e.g. `learner-{id}`.
    fn stream_name(id: &str) -> String;

    /// Decides what a command makes happen, given the current state and time.
    /// Returning no events is a valid answer (an idempotent no-op).
    fn decide(
        state: &Self::State,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Folds one event into the state. Cannot fail: a stored event that does not
    /// fit is a bug, not a runtime condition.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// How this decider's state is snapshotted, if it is. The default, `None`,
    /// means never: its aggregate replays the whole stream on every start. A
    /// decider opts in by returning a [`SnapshotPolicy`] (its state then needs an
    /// encoding, usually serde: [`SnapshotPolicy::json`]). See [`crate::snapshot`].
    fn snapshot_policy() -> Option<SnapshotPolicy<Self::State>> {
        None
    }

    /// Folds many events, in order, into `state`.
    fn fold<'a, I>(state: Self::State, events: I) -> Self::State
    where
        I: IntoIterator<Item = &'a Self::Event>,
        Self::Event: 'a,
    {
        events.into_iter().fold(state, Self::evolve)
    }

    /// Starts a given/when/then test from a history of events.
    fn given<I>(history: I) -> Given<Self>
    where
        Self: Sized,
        I: IntoIterator<Item = Self::Event>,
    {
        Given::new(history)
    }
}

/// The fixed instant the test harness (and [`crate::clock::ManualClock`]'s default)
/// uses as `now`: 2025-01-01T00:00:00Z.
pub fn reference_time() -> DateTime<Utc> {
    const REFERENCE_UNIX_SECONDS: i64 = 1_735_689_600;
    DateTime::from_timestamp(REFERENCE_UNIX_SECONDS, 0)
        .expect("2025-01-01T00:00:00Z is inside chrono's range")
}

/// A decider test: the history that led to the current state.
///
/// ```text
/// Account::given([Opened { owner: "ada".into() }])
///     .when(Withdraw { amount: 10 })
///     .then_err(Rejection::InsufficientFunds);
/// ```
pub struct Given<D: Decider> {
    state: D::State,
    now: DateTime<Utc>,
}

impl<D: Decider> Given<D> {
    /// Folds `history` into the initial state.
    pub fn new<I>(history: I) -> Self
    where
        I: IntoIterator<Item = D::Event>,
    {
        let state = history
            .into_iter()
            .fold(D::State::default(), |state, event| D::evolve(state, &event));
        Given {
            state,
            now: reference_time(),
        }
    }

    /// Sets the `now` that `decide` will see (default [`reference_time`]).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// The state the history folds to.
    pub fn state(&self) -> &D::State {
        &self.state
    }

    /// Runs `decide` with `command`.
    pub fn when(self, command: D::Command) -> When<D> {
        let result = D::decide(&self.state, &command, self.now);
        When {
            state: self.state,
            result,
        }
    }
}

/// A decider test after the command ran.
pub struct When<D: Decider> {
    state: D::State,
    result: Result<Vec<D::Event>, D::Rejection>,
}

impl<D: Decider> When<D> {
    /// Asserts the command produced exactly `expected`, in order, and returns the
    /// state after folding them (for further assertions).
    #[track_caller]
    pub fn then<I>(self, expected: I) -> D::State
    where
        I: IntoIterator<Item = D::Event>,
        D::Event: PartialEq + Debug,
        D::Rejection: Debug,
    {
        let expected: Vec<D::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "decide produced other events");
                D::fold(self.state, &events)
            }
            Err(rejection) => {
                panic!("expected events {expected:?}, but the command was rejected: {rejection:?}")
            }
        }
    }

    /// Asserts the command was rejected with `expected`.
    #[track_caller]
    pub fn then_err(self, expected: D::Rejection)
    where
        D::Event: Debug,
        D::Rejection: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => {
                panic!("expected rejection {expected:?}, but the command produced {events:?}")
            }
            Err(rejection) => assert_eq!(rejection, expected, "rejected for another reason"),
        }
    }

    /// The raw result, for assertions the helpers above do not cover.
    pub fn result(&self) -> &Result<Vec<D::Event>, D::Rejection> {
        &self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// A counter that refuses to go below zero and stamps when it was reset.
    struct Counter;

    #[derive(Debug, Clone, PartialEq)]
    enum CounterEvent {
        Added(u32),
        Removed(u32),
        Reset(DateTime<Utc>),
    }

    #[derive(Debug, PartialEq)]
    enum NotEnough {
        Have(u64),
    }

    impl LogEvent for CounterEvent {
        fn to_new_event(&self) -> Result<NewEvent, CodecError> {
            Err(CodecError::Encode("the counter is never stored".into()))
        }

        fn from_recorded(_: &RecordedEvent) -> Result<Option<Self>, CodecError> {
            Ok(None)
        }
    }

    impl Decider for Counter {
        type State = u64;
        type Command = i64;
        type Event = CounterEvent;
        type Rejection = NotEnough;

        fn stream_name(id: &str) -> String {
            format!("counter-{id}")
        }

        fn decide(
            state: &u64,
            command: &i64,
            now: DateTime<Utc>,
        ) -> Result<Vec<CounterEvent>, NotEnough> {
            match *command {
                0 => Ok(vec![CounterEvent::Reset(now)]),
                n if n > 0 => Ok(vec![CounterEvent::Added(n as u32)]),
                n if n.unsigned_abs() > *state => Err(NotEnough::Have(*state)),
                n => Ok(vec![CounterEvent::Removed(n.unsigned_abs() as u32)]),
            }
        }

        fn evolve(state: u64, event: &CounterEvent) -> u64 {
            match event {
                CounterEvent::Added(n) => state + u64::from(*n),
                CounterEvent::Removed(n) => state - u64::from(*n),
                CounterEvent::Reset(_) => 0,
            }
        }
    }

    #[test]
    fn given_when_then_folds_and_compares() {
        let state = Counter::given([CounterEvent::Added(3)])
            .when(2)
            .then([CounterEvent::Added(2)]);
        assert_eq!(state, 5);
        Counter::given([CounterEvent::Added(3)])
            .when(-4)
            .then_err(NotEnough::Have(3));
        assert_eq!(Counter::given([]).state(), &0);
    }

    #[test]
    fn now_is_an_argument() {
        let later = reference_time() + TimeDelta::hours(1);
        Counter::given([CounterEvent::Added(1)])
            .at(later)
            .when(0)
            .then([CounterEvent::Reset(later)]);
        Counter::given([])
            .when(0)
            .then([CounterEvent::Reset(reference_time())]);
    }

    #[test]
    #[should_panic(expected = "rejected")]
    fn then_fails_on_a_rejection() {
        Counter::given([]).when(-1).then([]);
    }

    #[test]
    #[should_panic(expected = "produced")]
    fn then_err_fails_on_events() {
        Counter::given([]).when(1).then_err(NotEnough::Have(0));
    }

    #[test]
    fn catalogue_events_round_trip_through_log_event() {
        use tutorlog_schemas::events::TrainingResumed;
        let event = Event::TrainingResumed(TrainingResumed {
            session_id: uuid::Uuid::now_v7(),
        });
        let new = event.to_new_event().expect("encode");
        let recorded = RecordedEvent {
            position: 0,
            stream: "learner-ada".into(),
            revision: 0,
            event_id: new.event_id,
            recorded_at: reference_time(),
            event_type: new.event_type,
            schema_version: new.schema_version,
            correlation_id: None,
            causation_id: None,
            payload: new.payload,
        };
        assert_eq!(
            Event::from_recorded(&recorded).expect("decode"),
            Some(event.clone())
        );
        let narrowed: Option<Event> = decode_via_catalogue(&recorded).expect("decode");
        assert_eq!(narrowed, Some(event.clone()));
        let again = encode_via_catalogue(&event).expect("encode");
        assert_eq!(again.event_type, "training.resumed");
    }
}
