//! Batch algorithm runs over the whole log: difficulty recalibration and mistake
//! mining, each recorded as an audited run (`algo.run.started` → `succeeded` /
//! `failed`) with its results in the output summary. Run on a schedule by the daemon
//! and on demand by the admin API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tutorlog_schemas::{events::RunTrigger, Envelope, Event};
use tutorlog_store::{EventStore, StoreError};
use uuid::Uuid;

use crate::algo_registry::catalog::{AlgoCatalog, CatalogError};
use crate::algorithms::difficulty::{calibrate_all, ItemAttempt};
use crate::algorithms::mistakes::{mine, WrongAnswer};
use crate::algorithms::{canonicalize_json_str, AlgoKey, AlgoParams};

/// Attempts kept per item while collecting (the newest).
pub const ATTEMPTS_PER_ITEM_MAX: usize = 1000;
/// Wrong answers kept per learner while collecting (the newest).
pub const WRONG_PER_LEARNER_MAX: usize = 1000;
/// Items or learners listed in an output summary.
pub const SUMMARY_ROWS_MAX: usize = 200;
/// Events read per `read_all` call.
const READ_CHUNK_EVENTS: usize = 1000;

/// What the batch algorithms read from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchInput {
    /// Graded attempts per item, oldest first.
    pub attempts_by_item: BTreeMap<String, Vec<ItemAttempt>>,
    /// Wrong answers per learner, oldest first.
    pub wrong_by_learner: BTreeMap<String, Vec<WrongAnswer>>,
    /// Events read.
    pub events_read: u64,
}

fn push_bounded<T>(list: &mut Vec<T>, value: T, max: usize) {
    if list.len() >= max {
        list.remove(0);
    }
    list.push(value);
}

impl BatchInput {
    /// Folds one event (pure).
    pub fn apply(&mut self, envelope: &Envelope) {
        self.events_read += 1;
        let user = envelope.stream.strip_prefix("learner-");
        let (item_id, correct, tag, skill, at) = match &envelope.payload {
            Event::TrainingRoundCompleted(done) => (
                &done.item_id,
                done.correct,
                &done.mistake_tag,
                done.focus_area.clone(),
                done.completed_at,
            ),
            Event::ChallengeCompleted(done) => (
                &done.item_id,
                done.correct,
                &done.mistake_tag,
                String::new(),
                envelope.recorded_at,
            ),
            _ => return,
        };
        let attempts = self.attempts_by_item.entry(item_id.clone()).or_default();
        push_bounded(
            attempts,
            ItemAttempt {
                correct,
                learner_ability: None,
            },
            ATTEMPTS_PER_ITEM_MAX,
        );
        if let (Some(user), false) = (user, correct) {
            let skill_id = if skill.is_empty() {
                item_id.split('-').next().unwrap_or_default().to_owned()
            } else {
                skill
            };
            let wrong = WrongAnswer {
                at,
                item_id: item_id.clone(),
                skill_id,
                tags: vec![tag.clone().unwrap_or_else(|| "untagged".to_owned())],
            };
            push_bounded(
                self.wrong_by_learner.entry(user.to_owned()).or_default(),
                wrong,
                WRONG_PER_LEARNER_MAX,
            );
        }
    }

    /// Reads the whole log.
    pub async fn collect(store: &dyn EventStore) -> Result<BatchInput, StoreError> {
        let mut input = BatchInput::default();
        let mut from = 0;
        loop {
            let batch = store.read_all(from, READ_CHUNK_EVENTS).await?;
            let Some(last) = batch.last() else { break };
            from = last.position + 1;
            for recorded in &batch {
                match Envelope::decode(recorded) {
                    Ok(envelope) => input.apply(&envelope),
                    Err(tutorlog_schemas::CodecError::UnknownEventType { .. }) => {}
                    Err(error) => return Err(StoreError::from(error)),
                }
            }
            if batch.len() < READ_CHUNK_EVENTS {
                break;
            }
        }
        Ok(input)
    }
}

fn canonical(value: &serde_json::Value) -> String {
    canonicalize_json_str(&value.to_string()).unwrap_or_else(|_| value.to_string())
}

/// Difficulty recalibration over `input` with `params` (pure): the output summary.
pub fn difficulty_summary(params: &AlgoParams, input: &BatchInput) -> Result<String, String> {
    let AlgoParams::Difficulty(params) = params else {
        return Err("the ACTIVE difficulty version has no difficulty params".into());
    };
    let calibrated = calibrate_all(params, &input.attempts_by_item);
    let items: BTreeMap<&String, serde_json::Value> = calibrated
        .iter()
        .take(SUMMARY_ROWS_MAX)
        .map(|(id, d)| (id, json!({ "attempts": d.attempts, "p_correct": d.p_correct, "difficulty": d.difficulty, "band": d.band })))
        .collect();
    Ok(canonical(
        &json!({ "items_calibrated": calibrated.len(), "items": items }),
    ))
}

