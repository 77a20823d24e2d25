//! Learning domain events: stream `learner-{user}` (training sessions, rounds,
//! mastery, challenges).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a training session paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The learner asked for a pause.
    User,
    /// No provider with budget left could serve the session.
    Budget,
    /// No healthy provider could serve the session.
    Provider,
}

/// `training.started` (v2): a learner began a session on a focus area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStarted {
    /// Session id.
    pub session_id: Uuid,
    /// Learner id.
    pub user_id: String,
    /// Focus area, e.g. `algebra`.
    pub focus_area: String,
    /// Planned number of rounds.
    pub rounds: u32,
    /// Providers the session may use, in order of preference (v2; empty for v1 events).
    pub provider_plan: Vec<String>,
}

/// `training.paused` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPaused {
    /// Session id.
    pub session_id: Uuid,
    /// Why it paused.
    pub reason: PauseReason,
}

/// `training.resumed` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingResumed {
    /// Session id.
    pub session_id: Uuid,
}

/// `training.completed` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingCompleted {
    /// Session id.
    pub session_id: Uuid,
    /// Rounds the learner completed.
    pub rounds_completed: u32,
}

/// One algorithm run carried inside the event that used its result, so the audit
/// trail (the `algo_runs` view) and replays never re-run the algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoRunRecord {
    /// Run id.
    pub run_id: Uuid,
    /// Algorithm key (`mastery`, `revision`, `adaptive`, ...).
    pub key: String,
    /// Algorithm version that ran.
    pub version: u32,
    /// SHA-256 of the canonical params JSON it ran with.
    pub params_checksum: String,
    /// Canonical JSON summary of the inputs.
    pub input_summary: String,
    /// Canonical JSON summary of the output.
    pub output_summary: String,
}

/// `training.round.started` (v1): the item put to the learner in a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRoundStarted {
    /// Session id.
    pub session_id: Uuid,
    /// Round id.
    pub round_id: Uuid,
    /// Round number within the session, from 1.
    pub round_number: u32,
    /// Item bank id of the item asked.
    pub item_id: String,
    /// The prompt shown.
    pub prompt: String,
    /// Item difficulty (`easy`, `medium`, `hard`).
    pub difficulty: String,
    /// When the round was put (the first round's time starts the session clock).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The item-selection run that chose it (none for a fallback choice).
    pub algo_runs: Vec<AlgoRunRecord>,
}

/// `training.round.completed` (v1): a graded round with its mastery update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRoundCompleted {
    /// Session id.
    pub session_id: Uuid,
    /// Round id.
    pub round_id: Uuid,
    /// Round number within the session, from 1.
    pub round_number: u32,
    /// Focus area of the session.
    pub focus_area: String,
    /// Item answered.
    pub item_id: String,
    /// SHA-256 (hex) of the learner's response; the text itself is not stored.
    pub response_digest: String,
    /// Score 0–100.
    pub score: u32,
    /// Whether the grader counted the answer as correct.
    pub correct: bool,
    /// Feedback shown to the learner.
    pub feedback: String,
    /// Tag of the recognised misconception, if any.
    pub mistake_tag: Option<String>,
    /// Mastery score 0–100 before the round (after any decay).
    pub mastery_before: f64,
    /// Mastery score 0–100 after the round.
    pub mastery_after: f64,
    /// Model probability of a correct answer after the round.
    pub probability_after: f64,
    /// When the focus area is next due for review (revision algorithm).
    pub next_review_due: Option<chrono::DateTime<chrono::Utc>>,
    /// The revision algorithm's card state after the round (canonical JSON).
    pub revision_card: String,
    /// When the round was graded.
    pub completed_at: chrono::DateTime<chrono::Utc>,
    /// The algorithm runs whose results this event carries.
    pub algo_runs: Vec<AlgoRunRecord>,
}

/// `mastery.improved` (v1): a focus area's mastery went up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasteryImproved {
    /// Focus area.
    pub focus_area: String,
    /// Score 0–100 before.
    pub before: f64,
    /// Score 0–100 after.
    pub after: f64,
    /// Whether `after` reached the mastery threshold.
    pub mastered: bool,
}

/// `mastery.decayed` (v1): weeks without practice lowered a focus area's mastery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasteryDecayed {
    /// Focus area.
    pub focus_area: String,
    /// Score 0–100 before.
    pub before: f64,
    /// Score 0–100 after.
    pub after: f64,
    /// Probability after decay.
    pub probability_after: f64,
    /// Whole weeks of decay applied.
    pub weeks: u32,
    /// Weekly decay rate applied.
    pub weekly_decay: f64,
}

/// `challenge.started` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeStarted {
    /// Challenge id.
    pub challenge_id: Uuid,
    /// Item bank id.
    pub item_id: String,
    /// Category of the item.
    pub category: String,
    /// Difficulty of the item.
    pub difficulty: String,
    /// The prompt shown.
    pub prompt: String,
    /// When it was handed out.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// `challenge.completed` (v1): a graded challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeCompleted {
    /// Challenge id.
    pub challenge_id: Uuid,
    /// Item bank id.
    pub item_id: String,
    /// SHA-256 (hex) of the answer.
    pub answer_digest: String,
    /// Score 0–100.
    pub score: u32,
    /// Whether the answer counted as correct.
    pub correct: bool,
    /// Feedback.
    pub feedback: String,
    /// Tag of the recognised misconception, if any.
    pub mistake_tag: Option<String>,
}
