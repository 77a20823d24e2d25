use super::*;
use crate::decider::reference_time;

fn item(id: &str) -> ItemChoice {
    ItemChoice {
        item_id: id.into(),
        category: "algebra".into(),
        prompt: format!("prompt {id}"),
        difficulty: "easy".into(),
        algo_runs: Vec::new(),
    }
}

const SESSION: Uuid = Uuid::from_u128(0x10);

fn round_id(n: u128) -> Uuid {
    Uuid::from_u128(0x100 + n)
}

fn start(rounds: u32) -> LearnerCommand {
    LearnerCommand::StartTraining {
        session_id: SESSION,
        round_id: round_id(1),
        user_id: "ada".into(),
        focus_area: "algebra".into(),
        rounds,
        provider_plan: Vec::new(),
        first_item: item("a1"),
        policy: LearningPolicy::default(),
    }
}

fn answer(expected: u128, before: f64, after: f64, next: Option<&str>) -> LearnerCommand {
    LearnerCommand::CompleteRound {
        session_id: SESSION,
        expected_round_id: round_id(expected),
        next_round_id: round_id(expected + 1),
        response_digest: "d".into(),
        grade: GradeResult {
            score: 100,
            correct: true,
            feedback: "right".into(),
            mistake_tag: None,
        },
        mastery: MasteryResult {
            before,
            after,
            probability_after: after / 100.0,
            next_review_due: None,
            revision_card: String::new(),
            algo_runs: Vec::new(),
        },
        next_item: next.map(item),
        policy: LearningPolicy::default(),
    }
}

/// Runs a command at `now` against the folded `history`, returning the new events.
fn run(
    history: &[Event],
    command: LearnerCommand,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let state = Learner::fold(LearnerState::default(), history);
    Learner::decide(&state, &command, now)
}

fn history_after_start() -> Vec<Event> {
    run(&[], start(2), reference_time()).expect("start")
}

#[test]
fn start_puts_the_first_round() {
    let events = history_after_start();
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[0], Event::TrainingStarted(s) if s.rounds == 2 && s.focus_area == "algebra")
    );
    assert!(
        matches!(&events[1], Event::TrainingRoundStarted(r) if r.round_number == 1 && r.item_id == "a1" && r.started_at == reference_time())
    );
    let state = Learner::given(events).state().clone();
    let session = state.sessions.get(&SESSION).expect("session");
    assert_eq!(session.status, SessionStatus::Active);
    assert_eq!(
        session.current.as_ref().map(|c| c.round_id),
        Some(round_id(1))
    );
}

#[test]
fn start_validates_rounds_and_focus_area() {
    let mut bad = start(0);
    Learner::given([])
        .when(bad.clone())
        .then_err(Rejection::Invalid {
            field: "rounds",
            reason: format!("must be 1 to {ROUNDS_MAX}, got 0"),
        });
    if let LearnerCommand::StartTraining {
        rounds, focus_area, ..
    } = &mut bad
    {
        *rounds = 5;
        *focus_area = String::new();
    }
    assert!(matches!(
        Learner::given([]).when(bad).result(),
        Err(Rejection::Invalid {
            field: "focus_area",
            ..
        })
    ));
    Learner::given(history_after_start())
        .when(start(5))
        .then_err(Rejection::DuplicateId(SESSION));
}

#[test]
fn a_session_completes_after_its_rounds_and_then_refuses_rounds() {
    let mut history = history_after_start();
    let now = reference_time() + TimeDelta::minutes(1);
    let first = run(&history, answer(1, 0.0, 30.0, Some("a2")), now).expect("round 1");
    assert!(
        matches!(&first[0], Event::TrainingRoundCompleted(r) if r.round_number == 1 && r.mastery_after == 30.0 && r.completed_at == now)
    );
    assert!(matches!(&first[1], Event::MasteryImproved(m) if m.after == 30.0 && !m.mastered));
    assert!(
        matches!(&first[2], Event::TrainingRoundStarted(r) if r.round_number == 2 && r.item_id == "a2")
    );
    history.extend(first);
    let second = run(&history, answer(2, 30.0, 85.0, Some("a3")), now).expect("round 2");
    assert!(matches!(&second[1], Event::MasteryImproved(m) if m.mastered));
    assert!(matches!(&second[2], Event::TrainingCompleted(c) if c.rounds_completed == 2));
    history.extend(second);
    let state = Learner::given(history.clone()).state().clone();
    let entry = state.mastery.get("algebra").expect("mastery");
    assert_eq!((entry.attempts, entry.streak, entry.score), (2, 2, 85.0));
    assert_eq!(
        state.sessions.get(&SESSION).map(|s| s.status),
        Some(SessionStatus::Completed)
    );
    Learner::given(history)
        .when(answer(3, 85.0, 90.0, None))
        .then_err(Rejection::SessionCompleted(SESSION));
}

