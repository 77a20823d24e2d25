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
