//! What one event costs each projection runner: decode (`Envelope::decode`) plus
//! `apply`, over a synthetic mix of learner, budget, circuit, gateway and benchmark
//! events. Every runner decodes every event on its own, so the daemon pays
//! `decode_and_fold/all_seven` per event; `decode_once_fold_seven` is what a shared
//! decode would cost instead.
//!
//! `cargo bench -p tutorlog-projections --bench fold -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tutorlog_projections::{
    AlgoRuns, Benchmarks, Mastery, Projection, ProviderHealth, Routing, Spend, StreamStats,
};
use tutorlog_schemas::{
    events::{
        AlgoRunRecord, BenchmarkResultRecorded, BudgetCommitted, BudgetReserved, CallSource, Event,
        ExecutionRecorded, FeedbackRecorded, ProviderQueryCompleted, ProviderSelected,
        RouteCandidate, TrainingRoundCompleted,
    },
    Envelope, RecordedEvent,
};
use uuid::Uuid;

const EVENTS: usize = 10_000;

fn round(index: usize) -> Event {
    let at = DateTime::<Utc>::from_timestamp(1_800_000_000 + index as i64, 0).unwrap_or_default();
    Event::TrainingRoundCompleted(TrainingRoundCompleted {
        session_id: Uuid::from_u128(index as u128 / 5),
        round_id: Uuid::from_u128(index as u128),
        round_number: (index % 5) as u32 + 1,
        focus_area: "algebra".into(),
        item_id: format!("algebra-{:03}", index % 100),
        response_digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        score: 80,
        correct: true,
        feedback: "Correct: the sign flips when both sides are multiplied by -1.".into(),
        mistake_tag: None,
        mastery_before: 50.0,
        mastery_after: 55.0,
        probability_after: 0.55,
        next_review_due: Some(at),
        revision_card: "{\"ease\":2.5,\"interval_days\":3}".into(),
        completed_at: at,
        algo_runs: vec![AlgoRunRecord {
            run_id: Uuid::from_u128(1 << 64 | index as u128),
            key: "mastery".into(),
            version: 1,
            params_checksum: "ab".repeat(32),
            input_summary: "{\"correct\":true}".into(),
            output_summary: "{\"p\":0.55}".into(),
        }],
    })
}

fn execution(index: usize) -> Event {
    Event::ExecutionRecorded(ExecutionRecorded {
        request_id: Uuid::from_u128(index as u128),
        source: CallSource::OpenAi,
        provider: Some(["openai", "groq"][index % 2].into()),
        model: Some("gpt-4o-mini".into()),
        category: ["coding", "math", "general"][index % 3].into(),
        session_id: Some(format!("s{}", index / 10)),
        user_id: Some(format!("u{}", index % 500)),
        success: !index.is_multiple_of(17),
        attempts: 1,
        streamed: index.is_multiple_of(2),
        duration_micros: 20_000 + index as u64 % 5_000,
        quality: None,
        cost_estimate_micros: 300,
        cost_actual_micros: 250,
        input_tokens: 120,
        output_tokens: 80,
        error_kind: None,
        request_messages: None,
        response_text: None,
    })
}

/// A mix in the proportions of a gateway-heavy day: per request, a selection, a
/// reservation, a call, a commit and an execution record; plus rounds, feedback and
/// benchmark results.
fn event(index: usize) -> (String, Event) {
    let request = Uuid::from_u128(index as u128);
    let provider = ["openai", "groq"][index % 2];
    match index % 10 {
        0 | 1 => (format!("learner-u{}", index % 500), round(index)),
        2 => (
            format!("request-{request}"),
            Event::ProviderSelected(ProviderSelected {
                request_id: request,
                session_id: None,
                user_id: Some("u1".into()),
                category: "coding".into(),
                requested_model: "auto".into(),
                candidates: vec![RouteCandidate {
                    provider: provider.into(),
                    model: "gpt-4o-mini".into(),
                    score: 0.8,
                    eligible: true,
                    reason: "best_score".into(),
                }],
                chosen_provider: Some(provider.into()),
                chosen_model: Some("gpt-4o-mini".into()),
                reason: "best_score".into(),
            }),
        ),
        3 => (
            format!("budget-{provider}"),
            Event::BudgetReserved(BudgetReserved {
                request_id: request,
                model: "gpt-4o-mini".into(),
                estimate_micros: 300,
                period: "2027-01".into(),
                user_id: Some(format!("u{}", index % 500)),
                session_id: Some(format!("s{}", index / 10)),
            }),
        ),
        4 => (
            format!("circuit-{provider}"),
            Event::ProviderQueryCompleted(ProviderQueryCompleted {
                request_id: request,
                model: "gpt-4o-mini".into(),
                latency_micros: 20_000 + index as u64 % 7_000,
                trial: false,
            }),
        ),
        5 => (
            format!("budget-{provider}"),
            Event::BudgetCommitted(BudgetCommitted {
                // The reservation two events back.
                request_id: Uuid::from_u128(index as u128 - 2),
                actual_micros: 250,
                input_tokens: 120,
                output_tokens: 80,
                price_version: "v1".into(),
                period: "2027-01".into(),
            }),
        ),
        6 | 7 => (format!("request-{request}"), execution(index)),
        8 => (
            format!("request-{request}"),
            Event::FeedbackRecorded(FeedbackRecorded {
                request_id: Uuid::from_u128(index as u128 - 2),
                rating: Some(4),
                accepted: Some(true),
                quality: None,
                comment: None,
            }),
        ),
        _ => (
            "benchmarks".into(),
            Event::BenchmarkResultRecorded(BenchmarkResultRecorded {
                run_id: Uuid::from_u128(index as u128 / 100),
                provider: provider.into(),
                model: "gpt-4o-mini".into(),
                category: "coding".into(),
                test_id: "coding-1".into(),
                quality: 90.0,
                latency_micros: 30_000,
                cost_micros: 20,
                success: true,
                error_kind: None,
            }),
        ),
    }
}

