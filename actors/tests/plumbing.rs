//! The actor plumbing against a real embedded log, with a toy bank-account decider.
//!
//! One test binary on purpose (link time). Timeouts are real but short: the
//! embedded store fsyncs on its own thread, so paused tokio time would auto-advance
//! while a test waits for the disk.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use ractor::Actor;
use serde::{Deserialize, Serialize};
use tutorlog_actors::aggregate::{self, Aggregate, AggregateArgs};
use tutorlog_actors::decider::{reference_time, Decider, LogEvent};
use tutorlog_actors::{
    Clock, CommandError, CommandMeta, ManualClock, RegistryConfig, RegistryHandle, RegistryStats,
};
use tutorlog_schemas::{CodecError, NewEvent, RecordedEvent};
use tutorlog_store::{
    AppendResult, EmbeddedStore, EventStore, ExpectedRevision, StoreError, Subscription,
};
use uuid::Uuid;

// ------------------------------------------------------------------ the toy domain

/// A bank account: opened once, then deposits and withdrawals, never overdrawn.
struct Account;

#[derive(Debug, Clone, Default, PartialEq)]
struct AccountState {
    owner: Option<String>,
    opened_at: Option<DateTime<Utc>>,
    balance: u64,
}

#[derive(Debug)]
enum AccountCommand {
    Open {
        owner: String,
    },
    Deposit(u64),
    Withdraw(u64),
    /// Simulates a bug in the decider: it panics.
    Explode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String, at: DateTime<Utc> },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

#[derive(Debug, PartialEq)]
enum AccountRejection {
    AlreadyOpen,
    NotOpen,
    ZeroAmount,
    InsufficientFunds { balance: u64, wanted: u64 },
}

impl AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "account.opened",
            AccountEvent::Deposited { .. } => "account.deposited",
            AccountEvent::Withdrawn { .. } => "account.withdrawn",
        }
    }
}

impl LogEvent for AccountEvent {
    fn to_new_event(&self) -> Result<NewEvent, CodecError> {
        let payload = serde_json::to_vec(self).map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok(NewEvent::raw(self.event_type(), 1, payload))
    }

    fn from_recorded(recorded: &RecordedEvent) -> Result<Option<Self>, CodecError> {
        if !recorded.event_type.starts_with("account.") {
            return Ok(None);
        }
        serde_json::from_slice(&recorded.payload)
            .map(Some)
            .map_err(|e| CodecError::Decode(e.to_string()))
    }
}

impl Decider for Account {
    type State = AccountState;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Rejection = AccountRejection;

    fn stream_name(id: &str) -> String {
        format!("account-{id}")
    }

    fn decide(
        state: &AccountState,
        command: &AccountCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<AccountEvent>, AccountRejection> {
        let opened = state.owner.is_some();
        match command {
            AccountCommand::Open { .. } if opened => Err(AccountRejection::AlreadyOpen),
            AccountCommand::Open { owner } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
                at: now,
            }]),
            _ if !opened => Err(AccountRejection::NotOpen),
            AccountCommand::Deposit(0) | AccountCommand::Withdraw(0) => {
                Err(AccountRejection::ZeroAmount)
            }
            AccountCommand::Deposit(amount) => {
                Ok(vec![AccountEvent::Deposited { amount: *amount }])
            }
            AccountCommand::Withdraw(amount) if *amount > state.balance => {
                Err(AccountRejection::InsufficientFunds {
                    balance: state.balance,
                    wanted: *amount,
                })
            }
            AccountCommand::Withdraw(amount) => {
                Ok(vec![AccountEvent::Withdrawn { amount: *amount }])
            }
            AccountCommand::Explode => panic!("the account decider exploded (on purpose)"),
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::Opened { owner, at } => {
                state.owner = Some(owner.clone());
                state.opened_at = Some(*at);
            }
            AccountEvent::Deposited { amount } => state.balance += amount,
            AccountEvent::Withdrawn { amount } => state.balance -= amount,
        }
        state
    }
}

fn opened(owner: &str) -> AccountEvent {
    AccountEvent::Opened {
        owner: owner.into(),
        at: reference_time(),
    }
}

// ------------------------------------------------------------------ pure rules

