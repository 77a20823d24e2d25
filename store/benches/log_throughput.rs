//! Durable append, bulk append and replay throughput of the embedded log, each figure
//! a ratio to a physical baseline (write + `fdatasync` on a preallocated file)
//! measured in the same run. See `BENCHMARKS.md` at the repository root.
//!
//! ```text
//! cargo bench -p tutorlog-store --bench log_throughput -- [--events N] [--seconds S]
//!     [--dir PATH] [--quick] [--only raw|append|bulk|replay] [--writers 1,8,64,512]
//! ```

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use tutorlog_schemas::codec::{self, RecordBody, RECORD_FORMAT};
use tutorlog_store::{
    embedded::frame::{read_frame, Frame},
    EmbeddedStore, EventStore, ExpectedRevision, NewEvent, StoreOptions,
};

/// Payload bytes of every benchmark event (the "record size" of the targets).
const RECORD_BYTES: usize = 256;
/// Records per raw write + `fdatasync` cycle.
const RAW_BATCHES: [usize; 5] = [1, 8, 64, 512, 4096];
/// Default concurrent single-event writers.
const WRITERS: [usize; 4] = [1, 8, 64, 512];
/// Concurrent bulk appenders measured.
const BULK_WRITERS: [usize; 2] = [1, 4];
/// Events per bulk append.
const BULK_EVENTS: usize = 1000;
/// Events per `read_all` call during replay.
const READ_CHUNK: usize = 10_000;
/// Write size of the raw bandwidth measurement (each write followed by `fdatasync`).
const RAW_BANDWIDTH_CHUNK: usize = 8 * 1024 * 1024;
/// Size of the preallocated raw baseline file; cycles wrap around inside it.
const RAW_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Event type of every benchmark event.
const EVENT_TYPE: &str = "bench.event";
/// Targets from the issue.
const GROUP_COMMIT_TARGET: f64 = 0.8;
const P99_TARGET_CYCLES: f64 = 2.0;
const BULK_TARGET: f64 = 0.5;
const REPLAY_TARGET_EVENTS_PER_S: f64 = 5_000_000.0;

struct Args {
    events: u64,
    seconds: f64,
    dir: Option<PathBuf>,
    only: Option<String>,
    writers: Vec<usize>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        seconds: 5.0,
        dir: None,
        only: None,
        writers: WRITERS.to_vec(),
    };
    let mut quick = false;
    let mut events_given = false;
    let mut seconds_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--events" => {
                args.events = parse_count(&value("--events"));
                events_given = true;
            }
            "--seconds" => {
                args.seconds = value("--seconds")
                    .parse()
                    .unwrap_or_else(|_| fail("--seconds needs a number"));
                seconds_given = true;
            }
            "--dir" => args.dir = Some(PathBuf::from(value("--dir"))),
            "--only" => args.only = Some(value("--only")),
            "--writers" => {
                args.writers = value("--writers")
                    .split(',')
                    .map(|w| parse_count(w) as usize)
                    .collect();
            }
            "--quick" => quick = true,
            // `cargo bench` passes `--bench`; filters are not supported.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "log_throughput [--events N] [--seconds S] [--dir PATH] [--quick] \
                     [--only raw|append|bulk|replay] [--writers 1,8,64,512]"
                );
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if quick {
        if !events_given {
            args.events = 200_000;
        }
        if !seconds_given {
            args.seconds = 1.0;
        }
    }
    args
}

fn parse_count(text: &str) -> u64 {
    text.replace('_', "")
        .parse()
        .unwrap_or_else(|_| fail(&format!("{text:?} is not a count")))
}

fn fail(message: &str) -> ! {
    eprintln!("log_throughput: {message}");
    std::process::exit(2)
}

fn wants(args: &Args, phase: &str) -> bool {
    args.only.as_deref().is_none_or(|only| only == phase)
}

