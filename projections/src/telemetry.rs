//! Metric names the runner reports through the `metrics` facade. Every metric
//! carries a `projection` label with [`crate::Projection::NAME`].

/// Counter: events of a type this build does not know, passed over by the runner.
pub const SKIPPED_EVENTS_TOTAL: &str = "tutorlog_projection_skipped_events_total";
/// Gauge: position of the last event the runner folded into the model.
pub const POSITION: &str = "tutorlog_projection_position";
/// Gauge: durable events the runner has not folded yet (after each batch).
pub const LAG_EVENTS: &str = "tutorlog_projection_lag_events";
/// Counter: snapshots written.
pub const SNAPSHOTS_TOTAL: &str = "tutorlog_projection_snapshots_total";
/// Counter: snapshot writes that failed (the runner goes on; a restart replays more).
pub const SNAPSHOT_FAILURES_TOTAL: &str = "tutorlog_projection_snapshot_failures_total";
/// Counter: snapshots found on start but not trusted (corrupt, unreadable, or from
/// another log), after which the projection rebuilt from position 0.
pub const SNAPSHOTS_REJECTED_TOTAL: &str = "tutorlog_projection_snapshots_rejected_total";

/// The label every projection metric carries.
pub const PROJECTION_LABEL: &str = "projection";

/// Registers descriptions for the metrics above with the installed recorder. Call
/// once after installing it (descriptions are optional; the metrics work without).
pub fn describe_metrics() {
    metrics::describe_counter!(
        SKIPPED_EVENTS_TOTAL,
        "Events of an event type unknown to this build, passed over by a projection."
    );
    metrics::describe_gauge!(
        POSITION,
        "Position of the last event folded into the projection's model."
    );
    metrics::describe_gauge!(
        LAG_EVENTS,
        "Durable events the projection has not folded yet."
    );
    metrics::describe_counter!(SNAPSHOTS_TOTAL, "Projection snapshots written.");
    metrics::describe_counter!(
        SNAPSHOT_FAILURES_TOTAL,
        "Projection snapshot writes that failed."
    );
    metrics::describe_counter!(
        SNAPSHOTS_REJECTED_TOTAL,
        "Projection snapshots ignored on start (corrupt, unreadable or from another log)."
    );
}
