//! The conformance suite every [`EventStore`] backend must pass.
//!
//! Checks use fresh, uniquely named streams and measure `$all` from the position
//! they start at, so the suite also runs against a shared server (KurrentDB).
//! Each check panics with a message on failure; backends call [`run_all`] from a
//! test with their own [`Harness`].

use std::{collections::HashSet, sync::Arc};

use async_trait::async_trait;
use tutorlog_schemas::NewEvent;
use uuid::Uuid;

use crate::{EventStore, ExpectedRevision, StoreError};

/// How the suite opens and reopens the backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The backend.
    type Store: EventStore;
    /// Opens the store; after [`Harness::close`] it must reopen the same log.
    async fn open(&self) -> Self::Store;
    /// Closes a store so that it can be reopened (flushes, releases locks).
    async fn close(&self, store: Self::Store);
}

/// Runs every check.
pub async fn run_all<H: Harness>(harness: &H) {
    let store = Arc::new(harness.open().await);
    appends_and_reads_a_stream(store.as_ref()).await;
    deferred_appends_keep_the_append_rules(store.as_ref()).await;
    expected_revision_rules(store.as_ref()).await;
    rejects_invalid_input(store.as_ref()).await;
    one_writer_wins_each_revision(&store).await;
    all_is_totally_ordered(&store).await;
    subscriptions_catch_up_then_go_live(&store).await;
    let Ok(store) = Arc::try_unwrap(store) else {
        panic!("a check leaked a store handle")
    };
    reopen_keeps_everything(harness, store).await;
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7().simple())
}

/// A test event whose payload names its writer and sequence.
pub fn test_event(label: &str) -> NewEvent {
    NewEvent::raw("test.event", 1, label.as_bytes().to_vec())
}

fn label(event: &tutorlog_schemas::RecordedEvent) -> String {
    String::from_utf8_lossy(&event.payload).into_owned()
}

fn start_position<S: EventStore>(store: &S) -> u64 {
    store.last_position().map_or(0, |p| p + 1)
}

/// `append_deferred` is an append: same revisions and positions, same
/// expected-revision check, readable once it returns; `expedite` is harmless.
pub async fn deferred_appends_keep_the_append_rules<S: EventStore>(store: &S) {
    let stream = unique("conf-deferred");
    let first = store
        .append_deferred(&stream, ExpectedRevision::NoStream, vec![test_event("d0")])
        .await
        .expect("deferred append");
    assert_eq!((first.first_revision, first.last_revision), (0, 0));
    assert_eq!(store.last_position(), Some(first.position));
    let refused = store
        .append_deferred(&stream, ExpectedRevision::NoStream, vec![test_event("no")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::WrongExpectedRevision { .. })),
        "a deferred append checks the expected revision: {refused:?}"
    );
    store.expedite();
    let (plain, deferred) = tokio::join!(
        store.append(&stream, ExpectedRevision::Any, vec![test_event("p1")]),
        store.append_deferred(&stream, ExpectedRevision::Any, vec![test_event("d2")]),
    );
    let (plain, deferred) = (plain.expect("plain"), deferred.expect("deferred"));
    assert_ne!(plain.first_revision, deferred.first_revision);
    let read = store.read_stream(&stream, 0, 10).await.expect("read");
    assert_eq!(read.len(), 3);
    assert_eq!(label(&read[0]), "d0");
}

