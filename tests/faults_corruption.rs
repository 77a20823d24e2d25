//! Corruption: random byte flips, truncations and zeroed pages in segment files,
//! and damaged projection snapshots, with what the log and the daemon must do:
//!
//! - the log refuses to open, naming the file and the offset of the damaged
//!   record, for damage before the tail; a torn tail (a record cut short, or bytes
//!   after the last record that are no record) is dropped with a warning; nothing
//!   damaged is ever returned as a record, and a log that opens is writable and
//!   verifies again (`log_damage_*`, against the library, many seeds);
//! - `tutorlog serve` refuses such a log with one line naming file and offset, and
//!   `tutorlog audit verify` fails naming them too; stray temporary segments and a
//!   garbage `LOCK` file are harmless; a damaged, cut, empty or foreign index
//!   checkpoint (`index.ckpt`) is ignored and the index rebuilt by a full scan;
//! - a corrupt, truncated or foreign projection snapshot is ignored (logged,
//!   counted) and the view rebuilt from the log equals a fresh replay.
//!
//! What no check can see is counted, not failed: cutting or zeroing the log
//! exactly at a record boundary through to the end of the data looks like a log
//! that was never written further (the same as a crash before those writes).
//!
//! Short mode: 200 damaged copies of each log image (a crashed and a cleanly
//! closed one), 4 snapshot damages. Long (`TUTORLOG_FAULTS_LONG=1`): 5,000 and 40.

#[path = "faults/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::{audit_verify, views_match_replay, Load, MockProvider, Mode, Rng, Serve};
use tutorlog_store::{
    embedded::{
        segment::{list_segments, scan_segment, segment_path},
        verify::verify,
    },
    EmbeddedStore, EventStore, ExpectedRevision, NewEvent, StoreError, StoreOptions,
};

fn options() -> StoreOptions {
    // Small segments: every image has several sealed segments and an active one.
    StoreOptions {
        segment_bytes: 16 * 1024,
        preallocate_bytes: 4096,
        ..StoreOptions::default()
    }
}

/// One record of an image: segment, byte range, event id.
#[derive(Debug, Clone)]
struct Record {
    segment: u32,
    start: u64,
    end: u64,
    id: uuid::Uuid,
}

/// A log image (a copy of a log directory) and where its records are.
struct Image {
    dir: PathBuf,
    records: Vec<Record>,
    /// Per segment: file length.
    lengths: Vec<u64>,
    /// Whether it was copied from a running writer (zero margin after the data).
    crashed: bool,
}

async fn build_image(base: &Path, seed: u64) -> (Image, Image) {
    let live = base.join("live");
    let store = EmbeddedStore::open_with(&live, options()).expect("open");
    let mut rng = Rng::new(seed);
    for i in 0..300u64 {
        let events: Vec<NewEvent> = (0..rng.range(1, 4))
            .map(|n| {
                let size = rng.range(20, 400) as usize;
                let byte = b'a' + (rng.range(0, 26) as u8);
                NewEvent::raw("fault.test", 1, vec![byte; size + n as usize])
            })
            .collect();
        store
            .append(&format!("s{}", i % 7), ExpectedRevision::Any, events)
            .await
            .expect("append");
    }
    // A copy while the writer runs is what a SIGKILL leaves (the page cache is
    // the file); after close, the clean image.
    let crashed = copy_log(&live, &base.join("crashed"));
    store.close();
    drop(store);
    let clean = copy_log(&live, &base.join("clean"));
    (image(crashed, true), image(clean, false))
}

fn copy_log(from: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".seg") {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy");
        }
    }
    to.to_path_buf()
}

