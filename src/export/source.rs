//! What the export takes from the log: graded attempts (training rounds and
//! challenges), recorded gateway exchanges and the feedback on them.
//!
//! Only the four event types involved are decoded; everything else is counted and
//! skipped. A record this build cannot decode is counted, never fatal: one odd
//! event must not make a whole history unexportable.

use std::collections::BTreeMap;

use tutorlog_schemas::{Envelope, Event, RecordedEvent};
use uuid::Uuid;

use super::{ExportError, SOURCE_RECORDS_MAX};

/// Event types the export reads.
const SOURCE_EVENT_TYPES: [&str; 4] = [
    "training.round.completed",
    "challenge.completed",
    "execution.recorded",
    "feedback.recorded",
];

/// One graded answer to a bank item (a training round or a challenge).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Position of the grading event.
    pub position: u64,
    /// Bank item answered.
    pub item_id: String,
    /// SHA-256 (hex) of the learner's response.
    pub response_digest: String,
    /// Score 0–100.
    pub score: u32,
    /// Whether it counted as correct.
    pub correct: bool,
    /// The grader's feedback.
    pub feedback: String,
}

/// A successful gateway call whose content was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// Position of its `execution.recorded`.
    pub position: u64,
    /// Routing category.
    pub category: String,
    /// The request's messages, canonical JSON `[{"role","content"}]`.
    pub request_messages: String,
    /// The answer.
    pub response_text: String,
    /// The execution's own quality, when known.
    pub quality: Option<f64>,
}

/// One `feedback.recorded`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Rating 1–5.
    pub rating: Option<u8>,
    /// Accepted or not.
    pub accepted: Option<bool>,
    /// Quality 0–100.
    pub quality: Option<f64>,
}

/// Counts of what was read, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Events read from the log.
    pub events_read: u64,
    /// Events of a source type that did not decode.
    pub undecodable: u64,
    /// Graded training rounds.
    pub rounds: u64,
    /// Graded challenges.
    pub challenges: u64,
    /// Successful calls with recorded content.
    pub exchanges: u64,
    /// Calls that failed or were recorded without content (`record_content` off).
    pub exchanges_unusable: u64,
    /// `feedback.recorded` events.
    pub feedback: u64,
}

/// The export's inputs, folded from the log in position order.
#[derive(Debug, Default)]
pub struct Sources {
    /// Graded attempts in log order.
    pub attempts: Vec<Attempt>,
    /// Exchanges by request id (the first record wins if a request id repeats).
    pub exchanges: BTreeMap<Uuid, Exchange>,
    /// Feedback by request id, in log order.
    pub verdicts: BTreeMap<Uuid, Vec<Verdict>>,
    /// What was read.
    pub stats: SourceStats,
    records: usize,
}

impl Sources {
    /// Empty sources.
    pub fn new() -> Self {
        Sources::default()
    }

    /// Folds one event. Fails only when more than [`SOURCE_RECORDS_MAX`] records
    /// would be held.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ExportError> {
        self.stats.events_read += 1;
        if !SOURCE_EVENT_TYPES.contains(&recorded.event_type.as_str()) {
            return Ok(());
        }
        let Ok(envelope) = Envelope::decode(recorded) else {
            self.stats.undecodable += 1;
            return Ok(());
        };
        let position = recorded.position;
        let held = match envelope.payload {
            Event::TrainingRoundCompleted(round) => {
                self.stats.rounds += 1;
                self.attempts.push(Attempt {
                    position,
                    item_id: round.item_id,
                    response_digest: round.response_digest,
                    score: round.score,
                    correct: round.correct,
                    feedback: round.feedback,
                });
                true
            }
            Event::ChallengeCompleted(challenge) => {
                self.stats.challenges += 1;
                self.attempts.push(Attempt {
                    position,
                    item_id: challenge.item_id,
                    response_digest: challenge.answer_digest,
                    score: challenge.score,
                    correct: challenge.correct,
                    feedback: challenge.feedback,
                });
                true
            }
            Event::ExecutionRecorded(execution) => self.execution(position, execution),
            Event::FeedbackRecorded(feedback) => {
                self.stats.feedback += 1;
                self.verdicts
                    .entry(feedback.request_id)
                    .or_default()
                    .push(Verdict {
                        rating: feedback.rating,
                        accepted: feedback.accepted,
                        quality: feedback.quality,
                    });
                true
            }
            _ => false,
        };
        if held {
            self.records += 1;
            if self.records > SOURCE_RECORDS_MAX {
                return Err(ExportError::TooLarge);
            }
        }
        Ok(())
    }

    fn execution(
        &mut self,
        position: u64,
        execution: tutorlog_schemas::events::ExecutionRecorded,
    ) -> bool {
        let (true, Some(request_messages), Some(response_text)) = (
            execution.success,
            execution.request_messages,
            execution.response_text,
        ) else {
            self.stats.exchanges_unusable += 1;
            return false;
        };
        if self.exchanges.contains_key(&execution.request_id) {
            return false;
        }
        self.stats.exchanges += 1;
        self.exchanges.insert(
            execution.request_id,
            Exchange {
                position,
                category: execution.category,
                request_messages,
                response_text,
                quality: execution.quality,
            },
        );
        true
    }
}
