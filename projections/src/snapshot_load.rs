//! Loading a snapshot on start, and the checks that decide whether to trust it.
//!
//! A snapshot is trusted only if its file passes every check in
//! [`crate::snapshot`], its model parses, and the log still holds the event the
//! snapshot names as its last one. Anything else is logged, counted in
//! [`crate::telemetry::SNAPSHOTS_REJECTED_TOTAL`] and ignored: the projection
//! rebuilds from position 0.

use std::path::Path;

use tutorlog_store::EventStore;

use crate::{
    error::ProjectionError,
    projection::Projection,
    snapshot::{self, Snapshot},
    telemetry,
};

/// Where a runner starts.
pub(crate) struct Loaded<M> {
    pub(crate) model: M,
    pub(crate) next_position: u64,
    pub(crate) last_event_id: [u8; 16],
    pub(crate) from_snapshot: bool,
}

impl<M: Default> Loaded<M> {
    fn empty() -> Self {
        Loaded {
            model: M::default(),
            next_position: 0,
            last_event_id: [0; 16],
            from_snapshot: false,
        }
    }
}

/// Why reading a snapshot failed: a directory that cannot be created stops the
/// runner (it could never snapshot); an unreadable file is only ignored.
enum ReadFailure {
    Directory(String),
    File(String),
}

/// Creates `dir` if needed and loads `P`'s snapshot from it, or an empty start.
/// Errors only when the directory cannot be created.
pub(crate) async fn load_snapshot<P: Projection, S: EventStore + ?Sized>(
    store: &S,
    dir: &Path,
) -> Result<Loaded<P::Model>, ProjectionError> {
    let directory = dir.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&directory)
            .map_err(|error| ReadFailure::Directory(error.to_string()))?;
        snapshot::read_file(&directory, P::NAME)
            .map_err(|error| ReadFailure::File(error.to_string()))
    })
    .await
    .unwrap_or_else(|error| {
        Err(ReadFailure::File(format!(
            "snapshot read task failed: {error}"
        )))
    });
    let path = snapshot::snapshot_path(dir, P::NAME);
    let bytes = match read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Loaded::empty()),
        Err(ReadFailure::Directory(reason)) => return Err(snapshot_dir_error::<P>(dir, reason)),
        Err(ReadFailure::File(reason)) => return Ok(rejected::<P>(&path, &reason)),
    };
    match trusted::<P, S>(store, bytes).await {
        Ok(loaded) => Ok(loaded),
        Err(reason) => Ok(rejected::<P>(&path, &reason)),
    }
}

fn snapshot_dir_error<P: Projection>(dir: &Path, reason: String) -> ProjectionError {
    ProjectionError::Snapshot {
        projection: P::NAME,
        path: dir.to_owned(),
        reason: format!("cannot create snapshot directory: {reason}"),
    }
}

fn rejected<P: Projection>(path: &Path, reason: &str) -> Loaded<P::Model> {
    tracing::warn!(
        projection = P::NAME,
        path = %path.display(),
        reason,
        "ignoring snapshot; rebuilding the projection from the log"
    );
    metrics::counter!(telemetry::SNAPSHOTS_REJECTED_TOTAL, telemetry::PROJECTION_LABEL => P::NAME)
        .increment(1);
    Loaded::empty()
}

async fn trusted<P: Projection, S: EventStore + ?Sized>(
    store: &S,
    bytes: Vec<u8>,
) -> Result<Loaded<P::Model>, String> {
    let snapshot =
        snapshot::decode_owned(P::NAME, P::VERSION, bytes).map_err(|reason| reason.to_string())?;
    matches_log(store, &snapshot).await?;
    let (next_position, last_event_id) = (snapshot.next_position, snapshot.last_event_id);
    // Parsing a large model takes a while: off the async threads, so the daemon's
    // projections load their snapshots side by side.
    let model = tokio::task::spawn_blocking(move || {
        serde_json::from_slice::<P::Model>(&snapshot.model_json)
            .map_err(|error| format!("model does not parse: {error}"))
    })
    .await
    .map_err(|error| format!("snapshot parse task failed: {error}"))??;
    Ok(Loaded {
        model,
        next_position,
        last_event_id,
        from_snapshot: true,
    })
}

/// Checks that the log holds the snapshot's last event, so a snapshot from another
/// log (or a log that lost its tail) is never applied on top of this one.
async fn matches_log<S: EventStore + ?Sized>(store: &S, snapshot: &Snapshot) -> Result<(), String> {
    let Some(last_position) = snapshot.next_position.checked_sub(1) else {
        return if snapshot.last_event_id == [0; 16] {
            Ok(())
        } else {
            Err("snapshot at position 0 names a last event".into())
        };
    };
    let log_next_position = store.last_position().map_or(0, |last| last + 1);
    if snapshot.next_position > log_next_position {
        return Err(format!(
            "snapshot is at next position {}, the log ends before {log_next_position}",
            snapshot.next_position
        ));
    }
    let events = store
        .read_all(last_position, 1)
        .await
        .map_err(|error| format!("cannot read the snapshot's last event: {error}"))?;
    match events.first() {
        Some(event)
            if event.position == last_position
                && event.event_id.as_bytes() == &snapshot.last_event_id =>
        {
            Ok(())
        }
        Some(event) => Err(format!(
            "the log's event at position {} ({}) is not the snapshot's last event",
            event.position, event.event_id
        )),
        None => Err(format!("the log has no event at position {last_position}")),
    }
}
