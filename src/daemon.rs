//! `tutorlog serve`: open the log, record the configuration, start the read
//! models, serve HTTP, and shut down in order on SIGTERM/SIGINT.
//!
//! Shutdown order (axum's graceful-shutdown example plus the log's needs): stop
//! accepting connections and let in-flight requests finish (their appends are
//! acknowledged only once durable), stop the projections (each writes a final
//! snapshot), then close the log (the writer drains its queue and syncs).

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use axum::serve::ListenerExt;
use tutorlog_actors::{
    algo_registry::{batch::run_batch, AlgoCatalog},
    algorithms::AlgoKey,
    learning::{Learner, LearningPolicy, LearningService},
    Clock, RegistryConfig, RegistryHandle, SystemClock,
};
use tutorlog_schemas::{
    events::{ConfigApplied, Event, RunTrigger},
    Envelope, NewEvent,
};
use tutorlog_store::{EventStore, ExpectedRevision};

use crate::{
    backend,
    cli::ServeArgs,
    commands::snapshot_dir,
    config::{changed_keys, Config},
    http::{self, AppState, AppStateInner},
    telemetry, views,
};

/// Stream holding `config.applied` events.
pub const CONFIG_STREAM: &str = "config";

/// Loads the configuration: `--config`, else `./tutorlog.toml` if present, else
/// defaults; then applies flag and environment overrides and validates.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None if Path::new("tutorlog.toml").exists() => Config::load(Path::new("tutorlog.toml"))?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    args.store.apply(&mut config);
    config.validate()?;
    Ok(config)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(load_config(&args)?);
    let reload_args = args.clone();
    let metrics = telemetry::init_metrics().context("installing the metrics recorder")?;
    let data_dir = config.server.data_dir.clone();
    let handle = backend::open_store(&config, &data_dir).await?;
    tracing::info!(log = %handle.description(), last_position = ?handle.store.last_position(), "event log open");
    record_config(handle.store.as_ref(), &config)
        .await
        .context("recording the configuration")?;

    let shared: Arc<dyn EventStore> = Arc::clone(&handle.store);
    let projections = views::start(Arc::clone(&shared), &snapshot_dir(&data_dir), &config)
        .await
        .context("starting projections")?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = AlgoCatalog::start(Arc::clone(&shared), Arc::clone(&clock))
        .await
        .context("starting the algorithm registry")?;
    let (learners, _learners_join) = RegistryHandle::<Learner>::start(
        Arc::clone(&shared),
        Arc::clone(&clock),
        RegistryConfig {
            idle_timeout: Duration::from_secs(config.learning.learner_idle_secs.max(1)),
            ..RegistryConfig::default()
        },
    )
    .await
    .context("starting the learner registry")?;
    let learning = Arc::new(LearningService::new(
        learners.clone(),
        catalog.clone(),
        Arc::clone(&clock),
        LearningPolicy {
            mastery_threshold: config.learning.mastery_threshold,
            weekly_decay: config.learning.weekly_decay,
            session_timeout_secs: config.learning.session_timeout_secs,
        },
        config.learning.default_rounds,
    ));

    let api_keys = crate::gateway::keys::ApiKeys::from_config(&config.gateway)?;
    if api_keys.is_empty() && !config.providers.is_empty() {
        tracing::warn!("gateway.api_keys is empty: /v1/* accepts requests without a key");
    }
    let gateway = if config.providers.is_empty() {
        tracing::info!("no [[providers]] configured: the gateway answers 503 until one is added");
        None
    } else {
        Some(
            crate::gateway::service::Gateway::start(
                &config,
                Arc::clone(&shared),
                Arc::clone(&clock),
            )
            .await
            .context("starting the gateway")?,
        )
    };

    let benchmark_scheduler = match &gateway {
        Some(gateway) => {
            let suite = tutorlog_actors::benchmarks::Suite::builtin()
                .context("loading the benchmark suite")?;
            let every = (config.gateway.benchmark_every_hours > 0)
                .then(|| Duration::from_secs(config.gateway.benchmark_every_hours * 3600));
            let (scheduler, _join) = crate::gateway::benchmarks::BenchmarkScheduler::start(
                gateway.clone(),
                Arc::clone(&shared),
                suite,
                every,
            )
            .await
            .context("starting the benchmark scheduler")?;
            Some(scheduler)
        }
        None => None,
    };

    let batch_schedule = spawn_batch_schedule(
        Arc::clone(&shared),
        catalog.clone(),
        Arc::clone(&clock),
        config.learning.batch_every_secs,
    );

    let addr: SocketAddr = config.server.listen.parse().context("server.listen")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let reloader = Arc::new(crate::reload::Reloader::new(
        reload_args,
        Arc::clone(&config),
        gateway.clone(),
        Arc::clone(&shared),
    ));
    let sighup = spawn_sighup_reload(Arc::clone(&reloader));
    let state = AppState::new(AppStateInner {
        store: shared,
        config: Arc::clone(&config),
        metrics: Some(metrics),
        readiness: projections.readiness(),
        poisoned: handle.poisoned_probe(),
        stats: projections.stats.clone(),
        mastery: projections.mastery.clone(),
        algo_runs: projections.algo_runs.clone(),
        spend: projections.spend.clone(),
        provider_health: projections.provider_health.clone(),
        benchmarks: projections.benchmarks.clone(),
        routing: projections.routing.clone(),
        learning: Some(learning),
        gateway: gateway.clone(),
        api_keys,
        benchmark_scheduler,
        reloader: Some(reloader),
    });
    tracing::info!(address = %local, "listening");
    // TCP_NODELAY: without it a keep-alive client waits on delayed ACKs (~40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server")?;

    if let Some(schedule) = batch_schedule {
        schedule.abort();
    }
    sighup.abort();
    tracing::info!("stopping: HTTP closed, stopping learner actors");
    learners.shutdown().await;
    if let Some(gateway) = &gateway {
        tracing::info!("settling gateway commits and records");
        gateway.shutdown().await;
    }
    tracing::info!("writing projection snapshots");
    projections.stop().await;
    handle.close();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Appends `config.applied` when the effective configuration differs from the
