use super::*;
use crate::conformance::{self, test_event, Harness};

struct Embedded {
    dir: tempfile::TempDir,
    options: StoreOptions,
}

#[async_trait]
impl Harness for Embedded {
    type Store = EmbeddedStore;
    async fn open(&self) -> EmbeddedStore {
        EmbeddedStore::open_with(self.dir.path(), self.options.clone()).expect("open")
    }
    async fn close(&self, store: EmbeddedStore) {
        store.close();
    }
}

fn small() -> StoreOptions {
    // Small segments so the suite crosses many rotations.
    StoreOptions {
        segment_bytes: 16 * 1024,
        preallocate_bytes: 4096,
        ..StoreOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_deferred_append_is_durable_after_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        linger: LINGER_MAX,
        ..StoreOptions::default()
    };
    let store = EmbeddedStore::open_with(dir.path(), options.clone()).expect("open");
    let appending = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append_deferred("held", ExpectedRevision::Any, vec![test_event("kept")])
                .await
        })
    };
    // Wait until the writer holds it (the head has not moved), then close.
    while !store.inner.shared.lingering.load(Ordering::SeqCst) && !appending.is_finished() {
        tokio::task::yield_now().await;
    }
    store.close();
    let appended = appending.await.expect("task").expect("acknowledged");
    drop(store);
    let reopened = EmbeddedStore::open_with(dir.path(), options).expect("reopen");
    let read = reopened.read_stream("held", 0, 10).await.expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].position, appended.position);
    reopened.close();
}

type Outcome = Result<(u64, u64), StoreError>;

/// A callback that sends the append's (first, last) positions to `to`.
fn report_to(to: &std::sync::mpsc::Sender<Outcome>) -> crate::AppendCallback {
    let to = to.clone();
    Box::new(move |appended| {
        let _ = to.send(appended.map(|a| (a.first_position, a.position)));
    })
}

/// A detached append is queued at once and reported once durable; one the log
/// refuses is reported at once; a callback that panics leaves the writer working;
/// a closed log reports `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_append_is_reported_once_durable_and_a_panicking_callback_spares_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(dir.path(), StoreOptions::default()).expect("open");
    let (to, outcomes) = std::sync::mpsc::channel();
    let wait = || {
        outcomes
            .recv_timeout(Duration::from_secs(30))
            .expect("an outcome within 30 s")
    };
    store
        .try_append_detached(
            "detached",
            ExpectedRevision::NoStream,
            vec![test_event("a"), test_event("b")],
            report_to(&to),
        )
        .expect("queued");
    assert_eq!(wait().expect("durable"), (0, 1));
    store
        .try_append_detached(
            "detached",
            ExpectedRevision::Exact(1),
            vec![test_event("c")],
            Box::new(|_| panic!("a callback that panics")),
        )
        .expect("queued");
    // Refused before it reaches the writer: answered before the call returns.
    store
        .try_append_detached(
            "",
            ExpectedRevision::Any,
            vec![test_event("x")],
            report_to(&to),
        )
        .expect("answered");
    assert!(matches!(wait(), Err(StoreError::InvalidInput(_))));
    // Refused by the writer (a stale expected revision), after the panic.
    store
        .try_append_detached(
            "detached",
            ExpectedRevision::Exact(0),
            vec![test_event("stale")],
            report_to(&to),
        )
        .expect("queued");
    assert!(matches!(
        wait(),
        Err(StoreError::WrongExpectedRevision { .. })
    ));
    let plain = store
        .append(
            "detached",
            ExpectedRevision::Exact(2),
            vec![test_event("d")],
        )
        .await
        .expect("the writer still appends");
    assert_eq!(plain.position, 3);
    store.close();
    store
        .try_append_detached(
            "detached",
            ExpectedRevision::Any,
            vec![test_event("late")],
            report_to(&to),
        )
        .expect("answered");
    assert!(matches!(wait(), Err(StoreError::Closed)));
    drop(store);
    let reopened = EmbeddedStore::open_with(dir.path(), StoreOptions::default()).expect("reopen");
    let labels: Vec<String> = reopened
        .read_stream("detached", 0, 10)
        .await
        .expect("read")
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    assert_eq!(labels, ["a", "b", "c", "d"]);
    reopened.close();
}

