//! The learner decider: one aggregate per learner, stream `learner-{user}`.
//!
//! Pure: no tokio, no ractor, no clock, no algorithm. Everything an algorithm
//! computes (grade, mastery update, next item, review date) arrives *in* the command,
//! computed by [`crate::learning::service`] from the ACTIVE algorithm versions, and
//! lands in the events; `evolve` only copies results. The one rule computed here is
//! the configured weekly decay of mastery ([`decay_for`]), because it is policy, not
//! a model: `score × (1 − weekly_decay)^weeks` for every whole week without practice.
//!
//! The service reads the state, computes, then sends the command with the round it
//! answered (`expected_round_id`) and the mastery it started from
//! (`mastery.before`); if the state moved in between, the command is rejected as
//! [`Rejection::Stale`] and the service recomputes.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::events::{
    AlgoRunRecord, ChallengeCompleted, ChallengeStarted, MasteryDecayed, MasteryImproved,
    PauseReason, TrainingCompleted, TrainingPaused, TrainingResumed, TrainingRoundCompleted,
    TrainingRoundStarted, TrainingStarted,
};
use tutorlog_schemas::Event;
use uuid::Uuid;

use crate::decider::Decider;
use crate::snapshot::SnapshotPolicy;

/// Most rounds a session may plan.
pub const ROUNDS_MAX: u32 = 100;
/// Sessions remembered per learner; beyond it the oldest finished ones are forgotten
/// (a round for a forgotten session is answered as unknown).
pub const SESSIONS_KEPT_MAX: usize = 64;
/// Challenges remembered per learner (oldest graded ones are forgotten first).
pub const CHALLENGES_KEPT_MAX: usize = 64;
/// Longest focus area name, in bytes.
pub const FOCUS_AREA_BYTES_MAX: usize = 64;
/// Mastery comparisons tolerate this much floating-point noise.
const MASTERY_EPSILON: f64 = 1e-9;
/// Version of [`LearnerState`]'s shape in snapshots (stream
/// `snapshot-learner-{user}`). Bump it when a field of the state changes *or* when
/// `evolve` would fold the same events differently (for example a new
/// [`SESSIONS_KEPT_MAX`]): older snapshots are then ignored and replaced after a
/// full replay.
pub const LEARNER_SNAPSHOT_FORMAT: u32 = 1;
/// Events folded between two learner snapshots.
pub const LEARNER_SNAPSHOT_EVERY_EVENTS: u64 = 200;

/// The learning rules taken from `[learning]` config, carried in each command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearningPolicy {
    /// Score (0–100) at which a focus area counts as mastered.
    pub mastery_threshold: f64,
    /// Fraction of mastery lost per whole week without practice.
    pub weekly_decay: f64,
    /// A session expires this long after it started.
    pub session_timeout_secs: u64,
}

impl Default for LearningPolicy {
    fn default() -> Self {
        LearningPolicy {
            mastery_threshold: 80.0,
            weekly_decay: 0.02,
            session_timeout_secs: 3600,
        }
    }
}

/// An item chosen for a round or a challenge (by the adaptive algorithm).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChoice {
    /// Item bank id.
    pub item_id: String,
    /// Category (focus area) of the item.
    pub category: String,
    /// Prompt shown.
    pub prompt: String,
    /// `easy` / `medium` / `hard`.
    pub difficulty: String,
    /// The selection run(s) that chose it.
    pub algo_runs: Vec<AlgoRunRecord>,
}

/// A grader's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeResult {
    /// Score 0–100.
    pub score: u32,
    /// Counted as correct.
    pub correct: bool,
    /// Feedback for the learner.
    pub feedback: String,
    /// Recognised misconception tag.
    pub mistake_tag: Option<String>,
}

/// A mastery update computed by the active mastery and revision algorithms.
#[derive(Debug, Clone, PartialEq)]
pub struct MasteryResult {
    /// Score 0–100 the computation started from (after decay): must match the state.
    pub before: f64,
    /// Score 0–100 after the round.
    pub after: f64,
    /// Probability of a correct answer after the round.
    pub probability_after: f64,
    /// Next review date from the revision algorithm.
    pub next_review_due: Option<DateTime<Utc>>,
    /// Revision card state after the round (canonical JSON).
    pub revision_card: String,
    /// The runs that produced these numbers.
    pub algo_runs: Vec<AlgoRunRecord>,
}

