//! The budget actor of one provider, and the snapshot it publishes.
//!
//! The actor is a [`Pipelined`](crate::pipeline) [`Budget`] decider: reservations
//! are decided one at a time against a state that holds every earlier one, so
//! however many requests arrive at once, at most as many reservations are granted
//! as the budget affords; many of them share one fsync.
//!
//! Two durability modes (`gateway.reservations`):
//! - [`ReservationMode::Strict`]: the reservation is durable before the caller
//!   hears "reserved" (and so before the provider is called). After a crash every
//!   reservation without a commit or release still counts as spent, so even a crash
//!   cannot lead to overspending.
//! - [`ReservationMode::Fast`]: the reservation is decided in memory (on the
//!   caller's task, under the lock the actor decides under) and made durable
//!   together with its commit or release (one append, off the request path). No overspending while the process runs; a crash forgets the
//!   reservations in flight (their calls' costs are then missing from the log).
//!
//! In both modes commits and releases are sent without waiting: the client's
//! response never waits for the commit's fsync.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tutorlog_schemas::events::BudgetExceeded;
use tutorlog_store::EventStore;
use uuid::Uuid;

use super::budget::{period_of, Budget, BudgetCommand, Limits, PeriodTotals};
use crate::aggregate::{CommandError, CommandMeta};
use crate::clock::Clock;
use crate::pipeline::{Defer, PipelineArgs, PipelineHandle};

/// Fast reservations are decided on the caller's task while fewer calls than
/// this hold one; beyond, they go through the actor, which answers a burst of
/// them in one wake-up (see [`PipelineHandle::decide_held`]).
pub const DIRECT_BELOW_OPEN_CALLS: usize = 4;

/// When a reservation becomes durable (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationMode {
    /// Durable before the provider is called.
    Strict,
    /// Durable with the commit.
    Fast,
}

impl ReservationMode {
    /// Parses `strict` / `fast`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "strict" => Some(ReservationMode::Strict),
            "fast" => Some(ReservationMode::Fast),
            _ => None,
        }
    }
}

/// The budget as last decided, for reads that must not wait for the actor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetSnapshot {
    /// The period the totals are for (the month of the last decision).
    pub period: String,
    /// Limits in force.
    pub limits: Limits,
    /// That period's totals.
    pub totals: PeriodTotals,
    /// Left under the monthly limit; `None` for a free provider.
    pub remaining_micros: Option<u64>,
    /// Open reservations (all periods).
    pub open_reservations: usize,
}

impl BudgetSnapshot {
    /// Whether a call estimated at `estimate_micros` would get a reservation now.
    pub fn can_afford(&self, estimate_micros: u64) -> bool {
        let per_request_ok = self.limits.per_request_micros == 0
            || estimate_micros <= self.limits.per_request_micros;
        per_request_ok
            && self
                .remaining_micros
                .is_none_or(|left| estimate_micros <= left)
    }
}

/// A reservation request.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRequest {
    /// The gateway request.
    pub request_id: Uuid,
    /// Model to be called.
    pub model: String,
    /// Upper bound of the call's cost, micro-USD.
    pub estimate_micros: u64,
    /// Attributed user.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    /// Reserved; in strict mode also durable, at this log position.
    Reserved {
        /// Where the reservation landed (`None` in fast mode).
        position: Option<u64>,
    },
    /// Refused: it did not fit.
    Exceeded(BudgetExceeded),
}

/// Why a budget could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The actor or the log failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A reservation with this request id is already open (a caller bug).
    #[error(transparent)]
    Rejected(#[from] super::budget::BudgetRejection),
}

/// A running budget actor and its published snapshot.
#[derive(Clone)]
pub struct BudgetHandle {
    provider: String,
    mode: ReservationMode,
    actor: PipelineHandle<Budget>,
    snapshot: Arc<ArcSwap<BudgetSnapshot>>,
}

impl std::fmt::Debug for BudgetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetHandle")
            .field("provider", &self.provider)
            .field("mode", &self.mode)
            .finish()
    }
}