fn image(dir: PathBuf, crashed: bool) -> Image {
    let (ids, _) = list_segments(&dir).expect("list");
    let mut records = Vec::new();
    let mut lengths = Vec::new();
    let ordered = EmbeddedStore::open_read_only(&dir)
        .expect("image opens")
        .read_all_blocking(0, 100_000)
        .expect("read");
    for (n, &id) in ids.iter().enumerate() {
        let path = segment_path(&dir, id);
        let bytes = std::fs::read(&path).expect("read segment");
        lengths.push(bytes.len() as u64);
        scan_segment(&path, &bytes, n + 1 < ids.len(), |offset, body| {
            records.push(Record {
                segment: id,
                start: offset,
                end: offset + 8 + body.len() as u64,
                id: uuid::Uuid::nil(),
            });
            Ok(())
        })
        .expect("clean scan");
    }
    assert_eq!(records.len(), ordered.len());
    for (record, event) in records.iter_mut().zip(&ordered) {
        record.id = event.event_id;
    }
    assert!(ids.len() >= 3, "several segments");
    Image {
        dir,
        records,
        lengths,
        crashed,
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// XOR one byte with a non-zero mask.
    Flip { segment: u32, at: u64, mask: u8 },
    /// Cut the file to `length` bytes.
    Truncate { segment: u32, length: u64 },
    /// Zero `[from, to)`.
    Zero { segment: u32, from: u64, to: u64 },
}

fn pick(rng: &mut Rng, image: &Image) -> Damage {
    // Half the damage in the active segment, half of that near its end, where
    // the torn-tail rules decide.
    let last = image.lengths.len() as u64 - 1;
    let segment = if rng.range(0, 2) == 0 {
        last
    } else {
        rng.range(0, last)
    } as u32;
    let length = image.lengths[segment as usize];
    let tail_start = if u64::from(segment) == last && rng.range(0, 2) == 0 {
        let data_end = image
            .records
            .iter()
            .filter(|r| r.segment == segment)
            .map(|r| r.end)
            .max()
            .unwrap_or(0);
        data_end.saturating_sub(1024)
    } else {
        0
    };
    let offset = |rng: &mut Rng| rng.range(tail_start.min(length.saturating_sub(1)), length);
    match rng.range(0, 4) {
        0 | 1 => Damage::Flip {
            segment,
            at: offset(rng),
            mask: rng.range(1, 256) as u8,
        },
        2 => Damage::Truncate {
            segment,
            length: offset(rng),
        },
        _ => {
            let from = offset(rng);
            Damage::Zero {
                segment,
                from,
                to: (from + rng.range(1, 5000)).min(length),
            }
        }
    }
}

fn apply(dir: &Path, damage: Damage) {
    match damage {
        Damage::Flip { segment, at, mask } => {
            let path = segment_path(dir, segment);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[at as usize] ^= mask;
            std::fs::write(&path, bytes).expect("write");
        }
        Damage::Truncate { segment, length } => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(segment_path(dir, segment))
                .expect("open");
            file.set_len(length).expect("truncate");
        }
        Damage::Zero { segment, from, to } => {
            let path = segment_path(dir, segment);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[from as usize..to as usize].fill(0);
            std::fs::write(&path, bytes).expect("write");
        }
    }
}

/// What opening a damaged image must do.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refuse, naming this segment and offset.
    Refuse { segment: u32, offset: u64 },
    /// Open with the first `records` records; `torn` says whether a torn tail is
    /// reported (`None`: the damage cannot be seen, nothing is reported).
    Keep { records: usize, torn: bool },
}

