//! As-of replay against the embedded log: a replay to position `p` (or to the time
//! of the event at `p`) equals the live runner's model when it stood at `p`.

mod support;

use std::time::Duration;

use support::{append_mixed, last_position, open_store, options, Counting, WAIT};
use tutorlog_projections::{
    replay_filtered_with_progress, replay_until, replay_until_with_progress, Projection,
    ProjectionRunner, StreamStats, Until, REPLAY_CHUNK_EVENTS,
};
use tutorlog_store::EventStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_until_a_position_or_time_equals_the_live_model_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("log"));
    let snapshot_dir = dir.path().join("snapshots");
    let stats =
        ProjectionRunner::start(store.clone(), StreamStats::new(), options(&snapshot_dir, 5))
            .await
            .expect("start stream_stats");
    let counting = ProjectionRunner::start(
        store.clone(),
        Counting::default(),
        options(&snapshot_dir, 5),
    )
    .await
    .expect("start counting");

    for index in 0..4 {
        append_mixed(&store, &format!("early-{index}"), 3).await;
    }
    let p = last_position(&store);
    stats.reader().wait_for(p, WAIT).await.expect("fold");
    counting.reader().wait_for(p, WAIT).await.expect("fold");
    // Nothing else was appended, so the runners stand exactly at p.
    let (stats_at_p, stats_next) = stats.reader().model();
    let (counting_at_p, counting_next) = counting.reader().model();
    assert_eq!((stats_next, counting_next), (p + 1, p + 1));
    let recorded_at_p = store.read_all(p, 1).await.expect("read")[0].recorded_at;

    // Later events carry a later timestamp.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for index in 0..3 {
        append_mixed(&store, &format!("late-{index}"), 4).await;
    }
    let last = last_position(&store);
    stats.reader().wait_for(last, WAIT).await.expect("fold");
    counting.reader().wait_for(last, WAIT).await.expect("fold");
    let stats_now = stats.reader().model().0;
    let counting_now = counting.reader().model().0;

    for until in [Until::Position(p), Until::Time(recorded_at_p)] {
        let replayed = replay_until(store.as_ref(), StreamStats::new(), until)
            .await
            .expect("replay stream_stats");
        assert_eq!(replayed.projection.model(), &stats_at_p, "{until:?}");
        assert_eq!(replayed.next_position, p + 1);
        let replayed = replay_until(store.as_ref(), Counting::default(), until)
            .await
            .expect("replay counting");
        assert_eq!(replayed.projection.model(), &counting_at_p, "{until:?}");
    }
    for until in [
        Until::Position(last),
        Until::Position(u64::MAX),
        Until::Time(chrono::Utc::now()),
    ] {
        let replayed = replay_until(store.as_ref(), StreamStats::new(), until)
            .await
            .expect("replay to the end");
        assert_eq!(replayed.projection.model(), &stats_now, "{until:?}");
        let replayed = replay_until(store.as_ref(), Counting::default(), until)
            .await
            .expect("replay to the end");
        assert_eq!(replayed.projection.model(), &counting_now, "{until:?}");
        assert_eq!(replayed.next_position, last + 1);
    }
    let before = recorded_at_p - chrono::Duration::days(1);
    let replayed = replay_until(store.as_ref(), StreamStats::new(), Until::Time(before))
        .await
        .expect("replay before the log");
    assert_eq!(replayed.next_position, 0);
    assert_eq!(replayed.projection.model(), &Default::default());

    stats.shutdown().await.expect("shutdown");
    counting.shutdown().await.expect("shutdown");
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_in_chunks_and_reports_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("log"));
    let total = 2 * REPLAY_CHUNK_EVENTS + 100;
    append_mixed(&store, "bulk-a", total / 2).await;
    append_mixed(&store, "bulk-b", total - total / 2).await;

    let mut reports = Vec::new();
    let replayed = replay_until_with_progress(
        store.as_ref(),
        StreamStats::new(),
        Until::Position(u64::MAX),
        |progress| reports.push(progress),
    )
    .await
    .expect("replay");
    let model = replayed.projection.model();
    assert_eq!(model.events_total, total as u64);
    assert_eq!(model.stream_count, 2);
    assert_eq!(replayed.skipped_events, model.events_of_unknown_type);
    assert_eq!(reports.len(), 3);
    assert!(reports
        .windows(2)
        .all(|w| w[0].next_position < w[1].next_position));
    let final_report = reports.last().expect("reports");
    assert_eq!(final_report.next_position, total as u64);
    assert_eq!(final_report.end_position, total as u64);

    let mut reports = Vec::new();
    let bound = REPLAY_CHUNK_EVENTS as u64 + 10;
    let replayed = replay_until_with_progress(
        store.as_ref(),
        Counting::default(),
        Until::Position(bound),
        |progress| reports.push(progress),
    )
    .await
    .expect("replay");
    assert_eq!(replayed.next_position, bound + 1);
    assert_eq!(replayed.projection.model().events, bound + 1);
    assert_eq!(reports.last().map(|r| r.end_position), Some(bound + 1));
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_replay_folds_only_the_kept_events_and_ends_where_a_full_one_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir.path().join("log"));
    append_mixed(&store, "kept", 5).await;
    append_mixed(&store, "other", 7).await;
    append_mixed(&store, "kept", 3).await;
    let bound = last_position(&store) - 1;
    let replayed = replay_filtered_with_progress(
        store.as_ref(),
        StreamStats::new(),
        Until::Position(bound),
        |event| event.stream == "kept",
        |_| {},
    )
    .await
    .expect("replay");
    assert_eq!(
        replayed.next_position,
        bound + 1,
        "the same bound as a full replay"
    );
    let model = replayed.projection.model();
    assert_eq!(
        model.events_total, 7,
        "the last kept event is past the bound"
    );
    assert_eq!(model.stream_count, 1);
    store.close();
}