#[test]
fn unknown_session_and_stale_round_are_refused() {
    Learner::given([])
        .when(answer(1, 0.0, 10.0, None))
        .then_err(Rejection::UnknownSession(SESSION));
    Learner::given(history_after_start())
        .when(answer(7, 0.0, 10.0, None))
        .then_err(Rejection::Stale);
    // A practised area must start from the state's score.
    let mut history = history_after_start();
    history
        .extend(run(&history, answer(1, 0.0, 30.0, Some("a2")), reference_time()).expect("round"));
    Learner::given(history)
        .when(answer(2, 12.0, 10.0, None))
        .then_err(Rejection::Stale);
}

#[test]
fn pause_blocks_rounds_until_resume() {
    let policy = LearningPolicy::default();
    let mut history = history_after_start();
    let paused = run(
        &history,
        LearnerCommand::Pause {
            session_id: SESSION,
            reason: PauseReason::Budget,
            policy,
        },
        reference_time(),
    )
    .expect("pause");
    assert_eq!(
        paused,
        vec![Event::TrainingPaused(TrainingPaused {
            session_id: SESSION,
            reason: PauseReason::Budget
        })]
    );
    history.extend(paused);
    Learner::given(history.clone())
        .when(answer(1, 0.0, 10.0, None))
        .then_err(Rejection::SessionPaused(SESSION));
    // Pausing twice is a no-op.
    Learner::given(history.clone())
        .when(LearnerCommand::Pause {
            session_id: SESSION,
            reason: PauseReason::User,
            policy,
        })
        .then([]);
    Learner::given(history.clone())
        .when(LearnerCommand::Resume {
            session_id: SESSION,
            policy,
        })
        .then([Event::TrainingResumed(TrainingResumed {
            session_id: SESSION,
        })]);
    Learner::given(history_after_start())
        .when(LearnerCommand::Resume {
            session_id: SESSION,
            policy,
        })
        .then_err(Rejection::NotPaused(SESSION));
}

#[test]
fn a_session_expires_an_hour_after_it_started() {
    let history = history_after_start();
    let late = reference_time() + TimeDelta::seconds(3600);
    Learner::given(history.clone())
        .at(late - TimeDelta::seconds(1))
        .when(answer(1, 0.0, 10.0, Some("a2")))
        .result()
        .as_ref()
        .expect("in time");
    Learner::given(history)
        .at(late)
        .when(answer(1, 0.0, 10.0, None))
        .then_err(Rejection::SessionExpired(SESSION, 3600));
}

fn practised_history() -> Vec<Event> {
    let mut history = history_after_start();
    let done = run(&history, answer(1, 0.0, 50.0, None), reference_time()).expect("round");
    history.extend(done);
    history
}

#[test]
fn mastery_decays_per_whole_week_without_practice() {
    let policy = LearningPolicy::default();
    let state = Learner::fold(LearnerState::default(), &practised_history());
    let entry = state.mastery.get("algebra").expect("entry").clone();
    // Six days: no decay yet.
    assert_eq!(
        decay_for(
            "algebra",
            &entry,
            reference_time() + TimeDelta::days(6),
            &policy
        ),
        None
    );
    // Three weeks and a day: three weeks of 2 %.
    let decayed = decay_for(
        "algebra",
        &entry,
        reference_time() + TimeDelta::days(22),
        &policy,
    )
    .expect("decay");
    assert_eq!(decayed.weeks, 3);
    assert!((decayed.after - 50.0 * 0.98_f64.powi(3)).abs() < 1e-12);
    assert!((decayed.probability_after - 0.5 * 0.98_f64.powi(3)).abs() < 1e-12);
    // Folding the decay moves the anchor by whole weeks: a day later there is no more.
    let later = Learner::evolve(state.clone(), &Event::MasteryDecayed(decayed.clone()));
    let entry = later.mastery.get("algebra").expect("entry");
    assert_eq!(
        decay_for(
            "algebra",
            entry,
            reference_time() + TimeDelta::days(23),
            &policy
        ),
        None
    );
    let again = decay_for(
        "algebra",
        entry,
        reference_time() + TimeDelta::days(28),
        &policy,
    )
    .expect("week 4");
    assert_eq!(again.weeks, 1);
    assert!((again.after - 50.0 * 0.98_f64.powi(4)).abs() < 1e-9);
    assert!(
        (later
            .mastery_at("algebra", reference_time() + TimeDelta::days(28), &policy)
            .score
            - again.after)
            .abs()
            < 1e-12
    );
}