/// Sorted latencies with percentile lookup.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies(samples)
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Filesystem type of `dir` as `stat -f` names it.
fn filesystem_type(dir: &Path) -> String {
    Command::new("df")
        .args(["--output=fstype"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Flushes other dirty data (deleted logs, the last measurement's tail) so it does
/// not land inside the next measurement.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(300));
}

// ---------------------------------------------------------------------------
// Raw baseline

/// A zero-filled, synced file: writes into it never grow it, so `fdatasync` has no
/// metadata to commit (the same state the log's preallocated segments are in).
fn preallocated_file(path: &Path, bytes: u64) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("creating the raw baseline file");
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let mut offset = 0u64;
    while offset < bytes {
        let n = (bytes - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset)
            .expect("zero-filling the raw baseline file");
        offset += n as u64;
    }
    file.sync_all().expect("syncing the raw baseline file");
    file
}

struct RawCycles {
    bytes_per_cycle: usize,
    cycles: u64,
    elapsed: Duration,
    latencies: Latencies,
}

impl RawCycles {
    fn cycles_per_s(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }

    fn bytes_per_s(&self) -> f64 {
        self.cycles_per_s() * self.bytes_per_cycle as f64
    }

    fn mean_cycle(&self) -> Duration {
        self.elapsed / (self.cycles.max(1) as u32)
    }
}

/// `pwrite` of `bytes_per_cycle` then `fdatasync`, sequentially through the
/// preallocated file (wrapping), for `seconds` (at least 20 cycles).
fn raw_cycles(file: &File, bytes_per_cycle: usize, seconds: f64) -> RawCycles {
    let data: Vec<u8> = (0..bytes_per_cycle).map(|i| (i % 251) as u8 + 1).collect();
    let cycle = |offset: &mut u64| {
        if *offset + bytes_per_cycle as u64 > RAW_FILE_BYTES {
            *offset = 0;
        }
        file.write_all_at(&data, *offset).expect("raw pwrite");
        file.sync_data().expect("raw fdatasync");
        *offset += bytes_per_cycle as u64;
    };
    let mut offset = 0u64;
    // Warm-up.
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < (seconds / 10.0).min(0.5) {
        cycle(&mut offset);
    }
    let mut latencies = Vec::new();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    while start.elapsed() < limit || latencies.len() < 20 {
        let t = Instant::now();
        cycle(&mut offset);
        latencies.push(t.elapsed());
    }
    RawCycles {
        bytes_per_cycle,
        cycles: latencies.len() as u64,
        elapsed: start.elapsed(),
        latencies: Latencies::new(latencies),
    }
}

struct Raw {
    /// One entry per [`RAW_BATCHES`].
    batches: Vec<(usize, RawCycles)>,
    bandwidth: RawCycles,
    /// The preallocated file, kept for the raw slices paired with each measurement.
    file: File,
}

impl Raw {
    fn cycle_1(&self) -> Duration {
        self.batches[0].1.mean_cycle()
    }

    fn bandwidth(&self) -> f64 {
        self.bandwidth.bytes_per_s()
    }

    /// Records/s of raw cycles of `w` records, interpolated (log-log) between the
    /// measured batch sizes.
    fn records_per_s_at_batch(&self, w: usize) -> f64 {
        let points: Vec<(f64, f64)> = self
            .batches
            .iter()
            .map(|(b, c)| ((*b as f64).ln(), (c.cycles_per_s() * *b as f64).ln()))
            .collect();
        let x = (w as f64).ln();
        for pair in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if x <= x1 {
                let t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
                return (y0 + t * (y1 - y0)).exp();
            }
        }
        points.last().map_or(0.0, |p| p.1.exp())
    }
}

fn measure_raw(dir: &Path, seconds: f64) -> Raw {
    let path = dir.join("raw-baseline.dat");
    let file = preallocated_file(&path, RAW_FILE_BYTES);
    let batches = RAW_BATCHES
        .iter()
        .map(|&b| (b, raw_cycles(&file, b * RECORD_BYTES, seconds)))
        .collect();
    let bandwidth = raw_cycles(&file, RAW_BANDWIDTH_CHUNK, seconds);
    Raw {
        batches,
        bandwidth,
        file,
    }
}

impl RawCycles {
    fn merge(parts: Vec<RawCycles>) -> RawCycles {
        let bytes_per_cycle = parts.first().map_or(0, |p| p.bytes_per_cycle);
        let mut latencies = Vec::new();
        let (mut cycles, mut elapsed) = (0, Duration::ZERO);
        for part in parts {
            cycles += part.cycles;
            elapsed += part.elapsed;
            latencies.extend(part.latencies.0);
        }
        RawCycles {
            bytes_per_cycle,
            cycles,
            elapsed,
            latencies: Latencies::new(latencies),
        }
    }
}

// ---------------------------------------------------------------------------
// Store metrics probe: counts group commits and sums the store's own timings.

mod probe {
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    };

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    #[derive(Default)]
    struct Sum(AtomicU64);

    impl CounterFn for Sum {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }

        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    /// Keeps every sample (seconds); snapshots take the ones since the last one.
    #[derive(Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().expect("probe lock").push(value);
        }
    }

    #[derive(Default)]
    struct Probe {
        batches: Arc<Sum>,
        appends: Arc<Sum>,
        events: Arc<Sum>,
        zero_fills_in_commit: Arc<Sum>,
        zero_fills_ahead: Arc<Sum>,
        fsync: Arc<Samples>,
        commit: Arc<Samples>,
    }

    static PROBE: std::sync::OnceLock<&'static Probe> = std::sync::OnceLock::new();

    impl Recorder for &'static Probe {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            match key.name() {
                "tutorlog_log_fsync_batches_total" => Counter::from_arc(Arc::clone(&self.batches)),
                "tutorlog_log_appends_total" => Counter::from_arc(Arc::clone(&self.appends)),
                "tutorlog_log_events_total" => Counter::from_arc(Arc::clone(&self.events)),
                "tutorlog_log_zero_fills_in_commit_total" => {
                    Counter::from_arc(Arc::clone(&self.zero_fills_in_commit))
                }
                "tutorlog_log_zero_fills_ahead_total" => {
                    Counter::from_arc(Arc::clone(&self.zero_fills_ahead))
                }
                _ => Counter::noop(),
            }
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            match key.name() {
                "tutorlog_log_fsync_seconds" => Histogram::from_arc(Arc::clone(&self.fsync)),
                "tutorlog_log_commit_seconds" => Histogram::from_arc(Arc::clone(&self.commit)),
                _ => Histogram::noop(),
            }
        }
    }

    /// Installs the probe as the global metrics recorder.
    pub fn install() {
        let probe: &'static Probe = PROBE.get_or_init(|| Box::leak(Box::default()));
        let _already_installed = metrics::set_global_recorder(probe);
    }

    /// What the store reported between two snapshots.
    #[derive(Debug, Default, Clone)]
    pub struct Window {
        pub batches: u64,
        pub appends: u64,
        pub events: u64,
        /// Zero-fill steps done inside a group commit (it caught up with the margin).
        pub zero_fills_in_commit: u64,
        /// Zero-fill steps done ahead, between commits.
        pub zero_fills_ahead: u64,
        /// Store-side `fdatasync` durations, seconds, sorted.
        pub fsync: Vec<f64>,
        /// Whole group-commit durations (encode + write + sync + publish), seconds.
        pub commit: Vec<f64>,
    }

    impl Window {
        pub fn percentile(values: &[f64], p: f64) -> f64 {
            if values.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        }
    }

    /// Counters are cumulative; sample lists are drained.
    pub fn snapshot() -> Window {
        let Some(probe) = PROBE.get() else {
            return Window::default();
        };
        let take = |s: &Samples| {
            let mut v = std::mem::take(&mut *s.0.lock().expect("probe lock"));
            v.sort_by(f64::total_cmp);
            v
        };
        Window {
            batches: probe.batches.0.load(Ordering::Relaxed),
            appends: probe.appends.0.load(Ordering::Relaxed),
            events: probe.events.0.load(Ordering::Relaxed),
            zero_fills_in_commit: probe.zero_fills_in_commit.0.load(Ordering::Relaxed),
            zero_fills_ahead: probe.zero_fills_ahead.0.load(Ordering::Relaxed),
            fsync: take(&probe.fsync),
            commit: take(&probe.commit),
        }
    }

    /// `after - before` for the counters; the samples of `after`.
    pub fn between(before: &Window, after: Window) -> Window {
        Window {
            batches: after.batches - before.batches,
            appends: after.appends - before.appends,
            events: after.events - before.events,
            zero_fills_in_commit: after.zero_fills_in_commit - before.zero_fills_in_commit,
            zero_fills_ahead: after.zero_fills_ahead - before.zero_fills_ahead,
            ..after
        }
    }
}

