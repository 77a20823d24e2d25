//! The supervisor that keeps one [`Aggregate`] actor per aggregate id alive while it
//! is in use.
//!
//! - **On demand**: the first message for an id spawns its actor (linked to the
//!   registry), which replays the stream; later messages are forwarded to it. The
//!   registry never waits for an aggregate's reply, so one slow aggregate does not
//!   hold up the others.
//! - **Passivation**: an actor that received nothing for `idle_timeout` is drained
//!   (it finishes what is in its mailbox, then stops). Messages for that id that
//!   arrive while it drains are held and handed to a fresh actor once it has
//!   stopped, so there is never more than one actor per id.
//! - **Bound** (optional): with `max_live` set, spawning beyond it passivates the
//!   least recently used actor.
//! - **Crash**: an actor that fails (the decider panicked) is dropped from the
//!   registry; the next message for its id spawns a fresh one, which replays the
//!   log. Callers whose message was in the crashed actor's mailbox get
//!   [`CommandError::Unavailable`].

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tokio::time::Instant;
use tutorlog_store::EventStore;

use crate::aggregate::{
    flatten_call, Aggregate, AggregateArgs, AggregateMsg, CommandError, CommandMeta, CommandResult,
    SnapshotMode, StateResult, READ_BATCH_DEFAULT,
};
use crate::clock::Clock;
use crate::decider::Decider;

/// How a [`Registry`] manages its actors.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// An actor that received no message for this long is stopped.
    pub idle_timeout: Duration,
    /// How often idle actors are looked for (default: a quarter of `idle_timeout`,
    /// at least 10 ms).
    pub sweep_interval: Option<Duration>,
    /// Most actors alive at once; `None` for no bound.
    pub max_live: Option<usize>,
    /// Events per `read_stream` call while an actor replays.
    pub read_batch: usize,
    /// How long [`RegistryHandle`] calls wait for a reply.
    pub call_timeout: Duration,
    /// How long stopping the registry waits for its actors to finish their mailboxes.
    pub shutdown_timeout: Duration,
    /// Whether aggregates restore from and write snapshots (default: as the decider
    /// declares).
    pub snapshots: SnapshotMode,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            idle_timeout: Duration::from_secs(300),
            sweep_interval: None,
            max_live: None,
            read_batch: READ_BATCH_DEFAULT,
            call_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            snapshots: SnapshotMode::default(),
        }
    }
}

impl RegistryConfig {
    fn sweep_every(&self) -> Duration {
        self.sweep_interval
            .unwrap_or(self.idle_timeout / 4)
            .max(Duration::from_millis(10))
    }
}

/// Counters describing a registry, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Actors running and accepting messages.
    pub live: usize,
    /// Actors finishing their mailbox before stopping.
    pub draining: usize,
    /// Actors spawned since the registry started.
    pub spawned: u64,
    /// Actors stopped for being idle (or to respect `max_live`).
    pub passivated: u64,
    /// Actors that failed (panicked) and were dropped.
    pub crashed: u64,
}

/// Messages a [`Registry`] handles.
pub enum RegistryMsg<D: Decider> {
    /// Forward `msg` to the actor for aggregate `id`, spawning it if needed.
    Route {
        /// The aggregate id.
        id: String,
        /// The message for its actor.
        msg: AggregateMsg<D>,
    },
    /// Reply with the registry's counters.
    Stats(RpcReplyPort<RegistryStats>),
    /// Stop idle actors now (sent by the registry's own timer).
    Sweep,
}

/// What a [`Registry`] is started with.
pub struct RegistryArgs {
    /// The log every aggregate reads and appends to.
    pub store: Arc<dyn EventStore>,
    /// Where aggregates get `now`.
    pub clock: Arc<dyn Clock>,
    /// Timeouts and bounds.
    pub config: RegistryConfig,
}

/// The supervisor actor for aggregates of one decider type. See the module docs.
pub struct Registry<D>(PhantomData<fn() -> D>);

impl<D> Registry<D> {
    /// The actor definition (it has no fields; everything is in its state).
    pub fn new() -> Self {
        Registry(PhantomData)
    }
}

impl<D> Default for Registry<D> {
    fn default() -> Self {
        Registry::new()
    }
}

enum Slot<D: Decider> {
    Live {
        actor: ActorRef<AggregateMsg<D>>,
        last_used: Instant,
    },
    Draining {
        actor: ActorId,
        pending: Vec<AggregateMsg<D>>,
    },
}

/// The running state of a [`Registry`] actor.
pub struct RegistryState<D: Decider> {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    slots: HashMap<String, Slot<D>>,
    owners: HashMap<ActorId, String>,
    stats: RegistryStats,
    ticker: Option<JoinHandle<()>>,
}

