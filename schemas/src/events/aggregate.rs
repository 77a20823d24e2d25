//! Events about aggregates themselves rather than a domain: stream
//! `snapshot-{stream}` (one per snapshotted aggregate stream, e.g.
//! `snapshot-learner-ada`).

use serde::{Deserialize, Serialize};

/// Prefix of the stream holding the snapshots of another stream:
/// `snapshot-{stream}`.
pub const SNAPSHOT_STREAM_PREFIX: &str = "snapshot-";

/// The stream holding the snapshots of `stream`, e.g. `snapshot-learner-ada`.
pub fn snapshot_stream_name(stream: &str) -> String {
    format!("{SNAPSHOT_STREAM_PREFIX}{stream}")
}

/// `aggregate.snapshot` (v1): an aggregate's folded state as of one revision of its
/// stream, so that a restart replays only the events after it.
///
/// A snapshot is a cache, never a source of truth: the stream it covers stays
/// complete, and a reader that cannot use a snapshot (another `format`, a state that
/// does not decode, a `revision`/`position` that does not match the stream) ignores
/// it and replays the whole stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateSnapshot {
    /// The stream whose state this is, e.g. `learner-ada`.
    pub stream: String,
    /// The last revision of `stream` folded into `state_json`.
    pub revision: u64,
    /// The `$all` position of the event at `revision` (checked when loading, so a
    /// snapshot never applies to a stream that was rewritten under it).
    pub position: u64,
    /// The version of the state's shape, owned by the decider; a reader expecting
    /// another version ignores the snapshot.
    pub format: u32,
    /// The state as JSON (deterministic: the decider's serde encoding). A JSON
    /// string, not a `serde_json::Value`, because the log codec cannot carry one.
    pub state_json: String,
}