/// What a learner (or the gateway) asks of the learner aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnerCommand {
    /// Begin a session and put its first round.
    StartTraining {
        /// New session id.
        session_id: Uuid,
        /// Id of the first round.
        round_id: Uuid,
        /// Learner id.
        user_id: String,
        /// Focus area.
        focus_area: String,
        /// Rounds planned.
        rounds: u32,
        /// Providers the session may use.
        provider_plan: Vec<String>,
        /// The first item.
        first_item: ItemChoice,
        /// Rules.
        policy: LearningPolicy,
    },
    /// Grade the current round and put the next one (or complete the session).
    CompleteRound {
        /// Session.
        session_id: Uuid,
        /// The round this answers.
        expected_round_id: Uuid,
        /// Id for the next round, if there is one.
        next_round_id: Uuid,
        /// SHA-256 hex of the response.
        response_digest: String,
        /// The grade.
        grade: GradeResult,
        /// The mastery update.
        mastery: MasteryResult,
        /// The next item (`None`: complete the session now).
        next_item: Option<ItemChoice>,
        /// Rules.
        policy: LearningPolicy,
    },
    /// Pause an active session.
    Pause {
        /// Session.
        session_id: Uuid,
        /// Why.
        reason: PauseReason,
        /// Rules.
        policy: LearningPolicy,
    },
    /// Resume a paused session.
    Resume {
        /// Session.
        session_id: Uuid,
        /// Rules.
        policy: LearningPolicy,
    },
    /// Hand out a challenge.
    StartChallenge {
        /// New challenge id.
        challenge_id: Uuid,
        /// The item.
        item: ItemChoice,
    },
    /// Grade a challenge.
    GradeChallenge {
        /// Challenge.
        challenge_id: Uuid,
        /// Item the grade was computed for: must match the challenge.
        item_id: String,
        /// SHA-256 hex of the answer.
        answer_digest: String,
        /// The grade.
        grade: GradeResult,
    },
}

/// Why the learner aggregate refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No such session for this learner.
    #[error("unknown session {0}")]
    UnknownSession(Uuid),
    /// No such challenge for this learner.
    #[error("unknown challenge {0}")]
    UnknownChallenge(Uuid),
    /// The session already completed.
    #[error("session {0} is already completed")]
    SessionCompleted(Uuid),
    /// The session passed its time limit.
    #[error("session {0} expired (sessions last {1} s)")]
    SessionExpired(Uuid, u64),
    /// The session is paused; resume it first.
    #[error("session {0} is paused; resume it first")]
    SessionPaused(Uuid),
    /// The session is not paused.
    #[error("session {0} is not paused")]
    NotPaused(Uuid),
    /// The challenge was already graded.
    #[error("challenge {0} is already graded")]
    ChallengeCompleted(Uuid),
    /// A field is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The state moved since the command was computed: recompute and retry.
    #[error("learner state changed while the command was prepared; retry")]
    Stale,
    /// The id is already in use.
    #[error("id {0} already used")]
    DuplicateId(Uuid),
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Rounds are being answered.
    Active,
    /// Paused; resume to continue.
    Paused,
    /// Finished.
    Completed,
}

impl SessionStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Active => "in_progress",
            SessionStatus::Paused => "paused",
            SessionStatus::Completed => "completed",
        }
    }
}

/// The round currently put to the learner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentRound {
    /// Round id.
    pub round_id: Uuid,
    /// Number from 1.
    pub number: u32,
    /// Item id.
    pub item_id: String,
    /// Prompt.
    pub prompt: String,
    /// Difficulty.
    pub difficulty: String,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Focus area.
    pub focus_area: String,
    /// Rounds planned.
    pub rounds_planned: u32,
    /// Rounds graded.
    pub rounds_completed: u32,
    /// Status.
    pub status: SessionStatus,
    /// When its first round was put.
    pub started_at: Option<DateTime<Utc>>,
    /// The open round.
    pub current: Option<CurrentRound>,
    /// Items asked so far (to avoid repeats).
    pub items_asked: Vec<String>,
}

