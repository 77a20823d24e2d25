//! Measurements: a latency histogram, status counts and error samples per
//! endpoint, and the learning outcomes the daemon reported.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Lowest latency a histogram tells apart, microseconds.
const LATENCY_MICROS_MIN: u64 = 1;
/// Highest latency recorded exactly, microseconds (an hour; longer saturates).
const LATENCY_MICROS_MAX: u64 = 3_600_000_000;
/// Significant figures kept (0.1 % relative error).
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Error bodies kept per endpoint.
pub const ERROR_SAMPLES_MAX: usize = 5;
/// Bytes kept of each sampled error body.
pub const ERROR_SAMPLE_BYTES_MAX: usize = 512;

/// The endpoints the generator calls, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `POST /api/v1/training/start`.
    TrainingStart,
    /// `POST /api/v1/training/round`.
    TrainingRound,
    /// `POST /api/v1/challenges/start`.
    ChallengeStart,
    /// `POST /api/v1/challenges/grade`.
    ChallengeGrade,
    /// `POST /v1/chat/completions`, JSON answer.
    Chat,
    /// `POST /v1/chat/completions` with `stream: true`, until `[DONE]`.
    ChatStream,
    /// The same, until the first body chunk (time to first token).
    ChatStreamFirstChunk,
}

impl Endpoint {
    /// Every endpoint, in report order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::TrainingStart,
        Endpoint::TrainingRound,
        Endpoint::ChallengeStart,
        Endpoint::ChallengeGrade,
        Endpoint::Chat,
        Endpoint::ChatStream,
        Endpoint::ChatStreamFirstChunk,
    ];

    /// The label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::TrainingStart => "POST /api/v1/training/start",
            Endpoint::TrainingRound => "POST /api/v1/training/round",
            Endpoint::ChallengeStart => "POST /api/v1/challenges/start",
            Endpoint::ChallengeGrade => "POST /api/v1/challenges/grade",
            Endpoint::Chat => "POST /v1/chat/completions",
            Endpoint::ChatStream => "POST /v1/chat/completions (stream)",
            Endpoint::ChatStreamFirstChunk => "POST /v1/chat/completions (stream, first chunk)",
        }
    }

    /// The path, as written in `--record` lines.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::TrainingStart => "/api/v1/training/start",
            Endpoint::TrainingRound => "/api/v1/training/round",
            Endpoint::ChallengeStart => "/api/v1/challenges/start",
            Endpoint::ChallengeGrade => "/api/v1/challenges/grade",
            Endpoint::Chat | Endpoint::ChatStream | Endpoint::ChatStreamFirstChunk => {
                "/v1/chat/completions"
            }
        }
    }

    /// The scenario the endpoint belongs to.
    pub fn scenario(self) -> Scenario {
        match self {
            Endpoint::TrainingStart | Endpoint::TrainingRound => Scenario::Training,
            Endpoint::ChallengeStart | Endpoint::ChallengeGrade => Scenario::Challenges,
            Endpoint::Chat | Endpoint::ChatStream | Endpoint::ChatStreamFirstChunk => {
                Scenario::Chat
            }
        }
    }

    /// Whether this is a derived measurement of another request (not a request).
    pub fn is_derived(self) -> bool {
        self == Endpoint::ChatStreamFirstChunk
    }
}

/// The three kinds of traffic `--mix` weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Whole training sessions.
    Training,
    /// Challenges: start, then grade.
    Challenges,
    /// Chat through the gateway.
    Chat,
}

impl Scenario {
    /// In `--mix` order.
    pub const ALL: [Scenario; 3] = [Scenario::Training, Scenario::Challenges, Scenario::Chat];

    /// The name in reports and `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Training => "training",
            Scenario::Challenges => "challenges",
            Scenario::Chat => "chat",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// An HTTP status.
    Http(u16),
    /// The connection could not be made (refused, reset before a response).
    Connect,
    /// No full answer within the request timeout.
    Timeout,
    /// Another transport error (reset mid-response, a malformed response).
    Transport,
    /// A 2xx whose body was not what the API promises (unreadable JSON, a stream
    /// with an error event or no `[DONE]`).
    BadBody,
}

impl Status {
    /// 2xx with a good body.
    pub fn is_success(self) -> bool {
        matches!(self, Status::Http(code) if (200..300).contains(&code))
    }

    /// 5xx.
    pub fn is_server_error(self) -> bool {
        matches!(self, Status::Http(code) if code >= 500)
    }