#[test]
fn a_linger_past_the_maximum_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        linger: LINGER_MAX + Duration::from_millis(1),
        ..StoreOptions::default()
    };
    let refused = EmbeddedStore::open_with(dir.path(), options);
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_default_segments() {
    let harness = Embedded {
        dir: tempfile::tempdir().expect("tempdir"),
        options: StoreOptions {
            segment_bytes: 1 << 20,
            ..StoreOptions::default()
        },
    };
    conformance::run_all(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_small_segments() {
    let harness = Embedded {
        dir: tempfile::tempdir().expect("tempdir"),
        options: small(),
    };
    conformance::run_all(&harness).await;
    let (ids, _) = list_segments(harness.dir.path()).expect("list");
    assert!(
        ids.len() > 5,
        "expected many rotations, got {} segments",
        ids.len()
    );
    let report = verify::verify(harness.dir.path()).expect("verify");
    assert!(report.records > 500 && report.unfinished_tail.is_none());
}

#[tokio::test]
async fn second_writer_is_refused_and_reader_works_alongside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store
        .append("s-1", ExpectedRevision::Any, vec![test_event("a")])
        .await
        .expect("append");
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Locked { .. }) => {}
        other => panic!("second writer opened: {other:?}"),
    }
    let reader = EmbeddedStore::open_read_only(dir.path()).expect("read-only");
    assert_eq!(reader.last_position(), Some(0));
    assert!(matches!(
        reader
            .append("s-1", ExpectedRevision::Any, vec![test_event("b")])
            .await,
        Err(StoreError::ReadOnly)
    ));
    store.close();
    drop(store);
    let again = EmbeddedStore::open(dir.path()).expect("lock released after close");
    assert_eq!(again.last_position(), Some(0));
}

async fn write_some(
    dir: &std::path::Path,
    options: StoreOptions,
    count: usize,
) -> Vec<RecordedEvent> {
    let store = EmbeddedStore::open_with(dir, options).expect("open");
    for i in 0..count {
        store
            .append(
                &format!("s-{}", i % 3),
                ExpectedRevision::Any,
                vec![test_event(&format!("event number {i}"))],
            )
            .await
            .expect("append");
    }
    let events = store.read_all(0, 10_000).await.expect("read");
    store.close();
    events
}

/// The two shapes an interrupted write leaves: the file cut inside the last
/// record, or the record's bytes only partly present with the writer's zero margin
/// after them. Both recover with the last (unacknowledged) record dropped.
#[tokio::test]
async fn torn_tail_is_truncated_with_nothing_else_lost() {
    for zero_margin in [0usize, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = write_some(dir.path(), StoreOptions::default(), 10).await;
        let path = segment::segment_path(dir.path(), 0);
        let bytes = std::fs::read(&path).expect("read");
        let end = segment::scan_segment(&path, &bytes, false, |_, _| Ok(()))
            .expect("scan")
            .data_end as usize;
        assert_eq!(end, bytes.len(), "a clean close leaves no zero margin");
        let mut torn = bytes[..end - 10].to_vec();
        if zero_margin > 0 {
            torn.resize(end + zero_margin, 0);
        }
        std::fs::write(&path, &torn).expect("write");
        let store = EmbeddedStore::open(dir.path()).expect("recovers");
        let after = store.read_all(0, 100).await.expect("read");
        assert_eq!(after, events[..9].to_vec());
        let result = store
            .append("s-x", ExpectedRevision::Any, vec![test_event("next")])
            .await
            .expect("append after recovery");
        assert_eq!(result.position, 9);
        store.close();
        assert_eq!(verify::verify(dir.path()).expect("verify").records, 10);
    }
}

/// A flipped byte in the final record of a cleanly closed log, or in any record
/// followed by a good one, is damage: open refuses rather than drop it.
/// Removes the index checkpoint, so the next open scans every record (the rules
/// below are those of the scan; [`checkpoint`]'s tests cover the checkpoint path).
fn without_checkpoint(dir: &std::path::Path) {
    let path = dir.join(checkpoint::CHECKPOINT_FILE_NAME);
    if path.exists() {
        std::fs::remove_file(&path).expect("remove the checkpoint");
    }
}

