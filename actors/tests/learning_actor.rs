//! The learner actor through its registry, on a real embedded log: a session
//! survives passivation (the state comes back from the stream), decay over weeks is
//! recorded with an injected clock, and the algorithm registry seeds once.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tutorlog_actors::algo_registry::AlgoCatalog;
use tutorlog_actors::algorithms::AlgoKey;
use tutorlog_actors::content::ItemBank;
use tutorlog_actors::learning::{Learner, LearningPolicy, LearningService};
use tutorlog_actors::{Clock, ManualClock, RegistryConfig, RegistryHandle};
use tutorlog_schemas::{Envelope, Event};
use tutorlog_store::{EmbeddedStore, EventStore};

fn answer_for(service: &LearningService, prompt: &str) -> String {
    service
        .bank()
        .items()
        .iter()
        .find(|item| item.prompt == prompt)
        .map(|item| item.answer.clone())
        .expect("prompt in bank")
}

async fn events(store: &dyn EventStore, stream: &str) -> Vec<Event> {
    store
        .read_stream(stream, 0, 10_000)
        .await
        .expect("read")
        .iter()
        .map(|r| Envelope::decode(r).expect("decode").payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_passivation_and_decay_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let manual = Arc::new(ManualClock::default());
    let clock: Arc<dyn Clock> = manual.clone();
    let catalog = AlgoCatalog::start(Arc::clone(&store), Arc::clone(&clock))
        .await
        .expect("catalog");
    let seeded = store.last_position();
    // A second start (daemon restart) registers nothing new.
    let again = AlgoCatalog::start(Arc::clone(&store), Arc::clone(&clock))
        .await
        .expect("catalog");
    assert_eq!(store.last_position(), seeded);
    assert_eq!(again.active(AlgoKey::Mastery).map(|a| a.version), Some(1));

    let config = RegistryConfig {
        idle_timeout: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    let (learners, _join) =
        RegistryHandle::<Learner>::start(Arc::clone(&store), Arc::clone(&clock), config)
            .await
            .expect("registry");
    let service = LearningService::new(
        learners.clone(),
        catalog,
        Arc::clone(&clock),
        LearningPolicy::default(),
        5,
    );

    let started = service
        .start_training("ada", "algebra", Some(2))
        .await
        .expect("start");
    let first = service
        .round(
            "ada",
            started.session_id,
            &answer_for(&service, &started.prompt),
        )
        .await
        .expect("round 1");
    assert!(first.score >= 90 && first.status == "in_progress");
    assert!(first.mastery_after > first.mastery_before);

    // Idle long enough to be passivated; the next round replays the stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = learners.stats().await.expect("stats");
    assert!(stats.passivated >= 1 && stats.live == 0, "{stats:?}");
    let prompt = first.next_prompt.clone().expect("next prompt");
    let second = service
        .round("ada", started.session_id, &answer_for(&service, &prompt))
        .await
        .expect("round 2");
    assert_eq!(second.status, "completed");
    assert!((second.mastery_before - first.mastery_after).abs() < 1e-12);
    assert!(learners.stats().await.expect("stats").spawned >= 2);

    // Three weeks later a new session first records three weeks of decay.
    manual.advance(TimeDelta::weeks(3) + TimeDelta::hours(1));
    service
        .start_training("ada", "algebra", Some(1))
        .await
        .expect("start again");
    let decayed: Vec<_> = events(store.as_ref(), "learner-ada")
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::MasteryDecayed(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(decayed.len(), 1);
    assert_eq!(decayed[0].weeks, 3);
    assert!((decayed[0].after - second.mastery_after * 0.98_f64.powi(3)).abs() < 1e-9);
    assert!(ItemBank::bundled().len() >= 100);
    learners.shutdown().await;
}
