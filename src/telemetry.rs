//! Logging (tracing) and metrics (Prometheus) setup.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::cli::LogFormat;

/// Installs the tracing subscriber: level from `TUTORLOG_LOG` (or `RUST_LOG`),
/// default `info`; text or JSON lines on stderr.
pub fn init_logging(format: LogFormat) {
    let filter = std::env::var("TUTORLOG_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: logging was already initialised: {error}");
    }
}

/// Latency buckets (seconds) from 50 µs to 10 s: fsyncs sit around 0.3–4 ms here.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
    0.256, 0.512, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the global Prometheus recorder and returns the handle `/metrics` renders.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS_SECONDS)?
        .install_recorder()?;
    describe_metrics();
    Ok(handle)
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "tutorlog_log_appends_total",
        "Appends made durable (one per append call)"
    );
    describe_counter!("tutorlog_log_events_total", "Events made durable");
    describe_counter!(
        "tutorlog_log_fsync_batches_total",
        "Group commits (one fdatasync each)"
    );
    describe_histogram!(
        "tutorlog_log_fsync_seconds",
        Unit::Seconds,
        "fdatasync latency per group commit"
    );
    describe_histogram!(
        "tutorlog_log_commit_seconds",
        Unit::Seconds,
        "Encode + write + fdatasync per group commit"
    );
    describe_histogram!(
        "tutorlog_log_batch_appends",
        "Appends carried by one group commit"
    );
    describe_counter!(
        "tutorlog_log_poisoned_total",
        "Write failures that poisoned the log"
    );
    describe_counter!(
        "tutorlog_log_disk_full_total",
        "Appends refused because the disk was full"
    );
    describe_gauge!(
        "tutorlog_log_last_position",
        "Position of the last durable event (-1 when empty)"
    );
}