impl<D: Decider> RegistryState<D> {
    async fn route(&mut self, myself: &ActorRef<RegistryMsg<D>>, id: String, msg: AggregateMsg<D>) {
        let msg = match self.slots.get_mut(&id) {
            Some(Slot::Draining { pending, .. }) => {
                pending.push(msg);
                return;
            }
            Some(Slot::Live { actor, last_used }) => {
                *last_used = Instant::now();
                match actor.cast(msg) {
                    Ok(()) => return,
                    // The actor is stopping (it crashed and the supervision event is
                    // on its way): forget it and start a fresh one.
                    Err(MessagingErr::SendErr(msg)) => {
                        let dead = actor.get_id();
                        self.owners.remove(&dead);
                        self.slots.remove(&id);
                        msg
                    }
                    // The message is gone; its reply port is dropped with it, so the
                    // caller sees `Unavailable`.
                    Err(_) => return,
                }
            }
            None => msg,
        };
        self.spawn_and_send(myself, id, vec![msg]).await;
    }

    async fn spawn_and_send(
        &mut self,
        myself: &ActorRef<RegistryMsg<D>>,
        id: String,
        messages: Vec<AggregateMsg<D>>,
    ) {
        let args = AggregateArgs {
            id: id.clone(),
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            read_batch: self.config.read_batch,
            snapshots: self.config.snapshots,
        };
        let actor =
            match Actor::spawn_linked(None, Aggregate::<D>::new(), args, myself.get_cell()).await {
                Ok((actor, _join)) => actor,
                Err(error) => {
                    tracing::warn!(%id, %error, "could not start aggregate actor");
                    for msg in messages {
                        msg.fail(CommandError::Unavailable {
                            id: id.clone(),
                            reason: format!("could not start its actor: {error}"),
                        });
                    }
                    return;
                }
            };
        self.stats.spawned += 1;
        self.owners.insert(actor.get_id(), id.clone());
        for msg in messages {
            // A fresh actor only refuses messages once it stops, and then the
            // dropped reply port tells the caller.
            let _ = actor.cast(msg);
        }
        self.slots.insert(
            id.clone(),
            Slot::Live {
                actor,
                last_used: Instant::now(),
            },
        );
        self.enforce_bound(&id);
    }

