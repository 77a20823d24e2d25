//! Dataset export (seed 002): fine-tuning examples and preference pairs built from
//! the log, scored, filtered, split 80/10/10 and versioned by a content hash.
//!
//! Everything here is pure: [`Sources`] folds the events the command reads,
//! [`build`] turns them into a [`Dataset`], [`render`] into the bytes of the files.
//! The same log and the same flags give byte-identical files (see "Determinism").
//! Nothing is trained: this module only writes data a trainer can read.
//!
//! # Examples (`train.jsonl`, `validation.jsonl`, `test.jsonl`)
//!
//! One OpenAI chat fine-tuning line per example: `{"messages":[{"content","role"}…]}`.
//!
//! - **`item_answer`** — one per bank item that learners answered in graded rounds
//!   or challenges: `system` ([`TUTOR_SYSTEM_PROMPT`]), `user` (the item's prompt),
//!   `assistant` (the item's reference answer, a blank line, its explanation). The
//!   learner's response is not the target: learners are often wrong, and the log
//!   keeps only its SHA-256. The curated answer with its reasoning is what a tutor
//!   model should say; the rounds are the evidence of how often the item was asked
//!   and failed, which feeds confidence and informativeness.
//! - **`tutor_feedback`** — `system` ([`FEEDBACK_SYSTEM_PROMPT`]), `user`
//!   (`Question: …` + `Learner's answer: …`), `assistant` (the grader's feedback
//!   recorded in the event). This teaches the tutor's second job, reacting to an
//!   answer. The response text is never invented: it is included only when a text
//!   from the bank (the reference, an accepted variant or a tagged misconception)
//!   reproduces the event's `response_digest` exactly. Other rounds give no such
//!   example.
//! - **`gateway_exchange`** — a successful `execution.recorded` with
//!   `request_messages` and `response_text` (recorded when `gateway.record_content`
//!   is on): the request's messages, then the answer as the `assistant` turn, scored
//!   by the `feedback.recorded` events on the same request id.
//!
//! Identical examples (the same line) are merged, so no line appears twice and no
//! copy can land in both train and test: identical gateway exchanges pool their
//! feedback; of identical training examples the better-supported copy is kept.
//!
//! # Composite quality score
//!
//! Every component is 0–100; `composite = 0.6·Q + 0.2·C + 0.1·D + 0.1·I` (the seed's
//! 60/20/10/10). Examples with `composite ≥ --min-quality` (default 70) are kept.
//!
//! - **Q, quality** — how good the assistant turn is.
//!   `item_answer`: the rubric's score of the reference answer, regraded with the
//!   bank (100 for a sound item). `tutor_feedback`: 100 when regrading the recovered
//!   response with today's bank gives the recorded score and feedback, 70 when only
//!   the score matches, 0 otherwise (a stale label). `gateway_exchange`: the mean of
//!   its signals — each feedback's `quality`, `(rating − 1) · 25`, `accepted` as 100
//!   or 0, and the execution's own `quality` — or 50 (unknown) with no signal.
//! - **C, confidence** — how much evidence stands behind Q. Training kinds:
//!   `100 · (1 − 2⁻ⁿ)` for the `n` graded attempts behind the example. Gateway:
//!   `100 · (1 − 2⁻ˢ) · (1 − spread/100)` for `s` signals whose max − min is
//!   `spread`; no signal gives 0.
//! - **D, diversity** — `100 / k`, where `k` is the number of candidate examples
//!   sharing the same prompt (every message before the assistant turn): the same
//!   question answered several ways counts less per copy.
//! - **I, informativeness** — how much the example teaches. With
//!   `L(text) = 100 · min(1, √(words / 200))` of the assistant turn:
//!   `item_answer`: `0.5·L + 0.5 · 100 · failed/attempts` (items learners fail
//!   teach more); `tutor_feedback`: `0.5·L + 0.5 · 100 · share of incorrect
//!   attempts`; `gateway_exchange`: `L`.
//!
//! Only operations IEEE 754 rounds correctly (`+ − × ÷ √`) are used, never a libm
//! function such as `ln`, so every score is the same bit pattern on every platform.
//!
//! # Outliers
//!
//! When more than [`OUTLIER_MIN_EXAMPLES`] (100) examples pass the filter, each
//! example's `x = √(characters of all its messages)` gets a robust z-score
//! `z = 0.6745 · (x − median) / MAD` (Iglewicz–Hoaglin; when MAD is 0,
//! `(x − median) / (1.253314 · mean absolute deviation)`; when both are 0, nothing is
//! an outlier). Examples with `|z| > 3.5` are removed.
//!
//! # Split
//!
//! Stratified by `category/difficulty` (gateway exchanges: the routing category and
//! `n/a`). Strata are taken in name order, and inside a stratum examples in the
//! order of the BLAKE3 hash of their line, so the order depends on content only.
//! Walking that sequence, each example goes to the split furthest behind its share
//! (integer deficits `j·w − 100·count`, weights 80/10/10, ties to train, then
//! validation). Every prefix is within one example of 80/10/10, so the totals are
//! within one example of exact and each stratum is split about 80/10/10.
//!
//! # Preference pairs (`preferences.jsonl`)
//!
//! `{"chosen":[assistant], "prompt":[messages…], "rejected":[assistant]}`:
//!
//! - **Items**: the prompt is `system` ([`ANSWER_SYSTEM_PROMPT`]) and `user` (the
//!   item's prompt). `chosen` is the best recovered learner response scoring ≥ 80
//!   (the pass mark), or the bare reference answer when no learner passed;
//!   `rejected` is each other recovered response scoring < 80 and at least
//!   [`PAIR_MARGIN`] (20) below `chosen`. A response counts only with a recorded
//!   score today's rubric still gives. Both sides are bare answers, so a trainer
//!   cannot learn "longer is better" from them.
//! - **Gateway**: exchanges with the same prompt (identical request messages): each
//!   one with feedback and Q ≥ 70 against each one with feedback and Q ≤ 40, best
//!   against worst first, at most [`PAIRS_PER_PROMPT_MAX`] pairs per prompt.
//!
//! A pair's composite uses Q of `chosen`, the lower confidence of the two sides, D =
//! 100 / pairs with the same prompt and I = the quality margin; pairs below
//! `--min-quality` are dropped. Pairs are not split.
//!
//! # Determinism
//!
//! No clock, no RNG, no hash-map order: inputs are read up to the log's last
//! position when the export starts, grouped in ordered maps, lines are canonical
//! JSON (keys sorted, no whitespace), files are sorted by line hash, and the
//! manifest holds no wall time. `version` is the BLAKE3 of the four data files
//! (each: name, a zero byte, its length as u64 little-endian, its bytes, in the
//! order train, validation, test, preferences).

