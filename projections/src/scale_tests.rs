//! Timings of snapshot encode/parse at scale, on real snapshot files (ignored:
//! `TUTORLOG_SNAPSHOT_DIR=<data>/projections cargo test -p tutorlog-projections
//! --release --lib snapshot_timings -- --ignored --nocapture`). With
//! `TUTORLOG_SCALE_LEARNERS=N` the `mastery` model is also grown to N learners (each
//! learner of the file copied under new names, with new session ids) and timed.

use std::time::Instant;

use crate::{
    algo_runs::AlgoRunsModel, mastery::MasteryModel, projection::Projection, snapshot, AlgoRuns,
    Mastery,
};

fn time_model<P: Projection>(dir: &std::path::Path) -> Option<P::Model> {
    let bytes = snapshot::read_file(dir, P::NAME).expect("read")?;
    let started = Instant::now();
    let decoded = snapshot::decode(P::NAME, P::VERSION, &bytes).expect("decode");
    let checked = started.elapsed();
    let started = Instant::now();
    let model: P::Model = serde_json::from_slice(&decoded.model_json).expect("parse");
    let parsed = started.elapsed();
    let started = Instant::now();
    let mut sink = std::io::sink();
    serde_json::to_writer(&mut sink, &model).expect("serialize");
    let written = started.elapsed();
    eprintln!(
        "{}: {} bytes; header+CRC {checked:?}, parse {parsed:?} ({:.0} MB/s), serialize {written:?}",
        P::NAME,
        bytes.len(),
        bytes.len() as f64 / parsed.as_secs_f64() / 1e6
    );
    Some(model)
}

fn grow(model: &MasteryModel, learners: usize) -> MasteryModel {
    let mut grown = MasteryModel::default();
    let copies = learners.div_ceil(model.learners.len().max(1));
    for copy in 0..copies {
        for (user, rows) in &model.learners {
            grown
                .learners
                .insert(format!("{user}-c{copy}"), rows.clone());
        }
        for (user, stats) in &model.challenges {
            grown
                .challenges
                .insert(format!("{user}-c{copy}"), stats.clone());
        }
        for (user, focus) in model.sessions.values() {
            grown.sessions.insert(
                uuid::Uuid::now_v7(),
                (format!("{user}-c{copy}"), focus.clone()),
            );
        }
    }
    grown
}

#[test]
#[ignore = "needs TUTORLOG_SNAPSHOT_DIR; a timing, not a check"]
fn snapshot_timings() {
    let Some(dir) = std::env::var_os("TUTORLOG_SNAPSHOT_DIR") else {
        eprintln!("TUTORLOG_SNAPSHOT_DIR not set");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _: Option<AlgoRunsModel> = time_model::<AlgoRuns>(&dir);
    let Some(mastery) = time_model::<Mastery>(&dir) else {
        return;
    };
    eprintln!(
        "mastery: {} learners, {} sessions",
        mastery.learners.len(),
        mastery.sessions.len()
    );
    if let Some(n) = std::env::var("TUTORLOG_SCALE_LEARNERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let grown = grow(&mastery, n);
        let started = Instant::now();
        let json = serde_json::to_vec(&grown).expect("json");
        let written = started.elapsed();
        let started = Instant::now();
        let back: MasteryModel = serde_json::from_slice(&json).expect("parse");
        let parsed = started.elapsed();
        let started = Instant::now();
        let cloned = back.clone();
        let clone = started.elapsed();
        eprintln!(
            "mastery grown to {} learners / {} sessions: {} bytes, serialize {written:?}, parse {parsed:?}, clone {clone:?}",
            cloned.learners.len(),
            cloned.sessions.len(),
            json.len()
        );
    }
}
