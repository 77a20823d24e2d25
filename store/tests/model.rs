//! Property test: the embedded log behaves like a simple in-memory model across
//! random appends (with every kind of expected revision), reads and reopens, on
//! segments small enough that rotation happens often.

use proptest::prelude::*;
use tutorlog_store::{
    embedded::verify::verify, EmbeddedStore, EventStore, ExpectedRevision, NewEvent, StoreError,
    StoreOptions,
};

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: u8,
        expected: Expect,
        sizes: Vec<usize>,
    },
    Reopen,
    /// An explicit index checkpoint (reopens also start from the one written on close).
    Checkpoint,
    ReadStream {
        stream: u8,
        from: u64,
        max: usize,
    },
    ReadAll {
        from: u64,
        max: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    NoStream,
    Exists,
    /// The model's current revision plus this offset (0 = correct).
    ExactOff(i8),
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::Exists),
        (-1i8..=1).prop_map(Expect::ExactOff),
        Just(Expect::ExactOff(0)),
    ];
    prop_oneof![
        6 => (0u8..4, expect, proptest::collection::vec(0usize..700, 1..5)).prop_map(|(stream, expected, sizes)| Op::Append { stream, expected, sizes }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        2 => (0u8..4, 0u64..12, 1usize..8).prop_map(|(stream, from, max)| Op::ReadStream { stream, from, max }),
        2 => (0u64..60, 1usize..40).prop_map(|(from, max)| Op::ReadAll { from, max }),
    ]
}

fn options() -> StoreOptions {
    StoreOptions {
        segment_bytes: 8 * 1024,
        preallocate_bytes: 4096,
        ..StoreOptions::default()
    }
}

/// The model: the log as a vector of (stream, payload).
#[derive(Default)]
struct Model {
    log: Vec<(String, Vec<u8>)>,
}

impl Model {
    fn revision(&self, stream: &str) -> Option<u64> {
        (self.log.iter().filter(|(s, _)| s == stream).count() as u64).checked_sub(1)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let mut store = EmbeddedStore::open_with(dir.path(), options())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut model = Model::default();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append {
                    stream,
                    expected,
                    sizes,
                } => {
                    let stream = format!("s-{stream}");
                    let current = model.revision(&stream);
                    let expected = match expected {
                        Expect::Any => ExpectedRevision::Any,
                        Expect::NoStream => ExpectedRevision::NoStream,
                        Expect::Exists => ExpectedRevision::Exists,
                        Expect::ExactOff(off) => ExpectedRevision::Exact(
                            current.unwrap_or(0).saturating_add_signed(i64::from(off)),
                        ),
                    };
                    let payloads: Vec<Vec<u8>> = sizes
                        .iter()
                        .enumerate()
                        .map(|(i, &size)| {
                            let mut p = format!("{n}:{i}:").into_bytes();
                            p.resize(size.max(p.len()), b'x');
                            p
                        })
                        .collect();
                    let events = payloads
                        .iter()
                        .map(|p| NewEvent::raw("model.event", 1, p.clone()))
                        .collect();
                    let result = store.append(&stream, expected, events).await;
                    if expected.matches(current) {
                        let result = result
                            .map_err(|e| TestCaseError::fail(format!("append refused: {e}")))?;
                        prop_assert_eq!(result.first_position, model.log.len() as u64);
                        prop_assert_eq!(result.first_revision, current.map_or(0, |r| r + 1));
                        for p in payloads {
                            model.log.push((stream.clone(), p));
                        }
                    } else {
                        prop_assert!(
                            matches!(result, Err(StoreError::WrongExpectedRevision { .. })),
                            "expected conflict, got {:?}",
                            result
                        );
                    }
                }
                Op::Reopen => {
                    store.close();
                    drop(store);
                    store = EmbeddedStore::open_with(dir.path(), options())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                Op::Checkpoint => {
                    let covered = store
                        .checkpoint()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(
                        covered.map(|c| c.records),
                        store.last_position().map(|p| p + 1)
                    );
                }
                Op::ReadStream { stream, from, max } => {
                    let stream = format!("s-{stream}");
                    let got = store
                        .read_stream(&stream, from, max)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let want: Vec<_> = model
                        .log
                        .iter()
                        .enumerate()
                        .filter(|(_, (s, _))| *s == stream)
                        .skip(from as usize)
                        .take(max)
                        .collect();
                    prop_assert_eq!(got.len(), want.len());
                    for (event, (position, (_, payload))) in got.iter().zip(want) {
                        prop_assert_eq!(event.position, position as u64);
                        prop_assert_eq!(&event.payload, payload);
                    }
                }
                Op::ReadAll { from, max } => {
                    let got = store
                        .read_all(from, max)
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let want: Vec<_> = model.log.iter().skip(from as usize).take(max).collect();
                    prop_assert_eq!(got.len(), want.len());
                    for (i, (event, (stream, payload))) in got.iter().zip(want).enumerate() {
                        prop_assert_eq!(event.position, from + i as u64);
                        prop_assert_eq!(&event.stream, stream);
                        prop_assert_eq!(&event.payload, payload);
                    }
                }
            }
            prop_assert_eq!(
                store.last_position(),
                (model.log.len() as u64).checked_sub(1)
            );
        }
        store.close();
        let report = verify(dir.path()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(report.records, model.log.len() as u64);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
