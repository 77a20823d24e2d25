//! Scale-benchmark driver for the log (BENCHMARKS.md, "Scale and soak").
//!
//! ```text
//! cargo run --release --example scale_log -- build --template DIR --out DIR (--events N | --copies C) [--writers W]
//! cargo run --release --example scale_log -- open --dir DIR [--repeat R]
//! ```
//!
//! `build` replicates a template log, recorded from a real daemon under `tutorlog
//! load` (training, challenges and gateway chat against the mock provider), until
//! the new log holds N events. Every template event is decoded, its JSON form
//! rewritten for the copy (each copy gets its own learners `{user}-c{copy}`, its
//! own request streams and fresh ids for every UUID in the payload: sessions,
//! rounds, requests, runs), parsed back into the typed event and appended through
//! the real store and codec, W copies at a time (group commit does the rest). The
//! provider streams (`budget-*`, `circuit-*`, `router`) are shared by every copy, so
//! they grow as they would under real traffic; registry and config events are
//! written once; aggregate snapshot streams (a cache) are left out.
//!
//! `open` times opening the log: a full scan (every record: CRC, decode, chain,
//! index; the path without a checkpoint, measured through `audit verify`'s scan),
//! a read-only and a writer open from `index.ckpt`, and the checkpoint write on
//! close, and reports the checkpoint's size.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tutorlog_schemas::{Envelope, Event, NewEvent};
use tutorlog_store::{
    embedded::{checkpoint::CHECKPOINT_FILE_NAME, verify::verify, CheckpointPolicy},
    EmbeddedStore, EventStore, ExpectedRevision, StoreOptions,
};
use uuid::Uuid;

/// Event types that every copy repeats on the shared provider/router streams: they
/// come with each request. Everything else off the learner and request streams
/// (algorithm registry, config, benchmark runs) is written once.
const PER_TRAFFIC_TYPES: [&str; 12] = [
    "budget.reserved",
    "budget.committed",
    "budget.released",
    "provider.budget.exceeded",
    "provider.query.completed",
    "provider.query.failed",
    "circuit.opened",
    "circuit.half_opened",
    "circuit.closed",
    "provider.selected",
    "execution.recorded",
    "feedback.recorded",
];
/// Most events in one append (consecutive template events of one stream).
const APPEND_EVENTS: usize = 500;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let result = match args.first().map(String::as_str) {
        Some("build") => build(
            PathBuf::from(flag("--template").unwrap_or_else(|| usage())),
            PathBuf::from(flag("--out").unwrap_or_else(|| usage())),
            match flag("--copies") {
                Some(copies) => Size::Copies(parse(&copies)),
                None => Size::Events(parse(
                    &flag("--events").unwrap_or_else(|| "10000000".into()),
                )),
            },
            parse(&flag("--writers").unwrap_or_else(|| "64".into())) as usize,
        ),
        Some("open") => open(
            PathBuf::from(flag("--dir").unwrap_or_else(|| usage())),
            parse(&flag("--repeat").unwrap_or_else(|| "3".into())) as usize,
        ),
        _ => usage(),
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: scale_log build --template DIR --out DIR [--events N | --copies C] [--writers W]"
    );
    eprintln!("       scale_log open --dir DIR [--repeat R]");
    std::process::exit(2);
}

fn parse(text: &str) -> u64 {
    text.replace('_', "")
        .parse()
        .unwrap_or_else(|_| fail(&format!("not a number: {text}")))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2);
}

/// One template event, decoded.
struct Template {
    stream: String,
    event_type: String,
    payload: Value,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    /// Repeated by every copy (else written by copy 0 only).
    per_copy: bool,
}