/// The outcomes the rules allow for `damage` (more than one where a random
/// damage may land on an edge of a rule, e.g. a flipped length that happens to
/// make the frame end exactly at the end of the file). `undetectable` is set
/// when the damage looks like a log that was never written further.
fn expected(image: &Image, damage: Damage, original: &[u8], damaged: &[u8]) -> (Vec<Expect>, bool) {
    let last_segment = image.lengths.len() as u32 - 1;
    let all = image.records.len();
    let (segment, from, to) = match damage {
        Damage::Truncate { segment, length } => (segment, length, u64::MAX),
        Damage::Flip { segment, .. } | Damage::Zero { segment, .. } => {
            // Where bytes really changed (zeroing zeros changes nothing).
            let changed = |(i, (a, b)): (usize, (&u8, &u8))| (a != b).then_some(i as u64);
            let mut diffs = original.iter().zip(damaged).enumerate().filter_map(changed);
            let Some(first) = diffs.next() else {
                return (
                    vec![Expect::Keep {
                        records: all,
                        torn: false,
                    }],
                    false,
                );
            };
            let last = diffs.next_back().unwrap_or(first);
            (segment, first, last + 1)
        }
    };
    let sealed = segment < last_segment;
    let in_segment: Vec<(usize, &Record)> = image
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.segment == segment)
        .collect();
    // The first record the damage touches.
    let Some(&(first_index, first)) = in_segment.iter().find(|(_, r)| r.end > from) else {
        // Past every record: the zero margin of a crashed active segment.
        let torn = !matches!(damage, Damage::Truncate { .. });
        let data_end = in_segment.last().map_or(0, |(_, r)| r.end);
        // A flipped header right after the data could claim a frame ending exactly
        // at the end of the file: then it is refused as damage.
        let edge = Expect::Refuse {
            segment,
            offset: data_end,
        };
        return (vec![Expect::Keep { records: all, torn }, edge], false);
    };
    let refuse_here = Expect::Refuse {
        segment,
        offset: first.start,
    };
    let at_boundary = first.start == from;
    let intact_after = in_segment.iter().any(|(_, r)| r.start >= to);
    let torn_here = Expect::Keep {
        records: first_index,
        torn: true,
    };
    match damage {
        Damage::Truncate { .. } if sealed => {
            if !at_boundary {
                return (vec![refuse_here], false);
            }
            match image.records.iter().find(|r| r.segment > segment) {
                // Positions jump where the next record is found.
                Some(next) => (
                    vec![Expect::Refuse {
                        segment: next.segment,
                        offset: next.start,
                    }],
                    false,
                ),
                None => (
                    vec![Expect::Keep {
                        records: first_index,
                        torn: false,
                    }],
                    true,
                ),
            }
        }
        Damage::Truncate { .. } => {
            if at_boundary {
                (
                    vec![Expect::Keep {
                        records: first_index,
                        torn: false,
                    }],
                    true,
                )
            } else {
                (vec![torn_here], false)
            }
        }
        _ if sealed => (vec![refuse_here], false),
        _ if intact_after => (vec![refuse_here], false),
        Damage::Zero { .. } if at_boundary && to >= last_data_end(&in_segment) => {
            // Zeros from a record boundary to the end of the data: "never written".
            let rest_zero = damaged[to as usize..].iter().all(|&b| b == 0);
            if rest_zero {
                (
                    vec![Expect::Keep {
                        records: first_index,
                        torn: false,
                    }],
                    true,
                )
            } else {
                (vec![torn_here], false)
            }
        }
        _ => {
            // The damage reaches the last records of the active segment and no
            // intact record follows it. A crashed image: a torn tail (refused only
            // if a damaged length makes the frame end exactly at the end of the
            // file). A clean image: a damaged body of the last record is refused;
            // a damaged header may make the frame look cut short (a longer length),
            // which the rules call torn.
            let body_only = from >= first.start + 8 && first_index + 1 == all;
            if !image.crashed && body_only {
                (vec![refuse_here], false)
            } else {
                (vec![torn_here, refuse_here], false)
            }
        }
    }
}

fn last_data_end(in_segment: &[(usize, &Record)]) -> u64 {
    in_segment.last().map_or(0, |(_, r)| r.end)
}

/// What the damaged copy did.
fn outcome(dir: &Path) -> Result<Expect, StoreError> {
    match verify(dir) {
        Ok(report) => Ok(Expect::Keep {
            records: report.records as usize,
            torn: report.unfinished_tail.is_some(),
        }),
        Err(StoreError::Corrupt { file, offset, .. }) => {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            let segment = name
                .as_deref()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(u32::MAX);
            Ok(Expect::Refuse { segment, offset })
        }
        Err(other) => Err(other),
    }
}

