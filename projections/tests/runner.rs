//! The projection runner against the embedded log: exactly-once folding across
//! restarts and crashes, untrusted snapshots, the decode policy, read-your-writes
//! waits, and timed snapshots.

mod support;

use std::{fs, time::Duration};

use support::{
    append, append_mixed, assert_exactly_once, last_position, open_store, options, Counting, WAIT,
};
use tutorlog_projections::{
    snapshot::snapshot_path, Projection, ProjectionError, ProjectionRunner, StopReason,
    StreamStats, WaitError,
};
use tutorlog_schemas::NewEvent;

/// Damages the bytes of a snapshot file.
type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

/// How a round of the restart test ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Shutdown,
    Crash,
    StoreClosed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_snapshots_and_never_apply_an_event_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log_dir, snapshot_dir) = (dir.path().join("log"), dir.path().join("snapshots"));
    let endings = [
        Ending::Shutdown,
        Ending::Crash,
        Ending::StoreClosed,
        Ending::Crash,
        Ending::Crash,
        Ending::Shutdown,
    ];
    let mut expected = Vec::new();
    let mut resumed_mid_log = 0;
    for (round, ending) in endings.into_iter().enumerate() {
        let store = open_store(&log_dir);
        let runner = ProjectionRunner::start(
            store.clone(),
            Counting::default(),
            options(&snapshot_dir, 4),
        )
        .await
        .expect("start");
        let reader = runner.reader();
        let status = reader.status();
        if round > 0 {
            assert!(
                status.resumed_from > 0,
                "round {round} did not resume from a snapshot"
            );
            let log_events = last_position(&store) + 1;
            assert!(status.resumed_from <= log_events);
            resumed_mid_log += u32::from(status.resumed_from < log_events);
            reader
                .wait_for(log_events - 1, WAIT)
                .await
                .expect("catch up");
        }
        assert_exactly_once(&reader.model().0, &expected);

        // A batch, then one event at a time (each folded before the next), so that
        // with a snapshot every 4 events the last 2 are past the latest snapshot.
        expected.extend(append_mixed(&store, &format!("batch-{round}"), 9).await);
        reader
            .wait_for(last_position(&store), WAIT)
            .await
            .expect("fold batch");
        for index in 0..6 {
            expected.extend(append_mixed(&store, &format!("single-{round}-{index}"), 1).await);
            reader
                .wait_for(last_position(&store), WAIT)
                .await
                .expect("fold");
        }
        let last = last_position(&store);
        let (model, next_position) = reader.model();
        assert_eq!(next_position, last + 1);
        assert_exactly_once(&model, &expected);

        match ending {
            Ending::Shutdown => {
                let exit = runner.shutdown().await.expect("shutdown");
                assert_eq!(
                    (exit.reason, exit.next_position),
                    (StopReason::Requested, last + 1)
                );
            }
            Ending::Crash => runner.abort().await,
            Ending::StoreClosed => {
                store.close();
                let exit = runner.join().await.expect("join");
                assert_eq!(
                    (exit.reason, exit.next_position),
                    (StopReason::StoreClosed, last + 1)
                );
            }
        }
        store.close();
    }
    assert!(
        resumed_mid_log > 0,
        "no restart exercised snapshot plus tail"
    );

    // A final fold from position 0 agrees with the snapshot-and-tail history.
    let store = open_store(&log_dir);
    let replayed = tutorlog_projections::replay_until(
        store.as_ref(),
        Counting::default(),
        tutorlog_projections::Until::Position(u64::MAX),
    )
    .await
    .expect("replay");
    assert_exactly_once(replayed.projection.model(), &expected);
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_foreign_snapshots_are_ignored_and_the_projection_rebuilds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot_dir = dir.path().join("snapshots");
    let file = snapshot_path(&snapshot_dir, Counting::NAME);

    // A snapshot of a different, shorter log, left in the snapshot directory.
    let other = open_store(&dir.path().join("other-log"));
    append_mixed(&other, "other", 3).await;
    let runner = ProjectionRunner::start(
        other.clone(),
        Counting::default(),
        options(&snapshot_dir, 1_000),
    )
    .await
    .expect("start");
    runner.reader().wait_for(2, WAIT).await.expect("fold");
    runner.shutdown().await.expect("shutdown");
    other.close();
    let foreign = fs::read(&file).expect("snapshot written");

    let store = open_store(&dir.path().join("log"));
    let expected = append_mixed(&store, "main", 10).await;
    let damages: [(&str, Damage); 5] = [
        (
            "from another log",
            Box::new(|bytes| *bytes = foreign.clone()),
        ),
        (
            "flipped model byte",
            Box::new(|bytes| {
                let last = bytes.len() - 2;
                bytes[last] ^= 0x20;
            }),
        ),
        (
            "truncated",
            Box::new(|bytes| bytes.truncate(bytes.len() / 2)),
        ),
        (
            "garbage",
            Box::new(|bytes| *bytes = b"not a snapshot".to_vec()),
        ),
        ("empty", Box::new(Vec::clear)),
    ];
    for (label, damage) in &damages {
        let mut bytes = fs::read(&file).expect("read snapshot");
        damage(&mut bytes);
        fs::write(&file, &bytes).expect("write damaged snapshot");
        let runner = ProjectionRunner::start(
            store.clone(),
            Counting::default(),
            options(&snapshot_dir, 1_000),
        )
        .await
        .expect("start");
        let reader = runner.reader();
        assert_eq!(
            reader.status().resumed_from,
            0,
            "{label}: snapshot was trusted"
        );
        reader.wait_for(9, WAIT).await.expect("rebuild");
        assert_exactly_once(&reader.model().0, &expected);
        // Shutdown writes a good snapshot, which the next start trusts.
        assert_eq!(runner.shutdown().await.expect("shutdown").next_position, 10);
        let runner = ProjectionRunner::start(
            store.clone(),
            Counting::default(),
            options(&snapshot_dir, 1_000),
        )
        .await
        .expect("restart");
        assert_eq!(
            runner.reader().status().resumed_from,
            10,
            "{label}: good snapshot"
        );
        assert_exactly_once(&runner.reader().model().0, &expected);
        runner.shutdown().await.expect("shutdown");
    }
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_are_skipped_and_other_decode_errors_stop_the_runner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot_dir = dir.path().join("snapshots");
    let store = open_store(&dir.path().join("log"));
    let runner = ProjectionRunner::start(
        store.clone(),
        StreamStats::new(),
        options(&snapshot_dir, 1_000),
    )
    .await
    .expect("start");
    let reader = runner.reader();
    append(
        &store,
        "s",
        vec![
            NewEvent::raw("future.thing", 1, vec![1, 2, 3]),
            support::mixed_event(0),
            NewEvent::raw("future.other", 7, Vec::new()),
        ],
    )
    .await;
    reader.wait_for(2, WAIT).await.expect("fold");
    assert_eq!(reader.status().skipped_events, 2);
    let model = reader.model().0;
    assert_eq!((model.events_total, model.events_of_unknown_type), (3, 2));

    // A known type whose payload does not decode, then a later good event.
    append(
        &store,
        "s",
        vec![NewEvent::raw("training.started", 2, vec![0xff])],
    )
    .await;
    append(&store, "s", vec![support::mixed_event(1)]).await;
    let waited = reader.wait_for(4, WAIT).await;
    assert!(
        matches!(
            waited,
            Err(WaitError::Stopped {
                next_position: 3,
                ..
            })
        ),
        "{waited:?}"
    );
    let error = runner
        .join()
        .await
        .expect_err("decode error stops the runner");
    assert!(
        matches!(error, ProjectionError::Decode { position: 3, ref event_type, .. } if event_type == "training.started"),
        "{error}"
    );
    assert_eq!(
        reader.model().0.events_total,
        3,
        "the bad event was not applied"
    );

    // A restart resumes from the snapshot written on the way out and stops again at
    // the same event: it is never skipped.
    let runner = ProjectionRunner::start(
        store.clone(),
        StreamStats::new(),
        options(&snapshot_dir, 1_000),
    )
    .await
    .expect("restart");
    assert_eq!(runner.reader().status().resumed_from, 3);
    let error = runner.join().await.expect_err("stops again");
    assert!(
        matches!(error, ProjectionError::Decode { position: 3, .. }),
        "{error}"
    );
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_is_bounded_and_sees_later_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("log"));
    let runner = ProjectionRunner::start(
        store.clone(),
        Counting::default(),
        options(dir.path(), 1_000),
    )
    .await
    .expect("start");
    let reader = runner.reader();
    let waited = reader.wait_for(0, Duration::from_millis(50)).await;
    assert!(
        matches!(
            waited,
            Err(WaitError::Timeout {
                position: 0,
                next_position: 0,
                ..
            })
        ),
        "{waited:?}"
    );

    let waiter = tokio::spawn({
        let reader = reader.clone();
        async move { reader.wait_for(4, WAIT).await }
    });
    let mut expected = append_mixed(&store, "a", 2).await;
    expected.extend(append_mixed(&store, "b", 3).await);
    waiter
        .await
        .expect("waiter task")
        .expect("reached position 4");
    // Once wait_for returns, the published model includes the position.
    let (model, next_position) = reader.model();
    assert!(next_position >= 5);
    assert_exactly_once(&model, &expected);
    reader
        .wait_for(0, Duration::ZERO)
        .await
        .expect("already applied");

    runner.shutdown().await.expect("shutdown");
    let waited = reader.wait_for(5, WAIT).await;
    assert!(
        matches!(waited, Err(WaitError::Stopped { .. })),
        "{waited:?}"
    );
    reader
        .wait_for(4, Duration::ZERO)
        .await
        .expect("still applied after stop");
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_written_on_a_timer_once_something_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot_dir = dir.path().join("snapshots");
    let store = open_store(&dir.path().join("log"));
    let options = tutorlog_projections::RunnerOptions {
        snapshot_interval: Duration::from_millis(50),
        ..options(&snapshot_dir, 1_000_000)
    };
    let runner = ProjectionRunner::start(store.clone(), Counting::default(), options)
        .await
        .expect("start");
    let reader = runner.reader();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        reader.status().snapshot_next_position,
        None,
        "nothing to snapshot yet"
    );

    append_mixed(&store, "s", 3).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while reader.status().snapshot_next_position != Some(3) {
        assert!(tokio::time::Instant::now() < deadline, "no timed snapshot");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(snapshot_path(&snapshot_dir, Counting::NAME).exists());
    // A crash now loses nothing: the timed snapshot is current.
    runner.abort().await;
    let runner = ProjectionRunner::start(
        store.clone(),
        Counting::default(),
        options_for(&snapshot_dir),
    )
    .await
    .expect("restart");
    assert_eq!(runner.reader().status().resumed_from, 3);
    runner.shutdown().await.expect("shutdown");
    store.close();
}

fn options_for(snapshot_dir: &std::path::Path) -> tutorlog_projections::RunnerOptions {
    options(snapshot_dir, 1_000)
}
