//! The learner actor through its registry, on a real embedded log: a session
//! survives passivation (the state comes back from the stream), decay over weeks is
//! recorded with an injected clock, and the algorithm registry seeds once.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tutorlog_actors::algo_registry::AlgoCatalog;
use tutorlog_actors::algorithms::AlgoKey;
use tutorlog_actors::content::ItemBank;
use tutorlog_actors::learning::{Learner, LearningPolicy, LearningService};
use tutorlog_actors::{Clock, ManualClock, RegistryConfig, RegistryHandle};
use tutorlog_schemas::{Envelope, Event};
use tutorlog_store::{EmbeddedStore, EventStore};

fn answer_for(service: &LearningService, prompt: &str) -> String {
    service
        .bank()
        .items()
        .iter()
        .find(|item| item.prompt == prompt)
        .map(|item| item.answer.clone())
        .expect("prompt in bank")
}

async fn events(store: &dyn EventStore, stream: &str) -> Vec<Event> {
    store
        .read_stream(stream, 0, 10_000)
        .await
        .expect("read")
        .iter()
        .map(|r| Envelope::decode(r).expect("decode").payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_passivation_and_decay_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let manual = Arc::new(ManualClock::default());
    let clock: Arc<dyn Clock> = manual.clone();
    let catalog = AlgoCatalog::start(Arc::clone(&store), Arc::clone(&clock))
        .await
        .expect("catalog");
    let seeded = store.last_position();
    // A second start (daemon restart) registers nothing new.
    let again = AlgoCatalog::start(Arc::clone(&store), Arc::clone(&clock))
        .await
        .expect("catalog");
    assert_eq!(store.last_position(), seeded);
    assert_eq!(again.active(AlgoKey::Mastery).map(|a| a.version), Some(1));

    let config = RegistryConfig {
        idle_timeout: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    let (learners, _join) =
        RegistryHandle::<Learner>::start(Arc::clone(&store), Arc::clone(&clock), config)
            .await
            .expect("registry");
    let service = LearningService::new(
        learners.clone(),
        catalog,
        Arc::clone(&clock),
        LearningPolicy::default(),
        5,
    );

    let started = service
        .start_training("ada", "algebra", Some(2))
        .await
        .expect("start");
    let first = service
        .round(
            "ada",
            started.session_id,
            &answer_for(&service, &started.prompt),
        )
        .await
        .expect("round 1");
    assert!(first.score >= 90 && first.status == "in_progress");
    assert!(first.mastery_after > first.mastery_before);

    // Idle long enough to be passivated; the next round replays the stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = learners.stats().await.expect("stats");
    assert!(stats.passivated >= 1 && stats.live == 0, "{stats:?}");
    let prompt = first.next_prompt.clone().expect("next prompt");
    let second = service
        .round("ada", started.session_id, &answer_for(&service, &prompt))
        .await
        .expect("round 2");
    assert_eq!(second.status, "completed");
    assert!((second.mastery_before - first.mastery_after).abs() < 1e-12);
    assert!(learners.stats().await.expect("stats").spawned >= 2);

    // Three weeks later a new session first records three weeks of decay.
    manual.advance(TimeDelta::weeks(3) + TimeDelta::hours(1));
    service
        .start_training("ada", "algebra", Some(1))
        .await
        .expect("start again");
    let decayed: Vec<_> = events(store.as_ref(), "learner-ada")
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::MasteryDecayed(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(decayed.len(), 1);
    assert_eq!(decayed[0].weeks, 3);
    assert!((decayed[0].after - second.mastery_after * 0.98_f64.powi(3)).abs() < 1e-9);
    assert!(ItemBank::bundled().len() >= 100);
    learners.shutdown().await;
}

// ------------------------------------------------------------------ snapshots

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tutorlog_actors::learning::decider::{
    GradeResult, ItemChoice, LearnerCommand, LearnerState, MasteryResult, LEARNER_SNAPSHOT_FORMAT,
};
use tutorlog_actors::learning::service::ServiceError;
use tutorlog_actors::learning::{PauseOutcome, ProviderPause};
use tutorlog_actors::snapshot::snapshot_stream_name;
use tutorlog_actors::{Decider, SnapshotMode, Versioned};
use tutorlog_schemas::events::{AggregateSnapshot, PauseReason};
use tutorlog_schemas::{NewEvent, RecordedEvent};
use tutorlog_store::{AppendResult, ExpectedRevision, StoreError, Subscription};

const USER: &str = "ada";
const STREAM: &str = "learner-ada";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A log, a manual clock and the seeded algorithm catalog.
struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    clock: Arc<ManualClock>,
    catalog: AlgoCatalog,
}

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        Rig::on(dir, store).await
    }

    async fn on(dir: tempfile::TempDir, store: Arc<dyn EventStore>) -> Rig {
        let clock = Arc::new(ManualClock::default());
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let catalog = AlgoCatalog::start(Arc::clone(&store), dyn_clock)
            .await
            .expect("catalog");
        Rig {
            _dir: dir,
            store,
            clock,
            catalog,
        }
    }

    async fn learners(&self, snapshots: SnapshotMode, idle: Duration) -> RegistryHandle<Learner> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let config = RegistryConfig {
            idle_timeout: idle,
            sweep_interval: Some(Duration::from_millis(10)),
            call_timeout: TIMEOUT,
            shutdown_timeout: TIMEOUT,
            snapshots,
            ..RegistryConfig::default()
        };
        let (learners, _join) =
            RegistryHandle::<Learner>::start(Arc::clone(&self.store), clock, config)
                .await
                .expect("registry");
        learners
    }

    fn service(&self, learners: &RegistryHandle<Learner>) -> LearningService {
        let clock: Arc<dyn Clock> = self.clock.clone();
        LearningService::new(
            learners.clone(),
            self.catalog.clone(),
            clock,
            LearningPolicy::default(),
            5,
        )
    }

    /// The learner's state from a fresh actor started with `snapshots`.
    async fn load(&self, snapshots: SnapshotMode) -> Versioned<LearnerState> {
        let learners = self.learners(snapshots, Duration::from_secs(60)).await;
        let loaded = learners.state(USER).await.expect("state");
        learners.shutdown().await;
        loaded
    }

    async fn snapshots(&self) -> Vec<AggregateSnapshot> {
        self.store
            .read_stream(&snapshot_stream_name(STREAM), 0, 10_000)
            .await
            .expect("read snapshots")
            .iter()
            .filter_map(|r| match Envelope::decode(r).map(|e| e.payload) {
                Ok(Event::AggregateSnapshot(s)) => Some(s),
                _ => None,
            })
            .collect()
    }

    async fn put_snapshot(&self, record: NewEvent) {
        self.store
            .append(
                &snapshot_stream_name(STREAM),
                ExpectedRevision::Any,
                vec![record],
            )
            .await
            .expect("append snapshot");
    }
}

