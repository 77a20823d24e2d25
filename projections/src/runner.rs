//! [`ProjectionRunner`]: keeps one projection folded up to the head of `$all`.
//!
//! On start it loads the projection's snapshot (if one passes every check), then
//! takes `$all` from the snapshot's next position, so no event is applied twice
//! and none is skipped: from its own subscription ([`ProjectionRunner::start`]) or
//! from a [`FeedBuilder`] shared with other runners, which reads and decodes each
//! event once for all of them ([`ProjectionRunner::start_on`]). It folds events in batches, publishes the model to
//! [`ProjectionReader`]s, and snapshots every `snapshot_every_events` events, every
//! `snapshot_interval` while there is something new, and on shutdown.
//!
//! The runner tails the committed log on its own task: an append never waits on a
//! projection, and a slow or failed projection never blocks writes.

use std::{path::PathBuf, sync::Arc, time::Duration};

use parking_lot::RwLock;
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tutorlog_store::EventStore;

use crate::{
    error::ProjectionError,
    feed::{Feed, FeedBuilder},
    projection::{assert_valid_name, Projection},
    reader::{ProjectionReader, Published},
    runner_task::RunnerTask,
    snapshot_load::{load_snapshot, Loaded},
    telemetry,
};

/// Most events folded under one write lock (readers wait at most one batch).
pub const BATCH_EVENTS_MAX: usize = 4096;
/// Shortest snapshot interval accepted.
pub const SNAPSHOT_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// How a runner batches and snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerOptions {
    /// Directory of snapshot files, one per projection; created if missing.
    pub snapshot_dir: PathBuf,
    /// Snapshot after this many events folded since the last snapshot.
    pub snapshot_every_events: u64,
    /// Snapshot this long after the last one when events were folded since.
    pub snapshot_interval: Duration,
    /// Most events folded under one write lock, 1 to [`BATCH_EVENTS_MAX`].
    pub batch_events_max: usize,
}

impl RunnerOptions {
    /// Defaults: snapshot every 10,000 events or 30 s, batches of 256 events.
    pub fn new(snapshot_dir: impl Into<PathBuf>) -> Self {
        RunnerOptions {
            snapshot_dir: snapshot_dir.into(),
            snapshot_every_events: 10_000,
            snapshot_interval: Duration::from_secs(30),
            batch_events_max: 256,
        }
    }

    fn validate(&self, projection: &'static str) -> Result<(), ProjectionError> {
        let invalid = |reason: String| ProjectionError::InvalidOptions { projection, reason };
        if self.snapshot_every_events == 0 {
            return Err(invalid("snapshot_every_events must be at least 1".into()));
        }
        if self.snapshot_interval < SNAPSHOT_INTERVAL_MIN {
            return Err(invalid(format!(
                "snapshot_interval must be at least {SNAPSHOT_INTERVAL_MIN:?}"
            )));
        }
        if self.batch_events_max == 0 || self.batch_events_max > BATCH_EVENTS_MAX {
            return Err(invalid(format!(
                "batch_events_max must be between 1 and {BATCH_EVENTS_MAX}, got {}",
                self.batch_events_max
            )));
        }
        Ok(())
    }
}

/// Why a runner stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// [`ProjectionRunner::shutdown`] was called.
    Requested,
    /// The store closed and every durable event was folded.
    StoreClosed,
}

/// How a runner ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerExit {
    /// Why it stopped.
    pub reason: StopReason,
    /// Events `0..next_position` are folded into the final model and its snapshot.
    pub next_position: u64,
}

/// A running projection. Dropping it without [`ProjectionRunner::shutdown`] aborts
/// the task like a crash: no final snapshot, and the next start resumes from the
/// last periodic one.
pub struct ProjectionRunner<P: Projection> {
    reader: ProjectionReader<P>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<RunnerExit, ProjectionError>>>,
    /// The feed of a runner started with [`ProjectionRunner::start`]; dropped (so
    /// stopped) with the runner.
    own_feed: Option<Feed>,
}

