//! As-of replay: fold a projection from position 0 up to a past position or time
//! (`tutorlog replay --until`), without snapshots and without touching the runner.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use tutorlog_schemas::RecordedEvent;
use tutorlog_store::{EventStore, READ_EVENTS_MAX};

use crate::{
    error::ProjectionError,
    projection::{assert_valid_name, fold_record, Folded, Projection},
};

/// Events read per `read_all` call during a replay.
pub const REPLAY_CHUNK_EVENTS: usize = 1024;

const _: () = assert!(REPLAY_CHUNK_EVENTS <= READ_EVENTS_MAX);

/// Where a replay stops. Both bounds are inclusive and select a prefix of `$all`
/// (`recorded_at` never decreases along `$all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Fold events at positions `0..=position`.
    Position(u64),
    /// Fold events recorded at or before this time.
    Time(DateTime<Utc>),
}

impl Until {
    fn includes(&self, event: &RecordedEvent) -> bool {
        match self {
            Until::Position(position) => event.position <= *position,
            Until::Time(time) => event.recorded_at <= *time,
        }
    }
}

/// Progress reported after each chunk, e.g. for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events `0..next_position` are folded.
    pub next_position: u64,
    /// The replay reads no further than `0..end_position` (the log's length when the
    /// replay started, cut to the position bound). A time bound may stop earlier.
    pub end_position: u64,
}

/// A projection as of a past moment.
#[derive(Debug)]
pub struct Replayed<P> {
    /// The projection with events `0..next_position` folded in.
    pub projection: P,
    /// Events `0..next_position` were folded (the first position past the bound, or
    /// the log's length when the replay started).
    pub next_position: u64,
    /// Events of unknown type passed over.
    pub skipped_events: u64,
}

/// Folds `projection` (its model reset to `Default`) from position 0 up to `until`.
pub async fn replay_until<S: EventStore + ?Sized, P: Projection>(
    store: &S,
    projection: P,
    until: Until,
) -> Result<Replayed<P>, ProjectionError> {
    replay_until_with_progress(store, projection, until, |_| {}).await
}

/// [`replay_until`], calling `progress` after every chunk of
/// [`REPLAY_CHUNK_EVENTS`] events. Events appended after the replay starts are not
/// read.
pub async fn replay_until_with_progress<S: EventStore + ?Sized, P: Projection>(
    store: &S,
    projection: P,
    until: Until,
    progress: impl FnMut(ReplayProgress),
) -> Result<Replayed<P>, ProjectionError> {
    replay_filtered_with_progress(store, projection, until, |_| true, progress).await
}

/// [`replay_until_with_progress`] folding only the events `keep` selects (say, one
/// stream's: `tutorlog replay --stream`). Every event up to the bound is still
/// read and checked for gaps, and `next_position` is the same as an unfiltered
/// replay's, so the result is "the view as of `next_position`, from the kept
/// events only". Passed-over events are not decoded.
pub async fn replay_filtered_with_progress<S: EventStore + ?Sized, P: Projection>(
    store: &S,
    mut projection: P,
    until: Until,
    keep: impl Fn(&RecordedEvent) -> bool,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<Replayed<P>, ProjectionError> {
    assert_valid_name::<P>();
    projection.restore(P::Model::default());
    let log_next_position = store.last_position().map_or(0, |last| last + 1);
    let end_position = match until {
        Until::Position(position) => log_next_position.min(position.saturating_add(1)),
        Until::Time(_) => log_next_position,
    };
    let mut replayed = Replayed {
        projection,
        next_position: 0,
        skipped_events: 0,
    };
    while replayed.next_position < end_position {
        let chunk = read_chunk::<S, P>(store, replayed.next_position, end_position).await?;
        let reached_bound = fold_chunk(&mut replayed, &chunk, until, &keep)?;
        progress(ReplayProgress {
            next_position: replayed.next_position,
            end_position,
        });
        if reached_bound {
            break;
        }
    }
    Ok(replayed)
}

/// Reads the events at `from..end` (at most one chunk), or fails if the log gives
/// none although it reported them durable.
async fn read_chunk<S: EventStore + ?Sized, P: Projection>(
    store: &S,
    from: u64,
    end_position: u64,
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let remaining = usize::try_from(end_position - from).unwrap_or(usize::MAX);
    let chunk = store
        .read_all(from, remaining.min(REPLAY_CHUNK_EVENTS))
        .await
        .map_err(|source| ProjectionError::Store {
            projection: P::NAME,
            source: Arc::new(source),
        })?;
    if chunk.is_empty() {
        return Err(ProjectionError::LogEndedEarly {
            projection: P::NAME,
            expected_last: end_position - 1,
            reached: from,
        });
    }
    Ok(chunk)
}

/// Folds one chunk; returns true once an event past `until` was seen.
fn fold_chunk<P: Projection>(
    replayed: &mut Replayed<P>,
    chunk: &[RecordedEvent],
    until: Until,
    keep: &impl Fn(&RecordedEvent) -> bool,
) -> Result<bool, ProjectionError> {
    for event in chunk {
        if event.position != replayed.next_position {
            return Err(ProjectionError::PositionGap {
                projection: P::NAME,
                expected: replayed.next_position,
                got: event.position,
            });
        }
        if !until.includes(event) {
            return Ok(true);
        }
        if keep(event) && fold_record(&mut replayed.projection, event)? == Folded::Skipped {
            replayed.skipped_events += 1;
        }
        replayed.next_position += 1;
    }
    Ok(false)
}
