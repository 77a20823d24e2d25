//! The read side of a running projection: the published model, its position, and
//! the bounded wait that gives read-your-writes.

use std::{sync::Arc, time::Duration};

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::{error::WaitError, projection::Projection};

/// Longest wait [`ProjectionReader::wait_for`] accepts; longer requests are cut to it.
pub const WAIT_TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// What the runner publishes, under one lock so readers see a model and the
/// position it stands at together.
pub(crate) struct Published<P> {
    /// The projection (configuration plus model).
    pub(crate) projection: P,
    /// Events `0..next_position` are folded into the model.
    pub(crate) next_position: u64,
    /// Events of unknown type passed over since this runner started.
    pub(crate) skipped_events: u64,
    /// Next position when the runner started (0 without a usable snapshot).
    pub(crate) resumed_from: u64,
    /// Next position of the newest snapshot this runner wrote or loaded.
    pub(crate) snapshot_next_position: Option<u64>,
    /// Id of the event at `next_position - 1` (zeros when none), for snapshots.
    pub(crate) last_event_id: [u8; 16],
}

/// A snapshot of a runner's progress counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunnerStatus {
    /// The projection.
    pub projection: &'static str,
    /// Events `0..next_position` are folded into the model.
    pub next_position: u64,
    /// Events of unknown type passed over since this runner started.
    pub skipped_events: u64,
    /// Where this runner started: the snapshot's next position, or 0 on a rebuild.
    pub resumed_from: u64,
    /// Next position of the newest snapshot written or loaded by this runner.
    pub snapshot_next_position: Option<u64>,
}

/// A cheap, cloneable handle for reading a running projection from any task.
///
/// Reads take a shared lock that the runner holds exclusively only while it folds
/// one batch of events, so a read waits at most for one batch.
pub struct ProjectionReader<P> {
    pub(crate) published: Arc<RwLock<Published<P>>>,
    pub(crate) applied: watch::Receiver<u64>,
}

impl<P> Clone for ProjectionReader<P> {
    fn clone(&self) -> Self {
        ProjectionReader {
            published: Arc::clone(&self.published),
            applied: self.applied.clone(),
        }
    }
}

impl<P> std::fmt::Debug for ProjectionReader<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionReader")
            .field("next_position", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionReader<P> {
    /// The projection's name.
    pub fn name(&self) -> &'static str {
        P::NAME
    }

    /// Events `0..next_position` are folded into the published model.
    pub fn next_position(&self) -> u64 {
        self.published.read().next_position
    }

    /// Runs `read` on the projection and the next position it stands at, under the
    /// shared lock. Keep `read` short: it delays the runner's next batch.
    pub fn read<R>(&self, read: impl FnOnce(&P, u64) -> R) -> R {
        let published = self.published.read();
        read(&published.projection, published.next_position)
    }

    /// A copy of the model and the next position it stands at.
    pub fn model(&self) -> (P::Model, u64) {
        self.read(|projection, next_position| (projection.model().clone(), next_position))
    }

    /// The view as JSON and the next position it stands at.
    pub fn view(&self) -> Result<(serde_json::Value, u64), serde_json::Error> {
        self.read(|projection, next_position| Ok((projection.view()?, next_position)))
    }

    /// Progress counters.
    pub fn status(&self) -> RunnerStatus {
        let published = self.published.read();
        RunnerStatus {
            projection: P::NAME,
            next_position: published.next_position,
            skipped_events: published.skipped_events,
            resumed_from: published.resumed_from,
            snapshot_next_position: published.snapshot_next_position,
        }
    }

    /// Waits until the event at `position` is folded into the model (the
    /// read-your-writes wait behind `?min_position=`), at most `timeout` (itself at
    /// most [`WAIT_TIMEOUT_MAX`]). Returns at once when it already is, and with
    /// [`WaitError::Stopped`] when the runner stopped short of it.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), WaitError> {
        let timeout = timeout.min(WAIT_TIMEOUT_MAX);
        let mut applied = self.applied.clone();
        let waited = tokio::time::timeout(timeout, async {
            applied.wait_for(|next| *next > position).await.map(drop)
        })
        .await;
        let next_position = *applied.borrow();
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(WaitError::Stopped {
                projection: P::NAME,
                position,
                next_position,
            }),
            Err(_elapsed) => Err(WaitError::Timeout {
                projection: P::NAME,
                position,
                next_position,
                timeout,
            }),
        }
    }
}
