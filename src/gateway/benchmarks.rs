//! The benchmark scheduler actor (stream `benchmarks`): runs the suite
//! ([`tutorlog_actors::benchmarks`]) on every provider, through the gateway's own
//! call path (so budgets and circuits apply and every call is an
//! `execution.recorded`), scores the answers, records the results and feeds each
//! provider's mean quality per category to the router.
//!
//! One run at a time: a request that arrives while a run is going is answered
//! with the running run's id. Runs come from the schedule
//! (`gateway.benchmark_every_hours`) and from `POST /api/v1/admin/run-benchmarks`.
//! At start the latest results are read back from the stream, so routing knows
//! them before the first run.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tutorlog_actors::benchmarks::{score, Suite};
use tutorlog_schemas::{
    events::{
        BenchmarkResultRecorded, BenchmarkRunCompleted, BenchmarkRunScheduled, BenchmarkRunStarted,
        CallSource, Event,
    },
    Envelope, NewEvent,
};
use tutorlog_store::{EventStore, ExpectedRevision, StoreError, READ_EVENTS_MAX};
use uuid::Uuid;

use super::{
    service::{Call, Gateway, GatewayError},
    types::ChatMessage,
};

/// The stream benchmark events go to.
pub const BENCHMARK_STREAM: &str = "benchmarks";
/// `max_tokens` of a benchmark call.
pub const BENCHMARK_MAX_TOKENS: u32 = 512;

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// `schedule` or `manual`.
    pub trigger: String,
    /// Categories (empty: all).
    pub categories: Vec<String>,
    /// Providers (empty: all).
    pub providers: Vec<String>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// An unknown category or provider was named.
    #[error("{0}")]
    BadRequest(String),
    /// The log refused the run's events.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scheduler is not running.
    #[error("the benchmark scheduler is not running")]
    Stopped,
}

/// The outcome of a run request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStarted {
    /// A new run started with this id.
    Started(Uuid),
    /// A run was already going; this is its id.
    AlreadyRunning(Uuid),
}

enum Msg {
    Run(
        RunRequest,
        oneshot::Sender<Result<RunStarted, BenchmarkError>>,
    ),
}

/// A handle to the scheduler actor.
#[derive(Clone)]
pub struct BenchmarkScheduler {
    mailbox: mpsc::Sender<Msg>,
    running: Arc<Mutex<Option<Uuid>>>,
}

impl std::fmt::Debug for BenchmarkScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchmarkScheduler")
            .field("running", &*self.running.lock())
            .finish()
    }
}

impl BenchmarkScheduler {
    /// Starts the actor: reads the latest results back into the router, then
    /// serves run requests; with `every` set, also runs on that schedule (the first
    /// scheduled run one period after start).
    pub async fn start(
        gateway: Gateway,
        store: Arc<dyn EventStore>,
        suite: Suite,
        every: Option<Duration>,
    ) -> Result<(BenchmarkScheduler, tokio::task::JoinHandle<()>), StoreError> {
        for ((provider, category), quality) in latest_quality(store.as_ref()).await? {
            gateway.set_benchmark_quality(&provider, &category, quality);
        }
        let (mailbox, mut inbox) = mpsc::channel::<Msg>(16);
        let running = Arc::new(Mutex::new(None));
        let scheduler = BenchmarkScheduler {
            mailbox: mailbox.clone(),
            running: Arc::clone(&running),
        };
        let runner = Runner {
            gateway,
            store,
            suite: Arc::new(suite),
            running,
        };
        if let Some(every) = every {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let (reply, _) = oneshot::channel();
                    let request = RunRequest {
                        trigger: "schedule".into(),
                        ..RunRequest::default()
                    };
                    if mailbox.send(Msg::Run(request, reply)).await.is_err() {
                        return;
                    }
                }
            });
        }
        let join = tokio::spawn(async move {
            while let Some(Msg::Run(request, reply)) = inbox.recv().await {
                let _ = reply.send(runner.start_run(request).await);
            }
        });
        Ok((scheduler, join))
    }

    /// Asks for a run; answers once it started (it goes on in the background).
    pub async fn run(&self, request: RunRequest) -> Result<RunStarted, BenchmarkError> {
        let (reply, answer) = oneshot::channel();
        self.mailbox
            .send(Msg::Run(request, reply))
            .await
            .map_err(|_| BenchmarkError::Stopped)?;
        answer.await.map_err(|_| BenchmarkError::Stopped)?
    }

    /// The run going now, if any.
    pub fn running(&self) -> Option<Uuid> {
        *self.running.lock()
    }
}