#[test]
fn a_new_session_after_weeks_records_the_decay_first() {
    let mut history = practised_history();
    let weeks_later = reference_time() + TimeDelta::weeks(10);
    let mut second = start(1);
    if let LearnerCommand::StartTraining { session_id, .. } = &mut second {
        *session_id = Uuid::from_u128(0x11);
    }
    let events = run(&history, second, weeks_later).expect("start");
    assert!(
        matches!(&events[0], Event::MasteryDecayed(d) if d.weeks == 10 && (d.after - 50.0 * 0.98_f64.powi(10)).abs() < 1e-9)
    );
    history.extend(events);
    let state = Learner::fold(LearnerState::default(), &history);
    assert!(
        (state.mastery.get("algebra").expect("entry").score - 50.0 * 0.98_f64.powi(10)).abs()
            < 1e-9
    );
}

#[test]
fn a_round_after_weeks_decays_before_the_update() {
    let policy = LearningPolicy {
        session_timeout_secs: 60 * 60 * 24 * 365,
        ..LearningPolicy::default()
    };
    let mut history = run(&[], start(3), reference_time()).expect("start");
    let mut first = answer(1, 0.0, 60.0, Some("a2"));
    if let LearnerCommand::CompleteRound { policy: p, .. } = &mut first {
        *p = policy;
    }
    history.extend(run(&history, first, reference_time()).expect("round 1"));
    let two_weeks = reference_time() + TimeDelta::weeks(2);
    let decayed = 60.0 * 0.98_f64.powi(2);
    let mut second = answer(2, decayed, 70.0, Some("a3"));
    if let LearnerCommand::CompleteRound { policy: p, .. } = &mut second {
        *p = policy;
    }
    let events = run(&history, second, two_weeks).expect("round 2");
    assert!(matches!(&events[0], Event::MasteryDecayed(d) if d.weeks == 2));
    assert!(
        matches!(&events[1], Event::TrainingRoundCompleted(r) if (r.mastery_before - decayed).abs() < 1e-12)
    );
}

#[test]
fn challenges_start_and_grade_once() {
    let id = Uuid::from_u128(0x77);
    let started = run(
        &[],
        LearnerCommand::StartChallenge {
            challenge_id: id,
            item: item("c1"),
        },
        reference_time(),
    )
    .expect("start");
    let grade = LearnerCommand::GradeChallenge {
        challenge_id: id,
        item_id: "c1".into(),
        answer_digest: "x".into(),
        grade: GradeResult {
            score: 90,
            correct: true,
            feedback: "ok".into(),
            mistake_tag: None,
        },
    };
    let graded = run(&started, grade.clone(), reference_time()).expect("grade");
    assert!(
        matches!(&graded[0], Event::ChallengeCompleted(c) if c.score == 90 && c.item_id == "c1")
    );
    let mut history = started;
    history.extend(graded);
    Learner::given(history)
        .when(grade.clone())
        .then_err(Rejection::ChallengeCompleted(id));
    Learner::given([])
        .when(grade)
        .then_err(Rejection::UnknownChallenge(id));
}

#[test]
fn old_sessions_are_forgotten_beyond_the_bound() {
    let mut state = LearnerState::default();
    for n in 0..(SESSIONS_KEPT_MAX as u128 + 5) {
        state = Learner::evolve(
            state,
            &Event::TrainingStarted(TrainingStarted {
                session_id: Uuid::from_u128(n + 1),
                user_id: "ada".into(),
                focus_area: "algebra".into(),
                rounds: 1,
                provider_plan: Vec::new(),
            }),
        );
    }
    assert_eq!(state.sessions.len(), SESSIONS_KEPT_MAX);
}

/// A history touching every part of the state: mastery with decay, a paused and a
/// completed session, an open round, graded and open challenges.
fn rich_history() -> Vec<Event> {
    let mut history = practised_history();
    let later = reference_time() + TimeDelta::weeks(3);
    let mut second = start(3);
    if let LearnerCommand::StartTraining {
        session_id,
        round_id,
        ..
    } = &mut second
    {
        *session_id = Uuid::from_u128(0x11);
        *round_id = Uuid::from_u128(0x211);
    }
    history.extend(run(&history, second, later).expect("second session"));
    history.extend(
        run(
            &history,
            LearnerCommand::Pause {
                session_id: Uuid::from_u128(0x11),
                reason: PauseReason::Provider,
                policy: LearningPolicy::default(),
            },
            later,
        )
        .expect("pause"),
    );
    for n in 0..2 {
        let id = Uuid::from_u128(0x70 + n);
        history.extend(
            run(
                &history,
                LearnerCommand::StartChallenge {
                    challenge_id: id,
                    item: item("c1"),
                },
                later,
            )
            .expect("challenge"),
        );
    }
    history.extend(
        run(
            &history,
            LearnerCommand::GradeChallenge {
                challenge_id: Uuid::from_u128(0x70),
                item_id: "c1".into(),
                answer_digest: "x".into(),
                grade: GradeResult {
                    score: 40,
                    correct: false,
                    feedback: "no".into(),
                    mistake_tag: Some("sign".into()),
                },
            },
            later,
        )
        .expect("grade"),
    );
    history
}

