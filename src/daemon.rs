//! `tutorlog serve`: open the log, record the configuration, start the read
//! models, serve HTTP, and shut down in order on SIGTERM/SIGINT.
//!
//! Shutdown order (axum's graceful-shutdown example plus the log's needs): stop
//! accepting connections and let in-flight requests finish (their appends are
//! acknowledged only once durable), stop the projections (each writes a final
//! snapshot), then close the log (the writer drains its queue and syncs).

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::{bail, Context};
use axum::serve::ListenerExt;
use tutorlog_schemas::{
    events::{ConfigApplied, Event},
    Envelope, NewEvent,
};
use tutorlog_store::{EmbeddedStore, EventStore, ExpectedRevision, StoreOptions};

use crate::{
    cli::ServeArgs,
    commands::{log_dir, snapshot_dir},
    config::{changed_keys, Config},
    http::{self, AppState},
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
    config.validate()?;
    Ok(config)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(load_config(&args)?);
    if config.store.backend != "embedded" {
        bail!("store.backend = {:?} is not available in this build; use \"embedded\" (the KurrentDB backend needs --features kurrentdb)", config.store.backend);
    }
    let metrics = telemetry::init_metrics().context("installing the metrics recorder")?;
    let data_dir = config.server.data_dir.clone();
    let options = StoreOptions {
        segment_bytes: config.store.segment_bytes,
        ..StoreOptions::default()
    };
    let store =
        EmbeddedStore::open_with(log_dir(&data_dir), options).context("opening the event log")?;
    tracing::info!(dir = %data_dir.display(), last_position = ?store.last_position(), "event log open");
    record_config(&store, &config)
        .await
        .context("recording the configuration")?;

    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let projections = views::start(Arc::clone(&shared), &snapshot_dir(&data_dir), &config)
        .await
        .context("starting projections")?;

    let addr: SocketAddr = config.server.listen.parse().context("server.listen")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let poison_store = store.clone();
    let state = AppState {
        store: shared,
        config: Arc::clone(&config),
        metrics: Some(metrics),
        readiness: projections.readiness(),
        poisoned: Arc::new(move || poison_store.poisoned()),
        stats: projections.stats.clone(),
    };
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

    tracing::info!("stopping: HTTP closed, writing projection snapshots");
    projections.stop().await;
    store.close();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Appends `config.applied` when the effective configuration differs from the
/// last one recorded.
pub async fn record_config(store: &EmbeddedStore, config: &Config) -> anyhow::Result<()> {
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