// ---------------------------------------------------------------------------
// tutorlog

fn payload() -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; RECORD_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Stream names have a fixed width so every frame has the same size.
fn stream_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// On-disk bytes of one benchmark event (frame header + record body).
fn frame_bytes() -> usize {
    let body = RecordBody {
        format: RECORD_FORMAT,
        prev_hash: [0; 32],
        position: 0,
        revision: 0,
        recorded_at_micros: 0,
        event_id: [0; 16],
        correlation_id: None,
        causation_id: None,
        schema_version: 1,
        stream: stream_name("w", 0),
        event_type: EVENT_TYPE.into(),
        payload: vec![0; RECORD_BYTES],
    };
    codec::encode_record(&body)
        .expect("encoding a sample record")
        .len()
        + tutorlog_store::embedded::frame::FRAME_HEADER_BYTES
}

fn open_store(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open_with(dir, StoreOptions::default()).expect("opening the store")
}

struct AppendRun {
    events: u64,
    elapsed: Duration,
    latencies: Latencies,
    /// What the store reported during the measured window.
    store: probe::Window,
}

impl AppendRun {
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// `writers` tasks, each appending `per_call` events per call to its own stream in a
/// loop; a warm-up, then `seconds` measured. Latency is per `append` call.
async fn run_appenders(
    store: &EmbeddedStore,
    writers: usize,
    per_call: usize,
    seconds: f64,
    prefix: &str,
) -> AppendRun {
    let payload = Arc::new(payload());
    let warm = Duration::from_secs_f64((seconds / 5.0).clamp(0.2, 1.0));
    let begin = Instant::now();
    let measure_from = begin + warm;
    let measure_to = measure_from + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let store = store.clone();
        let payload = Arc::clone(&payload);
        let stream = stream_name(prefix, w);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut last_end = measure_from;
            loop {
                let events: Vec<NewEvent> = (0..per_call)
                    .map(|_| NewEvent::raw(EVENT_TYPE, 1, payload.to_vec()))
                    .collect();
                let started = Instant::now();
                if started >= measure_to {
                    break;
                }
                store
                    .append(&stream, ExpectedRevision::Any, events)
                    .await
                    .expect("append");
                let ended = Instant::now();
                if started >= measure_from {
                    latencies.push(ended - started);
                    last_end = ended;
                }
            }
            (latencies, last_end)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = probe::snapshot();
    tokio::time::sleep_until(measure_to.into()).await;
    let store_window = probe::between(&before, probe::snapshot());
    let mut all = Vec::new();
    let mut last_end = measure_from;
    for task in tasks {
        let (latencies, end) = task.await.expect("appender task");
        all.extend(latencies);
        last_end = last_end.max(end);
    }
    AppendRun {
        events: all.len() as u64 * per_call as u64,
        elapsed: last_end - measure_from,
        latencies: Latencies::new(all),
        store: store_window,
    }
}

impl AppendRun {
    fn merge(parts: Vec<AppendRun>) -> AppendRun {
        let mut merged = AppendRun {
            events: 0,
            elapsed: Duration::ZERO,
            latencies: Latencies(Vec::new()),
            store: probe::Window::default(),
        };
        let mut latencies = Vec::new();
        for part in parts {
            merged.events += part.events;
            merged.elapsed += part.elapsed;
            latencies.extend(part.latencies.0);
            merged.store.batches += part.store.batches;
            merged.store.appends += part.store.appends;
            merged.store.events += part.store.events;
            merged.store.zero_fills_in_commit += part.store.zero_fills_in_commit;
            merged.store.zero_fills_ahead += part.store.zero_fills_ahead;
            merged.store.fsync.extend(part.store.fsync);
            merged.store.commit.extend(part.store.commit);
        }
        merged.store.fsync.sort_by(f64::total_cmp);
        merged.store.commit.sort_by(f64::total_cmp);
        merged.latencies = Latencies::new(latencies);
        merged
    }
}

/// A store measurement interleaved with raw cycles on the baseline file: slices of
/// about one second, raw then store, so both see the same disk weather.
struct Paired {
    run: AppendRun,
    raw: RawCycles,
    /// (store events/s, raw cycles/s) of each slice.
    slices: Vec<(f64, f64)>,
}

fn paired(
    runtime: &tokio::runtime::Runtime,
    raw_file: &File,
    raw_bytes_per_cycle: usize,
    log_dir: &Path,
    writers: usize,
    per_call: usize,
    seconds: f64,
) -> Paired {
    let slices = seconds.ceil().max(1.0) as usize;
    let slice = seconds / slices as f64;
    settle();
    let (runs, raws) = runtime.block_on(async {
        let store = open_store(log_dir);
        let (mut runs, mut raws) = (Vec::new(), Vec::new());
        for _ in 0..slices {
            // Blocking on purpose: the store is idle between slices.
            raws.push(raw_cycles(raw_file, raw_bytes_per_cycle, slice));
            runs.push(run_appenders(&store, writers, per_call, slice, "w").await);
        }
        store.close();
        (runs, raws)
    });
    let _ = std::fs::remove_dir_all(log_dir);
    let slices = runs
        .iter()
        .zip(&raws)
        .map(|(r, c)| (r.events_per_s(), c.cycles_per_s()))
        .collect();
    Paired {
        run: AppendRun::merge(runs),
        raw: RawCycles::merge(raws),
        slices,
    }
}

/// "lo-hi" of per-slice values.
fn spread(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => format!("{lo:.2}-{hi:.2}"),
        _ => "-".into(),
    }
}

