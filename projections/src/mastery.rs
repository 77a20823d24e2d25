//! `mastery`: per learner × focus area — mastery, probability, attempts, streak,
//! last practised, next review due. Also keeps the session/challenge → learner
//! index the HTTP layer uses to route a round to its learner (not part of the view).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{Envelope, Event};
use uuid::Uuid;

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
    spend::keep_key,
};

/// Stream prefix of learner aggregates.
pub const LEARNER_STREAM_PREFIX: &str = "learner-";

/// One learner × focus area.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MasteryRow {
    /// Mastery score 0–100.
    pub mastery: f64,
    /// Model probability (P(known)).
    pub probability: f64,
    /// Rounds answered.
    pub attempts: u64,
    /// Correct rounds answered.
    pub correct: u64,
    /// Consecutive correct rounds.
    pub streak: u64,
    /// When last practised.
    pub last_practised: Option<DateTime<Utc>>,
    /// When next due for review.
    pub next_review_due: Option<DateTime<Utc>>,
    /// Sessions started.
    pub sessions_started: u64,
    /// Sessions completed.
    pub sessions_completed: u64,
}

/// The focus-area rows of one learner, sorted by focus area. A sorted `Vec` rather
/// than a `BTreeMap`: a learner usually has one or two areas, and a `BTreeMap` leaf
/// reserves room for eleven (about 1.3 KB per learner, 130 MB per 100,000).
/// Serialised as a JSON object, exactly like the map it replaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FocusRows(Vec<(String, MasteryRow)>);

impl FocusRows {
    /// The row of `focus_area`.
    pub fn get(&self, focus_area: &str) -> Option<&MasteryRow> {
        self.0
            .binary_search_by(|(area, _)| area.as_str().cmp(focus_area))
            .ok()
            .and_then(|index| self.0.get(index))
            .map(|(_, row)| row)
    }

    /// Rows in focus-area order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &MasteryRow)> {
        self.0.iter().map(|(area, row)| (area, row))
    }

    fn entry(&mut self, focus_area: &str) -> &mut MasteryRow {
        let index = match self
            .0
            .binary_search_by(|(area, _)| area.as_str().cmp(focus_area))
        {
            Ok(index) => index,
            Err(index) => {
                self.0.reserve_exact(1);
                self.0
                    .insert(index, (focus_area.to_owned(), MasteryRow::default()));
                index
            }
        };
        // In bounds: `index` was just found or inserted.
        &mut self.0[index].1
    }
}

impl Serialize for FocusRows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (area, row) in &self.0 {
            map.serialize_entry(area, row)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FocusRows {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, MasteryRow>::deserialize(deserializer)?;
        let mut rows: Vec<(String, MasteryRow)> = map.into_iter().collect();
        rows.shrink_to_fit();
        Ok(FocusRows(rows))
    }
}

/// The `mastery` model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MasteryModel {
    /// learner → focus area → row.
    pub learners: BTreeMap<String, FocusRows>,
    /// Challenges graded per learner: (count, total score).
    pub challenges: BTreeMap<String, ChallengeStats>,
    /// Session id → (learner, focus area). Not in the view.
    pub sessions: BTreeMap<Uuid, (String, String)>,
    /// Challenge id → learner. Not in the view.
    pub challenge_owners: BTreeMap<Uuid, String>,
}

/// Challenge totals of one learner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChallengeStats {
    /// Challenges handed out.
    pub started: u64,
    /// Challenges graded.
    pub completed: u64,
    /// Sum of scores of graded challenges.
    pub score_total: u64,
}

/// The `mastery` projection.
#[derive(Debug, Clone, Default)]
pub struct Mastery {
    model: MasteryModel,
}

impl Mastery {
    /// An empty projection.
    pub fn new() -> Self {
        Mastery::default()
    }

    /// The learner owning `session_id`.
    pub fn session_owner(&self, session_id: &Uuid) -> Option<&str> {
        self.model
            .sessions
            .get(session_id)
            .map(|(user, _)| user.as_str())
    }