#[test]
fn account_rules_given_when_then() {
    use AccountCommand::*;
    use AccountEvent::*;

    let state = Account::given([])
        .when(Open {
            owner: "ada".into(),
        })
        .then([opened("ada")]);
    assert_eq!(state.owner.as_deref(), Some("ada"));

    let later = reference_time() + TimeDelta::days(3);
    Account::given([])
        .at(later)
        .when(Open {
            owner: "bob".into(),
        })
        .then([Opened {
            owner: "bob".into(),
            at: later,
        }]);

    Account::given([opened("ada")])
        .when(Open {
            owner: "eve".into(),
        })
        .then_err(AccountRejection::AlreadyOpen);
    Account::given([])
        .when(Deposit(5))
        .then_err(AccountRejection::NotOpen);
    Account::given([opened("ada")])
        .when(Deposit(0))
        .then_err(AccountRejection::ZeroAmount);

    let state = Account::given([opened("ada"), Deposited { amount: 30 }])
        .when(Withdraw(20))
        .then([Withdrawn { amount: 20 }]);
    assert_eq!(state.balance, 10);

    Account::given([
        opened("ada"),
        Deposited { amount: 30 },
        Withdrawn { amount: 20 },
    ])
    .when(Withdraw(11))
    .then_err(AccountRejection::InsufficientFunds {
        balance: 10,
        wanted: 11,
    });
}

// ------------------------------------------------------------------ helpers

const TIMEOUT: Duration = Duration::from_secs(5);

struct Fixture {
    dir: tempfile::TempDir,
    log: EmbeddedStore,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedStore::open(dir.path()).expect("open store");
        Fixture {
            dir,
            log,
            clock: Arc::new(ManualClock::default()),
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        Arc::new(self.log.clone())
    }

    async fn registry(&self, config: RegistryConfig) -> RegistryHandle<Account> {
        self.registry_on(self.store(), config).await
    }

    async fn registry_on(
        &self,
        store: Arc<dyn EventStore>,
        config: RegistryConfig,
    ) -> RegistryHandle<Account> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let (handle, _join) = RegistryHandle::<Account>::start(store, clock, config)
            .await
            .expect("start registry");
        handle
    }

    /// Appends behind every actor's back, as a second node would.
    async fn sneak(&self, id: &str, expected: ExpectedRevision, event: AccountEvent) {
        let record = event.to_new_event().expect("encode");
        self.log
            .append(&Account::stream_name(id), expected, vec![record])
            .await
            .expect("second writer append");
    }

    async fn stream(&self, id: &str) -> Vec<RecordedEvent> {
        self.log
            .read_stream(&Account::stream_name(id), 0, 1_000)
            .await
            .expect("read stream")
    }
}

/// Opens the log directory again once every handle of the previous store (some
/// held by actors that are finishing) has been dropped and released its lock.
async fn reopen(dir: &std::path::Path) -> EmbeddedStore {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match EmbeddedStore::open(dir) {
            Ok(store) => return store,
            Err(StoreError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("reopen: {error}"),
        }
    }
}

fn config() -> RegistryConfig {
    RegistryConfig {
        call_timeout: TIMEOUT,
        shutdown_timeout: TIMEOUT,
        ..RegistryConfig::default()
    }
}