    /// Passivates least recently used actors (never `keep`) while over `max_live`.
    fn enforce_bound(&mut self, keep: &str) {
        let Some(max_live) = self.config.max_live else {
            return;
        };
        while self.live_count() > max_live.max(1) {
            let oldest = self
                .slots
                .iter()
                .filter_map(|(id, slot)| match slot {
                    Slot::Live { last_used, .. } if id != keep => Some((*last_used, id.clone())),
                    _ => None,
                })
                .min();
            let Some((_, id)) = oldest else { return };
            self.passivate(&id);
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        let idle: Vec<String> = self
            .slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Live { last_used, .. }
                    if now.duration_since(*last_used) >= self.config.idle_timeout =>
                {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect();
        for id in idle {
            self.passivate(&id);
        }
    }

    /// Asks the actor for `id` to finish its mailbox and stop; later messages for
    /// `id` wait until it has stopped.
    fn passivate(&mut self, id: &str) {
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        let Slot::Live { actor, .. } = slot else {
            return;
        };
        tracing::debug!(%id, "passivating idle aggregate");
        // If the drain marker cannot be sent the actor is already stopping; either
        // way its termination reaches `on_exit`.
        let _ = actor.drain();
        *slot = Slot::Draining {
            actor: actor.get_id(),
            pending: Vec::new(),
        };
    }

    async fn on_exit(&mut self, myself: &ActorRef<RegistryMsg<D>>, actor: ActorId, failed: bool) {
        let Some(id) = self.owners.remove(&actor) else {
            return;
        };
        match self.slots.remove(&id) {
            // Exited without being asked to: crashed, or stopped from outside. The
            // next message for `id` spawns a fresh actor.
            Some(Slot::Live { actor: live, .. }) if live.get_id() == actor => {
                self.stats.crashed += u64::from(failed);
            }
            Some(Slot::Draining {
                actor: draining,
                pending,
            }) if draining == actor => {
                if failed {
                    self.stats.crashed += 1;
                } else {
                    self.stats.passivated += 1;
                }
                if !pending.is_empty() {
                    self.spawn_and_send(myself, id, pending).await;
                }
            }
            // The slot belongs to a newer actor for the same id: keep it.
            Some(other) => {
                self.slots.insert(id, other);
            }
            None => {}
        }
    }

    fn live_count(&self) -> usize {
        self.slots
            .values()
            .filter(|slot| matches!(slot, Slot::Live { .. }))
            .count()
    }

    fn stats(&self) -> RegistryStats {
        let live = self.live_count();
        RegistryStats {
            live,
            draining: self.slots.len() - live,
            ..self.stats
        }
    }
}

#[ractor::async_trait]
impl<D: Decider> Actor for Registry<D> {
    type Msg = RegistryMsg<D>;
    type State = RegistryState<D>;
    type Arguments = RegistryArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RegistryArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RegistryState {
            store: args.store,
            clock: args.clock,
            config: args.config,
            slots: HashMap::new(),
            owners: HashMap::new(),
            stats: RegistryStats::default(),
            ticker: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let every = state.config.sweep_every();
        state.ticker = Some(myself.send_interval(every, || RegistryMsg::Sweep));
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        // Let every aggregate finish (and reply to) what is in its mailbox.
        myself
            .drain_children_and_wait(Some(state.config.shutdown_timeout))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Route { id, msg } => state.route(&myself, id, msg).await,
            RegistryMsg::Stats(reply) => {
                let _ = reply.send(state.stats());
            }
            RegistryMsg::Sweep => state.sweep(),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Unlike ractor's default, a child's exit never stops the registry.
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.on_exit(&myself, cell.get_id(), false).await;
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let id = state
                    .owners
                    .get(&cell.get_id())
                    .cloned()
                    .unwrap_or_default();
                tracing::warn!(%id, %error, "aggregate actor failed; it restarts from the log on its next command");
                state.on_exit(&myself, cell.get_id(), true).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A cheap, cloneable way to talk to a running [`Registry`].
pub struct RegistryHandle<D: Decider> {
    actor: ActorRef<RegistryMsg<D>>,
    call_timeout: Duration,
}

impl<D: Decider> Clone for RegistryHandle<D> {
    fn clone(&self) -> Self {
        RegistryHandle {
            actor: self.actor.clone(),
            call_timeout: self.call_timeout,
        }
    }
}

impl<D: Decider> RegistryHandle<D> {
    /// Spawns an unsupervised registry. The join handle completes when it stops.
    pub async fn start(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        config: RegistryConfig,
    ) -> Result<(Self, JoinHandle<()>), SpawnErr> {
        let call_timeout = config.call_timeout;
        let args = RegistryArgs {
            store,
            clock,
            config,
        };
        let (actor, join) = Actor::spawn(None, Registry::<D>::new(), args).await?;
        Ok((
            RegistryHandle {
                actor,
                call_timeout,
            },
            join,
        ))
    }

    /// Wraps an already running registry actor (e.g. one spawned linked to a
    /// daemon supervisor).
    pub fn from_actor(actor: ActorRef<RegistryMsg<D>>, call_timeout: Duration) -> Self {
        RegistryHandle {
            actor,
            call_timeout,
        }
    }

    /// The registry actor.
    pub fn actor(&self) -> &ActorRef<RegistryMsg<D>> {
        &self.actor
    }

    /// Runs `command` on aggregate `id`; returns once its events are durable.
    pub async fn execute(&self, id: &str, command: D::Command) -> CommandResult<D> {
        self.execute_with(id, command, CommandMeta::default()).await
    }

    /// Like [`RegistryHandle::execute`], with correlation ids for the events.
    pub async fn execute_with(
        &self,
        id: &str,
        command: D::Command,
        meta: CommandMeta,
    ) -> CommandResult<D> {
        let called = self
            .actor
            .call(
                |reply| RegistryMsg::Route {
                    id: id.to_owned(),
                    msg: AggregateMsg::Execute {
                        command,
                        meta,
                        reply,
                    },
                },
                Some(self.call_timeout),
            )
            .await;
        flatten_call(id, called.map_err(|e| e.to_string()), self.call_timeout)?
    }

    /// The current state of aggregate `id` (spawning and replaying it if needed).
    pub async fn state(&self, id: &str) -> StateResult<D> {
        let called = self
            .actor
            .call(
                |reply| RegistryMsg::Route {
                    id: id.to_owned(),
                    msg: AggregateMsg::GetState { reply },
                },
                Some(self.call_timeout),
            )
            .await;
        flatten_call(id, called.map_err(|e| e.to_string()), self.call_timeout)?
    }

    /// The registry's counters.
    pub async fn stats(&self) -> Result<RegistryStats, CommandError> {
        let called = self
            .actor
            .call(RegistryMsg::Stats, Some(self.call_timeout))
            .await;
        flatten_call("", called.map_err(|e| e.to_string()), self.call_timeout)
    }

    /// Stops the registry after every aggregate has finished its mailbox (bounded
    /// by the configured shutdown timeout), and waits for it.
    pub async fn shutdown(&self) {
        // An error means it already stopped.
        let _ = self.actor.stop_and_wait(None, None).await;
    }
}