mod build;
mod canonical;
mod outlier;
mod render;
mod score;
mod source;
mod split;

pub use build::{
    build, BuildOptions, BuildReport, Dataset, Example, ExampleKind, PairKind, PreferencePair,
};
pub use canonical::canonical_json;
pub use outlier::{outlier_flags, robust_z_scores};
pub use render::{render, ExportFiles, SourceRange, DATA_FILE_NAMES, MANIFEST_FILE_NAME};
pub use score::{composite, confidence_from_attempts, confidence_from_signals, length_score};
pub use source::{Attempt, Exchange, SourceStats, Sources, Verdict};
pub use split::{assign_splits, Split};

/// Version of the export's file shapes and manifest; bump on any change to them.
pub const EXPORT_SCHEMA_VERSION: u32 = 1;
/// `--min-quality` when not given (the seed's quality threshold).
pub const MIN_QUALITY_DEFAULT: f64 = 70.0;
/// Weight of quality in the composite score.
pub const WEIGHT_QUALITY: f64 = 0.6;
/// Weight of confidence.
pub const WEIGHT_CONFIDENCE: f64 = 0.2;
/// Weight of diversity.
pub const WEIGHT_DIVERSITY: f64 = 0.1;
/// Weight of informativeness.
pub const WEIGHT_INFORMATIVENESS: f64 = 0.1;
/// Outlier removal runs only when more examples than this pass the filter.
pub const OUTLIER_MIN_EXAMPLES: usize = 100;
/// Largest |robust z| an example may have.
pub const OUTLIER_Z_MAX: f64 = 3.5;
/// Split weights in percent: train, validation, test.
pub const SPLIT_WEIGHTS_PERCENT: [u64; 3] = [80, 10, 10];
/// Least quality difference between the two sides of a preference pair.
pub const PAIR_MARGIN: f64 = 20.0;
/// Gateway pairs: least quality of the chosen side.
pub const PAIR_CHOSEN_QUALITY_MIN: f64 = 70.0;
/// Gateway pairs: most quality of the rejected side.
pub const PAIR_REJECTED_QUALITY_MAX: f64 = 40.0;
/// Most gateway pairs per prompt (n positives × m negatives grows fast).
pub const PAIRS_PER_PROMPT_MAX: usize = 16;
/// Words at which the length score saturates.
pub const LENGTH_SCORE_WORDS: u32 = 200;
/// Most source records (attempts, exchanges, feedback) one export holds in memory;
/// past it the export stops and asks for `--since`.
pub const SOURCE_RECORDS_MAX: usize = 2_000_000;
/// Difficulty of gateway exchanges, which have none.
pub const NO_DIFFICULTY: &str = "n/a";

/// The system turn of `item_answer` examples.
pub const TUTOR_SYSTEM_PROMPT: &str = "You are a patient tutor. Answer the question correctly and briefly, then explain the reasoning in a few sentences.";
/// The system turn of item preference pairs, whose sides are bare answers.
pub const ANSWER_SYSTEM_PROMPT: &str =
    "You are a patient tutor. Answer the question with the answer only.";
/// The system turn of `tutor_feedback` examples.
pub const FEEDBACK_SYSTEM_PROMPT: &str = "You are a patient tutor. Given a question and a learner's answer, say whether the answer is right and give specific feedback: name the mistake if there is one, then explain.";

const _: () =
    assert!(SPLIT_WEIGHTS_PERCENT[0] + SPLIT_WEIGHTS_PERCENT[1] + SPLIT_WEIGHTS_PERCENT[2] == 100);
const _: () = assert!(PAIR_CHOSEN_QUALITY_MIN - PAIR_REJECTED_QUALITY_MAX >= PAIR_MARGIN);

/// One chat message of an example or pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// Why an export could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// More source records than [`SOURCE_RECORDS_MAX`].
    #[error("more than {max} graded rounds, exchanges and feedback events to hold; export a window with --since", max = SOURCE_RECORDS_MAX)]
    TooLarge,
}

#[cfg(test)]
mod tests;