/// Waits (up to 5 s) until the registry's counters satisfy `done`.
async fn stats_until(
    registry: &RegistryHandle<Account>,
    done: impl Fn(&RegistryStats) -> bool,
) -> RegistryStats {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let stats = registry.stats().await.expect("stats");
        if done(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "registry never reached the expected state: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn decoded(records: &[RecordedEvent]) -> Vec<AccountEvent> {
    records
        .iter()
        .map(|r| {
            AccountEvent::from_recorded(r)
                .expect("decode")
                .expect("an account event")
        })
        .collect()
}

async fn execute_ok(
    registry: &RegistryHandle<Account>,
    id: &str,
    command: AccountCommand,
) -> tutorlog_actors::Outcome<AccountState, AccountEvent> {
    registry
        .execute(id, command)
        .await
        .expect("no command error")
        .expect("not rejected")
}

// ------------------------------------------------------------------ actor tests

#[tokio::test]
async fn reply_comes_after_the_append_is_durable() {
    let fx = Fixture::new();
    let registry = fx.registry(config()).await;
    let correlation = Uuid::now_v7();

    let open = registry
        .execute_with(
            "a1",
            AccountCommand::Open {
                owner: "ada".into(),
            },
            CommandMeta {
                correlation_id: Some(correlation),
                causation_id: None,
            },
        )
        .await
        .expect("no command error")
        .expect("not rejected");
    // The time in the event is the injected clock's, not the wall clock's.
    assert_eq!(open.events, vec![opened("ada")]);
    assert_eq!(open.state.opened_at, Some(reference_time()));

    fx.clock.advance(TimeDelta::minutes(1));
    let deposit = execute_ok(&registry, "a1", AccountCommand::Deposit(40)).await;
    assert_eq!(deposit.state.balance, 40);
    assert_eq!(deposit.revision, Some(1));

    // As soon as the reply is here, the events are in the log, where it says.
    let records = fx.stream("a1").await;
    assert_eq!(
        decoded(&records),
        vec![opened("ada"), AccountEvent::Deposited { amount: 40 }]
    );
    assert_eq!(records[0].correlation_id, Some(correlation));
    assert_eq!(deposit.position, Some(records[1].position));
    let append = deposit.append.expect("an append happened");
    assert_eq!((append.first_revision, append.last_revision), (1, 1));
    assert_eq!(append.position, records[1].position);

    // And they survive the process: reopen the directory and read them back.
    registry.shutdown().await;
    drop(registry);
    let Fixture { dir, log, .. } = fx;
    log.close();
    drop(log);
    let reopened = reopen(dir.path()).await;
    let records = reopened
        .read_stream("account-a1", 0, 100)
        .await
        .expect("read");
    assert_eq!(records.len(), 2);
    reopened.close();
}

#[tokio::test]
async fn a_rejection_is_an_answer_not_a_failure() {
    let fx = Fixture::new();
    let registry = fx.registry(config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;

    let answer = registry
        .execute("a1", AccountCommand::Withdraw(5))
        .await
        .expect("no command error");
    assert_eq!(
        answer.expect_err("rejected"),
        AccountRejection::InsufficientFunds {
            balance: 0,
            wanted: 5
        }
    );
    assert_eq!(
        fx.stream("a1").await.len(),
        1,
        "a rejection appends nothing"
    );

    // The same actor keeps serving.
    execute_ok(&registry, "a1", AccountCommand::Deposit(5)).await;
    let stats = registry.stats().await.expect("stats");
    assert_eq!((stats.spawned, stats.crashed, stats.live), (1, 0, 1));
}

#[tokio::test]
async fn an_actor_starts_by_replaying_its_stream() {
    let fx = Fixture::new();
    fx.sneak("a1", ExpectedRevision::NoStream, opened("ada"))
        .await;
    for (revision, amount) in (0..).zip(1..=25) {
        fx.sneak(
            "a1",
            ExpectedRevision::Exact(revision),
            AccountEvent::Deposited { amount },
        )
        .await;
    }
    let clock: Arc<dyn Clock> = fx.clock.clone();
    let args = AggregateArgs {
        read_batch: 4, // several chunks
        ..AggregateArgs::new("a1", fx.store(), clock)
    };
    let (actor, join) = Actor::spawn(None, Aggregate::<Account>::new(), args)
        .await
        .expect("spawn");

    let current = aggregate::get_state(&actor, TIMEOUT).await.expect("state");
    assert_eq!(current.state.balance, (1..=25).sum::<u64>());
    assert_eq!(current.revision, Some(25));

    let outcome = aggregate::execute(
        &actor,
        AccountCommand::Withdraw(25),
        CommandMeta::default(),
        TIMEOUT,
    )
    .await
    .expect("no command error")
    .expect("not rejected");
    assert_eq!(outcome.revision, Some(26));
    actor.stop(None);
    join.await.expect("actor stops");
}

#[tokio::test]
async fn an_idle_actor_is_passivated_and_comes_back_from_the_log() {
    let fx = Fixture::new();
    let registry = fx
        .registry(RegistryConfig {
            idle_timeout: Duration::from_millis(150),
            sweep_interval: Some(Duration::from_millis(20)),
            ..config()
        })
        .await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;
    execute_ok(&registry, "a1", AccountCommand::Deposit(70)).await;

    let stats = stats_until(&registry, |s| s.passivated == 1).await;
    assert_eq!((stats.live, stats.draining, stats.spawned), (0, 0, 1));

    // While nobody holds it in memory, another writer adds to the stream.
    fx.sneak(
        "a1",
        ExpectedRevision::Exact(1),
        AccountEvent::Deposited { amount: 5 },
    )
    .await;

    let outcome = execute_ok(&registry, "a1", AccountCommand::Withdraw(75)).await;
    assert_eq!(
        outcome.state.balance, 0,
        "70 + 5 - 75: the state came back from the log"
    );
    assert_eq!(outcome.revision, Some(3));
    let stats = registry.stats().await.expect("stats");
    assert_eq!(stats.spawned, 2, "{stats:?}");
}

#[tokio::test]
async fn a_conflict_with_a_second_writer_is_reloaded_and_retried() {
    let fx = Fixture::new();
    let registry = fx.registry(config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;
    execute_ok(&registry, "a1", AccountCommand::Deposit(100)).await;

    // Another node deposits behind the actor's back: the actor still thinks the
    // stream is at revision 1, so its next append conflicts, then succeeds.
    fx.sneak(
        "a1",
        ExpectedRevision::Exact(1),
        AccountEvent::Deposited { amount: 50 },
    )
    .await;
    let outcome = execute_ok(&registry, "a1", AccountCommand::Deposit(10)).await;
    assert_eq!(outcome.state.balance, 160);
    assert_eq!(outcome.revision, Some(3));
    assert_eq!(
        decoded(&fx.stream("a1").await)[2..],
        [
            AccountEvent::Deposited { amount: 50 },
            AccountEvent::Deposited { amount: 10 }
        ]
    );

    // The retry decides again on the reloaded state: a withdrawal that fits the
    // stale balance (160) but not the real one (10) is rejected, not appended.
    fx.sneak(
        "a1",
        ExpectedRevision::Exact(3),
        AccountEvent::Withdrawn { amount: 150 },
    )
    .await;
    let answer = registry
        .execute("a1", AccountCommand::Withdraw(100))
        .await
        .expect("no command error");
    assert_eq!(
        answer.expect_err("rejected after reload"),
        AccountRejection::InsufficientFunds {
            balance: 10,
            wanted: 100
        }
    );
    assert_eq!(fx.stream("a1").await.len(), 5);
}

/// Wraps the embedded store to inject faults into `append`.
struct FaultyStore {
    inner: EmbeddedStore,
    mode: AtomicU8,
    /// Releases appends held in `SLOW` mode (a gate, not a timer, so the test does
    /// not depend on how loaded the machine is).
    gate: tokio::sync::Notify,
}

const PASS: u8 = 0;
/// Every append is preceded by another writer's deposit: it always conflicts.
const MEDDLE: u8 = 1;
/// Every append fails as if the log were unreachable.
const FAIL: u8 = 2;
/// Every append waits until the test opens `gate`.
const SLOW: u8 = 3;

#[async_trait]
impl EventStore for FaultyStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            MEDDLE => {
                let sneaky = AccountEvent::Deposited { amount: 1 }
                    .to_new_event()
                    .expect("encode");
                self.inner
                    .append(stream, ExpectedRevision::Any, vec![sneaky])
                    .await?;
            }
            FAIL => return Err(StoreError::Unavailable("injected outage".into())),
            SLOW => self.gate.notified().await,
            _ => {}
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from_revision, max).await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, max).await
    }

    async fn stream_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_revision(stream).await
    }

    fn last_position(&self) -> Option<u64> {
        self.inner.last_position()
    }

    fn subscribe_all(&self, from_position: u64) -> Subscription {
        self.inner.subscribe_all(from_position)
    }

    fn subscribe_stream(&self, stream: &str, from_revision: u64) -> Subscription {
        self.inner.subscribe_stream(stream, from_revision)
    }
}

