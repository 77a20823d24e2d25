//! Gateway events: stream `request-{id}` (one per gateway call: the routing decision
//! and the execution record) and `benchmarks` (the benchmark scheduler).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ErrorKind;

/// One provider the router considered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteCandidate {
    /// Provider name.
    pub provider: String,
    /// Model it would serve the request with.
    pub model: String,
    /// Routing score (higher is better); meaningful only among eligible candidates.
    pub score: f64,
    /// Whether it could take the request (circuit, budget, model).
    pub eligible: bool,
    /// Why it scored as it did, or why it was not eligible.
    pub reason: String,
}

/// `provider.selected` (v1): the router's decision for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSelected {
    /// The gateway request.
    pub request_id: Uuid,
    /// Session the request belongs to, if any.
    pub session_id: Option<String>,
    /// User the request is attributed to, if any.
    pub user_id: Option<String>,
    /// Detected category (`coding`, `math`, `research`, `language`, `empathy`,
    /// `general`).
    pub category: String,
    /// The `model` the client asked for (`auto`, `provider/model` or a bare model).
    pub requested_model: String,
    /// Every provider considered, best first.
    pub candidates: Vec<RouteCandidate>,
    /// The provider chosen first (failover may move on to the next candidate).
    pub chosen_provider: Option<String>,
    /// The model chosen first.
    pub chosen_model: Option<String>,
    /// Why (`pinned`, `session_continuity`, `best_score`, `no_candidate`, ...).
    pub reason: String,
}

/// `provider.query.started` (v1): a call went out to a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderQueryStarted {
    /// The gateway request.
    pub request_id: Uuid,
    /// Provider called.
    pub provider: String,
    /// Model called.
    pub model: String,
    /// 1 for the first provider tried, 2 after one failover, ...
    pub attempt: u32,
}

/// Where a gateway call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSource {
    /// `/v1/chat/completions`.
    OpenAi,
    /// `/api/v1/chat`.
    Chat,
    /// A training round's LLM feedback.
    Training,
    /// The benchmark scheduler.
    Benchmark,
}

/// `execution.recorded` (v1): a gateway call's decision and outcome (seed 004's
/// execution record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecorded {
    /// The gateway request.
    pub request_id: Uuid,
    /// Where the call came from.
    pub source: CallSource,
    /// Provider that answered (or the last one tried).
    pub provider: Option<String>,
    /// Model that answered (or the last one tried).
    pub model: Option<String>,
    /// Routing category.
    pub category: String,
    /// Session, if any.
    pub session_id: Option<String>,
    /// User, if any.
    pub user_id: Option<String>,
    /// Whether the client got an answer.
    pub success: bool,
    /// Providers tried.
    pub attempts: u32,
    /// Whether the answer was streamed.
    pub streamed: bool,
    /// Wall time of the whole call inside tutorlog, microseconds.
    pub duration_micros: u64,
    /// Quality 0–100 when known (benchmarks, graded rounds); `None` otherwise.
    pub quality: Option<f64>,
    /// The reservation's estimate, micro-USD (0 when nothing was reserved).
    pub cost_estimate_micros: u64,
    /// The cost from the provider's usage, micro-USD.
    pub cost_actual_micros: u64,
    /// Input tokens reported.
    pub input_tokens: u64,
    /// Output tokens reported.
    pub output_tokens: u64,
    /// How the last attempt failed, if the call failed.
    pub error_kind: Option<ErrorKind>,
    /// The request's messages as canonical JSON (`[{"role","content"}]`), when
    /// `gateway.record_content` is on; for audits and dataset export.
    pub request_messages: Option<String>,
    /// The answer's text, when `gateway.record_content` is on.
    pub response_text: Option<String>,
}

/// `feedback.recorded` (v1): a user's or grader's verdict on a gateway answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecorded {
    /// The gateway request.
    pub request_id: Uuid,
    /// Rating 1–5, if given.
    pub rating: Option<u8>,
    /// Whether the user accepted the answer, if said.
    pub accepted: Option<bool>,
    /// Quality 0–100, if known.
    pub quality: Option<f64>,
    /// Free text (bounded by the API).
    pub comment: Option<String>,
}

/// `benchmark.run.scheduled` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRunScheduled {
    /// Run id.
    pub run_id: Uuid,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// Categories to run.
    pub categories: Vec<String>,
    /// Providers to run them on.
    pub providers: Vec<String>,
}

/// `benchmark.run.started` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRunStarted {
    /// Run id.
    pub run_id: Uuid,
    /// Tests that will run (categories × tests × providers).
    pub tests: u32,
}

/// `benchmark.result.recorded` (v1): one test on one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkResultRecorded {
    /// Run id.
    pub run_id: Uuid,
    /// Provider tested.
    pub provider: String,
    /// Model tested.
    pub model: String,
    /// Category of the test.
    pub category: String,
    /// Test id within the category.
    pub test_id: String,
    /// Quality 0–100 by the test's rubric (0 when the call failed).
    pub quality: f64,
    /// Call latency, microseconds.
    pub latency_micros: u64,
    /// Cost of the call, micro-USD.
    pub cost_micros: u64,
    /// Whether the call succeeded.
    pub success: bool,
    /// How it failed, if it did.
    pub error_kind: Option<ErrorKind>,
}

/// `benchmark.run.completed` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRunCompleted {
    /// Run id.
    pub run_id: Uuid,
    /// Results recorded.
    pub results: u32,
    /// Of which failed calls.
    pub failures: u32,
    /// Wall time of the run, microseconds.
    pub duration_micros: u64,
}