#[test]
fn a_learner_snapshot_restores_exactly_the_folded_state() {
    use crate::snapshot::{restore, snapshot_record, SNAPSHOT_EVENT_TYPE};
    use tutorlog_schemas::RecordedEvent;

    let history = rich_history();
    assert!(history
        .iter()
        .any(|e| matches!(e, Event::MasteryDecayed(_))));
    let state = Learner::fold(LearnerState::default(), &history);
    assert!(state
        .sessions
        .values()
        .any(|s| s.status == SessionStatus::Paused && s.current.is_some()));
    let policy = Learner::snapshot_policy().expect("the learner snapshots");
    assert_eq!(policy.format, LEARNER_SNAPSHOT_FORMAT);
    assert_eq!(policy.every_events, LEARNER_SNAPSHOT_EVERY_EVENTS);

    let new = snapshot_record(&policy, "learner-ada", &state, 12, 345).expect("encode");
    assert_eq!(new.event_type, SNAPSHOT_EVENT_TYPE);
    let recorded = RecordedEvent {
        position: 346,
        stream: "snapshot-learner-ada".into(),
        revision: 0,
        event_id: new.event_id,
        recorded_at: reference_time(),
        event_type: new.event_type,
        schema_version: new.schema_version,
        correlation_id: None,
        causation_id: None,
        payload: new.payload,
    };
    let restored = restore(&policy, "learner-ada", &recorded).expect("restore");
    assert_eq!((restored.revision, restored.position), (12, 345));
    assert_eq!(
        restored.state, state,
        "the restored state is the folded one"
    );
    let entry = state.mastery.get("algebra").expect("entry");
    let back = restored.state.mastery.get("algebra").expect("entry");
    assert_eq!(entry.score.to_bits(), back.score.to_bits());
    assert_eq!(entry.probability.to_bits(), back.probability.to_bits());

    // Deciding on the restored state is deciding on the folded one.
    let command = LearnerCommand::Resume {
        session_id: Uuid::from_u128(0x11),
        policy: LearningPolicy::default(),
    };
    let now = reference_time() + TimeDelta::weeks(3) + TimeDelta::minutes(5);
    assert_eq!(
        Learner::decide(&restored.state, &command, now),
        Learner::decide(&state, &command, now)
    );
}

#[test]
fn deciding_is_deterministic() {
    // Same history, same command, same time: the same events, twice over.
    let mut history = rich_history();
    let session_id = Uuid::from_u128(0x11);
    let later = reference_time() + TimeDelta::weeks(3) + TimeDelta::minutes(5);
    let resume = LearnerCommand::Resume {
        session_id,
        policy: LearningPolicy::default(),
    };
    history.extend(run(&history, resume, later).expect("resume"));
    let before = Learner::fold(LearnerState::default(), &history)
        .mastery
        .get("algebra")
        .expect("entry")
        .score;
    let mut command = answer(1, before, 70.0, Some("a2"));
    if let LearnerCommand::CompleteRound {
        session_id: s,
        expected_round_id,
        ..
    } = &mut command
    {
        *s = session_id;
        *expected_round_id = Uuid::from_u128(0x211);
    }
    let once = run(&history, command.clone(), later).expect("round");
    assert!(matches!(&once[0], Event::TrainingRoundCompleted(r) if r.mastery_before == before));
    assert_eq!(Ok(once), run(&history, command, later));
    assert_eq!(
        Learner::fold(LearnerState::default(), &history),
        Learner::fold(LearnerState::default(), &history)
    );
}

#[test]
fn the_policy_defaults_are_the_seeds() {
    // Seed 000: mastery threshold 80, weekly decay 0.02, sessions of one hour.
    assert_eq!(
        LearningPolicy::default(),
        LearningPolicy {
            mastery_threshold: 80.0,
            weekly_decay: 0.02,
            session_timeout_secs: 3600,
        }
    );
}
