//! The runner's metrics, read back through a Prometheus recorder installed for this
//! test binary alone (a recorder is process-global).

mod support;

use support::{append, mixed_event, open_store, options, WAIT};
use tutorlog_projections::{telemetry, ProjectionRunner, StreamStats};
use tutorlog_schemas::NewEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_reports_skips_position_lag_and_snapshots() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install recorder");
    telemetry::describe_metrics();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("log"));
    let runner = ProjectionRunner::start(
        store.clone(),
        StreamStats::new(),
        options(dir.path(), 1_000),
    )
    .await
    .expect("start");
    append(
        &store,
        "s",
        vec![
            NewEvent::raw("future.thing", 1, Vec::new()),
            mixed_event(0),
            NewEvent::raw("future.thing", 1, Vec::new()),
        ],
    )
    .await;
    runner.reader().wait_for(2, WAIT).await.expect("fold");
    runner.shutdown().await.expect("shutdown");
    store.close();

    let rendered = handle.render();
    for line in [
        r#"tutorlog_projection_skipped_events_total{projection="stream_stats"} 2"#,
        r#"tutorlog_projection_position{projection="stream_stats"} 2"#,
        r#"tutorlog_projection_lag_events{projection="stream_stats"} 0"#,
        r#"tutorlog_projection_snapshots_total{projection="stream_stats"} 1"#,
    ] {
        assert!(
            rendered.lines().any(|l| l == line),
            "missing {line:?} in:\n{rendered}"
        );
    }
}