struct Runner {
    gateway: Gateway,
    store: Arc<dyn EventStore>,
    suite: Arc<Suite>,
    running: Arc<Mutex<Option<Uuid>>>,
}

async fn append(store: &dyn EventStore, run_id: Uuid, events: &[Event]) -> Result<(), StoreError> {
    let records = events
        .iter()
        .map(|e| NewEvent::from_event(e).map(|r| r.with_correlation(run_id)))
        .collect::<Result<Vec<_>, _>>()?;
    store
        .append(BENCHMARK_STREAM, ExpectedRevision::Any, records)
        .await?;
    Ok(())
}

impl Runner {
    async fn start_run(&self, request: RunRequest) -> Result<RunStarted, BenchmarkError> {
        if let Some(run_id) = *self.running.lock() {
            return Ok(RunStarted::AlreadyRunning(run_id));
        }
        for category in &request.categories {
            if self.suite.select(std::slice::from_ref(category)).is_empty() {
                return Err(BenchmarkError::BadRequest(format!(
                    "categories: unknown category {category:?}"
                )));
            }
        }
        let providers: Vec<String> = if request.providers.is_empty() {
            self.gateway
                .providers()
                .iter()
                .map(|p| p.name.clone())
                .collect()
        } else {
            for name in &request.providers {
                if self.gateway.provider(name).is_none() {
                    return Err(BenchmarkError::BadRequest(format!(
                        "providers: unknown provider {name:?}"
                    )));
                }
            }
            request.providers.clone()
        };
        let run_id = Uuid::now_v7();
        let tests = self.suite.select(&request.categories).len() * providers.len();
        append(
            self.store.as_ref(),
            run_id,
            &[
                Event::BenchmarkRunScheduled(BenchmarkRunScheduled {
                    run_id,
                    trigger: request.trigger.clone(),
                    categories: request.categories.clone(),
                    providers: providers.clone(),
                }),
                Event::BenchmarkRunStarted(BenchmarkRunStarted {
                    run_id,
                    tests: u32::try_from(tests).unwrap_or(u32::MAX),
                }),
            ],
        )
        .await?;
        *self.running.lock() = Some(run_id);
        let gateway = self.gateway.clone();
        let store = Arc::clone(&self.store);
        let suite = Arc::clone(&self.suite);
        let running = Arc::clone(&self.running);
        tokio::spawn(async move {
            if let Err(error) = execute(
                &gateway,
                store.as_ref(),
                &suite,
                run_id,
                &request.categories,
                &providers,
            )
            .await
            {
                tracing::warn!(%run_id, %error, "benchmark run could not record its results");
            }
            *running.lock() = None;
        });
        Ok(RunStarted::Started(run_id))
    }
}