impl Session {
    /// Whether the session is past its time limit at `now`.
    pub fn expired(&self, now: DateTime<Utc>, policy: &LearningPolicy) -> bool {
        let timeout =
            TimeDelta::seconds(i64::try_from(policy.session_timeout_secs).unwrap_or(i64::MAX));
        match self.started_at {
            Some(started) => self.status != SessionStatus::Completed && now >= started + timeout,
            None => false,
        }
    }
}

/// Mastery of one focus area.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MasteryEntry {
    /// Score 0–100.
    pub score: f64,
    /// Probability of a correct answer.
    pub probability: f64,
    /// Rounds answered.
    pub attempts: u32,
    /// Consecutive correct rounds.
    pub streak: u32,
    /// Last graded round.
    pub last_practised: Option<DateTime<Utc>>,
    /// Decay is counted in whole weeks from here.
    pub decay_anchor: Option<DateTime<Utc>>,
    /// Next review due.
    pub next_review_due: Option<DateTime<Utc>>,
    /// Revision card state (canonical JSON; empty before the first round).
    pub revision_card: String,
}

/// One challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// Item id.
    pub item_id: String,
    /// Category.
    pub category: String,
    /// Prompt.
    pub prompt: String,
    /// Graded yet.
    pub completed: bool,
}

/// Everything the learner aggregate knows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LearnerState {
    /// Learner id (from the first session).
    pub user_id: Option<String>,
    /// Sessions by id (v7 ids sort by creation time).
    pub sessions: BTreeMap<Uuid, Session>,
    /// Mastery per focus area.
    pub mastery: BTreeMap<String, MasteryEntry>,
    /// Challenges by id.
    pub challenges: BTreeMap<Uuid, Challenge>,
}

impl LearnerState {
    /// The mastery entry of `focus_area` as it stands at `now` after decay.
    pub fn mastery_at(
        &self,
        focus_area: &str,
        now: DateTime<Utc>,
        policy: &LearningPolicy,
    ) -> MasteryEntry {
        let entry = self.mastery.get(focus_area).cloned().unwrap_or_default();
        match decay_for(focus_area, &entry, now, policy) {
            Some(decayed) => MasteryEntry {
                score: decayed.after,
                probability: decayed.probability_after,
                ..entry
            },
            None => entry,
        }
    }
}

/// The `mastery.decayed` event due for `entry` at `now`, if a whole week or more
/// passed since practice (or the last decay) and there is mastery to lose.
pub fn decay_for(
    focus_area: &str,
    entry: &MasteryEntry,
    now: DateTime<Utc>,
    policy: &LearningPolicy,
) -> Option<MasteryDecayed> {
    let anchor = entry.decay_anchor?;
    let weeks = (now - anchor).num_weeks();
    if weeks < 1 || policy.weekly_decay <= 0.0 || entry.score <= 0.0 {
        return None;
    }
    let weeks = u32::try_from(weeks).unwrap_or(u32::MAX);
    let factor = (1.0 - policy.weekly_decay).powi(i32::try_from(weeks).unwrap_or(i32::MAX));
    Some(MasteryDecayed {
        focus_area: focus_area.to_owned(),
        before: entry.score,
        after: entry.score * factor,
        probability_after: entry.probability * factor,
        weeks,
        weekly_decay: policy.weekly_decay,
    })
}

/// The learner decider.
pub struct Learner;

fn round_started(
    session_id: Uuid,
    round_id: Uuid,
    number: u32,
    item: &ItemChoice,
    now: DateTime<Utc>,
) -> Event {
    Event::TrainingRoundStarted(TrainingRoundStarted {
        session_id,
        round_id,
        round_number: number,
        item_id: item.item_id.clone(),
        prompt: item.prompt.clone(),
        difficulty: item.difficulty.clone(),
        started_at: now,
        algo_runs: item.algo_runs.clone(),
    })
}