/// last one recorded.
pub async fn record_config(store: &dyn EventStore, config: &Config) -> anyhow::Result<()> {
    let digest = config.digest();
    let effective_json = config.effective_json();
    let revision = store.stream_revision(CONFIG_STREAM).await?;
    let mut previous: Option<ConfigApplied> = None;
    if let Some(last) = revision {
        let events = store.read_stream(CONFIG_STREAM, last, 1).await?;
        if let Some(recorded) = events.first() {
            if let Ok(Envelope {
                payload: Event::ConfigApplied(applied),
                ..
            }) = Envelope::decode(recorded)
            {
                previous = Some(applied);
            }
        }
    }
    if previous.as_ref().is_some_and(|p| p.digest == digest) {
        return Ok(());
    }
    let changes = match &previous {
        Some(p) => {
            let before: serde_json::Value =
                serde_json::from_str(&p.effective_json).unwrap_or_default();
            let after: serde_json::Value =
                serde_json::from_str(&effective_json).unwrap_or_default();
            changed_keys(&before, &after)
        }
        None => vec!["(initial)".to_owned()],
    };
    let event = Event::ConfigApplied(ConfigApplied {
        digest,
        previous_digest: previous.map(|p| p.digest),
        changes,
        effective_json,
    });
    let result = store
        .append(
            CONFIG_STREAM,
            ExpectedRevision::after(revision),
            vec![NewEvent::from_event(&event)?],
        )
        .await?;
    tracing::info!(position = result.position, "configuration recorded");
    Ok(())
}

/// Runs the batch algorithms (difficulty recalibration, mistake mining) every
/// `every_secs` as audited runs (`nightly` for a daily period, else `cron`).
fn spawn_batch_schedule(
    store: Arc<dyn EventStore>,
    catalog: AlgoCatalog,
    clock: Arc<dyn Clock>,
    every_secs: u64,
) -> Option<tokio::task::JoinHandle<()>> {
    if every_secs == 0 {
        return None;
    }
    let trigger = if every_secs == 86_400 {
        RunTrigger::Nightly
    } else {
        RunTrigger::Cron
    };
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(every_secs));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; batches start one period after startup.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            for key in [AlgoKey::Difficulty, AlgoKey::Mistakes] {
                match run_batch(store.as_ref(), &catalog, key, trigger, clock.now()).await {
                    Ok(run) => {
                        tracing::info!(%key, run_id = %run.run_id, ok = run.result.is_ok(), "batch run recorded")
                    }
                    Err(error) => tracing::warn!(%key, %error, "batch run could not be recorded"),
                }
            }
        }
    }))
}

/// Reloads the configuration on every SIGHUP (logging what happened).
fn spawn_sighup_reload(reloader: Arc<crate::reload::Reloader>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; use POST /api/v1/admin/config/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match reloader.reload().await {
                Ok(reloaded) if reloaded.changes.is_empty() => {
                    tracing::info!("SIGHUP: configuration unchanged")
                }
                Ok(reloaded) => {
                    tracing::info!(changes = ?reloaded.changes, "SIGHUP: configuration applied")
                }
                Err(error) => tracing::error!(%error, "SIGHUP: configuration not applied"),
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