fn load_template(dir: &std::path::Path) -> Result<(Vec<Template>, HashSet<String>), String> {
    let store = EmbeddedStore::open_read_only(dir).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut users = HashSet::new();
    let mut skipped = 0u64;
    let mut position = 0u64;
    loop {
        let chunk = store
            .read_all_blocking(position, 10_000)
            .map_err(|e| e.to_string())?;
        let Some(last) = chunk.last() else { break };
        position = last.position + 1;
        for recorded in &chunk {
            if recorded.stream.starts_with("snapshot-") {
                skipped += 1;
                continue;
            }
            let Ok(envelope) = Envelope::decode(recorded) else {
                skipped += 1;
                continue;
            };
            if let Some(user) = recorded.stream.strip_prefix("learner-") {
                users.insert(user.to_owned());
            }
            let per_copy = recorded.stream.starts_with("learner-")
                || recorded.stream.starts_with("request-")
                || PER_TRAFFIC_TYPES.contains(&recorded.event_type.as_str());
            events.push(Template {
                stream: recorded.stream.clone(),
                event_type: recorded.event_type.clone(),
                payload: envelope.payload.to_json(),
                correlation_id: recorded.correlation_id,
                causation_id: recorded.causation_id,
                per_copy,
            });
        }
    }
    eprintln!(
        "template: {} events ({} per copy), {} learners, {skipped} skipped (snapshots, unknown types)",
        events.len(),
        events.iter().filter(|e| e.per_copy).count(),
        users.len()
    );
    Ok((events, users))
}

/// Rewrites one template event for copy `copy`.
struct Remap<'a> {
    copy: u64,
    users: &'a HashSet<String>,
    ids: HashMap<Uuid, Uuid>,
}

impl Remap<'_> {
    fn id(&mut self, id: Uuid) -> Uuid {
        *self.ids.entry(id).or_insert_with(Uuid::now_v7)
    }

    fn user(&self, user: &str) -> String {
        format!("{user}-c{}", self.copy)
    }

    fn stream(&mut self, stream: &str) -> String {
        if let Some(user) = stream.strip_prefix("learner-") {
            return format!("learner-{}", self.user(user));
        }
        if let Some(id) = stream
            .strip_prefix("request-")
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            return format!("request-{}", self.id(id));
        }
        stream.to_owned()
    }

    fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if text.len() == 36 {
                    if let Ok(id) = Uuid::parse_str(text) {
                        *text = self.id(id).to_string();
                        return;
                    }
                }
                if self.users.contains(text.as_str()) {
                    *text = self.user(text);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(fields) => fields.values_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }

    fn event(&mut self, template: &Template) -> Result<(String, NewEvent), String> {
        let mut payload = template.payload.clone();
        self.value(&mut payload);
        let event = Event::from_json(&template.event_type, payload)?;
        let mut new = NewEvent::from_event(&event).map_err(|e| e.to_string())?;
        new.correlation_id = template.correlation_id.map(|id| self.id(id));
        new.causation_id = template.causation_id.map(|id| self.id(id));
        Ok((self.stream(&template.stream), new))
    }
}

/// How big a log to build.
enum Size {
    /// About this many events (the last copy is cut short).
    Events(u64),
    /// This many whole copies of the template (copy 0 included).
    Copies(u64),
}