/// Runs a whole session, answering right on odd rounds and wrong on even ones.
async fn session(service: &LearningService, clock: &ManualClock, rounds: u32) {
    let started = service
        .start_training(USER, "algebra", Some(rounds))
        .await
        .expect("start");
    let mut prompt = started.prompt;
    for round in 1..=rounds {
        clock.advance(TimeDelta::minutes(1));
        let response = if round % 2 == 1 {
            answer_for(service, &prompt)
        } else {
            "no idea".to_owned()
        };
        let graded = service
            .round(USER, started.session_id, &response)
            .await
            .expect("round");
        prompt = graded.next_prompt.unwrap_or_default();
    }
}

async fn passivated(learners: &RegistryHandle<Learner>) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let stats = learners.stats().await.expect("stats");
        if stats.live == 0 && stats.draining == 0 && stats.passivated >= 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never passivated: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_back_from_passivation_restores_its_snapshot_and_replays_the_tail() {
    let rig = Rig::new().await;
    let learners = rig
        .learners(SnapshotMode::EveryEvents(10), Duration::from_millis(50))
        .await;
    let service = rig.service(&learners);
    session(&service, &rig.clock, 5).await;
    session(&service, &rig.clock, 5).await;
    // The tail: a third session, paused by the gateway. Its events come after the
    // last snapshot, so the pause is only known to a restart that replays the tail.
    let third = service
        .start_training(USER, "algebra", Some(5))
        .await
        .expect("start");
    let paused = service
        .pause_for_provider(USER, third.session_id, ProviderPause::Budget)
        .await
        .expect("pause");
    assert!(!paused.already_paused);
    passivated(&learners).await;

    let last = rig
        .store
        .stream_revision(STREAM)
        .await
        .expect("revision")
        .expect("stream");
    let snapshots = rig.snapshots().await;
    assert!(
        snapshots.len() >= 2,
        "one snapshot every 10 events: {snapshots:?}"
    );
    assert!(snapshots.windows(2).all(|w| w[0].revision < w[1].revision));
    let covered = snapshots.last().map(|s| s.revision).expect("a snapshot");
    assert!(
        covered < last,
        "a tail after the snapshot ({covered} < {last})"
    );

    // Back from passivation: the paused session (in the tail) refuses a round...
    let refused = service
        .round(USER, third.session_id, "x")
        .await
        .expect_err("paused");
    assert!(
        matches!(
            refused,
            ServiceError::Conflict {
                code: "session_paused",
                ..
            }
        ),
        "{refused:?}"
    );
    // ...from a state restored from the last snapshot plus the tail, identical to
    // a replay of the whole stream.
    let restored = learners.state(USER).await.expect("state");
    assert_eq!(restored.snapshot_revision, Some(covered));
    assert_eq!(restored.revision, Some(last));
    let replayed = rig.load(SnapshotMode::Off).await;
    assert_eq!(replayed.snapshot_revision, None);
    assert_eq!(replayed.revision, Some(last));
    assert_eq!(replayed.position, restored.position);
    assert_eq!(restored.state, replayed.state);

    // And it carries on: resume, answer.
    service
        .resume(USER, third.session_id)
        .await
        .expect("resume");
    let graded = service
        .round(USER, third.session_id, "no idea")
        .await
        .expect("round after resume");
    assert_eq!(graded.status, "in_progress");
    learners.shutdown().await;
}