#[tokio::test]
async fn a_conflict_is_retried_only_once_then_reported() {
    let fx = Fixture::new();
    let faulty = Arc::new(FaultyStore {
        inner: fx.log.clone(),
        mode: AtomicU8::new(PASS),
        gate: tokio::sync::Notify::new(),
    });
    let registry = fx.registry_on(faulty.clone(), config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;

    faulty.mode.store(MEDDLE, Ordering::SeqCst);
    let error = registry
        .execute("a1", AccountCommand::Deposit(10))
        .await
        .expect_err("a persistent conflict is an error");
    assert!(
        matches!(
            error,
            CommandError::Store(StoreError::WrongExpectedRevision { .. })
        ),
        "{error:?}"
    );
    // Two attempts, each beaten by the meddler: exactly one retry.
    assert_eq!(
        decoded(&fx.stream("a1").await)[1..],
        [
            AccountEvent::Deposited { amount: 1 },
            AccountEvent::Deposited { amount: 1 }
        ]
    );

    faulty.mode.store(PASS, Ordering::SeqCst);
    let outcome = execute_ok(&registry, "a1", AccountCommand::Deposit(10)).await;
    assert_eq!(outcome.state.balance, 12);
    assert_eq!(outcome.revision, Some(3));
}

#[tokio::test]
async fn a_store_error_is_reported_apart_from_rejections() {
    let fx = Fixture::new();
    let faulty = Arc::new(FaultyStore {
        inner: fx.log.clone(),
        mode: AtomicU8::new(PASS),
        gate: tokio::sync::Notify::new(),
    });
    let registry = fx.registry_on(faulty.clone(), config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;

    faulty.mode.store(FAIL, Ordering::SeqCst);
    let error = registry
        .execute("a1", AccountCommand::Deposit(10))
        .await
        .expect_err("the store failed");
    assert!(
        matches!(error, CommandError::Store(StoreError::Unavailable(_))),
        "{error:?}"
    );
    // Rejections still come back as rejections (decided before any append).
    let answer = registry
        .execute(
            "a1",
            AccountCommand::Open {
                owner: "eve".into(),
            },
        )
        .await
        .expect("no command error");
    assert_eq!(answer.expect_err("rejected"), AccountRejection::AlreadyOpen);

    faulty.mode.store(PASS, Ordering::SeqCst);
    let outcome = execute_ok(&registry, "a1", AccountCommand::Deposit(10)).await;
    assert_eq!((outcome.state.balance, outcome.revision), (10, Some(1)));
    let stats = registry.stats().await.expect("stats");
    assert_eq!(
        (stats.spawned, stats.crashed),
        (1, 0),
        "a store error is no crash"
    );
}

#[tokio::test]
async fn a_crashed_actor_is_restarted_from_the_log() {
    let fx = Fixture::new();
    let registry = fx.registry(config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;
    execute_ok(&registry, "a1", AccountCommand::Deposit(30)).await;

    let error = registry
        .execute("a1", AccountCommand::Explode)
        .await
        .expect_err("the actor died before replying");
    assert!(
        matches!(error, CommandError::Unavailable { .. }),
        "{error:?}"
    );
    let stats = stats_until(&registry, |s| s.crashed == 1).await;
    assert_eq!(stats.live, 0);

    // Other aggregates were never affected, and the crashed one comes back.
    let outcome = execute_ok(&registry, "a1", AccountCommand::Withdraw(30)).await;
    assert_eq!(
        outcome.state.balance, 0,
        "the balance was replayed from the log"
    );
    assert_eq!(outcome.revision, Some(2));
    let stats = registry.stats().await.expect("stats");
    assert_eq!((stats.spawned, stats.live), (2, 1));
}

#[tokio::test]
async fn max_live_passivates_the_least_recently_used() {
    let fx = Fixture::new();
    let registry = fx
        .registry(RegistryConfig {
            max_live: Some(2),
            ..config()
        })
        .await;
    for (id, owner) in [("a1", "ada"), ("a2", "bob"), ("a3", "cy")] {
        execute_ok(
            &registry,
            id,
            AccountCommand::Open {
                owner: owner.into(),
            },
        )
        .await;
        execute_ok(&registry, id, AccountCommand::Deposit(10)).await;
    }
    let stats = stats_until(&registry, |s| s.passivated >= 1).await;
    assert!(stats.live <= 2, "{stats:?}");
    for id in ["a1", "a2", "a3"] {
        let current = registry.state(id).await.expect("state");
        assert_eq!((current.state.balance, current.revision), (10, Some(1)));
    }
}

#[tokio::test]
async fn concurrent_commands_on_one_aggregate_are_serialized() {
    let fx = Fixture::new();
    let registry = fx.registry(config()).await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let registry = registry.clone();
        tasks.spawn(async move { execute_ok(&registry, "a1", AccountCommand::Deposit(1)).await });
    }
    let mut revisions = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        revisions.push(outcome.expect("task").revision.expect("revision"));
    }
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=20).collect::<Vec<u64>>());
    let current = registry.state("a1").await.expect("state");
    assert_eq!(current.state.balance, 20);
    assert_eq!(fx.stream("a1").await.len(), 21);
}

