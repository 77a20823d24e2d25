//! The runner's task: take event batches from the feed, fold them, publish, and
//! snapshot.
//!
//! The events come from a feed ([`crate::feed`]) (shared with other runners, or the
//! runner's own) through a channel bounded in events, so the fold loop can wait on events, a
//! stop request and the snapshot timer at once without ever cancelling a
//! half-finished subscription read (a backend's `next` need not be cancel-safe;
//! the channel's `recv_many` is).

use std::{path::Path, sync::Arc};

use parking_lot::RwLock;
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};
use tutorlog_store::EventStore;

use crate::{
    error::ProjectionError,
    feed::{FeedDelivery, FeedEvent, FeedReceiver, FeedSlice},
    projection::{fold_feed_event, Folded, Projection},
    reader::Published,
    runner::{RunnerExit, RunnerOptions, StopReason},
    snapshot, telemetry,
};

/// Slices taken from the channel per wake-up.
const SLICES_PER_RECEIVE: usize = 64;

/// The fold loop's state; owned by the runner's task.
pub(crate) struct RunnerTask<S: ?Sized, P> {
    store: Arc<S>,
    published: Arc<RwLock<Published<P>>>,
    applied: watch::Sender<u64>,
    events: FeedReceiver,
    options: RunnerOptions,
    /// Events `0..next_position` are folded (mirrors `published.next_position`).
    next_position: u64,
    /// Next position of the newest snapshot on disk (or where this runner started).
    snapshot_next_position: u64,
    /// Next position at the last snapshot attempt, failed or not: the schedule.
    attempted_next_position: u64,
    /// When the last snapshot attempt began (or the runner started).
    attempted_at: Instant,
}

impl<S: EventStore + ?Sized, P: Projection> RunnerTask<S, P> {
    pub(crate) fn new(
        store: Arc<S>,
        published: Arc<RwLock<Published<P>>>,
        applied: watch::Sender<u64>,
        events: FeedReceiver,
        options: RunnerOptions,
    ) -> Self {
        let next_position = published.read().next_position;
        RunnerTask {
            store,
            published,
            applied,
            events,
            options,
            next_position,
            snapshot_next_position: next_position,
            attempted_next_position: next_position,
            attempted_at: Instant::now(),
        }
    }

    /// Folds until stopped, the store closes, or an error; then snapshots what was
    /// folded (also after an error: the model is consistent up to `next_position`).
    pub(crate) async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<RunnerExit, ProjectionError> {
        let outcome = self.follow(&mut stop).await;
        let snapshot = self.snapshot_if_changed().await;
        tracing::info!(
            projection = P::NAME,
            next_position = self.next_position,
            "projection stopped"
        );
        match (outcome, snapshot) {
            (Ok(reason), Ok(())) => Ok(RunnerExit {
                reason,
                next_position: self.next_position,
            }),
            (Ok(_), Err(error)) => Err(error),
            (Err(error), Ok(())) => Err(error),
            (Err(error), Err(snapshot_error)) => {
                tracing::error!(projection = P::NAME, %snapshot_error, "final snapshot failed");
                Err(error)
            }
        }
    }

    async fn follow(
        &mut self,
        stop: &mut oneshot::Receiver<()>,
    ) -> Result<StopReason, ProjectionError> {
        let mut slices = Vec::with_capacity(SLICES_PER_RECEIVE);
        loop {
            let changed = self.next_position != self.attempted_next_position;
            let deadline = self.attempted_at + self.options.snapshot_interval;
            tokio::select! {
                biased;
                // A dropped sender also means stop (the runner handle is gone).
                _ = &mut *stop => return Ok(StopReason::Requested),
                received = self.events.recv_many(&mut slices, SLICES_PER_RECEIVE) => {
                    if received == 0 {
                        return Ok(StopReason::StoreClosed);
                    }
                    self.fold_slices(&mut slices)?;
                }
                () = tokio::time::sleep_until(deadline), if changed => {
                    self.snapshot_logged().await;
                }
            }
            let since_snapshot = self.next_position - self.attempted_next_position;
            if since_snapshot >= self.options.snapshot_every_events {
                self.snapshot_logged().await;
            }
        }
    }

    /// Folds the received slices, at most `batch_events_max` events under one write
    /// lock (readers wait at most that long), publishing after each lock. On an
    /// error the events before it stay folded and published.
    fn fold_slices(&mut self, slices: &mut Vec<FeedDelivery>) -> Result<(), ProjectionError> {
        let mut outcome = Ok(());
        let mut events = slices
            .iter()
            .map_while(|delivery| match delivery {
                Ok(slice) => Some(slice),
                Err(source) => {
                    outcome = Err(ProjectionError::Store {
                        projection: P::NAME,
                        source: Arc::clone(source),
                    });
                    None
                }
            })
            .flat_map(FeedSlice::events)
            .peekable();
        while events.peek().is_some() {
            let mut skipped = 0u64;
            let mut published = self.published.write();
            let mut folded_error = None;
            for event in events.by_ref().take(self.options.batch_events_max) {
                match fold_next(&mut published, event) {
                    Ok(Folded::Applied) => {}
                    Ok(Folded::Skipped) => skipped += 1,
                    Err(error) => {
                        folded_error = Some(error);
                        break;
                    }
                }
            }
            let next_position = published.next_position;
            drop(published);
            self.publish(next_position, skipped);
            if let Some(error) = folded_error {
                self.give_back(slices);
                return Err(error);
            }
        }
        drop(events);
        self.give_back(slices);
        outcome
    }