#[tokio::test]
async fn damaged_final_record_is_not_mistaken_for_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_some(dir.path(), StoreOptions::default(), 5).await;
    without_checkpoint(dir.path());
    let path = segment::segment_path(dir.path(), 0);
    let clean = std::fs::read(&path).expect("read");
    for offset in [clean.len() - 1, clean.len() - 30, 3] {
        let mut bytes = clean.clone();
        bytes[offset] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        assert!(
            matches!(
                EmbeddedStore::open(dir.path()),
                Err(StoreError::Corrupt { .. })
            ),
            "flip at {offset} was accepted"
        );
        assert!(
            verify::verify(dir.path()).is_err(),
            "verify passed a flip at {offset}"
        );
    }
}

#[tokio::test]
async fn any_flipped_byte_in_a_sealed_segment_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_some(dir.path(), small(), 600).await;
    without_checkpoint(dir.path());
    let (ids, _) = list_segments(dir.path()).expect("list");
    assert!(ids.len() >= 3);
    let path = segment::segment_path(dir.path(), 1);
    let clean = std::fs::read(&path).expect("read");
    for offset in (0..clean.len()).step_by(37) {
        let mut bytes = clean.clone();
        bytes[offset] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        match verify::verify(dir.path()) {
            Err(StoreError::Corrupt {
                file, offset: at, ..
            }) => {
                assert_eq!(file, path);
                assert!(
                    at <= offset as u64,
                    "reported offset {at} is after the flip at {offset}"
                );
            }
            other => panic!("flip at {offset} not detected: {other:?}"),
        }
        assert!(
            matches!(
                EmbeddedStore::open(dir.path()),
                Err(StoreError::Corrupt { .. })
            ),
            "writer opened a corrupt log"
        );
    }
    std::fs::write(&path, &clean).expect("restore");
    assert!(verify::verify(dir.path()).is_ok());
}

#[tokio::test]
async fn damage_in_the_middle_of_the_active_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_some(dir.path(), StoreOptions::default(), 20).await;
    without_checkpoint(dir.path());
    let path = segment::segment_path(dir.path(), 0);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[40] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let err = EmbeddedStore::open(dir.path()).expect_err("must refuse");
    let message = err.to_string();
    assert!(
        message.contains("0000000000.seg") && message.contains("offset 0"),
        "{message}"
    );
}

#[tokio::test]
async fn oversized_and_empty_appends_are_client_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(dir.path(), small()).expect("open");
    let big = NewEvent::raw("test.big", 1, vec![7; 20 * 1024]);
    let err = store
        .append("s", ExpectedRevision::Any, vec![big])
        .await
        .expect_err("bigger than a segment");
    assert!(err.is_client_error(), "{err}");
    let huge = NewEvent::raw("test.big", 1, vec![7; codec::RECORD_BODY_BYTES_MAX]);
    assert!(store
        .append("s", ExpectedRevision::Any, vec![huge])
        .await
        .expect_err("too big")
        .is_client_error());
    assert_eq!(store.last_position(), None);
}

/// A caught-up `$all` subscription skips reading until the head moves: it still
/// wakes for each new batch, and after a close it delivers everything that was
/// written before it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_all_subscription_wakes_for_new_batches_and_drains_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store
        .append("s-1", ExpectedRevision::Any, vec![test_event("a")])
        .await
        .expect("append");
    let mut all = store.subscribe_all(1);
    let timeout = std::time::Duration::from_secs(10);
    // Caught up: nothing arrives until an append.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(100), all.next())
            .await
            .is_err(),
        "a caught-up subscription must wait"
    );
    for round in 0..5u64 {
        store
            .append("s-2", ExpectedRevision::Any, vec![test_event("b")])
            .await
            .expect("append");
        let event = tokio::time::timeout(timeout, all.next())
            .await
            .expect("woken by the append")
            .expect("not ended")
            .expect("event");
        assert_eq!(event.position, 1 + round);
    }
    // Appends then close, without reading in between: all of them come out, then
    // the end.
    for _ in 0..3 {
        store
            .append("s-3", ExpectedRevision::Any, vec![test_event("c")])
            .await
            .expect("append");
    }
    store.close();
    let mut after_close = Vec::new();
    while let Some(event) = tokio::time::timeout(timeout, all.next())
        .await
        .expect("ends after close")
    {
        after_close.push(event.expect("event").position);
    }
    assert_eq!(after_close, [6, 7, 8]);
}