impl<P: Projection> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &P::NAME)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Loads the snapshot (or starts from position 0 with `Model::default()`),
    /// subscribes to `$all` from its next position and starts folding on a new task.
    /// `projection` supplies configuration; its model is replaced.
    ///
    /// Fails only when the options are invalid or the snapshot directory cannot be
    /// created; a bad snapshot is logged and ignored.
    pub async fn start<S: EventStore + ?Sized>(
        store: Arc<S>,
        projection: P,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        let feed = FeedBuilder::new();
        let mut runner = Self::start_with(&feed, Arc::clone(&store), projection, options).await?;
        runner.own_feed = Some(feed.start(&*store));
        Ok(runner)
    }

    /// As [`ProjectionRunner::start`], but takes its events from `feed`, which the
    /// caller starts ([`FeedBuilder::start`]) once every runner on it has started,
    /// and keeps until they stop. Until then this runner waits, at its snapshot's
    /// position.
    pub async fn start_on<S: EventStore + ?Sized>(
        feed: &FeedBuilder,
        store: Arc<S>,
        projection: P,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        Self::start_with(feed, store, projection, options).await
    }

    async fn start_with<S: EventStore + ?Sized>(
        feed: &FeedBuilder,
        store: Arc<S>,
        mut projection: P,
        options: RunnerOptions,
    ) -> Result<Self, ProjectionError> {
        assert_valid_name::<P>();
        options.validate(P::NAME)?;
        let loaded: Loaded<P::Model> =
            load_snapshot::<P, S>(&*store, &options.snapshot_dir).await?;
        projection.restore(loaded.model);
        tracing::info!(
            projection = P::NAME,
            next_position = loaded.next_position,
            from_snapshot = loaded.from_snapshot,
            "projection starting"
        );
        let published = Arc::new(RwLock::new(Published {
            projection,
            next_position: loaded.next_position,
            skipped_events: 0,
            resumed_from: loaded.next_position,
            snapshot_next_position: loaded.from_snapshot.then_some(loaded.next_position),
            last_event_id: loaded.last_event_id,
        }));
        let (applied_sender, applied) = watch::channel(loaded.next_position);
        let events = feed.subscribe(loaded.next_position);
        let (stop, stop_receiver) = oneshot::channel();
        let task = RunnerTask::new(
            store,
            Arc::clone(&published),
            applied_sender,
            events,
            options,
        );
        if loaded.next_position > 0 {
            metrics::gauge!(telemetry::POSITION, telemetry::PROJECTION_LABEL => P::NAME)
                .set((loaded.next_position - 1) as f64);
        }
        Ok(ProjectionRunner {
            reader: ProjectionReader { published, applied },
            stop: Some(stop),
            task: Some(tokio::spawn(task.run(stop_receiver))),
            own_feed: None,
        })
    }

    /// A handle for readers (HTTP, CLI); it stays valid after the runner stops.
    pub fn reader(&self) -> ProjectionReader<P> {
        self.reader.clone()
    }

    /// Whether the task has ended (store closed, error, or panic).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops folding, writes a final snapshot if anything changed since the last,
    /// and returns how far the projection got.
    pub async fn shutdown(mut self) -> Result<RunnerExit, ProjectionError> {
        if let Some(stop) = self.stop.take() {
            // The task may have ended on its own already; its result says why.
            if stop.send(()).is_err() {
                tracing::debug!(projection = P::NAME, "runner had already stopped");
            }
        }
        self.finish().await
    }

    /// Waits for the task to end on its own: the store closed (`Ok`, after a final
    /// snapshot) or an error.
    pub async fn join(mut self) -> Result<RunnerExit, ProjectionError> {
        self.finish().await
    }

    /// Ends the task at once without a final snapshot, as a crash would, and waits
    /// until it is gone. The next start resumes from the last periodic snapshot.
    pub async fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            match task.await {
                Ok(_) => {}
                Err(error) if error.is_cancelled() => {}
                Err(error) => {
                    tracing::error!(projection = P::NAME, %error, "runner task failed")
                }
            }
        }
    }

    async fn finish(&mut self) -> Result<RunnerExit, ProjectionError> {
        let Some(task) = self.task.take() else {
            return Err(ProjectionError::TaskFailed {
                projection: P::NAME,
                reason: "runner was already finished".into(),
            });
        };
        task.await.map_err(|error| ProjectionError::TaskFailed {
            projection: P::NAME,
            reason: error.to_string(),
        })?
    }
}

impl<P: Projection> Drop for ProjectionRunner<P> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