    /// Empties `slices` and gives their room back to the feed.
    fn give_back(&self, slices: &mut Vec<FeedDelivery>) {
        let events = slices
            .drain(..)
            .filter_map(Result::ok)
            .map(|slice| slice.events().len())
            .sum();
        self.events.release(events);
    }

    fn publish(&mut self, next_position: u64, skipped: u64) {
        if skipped > 0 {
            metrics::counter!(telemetry::SKIPPED_EVENTS_TOTAL, telemetry::PROJECTION_LABEL => P::NAME)
                .increment(skipped);
        }
        if next_position == self.next_position {
            return;
        }
        self.next_position = next_position;
        self.applied.send_replace(next_position);
        metrics::gauge!(telemetry::POSITION, telemetry::PROJECTION_LABEL => P::NAME)
            .set((next_position - 1) as f64);
        if let Some(last_position) = self.store.last_position() {
            let lag = (last_position + 1).saturating_sub(next_position);
            metrics::gauge!(telemetry::LAG_EVENTS, telemetry::PROJECTION_LABEL => P::NAME)
                .set(lag as f64);
        }
    }

    /// The final snapshot: written unless the one on disk is already current.
    async fn snapshot_if_changed(&mut self) -> Result<(), ProjectionError> {
        if self.next_position == self.snapshot_next_position {
            return Ok(());
        }
        self.snapshot().await
    }

    /// A periodic snapshot: a failure is logged and counted, and folding goes on
    /// (the cost is a longer replay after a restart).
    async fn snapshot_logged(&mut self) {
        if let Err(error) = self.snapshot().await {
            tracing::error!(projection = P::NAME, %error, "snapshot failed");
        }
    }

    async fn snapshot(&mut self) -> Result<(), ProjectionError> {
        // Reset the schedule whatever the outcome, so a failing disk is retried at
        // the normal pace rather than after every event.
        self.attempted_at = Instant::now();
        self.attempted_next_position = self.next_position;
        let published = Arc::clone(&self.published);
        let directory = self.options.snapshot_dir.clone();
        let written = tokio::task::spawn_blocking(move || write_snapshot(&published, &directory))
            .await
            .unwrap_or_else(|error| {
                Err(ProjectionError::TaskFailed {
                    projection: P::NAME,
                    reason: format!("snapshot task failed: {error}"),
                })
            });
        match written {
            Ok(next_position) => {
                self.snapshot_next_position = next_position;
                self.published.write().snapshot_next_position = Some(next_position);
                metrics::counter!(telemetry::SNAPSHOTS_TOTAL, telemetry::PROJECTION_LABEL => P::NAME)
                    .increment(1);
                Ok(())
            }
            Err(error) => {
                metrics::counter!(telemetry::SNAPSHOT_FAILURES_TOTAL, telemetry::PROJECTION_LABEL => P::NAME)
                    .increment(1);
                Err(error)
            }
        }
    }
}

/// Folds the event that must come next, or stops on a gap or repeat.
fn fold_next<P: Projection>(
    published: &mut Published<P>,
    event: &FeedEvent,
) -> Result<Folded, ProjectionError> {
    let recorded = &event.recorded;
    if recorded.position != published.next_position {
        return Err(ProjectionError::PositionGap {
            projection: P::NAME,
            expected: published.next_position,
            got: recorded.position,
        });
    }
    let folded = fold_feed_event(&mut published.projection, event)?;
    published.next_position += 1;
    published.last_event_id = *recorded.event_id.as_bytes();
    if folded == Folded::Skipped {
        published.skipped_events += 1;
    }
    Ok(folded)
}

/// Streams the published model into the snapshot file under the read lock (the
/// runner is waiting, so it does not change meanwhile; readers still read), then
/// syncs and renames it. Returns the snapshot's next position.
fn write_snapshot<P: Projection>(
    published: &RwLock<Published<P>>,
    directory: &Path,
) -> Result<u64, ProjectionError> {
    let mut next_position = 0;
    snapshot::write_streamed(directory, P::NAME, |out| {
        let published = published.read();
        serde_json::to_writer(out, published.projection.model())
            .map_err(|error| format!("model does not serialize: {error}"))?;
        next_position = published.next_position;
        Ok(snapshot::SnapshotMeta {
            projection_version: P::VERSION,
            next_position: published.next_position,
            last_event_id: published.last_event_id,
        })
    })
    .map_err(|reason| ProjectionError::Snapshot {
        projection: P::NAME,
        path: snapshot::snapshot_path(directory, P::NAME),
        reason,
    })?;
    Ok(next_position)
}
