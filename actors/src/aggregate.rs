//! The actor that owns one aggregate instance of a [`Decider`].
//!
//! Life of an [`Aggregate`]:
//! 1. On start it replays its stream (`read_stream` in chunks, folding `evolve`).
//! 2. For each [`AggregateMsg::Execute`] it takes `now` from the injected [`Clock`],
//!    runs `decide`, appends the events with the stream revision it knows
//!    (`Exact(n)`, or `NoStream`), folds them, and only then replies: a reply means
//!    the events are durable.
//! 3. If the append hits [`StoreError::WrongExpectedRevision`] (another writer, e.g.
//!    a second node, got there first) it catches up on the stream and decides again,
//!    once. A second conflict is replied as a store error.
//!
//! Replies keep the two kinds of "no" apart, as `Result<Result<Outcome, Rejection>,
//! CommandError>`: a rejection is a business answer (HTTP 409/422), a
//! [`CommandError`] means the command could not be processed (HTTP 503).
//!
//! The actor never fails on a store error: it replies the error, marks itself stale
//! and catches up on the stream before the next command. It only dies if the
//! decider panics, and then its supervisor ([`crate::registry`]) restarts it from the
//! log on the next command.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tutorlog_store::{AppendResult, EventStore, ExpectedRevision, StoreError, READ_EVENTS_MAX};
use uuid::Uuid;

use crate::clock::Clock;
use crate::decider::{Decider, LogEvent};

/// Default number of events read per `read_stream` call while replaying.
pub const READ_BATCH_DEFAULT: usize = 1_000;

/// What a command did, returned once its events are durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<S, E> {
    /// The events the command produced (empty for a no-op), as appended.
    pub events: Vec<E>,
    /// The aggregate's state after folding them.
    pub state: S,
    /// The stream's last revision after the command (`None`: still no stream).
    pub revision: Option<u64>,
    /// The `$all` position of the stream's last event after the command: pass it as
    /// `min_position` to read your own writes from a projection.
    pub position: Option<u64>,
    /// Where the append landed; `None` when the command produced no events.
    pub append: Option<AppendResult>,
}

/// An aggregate's state together with how far into its stream it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<S> {
    /// The folded state.
    pub state: S,
    /// The last revision folded (`None`: empty stream).
    pub revision: Option<u64>,
    /// The `$all` position of the last event folded.
    pub position: Option<u64>,
}

/// Why a command (or a state query) could not be processed. Distinct from a
/// decider's rejection, which is a normal answer.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The log failed: reading the stream, appending, or a revision conflict that
    /// persisted after one reload and retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The aggregate's actor could not be reached: it could not be started, it
    /// stopped (for example it crashed) before replying, or the registry is gone.
    /// When it stopped mid-command, the command may or may not have been applied.
    #[error("aggregate {id:?} unavailable: {reason}")]
    Unavailable {
        /// The aggregate id (empty when unknown).
        id: String,
        /// What happened.
        reason: String,
    },
    /// No reply within the call timeout. The command may still be applied.
    #[error("aggregate {id:?} did not reply within {timeout:?}")]
    Timeout {
        /// The aggregate id (empty when unknown).
        id: String,
        /// The timeout that expired.
        timeout: Duration,
    },
}

/// The reply to a command: a durable outcome, a rejection, or an error.
pub type CommandResult<D> = Result<
    Result<Outcome<<D as Decider>::State, <D as Decider>::Event>, <D as Decider>::Rejection>,
    CommandError,
>;

/// The reply to a state query.
pub type StateResult<D> = Result<Versioned<<D as Decider>::State>, CommandError>;

/// Correlation metadata copied onto every event a command produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandMeta {
    /// The request or command chain (e.g. the HTTP request id).
    pub correlation_id: Option<Uuid>,
    /// The event or command that directly caused this one.
    pub causation_id: Option<Uuid>,
}

/// Messages an [`Aggregate`] handles.
pub enum AggregateMsg<D: Decider> {
    /// Decide, append, fold, then reply.
    Execute {
        /// The command.
        command: D::Command,
        /// Ids copied onto the produced events.
        meta: CommandMeta,
        /// Where the result goes.
        reply: RpcReplyPort<CommandResult<D>>,
    },
    /// Reply with the current state and revision.
    GetState {
        /// Where the state goes.
        reply: RpcReplyPort<StateResult<D>>,
    },
}

