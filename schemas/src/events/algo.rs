//! Algorithm registry events (seed 001): stream `algo-{key}`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Lifecycle status of an algorithm version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlgoStatus {
    /// The one version live runs use.
    Active,
    /// Retired.
    Deprecated,
    /// Available on request only.
    Experimental,
}

impl AlgoStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlgoStatus::Active => "ACTIVE",
            AlgoStatus::Deprecated => "DEPRECATED",
            AlgoStatus::Experimental => "EXPERIMENTAL",
        }
    }
}

/// What started an algorithm run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// An operator asked.
    Manual,
    /// A learner submitted an answer.
    Submit,
    /// The nightly batch.
    Nightly,
    /// A configured schedule.
    Cron,
    /// An API call.
    Api,
}

impl RunTrigger {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Manual => "manual",
            RunTrigger::Submit => "submit",
            RunTrigger::Nightly => "nightly",
            RunTrigger::Cron => "cron",
            RunTrigger::Api => "api",
        }
    }
}

/// `algo.version.registered` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoVersionRegistered {
    /// Algorithm key.
    pub key: String,
    /// Version number.
    pub version: u32,
    /// Status at registration.
    pub status: AlgoStatus,
    /// One line for humans.
    pub description: String,
}

/// `algo.version.activated` (v1): `version` became ACTIVE; `previous` (if any) was
/// deprecated by the same decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoVersionActivated {
    /// Algorithm key.
    pub key: String,
    /// The new active version.
    pub version: u32,
    /// The version it replaced.
    pub previous: Option<u32>,
}

/// `algo.version.deprecated` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoVersionDeprecated {
    /// Algorithm key.
    pub key: String,
    /// Version retired.
    pub version: u32,
}

/// `algo.params.set` (v1): the active param set of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoParamsSet {
    /// Algorithm key.
    pub key: String,
    /// Version.
    pub version: u32,
    /// Canonical JSON (sorted keys, no whitespace).
    pub params_json: String,
    /// SHA-256 (hex) of `params_json`.
    pub checksum: String,
}

/// `algo.run.started` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoRunStarted {
    /// Run id.
    pub run_id: Uuid,
    /// Algorithm key.
    pub key: String,
    /// Version run.
    pub version: u32,
    /// Checksum of the params used.
    pub params_checksum: String,
    /// Learner, for per-learner runs.
    pub user_id: Option<String>,
    /// Session, for session-triggered runs.
    pub session_id: Option<Uuid>,
    /// What started it.
    pub trigger: RunTrigger,
    /// Canonical JSON summary of the inputs.
    pub input_summary: String,
}

/// `algo.run.succeeded` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoRunSucceeded {
    /// Run id.
    pub run_id: Uuid,
    /// Algorithm key.
    pub key: String,
    /// Canonical JSON summary of the output.
    pub output_summary: String,
}

/// `algo.run.failed` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgoRunFailed {
    /// Run id.
    pub run_id: Uuid,
    /// Algorithm key.
    pub key: String,
    /// What went wrong.
    pub error: String,
}