fn build(template: PathBuf, out: PathBuf, size: Size, writers: usize) -> Result<(), String> {
    if out.join("log").exists() {
        return Err(format!("{} already holds a log", out.display()));
    }
    let (events, users) = load_template(&template.join("log"))?;
    let first_copy = events.len() as u64;
    let per_copy = events.iter().filter(|e| e.per_copy).count() as u64;
    if per_copy == 0 {
        return Err("the template has no learner or request events".into());
    }
    let target = match size {
        Size::Events(events) => events,
        Size::Copies(copies) => first_copy + copies.saturating_sub(1) * per_copy,
    };
    let copies = 1 + target.saturating_sub(first_copy).div_ceil(per_copy);
    eprintln!("building {target} events in {copies} copies, {writers} at a time");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store = EmbeddedStore::open(out.join("log")).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let events = Arc::new(events);
    let users = Arc::new(users);
    let written = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let progress = {
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let n = written.load(Ordering::Relaxed);
                    eprintln!(
                        "  {n} events, {:.0} events/s",
                        n as f64 / started.elapsed().as_secs_f64()
                    );
                }
            })
        };
        let next_copy = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..writers {
            let (store, events, users, written, next_copy) = (
                store.clone(),
                Arc::clone(&events),
                Arc::clone(&users),
                Arc::clone(&written),
                Arc::clone(&next_copy),
            );
            tasks.spawn(async move {
                loop {
                    let copy = next_copy.fetch_add(1, Ordering::Relaxed);
                    if copy >= copies {
                        return Ok::<(), String>(());
                    }
                    // The last copy stops at the target.
                    let budget = if copy == 0 {
                        first_copy
                    } else {
                        per_copy.min(target.saturating_sub(first_copy + (copy - 1) * per_copy))
                    };
                    write_copy(&store, &events, &users, copy, budget).await?;
                    written.fetch_add(budget, Ordering::Relaxed);
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| e.to_string())??;
        }
        progress.abort();
        Ok::<(), String>(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let records = store.last_position().map_or(0, |p| p + 1);
    let streams = store.stream_count();
    let closing = Instant::now();
    store.close();
    let bytes: u64 = std::fs::read_dir(out.join("log"))
        .map_err(|e| e.to_string())?
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "built {records} events in {streams} streams, {:.0} MiB on disk, in {elapsed:.1} s ({:.0} events/s); close with the checkpoint {:.2} s",
        bytes as f64 / 1048576.0,
        records as f64 / elapsed,
        closing.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn write_copy(
    store: &EmbeddedStore,
    events: &[Template],
    users: &HashSet<String>,
    copy: u64,
    budget: u64,
) -> Result<(), String> {
    let mut remap = Remap {
        copy,
        users,
        ids: HashMap::new(),
    };
    let mut pending: Option<(String, Vec<NewEvent>)> = None;
    let take = usize::try_from(budget).unwrap_or(usize::MAX);
    for template in events.iter().filter(|e| copy == 0 || e.per_copy).take(take) {
        let (stream, event) = remap.event(template)?;
        match &mut pending {
            Some((current, batch)) if *current == stream && batch.len() < APPEND_EVENTS => {
                batch.push(event);
            }
            _ => {
                if let Some((current, batch)) = pending.take() {
                    append(store, &current, batch).await?;
                }
                pending = Some((stream, vec![event]));
            }
        }
    }
    if let Some((current, batch)) = pending {
        append(store, &current, batch).await?;
    }
    Ok(())
}

async fn append(store: &EmbeddedStore, stream: &str, events: Vec<NewEvent>) -> Result<(), String> {
    store
        .append(stream, ExpectedRevision::Any, events)
        .await
        .map(|_| ())
        .map_err(|e| format!("append to {stream}: {e}"))
}

fn open(dir: PathBuf, repeat: usize) -> Result<(), String> {
    let log = dir.join("log");
    let checkpoint = log.join(CHECKPOINT_FILE_NAME);
    let checkpoint_bytes = std::fs::metadata(&checkpoint)
        .map_err(|e| format!("{}: {e} (build the log first)", checkpoint.display()))?
        .len();
    let mut full = Vec::new();
    let mut read_only = Vec::new();
    let mut writer = Vec::new();
    let mut write = Vec::new();
    let mut records = 0;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let report = verify(&log).map_err(|e| e.to_string())?;
        full.push(started.elapsed().as_secs_f64());
        records = report.records;

        let started = Instant::now();
        let store = EmbeddedStore::open_read_only(&log).map_err(|e| e.to_string())?;
        read_only.push(started.elapsed().as_secs_f64());
        if store.open_report().checkpoint_records.is_none() {
            return Err(format!(
                "the checkpoint was not used: {:?}",
                store.open_report().checkpoint_rejected
            ));
        }
        drop(store);

        let started = Instant::now();
        let store = EmbeddedStore::open_with_checkpoints(
            &log,
            StoreOptions::default(),
            CheckpointPolicy::default(),
        )
        .map_err(|e| e.to_string())?;
        writer.push(started.elapsed().as_secs_f64());
        // One more record, so the close writes a new checkpoint of everything.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime
            .block_on(store.append(
                "scale-open-probe",
                ExpectedRevision::Any,
                vec![NewEvent::raw("scale.open.probe", 1, b"probe".to_vec())],
            ))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        store.close();
        write.push(started.elapsed().as_secs_f64());
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let full = median(&mut full);
    println!(
        "log: {records} records; index.ckpt {:.1} MiB ({:.2} bytes per record)",
        checkpoint_bytes as f64 / 1048576.0,
        checkpoint_bytes as f64 / records as f64
    );
    println!(
        "full scan (no checkpoint): {full:.2} s, {:.0} records/s",
        records as f64 / full
    );
    println!(
        "read-only open from the checkpoint: {:.3} s",
        median(&mut read_only)
    );
    println!(
        "writer open from the checkpoint: {:.3} s",
        median(&mut writer)
    );
    println!("close writing the checkpoint: {:.3} s", median(&mut write));
    println!("(medians of {repeat})");
    Ok(())
}