impl BudgetHandle {
    /// Starts the budget actor of `provider` (stream `budget-{provider}`), loads
    /// its stream and records `limits` if they changed. `hold` is
    /// [`crate::pipeline::PipelineArgs::hold`]: how long a commit or release may
    /// wait for the next reservation's append.
    pub async fn start(
        provider: &str,
        limits: Limits,
        mode: ReservationMode,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        hold: Duration,
    ) -> Result<BudgetHandle, CommandError> {
        let snapshot = Arc::new(ArcSwap::from_pointee(BudgetSnapshot::default()));
        let published = Arc::clone(&snapshot);
        let publish_clock = Arc::clone(&clock);
        let publish = Arc::new(move |state: &super::budget::BudgetState| {
            let period = period_of(publish_clock.now());
            published.store(Arc::new(BudgetSnapshot {
                totals: state.totals(&period),
                remaining_micros: state.remaining(&period),
                limits: state.limits.unwrap_or_default(),
                open_reservations: state.open.len(),
                period,
            }));
        });
        let (actor, _join) = PipelineHandle::start(
            PipelineArgs {
                id: provider.to_owned(),
                store,
                clock,
                publish,
                hold,
            },
            timeout,
        )
        .await?;
        let handle = BudgetHandle {
            provider: provider.to_owned(),
            mode,
            actor,
            snapshot,
        };
        handle.set_limits(limits).await?;
        Ok(handle)
    }

    /// The provider this budget belongs to.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The durability mode.
    pub fn mode(&self) -> ReservationMode {
        self.mode
    }

    /// The budget as last decided (no waiting).
    pub fn snapshot(&self) -> Arc<BudgetSnapshot> {
        self.snapshot.load_full()
    }

    /// Records new limits (durable before it returns; a no-op when unchanged).
    pub async fn set_limits(&self, limits: Limits) -> Result<(), CommandError> {
        match self
            .actor
            .call(
                BudgetCommand::SetLimits(limits),
                CommandMeta::default(),
                true,
                Defer::No,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(rejection) => Err(CommandError::Unavailable {
                id: self.provider.clone(),
                reason: rejection.to_string(),
            }),
        }
    }

    /// Sets aside the estimate for a call (see the module docs for when it is
    /// durable).
    pub async fn reserve(&self, request: ReservationRequest) -> Result<Reservation, BudgetError> {
        let meta = CommandMeta {
            correlation_id: Some(request.request_id),
            causation_id: None,
        };
        let key = request.request_id;
        let (durable, defer) = match self.mode {
            ReservationMode::Strict => (true, Defer::No),
            ReservationMode::Fast => (false, Defer::Hold(key)),
        };
        let command = BudgetCommand::Reserve {
            request_id: request.request_id,
            model: request.model,
            estimate_micros: request.estimate_micros,
            user_id: request.user_id,
            session_id: request.session_id,
        };
        // Fast mode decides here when few calls are open, under the same lock
        // the actor decides under: no reservation can slip past another, and
        // the call saves two task hand-offs (the actor's mailbox and its reply).
        let direct = match defer {
            Defer::Hold(key) => {
                self.actor
                    .decide_held(&command, meta, key, DIRECT_BELOW_OPEN_CALLS)
            }
            _ => None,
        };
        let decided = match direct {
            Some(decided) => decided?,
            None => self.actor.call(command, meta, durable, defer).await??,
        };
        if let Some(exceeded) = Budget::refusal(&decided.events) {
            return Ok(Reservation::Exceeded(exceeded.clone()));
        }
        Ok(Reservation::Reserved {
            position: decided.position,
        })
    }

    /// Charges the actual cost (sent without waiting).
    pub fn commit(
        &self,
        request_id: Uuid,
        actual_micros: u64,
        input_tokens: u64,
        output_tokens: u64,
        price_version: &str,
    ) {
        self.actor.cast(
            BudgetCommand::Commit {
                request_id,
                actual_micros,
                input_tokens,
                output_tokens,
                price_version: price_version.to_owned(),
            },
            CommandMeta {
                correlation_id: Some(request_id),
                causation_id: None,
            },
            Defer::With(request_id),
        );
    }

    /// Gives the reservation back (sent without waiting).
    pub fn release(&self, request_id: Uuid, reason: &str) {
        self.actor.cast(
            BudgetCommand::Release {
                request_id,
                reason: reason.to_owned(),
            },
            CommandMeta {
                correlation_id: Some(request_id),
                causation_id: None,
            },
            Defer::With(request_id),
        );
    }