    /// The learner owning `challenge_id`.
    pub fn challenge_owner(&self, challenge_id: &Uuid) -> Option<&str> {
        self.model
            .challenge_owners
            .get(challenge_id)
            .map(String::as_str)
    }

    /// Rows of one learner.
    pub fn learner(&self, user_id: &str) -> Option<&FocusRows> {
        self.model.learners.get(user_id)
    }

    fn row(&mut self, user: &str, focus_area: &str) -> &mut MasteryRow {
        self.model
            .learners
            .entry(user.to_owned())
            .or_default()
            .entry(focus_area)
    }
}

impl Projection for Mastery {
    const NAME: &'static str = "mastery";
    type Model = MasteryModel;

    fn apply(&mut self, envelope: &Envelope) {
        let Some(user) = envelope.stream.strip_prefix(LEARNER_STREAM_PREFIX) else {
            return;
        };
        match &envelope.payload {
            Event::TrainingStarted(started) => {
                self.model.sessions.insert(
                    started.session_id,
                    (user.to_owned(), started.focus_area.clone()),
                );
                self.row(user, &started.focus_area).sessions_started += 1;
            }
            Event::TrainingRoundCompleted(done) => {
                let row = self.row(user, &done.focus_area);
                row.mastery = done.mastery_after;
                row.probability = done.probability_after;
                row.attempts += 1;
                row.correct += u64::from(done.correct);
                row.streak = if done.correct { row.streak + 1 } else { 0 };
                row.last_practised = Some(done.completed_at);
                row.next_review_due = done.next_review_due;
            }
            Event::MasteryDecayed(decayed) => {
                let row = self.row(user, &decayed.focus_area);
                row.mastery = decayed.after;
                row.probability = decayed.probability_after;
            }
            Event::TrainingCompleted(done) => {
                if let Some((owner, focus_area)) =
                    self.model.sessions.get(&done.session_id).cloned()
                {
                    self.row(&owner, &focus_area).sessions_completed += 1;
                }
            }
            Event::ChallengeStarted(started) => {
                self.model
                    .challenge_owners
                    .insert(started.challenge_id, user.to_owned());
                self.model
                    .challenges
                    .entry(user.to_owned())
                    .or_default()
                    .started += 1;
            }
            Event::ChallengeCompleted(done) => {
                let stats = self.model.challenges.entry(user.to_owned()).or_default();
                stats.completed += 1;
                stats.score_total += u64::from(done.score);
            }
            _ => {}
        }
    }

    fn model(&self) -> &MasteryModel {
        &self.model
    }

    fn restore(&mut self, model: MasteryModel) {
        self.model = model;
    }

    /// Only the per-learner rows and challenge totals; the routing index stays inside.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        Ok(serde_json::json!({
            "learners": serde_json::to_value(&self.model.learners)?,
            "challenges": serde_json::to_value(&self.model.challenges)?,
        }))
    }
}

impl Narrow for Mastery {
    const FILTERS: &'static [FilterKind] = &[FilterKind::User];

