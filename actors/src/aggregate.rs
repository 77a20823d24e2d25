//! The actor that owns one aggregate instance of a [`Decider`].
//!
//! Life of an [`Aggregate`]:
//! 1. On start it replays its stream (`read_stream` in chunks, folding `evolve`).
//!    When the decider opts into snapshots ([`Decider::snapshot_policy`]) it first
//!    restores the last valid snapshot from `snapshot-{stream}` and replays only the
//!    events after it; an unusable snapshot is ignored with a warning (full replay).
//!    See [`crate::snapshot`].
//! 2. For each [`AggregateMsg::Execute`] it takes `now` from the injected [`Clock`],
//!    runs `decide`, appends the events with the stream revision it knows
//!    (`Exact(n)`, or `NoStream`), folds them, and only then replies: a reply means
//!    the events are durable.
//! 3. After replying, if enough events were folded since the last snapshot, it
//!    hands a new snapshot to a background task (at most one in flight, so they
//!    land in order): a snapshot append never delays a reply.
//! 4. If the append hits [`StoreError::WrongExpectedRevision`] (another writer, e.g.
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
use tokio::task::JoinHandle;
use tutorlog_schemas::RecordedEvent;
use tutorlog_store::{AppendResult, EventStore, ExpectedRevision, StoreError, READ_EVENTS_MAX};
use uuid::Uuid;

use crate::clock::Clock;
use crate::decider::{Decider, LogEvent};
use crate::snapshot::{self, snapshot_stream_name, SnapshotPolicy};

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
    /// The revision of the snapshot the actor restored its state from when it
    /// started; `None` when it replayed the stream from its start (no snapshot,
    /// snapshots off, or the snapshot was unusable).
    pub snapshot_revision: Option<u64>,
}

/// Whether an aggregate uses snapshots (see [`crate::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// As the decider declares ([`Decider::snapshot_policy`]): none for most
    /// deciders, every N events for those that opt in.
    #[default]
    Decider,
    /// The decider's policy with another interval (tuning, tests). No effect on a
    /// decider that does not snapshot.
    EveryEvents(u64),
    /// Neither read nor write snapshots: always replay the whole stream.
    Off,
}

impl SnapshotMode {
    /// The policy an aggregate of `D` runs with under this mode.
    pub fn policy<D: Decider>(self) -> Option<SnapshotPolicy<D::State>> {
        match self {
            SnapshotMode::Decider => D::snapshot_policy(),
            SnapshotMode::EveryEvents(every) => D::snapshot_policy().map(|p| p.every(every)),
            SnapshotMode::Off => None,
        }
    }
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
    /// Whether to restore from and write snapshots.
    pub snapshots: SnapshotMode,
}

impl AggregateArgs {
    /// Arguments with the default read batch.
    pub fn new(id: impl Into<String>, store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        AggregateArgs {
            id: id.into(),
            store,
            clock,
            read_batch: READ_BATCH_DEFAULT,
            snapshots: SnapshotMode::default(),
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
    /// The snapshot policy in force (`None`: never snapshot).
    snapshots: Option<SnapshotPolicy<D::State>>,
    /// `snapshot-{stream}`.
    snapshot_stream: String,
    /// The revision covered by the last snapshot restored, written or attempted: the
    /// next one is due `every_events` after it.
    snapshot_covered: Option<u64>,
    /// The snapshot append in flight, if any.
    snapshot_write: Option<JoinHandle<()>>,
    /// The revision of the snapshot restored at start.
    restored_from: Option<u64>,
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
            self.fold_records(from, &batch)?;
            if batch.len() < self.read_batch {
                return Ok(());
            }
        }
    }

    /// Folds stored records that start at revision `from`.
    fn fold_records(&mut self, from: u64, records: &[RecordedEvent]) -> Result<(), StoreError> {
        for (expected, recorded) in (from..).zip(records) {
            // Stores guarantee dense revisions (the conformance suite checks it).
            debug_assert_eq!(recorded.revision, expected, "stream {:?}", self.stream);
            if let Some(event) = D::Event::from_recorded(recorded)? {
                let state = std::mem::take(&mut self.state);
                self.state = D::evolve(state, &event);
            }
            self.revision = Some(recorded.revision);
            self.position = Some(recorded.position);
        }
        Ok(())
    }

