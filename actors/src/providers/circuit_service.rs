//! The circuit actor of one provider and its lock-free view.
//!
//! Requests check [`CircuitHandle::try_acquire`] (atomics only, never the actor)
//! and report each call's outcome with [`CircuitHandle::record`] (sent without
//! waiting). The actor is a [`Pipelined`](crate::pipeline) [`Circuit`] decider:
//! it records every outcome on `circuit-{provider}`, decides the transitions and
//! publishes them to the view as soon as they are decided (not once durable: the
//! breaker must react at once). An open circuit also gets a timer, so
//! `circuit.half_opened` is recorded when the period ends even with no traffic.

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc, OnceLock,
};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tutorlog_store::EventStore;
use uuid::Uuid;

use super::circuit::{
    CallOutcome, Circuit, CircuitCommand, CircuitPhase, CircuitPolicy, CircuitState,
};
use super::circuit_view::{CircuitRejected, CircuitView, Permit, ViewPhase};
use crate::aggregate::{CommandError, CommandMeta, Versioned};
use crate::clock::Clock;
use crate::pipeline::{Defer, PipelineArgs, PipelineHandle};

/// A running circuit actor and its view.
#[derive(Clone)]
pub struct CircuitHandle {
    provider: String,
    actor: PipelineHandle<Circuit>,
    view: Arc<CircuitView>,
    policy: Arc<ArcSwap<CircuitPolicy>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CircuitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitHandle")
            .field("provider", &self.provider)
            .field("view", &self.view)
            .finish()
    }
}

fn tick(actor: &PipelineHandle<Circuit>, policy: &ArcSwap<CircuitPolicy>) {
    actor.cast(
        CircuitCommand::Tick {
            policy: **policy.load(),
        },
        CommandMeta::default(),
        Defer::No,
    );
}