fn open_session<'a>(
    state: &'a LearnerState,
    session_id: Uuid,
    now: DateTime<Utc>,
    policy: &LearningPolicy,
) -> Result<&'a Session, Rejection> {
    let session = state
        .sessions
        .get(&session_id)
        .ok_or(Rejection::UnknownSession(session_id))?;
    if session.status == SessionStatus::Completed {
        return Err(Rejection::SessionCompleted(session_id));
    }
    if session.expired(now, policy) {
        return Err(Rejection::SessionExpired(
            session_id,
            policy.session_timeout_secs,
        ));
    }
    Ok(session)
}

fn decide_start(
    state: &LearnerState,
    command: &LearnerCommand,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let LearnerCommand::StartTraining {
        session_id,
        round_id,
        user_id,
        focus_area,
        rounds,
        provider_plan,
        first_item,
        policy,
    } = command
    else {
        return Err(Rejection::Stale);
    };
    if focus_area.is_empty() || focus_area.len() > FOCUS_AREA_BYTES_MAX {
        return Err(Rejection::Invalid {
            field: "focus_area",
            reason: format!("must be 1 to {FOCUS_AREA_BYTES_MAX} bytes"),
        });
    }
    if !(1..=ROUNDS_MAX).contains(rounds) {
        return Err(Rejection::Invalid {
            field: "rounds",
            reason: format!("must be 1 to {ROUNDS_MAX}, got {rounds}"),
        });
    }
    if state.sessions.contains_key(session_id) {
        return Err(Rejection::DuplicateId(*session_id));
    }
    let mut events = Vec::with_capacity(3);
    if let Some(entry) = state.mastery.get(focus_area) {
        if let Some(decayed) = decay_for(focus_area, entry, now, policy) {
            events.push(Event::MasteryDecayed(decayed));
        }
    }
    events.push(Event::TrainingStarted(TrainingStarted {
        session_id: *session_id,
        user_id: user_id.clone(),
        focus_area: focus_area.clone(),
        rounds: *rounds,
        provider_plan: provider_plan.clone(),
    }));
    events.push(round_started(*session_id, *round_id, 1, first_item, now));
    Ok(events)
}

fn decide_round(
    state: &LearnerState,
    command: &LearnerCommand,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let LearnerCommand::CompleteRound {
        session_id,
        expected_round_id,
        next_round_id,
        response_digest,
        grade,
        mastery,
        next_item,
        policy,
    } = command
    else {
        return Err(Rejection::Stale);
    };
    let session = open_session(state, *session_id, now, policy)?;
    if session.status == SessionStatus::Paused {
        return Err(Rejection::SessionPaused(*session_id));
    }
    let current = session.current.as_ref().ok_or(Rejection::Stale)?;
    if current.round_id != *expected_round_id {
        return Err(Rejection::Stale);
    }
    if grade.score > 100 {
        return Err(Rejection::Invalid {
            field: "score",
            reason: format!("{} is above 100", grade.score),
        });
    }
    let entry = state
        .mastery
        .get(&session.focus_area)
        .cloned()
        .unwrap_or_default();
    let mut events = Vec::with_capacity(4);
    let mut before = entry.score;
    if let Some(decayed) = decay_for(&session.focus_area, &entry, now, policy) {
        before = decayed.after;
        events.push(Event::MasteryDecayed(decayed));
    }
    if entry.attempts == 0 {
        // Never practised: the model's prior is the starting point.
        before = mastery.before;
    } else if (before - mastery.before).abs() > MASTERY_EPSILON {
        return Err(Rejection::Stale);
    }
    events.push(Event::TrainingRoundCompleted(TrainingRoundCompleted {
        session_id: *session_id,
        round_id: current.round_id,
        round_number: current.number,
        focus_area: session.focus_area.clone(),
        item_id: current.item_id.clone(),
        response_digest: response_digest.clone(),
        score: grade.score,
        correct: grade.correct,
        feedback: grade.feedback.clone(),
        mistake_tag: grade.mistake_tag.clone(),
        mastery_before: before,
        mastery_after: mastery.after,
        probability_after: mastery.probability_after,
        next_review_due: mastery.next_review_due,
        revision_card: mastery.revision_card.clone(),
        completed_at: now,
        algo_runs: mastery.algo_runs.clone(),
    }));
    if mastery.after > before + MASTERY_EPSILON {
        events.push(Event::MasteryImproved(MasteryImproved {
            focus_area: session.focus_area.clone(),
            before,
            after: mastery.after,
            mastered: mastery.after >= policy.mastery_threshold,
        }));
    }
    let completed = session.rounds_completed + 1;
    match next_item {
        Some(item) if completed < session.rounds_planned => {
            events.push(round_started(
                *session_id,
                *next_round_id,
                current.number + 1,
                item,
                now,
            ));
        }
        _ => events.push(Event::TrainingCompleted(TrainingCompleted {
            session_id: *session_id,
            rounds_completed: completed,
        })),
    }
    Ok(events)
}