    /// The key in reports: `"200"`, `"503"`, `"connect_error"`, ...
    pub fn key(self) -> String {
        match self {
            Status::Http(code) => code.to_string(),
            Status::Connect => "connect_error".into(),
            Status::Timeout => "timeout".into(),
            Status::Transport => "transport_error".into(),
            Status::BadBody => "bad_body".into(),
        }
    }
}

/// One sampled failure, with how many failures were exactly like it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorSample {
    /// [`Status::key`].
    pub status: String,
    /// The body (or the transport error), cut at [`ERROR_SAMPLE_BYTES_MAX`].
    pub body: String,
    /// Failures with this status and (cut) body.
    pub count: u64,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// 99.9th.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram (1 µs to an hour, 3 significant figures).
    pub fn new() -> Latency {
        let histogram = Histogram::new_with_bounds(
            LATENCY_MICROS_MIN,
            LATENCY_MICROS_MAX,
            LATENCY_SIGNIFICANT_FIGURES,
        )
        .unwrap_or_else(|error| unreachable!("constant histogram bounds: {error}"));
        Latency(histogram)
    }

    /// Records one latency (sub-microsecond counts as 1 µs, beyond an hour as an hour).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0
            .saturating_record(micros.clamp(LATENCY_MICROS_MIN, LATENCY_MICROS_MAX));
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        if let Err(error) = self.0.add(&other.0) {
            unreachable!("histograms with the same bounds: {error}");
        }
    }

    /// The percentiles (zeros when empty).
    pub fn percentiles(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        }
    }
}

/// One endpoint's measurements.
#[derive(Debug, Clone, Default)]
pub struct EndpointStats {
    /// Latency of every answered or failed request (from its due time in open loop).
    pub latency: Latency,
    /// Requests by outcome.
    pub statuses: BTreeMap<Status, u64>,
    /// The first few failures.
    pub samples: Vec<ErrorSample>,
}

/// What the daemon said about the learning traffic (measured requests only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LearningCounters {
    /// `training/start` answered 2xx.
    pub sessions_started: u64,
    /// Rounds answered `status: completed`.
    pub sessions_completed: u64,
    /// Sessions given up after errors (a 4xx on a round, or repeated failures).
    pub sessions_abandoned: u64,
    /// Rounds graded.
    pub rounds: u64,
    /// Rounds the generator meant to answer right.
    pub rounds_meant_right: u64,
    /// Rounds the daemon graded correct.
    pub rounds_graded_correct: u64,
    /// Sum of round scores (for the mean).
    pub round_score_sum: u64,
    /// Rounds after which the learner's area was reported mastered.
    pub rounds_mastered: u64,
    /// Challenges handed out.
    pub challenges_started: u64,
    /// Challenges graded.
    pub challenges_graded: u64,
    /// Challenges graded correct.
    pub challenges_correct: u64,
    /// Prompts not found in the item bank (answered "I don't know").
    pub unknown_prompts: u64,
    /// Answers meant right graded incorrect, or meant wrong graded correct: the
    /// daemon's bank or grader differs from the one linked here.
    pub grader_disagreements: u64,
    /// Chat answers (JSON and streamed) received in full.
    pub chats_completed: u64,
}

/// Everything measured in one run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    endpoints: BTreeMap<Endpoint, EndpointStats>,
    /// How late requests went out after their due time (open loop only).
    pub send_lag: Latency,
    /// Learning outcomes.
    pub learning: LearningCounters,
    /// Requests completed during the warm-up (not in any figure above).
    pub warmup_requests: u64,
    /// Measured requests that had to wait for a free learner (every learner of
    /// their scenario was busy): the generator, not the daemon, held them up.
    pub learner_waits: u64,
    /// Highest log `position` in any 2xx write answer (warm-up included).
    pub position_max: Option<u64>,
}

impl Stats {
    /// Records a finished request.
    pub fn record(&mut self, endpoint: Endpoint, status: Status, latency: Duration) {
        let entry = self.endpoints.entry(endpoint).or_default();
        entry.latency.record(latency);
        *entry.statuses.entry(status).or_default() += 1;
    }

    /// Counts a failure's body against an identical sample, or keeps it as a new
    /// one while fewer than [`ERROR_SAMPLES_MAX`] are kept.
    pub fn sample(&mut self, endpoint: Endpoint, status: Status, body: &str) {
        let entry = self.endpoints.entry(endpoint).or_default();
        let key = status.key();
        let body = truncate(body, ERROR_SAMPLE_BYTES_MAX);
        if let Some(same) = entry
            .samples
            .iter_mut()
            .find(|s| s.status == key && s.body == body)
        {
            same.count += 1;
        } else if entry.samples.len() < ERROR_SAMPLES_MAX {
            entry.samples.push(ErrorSample {
                status: key,
                body: body.to_owned(),
                count: 1,
            });
        }
    }