    /// The durable budget state (waits for the actor; for tests and admin).
    pub async fn durable_state(
        &self,
    ) -> Result<crate::aggregate::Versioned<super::budget::BudgetState>, CommandError> {
        self.actor.state().await
    }

    /// Waits until every command sent so far is durable.
    pub async fn flush(&self) {
        self.actor.drain().await;
    }

    /// Waits until every command sent so far is durable, then stops the actor.
    pub async fn shutdown(&self) {
        self.actor.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use tutorlog_store::{EmbeddedStore, EventStore};

    use super::*;
    use crate::clock::ManualClock;
    use crate::decider::reference_time;

    /// Starts the test budget `p` on `store`.
    async fn start_p(
        store: &Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        mode: ReservationMode,
        hold: Duration,
    ) -> BudgetHandle {
        BudgetHandle::start(
            "p",
            limits,
            mode,
            Arc::clone(store),
            clock,
            Duration::from_secs(10),
            hold,
        )
        .await
        .expect("start")
    }

    fn monthly_limit(micros: u64) -> Limits {
        Limits {
            monthly_micros: micros,
            per_request_micros: 0,
        }
    }

    async fn budget(
        dir: &std::path::Path,
        mode: ReservationMode,
        monthly: u64,
    ) -> (BudgetHandle, Arc<dyn EventStore>) {
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir).expect("open"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
        let handle = start_p(&store, clock, monthly_limit(monthly), mode, Duration::ZERO).await;
        (handle, store)
    }

    fn request(id: u128, estimate: u64) -> ReservationRequest {
        ReservationRequest {
            request_id: Uuid::from_u128(id),
            model: "m".into(),
            estimate_micros: estimate,
            user_id: None,
            session_id: None,
        }
    }

    async fn race(handle: &BudgetHandle, n: u128, estimate: u64) -> usize {
        let mut tasks = Vec::new();
        for id in 0..n {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                handle.reserve(request(id, estimate)).await
            }));
        }
        let mut reserved = 0;
        for task in tasks {
            match task.await.expect("task").expect("reserve") {
                Reservation::Reserved { .. } => reserved += 1,
                Reservation::Exceeded(_) => {}
            }
        }
        reserved
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_exceed_what_the_budget_affords() {
        for mode in [ReservationMode::Strict, ReservationMode::Fast] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (handle, store) = budget(dir.path(), mode, 20_000).await;
            assert_eq!(race(&handle, 500, 1_000).await, 20, "{mode:?}");
            let snapshot = handle.snapshot();
            assert_eq!(snapshot.remaining_micros, Some(0));
            assert_eq!(snapshot.totals.exceeded, 480);
            // Commit them all at half the estimate: the freed money is usable again.
            for id in 0..500u128 {
                handle.commit(Uuid::from_u128(id), 500, 1, 1, "p1");
            }
            handle.shutdown().await;
            // Reopen from the log: the durable state agrees.
            drop(handle);
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
            let reopened =
                start_p(&store, clock, monthly_limit(20_000), mode, Duration::ZERO).await;
            let snapshot = reopened.snapshot();
            assert_eq!(snapshot.totals.committed_micros, 10_000, "{mode:?}");
            assert_eq!(snapshot.totals.reserved_micros, 0);
            assert_eq!(snapshot.remaining_micros, Some(10_000));
            assert_eq!(snapshot.open_reservations, 0);
            reopened.shutdown().await;
        }
    }

    /// Event types of the budget stream, in order.
    async fn budget_stream(store: &Arc<dyn EventStore>) -> Vec<String> {
        let read = store.read_stream("budget-p", 0, 1_000).await.expect("read");
        read.into_iter()
            .map(|e| e.event_type)
            .filter(|t| t != "budget.limit.changed")
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_commit_rides_with_the_next_reservation_and_a_drain_sends_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
        // An hour: nothing nobody waits on is sent unless someone waits.
        let handle = start_p(
            &store,
            clock,
            monthly_limit(1_000_000),
            ReservationMode::Strict,
            Duration::from_secs(3_600),
        )
        .await;
        handle.reserve(request(1, 1_000)).await.expect("reserve 1");
        handle.commit(Uuid::from_u128(1), 800, 10, 10, "m");
        // The mailbox is in order: once the state answers, the commit was decided.
        handle.durable_state().await.expect("state");
        assert_eq!(budget_stream(&store).await, ["budget.reserved"]);
        assert_eq!(
            handle.snapshot().totals.committed_micros,
            800,
            "decided at once"
        );
        handle.reserve(request(2, 1_000)).await.expect("reserve 2");
        assert_eq!(
            budget_stream(&store).await,
            ["budget.reserved", "budget.committed", "budget.reserved"],
            "the held commit went in the reservation's append"
        );
        handle.release(Uuid::from_u128(2), "failed");
        handle.flush().await;
        assert_eq!(
            budget_stream(&store).await.len(),
            4,
            "a drain sends what is held"
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn strict_reservations_survive_a_restart_as_spent_and_fast_ones_do_not() {
        for (mode, open_after) in [(ReservationMode::Strict, 1), (ReservationMode::Fast, 0)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (handle, store) = budget(dir.path(), mode, 10_000).await;
            let answer = handle.reserve(request(1, 4_000)).await.expect("reserve");
            match (mode, answer) {
                (ReservationMode::Strict, Reservation::Reserved { position }) => {
                    assert!(position.is_some(), "strict reservations are durable")
                }
                (ReservationMode::Fast, Reservation::Reserved { position }) => {
                    assert!(position.is_none())
                }
                (_, other) => panic!("unexpected {other:?}"),
            }
            // "Crash": no commit, a new actor on the same log.
            handle.shutdown().await;
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
            let after = start_p(&store, clock, monthly_limit(10_000), mode, Duration::ZERO).await;
            assert_eq!(after.snapshot().open_reservations, open_after, "{mode:?}");
            after.shutdown().await;
        }
    }

    /// A log whose appends can be refused as if its disk were full, and whose
    /// stream reads can fail.
    struct FullDisk {
        inner: EmbeddedStore,
        full: std::sync::atomic::AtomicBool,
        unreadable: std::sync::atomic::AtomicBool,
        /// Also refuse every `refuse_every`-th append (0: never).
        refuse_every: usize,
        appends: std::sync::atomic::AtomicUsize,
    }

    impl FullDisk {
        fn new(dir: &std::path::Path, refuse_every: usize) -> Self {
            FullDisk {
                inner: EmbeddedStore::open(dir).expect("open"),
                full: std::sync::atomic::AtomicBool::new(false),
                unreadable: std::sync::atomic::AtomicBool::new(false),
                refuse_every,
                appends: std::sync::atomic::AtomicUsize::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl EventStore for FullDisk {
        async fn append(
            &self,
            stream: &str,
            expected: tutorlog_store::ExpectedRevision,
            events: Vec<tutorlog_schemas::NewEvent>,
        ) -> Result<tutorlog_store::AppendResult, tutorlog_store::StoreError> {
            let n = self
                .appends
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let refused = self.refuse_every > 0 && n % self.refuse_every == self.refuse_every - 1;
            if refused || self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(tutorlog_store::StoreError::DiskFull("injected".into()));
            }
            self.inner.append(stream, expected, events).await
        }
        async fn read_stream(
            &self,
            stream: &str,
            from: u64,
            max: usize,
        ) -> Result<Vec<tutorlog_schemas::RecordedEvent>, tutorlog_store::StoreError> {
            if self.unreadable.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(tutorlog_store::StoreError::Unavailable("injected".into()));
            }
            self.inner.read_stream(stream, from, max).await
        }
        async fn read_all(
            &self,
            from: u64,
            max: usize,
        ) -> Result<Vec<tutorlog_schemas::RecordedEvent>, tutorlog_store::StoreError> {
            self.inner.read_all(from, max).await
        }
        async fn stream_revision(
            &self,
            stream: &str,
        ) -> Result<Option<u64>, tutorlog_store::StoreError> {
            self.inner.stream_revision(stream).await
        }
        fn last_position(&self) -> Option<u64> {
            self.inner.last_position()
        }
        fn subscribe_all(&self, from: u64) -> tutorlog_store::Subscription {
            self.inner.subscribe_all(from)
        }
        fn subscribe_stream(&self, stream: &str, from: u64) -> tutorlog_store::Subscription {
            self.inner.subscribe_stream(stream, from)
        }
    }

    /// The test budget `p` on a [`FullDisk`] log in `dir`.
    async fn on_full_disk(
        dir: &std::path::Path,
        refuse_every: usize,
        limits: Limits,
        mode: ReservationMode,
    ) -> (
        Arc<FullDisk>,
        Arc<dyn EventStore>,
        Arc<dyn Clock>,
        BudgetHandle,
    ) {
        let disk = Arc::new(FullDisk::new(dir, refuse_every));
        let store: Arc<dyn EventStore> = disk.clone();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
        let handle = start_p(&store, Arc::clone(&clock), limits, mode, Duration::ZERO).await;
        (disk, store, clock, handle)
    }

    /// Waits (5 s at most) until the log holds `commits` commits and no open
    /// reservation, then restarts the budget from the log and checks what it
    /// counts: the kept commands reached the log, not just the working state.
    async fn assert_commits_reach_the_log(
        handle: BudgetHandle,
        (store, clock, limits, mode): (
            &Arc<dyn EventStore>,
            Arc<dyn Clock>,
            Limits,
            ReservationMode,
        ),
        commits: u64,
        committed_micros: u64,
        remaining_micros: u64,
    ) {
        let mut closed = false;
        for _ in 0..100 {
            let durable = handle.durable_state().await.expect("state").state;
            if durable.open.is_empty() && durable.totals(&period_of(clock.now())).commits == commits
            {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(closed, "{mode:?}: the kept commits reached the log");
        handle.shutdown().await;
        let after = start_p(store, clock, limits, mode, Duration::ZERO).await;
        let snapshot = after.snapshot();
        assert_eq!(snapshot.open_reservations, 0, "{mode:?}");
        assert_eq!(
            snapshot.totals.committed_micros, committed_micros,
            "{mode:?}"
        );
        assert_eq!(
            snapshot.remaining_micros,
            Some(remaining_micros),
            "{mode:?}"
        );
        after.shutdown().await;
    }

    /// A commit (sent without waiting) that the log refuses for a full disk is
    /// kept and sent again once space is freed: the reservation is closed, not left
    /// open for ever. A reservation refused meanwhile gets the error.
    #[tokio::test]
    async fn a_commit_refused_for_a_full_disk_is_sent_again_once_space_is_freed() {
        for mode in [ReservationMode::Strict, ReservationMode::Fast] {
            let dir = tempfile::tempdir().expect("tempdir");
            let limits = monthly_limit(10_000);
            let (disk, store, clock, handle) = on_full_disk(dir.path(), 0, limits, mode).await;
            handle.reserve(request(1, 4_000)).await.expect("reserve");
            disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
            handle.commit(Uuid::from_u128(1), 1_000, 3, 4, "p1");
            tokio::time::sleep(Duration::from_millis(50)).await;
            if mode == ReservationMode::Strict {
                let refused = handle.reserve(request(2, 1_000)).await;
                assert!(
                    refused.is_err(),
                    "{mode:?}: a durable reservation fails on a full disk"
                );
            }
            disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
            assert_commits_reach_the_log(handle, (&store, clock, limits, mode), 1, 1_000, 9_000)
                .await;
        }
    }

    /// Commits (sent without waiting) that the log refuses while it cannot be read
    /// either, and commits that arrive while the state waits for a reload that
    /// fails, are kept until the log works again: no reservation stays open for
    /// ever because the log had a bad minute.
    #[tokio::test]
    async fn commits_are_kept_while_the_log_can_neither_take_nor_give_events() {
        for mode in [ReservationMode::Strict, ReservationMode::Fast] {
            let dir = tempfile::tempdir().expect("tempdir");
            let limits = monthly_limit(10_000);
            let (disk, store, clock, handle) = on_full_disk(dir.path(), 0, limits, mode).await;
            handle.reserve(request(1, 4_000)).await.expect("reserve");
            handle.reserve(request(2, 4_000)).await.expect("reserve");
            disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
            disk.unreadable
                .store(true, std::sync::atomic::Ordering::SeqCst);
            // Refused, and the reload after the refusal fails.
            handle.commit(Uuid::from_u128(1), 1_000, 3, 4, "p1");
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Arrives on the stale state; its reload fails too.
            handle.commit(Uuid::from_u128(2), 2_000, 3, 4, "p1");
            // Past a retry whose reload fails as well.
            tokio::time::sleep(crate::pipeline::APPEND_RETRY_AFTER + Duration::from_millis(200))
                .await;
            disk.unreadable
                .store(false, std::sync::atomic::Ordering::SeqCst);
            disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
            assert_commits_reach_the_log(handle, (&store, clock, limits, mode), 2, 3_000, 7_000)
                .await;
        }
    }

    /// A fast reservation is decided on the caller's task, but not on a working
    /// state that waits for a reload: then it goes to the actor, which reloads
    /// first (and answers the log's error while the log cannot be read).
    #[tokio::test]
    async fn a_fast_reservation_is_left_to_the_actor_while_its_state_waits_for_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = monthly_limit(10_000);
        let (disk, _store, _clock, handle) =
            on_full_disk(dir.path(), 0, limits, ReservationMode::Fast).await;
        let probe = |id: u128| BudgetCommand::Reserve {
            request_id: Uuid::from_u128(id),
            model: "m".into(),
            estimate_micros: 1,
            user_id: None,
            session_id: None,
        };
        handle.reserve(request(1, 4_000)).await.expect("reserve");
        // The log refuses the commit and cannot be read to reload after it.
        disk.full.store(true, std::sync::atomic::Ordering::SeqCst);
        disk.unreadable
            .store(true, std::sync::atomic::Ordering::SeqCst);
        handle.commit(Uuid::from_u128(1), 1_000, 3, 4, "p1");
        let mut stale = false;
        for _ in 0..100 {
            let meta = CommandMeta::default();
            match handle
                .actor
                .decide_held(&probe(99), meta, Uuid::from_u128(99), usize::MAX)
            {
                None => {
                    stale = true;
                    break;
                }
                // Decided directly before the refusal reached the actor: undo it.
                Some(_) => handle.release(Uuid::from_u128(99), "probe"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stale, "the refused append left the working state current");
        let refused = handle.reserve(request(2, 1_000)).await;
        assert!(
            refused.is_err(),
            "decided on a state the log did not back: {refused:?}"
        );
        disk.unreadable
            .store(false, std::sync::atomic::Ordering::SeqCst);
        disk.full.store(false, std::sync::atomic::Ordering::SeqCst);
        let reserved = handle.reserve(request(3, 1_000)).await.expect("reserve");
        assert!(
            matches!(reserved, Reservation::Reserved { position: None }),
            "{reserved:?}"
        );
        let meta = CommandMeta::default();
        assert!(
            handle
                .actor
                .decide_held(&probe(4), meta, Uuid::from_u128(4), usize::MAX)
                .is_some(),
            "after the reload, reservations are decided directly again"
        );
        // Held now: 3 (reserved directly), 4 (the probe) and 99 if the loop's
        // last probe was decided; with DIRECT_BELOW_OPEN_CALLS held, the next
        // goes through the actor, and is reserved all the same.
        for id in 10..10 + DIRECT_BELOW_OPEN_CALLS as u128 {
            handle.reserve(request(id, 1)).await.expect("reserve");
        }
        assert!(
            handle
                .actor
                .decide_held(&probe(5), meta, Uuid::from_u128(5), DIRECT_BELOW_OPEN_CALLS)
                .is_none(),
            "with {DIRECT_BELOW_OPEN_CALLS} calls open the actor decides"
        );
        let reserved = handle.reserve(request(6, 1)).await.expect("reserve");
        assert!(
            matches!(reserved, Reservation::Reserved { position: None }),
            "{reserved:?}"
        );
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn fast_mode_appends_the_reservation_with_its_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (handle, store) = budget(dir.path(), ReservationMode::Fast, 10_000).await;
        let before = store.stream_revision("budget-p").await.expect("revision");
        handle.reserve(request(7, 4_000)).await.expect("reserve");
        assert_eq!(handle.snapshot().remaining_micros, Some(6_000));
        assert_eq!(
            store.stream_revision("budget-p").await.expect("rev"),
            before
        );
        handle.commit(Uuid::from_u128(7), 1_000, 3, 4, "p1");
        handle.shutdown().await;
        let events = store
            .read_stream("budget-p", before.map_or(0, |r| r + 1), 10)
            .await
            .expect("read");
        let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["budget.reserved", "budget.committed"]);
        assert!(events
            .iter()
            .all(|e| e.correlation_id == Some(Uuid::from_u128(7))));
    }

    /// The append task answers a strict reservation's caller itself; it must tell
    /// the actor first, so that what the caller asks next sees the reservation in
    /// the durable state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_strict_reservation_is_in_the_durable_state_once_its_caller_hears_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (handle, _store) = budget(dir.path(), ReservationMode::Strict, 0).await;
        for id in 0..200u128 {
            let reserved = handle.reserve(request(id, 10)).await.expect("reserve");
            assert!(
                matches!(reserved, Reservation::Reserved { position: Some(_) }),
                "{reserved:?}"
            );
            let durable = handle.durable_state().await.expect("state");
            assert!(
                durable.state.open.contains_key(&Uuid::from_u128(id)),
                "reservation {id} missing from the durable state its caller reads next"
            );
        }
        handle.shutdown().await;
    }

    /// A second writer on the stream: the strict reservation that meets the
    /// conflict is decided again on the reloaded state, and its caller hears the
    /// second decision.
    #[tokio::test]
    async fn a_strict_reservation_behind_another_writer_is_decided_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, store) = budget(dir.path(), ReservationMode::Strict, 10_000).await;
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(reference_time()));
        let second = start_p(
            &store,
            clock,
            monthly_limit(10_000),
            ReservationMode::Strict,
            Duration::ZERO,
        )
        .await;
        let reserved = first.reserve(request(1, 6_000)).await.expect("reserve");
        assert!(
            matches!(reserved, Reservation::Reserved { .. }),
            "{reserved:?}"
        );
        // `second` still believes 10,000 is left; the log says 4,000.
        let refused = second.reserve(request(2, 6_000)).await.expect("reserve");
        assert!(matches!(refused, Reservation::Exceeded(_)), "{refused:?}");
        let fits = second.reserve(request(3, 4_000)).await.expect("reserve");
        assert!(matches!(fits, Reservation::Reserved { .. }), "{fits:?}");
        first.shutdown().await;
        second.shutdown().await;
        assert_eq!(
            budget_stream(&store).await,
            [
                "budget.reserved",
                "provider.budget.exceeded",
                "budget.reserved"
            ]
        );
    }

    /// Appends refused now and then under 200 concurrent strict reservations on a
    /// budget that affords 20: every caller hears back, no more than 20 are
    /// reserved, and what the callers were told is exactly what the log holds
    /// (an acknowledged reservation is durable, a refused one is not there).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_appends_under_contention_leave_the_log_equal_to_the_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = monthly_limit(20_000);
        let mode = ReservationMode::Strict;
        // The first append (the limits, at start) is never the refused third.
        let (_disk, store, clock, handle) = on_full_disk(dir.path(), 3, limits, mode).await;
        let mut tasks = Vec::new();
        for id in 0..200u128 {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                (id, handle.reserve(request(id, 1_000)).await)
            }));
        }
        let mut reserved = std::collections::BTreeSet::new();
        let mut failed = 0;
        for task in tasks {
            let answered = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("every caller hears back")
                .expect("task");
            match answered {
                (id, Ok(Reservation::Reserved { position })) => {
                    assert!(position.is_some(), "strict reservations are durable");
                    reserved.insert(Uuid::from_u128(id));
                }
                (_, Ok(Reservation::Exceeded(_))) => {}
                (_, Err(error)) => {
                    // The log's refusal itself, not a reply lost on the way.
                    assert!(error.to_string().contains("injected"), "{error}");
                    failed += 1;
                }
            }
        }
        assert!(reserved.len() <= 20, "{} reserved", reserved.len());
        assert!(
            failed > 0,
            "the store refused nothing: the test tests nothing"
        );
        handle.shutdown().await;
        drop(handle);
        let reopened = start_p(&store, clock, limits, mode, Duration::ZERO).await;
        let durable = reopened.durable_state().await.expect("state").state;
        let in_log: std::collections::BTreeSet<Uuid> = durable.open.keys().copied().collect();
        assert_eq!(
            in_log, reserved,
            "the log holds exactly the acknowledged reservations"
        );
        reopened.shutdown().await;
    }
}
