use super::*;
use crate::test_support::{assert_restore_equivalence, at, envelope_at};
use proptest::prelude::*;
use tutorlog_schemas::events::{
    BenchmarkRunCompleted, BenchmarkRunScheduled, BenchmarkRunStarted, ErrorKind,
};

fn run(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

fn scheduled(id: u128, providers: &[&str]) -> Event {
    Event::BenchmarkRunScheduled(BenchmarkRunScheduled {
        run_id: run(id),
        trigger: "schedule".into(),
        categories: vec!["coding".into(), "math".into()],
        providers: providers.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn started(id: u128) -> Event {
    Event::BenchmarkRunStarted(BenchmarkRunStarted {
        run_id: run(id),
        tests: 4,
    })
}

fn result(id: u128, provider: &str, category: &str, quality: f64, latency: u64) -> Event {
    Event::BenchmarkResultRecorded(BenchmarkResultRecorded {
        run_id: run(id),
        provider: provider.into(),
        model: format!("{provider}-model"),
        category: category.into(),
        test_id: format!("{category}-1"),
        quality,
        latency_micros: latency,
        cost_micros: 100,
        success: quality > 0.0,
        error_kind: (quality == 0.0).then_some(ErrorKind::Timeout),
    })
}

fn completed(id: u128) -> Event {
    Event::BenchmarkRunCompleted(BenchmarkRunCompleted {
        run_id: run(id),
        results: 3,
        failures: 1,
        duration_micros: 9_000,
    })
}

fn fold(benchmarks: &mut Benchmarks, start: i64, events: Vec<Event>) -> Vec<Envelope> {
    let envelopes: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let second = start + index as i64;
            envelope_at(BENCHMARK_STREAM, second as u64, at(second), event)
        })
        .collect();
    for envelope in &envelopes {
        benchmarks.apply(envelope);
    }
    envelopes
}

#[test]
fn a_run_aggregates_its_tests_per_provider_and_category() {
    let mut benchmarks = Benchmarks::new();
    fold(
        &mut benchmarks,
        0,
        vec![
            scheduled(1, &["openai", "groq"]),
            started(1),
            result(1, "openai", "coding", 90.0, 1_000),
            result(1, "openai", "coding", 70.0, 3_000),
            result(1, "openai", "math", 0.0, 5_000),
            result(1, "groq", "coding", 60.0, 500),
        ],
    );
    let latest = benchmarks.latest(Some("coding"), TimeDelta::hours(24), at(10));
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].provider, "groq");
    let openai = &latest[1];
    assert_eq!(
        (openai.provider.as_str(), openai.tests, openai.successes),
        ("openai", 2, 2)
    );
    assert_eq!(openai.mean_quality, 80.0);
    assert_eq!(openai.mean_latency_micros, 2_000.0);
    assert_eq!(openai.cost_micros, 200);
    assert_eq!(openai.recorded_at, at(3));
    assert!(!openai.run_completed);
    assert_eq!(benchmarks.runs()[0].status, RunStatus::Running);

    fold(&mut benchmarks, 6, vec![completed(1)]);
    let all = benchmarks.latest(None, TimeDelta::hours(24), at(10));
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.run_completed));
    let math = all.iter().find(|r| r.category == "math").expect("math");
    assert_eq!((math.success_rate, math.mean_quality), (0.0, 0.0));
    let summary = &benchmarks.runs()[0];
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!((summary.results, summary.failures), (4, 1));
    assert_eq!(summary.tests_planned, Some(4));
    assert_eq!(summary.duration_micros, Some(9_000));
    assert_eq!(summary.providers, ["groq", "openai"]);
    assert_eq!(summary.trigger.as_deref(), Some("schedule"));
    let view = benchmarks.view().expect("view");
    assert_eq!(view["latest"]["openai"]["coding"]["mean_quality"], 80.0);
    assert_eq!(view["runs"][0]["mean_quality"], 55.0);
    assert_eq!(view["results_total"], 4);
}