    /// Notes a log position from a 2xx write answer.
    pub fn position(&mut self, position: Option<u64>) {
        if let Some(position) = position {
            self.position_max = Some(self.position_max.map_or(position, |m| m.max(position)));
        }
    }

    /// One endpoint's measurements, if it was called.
    pub fn endpoint(&self, endpoint: Endpoint) -> Option<&EndpointStats> {
        self.endpoints.get(&endpoint)
    }

    /// Requests measured (derived measurements excluded).
    pub fn requests(&self) -> u64 {
        self.endpoints
            .iter()
            .filter(|(e, _)| !e.is_derived())
            .map(|(_, s)| s.latency.count())
            .sum()
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        // hdrhistogram keeps 3 significant figures: within 0.1 %.
        (a - b).abs() <= b.abs() * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_milliseconds() {
        let mut latency = Latency::new();
        for ms in 1..=1000u64 {
            latency.record(Duration::from_millis(ms));
        }
        let p = latency.percentiles();
        assert_eq!(p.count, 1000);
        assert!(close(p.mean_ms, 500.5), "{p:?}");
        assert!(close(p.p50_ms, 500.0), "{p:?}");
        assert!(close(p.p90_ms, 900.0), "{p:?}");
        assert!(close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.p999_ms, 999.0), "{p:?}");
        assert!(close(p.max_ms, 1000.0), "{p:?}");
    }

    #[test]
    fn one_stall_shows_in_the_tail_only() {
        let mut latency = Latency::new();
        for _ in 0..9_999 {
            latency.record(Duration::from_micros(2_000));
        }
        latency.record(Duration::from_secs(3));
        let p = latency.percentiles();
        assert!(close(p.p50_ms, 2.0) && close(p.p99_ms, 2.0), "{p:?}");
        assert!(close(p.p999_ms, 2.0), "{p:?}");
        assert!(close(p.max_ms, 3000.0), "{p:?}");
    }

    #[test]
    fn empty_histograms_report_zeros_and_extremes_saturate() {
        assert_eq!(Latency::new().percentiles(), Percentiles::default());
        let mut latency = Latency::new();
        latency.record(Duration::ZERO);
        latency.record(Duration::from_secs(7200));
        let p = latency.percentiles();
        assert!(close(p.p50_ms, 0.001), "{p:?}");
        assert!(close(p.max_ms, 3_600_000.0), "{p:?}");
    }

    #[test]
    fn merged_histograms_count_both() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!(close(a.percentiles().max_ms, 9.0));
    }

    #[test]
    fn statuses_samples_and_positions() {
        let mut stats = Stats::default();
        stats.record(
            Endpoint::TrainingRound,
            Status::Http(200),
            Duration::from_millis(1),
        );
        stats.record(
            Endpoint::TrainingRound,
            Status::Http(503),
            Duration::from_millis(2),
        );
        stats.record(
            Endpoint::TrainingRound,
            Status::Connect,
            Duration::from_millis(3),
        );
        stats.record(
            Endpoint::ChatStreamFirstChunk,
            Status::Http(200),
            Duration::from_millis(3),
        );
        for i in 0..10 {
            stats.sample(
                Endpoint::TrainingRound,
                Status::Http(503),
                &format!("body {i}"),
            );
        }
        for _ in 0..3 {
            stats.sample(Endpoint::TrainingRound, Status::Http(503), "body 1");
        }
        stats.sample(Endpoint::TrainingRound, Status::Connect, "body 1");
        let round = stats
            .endpoint(Endpoint::TrainingRound)
            .expect("round stats");
        assert_eq!(round.statuses.get(&Status::Http(503)), Some(&1));
        assert_eq!(round.samples.len(), ERROR_SAMPLES_MAX);
        assert_eq!(
            round.samples.first().map(|s| s.body.as_str()),
            Some("body 0")
        );
        let counts: Vec<u64> = round.samples.iter().map(|s| s.count).collect();
        assert_eq!(
            counts,
            [1, 4, 1, 1, 1],
            "identical failures count, new ones stop at the cap"
        );
        assert_eq!(
            stats.requests(),
            3,
            "the first-chunk figure is not a request"
        );
        stats.position(Some(7));
        stats.position(None);
        stats.position(Some(3));
        assert_eq!(stats.position_max, Some(7));
        assert!(Status::Http(204).is_success() && !Status::Http(404).is_success());
        assert!(Status::Http(503).is_server_error() && !Status::Timeout.is_server_error());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