/// Opens a damaged copy that verified: it holds exactly the expected prefix of
/// the original records, takes a new append, and reopens clean.
async fn check_opened(dir: &Path, image: &Image, records: usize) -> Result<(), String> {
    let store = EmbeddedStore::open_with(dir, options()).map_err(|e| format!("open: {e}"))?;
    let read = store
        .read_all_blocking(0, 100_000)
        .map_err(|e| format!("read: {e}"))?;
    if read.len() != records {
        return Err(format!(
            "opened with {} records, verify said {records}",
            read.len()
        ));
    }
    for (event, original) in read.iter().zip(&image.records) {
        if event.event_id != original.id {
            return Err(format!(
                "position {} holds event {}, the original was {}",
                event.position, event.event_id, original.id
            ));
        }
    }
    store
        .append(
            "after",
            ExpectedRevision::Any,
            vec![NewEvent::raw("fault.after", 1, b"x".to_vec())],
        )
        .await
        .map_err(|e| format!("append after recovery: {e}"))?;
    store.close();
    drop(store);
    let report = verify(dir).map_err(|e| format!("verify after recovery: {e}"))?;
    if report.records as usize != records + 1 || report.unfinished_tail.is_some() {
        return Err(format!("after recovery and one append: {report:?}"));
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    torn: u64,
    harmless: u64,
    undetectable: u64,
}

async fn damage_many(image: &Image, copies: u64, seed: u64, scratch: &Path) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for copy in 0..copies {
        let dir = scratch.join(format!("copy-{copy}"));
        copy_log(&image.dir, &dir);
        let damage = pick(&mut rng, image);
        apply(&dir, damage);
        let segment = match damage {
            Damage::Flip { segment, .. }
            | Damage::Truncate { segment, .. }
            | Damage::Zero { segment, .. } => segment,
        };
        let damaged = std::fs::read(segment_path(&dir, segment)).expect("read damaged");
        let original = std::fs::read(segment_path(&image.dir, segment)).expect("read original");
        let (allowed, undetectable) = expected(image, damage, &original, &damaged);
        let got = outcome(&dir).unwrap_or_else(|e| panic!("{damage:?}: unexpected error {e}"));
        let context = format!(
            "seed {seed} copy {copy} ({} image): {damage:?}",
            if image.crashed { "crashed" } else { "clean" }
        );
        assert!(
            allowed.contains(&got),
            "{context}: got {got:?}, the rules allow {allowed:?}"
        );
        match got {
            Expect::Refuse { .. } => tally.refused += 1,
            Expect::Keep { records, torn } => {
                check_opened(&dir, image, records)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                if torn {
                    tally.torn += 1;
                } else if records == image.records.len() {
                    tally.harmless += 1;
                } else {
                    assert!(undetectable, "{context}: records lost without a warning");
                    tally.undetectable += 1;
                }
            }
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_damage_is_refused_by_file_and_offset_or_dropped_as_a_torn_tail() {
    let mode = Mode::from_env("faults_corruption (log)");
    let copies = mode.cycles(200, 5_000);
    let base = tempfile::tempdir().expect("tempdir");
    let (crashed, clean) = build_image(base.path(), mode.seed).await;
    for image in [&crashed, &clean] {
        let tally = damage_many(image, copies, mode.seed, &base.path().join("scratch")).await;
        println!(
            "faults_corruption: {} image, {copies} damaged copies (seed {}): {} refused naming file and offset, {} torn tails dropped with a warning, {} harmless, {} undetectable (cut or zeroed at a record boundary to the end of the data)",
            if image.crashed { "crashed" } else { "clean" },
            mode.seed,
            tally.refused,
            tally.torn,
            tally.harmless,
            tally.undetectable
        );
        assert!(
            tally.refused > 0 && tally.torn + tally.harmless > 0,
            "{tally:?}"
        );
    }
}

fn daemon_config(mock: &MockProvider) -> String {
    format!(
        "[projections]\nsnapshot_every_events = 50\nsnapshot_every_secs = 1\n\n{}{}",
        common::gateway_toml("strict"),
        common::provider_toml("paid", &mock.base_url(), 1, 1000.0),
    )
}

/// Copies a data directory (log and snapshots), recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Starts a daemon on the damaged copy `data` (run directory `run`), checks that
/// every view equals a replay of the log, and returns it with its log output.
async fn serve_rebuilt(run: &Path, data: &Path, config: &str, context: &str) -> (Serve, String) {
    std::fs::create_dir_all(run).expect("mkdir");
    let serve = Serve::start(run, data, config)
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    views_match_replay(&serve)
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let log = std::fs::read_to_string(&serve.log).unwrap_or_default();
    (serve, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_are_ignored_and_views_rebuilt_and_damaged_logs_refused() {
    let mode = Mode::from_env("faults_corruption (daemon)");
    let rounds = mode.cycles(4, 40);
    let mut rng = Rng::new(mode.seed);
    let base = tempfile::tempdir().expect("tempdir");
    let pristine = base.path().join("pristine");
    let mock = MockProvider::start(&[]);
    let config = daemon_config(&mock);
    {
        let mut serve = Serve::start(base.path(), &pristine, &config)
            .await
            .expect("start");
        let mut load = Load::start(
            &serve.url,
            &base.path().join("acks.jsonl"),
            &base.path().join("load.json"),
            mode.seed,
            3.0,
            "6:2:2",
            8,
        );
        load.wait();
        serve.terminate().expect("clean stop writes every snapshot");
    }
    let snapshots: Vec<PathBuf> = std::fs::read_dir(pristine.join("projections"))
        .expect("snapshots")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "snapshot"))
        .collect();
    assert_eq!(snapshots.len(), common::VIEWS.len(), "{snapshots:?}");

    for round in 0..rounds {
        let data = base.path().join(format!("round-{round}"));
        copy_tree(&pristine, &data);
        let victim = &snapshots[rng.range(0, snapshots.len() as u64) as usize];
        let name = victim.file_name().expect("name").to_owned();
        let path = data.join("projections").join(&name);
        let how = damage_snapshot(&mut rng, &path, &snapshots);
        let run = base.path().join(format!("round-{round}-run"));
        let context = format!("round {round} ({how} {name:?})");
        let (serve, log) = serve_rebuilt(&run, &data, &config, &context).await;
        assert!(
            log.contains("ignoring snapshot"),
            "round {round} ({how} {name:?}): the damaged snapshot was not reported"
        );
        let (_, page) = serve.get_text("/metrics").await.expect("metrics");
        assert!(
            common::metric(&page, "tutorlog_projection_snapshots_rejected_total")
                .is_some_and(|v| v >= 1.0),
            "round {round}: rejection not counted"
        );
        println!("faults_corruption: snapshot round {round}: {how} {name:?}: ignored, view rebuilt equal to a replay");
        drop(serve);
        std::fs::remove_dir_all(&data).expect("clean up");
    }

    // Valid snapshots that do not belong to this log: one from the same log run
    // further (its position is past this log's end) and one from another log (the
    // event it names is not this log's). Both ignored, the views rebuilt.
    let further = base.path().join("further");
    copy_tree(&pristine, &further);
    let other = base.path().join("other");
    for (data, seed) in [(&further, mode.seed + 1), (&other, mode.seed + 2)] {
        let dir = base.path().join(format!("grow-{seed}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut serve = Serve::start(&dir, data, &config).await.expect("start");
        let mut load = Load::start(
            &serve.url,
            &dir.join("acks.jsonl"),
            &dir.join("load.json"),
            seed,
            1.5,
            "6:2:2",
            8,
        );
        load.wait();
        serve.terminate().expect("stop");
    }
    for (source, what) in [
        (&further, "from further along the same log"),
        (&other, "from another log"),
    ] {
        let data = base.path().join(format!("foreign-{}", what.len()));
        copy_tree(&pristine, &data);
        for snapshot in &snapshots {
            let name = snapshot.file_name().expect("name");
            std::fs::copy(
                source.join("projections").join(name),
                data.join("projections").join(name),
            )
            .expect("copy foreign snapshot");
        }
        let run = base.path().join(format!("foreign-run-{}", what.len()));
        let context = format!("snapshots {what}");
        let (_serve, log) = serve_rebuilt(&run, &data, &config, &context).await;
        let ignored = log.matches("ignoring snapshot").count();
        assert!(
            ignored >= common::VIEWS.len() - 1,
            "snapshots {what}: only {ignored} ignored"
        );
        println!("faults_corruption: every snapshot {what}: {ignored} ignored, views rebuilt equal to a replay");
    }

    // The other files of the log directory: a stray temporary segment (removed) and
    // a garbage LOCK file (the lock is a flock; its content means nothing).
    let data = base.path().join("stray");
    copy_tree(&pristine, &data);
    std::fs::write(data.join("log").join("0000000099.seg.tmp"), b"half made").expect("tmp");
    std::fs::write(data.join("log").join("LOCK"), b"\xff garbage").expect("lock");
    let dir = base.path().join("stray-run");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let serve = Serve::start(&dir, &data, &config)
        .await
        .expect("starts with a stray temp segment and a garbage LOCK");
    assert!(!data.join("log").join("0000000099.seg.tmp").exists());
    drop(serve);

    // The index checkpoint (`log/index.ckpt`, written on the clean stop above) is
    // a cache of the log: damaged, cut short, emptied, or another log's, it is
    // reported and ignored, the index is rebuilt by a full scan, and every view
    // still equals a replay. Never trusted over the segments.
    let checkpoint = pristine.join("log").join("index.ckpt");
    let original = std::fs::read(&checkpoint).expect("a clean stop writes index.ckpt");
    assert!(!original.is_empty());
    let foreign = std::fs::read(other.join("log").join("index.ckpt")).expect("other log's");
    let flip_at = rng.range(0, original.len() as u64) as usize;
    let mut flipped = original.clone();
    flipped[flip_at] ^= 0x20;
    let cut_at = rng.range(1, original.len() as u64) as usize;
    for (how, bytes) in [
        ("a flipped byte in", flipped),
        ("a truncated", original[..cut_at].to_vec()),
        ("an empty", Vec::new()),
        ("another log's", foreign),
    ] {
        let data = base.path().join(format!("ckpt-{}", how.len()));
        copy_tree(&pristine, &data);
        std::fs::write(data.join("log").join("index.ckpt"), &bytes).expect("damage checkpoint");
        let run = base.path().join(format!("ckpt-run-{}", how.len()));
        let context = format!("{how} index checkpoint");
        let (serve, log) = serve_rebuilt(&run, &data, &config, &context).await;
        assert!(
            log.contains("index checkpoint not used"),
            "{how} index checkpoint was not reported"
        );
        drop(serve);
        audit_verify(&data).unwrap_or_else(|e| panic!("{how} index checkpoint: audit: {e}"));
        println!("faults_corruption: {how} index checkpoint: ignored, full scan, views equal to a replay");
    }

    // A damaged record before the tail: serve and audit verify refuse, naming it.
    let data = base.path().join("damaged");
    copy_tree(&pristine, &data);
    let log_dir = data.join("log");
    let first = segment_path(&log_dir, 0);
    let mut bytes = std::fs::read(&first).expect("segment 0");
    // In the first 4 KiB: thousands of records follow, so this is damage before
    // the tail, never a torn one.
    let at = rng.range(0, (bytes.len() as u64).min(4096)) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(&first, &bytes).expect("damage");
    let verified = audit_verify(&data);
    let message = verified.expect_err("audit verify fails on damage");
    assert!(
        message.contains("0000000000.seg") && message.contains("offset"),
        "{message}"
    );
    let output = std::process::Command::new(common::BIN)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .env("TUTORLOG_LOG", "error")
        .output()
        .expect("serve");
    assert!(!output.status.success(), "serve refuses a damaged log");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error:") && last.contains("0000000000.seg") && last.contains("offset"),
        "one line naming file and offset: {stderr}"
    );
    println!("faults_corruption: a flipped byte at offset {at} of segment 0: serve and audit verify refuse: {last}");
}

/// Damages a snapshot file one of several ways; returns which.
fn damage_snapshot(rng: &mut Rng, path: &Path, all: &[PathBuf]) -> &'static str {
    let mut bytes = std::fs::read(path).expect("snapshot");
    let how = match rng.range(0, 6) {
        0 => {
            let at = rng.range(0, bytes.len() as u64) as usize;
            bytes[at] ^= rng.range(1, 256) as u8;
            "flipped a byte of"
        }
        1 => {
            bytes.truncate(rng.range(0, bytes.len() as u64) as usize);
            "truncated"
        }
        2 => {
            bytes.push(b'\n');
            "extended"
        }
        3 => {
            bytes.clear();
            "emptied"
        }
        4 => {
            // Another projection's (valid) snapshot under this name.
            let other = all
                .iter()
                .find(|p| p.file_name() != path.file_name())
                .expect("another snapshot");
            bytes = std::fs::read(other).expect("other snapshot");
            "replaced with another projection's snapshot"
        }
        _ => {
            let at = rng.range(48.min(bytes.len() as u64), bytes.len() as u64) as usize;
            bytes[at..].fill(0);
            "zeroed the end of"
        }
    };
    std::fs::write(path, bytes).expect("write damaged snapshot");
    how
}
