//! tutorlog projections: read models folded from the event log.
//!
//! - [`Projection`]: a pure, infallible fold of events into a serializable model.
//! - [`ProjectionRunner`]: keeps one projection up to date by tailing `$all`,
//!   snapshots it (one checksummed file per projection, replaced atomically), and
//!   resumes from the snapshot on restart without applying any event twice.
//! - [`ProjectionReader`]: lock-light reads of the published model, and
//!   [`ProjectionReader::wait_for`] for read-your-writes (`?min_position=`).
//! - [`replay_until`]: the same fold as of a past position or time.
//! - [`StreamStats`]: the built-in `stream_stats` read model.
//! - [`Mastery`]: per learner × focus area mastery (`mastery`).
//! - [`AlgoRuns`]: the algorithm run audit table (`algo_runs`).
//! - [`Spend`]: money per provider × month, per user, session and model (`spend`).
//! - [`ProviderHealth`]: circuit state, error rate, latency percentiles
//!   (`provider_health`).
//! - [`Benchmarks`]: the latest benchmark result per provider × category
//!   (`benchmarks`).
//! - [`Routing`]: routing performance per provider × model × category × day
//!   (`routing`).
//! - [`Narrow`]: a view restricted to one user or provider (`replay --user/--provider`).
//!
//! Decoding policy (runner and replay alike): an event whose type this build does
//! not know is passed over (counted in
//! [`telemetry::SKIPPED_EVENTS_TOTAL`] by the runner) after
//! [`Projection::apply_raw`] saw it; any other decode error stops the fold with
//! [`ProjectionError::Decode`], so a projection never silently diverges.

pub mod algo_runs;
pub mod benchmarks;
mod error;
mod feed;
pub mod mastery;
mod narrow;
mod projection;
pub mod provider_health;
mod reader;
mod replay;
pub mod ring;
pub mod routing;
mod runner;
mod runner_task;
#[cfg(test)]
mod scale_tests;
pub mod snapshot;
mod snapshot_load;
pub mod spend;
pub mod stream_stats;
pub mod telemetry;
#[cfg(test)]
mod test_support;

pub use algo_runs::{AlgoRunFilter, AlgoRunRow, AlgoRuns};
pub use benchmarks::{BenchmarkResult, Benchmarks};
pub use error::{ProjectionError, WaitError};
pub use feed::{Feed, FeedBuilder};
pub use mastery::{Mastery, MasteryRow};
pub use narrow::{FilterKind, Narrow, ViewFilter};
pub use projection::{is_valid_name, Projection, PROJECTION_NAME_BYTES_MAX};
pub use provider_health::{CircuitState, ProviderHealth, ProviderHealthView};
pub use reader::{ProjectionReader, RunnerStatus, WAIT_TIMEOUT_MAX};
pub use replay::{
    replay_filtered_with_progress, replay_until, replay_until_with_progress, ReplayProgress,
    Replayed, Until, REPLAY_CHUNK_EVENTS,
};
pub use routing::Routing;
pub use runner::{
    ProjectionRunner, RunnerExit, RunnerOptions, StopReason, BATCH_EVENTS_MAX,
    SNAPSHOT_INTERVAL_MIN,
};
pub use spend::Spend;
pub use stream_stats::{StreamStats, StreamStatsModel};