impl Decider for Learner {
    type State = LearnerState;
    type Command = LearnerCommand;
    type Event = Event;
    type Rejection = Rejection;

    fn stream_name(id: &str) -> String {
        format!("learner-{id}")
    }

    /// Learners practise for years: snapshot the state (it is bounded by
    /// [`SESSIONS_KEPT_MAX`] and [`CHALLENGES_KEPT_MAX`]) so a restart replays only
    /// the tail of the stream.
    fn snapshot_policy() -> Option<SnapshotPolicy<LearnerState>> {
        Some(SnapshotPolicy::json(LEARNER_SNAPSHOT_FORMAT).every(LEARNER_SNAPSHOT_EVERY_EVENTS))
    }

    fn decide(
        state: &LearnerState,
        command: &LearnerCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<Event>, Rejection> {
        match command {
            LearnerCommand::StartTraining { .. } => decide_start(state, command, now),
            LearnerCommand::CompleteRound { .. } => decide_round(state, command, now),
            LearnerCommand::Pause {
                session_id,
                reason,
                policy,
            } => {
                let session = open_session(state, *session_id, now, policy)?;
                if session.status == SessionStatus::Paused {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::TrainingPaused(TrainingPaused {
                    session_id: *session_id,
                    reason: *reason,
                })])
            }
            LearnerCommand::Resume { session_id, policy } => {
                let session = open_session(state, *session_id, now, policy)?;
                if session.status != SessionStatus::Paused {
                    return Err(Rejection::NotPaused(*session_id));
                }
                Ok(vec![Event::TrainingResumed(TrainingResumed {
                    session_id: *session_id,
                })])
            }
            LearnerCommand::StartChallenge { challenge_id, item } => {
                if state.challenges.contains_key(challenge_id) {
                    return Err(Rejection::DuplicateId(*challenge_id));
                }
                Ok(vec![Event::ChallengeStarted(ChallengeStarted {
                    challenge_id: *challenge_id,
                    item_id: item.item_id.clone(),
                    category: item.category.clone(),
                    difficulty: item.difficulty.clone(),
                    prompt: item.prompt.clone(),
                    started_at: now,
                })])
            }
            LearnerCommand::GradeChallenge {
                challenge_id,
                item_id,
                answer_digest,
                grade,
            } => {
                let challenge = state
                    .challenges
                    .get(challenge_id)
                    .ok_or(Rejection::UnknownChallenge(*challenge_id))?;
                if challenge.completed {
                    return Err(Rejection::ChallengeCompleted(*challenge_id));
                }
                if challenge.item_id != *item_id {
                    return Err(Rejection::Stale);
                }
                Ok(vec![Event::ChallengeCompleted(ChallengeCompleted {
                    challenge_id: *challenge_id,
                    item_id: item_id.clone(),
                    answer_digest: answer_digest.clone(),
                    score: grade.score.min(100),
                    correct: grade.correct,
                    feedback: grade.feedback.clone(),
                    mistake_tag: grade.mistake_tag.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: LearnerState, event: &Event) -> LearnerState {
        match event {
            Event::TrainingStarted(started) => {
                state.user_id.get_or_insert_with(|| started.user_id.clone());
                state.sessions.insert(
                    started.session_id,
                    Session {
                        focus_area: started.focus_area.clone(),
                        rounds_planned: started.rounds,
                        rounds_completed: 0,
                        status: SessionStatus::Active,
                        started_at: None,
                        current: None,
                        items_asked: Vec::new(),
                    },
                );
                forget_oldest_sessions(&mut state);
            }
            Event::TrainingRoundStarted(round) => {
                if let Some(session) = state.sessions.get_mut(&round.session_id) {
                    session.started_at.get_or_insert(round.started_at);
                    session.items_asked.push(round.item_id.clone());
                    session.current = Some(CurrentRound {
                        round_id: round.round_id,
                        number: round.round_number,
                        item_id: round.item_id.clone(),
                        prompt: round.prompt.clone(),
                        difficulty: round.difficulty.clone(),
                    });
                }
            }
            Event::TrainingRoundCompleted(done) => {
                if let Some(session) = state.sessions.get_mut(&done.session_id) {
                    session.rounds_completed += 1;
                    session.current = None;
                }
                let entry = state.mastery.entry(done.focus_area.clone()).or_default();
                entry.score = done.mastery_after;
                entry.probability = done.probability_after;
                entry.attempts += 1;
                entry.streak = if done.correct { entry.streak + 1 } else { 0 };
                entry.last_practised = Some(done.completed_at);
                entry.decay_anchor = Some(done.completed_at);
                entry.next_review_due = done.next_review_due;
                entry.revision_card = done.revision_card.clone();
            }
            Event::MasteryDecayed(decayed) => {
                let entry = state.mastery.entry(decayed.focus_area.clone()).or_default();
                entry.score = decayed.after;
                entry.probability = decayed.probability_after;
                entry.decay_anchor = entry
                    .decay_anchor
                    .map(|anchor| anchor + TimeDelta::weeks(i64::from(decayed.weeks)));
            }
            Event::TrainingPaused(paused) => {
                set_status(&mut state, paused.session_id, SessionStatus::Paused)
            }
            Event::TrainingResumed(resumed) => {
                set_status(&mut state, resumed.session_id, SessionStatus::Active)
            }
            Event::TrainingCompleted(done) => {
                set_status(&mut state, done.session_id, SessionStatus::Completed);
                if let Some(session) = state.sessions.get_mut(&done.session_id) {
                    session.current = None;
                    session.items_asked = Vec::new();
                }
            }
            Event::ChallengeStarted(started) => {
                state.challenges.insert(
                    started.challenge_id,
                    Challenge {
                        item_id: started.item_id.clone(),
                        category: started.category.clone(),
                        prompt: started.prompt.clone(),
                        completed: false,
                    },
                );
                forget_oldest_challenges(&mut state);
            }
            Event::ChallengeCompleted(done) => {
                if let Some(challenge) = state.challenges.get_mut(&done.challenge_id) {
                    challenge.completed = true;
                }
            }
            _ => {}
        }
        state
    }
}

fn set_status(state: &mut LearnerState, session_id: Uuid, status: SessionStatus) {
    if let Some(session) = state.sessions.get_mut(&session_id) {
        session.status = status;
    }
}

fn forget_oldest_sessions(state: &mut LearnerState) {
    while state.sessions.len() > SESSIONS_KEPT_MAX {
        let oldest_done = state
            .sessions
            .iter()
            .find(|(_, s)| s.status == SessionStatus::Completed)
            .map(|(id, _)| *id);
        let victim = oldest_done.or_else(|| state.sessions.keys().next().copied());
        match victim {
            Some(id) => state.sessions.remove(&id),
            None => return,
        };
    }
}

fn forget_oldest_challenges(state: &mut LearnerState) {
    while state.challenges.len() > CHALLENGES_KEPT_MAX {
        let oldest_done = state
            .challenges
            .iter()
            .find(|(_, c)| c.completed)
            .map(|(id, _)| *id);
        let victim = oldest_done.or_else(|| state.challenges.keys().next().copied());
        match victim {
            Some(id) => state.challenges.remove(&id),
            None => return,
        };
    }
}

#[cfg(test)]
#[path = "decider_tests.rs"]
mod tests;
