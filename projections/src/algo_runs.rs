//! `algo_runs`: the audit table of algorithm runs (seed 001): batch runs from
//! `algo.run.*` events and the per-round runs carried in training events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{events::AlgoRunRecord, Envelope, Event};
use uuid::Uuid;

use crate::mastery::LEARNER_STREAM_PREFIX;
use crate::narrow::{FilterKind, Narrow, ViewFilter};
use crate::projection::Projection;

/// Runs kept; older ones (by run id, which is time-ordered) are dropped first.
pub const ALGO_RUNS_KEPT_MAX: usize = 50_000;

/// One algorithm run: a row of the `algo_runs` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AlgoRun)]
pub struct AlgoRunRow {
    /// Run id.
    pub run_id: Uuid,
    /// Algorithm key.
    pub key: String,
    /// Version.
    pub version: u32,
    /// Params checksum.
    pub params_checksum: String,
    /// Learner.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<Uuid>,
    /// `manual` / `submit` / `nightly` / `cron` / `api`.
    pub trigger: String,
    /// `RUNNING` / `SUCCESS` / `FAILED`.
    pub status: String,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Input summary (canonical JSON).
    pub input_summary: String,
    /// Output summary (canonical JSON).
    pub output_summary: Option<String>,
    /// Error.
    pub error: Option<String>,
    /// Log position of the event that recorded the start.
    pub position: u64,
}

/// The `algo_runs` model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlgoRunsModel {
    /// Runs by id.
    pub runs: BTreeMap<Uuid, AlgoRunRow>,
    /// Runs ever recorded (including dropped ones).
    pub runs_total: u64,
}

/// Filters for [`AlgoRuns::query`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AlgoRunFilter {
    /// Algorithm key.
    pub key: Option<String>,
    /// Version.
    pub version: Option<u32>,
    /// Learner.
    pub user_id: Option<String>,
    /// Trigger.
    pub trigger: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
}

/// The `algo_runs` projection.
#[derive(Debug, Clone, Default)]
pub struct AlgoRuns {
    model: AlgoRunsModel,
}

impl AlgoRuns {
    /// An empty projection.
    pub fn new() -> Self {
        AlgoRuns::default()
    }

    /// Newest first, at most `limit` rows matching `filter`.
    pub fn query(&self, filter: &AlgoRunFilter, limit: usize) -> Vec<AlgoRunRow> {
        self.model
            .runs
            .values()
            .rev()
            .filter(|row| filter.key.as_ref().is_none_or(|k| *k == row.key))
            .filter(|row| filter.version.is_none_or(|v| v == row.version))
            .filter(|row| {
                filter
                    .user_id
                    .as_ref()
                    .is_none_or(|u| row.user_id.as_ref() == Some(u))
            })
            .filter(|row| {
                filter
                    .trigger
                    .as_ref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(&row.trigger))
            })
            .filter(|row| {
                filter
                    .status
                    .as_ref()
                    .is_none_or(|s| s.eq_ignore_ascii_case(&row.status))
            })
            .filter(|row| filter.from.is_none_or(|from| row.started_at >= from))
            .filter(|row| filter.to.is_none_or(|to| row.started_at < to))
            .take(limit)
            .cloned()
            .collect()
    }

    fn insert(&mut self, row: AlgoRunRow) {
        self.model.runs_total += 1;
        self.model.runs.insert(row.run_id, row);
        while self.model.runs.len() > ALGO_RUNS_KEPT_MAX {
            self.model.runs.pop_first();
        }
    }

    fn carried(&mut self, runs: &[AlgoRunRecord], envelope: &Envelope, session_id: Uuid) {
        let user = envelope
            .stream
            .strip_prefix(LEARNER_STREAM_PREFIX)
            .map(str::to_owned);
        for run in runs {
            self.insert(AlgoRunRow {
                run_id: run.run_id,
                key: run.key.clone(),
                version: run.version,
                params_checksum: run.params_checksum.clone(),
                user_id: user.clone(),
                session_id: Some(session_id),
                trigger: "submit".into(),
                status: "SUCCESS".into(),
                started_at: envelope.recorded_at,
                completed_at: Some(envelope.recorded_at),
                input_summary: run.input_summary.clone(),
                output_summary: Some(run.output_summary.clone()),
                error: None,
                position: envelope.position,
            });
        }
    }
}

impl Projection for AlgoRuns {
    const NAME: &'static str = "algo_runs";
    type Model = AlgoRunsModel;

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.payload {
            Event::TrainingRoundStarted(round) => {
                self.carried(&round.algo_runs, envelope, round.session_id)
            }
            Event::TrainingRoundCompleted(round) => {
                self.carried(&round.algo_runs, envelope, round.session_id)
            }
            Event::AlgoRunStarted(started) => self.insert(AlgoRunRow {
                run_id: started.run_id,
                key: started.key.clone(),
                version: started.version,
                params_checksum: started.params_checksum.clone(),
                user_id: started.user_id.clone(),
                session_id: started.session_id,
                trigger: started.trigger.as_str().to_owned(),
                status: "RUNNING".into(),
                started_at: envelope.recorded_at,
                completed_at: None,
                input_summary: started.input_summary.clone(),
                output_summary: None,
                error: None,
                position: envelope.position,
            }),
            Event::AlgoRunSucceeded(done) => {
                if let Some(row) = self.model.runs.get_mut(&done.run_id) {
                    row.status = "SUCCESS".into();
                    row.completed_at = Some(envelope.recorded_at);
                    row.output_summary = Some(done.output_summary.clone());
                }
            }
            Event::AlgoRunFailed(failed) => {
                if let Some(row) = self.model.runs.get_mut(&failed.run_id) {
                    row.status = "FAILED".into();
                    row.completed_at = Some(envelope.recorded_at);
                    row.error = Some(failed.error.clone());
                }
            }
            _ => {}
        }
    }

    fn model(&self) -> &AlgoRunsModel {
        &self.model
    }

    fn restore(&mut self, model: AlgoRunsModel) {
        self.model = model;
    }
}

