//! Criterion micro-benchmarks of the gateway's per-request decisions: the circuit
//! check, the route choice (with category detection and the cost estimate), and a
//! budget decision. Targets (issue 5): circuit check ≤ 1 µs, route selection
//! ≤ 50 µs p99.
//!
//! `cargo bench --bench gateway_hot_paths`

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tutorlog::gateway::{service::input_tokens_upper_bound, types::ChatMessage};
use tutorlog_actors::{
    decider::Decider,
    providers::{
        budget::{Budget, BudgetCommand, BudgetEvent, BudgetState},
        category,
        circuit::{CircuitPhase, CircuitState},
        circuit_view::CircuitView,
        router::{route, CandidateInput, RouteRequest},
    },
};
use tutorlog_schemas::events::BudgetLimitChanged;
use uuid::Uuid;

fn candidates(n: usize) -> Vec<CandidateInput> {
    (0..n)
        .map(|i| CandidateInput {
            provider: format!("provider-{i}"),
            model: format!("model-{i}"),
            priority: (i % 3) as u32 + 1,
            circuit_allows: i % 5 != 4,
            circuit_phase: "closed",
            affordable: i % 7 != 6,
            estimate_micros: 100 * i as u64,
            quality: (i % 2 == 0).then_some(60.0 + i as f64),
            success_rate: Some(0.9),
            latency_ms: Some(200.0 + 10.0 * i as f64),
        })
        .collect()
}

fn bench_circuit(c: &mut Criterion) {
    let closed = CircuitView::new(3, Box::new(|| {}));
    c.bench_function("circuit check (closed)", |b| {
        b.iter(|| black_box(closed.try_acquire(black_box(Utc::now())).is_ok()))
    });
    let now = Utc::now();
    let open = CircuitView::new(3, Box::new(|| {}));
    open.publish(
        &CircuitState {
            phase: CircuitPhase::Open {
                retry_at: now + chrono::TimeDelta::hours(1),
            },
            episode: 1,
            ..CircuitState::default()
        },
        3,
    );
    c.bench_function("circuit check (open, refused)", |b| {
        b.iter(|| black_box(open.try_acquire(black_box(now)).is_err()))
    });
    c.bench_function("circuit peek (allows)", |b| {
        b.iter(|| black_box(closed.allows(black_box(now))))
    });
}

fn bench_route(c: &mut Criterion) {
    let messages = vec![
        ChatMessage {
            role: "system".into(),
            content: "You are a patient tutor.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "I'm stuck: how do I solve 2x + 5 = 15 and why does subtracting work?".into(),
        },
    ];
    for n in [3usize, 10] {
        let input = candidates(n);
        c.bench_function(&format!("route choice ({n} candidates)"), |b| {
            b.iter(|| {
                let text = &black_box(&messages)[1].content;
                let category = category::detect(text);
                let tokens = input_tokens_upper_bound(&messages);
                let decision = route(
                    RouteRequest {
                        category,
                        pinned: false,
                        sticky: Some(("provider-1", category)),
                    },
                    black_box(&input),
                );
                black_box((decision, tokens))
            })
        });
    }
    c.bench_function("category detection", |b| {
        b.iter(|| black_box(category::detect(black_box(&messages[1].content))))
    });
}

fn bench_budget(c: &mut Criterion) {
    let state = Budget::fold(
        BudgetState::default(),
        &[BudgetEvent::LimitChanged(BudgetLimitChanged {
            monthly_micros: 100_000_000,
            per_request_micros: 0,
        })],
    );
    let now = Utc::now();
    c.bench_function("budget reserve decision + fold", |b| {
        b.iter_batched(
            || state.clone(),
            |state| {
                let command = BudgetCommand::Reserve {
                    request_id: Uuid::from_u128(7),
                    model: "m".into(),
                    estimate_micros: 1_000,
                    user_id: None,
                    session_id: None,
                };
                let events = Budget::decide(&state, &command, now).unwrap_or_default();
                black_box(Budget::fold(state, &events))
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench_circuit, bench_route, bench_budget);
criterion_main!(benches);