#[tokio::test]
async fn an_undecodable_stream_is_a_store_error_not_a_crash() {
    let fx = Fixture::new();
    fx.log
        .append(
            "account-bad",
            ExpectedRevision::NoStream,
            vec![NewEvent::raw("account.opened", 1, b"not json".to_vec())],
        )
        .await
        .expect("append");
    let registry = fx.registry(config()).await;
    let error = registry
        .execute("bad", AccountCommand::Deposit(1))
        .await
        .expect_err("cannot load");
    assert!(
        matches!(error, CommandError::Store(StoreError::Codec(_))),
        "{error:?}"
    );
    let stats = registry.stats().await.expect("stats");
    assert_eq!(stats.crashed, 0);
}

#[tokio::test]
async fn commands_racing_passivation_are_never_lost() {
    let fx = Fixture::new();
    let registry = fx
        .registry(RegistryConfig {
            idle_timeout: Duration::from_millis(20),
            sweep_interval: Some(Duration::from_millis(10)),
            ..config()
        })
        .await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;
    // Pauses around the idle timeout, so some commands land while the actor drains
    // (they wait for it to stop, then go to a fresh one) and some after it stopped.
    for pause_ms in (0..40).map(|i| (i * 7) % 31) {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        execute_ok(&registry, "a1", AccountCommand::Deposit(1)).await;
    }
    let current = registry.state("a1").await.expect("state");
    assert_eq!((current.state.balance, current.revision), (40, Some(40)));
    let stats = registry.stats().await.expect("stats");
    assert!(stats.passivated >= 1 && stats.crashed == 0, "{stats:?}");
    assert_eq!(stats.spawned, stats.passivated + 1, "{stats:?}");
}