/// A stored snapshot for `state` (which may be a lie) claiming `revision`/`position`.
fn snapshot_of(state: &LearnerState, revision: u64, position: u64, format: u32) -> NewEvent {
    NewEvent::from_event(&Event::AggregateSnapshot(AggregateSnapshot {
        stream: STREAM.into(),
        revision,
        position,
        format,
        state_json: serde_json::to_string(state).expect("state json"),
    }))
    .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_snapshots_are_ignored_and_the_stream_is_replayed() {
    let rig = Rig::new().await;
    let learners = rig
        .learners(SnapshotMode::Off, Duration::from_secs(60))
        .await;
    let service = rig.service(&learners);
    session(&service, &rig.clock, 5).await;
    session(&service, &rig.clock, 3).await;
    learners.shutdown().await;
    let records = rig
        .store
        .read_stream(STREAM, 0, 10_000)
        .await
        .expect("read");
    let end = records.last().expect("events").clone();
    let truth = rig.load(SnapshotMode::Off).await;
    assert_eq!(truth.revision, Some(end.revision));
    // A state that would be visibly wrong if a bad snapshot were trusted.
    let lie = LearnerState {
        user_id: Some("mallory".into()),
        ..LearnerState::default()
    };
    let future = LEARNER_SNAPSHOT_FORMAT + 1;
    let mut wrong_version = snapshot_of(&lie, end.revision, end.position, LEARNER_SNAPSHOT_FORMAT);
    wrong_version.schema_version = 9;
    let cases: Vec<(&str, NewEvent)> = vec![
        (
            "corrupt payload",
            NewEvent::raw("aggregate.snapshot", 1, b"\x01garbage".to_vec()),
        ),
        (
            "future state format",
            snapshot_of(&lie, end.revision, end.position, future),
        ),
        ("future event schema", wrong_version),
        (
            "beyond the stream's end",
            snapshot_of(
                &lie,
                end.revision + 5,
                end.position + 5,
                LEARNER_SNAPSHOT_FORMAT,
            ),
        ),
        (
            "position of another event",
            snapshot_of(
                &lie,
                end.revision - 1,
                end.position,
                LEARNER_SNAPSHOT_FORMAT,
            ),
        ),
        ("state that does not decode", {
            NewEvent::from_event(&Event::AggregateSnapshot(AggregateSnapshot {
                stream: STREAM.into(),
                revision: end.revision,
                position: end.position,
                format: LEARNER_SNAPSHOT_FORMAT,
                state_json: "{\"sessions\":7}".into(),
            }))
            .expect("encode")
        }),
        ("another stream's snapshot", {
            NewEvent::from_event(&Event::AggregateSnapshot(AggregateSnapshot {
                stream: "learner-mallory".into(),
                revision: end.revision,
                position: end.position,
                format: LEARNER_SNAPSHOT_FORMAT,
                state_json: serde_json::to_string(&lie).expect("json"),
            }))
            .expect("encode")
        }),
    ];
    for (case, record) in cases {
        rig.put_snapshot(record).await;
        // The default interval (200) is far beyond this stream: no new snapshot
        // replaces the bad one between cases.
        let loaded = rig.load(SnapshotMode::Decider).await;
        assert_eq!(loaded.snapshot_revision, None, "{case}: snapshot ignored");
        assert_eq!(loaded.revision, truth.revision, "{case}");
        assert_eq!(loaded.state, truth.state, "{case}: full replay");
    }

    // Control: a genuine snapshot of a prefix is used, and the rest is replayed.
    let prefix = 6;
    let events: Vec<Event> = records
        .iter()
        .take(prefix + 1)
        .map(|r| Envelope::decode(r).expect("decode").payload)
        .collect();
    let at = &records[prefix];
    let state = Learner::fold(LearnerState::default(), &events);
    rig.put_snapshot(snapshot_of(
        &state,
        at.revision,
        at.position,
        LEARNER_SNAPSHOT_FORMAT,
    ))
    .await;
    let loaded = rig.load(SnapshotMode::Decider).await;
    assert_eq!(loaded.snapshot_revision, Some(at.revision));
    assert_eq!(loaded.state, truth.state);
    // And a lie at a valid anchor *is* believed: the checks above are what guard.
    rig.put_snapshot(snapshot_of(
        &lie,
        end.revision,
        end.position,
        LEARNER_SNAPSHOT_FORMAT,
    ))
    .await;
    let fooled = rig.load(SnapshotMode::Decider).await;
    assert_eq!(fooled.snapshot_revision, Some(end.revision));
    assert_eq!(fooled.state.user_id.as_deref(), Some("mallory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fallback_a_long_stream_gets_a_fresh_snapshot() {
    let rig = Rig::new().await;
    let end = append_long_stream(rig.store.as_ref(), 450).await;
    rig.put_snapshot(NewEvent::raw("aggregate.snapshot", 1, b"junk".to_vec()))
        .await;
    // Replays everything (the junk is ignored), then snapshots what it folded.
    let first = rig.load(SnapshotMode::Decider).await;
    assert_eq!((first.snapshot_revision, first.revision), (None, Some(end)));
    let written = rig.snapshots().await;
    assert_eq!(written.last().map(|s| s.revision), Some(end));
    let second = rig.load(SnapshotMode::Decider).await;
    assert_eq!(second.snapshot_revision, Some(end));
    assert_eq!(second.state, first.state);
}

/// Appends a learner history of at least `events_min` events straight to the log
/// (decided by the pure decider, so no actor or fsync per command), and returns
/// the stream's last revision.
async fn append_long_stream(store: &dyn EventStore, events_min: usize) -> u64 {
    let policy = LearningPolicy::default();
    let mut now = tutorlog_actors::decider::reference_time();
    let mut state = LearnerState::default();
    let mut history: Vec<Event> = Vec::new();
    let item = |n: u64| ItemChoice {
        item_id: format!("item-{n}"),
        category: "algebra".into(),
        prompt: format!("prompt {n}"),
        difficulty: "medium".into(),
        algo_runs: Vec::new(),
    };
    let apply = |state: &mut LearnerState, history: &mut Vec<Event>, command, now| {
        let events = Learner::decide(state, &command, now).expect("decide");
        *state = Learner::fold(std::mem::take(state), &events);
        history.extend(events);
    };
    let mut n: u64 = 0;
    while history.len() < events_min {
        n += 1;
        let session_id = uuid::Uuid::from_u128(u128::from(n) << 64);
        let first_round = uuid::Uuid::from_u128((u128::from(n) << 64) + 1);
        apply(
            &mut state,
            &mut history,
            LearnerCommand::StartTraining {
                session_id,
                round_id: first_round,
                user_id: USER.into(),
                focus_area: "algebra".into(),
                rounds: 10,
                provider_plan: Vec::new(),
                first_item: item(0),
                policy,
            },
            now,
        );
        for round in 1..=10u64 {
            now += TimeDelta::minutes(2);
            let current = state
                .sessions
                .get(&session_id)
                .and_then(|s| s.current.clone())
                .expect("open round");
            let before = state.mastery_at("algebra", now, &policy).score;
            let correct = !(n + round).is_multiple_of(3);
            let after = if correct {
                (before + 7.0).min(99.0)
            } else {
                before * 0.8
            };
            apply(
                &mut state,
                &mut history,
                LearnerCommand::CompleteRound {
                    session_id,
                    expected_round_id: current.round_id,
                    next_round_id: uuid::Uuid::from_u128(
                        (u128::from(n) << 64) + u128::from(round) + 1,
                    ),
                    response_digest: format!("{n}-{round}"),
                    grade: GradeResult {
                        score: if correct { 95 } else { 10 },
                        correct,
                        feedback: "feedback".into(),
                        mistake_tag: None,
                    },
                    mastery: MasteryResult {
                        before,
                        after,
                        probability_after: after / 100.0,
                        next_review_due: Some(now + TimeDelta::days(3)),
                        revision_card: "{\"reviews\":1}".into(),
                        algo_runs: Vec::new(),
                    },
                    next_item: Some(item(round)),
                    policy,
                },
                now,
            );
        }
        // Sessions a few days apart: decay shows up now and then.
        now += TimeDelta::days(4);
    }
    let mut last = None;
    for chunk in history.chunks(1_000) {
        let records = chunk
            .iter()
            .map(|e| NewEvent::from_event(e).expect("encode"))
            .collect();
        let append = store
            .append(STREAM, ExpectedRevision::Any, records)
            .await
            .expect("append");
        last = Some(append.last_revision);
    }
    last.expect("events appended")
}

/// Spawns a learner actor and waits for its state, `runs` times; the median time.
async fn median_restart(
    rig: &Rig,
    snapshots: SnapshotMode,
    runs: usize,
) -> (Duration, Versioned<LearnerState>) {
    let mut times = Vec::with_capacity(runs);
    let mut loaded = None;
    for _ in 0..runs {
        let learners = rig.learners(snapshots, Duration::from_secs(60)).await;
        let started = std::time::Instant::now();
        let state = learners.state(USER).await.expect("state");
        times.push(started.elapsed());
        learners.shutdown().await;
        loaded = Some(state);
    }
    times.sort_unstable();
    (times[runs / 2], loaded.expect("runs > 0"))
}

/// Restart time of a learner with a long stream, with and without a snapshot.
/// Prints the numbers; run with `--release -- --nocapture` to measure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_time_of_a_long_learner_stream() {
    let events: usize = std::env::var("TUTORLOG_SNAPSHOT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let rig = Rig::new().await;
    let end = append_long_stream(rig.store.as_ref(), events).await;
    let runs = 5;
    let (full, replayed) = median_restart(&rig, SnapshotMode::Off, runs).await;
    // The first snapshotting start replays everything and writes the snapshot...
    let first = rig.load(SnapshotMode::Decider).await;
    assert_eq!(first.snapshot_revision, None);
    // ...so later ones restore it (plus a tail: a few events after it).
    let tail = 7;
    let records = (0..tail)
        .map(|_| {
            NewEvent::from_event(&Event::TrainingPaused(
                tutorlog_schemas::events::TrainingPaused {
                    session_id: uuid::Uuid::from_u128(1),
                    reason: PauseReason::User,
                },
            ))
            .expect("encode")
        })
        .collect();
    rig.store
        .append(STREAM, ExpectedRevision::Exact(end), records)
        .await
        .expect("tail");
    let (fast, restored) = median_restart(&rig, SnapshotMode::Decider, runs).await;
    assert_eq!(restored.snapshot_revision, Some(end));
    assert_eq!(restored.revision, Some(end + tail));
    assert_eq!(restored.state, rig.load(SnapshotMode::Off).await.state);
    assert_eq!(replayed.revision, Some(end));
    let snapshot_bytes = rig
        .snapshots()
        .await
        .last()
        .map(|s| s.state_json.len())
        .unwrap_or_default();
    println!(
        "learner restart, {} events: full replay {:?}, snapshot + {tail}-event tail {:?} (median of {runs}; snapshot state {snapshot_bytes} bytes)",
        end + 1,
        full,
        fast
    );
}

// ------------------------------------------------------------------ the snapshot is off the reply path

/// The embedded store with appends to snapshot streams held until `open` is called.
struct HeldSnapshots {
    inner: EmbeddedStore,
    gate: tokio::sync::Semaphore,
    held: AtomicUsize,
}

#[async_trait]
impl EventStore for HeldSnapshots {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        if stream.starts_with("snapshot-") {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _permit = self
                .gate
                .acquire()
                .await
                .map_err(|_| StoreError::Unavailable("gate closed".into()))?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_write_never_holds_up_a_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let held = Arc::new(HeldSnapshots {
        inner: EmbeddedStore::open(dir.path()).expect("open"),
        gate: tokio::sync::Semaphore::new(0),
        held: AtomicUsize::new(0),
    });
    let store: Arc<dyn EventStore> = held.clone();
    let rig = Rig::on(dir, store).await;
    let learners = rig
        .learners(SnapshotMode::EveryEvents(3), Duration::from_secs(60))
        .await;
    let service = rig.service(&learners);
    // Every round crosses the interval, yet each reply comes while the first
    // snapshot append is still held: replies never wait for one.
    session(&service, &rig.clock, 5).await;
    assert_eq!(
        held.held.load(Ordering::SeqCst),
        1,
        "one snapshot in flight, no pile-up"
    );
    assert!(rig.snapshots().await.is_empty());
    held.gate.add_permits(100);
    // Stopping waits for the write in flight, so it is in the log afterwards.
    learners.shutdown().await;
    let written = rig.snapshots().await;
    assert_eq!(written.len(), 1);
    // The next message after the write finished snapshots the rest.
    let learners = rig
        .learners(SnapshotMode::EveryEvents(3), Duration::from_secs(60))
        .await;
    let loaded = learners.state(USER).await.expect("state");
    assert_eq!(loaded.snapshot_revision, Some(written[0].revision));
    learners.shutdown().await;
    let last = rig.store.stream_revision(STREAM).await.expect("rev");
    assert_eq!(rig.snapshots().await.last().map(|s| s.revision), last);
}

// ------------------------------------------------------------------ training rules through the actor

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_pause_holds_rounds_until_resumed_and_a_session_expires_after_an_hour() {
    let rig = Rig::new().await;
    let learners = rig
        .learners(SnapshotMode::Decider, Duration::from_secs(60))
        .await;
    let service = rig.service(&learners);
    let started = service
        .start_training(USER, "algebra", None)
        .await
        .expect("start");
    assert_eq!(started.rounds, 5, "five rounds by default");
    let paused = service
        .pause_for_provider(USER, started.session_id, ProviderPause::Budget)
        .await
        .expect("pause");
    // Pausing again (the gateway retrying, or the learner) keeps the first reason.
    let again = service
        .pause(USER, started.session_id, PauseReason::User)
        .await
        .expect("pause again");
    assert_eq!(again, paused.position);
    let again = service
        .pause_for_provider(USER, started.session_id, ProviderPause::Provider)
        .await
        .expect("pause again");
    assert_eq!(
        again,
        PauseOutcome {
            position: paused.position,
            already_paused: true
        }
    );
    let pauses: Vec<_> = events(rig.store.as_ref(), STREAM)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::TrainingPaused(p) => Some(p.reason),
            _ => None,
        })
        .collect();
    assert_eq!(pauses, [PauseReason::Budget]);
    let refused = service
        .round(
            USER,
            started.session_id,
            &answer_for(&service, &started.prompt),
        )
        .await
        .expect_err("paused");
    assert!(
        matches!(
            refused,
            ServiceError::Conflict {
                code: "session_paused",
                ..
            }
        ),
        "{refused:?}"
    );
    let resumed = service
        .resume(USER, started.session_id)
        .await
        .expect("resume");
    assert!(resumed > paused.position);
    let graded = service
        .round(
            USER,
            started.session_id,
            &answer_for(&service, &started.prompt),
        )
        .await
        .expect("round after resume");
    assert_eq!(graded.status, "in_progress");
    // An hour after the first round was put, the session is over.
    rig.clock.advance(TimeDelta::seconds(3600));
    let expired = service
        .round(USER, started.session_id, "late")
        .await
        .expect_err("expired");
    assert!(
        matches!(
            expired,
            ServiceError::Conflict {
                code: "session_expired",
                ..
            }
        ),
        "{expired:?}"
    );
    let unknown = service
        .pause_for_provider(USER, uuid::Uuid::now_v7(), ProviderPause::Budget)
        .await
        .expect_err("unknown");
    assert!(matches!(unknown, ServiceError::NotFound(_)), "{unknown:?}");
    learners.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decay_compounds_week_by_week_with_an_injected_clock() {
    let rig = Rig::new().await;
    let learners = rig
        .learners(SnapshotMode::Decider, Duration::from_secs(60))
        .await;
    let service = rig.service(&learners);
    session(&service, &rig.clock, 1).await;
    let practised = learners
        .state(USER)
        .await
        .expect("state")
        .state
        .mastery
        .get("algebra")
        .expect("algebra")
        .score;
    assert!(practised > 0.0);
    // Six days: no decay is recorded.
    rig.clock.advance(TimeDelta::days(6));
    session(&service, &rig.clock, 1).await;
    let decays = |events: Vec<Event>| -> Vec<(u32, f64, f64)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::MasteryDecayed(d) => Some((d.weeks, d.before, d.after)),
                _ => None,
            })
            .collect()
    };
    assert!(decays(events(rig.store.as_ref(), STREAM).await).is_empty());
    let score = |v: Versioned<LearnerState>| v.state.mastery.get("algebra").map(|m| m.score);
    let before_gap = score(learners.state(USER).await.expect("state")).expect("score");
    // One week later: one week of 2 %; then two more weeks: two more.
    rig.clock.advance(TimeDelta::weeks(1) + TimeDelta::hours(1));
    service
        .start_training(USER, "algebra", Some(1))
        .await
        .expect("start after a week");
    rig.clock.advance(TimeDelta::weeks(2) + TimeDelta::hours(1));
    service
        .start_training(USER, "algebra", Some(1))
        .await
        .expect("start after two more weeks");
    let recorded = decays(events(rig.store.as_ref(), STREAM).await);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0].0, 1);
    assert!((recorded[0].1 - before_gap).abs() < 1e-12);
    assert!((recorded[0].2 - before_gap * 0.98).abs() < 1e-9);
    assert_eq!(recorded[1].0, 2);
    assert!((recorded[1].1 - recorded[0].2).abs() < 1e-12);
    assert!((recorded[1].2 - before_gap * 0.98_f64.powi(3)).abs() < 1e-9);
    let now = score(learners.state(USER).await.expect("state")).expect("score");
    assert!((now - before_gap * 0.98_f64.powi(3)).abs() < 1e-9);
    learners.shutdown().await;
}