/// Revisions are dense from 0; reads respect `from` and `max`; unknown streams are empty.
pub async fn appends_and_reads_a_stream<S: EventStore>(store: &S) {
    let stream = unique("conf-read");
    let events: Vec<_> = (0..3).map(|i| test_event(&format!("e{i}"))).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    let result = store
        .append(&stream, ExpectedRevision::NoStream, events)
        .await
        .expect("append");
    assert_eq!((result.first_revision, result.last_revision), (0, 2));
    assert_eq!(result.position - result.first_position, 2);
    assert_eq!(store.last_position(), Some(result.position));
    assert_eq!(
        store.stream_revision(&stream).await.expect("revision"),
        Some(2)
    );

    let read = store.read_stream(&stream, 0, 100).await.expect("read");
    assert_eq!(
        read.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(read.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
    assert_eq!(
        read.iter().map(label).collect::<Vec<_>>(),
        vec!["e0", "e1", "e2"]
    );
    assert!(read
        .iter()
        .all(|e| e.stream == stream && e.event_type == "test.event"));

    let middle = store.read_stream(&stream, 1, 1).await.expect("read middle");
    assert_eq!(middle.len(), 1);
    assert_eq!(label(&middle[0]), "e1");
    assert!(store
        .read_stream(&stream, 3, 10)
        .await
        .expect("past end")
        .is_empty());
    assert!(store
        .read_stream(&unique("conf-none"), 0, 10)
        .await
        .expect("unknown")
        .is_empty());
    assert_eq!(
        store
            .stream_revision(&unique("conf-none"))
            .await
            .expect("unknown revision"),
        None
    );

    let all = store
        .read_all(result.first_position, 3)
        .await
        .expect("read all");
    assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
}

fn assert_conflict(result: Result<crate::AppendResult, StoreError>, what: &str) {
    match result {
        Err(StoreError::WrongExpectedRevision { .. }) => {}
        other => panic!("{what}: expected a revision conflict, got {other:?}"),
    }
}

/// `Any`, `NoStream`, `Exists` and `Exact` accept and refuse as documented, and a
/// refused append writes nothing.
pub async fn expected_revision_rules<S: EventStore>(store: &S) {
    let stream = unique("conf-expect");
    assert_conflict(
        store
            .append(&stream, ExpectedRevision::Exists, vec![test_event("x")])
            .await,
        "Exists on a new stream",
    );
    assert_conflict(
        store
            .append(&stream, ExpectedRevision::Exact(0), vec![test_event("x")])
            .await,
        "Exact(0) on a new stream",
    );
    store
        .append(&stream, ExpectedRevision::NoStream, vec![test_event("a")])
        .await
        .expect("NoStream on new");
    let before = store.last_position();
    assert_conflict(
        store
            .append(&stream, ExpectedRevision::NoStream, vec![test_event("x")])
            .await,
        "NoStream on existing",
    );
    assert_conflict(
        store
            .append(&stream, ExpectedRevision::Exact(5), vec![test_event("x")])
            .await,
        "Exact ahead",
    );
    assert_eq!(
        store.last_position(),
        before,
        "a refused append wrote something"
    );
    store
        .append(&stream, ExpectedRevision::Exists, vec![test_event("b")])
        .await
        .expect("Exists");
    store
        .append(&stream, ExpectedRevision::Exact(1), vec![test_event("c")])
        .await
        .expect("Exact(1)");
    let any = store
        .append(
            &stream,
            ExpectedRevision::Any,
            vec![test_event("d"), test_event("e")],
        )
        .await
        .expect("Any");
    assert_eq!((any.first_revision, any.last_revision), (3, 4));
    let labels: Vec<_> = store
        .read_stream(&stream, 0, 10)
        .await
        .expect("read")
        .iter()
        .map(label)
        .collect();
    assert_eq!(labels, vec!["a", "b", "c", "d", "e"]);
}

/// Bad stream names and empty appends are client errors.
pub async fn rejects_invalid_input<S: EventStore>(store: &S) {
    for bad in ["", "$all", "a\nb"] {
        match store
            .append(bad, ExpectedRevision::Any, vec![test_event("x")])
            .await
        {
            Err(StoreError::InvalidInput(_)) => {}
            other => panic!("stream name {bad:?} accepted: {other:?}"),
        }
    }
    match store
        .append(&unique("conf-empty"), ExpectedRevision::Any, vec![])
        .await
    {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("empty append accepted: {other:?}"),
    }
}

/// 100 tasks race with `Exact`: exactly one wins each revision, and every task's
/// event ends up in the stream exactly once when each retries until it wins.
pub async fn one_writer_wins_each_revision<S: EventStore>(store: &Arc<S>) {
    const WRITERS: usize = 100;
    let stream = unique("conf-race");
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![test_event("seed")],
        )
        .await
        .expect("seed");

    // One round: all expect revision 0.
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = Arc::clone(store);
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    &stream,
                    ExpectedRevision::Exact(0),
                    vec![test_event(&format!("round-{i}"))],
                )
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(result) => {
                assert_eq!(result.first_revision, 1);
                wins += 1;
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {}
            Err(other) => panic!("unexpected error in race: {other}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer must win revision 1");

    // Retry until each wins once.
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = Arc::clone(store);
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let current = store.stream_revision(&stream).await.expect("revision");
                let expected = ExpectedRevision::after(current);
                match store
                    .append(&stream, expected, vec![test_event(&format!("w{i}"))])
                    .await
                {
                    Ok(result) => return result.first_revision,
                    Err(StoreError::WrongExpectedRevision { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
        }));
    }
    let mut revisions = HashSet::new();
    for task in tasks {
        assert!(
            revisions.insert(task.await.expect("task")),
            "two writers won the same revision"
        );
    }
    let events = store.read_stream(&stream, 0, 1000).await.expect("read");
    assert_eq!(events.len(), 2 + WRITERS);
    let labels: HashSet<_> = events.iter().skip(2).map(label).collect();
    assert_eq!(
        labels.len(),
        WRITERS,
        "every writer's event is present exactly once"
    );
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, e)| e.revision == i as u64));
}