struct ReplayRun {
    events: u64,
    write_elapsed: Duration,
    open_elapsed: Duration,
    raw_read: Duration,
    raw_scan: Duration,
    read_all: Duration,
    read_all_touch: Duration,
    read_all_blocking: Duration,
    read_all_parallel: Duration,
    touch_sum: u64,
    bytes_on_disk: u64,
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("listing the log")
        .map(|e| e.expect("listing the log").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Reads every segment file in 8 MiB `pread`s; optionally walks and CRC-checks every
/// frame. Returns (elapsed, frames seen).
fn read_segments(dir: &Path, scan: bool) -> (Duration, u64) {
    let files = segment_files(dir);
    let start = Instant::now();
    let mut frames = 0u64;
    let mut buf = vec![0u8; 8 * 1024 * 1024];
    for path in files {
        let file = File::open(&path).expect("opening a segment");
        let len = file.metadata().expect("segment metadata").len();
        let mut offset = 0u64;
        // Frames straddle chunk boundaries: carry the unread tail forward.
        let mut carry = 0usize;
        while offset < len {
            let want = (buf.len() - carry).min((len - offset) as usize);
            file.read_exact_at(&mut buf[carry..carry + want], offset)
                .expect("reading a segment");
            offset += want as u64;
            let filled = carry + want;
            if scan {
                let mut at = 0usize;
                let mut end = false;
                loop {
                    match read_frame(&buf[..filled], at) {
                        Frame::Record { next, .. } => {
                            frames += 1;
                            at = next;
                        }
                        // End of data (zero-filled tail), or a frame cut by the chunk.
                        Frame::End => {
                            end = at < filled;
                            break;
                        }
                        Frame::Bad { .. } => break,
                    }
                }
                if end {
                    break;
                }
                buf.copy_within(at..filled, 0);
                carry = filled - at;
            } else {
                std::hint::black_box(&buf);
            }
        }
    }
    (start.elapsed(), frames)
}

async fn run_replay(dir: &Path, events: u64) -> ReplayRun {
    let log_dir = dir.join("replay");
    // Write (not timed for the target): concurrent bulk appends of 1,000 events.
    let write_started = Instant::now();
    {
        let store = open_store(&log_dir);
        let writers = 4u64;
        let calls_total = events.div_ceil(BULK_EVENTS as u64);
        let payload = Arc::new(payload());
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            let payload = Arc::clone(&payload);
            let stream = stream_name("r", w as usize);
            let calls: Vec<u64> = (w..calls_total).step_by(writers as usize).collect();
            tasks.push(tokio::spawn(async move {
                for call in calls {
                    let first = call * BULK_EVENTS as u64;
                    let n = (events - first).min(BULK_EVENTS as u64) as usize;
                    let batch = (0..n)
                        .map(|_| NewEvent::raw(EVENT_TYPE, 1, payload.to_vec()))
                        .collect();
                    store
                        .append(&stream, ExpectedRevision::Any, batch)
                        .await
                        .expect("replay fill append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("replay fill task");
        }
        store.close();
    }
    let write_elapsed = write_started.elapsed();
    let bytes_on_disk = segment_files(&log_dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();

    // Open = recovery: every record CRC-checked, decoded and hash-chained.
    let open_started = Instant::now();
    let store = open_store(&log_dir);
    let open_elapsed = open_started.elapsed();
    assert_eq!(
        store.last_position(),
        events.checked_sub(1),
        "replay log size"
    );

    let (raw_read, _) = read_segments(&log_dir, false);
    let (raw_scan, frames) = read_segments(&log_dir, true);
    assert_eq!(frames, events, "raw scan saw every frame");

    // read_all as a projection catching up would call it.
    let started = Instant::now();
    let mut position = 0u64;
    loop {
        let chunk = store
            .read_all(position, READ_CHUNK)
            .await
            .expect("read_all");
        let Some(last) = chunk.last() else { break };
        position = last.position + 1;
        std::hint::black_box(&chunk);
    }
    let read_all = started.elapsed();
    assert_eq!(position, events, "read_all saw every event");

    // read_all plus a touch of every payload byte and of the stream name.
    let started = Instant::now();
    let mut position = 0u64;
    let mut touch_sum = 0u64;
    loop {
        let chunk = store
            .read_all(position, READ_CHUNK)
            .await
            .expect("read_all");
        let Some(last) = chunk.last() else { break };
        position = last.position + 1;
        for event in &chunk {
            touch_sum = touch_sum.wrapping_add(
                event
                    .payload
                    .iter()
                    .fold(event.stream.len() as u64, |a, &b| {
                        a.wrapping_add(u64::from(b))
                    }),
            );
        }
    }
    let read_all_touch = started.elapsed();

    // Two chunks in flight: what a catch-up loop can do with two cores.
    let started = Instant::now();
    let mut position = 0u64;
    while position < events {
        let (a, b) = tokio::join!(
            store.read_all(position, READ_CHUNK),
            store.read_all(position + READ_CHUNK as u64, READ_CHUNK)
        );
        let (a, b) = (a.expect("read_all"), b.expect("read_all"));
        let Some(last) = b.last().or(a.last()) else {
            break;
        };
        position = last.position + 1;
        std::hint::black_box((&a, &b));
    }
    let read_all_parallel = started.elapsed();
    assert_eq!(position, events, "parallel read_all saw every event");

    // The synchronous entry point (no spawn_blocking hop per chunk).
    let started = Instant::now();
    let mut position = 0u64;
    loop {
        let chunk = store
            .read_all_blocking(position, READ_CHUNK)
            .expect("read_all_blocking");
        let Some(last) = chunk.last() else { break };
        position = last.position + 1;
        std::hint::black_box(&chunk);
    }
    let read_all_blocking = started.elapsed();
    store.close();
    drop(store);
    let _ = std::fs::remove_dir_all(&log_dir);
    ReplayRun {
        events,
        write_elapsed,
        open_elapsed,
        raw_read,
        raw_scan,
        read_all,
        read_all_touch,
        read_all_blocking,
        read_all_parallel,
        touch_sum,
        bytes_on_disk,
    }
}

// ---------------------------------------------------------------------------
// Report

/// Load average and CPU pressure, to judge how shared the machine was.
fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    let some = pressure
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("-");
    format!(
        "loadavg {load}; cpu pressure {some}; {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn mib(x: f64) -> String {
    format!("{:.1} MiB/s", x / (1024.0 * 1024.0))
}

fn main() {
    let args = parse_args();
    let base = match &args.dir {
        Some(dir) => dir.clone(),
        // Benches get a scratch directory inside target/, on the checkout's
        // filesystem (never /tmp, which may be tmpfs).
        None => option_env!("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    std::fs::create_dir_all(&base).expect("creating the bench directory");
    let scratch = tempfile::Builder::new()
        .prefix("tutorlog-bench-")
        .tempdir_in(&base)
        .expect("creating a scratch directory");
    let dir = scratch.path().to_path_buf();
    let fs_type = filesystem_type(&dir);
    if fs_type == "tmpfs" || fs_type == "ramfs" {
        eprintln!(
            "warning: {} is on {fs_type}: fdatasync is a no-op there, the figures mean nothing",
            dir.display()
        );
    }
    let frame = frame_bytes();
    println!("tutorlog log_throughput");
    println!(
        "dir {} ({fs_type}); {RECORD_BYTES}-byte payloads, {frame} bytes per event on disk; \
         {:.1} s per measurement; replay of {} events",
        dir.display(),
        args.seconds,
        args.events
    );

    println!("machine: {}", machine_load());
    probe::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");

    // Every tutorlog figure needs the baseline, so it is always measured.
    let raw = measure_raw(&dir, args.seconds.min(3.0));
    println!();
    println!("== raw baseline: pwrite + fdatasync on a preallocated file ==");
    println!(
        "{:>8} {:>10} {:>12} {:>14} {:>10} {:>10}",
        "records", "bytes", "cycles/s", "records/s", "p50 ms", "p99 ms"
    );
    for (batch, cycles) in &raw.batches {
        println!(
            "{:>8} {:>10} {:>12.0} {:>14} {:>10.3} {:>10.3}",
            batch,
            cycles.bytes_per_cycle,
            cycles.cycles_per_s(),
            rate(cycles.cycles_per_s() * *batch as f64),
            ms(cycles.latencies.percentile(50.0)),
            ms(cycles.latencies.percentile(99.0)),
        );
    }
    println!(
        "sequential bandwidth ({} MiB pwrite + fdatasync): {} ({:.0} cycles/s, p50 {:.2} ms)",
        RAW_BANDWIDTH_CHUNK >> 20,
        mib(raw.bandwidth()),
        raw.bandwidth.cycles_per_s(),
        ms(raw.bandwidth.latencies.percentile(50.0)),
    );
    let bw_records = raw.bandwidth() / RECORD_BYTES as f64;
    println!(
        "raw cycle (1 record, mean) = {:.3} ms; raw bandwidth / {RECORD_BYTES} B = {} records/s",
        ms(raw.cycle_1()),
        rate(bw_records)
    );

    let mut internals: Vec<(String, AppendRun)> = Vec::new();
    if wants(&args, "append") {
        println!();
        println!("== durable single-event appends, W concurrent writers (own stream each) ==");
        println!(
            "{:>5} {:>9} {:>8} {:>10} {:>10} {:>6} {:>10} {:>9} {:>6} {:>8} {:>8} {:>8} {:>5} {:>5}",
            "W",
            "raw cyc/s",
            "raw p99",
            "events/s",
            "target",
            "ratio",
            "slices",
            "rawbatchW",
            "ratio",
            "p50 ms",
            "p99 ms",
            "p99/cyc",
            "tput",
            "p99"
        );
        for &w in &args.writers {
            let log_dir = dir.join(format!("append-{w}"));
            let p = paired(
                &runtime,
                &raw.file,
                RECORD_BYTES,
                &log_dir,
                w,
                1,
                args.seconds,
            );
            let limit_of = |cycles_per_s: f64| (w as f64 * cycles_per_s).min(bw_records);
            let limit = limit_of(p.raw.cycles_per_s());
            let ratio = p.run.events_per_s() / limit;
            // Informational: raw cycles that carry W records each (start-of-run table).
            let raw_w = raw.records_per_s_at_batch(w).min(bw_records);
            let p99 = p.run.latencies.percentile(99.0);
            let p99_cycles = p99.as_secs_f64() / p.raw.mean_cycle().as_secs_f64();
            println!(
                "{:>5} {:>9.0} {:>8.3} {:>10} {:>10} {:>6.2} {:>10} {:>9} {:>6.2} {:>8.3} {:>8.3} {:>8.2} {:>5} {:>5}",
                w,
                p.raw.cycles_per_s(),
                ms(p.raw.latencies.percentile(99.0)),
                rate(p.run.events_per_s()),
                rate(limit),
                ratio,
                spread(p.slices.iter().map(|&(e, c)| e / limit_of(c))),
                rate(raw_w),
                p.run.events_per_s() / raw_w,
                ms(p.run.latencies.percentile(50.0)),
                ms(p99),
                p99_cycles,
                verdict(ratio >= GROUP_COMMIT_TARGET),
                verdict(p99_cycles <= P99_TARGET_CYCLES),
            );
            internals.push((format!("W={w}"), p.run));
        }
        println!(
            "raw cyc/s = 1-record pwrite+fdatasync cycles/s measured in slices interleaved with \
             this row's store slices; target = min(W x raw cyc/s, raw bandwidth / {RECORD_BYTES} B); \
             PASS at ratio >= {GROUP_COMMIT_TARGET} (slices = per-slice ratio range); \
             p99 PASS at <= {P99_TARGET_CYCLES} mean raw cycles (raw p99 = the paired raw slices' own p99, ms). rawbatchW = raw records/s with \
             W records per cycle (start table, interpolated), informational."
        );
    }

    if wants(&args, "bulk") {
        println!();
        println!("== bulk appends: {BULK_EVENTS} events per call ==");
        println!(
            "{:>8} {:>11} {:>10} {:>13} {:>6} {:>10} {:>13} {:>6} {:>8} {:>8} {:>6}",
            "callers",
            "raw bw",
            "events/s",
            "payload",
            "ratio",
            "slices",
            "on disk",
            "ratio",
            "p50 ms",
            "p99 ms",
            "target"
        );
        for &callers in &BULK_WRITERS {
            let log_dir = dir.join(format!("bulk-{callers}"));
            let p = paired(
                &runtime,
                &raw.file,
                RAW_BANDWIDTH_CHUNK,
                &log_dir,
                callers,
                BULK_EVENTS,
                args.seconds,
            );
            let raw_bw = p.raw.bytes_per_s();
            let payload_bw = p.run.events_per_s() * RECORD_BYTES as f64;
            let disk_bw = p.run.events_per_s() * frame as f64;
            let ratio = payload_bw / raw_bw;
            println!(
                "{:>8} {:>11} {:>10} {:>13} {:>6.2} {:>10} {:>13} {:>6.2} {:>8.3} {:>8.3} {:>6}",
                callers,
                mib(raw_bw),
                rate(p.run.events_per_s()),
                mib(payload_bw),
                ratio,
                spread(
                    p.slices.iter().map(|&(e, c)| {
                        e * RECORD_BYTES as f64 / (c * RAW_BANDWIDTH_CHUNK as f64)
                    })
                ),
                mib(disk_bw),
                disk_bw / raw_bw,
                ms(p.run.latencies.percentile(50.0)),
                ms(p.run.latencies.percentile(99.0)),
                verdict(ratio >= BULK_TARGET),
            );
            internals.push((format!("bulk x{callers}"), p.run));
        }
        println!(
            "raw bw = {} MiB pwrite+fdatasync bandwidth in slices interleaved with this row's; \
             ratio = bandwidth / raw bw; PASS at payload ratio >= {BULK_TARGET}; latency is per \
             {BULK_EVENTS}-event call.",
            RAW_BANDWIDTH_CHUNK >> 20
        );
    }

    if !internals.is_empty() {
        println!();
        println!("== inside the store (its own metrics, measured window) ==");
        println!(
            "{:>10} {:>10} {:>11} {:>11} {:>10} {:>10} {:>11} {:>11} {:>9} {:>10}",
            "run",
            "commits/s",
            "appends/c",
            "events/c",
            "fsync p50",
            "fsync p99",
            "commit p50",
            "commit p99",
            "busy",
            "zf in/ahd"
        );
        for (name, run) in &internals {
            let w = &run.store;
            let secs = run.elapsed.as_secs_f64();
            let per = |x: u64| x as f64 / w.batches.max(1) as f64;
            println!(
                "{:>10} {:>10.0} {:>11.1} {:>11.1} {:>8.3}ms {:>8.3}ms {:>9.3}ms {:>9.3}ms {:>8.0}% {:>10}",
                name,
                w.batches as f64 / secs,
                per(w.appends),
                per(w.events),
                probe::Window::percentile(&w.fsync, 50.0) * 1e3,
                probe::Window::percentile(&w.fsync, 99.0) * 1e3,
                probe::Window::percentile(&w.commit, 50.0) * 1e3,
                probe::Window::percentile(&w.commit, 99.0) * 1e3,
                w.commit.iter().sum::<f64>() / secs * 100.0,
                format!("{}/{}", w.zero_fills_in_commit, w.zero_fills_ahead),
            );
        }
        println!(
            "commit = one group commit in the writer thread (encode, zero-fill if due, pwrite, \
             fdatasync, publish); busy = share of wall time the writer spent in commits; \
             zf in/ahd = zero-fill steps done inside commits / ahead between commits."
        );
    }

    if wants(&args, "replay") {
        println!();
        println!("== replay of {} events ==", args.events);
        settle();
        let run = runtime.block_on(run_replay(&dir, args.events));
        let per_s = |d: Duration| run.events as f64 / d.as_secs_f64();
        let raw_read_rate = per_s(run.raw_read);
        println!(
            "fill (bulk, 4 callers, not a target): {:.1} s, {} events/s, {} MiB on disk",
            run.write_elapsed.as_secs_f64(),
            rate(per_s(run.write_elapsed)),
            run.bytes_on_disk >> 20
        );
        println!(
            "{:<44} {:>9} {:>11} {:>12} {:>6}",
            "pass", "seconds", "events/s", "vs raw read", "target"
        );
        let row = |name: &str, d: Duration, target: Option<bool>| {
            println!(
                "{:<44} {:>9.2} {:>11} {:>12.3} {:>6}",
                name,
                d.as_secs_f64(),
                rate(per_s(d)),
                per_s(d) / raw_read_rate,
                target.map_or("", verdict),
            );
        };
        row("raw pread of the segments (baseline)", run.raw_read, None);
        row("raw pread + frame CRC walk (baseline)", run.raw_scan, None);
        row(
            "open (recovery: CRC, decode, hash chain)",
            run.open_elapsed,
            None,
        );
        row(
            "read_all (frames + record decode)",
            run.read_all,
            Some(per_s(run.read_all) >= REPLAY_TARGET_EVENTS_PER_S),
        );
        row(
            "read_all + payload touch",
            run.read_all_touch,
            Some(per_s(run.read_all_touch) >= REPLAY_TARGET_EVENTS_PER_S),
        );
        row("read_all_blocking", run.read_all_blocking, None);
        row(
            "read_all, 2 chunks in flight (tokio::join)",
            run.read_all_parallel,
            Some(per_s(run.read_all_parallel) >= REPLAY_TARGET_EVENTS_PER_S),
        );
        println!(
            "target: >= {} events/s (absolute); touch checksum {}",
            rate(REPLAY_TARGET_EVENTS_PER_S),
            run.touch_sum
        );
    }

    let _ = std::fs::remove_file(dir.join("raw-baseline.dat"));
    println!();
    println!("machine at the end: {}", machine_load());
}