impl CircuitHandle {
    /// Starts the circuit actor of `provider` (stream `circuit-{provider}`) and
    /// loads its stream; the view shows the loaded state before this returns.
    /// `hold`: how long an outcome may wait in the actor to share an append.
    pub async fn start(
        provider: &str,
        policy: CircuitPolicy,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        hold: Duration,
    ) -> Result<CircuitHandle, CommandError> {
        let policy = Arc::new(ArcSwap::from_pointee(policy));
        let actor_cell: Arc<OnceLock<PipelineHandle<Circuit>>> = Arc::new(OnceLock::new());
        let view = {
            let cell = Arc::clone(&actor_cell);
            let policy = Arc::clone(&policy);
            CircuitView::new(
                policy.load().half_open_max_calls,
                Box::new(move || {
                    if let Some(actor) = cell.get() {
                        tick(actor, &policy);
                    }
                }),
            )
        };
        let publish = {
            let view = Arc::clone(&view);
            let policy = Arc::clone(&policy);
            let cell = Arc::clone(&actor_cell);
            let clock = Arc::clone(&clock);
            let timed_episode = Arc::new(AtomicU32::new(0));
            Arc::new(move |state: &CircuitState| {
                view.publish(state, policy.load().half_open_max_calls);
                if let CircuitPhase::Open { retry_at } = state.phase {
                    // One timer per episode: it ends the open period even if no
                    // request comes to notice.
                    if timed_episode.swap(state.episode, Ordering::AcqRel) != state.episode {
                        let wait = (retry_at - clock.now()).to_std().unwrap_or_default();
                        let cell = Arc::clone(&cell);
                        let policy = Arc::clone(&policy);
                        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                            runtime.spawn(async move {
                                tokio::time::sleep(wait).await;
                                if let Some(actor) = cell.get() {
                                    tick(actor, &policy);
                                }
                            });
                        }
                    }
                }
            })
        };
        let (actor, _join) = PipelineHandle::start(
            PipelineArgs {
                id: provider.to_owned(),
                store,
                clock: Arc::clone(&clock),
                publish,
                hold,
            },
            timeout,
        )
        .await?;
        let _ = actor_cell.set(actor.clone());
        // A circuit loaded open whose period already ended gets its tick now.
        tick(&actor, &policy);
        Ok(CircuitHandle {
            provider: provider.to_owned(),
            actor,
            view,
            policy,
            clock,
        })
    }

    /// The provider.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Permission for one call now (atomics only).
    pub fn try_acquire(&self) -> Result<Permit, CircuitRejected> {
        self.view.try_acquire(self.clock.now())
    }

    /// Permission for one call at `now`.
    pub fn try_acquire_at(&self, now: DateTime<Utc>) -> Result<Permit, CircuitRejected> {
        self.view.try_acquire(now)
    }

    /// Whether a call could go out now (a peek: takes no permit).
    pub fn allows(&self) -> bool {
        self.view.allows(self.clock.now())
    }

    /// The phase the view shows.
    pub fn phase(&self) -> ViewPhase {
        self.view.phase()
    }

    /// Replaces the policy (config reload); used from the next decision on.
    pub fn set_policy(&self, policy: CircuitPolicy) {
        self.policy.store(Arc::new(policy));
    }

    /// Records the provider's configured priority if it changed
    /// (`provider.priority.changed`; sent without waiting).
    pub fn record_priority(&self, priority: u32) {
        self.actor.cast(
            CircuitCommand::SetPriority {
                priority,
                policy: **self.policy.load(),
            },
            CommandMeta::default(),
            Defer::No,
        );
    }

    /// Reports how a call that held `permit` ended (sent without waiting).
    pub fn record(
        &self,
        permit: Permit,
        request_id: Uuid,
        model: &str,
        latency_micros: u64,
        outcome: CallOutcome,
    ) {
        let trial = permit.consume();
        self.actor.cast(
            CircuitCommand::Record {
                request_id,
                model: model.to_owned(),
                latency_micros,
                outcome,
                trial,
                policy: **self.policy.load(),
            },
            CommandMeta {
                correlation_id: Some(request_id),
                causation_id: None,
            },
            Defer::No,
        );
    }

    /// The durable state (waits for the actor).
    pub async fn durable_state(&self) -> Result<Versioned<CircuitState>, CommandError> {
        self.actor.state().await
    }

    /// Waits until every command sent so far is durable.
    pub async fn flush(&self) {
        self.actor.drain().await;
    }

    /// Waits until every outcome sent so far is durable, then stops the actor.
    pub async fn shutdown(&self) {
        self.actor.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use tutorlog_schemas::events::ErrorKind;
    use tutorlog_store::MemoryStore;

    use super::*;
    use crate::clock::TokioClock;
    use crate::decider::reference_time;

    const POLICY: CircuitPolicy = CircuitPolicy {
        failure_threshold: 5,
        success_threshold: 2,
        open_secs: 60,
        half_open_max_calls: 3,
    };

    fn failure() -> CallOutcome {
        CallOutcome::Failure {
            kind: ErrorKind::Server,
            message: "HTTP 500".into(),
        }
    }

    async fn started() -> (CircuitHandle, Arc<dyn EventStore>) {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(reference_time()));
        let handle = CircuitHandle::start(
            "p",
            POLICY,
            Arc::clone(&store),
            clock,
            Duration::from_secs(30),
            Duration::ZERO,
        )
        .await
        .expect("start");
        (handle, store)
    }

    /// Lets the actor work through its mailbox and appends (the memory store
    /// never blocks, so paused time does not move meanwhile).
    async fn settle(handle: &CircuitHandle) {
        for _ in 0..20 {
            let _ = handle.durable_state().await;
            tokio::task::yield_now().await;
        }
    }

    async fn fail_n(handle: &CircuitHandle, n: u128, base: u128) {
        for i in 0..n {
            let permit = handle.try_acquire().expect("allowed");
            handle.record(permit, Uuid::from_u128(base + i), "m", 10, failure());
        }
        settle(handle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_half_opens_and_closes_with_a_paused_clock() {
        let (handle, store) = started().await;
        fail_n(&handle, 4, 0).await;
        assert_eq!(handle.phase(), ViewPhase::Closed);
        fail_n(&handle, 1, 4).await;
        assert!(matches!(handle.phase(), ViewPhase::Open { .. }));
        assert!(matches!(
            handle.try_acquire(),
            Err(CircuitRejected::Open { .. })
        ));

        // 59 s later still open; at 60 s the timer half-opens it without traffic.
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(handle.try_acquire().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        settle(&handle).await;
        assert_eq!(
            handle.durable_state().await.expect("state").state.phase,
            CircuitPhase::HalfOpen
        );

        // Three trial permits, no more.
        let trials: Vec<_> = (0..3)
            .map(|_| handle.try_acquire().expect("trial"))
            .collect();
        assert_eq!(
            handle.try_acquire().err(),
            Some(CircuitRejected::TrialsInFlight)
        );
        let mut trials = trials.into_iter();
        for id in [100u128, 101] {
            let permit = trials.next().expect("permit");
            handle.record(permit, Uuid::from_u128(id), "m", 10, CallOutcome::Success);
        }
        settle(&handle).await;
        assert_eq!(handle.phase(), ViewPhase::Closed);

        handle.shutdown().await;
        let types: Vec<String> = store
            .read_stream("circuit-p", 0, 100)
            .await
            .expect("read")
            .into_iter()
            .map(|e| e.event_type)
            .filter(|t| t.starts_with("circuit."))
            .collect();
        assert_eq!(
            types,
            ["circuit.opened", "circuit.half_opened", "circuit.closed"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_and_a_restart_keeps_the_state() {
        let (handle, store) = started().await;
        fail_n(&handle, 5, 0).await;
        tokio::time::advance(Duration::from_secs(61)).await;
        let trial = handle.try_acquire().expect("trial");
        assert!(trial.is_trial());
        handle.record(trial, Uuid::from_u128(9), "m", 10, failure());
        settle(&handle).await;
        assert!(matches!(handle.phase(), ViewPhase::Open { .. }));
        let before = handle.durable_state().await.expect("state").state;
        assert_eq!(before.episode, 2);
        handle.shutdown().await;

        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(reference_time()));
        let restarted = CircuitHandle::start(
            "p",
            POLICY,
            store,
            clock,
            Duration::from_secs(30),
            Duration::ZERO,
        )
        .await
        .expect("restart");
        assert_eq!(
            restarted.durable_state().await.expect("state").state,
            before
        );
        assert!(matches!(restarted.phase(), ViewPhase::Open { .. }));
        restarted.shutdown().await;
    }
}