/// Concurrent appends to many streams: `$all` positions are dense and increasing,
/// time never goes back, and each writer's events keep their order.
pub async fn all_is_totally_ordered<S: EventStore>(store: &Arc<S>) {
    const WRITERS: usize = 8;
    const EVENTS_EACH: usize = 50;
    let start = start_position(store.as_ref());
    let prefix = unique("conf-order");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(store);
        let stream = format!("{prefix}-{w}");
        tasks.push(tokio::spawn(async move {
            for i in 0..EVENTS_EACH {
                let expected = ExpectedRevision::after(i.checked_sub(1).map(|r| r as u64));
                store
                    .append(&stream, expected, vec![test_event(&format!("{w}:{i}"))])
                    .await
                    .expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let mut all = Vec::new();
    let mut from = start;
    loop {
        let chunk = store.read_all(from, 97).await.expect("read all");
        let Some(last) = chunk.last() else { break };
        from = last.position + 1;
        all.extend(chunk);
    }
    let ours: Vec<_> = all
        .iter()
        .filter(|e| e.stream.starts_with(&prefix))
        .collect();
    assert_eq!(ours.len(), WRITERS * EVENTS_EACH);
    assert!(
        all.windows(2).all(|w| w[1].position == w[0].position + 1),
        "positions are not dense"
    );
    assert!(
        all.windows(2).all(|w| w[1].recorded_at >= w[0].recorded_at),
        "time went backwards"
    );
    for w in 0..WRITERS {
        let seq: Vec<_> = ours
            .iter()
            .filter(|e| e.stream == format!("{prefix}-{w}"))
            .map(|e| (e.revision, label(e)))
            .collect();
        let want: Vec<_> = (0..EVENTS_EACH)
            .map(|i| (i as u64, format!("{w}:{i}")))
            .collect();
        assert_eq!(seq, want, "writer {w} out of order");
    }
}

/// The next event of `subscription`, failing the check if none comes in `timeout`.
async fn next_within(
    subscription: &mut crate::Subscription,
    timeout: std::time::Duration,
    what: &str,
) -> tutorlog_schemas::RecordedEvent {
    match tokio::time::timeout(timeout, subscription.next()).await {
        Err(_) => panic!("{what} subscription stalled"),
        Ok(None) => panic!("{what} subscription ended"),
        Ok(Some(Err(error))) => panic!("{what} subscription failed: {error}"),
        Ok(Some(Ok(event))) => event,
    }
}

/// A subscription delivers what is there, then what arrives, with no gap or repeat.
pub async fn subscriptions_catch_up_then_go_live<S: EventStore>(store: &Arc<S>) {
    let start = start_position(store.as_ref());
    let stream = unique("conf-sub");
    let other = unique("conf-sub-other");
    for i in 0..20 {
        store
            .append(
                &stream,
                ExpectedRevision::Any,
                vec![test_event(&format!("old{i}"))],
            )
            .await
            .expect("append");
        store
            .append(&other, ExpectedRevision::Any, vec![test_event("noise")])
            .await
            .expect("noise");
    }
    let mut all = store.subscribe_all(start);
    // Read the way the projections' feed does: one `next`, then what is buffered.
    let mut drained = store.subscribe_all(start);
    let mut one = store.subscribe_stream(&stream, 5);
    let writer = {
        let store = Arc::clone(store);
        let stream = stream.clone();
        let other = other.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                store
                    .append(
                        &stream,
                        ExpectedRevision::Any,
                        vec![test_event(&format!("new{i}"))],
                    )
                    .await
                    .expect("live");
                store
                    .append(&other, ExpectedRevision::Any, vec![test_event("noise")])
                    .await
                    .expect("noise");
                if i % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let timeout = std::time::Duration::from_secs(30);
    let mut positions = Vec::new();
    while positions.len() < 100 {
        positions.push(next_within(&mut all, timeout, "$all").await.position);
    }
    assert_eq!(
        positions,
        (start..start + 100).collect::<Vec<_>>(),
        "$all subscription gap or duplicate"
    );
    let mut drained_positions = Vec::new();
    while drained_positions.len() < 100 {
        let event = next_within(&mut drained, timeout, "drained $all").await;
        drained_positions.push(event.position);
        while let Some(event) = drained.next_buffered() {
            drained_positions.push(event.position);
        }
    }
    drained_positions.truncate(100);
    assert_eq!(
        drained_positions,
        (start..start + 100).collect::<Vec<_>>(),
        "$all subscription read with next_buffered: gap or duplicate"
    );
    let mut labels = Vec::new();
    while labels.len() < 45 {
        let event = next_within(&mut one, timeout, "stream").await;
        assert_eq!(event.revision, 5 + labels.len() as u64);
        labels.push(label(&event));
    }
    let want: Vec<_> = (5..20)
        .map(|i| format!("old{i}"))
        .chain((0..30).map(|i| format!("new{i}")))
        .collect();
    assert_eq!(labels, want);
    writer.await.expect("writer");
}

/// Everything written is there after a close and reopen, and writing continues.
pub async fn reopen_keeps_everything<H: Harness>(harness: &H, store: H::Store) {
    let stream = unique("conf-reopen");
    store
        .append(
            &stream,
            ExpectedRevision::NoStream,
            vec![test_event("before-1"), test_event("before-2")],
        )
        .await
        .expect("append");
    let last = store.last_position();
    let before_all = store
        .read_all(0, crate::READ_EVENTS_MAX)
        .await
        .expect("read all");
    harness.close(store).await;
    let store = harness.open().await;
    assert_eq!(store.last_position(), last);
    let after_all = store
        .read_all(0, crate::READ_EVENTS_MAX)
        .await
        .expect("read all again");
    assert_eq!(before_all, after_all, "log changed across reopen");
    let result = store
        .append(
            &stream,
            ExpectedRevision::Exact(1),
            vec![test_event("after")],
        )
        .await
        .expect("append after reopen");
    assert_eq!(result.first_revision, 2);
    assert_eq!(Some(result.position), last.map(|p| p + 1));
    let labels: Vec<_> = store
        .read_stream(&stream, 0, 10)
        .await
        .expect("read")
        .iter()
        .map(label)
        .collect();
    assert_eq!(labels, vec!["before-1", "before-2", "after"]);
    harness.close(store).await;
}