/// Mistake mining over `input` with `params` at `now` (pure): the output summary.
pub fn mistakes_summary(
    params: &AlgoParams,
    input: &BatchInput,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let AlgoParams::Mistakes(params) = params else {
        return Err("the ACTIVE mistakes version has no mistakes params".into());
    };
    let mut learners = BTreeMap::new();
    let mut patterns_total = 0usize;
    for (user, wrong) in &input.wrong_by_learner {
        let patterns = mine(params, wrong, now);
        if patterns.is_empty() {
            continue;
        }
        patterns_total += patterns.len();
        if learners.len() < SUMMARY_ROWS_MAX {
            learners.insert(user, json!(patterns.iter().take(5).map(|p| json!({ "skill_id": p.skill_id, "tag": p.tag, "count": p.count, "distinct_items": p.distinct_items })).collect::<Vec<_>>()));
        }
    }
    Ok(canonical(
        &json!({ "learners_with_patterns": learners.len(), "patterns": patterns_total, "learners": learners }),
    ))
}

/// One finished batch run.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// Run id.
    pub run_id: Uuid,
    /// Log position of its last event.
    pub position: Option<u64>,
    /// Output summary, or the error.
    pub result: Result<String, String>,
}

/// Runs the batch algorithm `key` (difficulty or mistakes) over the whole log as an
/// audited run.
pub async fn run_batch(
    store: &dyn EventStore,
    catalog: &AlgoCatalog,
    key: AlgoKey,
    trigger: RunTrigger,
    now: DateTime<Utc>,
) -> Result<BatchRun, CatalogError> {
    if !matches!(key, AlgoKey::Difficulty | AlgoKey::Mistakes) {
        return Err(CatalogError::Algo(
            crate::algorithms::AlgoError::InvalidInput(format!(
                "{key} has no batch run (difficulty, mistakes)"
            )),
        ));
    }
    let collected = BatchInput::collect(store).await;
    let input_summary = match &collected {
        Ok(input) => canonical(
            &json!({ "events_read": input.events_read, "items": input.attempts_by_item.len(), "learners": input.wrong_by_learner.len(), "now": now }),
        ),
        Err(_) => canonical(&json!({ "now": now })),
    };
    let (run_id, position, result) = catalog
        .audited_run(key, trigger, None, input_summary, |active| {
            let input = collected
                .as_ref()
                .map_err(|error| format!("reading the log: {error}"))?;
            match key {
                AlgoKey::Difficulty => difficulty_summary(&active.params, input),
                _ => mistakes_summary(&active.params, input, now),
            }
        })
        .await?;
    Ok(BatchRun {
        run_id,
        position,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::reference_time;
    use tutorlog_schemas::events::TrainingRoundCompleted;

    fn round(item: &str, correct: bool, tag: Option<&str>, position: u64) -> Envelope {
        Envelope {
            event_id: Uuid::from_u128(u128::from(position)),
            stream: "learner-ada".into(),
            revision: position,
            position,
            recorded_at: reference_time(),
            event_type: "training.round.completed".into(),
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            payload: Event::TrainingRoundCompleted(TrainingRoundCompleted {
                session_id: Uuid::from_u128(1),
                round_id: Uuid::from_u128(2),
                round_number: 1,
                focus_area: "algebra".into(),
                item_id: item.into(),
                response_digest: String::new(),
                score: if correct { 100 } else { 0 },
                correct,
                feedback: String::new(),
                mistake_tag: tag.map(str::to_owned),
                mastery_before: 0.0,
                mastery_after: 0.0,
                probability_after: 0.0,
                next_review_due: None,
                revision_card: String::new(),
                completed_at: reference_time(),
                algo_runs: Vec::new(),
            }),
        }
    }

    #[test]
    fn batch_summaries_are_deterministic_and_find_patterns() {
        let mut input = BatchInput::default();
        for n in 0..12u64 {
            input.apply(&round("algebra-1", n % 3 == 0, Some("sign-error"), n));
        }
        let difficulty = AlgoParams::defaults(AlgoKey::Difficulty, 1).expect("defaults");
        let mistakes = AlgoParams::defaults(AlgoKey::Mistakes, 1).expect("defaults");
        let first = difficulty_summary(&difficulty, &input).expect("difficulty");
        assert_eq!(
            first,
            difficulty_summary(&difficulty, &input).expect("again")
        );
        assert!(first.contains("\"items_calibrated\":1"), "{first}");
        let mined = mistakes_summary(&mistakes, &input, reference_time()).expect("mistakes");
        assert!(
            mined.contains("sign-error") && mined.contains("\"count\":8"),
            "{mined}"
        );
        assert!(difficulty_summary(&mistakes, &input).is_err());
    }
}