/// Runs every selected test on every provider, one call at a time (benchmarks
/// must not compete with each other for a provider's latency).
async fn execute(
    gateway: &Gateway,
    store: &dyn EventStore,
    suite: &Suite,
    run_id: Uuid,
    categories: &[String],
    providers: &[String],
) -> Result<(), StoreError> {
    let started = Instant::now();
    let (mut results, mut failures) = (0u32, 0u32);
    let mut sums: BTreeMap<(String, String), (f64, u32)> = BTreeMap::new();
    for provider in providers {
        let Some(runtime) = gateway.provider(provider) else {
            continue;
        };
        let model = runtime
            .settings()
            .default_model()
            .unwrap_or("default")
            .to_owned();
        for test in suite.select(categories) {
            let mut call = Call::new(
                CallSource::Benchmark,
                &format!("{provider}/{model}"),
                vec![ChatMessage {
                    role: "user".into(),
                    content: test.prompt.clone(),
                }],
            );
            call.max_tokens = Some(BENCHMARK_MAX_TOKENS);
            call.user_id = Some("tutorlog-benchmarks".into());
            let call_started = Instant::now();
            let outcome = gateway.complete(call).await;
            if outcome.is_err() && gateway.is_shutting_down() {
                // Refused because the daemon is stopping, not by the provider: a
                // failure recorded now would lower its quality for no fault of
                // its own. The run stays without its completion event.
                tracing::info!(%run_id, "benchmark run abandoned: the daemon is shutting down");
                return Ok(());
            }
            let latency_micros =
                u64::try_from(call_started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let result = match outcome {
                Ok(answer) => BenchmarkResultRecorded {
                    run_id,
                    provider: provider.clone(),
                    model: model.clone(),
                    category: test.category.clone(),
                    test_id: test.id.clone(),
                    quality: score(test, &answer.content),
                    latency_micros,
                    cost_micros: answer.cost_micros,
                    success: true,
                    error_kind: None,
                },
                Err(error) => {
                    failures += 1;
                    BenchmarkResultRecorded {
                        run_id,
                        provider: provider.clone(),
                        model: model.clone(),
                        category: test.category.clone(),
                        test_id: test.id.clone(),
                        quality: 0.0,
                        latency_micros,
                        cost_micros: 0,
                        success: false,
                        error_kind: match error {
                            GatewayError::Provider { error, .. } => Some(error.kind),
                            _ => None,
                        },
                    }
                }
            };
            results += 1;
            let entry = sums
                .entry((provider.clone(), test.category.clone()))
                .or_insert((0.0, 0));
            entry.0 += result.quality;
            entry.1 += 1;
            append(store, run_id, &[Event::BenchmarkResultRecorded(result)]).await?;
        }
    }
    for ((provider, category), (sum, count)) in &sums {
        gateway.set_benchmark_quality(provider, category, sum / f64::from((*count).max(1)));
    }
    append(
        store,
        run_id,
        &[Event::BenchmarkRunCompleted(BenchmarkRunCompleted {
            run_id,
            results,
            failures,
            duration_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })],
    )
    .await?;
    tracing::info!(%run_id, results, failures, "benchmark run completed");
    Ok(())
}

/// The mean quality per (provider, category) of the latest result set of each,
/// read from the `benchmarks` stream.
pub async fn latest_quality(
    store: &dyn EventStore,
) -> Result<HashMap<(String, String), f64>, StoreError> {
    // Per (provider, category): the run id of the latest results and their sum.
    let mut latest: HashMap<(String, String), (Uuid, f64, u32)> = HashMap::new();
    let mut from = 0;
    loop {
        let batch = store
            .read_stream(BENCHMARK_STREAM, from, READ_EVENTS_MAX)
            .await?;
        for recorded in &batch {
            from = recorded.revision + 1;
            let Ok(Envelope {
                payload: Event::BenchmarkResultRecorded(result),
                ..
            }) = Envelope::decode(recorded)
            else {
                continue;
            };
            let entry = latest
                .entry((result.provider.clone(), result.category.clone()))
                .or_insert((result.run_id, 0.0, 0));
            if entry.0 != result.run_id {
                *entry = (result.run_id, 0.0, 0);
            }
            entry.1 += result.quality;
            entry.2 += 1;
        }
        if batch.len() < READ_EVENTS_MAX {
            break;
        }
    }
    Ok(latest
        .into_iter()
        .map(|(key, (_, sum, count))| (key, sum / f64::from(count.max(1))))
        .collect())
}

#[cfg(test)]
mod tests {
    use tutorlog_actors::{Clock, SystemClock};
    use tutorlog_store::MemoryStore;

    use super::*;
    use crate::config::{CircuitConfig, ModelConfig, ProviderConfig};
    use crate::gateway::{
        service::{GatewayOptions, ProviderRuntime},
        testing::Scripted,
        types::ErrorKind,
    };

    fn provider(name: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            kind: "openai".into(),
            base_url: "http://127.0.0.1:9".into(),
            api_key_env: None,
            priority: 1,
            timeout_ms: 1_000,
            monthly_budget_usd: 0.0,
            per_request_budget_usd: 0.0,
            // Never open during the test: every failure is recorded as a result.
            circuit: CircuitConfig {
                failure_threshold: 1_000,
                ..CircuitConfig::default()
            },
            models: vec![ModelConfig {
                name: "m".into(),
                input_usd_per_mtok: 0.0,
                output_usd_per_mtok: 0.0,
            }],
        }
    }

    fn options() -> GatewayOptions {
        GatewayOptions {
            mode: tutorlog_actors::providers::budget_service::ReservationMode::Strict,
            default_max_tokens: 600,
            max_tokens_limit: 1_000,
            record_content: false,
            session_ttl: Duration::from_secs(60),
            hold: tutorlog_store::embedded::LINGER_DEFAULT,
        }
    }

    async fn wait_idle(scheduler: &BenchmarkScheduler) {
        // Bounded by time, not by a count of polls: a loaded machine runs the
        // benchmark prompts slower.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while scheduler.running().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the benchmark run did not finish"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn benchmark_events(store: &dyn EventStore) -> Vec<Event> {
        store
            .read_stream(BENCHMARK_STREAM, 0, 1_000)
            .await
            .expect("read")
            .iter()
            .map(|r| Envelope::decode(r).expect("decode").payload)
            .collect()
    }

    /// Calls the gateway refuses because the daemon is stopping are not the
    /// provider's failures: the run stops without recording any of them.
    #[tokio::test]
    async fn a_run_cut_by_shutdown_records_no_failures() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let options = options();
        let runtime = ProviderRuntime::start(
            &provider("smart"),
            Scripted::answering("x = 5", (5, 5)),
            &options,
            &store,
            &clock,
        )
        .await
        .expect("provider");
        let gateway = Gateway::from_parts(vec![Arc::new(runtime)], Arc::clone(&store), options);
        let (scheduler, _join) = BenchmarkScheduler::start(
            gateway.clone(),
            Arc::clone(&store),
            Suite::builtin().expect("suite"),
            None,
        )
        .await
        .expect("start");
        gateway.shutdown().await;
        assert!(gateway.is_shutting_down());
        scheduler
            .run(RunRequest {
                trigger: "manual".into(),
                categories: vec!["math".into()],
                providers: Vec::new(),
            })
            .await
            .expect("run");
        wait_idle(&scheduler).await;
        assert!(scheduler.running().is_none(), "run ended");
        let events = benchmark_events(store.as_ref()).await;
        assert!(
            !events.iter().any(|e| matches!(
                e,
                Event::BenchmarkResultRecorded(_) | Event::BenchmarkRunCompleted(_)
            )),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_run_scores_every_test_records_it_and_feeds_the_router() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let options = options();
        // "smart" answers the maths test perfectly; "broken" fails everything.
        let full = "Subtract 5 from both sides to get 2x = 10, then divide by 2: x = 5.";
        let mut runtimes = Vec::new();
        for (name, adapter) in [
            ("smart", Scripted::answering(full, (5, 5))),
            ("broken", Scripted::failing(ErrorKind::Server)),
        ] {
            runtimes.push(Arc::new(
                ProviderRuntime::start(&provider(name), adapter, &options, &store, &clock)
                    .await
                    .expect("provider"),
            ));
        }
        let gateway = Gateway::from_parts(runtimes, Arc::clone(&store), options);
        let suite = Suite::builtin().expect("suite");
        let (scheduler, _join) =
            BenchmarkScheduler::start(gateway.clone(), Arc::clone(&store), suite.clone(), None)
                .await
                .expect("start");
        let started = scheduler
            .run(RunRequest {
                trigger: "manual".into(),
                categories: vec!["math".into()],
                providers: Vec::new(),
            })
            .await
            .expect("run");
        let RunStarted::Started(run_id) = started else {
            panic!("expected a new run, got {started:?}")
        };
        wait_idle(&scheduler).await;
        assert!(scheduler.running().is_none(), "run finished");
        let events = benchmark_events(store.as_ref()).await;
        let maths = suite.select(&["math".into()]).len();
        let results: Vec<&BenchmarkResultRecorded> = events
            .iter()
            .filter_map(|e| match e {
                Event::BenchmarkResultRecorded(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 2 * maths);
        assert!(results.iter().all(|r| r.run_id == run_id));
        let linear = results
            .iter()
            .find(|r| r.provider == "smart" && r.test_id == "math-linear-equation")
            .expect("result");
        assert_eq!(linear.quality, 100.0);
        assert!(results
            .iter()
            .filter(|r| r.provider == "broken")
            .all(|r| !r.success && r.quality == 0.0));
        assert!(
            matches!(events.last(), Some(Event::BenchmarkRunCompleted(c)) if c.failures as usize == maths)
        );

        // Read back at start: what the router is fed after a restart.
        let latest = latest_quality(store.as_ref()).await.expect("latest");
        assert_eq!(latest[&("broken".to_owned(), "math".to_owned())], 0.0);
        assert!(latest[&("smart".to_owned(), "math".to_owned())] > 30.0);
        // Unknown names are refused, naming the field.
        let error = scheduler
            .run(RunRequest {
                trigger: "manual".into(),
                categories: vec!["cooking".into()],
                providers: Vec::new(),
            })
            .await
            .expect_err("unknown category");
        assert!(error.to_string().contains("categories"), "{error}");
    }
}