#[tokio::test]
async fn a_command_arriving_while_its_actor_drains_goes_to_the_next_one() {
    let fx = Fixture::new();
    let faulty = Arc::new(FaultyStore {
        inner: fx.log.clone(),
        mode: AtomicU8::new(PASS),
        gate: tokio::sync::Notify::new(),
    });
    let registry = fx
        .registry_on(
            faulty.clone(),
            RegistryConfig {
                idle_timeout: Duration::from_millis(20),
                sweep_interval: Some(Duration::from_millis(5)),
                ..config()
            },
        )
        .await;
    execute_ok(
        &registry,
        "a1",
        AccountCommand::Open {
            owner: "ada".into(),
        },
    )
    .await;

    // A slow command keeps the actor busy past its idle timeout, so the registry
    // drains it (the drain marker queues behind the command).
    faulty.mode.store(SLOW, Ordering::SeqCst);
    let slow = {
        let registry = registry.clone();
        tokio::spawn(async move { execute_ok(&registry, "a1", AccountCommand::Deposit(5)).await })
    };
    let stats = stats_until(&registry, |s| s.draining == 1).await;
    assert_eq!(stats.live, 0);
    faulty.mode.store(PASS, Ordering::SeqCst);
    faulty.gate.notify_one();

    // This one is held by the registry until the draining actor has stopped, then
    // handed to a fresh actor that replays the slow command's event first.
    let outcome = execute_ok(&registry, "a1", AccountCommand::Withdraw(5)).await;
    assert_eq!((outcome.state.balance, outcome.revision), (0, Some(2)));
    let slow = slow.await.expect("slow task");
    assert_eq!(slow.revision, Some(1));
    // (The fresh actor may itself have been passivated again by now.)
    let stats = registry.stats().await.expect("stats");
    assert!(
        stats.spawned >= 2 && stats.passivated >= 1 && stats.crashed == 0,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_decider_without_a_snapshot_policy_never_snapshots() {
    use tutorlog_actors::SnapshotMode;

    let fx = Fixture::new();
    let mut records = vec![opened("ada").to_new_event().expect("encode")];
    records.extend((0..300).map(|_| {
        AccountEvent::Deposited { amount: 1 }
            .to_new_event()
            .expect("encode")
    }));
    fx.log
        .append("account-a1", ExpectedRevision::NoStream, records)
        .await
        .expect("append");
    assert!(
        Account::snapshot_policy().is_none(),
        "the default is no snapshots"
    );
    for (balance, mode) in [
        (301, SnapshotMode::Decider),
        (302, SnapshotMode::EveryEvents(1)),
    ] {
        let registry = fx
            .registry(RegistryConfig {
                snapshots: mode,
                ..config()
            })
            .await;
        let outcome = execute_ok(&registry, "a1", AccountCommand::Deposit(1)).await;
        assert_eq!(outcome.state.balance, balance);
        let current = registry.state("a1").await.expect("state");
        assert_eq!(current.snapshot_revision, None, "{mode:?}");
        registry.shutdown().await;
    }
    assert_eq!(
        fx.log
            .stream_revision("snapshot-account-a1")
            .await
            .expect("revision"),
        None
    );
}