impl<D: Decider> AggregateMsg<D> {
    /// Answers the message with `error` instead of handling it (used by the
    /// registry when no actor can take it).
    pub fn fail(self, error: CommandError) {
        // A closed reply port means the caller gave up; nothing to do.
        match self {
            AggregateMsg::Execute { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            AggregateMsg::GetState { reply } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// What an [`Aggregate`] is started with.
pub struct AggregateArgs {
    /// The aggregate id; the stream is `D::stream_name(&id)`.
    pub id: String,
    /// The log.
    pub store: Arc<dyn EventStore>,
    /// Where `now` comes from.
    pub clock: Arc<dyn Clock>,
    /// Events per `read_stream` call while replaying (clamped to 1..=READ_EVENTS_MAX).
    pub read_batch: usize,
}

impl AggregateArgs {
    /// Arguments with the default read batch.
    pub fn new(id: impl Into<String>, store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        AggregateArgs {
            id: id.into(),
            store,
            clock,
            read_batch: READ_BATCH_DEFAULT,
        }
    }
}

/// The actor owning one aggregate instance of `D`. See the module docs.
pub struct Aggregate<D>(PhantomData<fn() -> D>);

impl<D> Aggregate<D> {
    /// The actor definition (it has no fields; everything is in its state).
    pub fn new() -> Self {
        Aggregate(PhantomData)
    }
}

impl<D> Default for Aggregate<D> {
    fn default() -> Self {
        Aggregate::new()
    }
}

/// The running state of an [`Aggregate`] actor.
pub struct AggregateState<D: Decider> {
    id: String,
    stream: String,
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    read_batch: usize,
    state: D::State,
    revision: Option<u64>,
    position: Option<u64>,
    /// The in-memory state may be behind the log (not loaded yet, or an append
    /// failed in a way that leaves its effect unknown): catch up before deciding.
    stale: bool,
}

impl<D: Decider> AggregateState<D> {
    /// Reads the stream from the revision after the last one folded, to its end,
    /// folding every event. Events are immutable, so this is both the initial
    /// replay and the reload after a conflict.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        loop {
            let from = self.revision.map_or(0, |r| r + 1);
            let batch = self
                .store
                .read_stream(&self.stream, from, self.read_batch)
                .await?;
            let count = batch.len();
            for (expected, recorded) in (from..).zip(&batch) {
                // Stores guarantee dense revisions (the conformance suite checks it).
                debug_assert_eq!(recorded.revision, expected, "stream {:?}", self.stream);
                if let Some(event) = D::Event::from_recorded(recorded)? {
                    let state = std::mem::take(&mut self.state);
                    self.state = D::evolve(state, &event);
                }
                self.revision = Some(recorded.revision);
                self.position = Some(recorded.position);
            }
            if count < self.read_batch {
                return Ok(());
            }
        }
    }

    async fn ensure_fresh(&mut self) -> Result<(), StoreError> {
        if self.stale {
            self.catch_up().await?;
            self.stale = false;
        }
        Ok(())
    }

    fn versioned(&self) -> Versioned<D::State> {
        Versioned {
            state: self.state.clone(),
            revision: self.revision,
            position: self.position,
        }
    }

    async fn execute(&mut self, command: D::Command, meta: CommandMeta) -> CommandResult<D> {
        let result = self.try_execute(command, meta).await;
        if result.is_err() {
            // Whatever failed, the log is the truth: re-read it before the next
            // command rather than trust what memory says.
            self.stale = true;
        }
        result
    }

    async fn try_execute(&mut self, command: D::Command, meta: CommandMeta) -> CommandResult<D> {
        self.ensure_fresh().await?;
        let now = self.clock.now();
        let mut conflicts = 0;
        loop {
            let events = match D::decide(&self.state, &command, now) {
                Ok(events) => events,
                Err(rejection) => return Ok(Err(rejection)),
            };
            if events.is_empty() {
                return Ok(Ok(self.outcome(events, None)));
            }
            let records = events
                .iter()
                .map(|event| {
                    event.to_new_event().map(|mut record| {
                        record.correlation_id = meta.correlation_id;
                        record.causation_id = meta.causation_id;
                        record
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)?;
            let expected = ExpectedRevision::after(self.revision);
            match self.store.append(&self.stream, expected, records).await {
                Ok(append) => {
                    debug_assert_eq!(append.first_revision, self.revision.map_or(0, |r| r + 1));
                    let state = std::mem::take(&mut self.state);
                    self.state = D::fold(state, &events);
                    self.revision = Some(append.last_revision);
                    self.position = Some(append.position);
                    return Ok(Ok(self.outcome(events, Some(append))));
                }
                Err(StoreError::WrongExpectedRevision { actual, .. }) if conflicts == 0 => {
                    conflicts += 1;
                    tracing::debug!(
                        stream = %self.stream,
                        known = ?self.revision,
                        actual = ?actual,
                        "append conflict: catching up on the stream and deciding again"
                    );
                    self.catch_up().await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn outcome(
        &self,
        events: Vec<D::Event>,
        append: Option<AppendResult>,
    ) -> Outcome<D::State, D::Event> {
        Outcome {
            events,
            state: self.state.clone(),
            revision: self.revision,
            position: self.position,
            append,
        }
    }
}

#[ractor::async_trait]
impl<D: Decider> Actor for Aggregate<D> {
    type Msg = AggregateMsg<D>;
    type State = AggregateState<D>;
    type Arguments = AggregateArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AggregateArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Cheap on purpose: spawning (which awaits pre_start) must not block the
        // registry on a replay. The replay happens in post_start.
        Ok(AggregateState {
            stream: D::stream_name(&args.id),
            id: args.id,
            store: args.store,
            clock: args.clock,
            read_batch: args.read_batch.clamp(1, READ_EVENTS_MAX),
            state: D::State::default(),
            revision: None,
            position: None,
            stale: true,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A failed replay is not fatal: the actor stays stale, and the next message
        // tries again and replies the error to its caller.
        if let Err(error) = state.ensure_fresh().await {
            tracing::warn!(id = %state.id, stream = %state.stream, %error, "aggregate replay failed; will retry on the next message");
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A send error below means the caller stopped waiting; the work is done
        // (and durable) either way.
        match message {
            AggregateMsg::Execute {
                command,
                meta,
                reply,
            } => {
                let result = state.execute(command, meta).await;
                let _ = reply.send(result);
            }
            AggregateMsg::GetState { reply } => {
                let result = match state.ensure_fresh().await {
                    Ok(()) => Ok(state.versioned()),
                    Err(error) => Err(error.into()),
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

/// Sends a command to an aggregate actor and waits up to `timeout` for the reply.
pub async fn execute<D: Decider>(
    actor: &ActorRef<AggregateMsg<D>>,
    command: D::Command,
    meta: CommandMeta,
    timeout: Duration,
) -> CommandResult<D> {
    let called = actor
        .call(
            |reply| AggregateMsg::Execute {
                command,
                meta,
                reply,
            },
            Some(timeout),
        )
        .await;
    flatten_call("", called.map_err(|e| e.to_string()), timeout)?
}

/// Asks an aggregate actor for its state, waiting up to `timeout`.
pub async fn get_state<D: Decider>(
    actor: &ActorRef<AggregateMsg<D>>,
    timeout: Duration,
) -> StateResult<D> {
    let called = actor
        .call(|reply| AggregateMsg::GetState { reply }, Some(timeout))
        .await;
    flatten_call("", called.map_err(|e| e.to_string()), timeout)?
}

/// Turns the layers of a ractor call into a [`CommandError`].
pub(crate) fn flatten_call<T>(
    id: &str,
    called: Result<CallResult<T>, String>,
    timeout: Duration,
) -> Result<T, CommandError> {
    match called {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(CommandError::Timeout {
            id: id.to_owned(),
            timeout,
        }),
        Ok(CallResult::SenderError) => Err(CommandError::Unavailable {
            id: id.to_owned(),
            reason: "the actor stopped before replying (it may have crashed); the command may or may not have been applied".into(),
        }),
        Err(send) => Err(CommandError::Unavailable {
            id: id.to_owned(),
            reason: format!("the actor is not running: {send}"),
        }),
    }
}