    /// Before the first replay: takes the state from the last snapshot if it passes
    /// every check, and folds the events read along with its anchor. Any doubt about
    /// the snapshot leaves the state empty, so the replay starts at revision 0.
    async fn restore_snapshot(&mut self) -> Result<(), StoreError> {
        let Some(policy) = self.snapshots else {
            return Ok(());
        };
        let Some(last) = self.store.stream_revision(&self.snapshot_stream).await? else {
            return Ok(());
        };
        let records = self
            .store
            .read_stream(&self.snapshot_stream, last, 1)
            .await?;
        let Some(record) = records.first() else {
            return Ok(());
        };
        let restored = match snapshot::restore(&policy, &self.stream, record) {
            Ok(restored) => restored,
            Err(why) => {
                self.ignore_snapshot(record, &why);
                return Ok(());
            }
        };
        // Reading from the snapshot's own revision checks it exists, at the position
        // the snapshot recorded, and brings the first part of the tail.
        let batch = self
            .store
            .read_stream(&self.stream, restored.revision, self.read_batch)
            .await?;
        if let Err(why) = snapshot::check_anchor(&restored, batch.first()) {
            self.ignore_snapshot(record, &why);
            return Ok(());
        }
        tracing::debug!(stream = %self.stream, revision = restored.revision, "restored from snapshot");
        self.state = restored.state;
        self.revision = Some(restored.revision);
        self.position = Some(restored.position);
        self.snapshot_covered = Some(restored.revision);
        self.restored_from = Some(restored.revision);
        self.fold_records(restored.revision + 1, batch.get(1..).unwrap_or_default())
    }

    fn ignore_snapshot(&self, record: &RecordedEvent, why: &snapshot::SnapshotRejected) {
        tracing::warn!(
            stream = %self.stream,
            snapshot_stream = %self.snapshot_stream,
            snapshot_position = record.position,
            reason = %why,
            "ignoring unusable snapshot; replaying the whole stream"
        );
    }

    async fn ensure_fresh(&mut self) -> Result<(), StoreError> {
        if self.stale {
            if self.revision.is_none() {
                self.restore_snapshot().await?;
            }
            self.catch_up().await?;
            self.stale = false;
        }
        Ok(())
    }

    /// Writes a snapshot in the background when one is due and none is in flight.
    /// Runs after the reply, so no caller waits for it; the next message does not
    /// wait either, as the append runs on its own task.
    fn maybe_snapshot(&mut self) {
        let Some(policy) = self.snapshots else {
            return;
        };
        if self.stale
            || self
                .snapshot_write
                .as_ref()
                .is_some_and(|w| !w.is_finished())
        {
            return;
        }
        if !snapshot::snapshot_due(self.snapshot_covered, self.revision, policy.every_events) {
            return;
        }
        let (Some(revision), Some(position)) = (self.revision, self.position) else {
            return;
        };
        // Counted as covered even if the write fails: a snapshot that cannot be
        // written (too large, log down) is retried after another interval, not on
        // every message.
        self.snapshot_covered = Some(revision);
        let record = match snapshot::snapshot_record(
            &policy,
            &self.stream,
            &self.state,
            revision,
            position,
        ) {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(stream = %self.stream, revision, %error, "could not encode a snapshot");
                return;
            }
        };
        let store = Arc::clone(&self.store);
        let stream = self.snapshot_stream.clone();
        self.snapshot_write = Some(tokio::spawn(async move {
            // Any revision: snapshots are independent facts, each valid for its own
            // revision, so a concurrent writer cannot make one wrong.
            match store
                .append(&stream, ExpectedRevision::Any, vec![record])
                .await
            {
                Ok(append) => {
                    tracing::debug!(%stream, revision, position = append.position, "snapshot written");
                }
                Err(error) => {
                    tracing::warn!(%stream, revision, %error, "could not write a snapshot; the next is tried after another interval");
                }
            }
        }));
    }

    /// Waits for the snapshot append in flight, so that a passivated actor's last
    /// snapshot is in the log before its successor starts.
    async fn finish_snapshot(&mut self) {
        if let Some(write) = self.snapshot_write.take() {
            if let Err(error) = write.await {
                tracing::warn!(stream = %self.stream, %error, "snapshot task failed");
            }
        }
    }

    fn versioned(&self) -> Versioned<D::State> {
        Versioned {
            state: self.state.clone(),
            revision: self.revision,
            position: self.position,
            snapshot_revision: self.restored_from,
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
        let stream = D::stream_name(&args.id);
        Ok(AggregateState {
            snapshot_stream: snapshot_stream_name(&stream),
            stream,
            id: args.id,
            store: args.store,
            clock: args.clock,
            read_batch: args.read_batch.clamp(1, READ_EVENTS_MAX),
            state: D::State::default(),
            revision: None,
            position: None,
            stale: true,
            snapshots: args.snapshots.policy::<D>(),
            snapshot_covered: None,
            snapshot_write: None,
            restored_from: None,
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
        // A long stream replayed without a usable snapshot gets one now.
        state.maybe_snapshot();
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.finish_snapshot().await;
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
        state.maybe_snapshot();
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