#[test]
fn a_newer_run_replaces_the_row_and_max_age_filters() {
    let mut benchmarks = Benchmarks::new();
    fold(
        &mut benchmarks,
        0,
        vec![
            result(1, "openai", "coding", 10.0, 1),
            result(1, "openai", "math", 20.0, 1),
            completed(1),
        ],
    );
    fold(
        &mut benchmarks,
        7_200,
        vec![result(2, "openai", "coding", 99.0, 1)],
    );
    let latest = benchmarks.latest(None, TimeDelta::hours(24), at(7_300));
    let coding = latest
        .iter()
        .find(|r| r.category == "coding")
        .expect("coding");
    assert_eq!(
        (coding.run_id, coding.tests, coding.mean_quality),
        (run(2), 1, 99.0)
    );
    assert!(!coding.run_completed);
    // One hour of age: the math row from run 1 (two hours old) is out.
    let fresh = benchmarks.latest(None, TimeDelta::hours(1), at(7_300));
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].category, "coding");
    assert!(benchmarks
        .latest(Some("empathy"), TimeDelta::hours(24), at(0))
        .is_empty());
    // A huge max age does not overflow.
    assert_eq!(benchmarks.latest(None, TimeDelta::MAX, at(0)).len(), 2);
}

#[test]
fn run_summaries_are_bounded() {
    let mut benchmarks = Benchmarks::new();
    let events: Vec<Event> = (0..(BENCHMARK_RUNS_KEPT_MAX as u128 + 5))
        .flat_map(|id| [scheduled(id, &["openai"]), completed(id)])
        .collect();
    fold(&mut benchmarks, 0, events);
    assert_eq!(benchmarks.runs().len(), BENCHMARK_RUNS_KEPT_MAX);
    assert_eq!(benchmarks.runs()[0].run_id, run(5));
    assert!(benchmarks
        .runs()
        .iter()
        .all(|r| r.status == RunStatus::Completed));
}

#[test]
fn narrowing_keeps_one_provider_and_its_runs() {
    let mut benchmarks = Benchmarks::new();
    fold(
        &mut benchmarks,
        0,
        vec![
            scheduled(1, &["openai"]),
            result(1, "openai", "coding", 10.0, 1),
            scheduled(2, &["groq"]),
            result(2, "groq", "coding", 10.0, 1),
        ],
    );
    let groq = benchmarks.narrowed(&ViewFilter::Provider("groq".into()));
    assert_eq!(groq.model().latest.keys().collect::<Vec<_>>(), ["groq"]);
    assert_eq!(groq.runs().len(), 1);
    assert_eq!(groq.runs()[0].run_id, run(2));
    // Events outside the benchmarks stream are ignored.
    let mut other = Benchmarks::new();
    other.apply(&envelope_at("request-1", 0, at(0), completed(1)));
    assert_eq!(other.model(), &BenchmarksModel::default());
}

#[test]
fn folding_across_a_snapshot_restore_equals_one_fold() {
    let mut benchmarks = Benchmarks::new();
    let events = fold(
        &mut benchmarks,
        0,
        vec![
            scheduled(1, &["openai", "groq"]),
            started(1),
            result(1, "openai", "coding", 33.3, 1_000),
            result(1, "groq", "coding", 66.6, 2_000),
            result(1, "openai", "coding", 12.5, 1_500),
            completed(1),
            result(2, "openai", "coding", 50.0, 1),
        ],
    );
    assert_restore_equivalence(Benchmarks::new, &events);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_benchmark_history_survives_restore(raw in proptest::collection::vec((0u8..4, 0u128..30, 0u8..2, 0u8..2, 0.0f64..100.0), 0..60)) {
        let events: Vec<Envelope> = raw.into_iter().enumerate().map(|(i, (kind, id, provider, category, quality))| {
            let provider = ["openai", "groq"][usize::from(provider)];
            let category = ["coding", "math"][usize::from(category)];
            let event = match kind {
                0 => scheduled(id, &[provider]),
                1 => started(id),
                2 => result(id, provider, category, quality, 7),
                _ => completed(id),
            };
            envelope_at(BENCHMARK_STREAM, i as u64, at(i as i64), event)
        }).collect();
        assert_restore_equivalence(Benchmarks::new, &events);
    }
}