impl Narrow for AlgoRuns {
    const FILTERS: &'static [FilterKind] = &[FilterKind::User];

    /// `--user U`: the runs for learner U; `runs_total` stays the whole log's.
    fn narrowed(&self, filter: &ViewFilter) -> Self {
        let ViewFilter::User(user) = filter else {
            return self.clone();
        };
        AlgoRuns {
            model: AlgoRunsModel {
                runs: self
                    .model
                    .runs
                    .iter()
                    .filter(|(_, row)| row.user_id.as_ref() == Some(user))
                    .map(|(id, row)| (*id, row.clone()))
                    .collect(),
                runs_total: self.model.runs_total,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutorlog_schemas::events::{AlgoRunFailed, AlgoRunStarted, AlgoRunSucceeded, RunTrigger};

    fn envelope(position: u64, payload: Event) -> Envelope {
        Envelope {
            position,
            stream: "algo-difficulty".into(),
            revision: position,
            event_id: Uuid::from_u128(u128::from(position) + 1),
            recorded_at: DateTime::from_timestamp(1_800_000_000 + position as i64, 0)
                .expect("time"),
            event_type: payload.event_type().into(),
            schema_version: payload.schema_version(),
            correlation_id: None,
            causation_id: None,
            payload,
        }
    }

    fn started(run: u128, key: &str, user: Option<&str>) -> Event {
        Event::AlgoRunStarted(AlgoRunStarted {
            run_id: Uuid::from_u128(run),
            key: key.into(),
            version: 1,
            params_checksum: "c".into(),
            user_id: user.map(str::to_owned),
            session_id: None,
            trigger: RunTrigger::Cron,
            input_summary: "{}".into(),
        })
    }

    #[test]
    fn runs_move_to_success_or_failure_and_filter() {
        let mut runs = AlgoRuns::new();
        runs.apply(&envelope(0, started(1, "difficulty", None)));
        runs.apply(&envelope(1, started(2, "mistakes", Some("ada"))));
        runs.apply(&envelope(
            2,
            Event::AlgoRunSucceeded(AlgoRunSucceeded {
                run_id: Uuid::from_u128(1),
                key: "difficulty".into(),
                output_summary: "{\"n\":1}".into(),
            }),
        ));
        runs.apply(&envelope(
            3,
            Event::AlgoRunFailed(AlgoRunFailed {
                run_id: Uuid::from_u128(2),
                key: "mistakes".into(),
                error: "boom".into(),
            }),
        ));
        let all = runs.query(&AlgoRunFilter::default(), 10);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].status, "FAILED");
        assert_eq!(all[0].error.as_deref(), Some("boom"));
        assert_eq!(all[1].status, "SUCCESS");
        let filter = AlgoRunFilter {
            user_id: Some("ada".into()),
            ..AlgoRunFilter::default()
        };
        assert_eq!(runs.query(&filter, 10).len(), 1);
        let filter = AlgoRunFilter {
            status: Some("success".into()),
            trigger: Some("cron".into()),
            key: Some("difficulty".into()),
            version: Some(1),
            ..AlgoRunFilter::default()
        };
        assert_eq!(runs.query(&filter, 10).len(), 1);
        let filter = AlgoRunFilter {
            from: Some(DateTime::from_timestamp(1_800_000_001, 0).expect("t")),
            ..AlgoRunFilter::default()
        };
        assert_eq!(runs.query(&filter, 10).len(), 1);
        assert_eq!(runs.query(&AlgoRunFilter::default(), 1).len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut runs = AlgoRuns::new();
        for run in 0..(ALGO_RUNS_KEPT_MAX as u128 + 3) {
            runs.apply(&envelope(0, started(run, "difficulty", None)));
        }
        assert_eq!(runs.model().runs.len(), ALGO_RUNS_KEPT_MAX);
        assert_eq!(runs.model().runs_total, ALGO_RUNS_KEPT_MAX as u64 + 3);
        assert!(!runs.model().runs.contains_key(&Uuid::from_u128(0)));
    }

    #[test]
    fn narrowing_keeps_one_learners_runs() {
        let mut runs = AlgoRuns::new();
        runs.apply(&envelope(0, started(1, "mistakes", Some("ada"))));
        runs.apply(&envelope(1, started(2, "mistakes", Some("bob"))));
        runs.apply(&envelope(2, started(3, "difficulty", None)));
        let ada = runs.narrowed(&ViewFilter::User("ada".into()));
        assert_eq!(ada.model().runs.len(), 1);
        assert_eq!(ada.model().runs_total, 3);
    }
}