fn recorded_events() -> Vec<RecordedEvent> {
    (0..EVENTS)
        .map(|index| {
            let (stream, event) = event(index);
            RecordedEvent {
                position: index as u64,
                stream,
                revision: 0,
                event_id: Uuid::from_u128(index as u128),
                recorded_at: DateTime::<Utc>::from_timestamp(1_800_000_000 + index as i64, 0)
                    .unwrap_or_default(),
                event_type: event.event_type().into(),
                schema_version: event.schema_version(),
                correlation_id: None,
                causation_id: None,
                payload: event.encode().expect("encode"),
            }
        })
        .collect()
}

fn fold_one<P: Projection>(projection: &mut P, recorded: &RecordedEvent) {
    let envelope = Envelope::decode(recorded).expect("decode");
    projection.apply_raw(recorded);
    projection.apply(&envelope);
}

/// The seven views the daemon runs, each with its own decode.
#[derive(Default)]
struct Seven {
    stats: StreamStats,
    mastery: Mastery,
    algo_runs: AlgoRuns,
    spend: Spend,
    health: ProviderHealth,
    benchmarks: Benchmarks,
    routing: Routing,
}

impl Seven {
    fn decode_each(&mut self, recorded: &RecordedEvent) {
        fold_one(&mut self.stats, recorded);
        fold_one(&mut self.mastery, recorded);
        fold_one(&mut self.algo_runs, recorded);
        fold_one(&mut self.spend, recorded);
        fold_one(&mut self.health, recorded);
        fold_one(&mut self.benchmarks, recorded);
        fold_one(&mut self.routing, recorded);
    }

    fn decode_once(&mut self, recorded: &RecordedEvent) {
        let envelope = Envelope::decode(recorded).expect("decode");
        self.stats.apply_raw(recorded);
        self.mastery.apply(&envelope);
        self.algo_runs.apply(&envelope);
        self.spend.apply(&envelope);
        self.health.apply(&envelope);
        self.benchmarks.apply(&envelope);
        self.routing.apply(&envelope);
    }
}

fn bench_one<P: Projection + Default>(c: &mut Criterion, events: &[RecordedEvent]) {
    let mut group = c.benchmark_group("decode_and_fold");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(P::NAME, |b| {
        b.iter_batched_ref(
            P::default,
            |projection| events.iter().for_each(|e| fold_one(projection, e)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let events = recorded_events();
    let mut group = c.benchmark_group("decode_only");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("envelope_decode", |b| {
        b.iter(|| {
            for recorded in &events {
                std::hint::black_box(Envelope::decode(recorded).expect("decode"));
            }
        })
    });
    group.finish();
    bench_one::<StreamStats>(c, &events);
    bench_one::<Mastery>(c, &events);
    bench_one::<AlgoRuns>(c, &events);
    bench_one::<Spend>(c, &events);
    bench_one::<ProviderHealth>(c, &events);
    bench_one::<Benchmarks>(c, &events);
    bench_one::<Routing>(c, &events);
    let mut group = c.benchmark_group("daemon");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("all_seven_decode_each", |b| {
        b.iter_batched_ref(
            Seven::default,
            |seven| events.iter().for_each(|e| seven.decode_each(e)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("all_seven_decode_once", |b| {
        b.iter_batched_ref(
            Seven::default,
            |seven| events.iter().for_each(|e| seven.decode_once(e)),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(fold, benches);
criterion_main!(fold);