    /// `--user U`: U's rows, challenge totals and routing index entries.
    fn narrowed(&self, filter: &ViewFilter) -> Self {
        let ViewFilter::User(user) = filter else {
            return self.clone();
        };
        let model = &self.model;
        Mastery {
            model: MasteryModel {
                learners: keep_key(&model.learners, user),
                challenges: keep_key(&model.challenges, user),
                sessions: model
                    .sessions
                    .iter()
                    .filter(|(_, (owner, _))| owner == user)
                    .map(|(id, owner)| (*id, owner.clone()))
                    .collect(),
                challenge_owners: model
                    .challenge_owners
                    .iter()
                    .filter(|(_, owner)| *owner == user)
                    .map(|(id, owner)| (*id, owner.clone()))
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutorlog_schemas::events::{
        MasteryDecayed, TrainingCompleted, TrainingRoundCompleted, TrainingStarted,
    };

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    fn envelope(stream: &str, position: u64, payload: Event) -> Envelope {
        Envelope {
            position,
            stream: stream.into(),
            revision: position,
            event_id: Uuid::from_u128(u128::from(position) + 1),
            recorded_at: at(position as i64),
            event_type: payload.event_type().into(),
            schema_version: payload.schema_version(),
            correlation_id: None,
            causation_id: None,
            payload,
        }
    }

    fn round(correct: bool, after: f64, second: i64) -> Event {
        Event::TrainingRoundCompleted(TrainingRoundCompleted {
            session_id: Uuid::from_u128(7),
            round_id: Uuid::from_u128(8),
            round_number: 1,
            focus_area: "algebra".into(),
            item_id: "a".into(),
            response_digest: String::new(),
            score: if correct { 100 } else { 0 },
            correct,
            feedback: String::new(),
            mistake_tag: None,
            mastery_before: 0.0,
            mastery_after: after,
            probability_after: after / 100.0,
            next_review_due: Some(at(second + 86_400)),
            revision_card: String::new(),
            completed_at: at(second),
            algo_runs: Vec::new(),
        })
    }

    #[test]
    fn folds_rounds_decay_and_sessions_per_learner() {
        let mut mastery = Mastery::new();
        let events = [
            Event::TrainingStarted(TrainingStarted {
                session_id: Uuid::from_u128(7),
                user_id: "ada".into(),
                focus_area: "algebra".into(),
                rounds: 2,
                provider_plan: Vec::new(),
            }),
            round(true, 40.0, 10),
            round(true, 60.0, 20),
            round(false, 55.0, 30),
            Event::TrainingCompleted(TrainingCompleted {
                session_id: Uuid::from_u128(7),
                rounds_completed: 3,
            }),
            Event::MasteryDecayed(MasteryDecayed {
                focus_area: "algebra".into(),
                before: 55.0,
                after: 50.0,
                probability_after: 0.5,
                weeks: 5,
                weekly_decay: 0.02,
            }),
        ];
        for (position, event) in events.into_iter().enumerate() {
            mastery.apply(&envelope("learner-ada", position as u64, event));
        }
        // Events of other streams are not learners'.
        mastery.apply(&envelope("config", 9, round(true, 99.0, 40)));
        let row = mastery
            .learner("ada")
            .and_then(|r| r.get("algebra"))
            .expect("row");
        assert_eq!((row.attempts, row.correct, row.streak), (3, 2, 0));
        assert_eq!((row.mastery, row.probability), (50.0, 0.5));
        assert_eq!(row.last_practised, Some(at(30)));
        assert_eq!((row.sessions_started, row.sessions_completed), (1, 1));
        assert_eq!(mastery.session_owner(&Uuid::from_u128(7)), Some("ada"));
        let view = mastery.view().expect("view");
        assert!(
            view.get("sessions").is_none() && view["learners"]["ada"]["algebra"]["attempts"] == 3
        );
        assert_eq!(mastery.model().learners.len(), 1);
    }

    #[test]
    fn narrowing_keeps_one_learner() {
        let mut mastery = Mastery::new();
        for (position, user) in ["ada", "bob"].into_iter().enumerate() {
            let started = Event::TrainingStarted(TrainingStarted {
                session_id: Uuid::from_u128(position as u128),
                user_id: user.into(),
                focus_area: "algebra".into(),
                rounds: 1,
                provider_plan: Vec::new(),
            });
            mastery.apply(&envelope(
                &format!("learner-{user}"),
                position as u64,
                started,
            ));
        }
        let ada = mastery.narrowed(&ViewFilter::User("ada".into()));
        assert_eq!(ada.model().learners.keys().collect::<Vec<_>>(), ["ada"]);
        assert_eq!(ada.model().sessions.len(), 1);
        assert!(Mastery::accepts(FilterKind::User) && !Mastery::accepts(FilterKind::Provider));
    }
}
