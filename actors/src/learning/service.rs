//! [`LearningService`]: what the HTTP layer calls for training and challenges.
//!
//! For a round it reads the learner's state from its actor, runs the grader and the
//! ACTIVE mastery, revision and adaptive algorithms (from the [`AlgoCatalog`]) with
//! `now` from the injected clock, and sends the results inside the command; the
//! decider checks they were computed from the current state (else `Stale`, and the
//! service recomputes, at most [`STALE_RETRIES_MAX`] times). The events carry every
//! result with its run record, so replay never re-runs an algorithm.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tutorlog_schemas::events::{AlgoRunRecord, PauseReason};
use uuid::Uuid;

use crate::aggregate::{CommandError, Outcome};
use crate::algo_registry::{ActiveAlgo, AlgoCatalog};
use crate::algorithms::adaptive::{self, Candidate};
use crate::algorithms::mastery::{MasteryModel, MasteryState, Observation};
use crate::algorithms::revision::{CardState, Rating, RevisionModel};
use crate::algorithms::{canonicalize_json_str, seed_from, AlgoKey, AlgoParams};
use crate::clock::Clock;
use crate::content::{grade, Difficulty, Item, ItemBank};
use crate::learning::decider::{
    GradeResult, ItemChoice, Learner, LearnerCommand, LearnerState, LearningPolicy, MasteryResult,
    Rejection, SessionStatus,
};
use crate::registry::RegistryHandle;

/// How often a round is recomputed when the learner's state moved meanwhile.
pub const STALE_RETRIES_MAX: usize = 3;
/// Longest response or answer accepted, in bytes.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024;
/// Longest user id, in bytes.
pub const USER_ID_BYTES_MAX: usize = 128;

/// Why a learning request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; names the field.
    #[error("{field}: {message}")]
    BadRequest {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Unknown session or challenge.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the state (completed, paused, expired session).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// The log or an actor failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A registry or algorithm problem on our side.
    #[error("{0}")]
    Internal(String),
}

impl From<Rejection> for ServiceError {
    fn from(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        match rejection {
            Rejection::UnknownSession(_) | Rejection::UnknownChallenge(_) => {
                ServiceError::NotFound(message)
            }
            Rejection::SessionCompleted(_) => ServiceError::Conflict {
                code: "session_completed",
                message,
            },
            Rejection::SessionExpired(..) => ServiceError::Conflict {
                code: "session_expired",
                message,
            },
            Rejection::SessionPaused(_) => ServiceError::Conflict {
                code: "session_paused",
                message,
            },
            Rejection::NotPaused(_) => ServiceError::Conflict {
                code: "not_paused",
                message,
            },
            Rejection::ChallengeCompleted(_) => ServiceError::Conflict {
                code: "challenge_completed",
                message,
            },
            Rejection::DuplicateId(_) | Rejection::Stale => ServiceError::Conflict {
                code: "conflict",
                message,
            },
            Rejection::Invalid { field, reason } => ServiceError::BadRequest {
                field,
                message: reason,
            },
        }
    }
}

/// A started session.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Session id.
    pub session_id: Uuid,
    /// First round id.
    pub round_id: Uuid,
    /// First prompt.
    pub prompt: String,
    /// Rounds planned.
    pub rounds: u32,
    /// Log position reached.
    pub position: u64,
}

/// A graded round.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundResult {
    /// Score 0–100.
    pub score: u32,
    /// Correct.
    pub correct: bool,
    /// Feedback.
    pub feedback: String,
    /// Mastery before (after decay), 0–100.
    pub mastery_before: f64,
    /// Mastery after, 0–100.
    pub mastery_after: f64,
    /// Probability after.
    pub probability: f64,
    /// Threshold reached.
    pub mastered: bool,
    /// `in_progress` / `completed` / `paused`.
    pub status: &'static str,
    /// Next round id.
    pub next_round_id: Option<Uuid>,
    /// Next prompt.
    pub next_prompt: Option<String>,
    /// Rounds completed so far.
    pub rounds_completed: u32,
    /// Log position reached.
    pub position: u64,
}

/// A started challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeHandedOut {
    /// Challenge id.
    pub challenge_id: Uuid,
    /// Prompt.
    pub prompt: String,
    /// Category.
    pub category: String,
    /// Difficulty.
    pub difficulty: String,
    /// Log position reached.
    pub position: u64,
}

/// A graded challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeGraded {
    /// Score.
    pub score: u32,
    /// Correct.
    pub correct: bool,
    /// Feedback.
    pub feedback: String,
    /// Misconception tag.
    pub mistake_tag: Option<String>,
    /// Log position reached.
    pub position: u64,
}

/// Why the gateway pauses a training session: no provider can serve it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderPause {
    /// No provider with budget left could serve the session (`provider.budget.exceeded`
    /// on every candidate): recorded as `training.paused` with reason `budget`.
    Budget,
    /// No healthy provider could serve it (circuits open, calls failing): reason
    /// `provider`.
    Provider,
}

impl ProviderPause {
    /// The reason stored in `training.paused`.
    pub fn reason(self) -> PauseReason {
        match self {
            ProviderPause::Budget => PauseReason::Budget,
            ProviderPause::Provider => PauseReason::Provider,
        }
    }
}

/// What a pause did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseOutcome {
    /// Log position reached (the learner stream's last event).
    pub position: u64,
    /// The session was paused already, so nothing was recorded (pausing is
    /// idempotent: the first reason stands until the session resumes).
    pub already_paused: bool,
}

/// The learning façade.
#[derive(Clone)]
pub struct LearningService {
    learners: RegistryHandle<Learner>,
    catalog: AlgoCatalog,
    bank: &'static ItemBank,
    clock: Arc<dyn Clock>,
    policy: LearningPolicy,
    default_rounds: u32,
}

/// SHA-256 hex of a response (responses are not stored in clear).
pub fn digest(text: &str) -> String {
    let sum = Sha256::digest(text.as_bytes());
    sum.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn canonical(value: &serde_json::Value) -> String {
    canonicalize_json_str(&value.to_string()).unwrap_or_else(|_| value.to_string())
}

fn run_record(
    active: &ActiveAlgo,
    input: serde_json::Value,
    output: serde_json::Value,
) -> AlgoRunRecord {
    AlgoRunRecord {
        run_id: Uuid::now_v7(),
        key: active.key.as_str().to_owned(),
        version: active.version,
        params_checksum: active.checksum.clone(),
        input_summary: canonical(&input),
        output_summary: canonical(&output),
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Logit offset of each difficulty band relative to an average item.
fn band_offset(difficulty: Difficulty) -> f64 {
    match difficulty {
        Difficulty::Easy => -1.0,
        Difficulty::Medium => 0.0,
        Difficulty::Hard => 1.0,
    }
}

fn rating_for(score: u32, correct: bool) -> Rating {
    match (score, correct) {
        (95.., true) => Rating::Easy,
        (_, true) => Rating::Good,
        (50.., false) => Rating::Hard,
        _ => Rating::Again,
    }
}

fn check_user(user_id: &str) -> Result<(), ServiceError> {
    if user_id.is_empty()
        || user_id.len() > USER_ID_BYTES_MAX
        || !user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(ServiceError::BadRequest {
            field: "user_id",
            message: format!("must be 1 to {USER_ID_BYTES_MAX} characters of letters, digits, '-', '_', '.', '@'"),
        });
    }
    Ok(())
}

fn position_of<S, E>(outcome: &Outcome<S, E>) -> u64 {
    outcome.position.unwrap_or(0)
}

impl LearningService {
    /// A service over running learner actors and the algorithm catalog.
    pub fn new(
        learners: RegistryHandle<Learner>,
        catalog: AlgoCatalog,
        clock: Arc<dyn Clock>,
        policy: LearningPolicy,
        default_rounds: u32,
    ) -> Self {
        LearningService {
            learners,
            catalog,
            bank: ItemBank::bundled(),
            clock,
            policy,
            default_rounds,
        }
    }

    /// The learner actors.
    pub fn learners(&self) -> &RegistryHandle<Learner> {
        &self.learners
    }

    /// The algorithm catalog.
    pub fn catalog(&self) -> &AlgoCatalog {
        &self.catalog
    }

    /// The item bank.
    pub fn bank(&self) -> &'static ItemBank {
        self.bank
    }

    /// The policy from config.
    pub fn policy(&self) -> LearningPolicy {
        self.policy
    }

    /// The focus areas (item bank categories).
    pub fn focus_areas(&self) -> Vec<String> {
        self.bank
            .focus_areas()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn active(&self, key: AlgoKey) -> Result<ActiveAlgo, ServiceError> {
        self.catalog
            .active(key)
            .ok_or_else(|| ServiceError::Internal(format!("no ACTIVE {key} version")))
    }

    /// Chooses the next item in `focus_area` for a learner whose P(correct) on an
    /// average item is `p_correct`, avoiding `asked`.
    fn choose_item(
        &self,
        focus_area: &str,
        p_correct: f64,
        asked: &[String],
        seed: u64,
    ) -> Result<ItemChoice, ServiceError> {
        let adaptive_algo = self.active(AlgoKey::Adaptive)?;
        let AlgoParams::Adaptive(params) = &adaptive_algo.params else {
            return Err(ServiceError::Internal(
                "adaptive params of another algorithm".into(),
            ));
        };
        let exclude: Vec<&str> = asked.iter().map(String::as_str).collect();
        let candidates: Vec<Candidate> = Difficulty::ALL
            .into_iter()
            .filter(|d| !self.bank.filter(Some(focus_area), Some(*d)).is_empty())
            .map(|d| Candidate {
                item_id: d.as_str().to_owned(),
                p_success: sigmoid(logit(p_correct) - band_offset(d)),
            })
            .collect();
        let selection = adaptive::select(params, &candidates, seed);
        let difficulty = selection
            .as_ref()
            .and_then(|s| Difficulty::parse(&s.item_id));
        let item: &Item = self
            .bank
            .pick_excluding(difficulty, Some(focus_area), &exclude, seed)
            .filter(|item| !asked.contains(&item.id))
            .or_else(|| {
                self.bank
                    .pick_excluding(None, Some(focus_area), &exclude, seed)
            })
            .ok_or_else(|| ServiceError::BadRequest {
                field: "focus_area",
                message: format!("no items for {focus_area:?}"),
            })?;
        let mut algo_runs = Vec::new();
        if let Some(selection) = &selection {
            algo_runs.push(run_record(
                &adaptive_algo,
                json!({ "candidates": candidates.len(), "p_correct": p_correct, "seed": seed.to_string() }),
                json!({ "difficulty": selection.item_id, "p_success": selection.p_success, "explored": selection.explored, "item_id": item.id }),
            ));
        }
        Ok(ItemChoice {
            item_id: item.id.clone(),
            category: item.category.clone(),
            prompt: item.prompt.clone(),
            difficulty: item.difficulty.as_str().to_owned(),
            algo_runs,
        })
    }

    fn mastery_model(&self) -> Result<(ActiveAlgo, MasteryModel), ServiceError> {
        let active = self.active(AlgoKey::Mastery)?;
        let model = MasteryModel::from_params(&active.params)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok((active, model))
    }

    /// The mastery model's state for a learner's entry, with decay already applied
    /// by the decider's policy (so the model sees no elapsed time).
    fn model_state(
        model: &MasteryModel,
        entry: &crate::learning::decider::MasteryEntry,
        now: DateTime<Utc>,
    ) -> MasteryState {
        let mut state = model.initial_state();
        if entry.attempts > 0 {
            state.p_known = entry.probability;
            if let MasteryModel::Elo(params) = model {
                state.ability = logit(entry.probability) + params.default_difficulty;
            }
            state.attempts = entry.attempts;
            state.streak = entry.streak;
            state.last_at = Some(now);
        }
        state
    }

    /// Starts a session: `training.started` plus the first round.
    pub async fn start_training(
        &self,
        user_id: &str,
        focus_area: &str,
        rounds: Option<u32>,
    ) -> Result<Started, ServiceError> {
        check_user(user_id)?;
        if !self.bank.has_category(focus_area) {
            return Err(ServiceError::BadRequest {
                field: "focus_area",
                message: format!(
                    "unknown focus area {focus_area:?}; see /api/v1/training/focus-areas"
                ),
            });
        }
        let focus_area = self
            .bank
            .focus_areas()
            .into_iter()
            .find(|f| f.eq_ignore_ascii_case(focus_area))
            .unwrap_or(focus_area)
            .to_owned();
        let rounds = rounds.unwrap_or(self.default_rounds);
        let session_id = Uuid::now_v7();
        let round_id = Uuid::now_v7();
        let now = self.clock.now();
        let state = self.learners.state(user_id).await?.state;
        let entry = state.mastery_at(&focus_area, now, &self.policy);
        let (_, model) = self.mastery_model()?;
        let p_correct = model
            .predict(&Self::model_state(&model, &entry, now), now, None)
            .p_correct;
        let first_item = self.choose_item(
            &focus_area,
            p_correct,
            &[],
            seed_from(&[session_id.as_bytes(), &1u32.to_le_bytes()]),
        )?;
        let prompt = first_item.prompt.clone();
        let command = LearnerCommand::StartTraining {
            session_id,
            round_id,
            user_id: user_id.to_owned(),
            focus_area,
            rounds,
            provider_plan: Vec::new(),
            first_item,
            policy: self.policy,
        };
        let outcome = self.learners.execute(user_id, command).await??;
        Ok(Started {
            session_id,
            round_id,
            prompt,
            rounds,
            position: position_of(&outcome),
        })
    }

    /// Grades the current round of `session_id` (owned by `user_id`).
    pub async fn round(
        &self,
        user_id: &str,
        session_id: Uuid,
        response: &str,
    ) -> Result<RoundResult, ServiceError> {
        if response.len() > RESPONSE_BYTES_MAX {
            return Err(ServiceError::BadRequest {
                field: "response",
                message: format!("longer than {RESPONSE_BYTES_MAX} bytes"),
            });
        }
        let mut last = Rejection::Stale;
        for _ in 0..STALE_RETRIES_MAX {
            let state = self.learners.state(user_id).await?.state;
            let (command, preview) = self.prepare_round(&state, session_id, response)?;
            match self.learners.execute(user_id, command).await? {
                Ok(outcome) => {
                    let before = outcome
                        .events
                        .iter()
                        .find_map(|event| match event {
                            tutorlog_schemas::Event::TrainingRoundCompleted(done) => {
                                Some(done.mastery_before)
                            }
                            _ => None,
                        })
                        .unwrap_or_default();
                    return Ok(self.round_result(
                        preview,
                        before,
                        &outcome.state,
                        session_id,
                        position_of(&outcome),
                    ));
                }
                Err(Rejection::Stale) => last = Rejection::Stale,
                Err(rejection) => return Err(rejection.into()),
            }
        }
        Err(last.into())
    }

    fn prepare_round(
        &self,
        state: &LearnerState,
        session_id: Uuid,
        response: &str,
    ) -> Result<(LearnerCommand, GradeResult), ServiceError> {
        let now = self.clock.now();
        let session = state
            .sessions
            .get(&session_id)
            .ok_or(Rejection::UnknownSession(session_id))?;
        match session.status {
            SessionStatus::Completed => return Err(Rejection::SessionCompleted(session_id).into()),
            SessionStatus::Paused => return Err(Rejection::SessionPaused(session_id).into()),
            SessionStatus::Active => {}
        }
        if session.expired(now, &self.policy) {
            return Err(
                Rejection::SessionExpired(session_id, self.policy.session_timeout_secs).into(),
            );
        }
        let current = session.current.as_ref().ok_or(Rejection::Stale)?;
        let item = self.bank.get(&current.item_id).ok_or_else(|| {
            ServiceError::Internal(format!("item {} is not in the bank", current.item_id))
        })?;
        let verdict = grade(item, response);
        let grade_result = GradeResult {
            score: u32::from(verdict.score),
            correct: verdict.correct,
            feedback: verdict.feedback.clone(),
            mistake_tag: verdict.matched_misconception.clone(),
        };
        let entry = state.mastery_at(&session.focus_area, now, &self.policy);
        let (mastery_algo, model) = self.mastery_model()?;
        let before_state = Self::model_state(&model, &entry, now);
        let item_difficulty = Some(band_offset(item.difficulty));
        let after_state = model.update(
            &before_state,
            &Observation {
                correct: verdict.correct,
                at: now,
                item_difficulty,
            },
        );
        let prediction = model.predict(&after_state, now, None);
        let mastery_run = run_record(
            &mastery_algo,
            json!({ "p_known": before_state.p_known, "attempts": before_state.attempts, "correct": verdict.correct, "item_id": item.id }),
            json!({ "p_known": after_state.p_known, "p_correct": prediction.p_correct, "score": prediction.score }),
        );
        let revision_algo = self.active(AlgoKey::Revision)?;
        let revision = RevisionModel::from_params(&revision_algo.params)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let card: CardState =
            serde_json::from_str(&entry.revision_card).unwrap_or_else(|_| revision.new_card());
        let rating = rating_for(grade_result.score, verdict.correct);
        let next_card = revision.review(&card, rating, now);
        let revision_card = serde_json::to_string(&next_card)
            .map(|s| canonical(&serde_json::from_str(&s).unwrap_or_default()))
            .unwrap_or_default();
        let revision_run = run_record(
            &revision_algo,
            json!({ "rating": rating.number(), "reviews": card.reviews, "interval_days": card.interval_days }),
            json!({ "interval_days": next_card.interval_days, "due": next_card.due }),
        );
        let number = current.number + 1;
        let next_item = if session.rounds_completed + 1 < session.rounds_planned {
            Some(self.choose_item(
                &session.focus_area,
                prediction.p_correct,
                &session.items_asked,
                seed_from(&[session_id.as_bytes(), &number.to_le_bytes()]),
            )?)
        } else {
            None
        };
        let command = LearnerCommand::CompleteRound {
            session_id,
            expected_round_id: current.round_id,
            next_round_id: Uuid::now_v7(),
            response_digest: digest(response),
            grade: grade_result.clone(),
            mastery: MasteryResult {
                before: if entry.attempts == 0 {
                    before_state.p_known * 100.0
                } else {
                    entry.score
                },
                after: after_state.p_known * 100.0,
                probability_after: after_state.p_known,
                next_review_due: next_card.due,
                revision_card,
                algo_runs: vec![mastery_run, revision_run],
            },
            next_item,
            policy: self.policy,
        };
        Ok((command, grade_result))
    }

    fn round_result(
        &self,
        grade: GradeResult,
        mastery_before: f64,
        state: &LearnerState,
        session_id: Uuid,
        position: u64,
    ) -> RoundResult {
        let session = state.sessions.get(&session_id);
        let focus_area = session.map(|s| s.focus_area.as_str()).unwrap_or_default();
        let entry = state.mastery.get(focus_area).cloned().unwrap_or_default();
        let current = session.and_then(|s| s.current.as_ref());
        RoundResult {
            score: grade.score,
            correct: grade.correct,
            feedback: grade.feedback,
            mastery_before,
            mastery_after: entry.score,
            probability: entry.probability,
            mastered: entry.score >= self.policy.mastery_threshold,
            status: session.map_or("completed", |s| s.status.as_str()),
            next_round_id: current.map(|c| c.round_id),
            next_prompt: current.map(|c| c.prompt.clone()),
            rounds_completed: session.map_or(0, |s| s.rounds_completed),
            position,
        }
    }

    /// Pauses a session for `reason`. The learner's own pause is
    /// `pause(user, session, PauseReason::User)`; the gateway uses
    /// [`LearningService::pause_for_provider`]. Rounds on a paused session are
    /// refused (`session_paused`, HTTP 409) until [`LearningService::resume`].
    pub async fn pause(
        &self,
        user_id: &str,
        session_id: Uuid,
        reason: PauseReason,
    ) -> Result<u64, ServiceError> {
        Ok(self.pause_with(user_id, session_id, reason).await?.position)
    }

    /// The gateway's hook: pauses `session_id` of `user_id` because no affordable
    /// (`Budget`) or healthy (`Provider`) provider can serve it. Idempotent: a
    /// session already paused stays paused with its first reason
    /// (`already_paused`). An unknown session is `NotFound`; a completed or expired
    /// one is a `Conflict` the gateway may ignore.
    pub async fn pause_for_provider(
        &self,
        user_id: &str,
        session_id: Uuid,
        cause: ProviderPause,
    ) -> Result<PauseOutcome, ServiceError> {
        self.pause_with(user_id, session_id, cause.reason()).await
    }

    async fn pause_with(
        &self,
        user_id: &str,
        session_id: Uuid,
        reason: PauseReason,
    ) -> Result<PauseOutcome, ServiceError> {
        check_user(user_id)?;
        let outcome = self
            .learners
            .execute(
                user_id,
                LearnerCommand::Pause {
                    session_id,
                    reason,
                    policy: self.policy,
                },
            )
            .await??;
        Ok(PauseOutcome {
            position: position_of(&outcome),
            already_paused: outcome.events.is_empty(),
        })
    }

    /// Resumes a paused session.
    pub async fn resume(&self, user_id: &str, session_id: Uuid) -> Result<u64, ServiceError> {
        let outcome = self
            .learners
            .execute(
                user_id,
                LearnerCommand::Resume {
                    session_id,
                    policy: self.policy,
                },
            )
            .await??;
        Ok(position_of(&outcome))
    }

    /// Hands out a challenge.
    pub async fn start_challenge(
        &self,
        user_id: &str,
        difficulty: Option<&str>,
        category: Option<&str>,
    ) -> Result<ChallengeHandedOut, ServiceError> {
        check_user(user_id)?;
        let difficulty = match difficulty {
            Some(text) => {
                Some(
                    Difficulty::parse(text).ok_or_else(|| ServiceError::BadRequest {
                        field: "difficulty",
                        message: format!("unknown difficulty {text:?} (easy, medium, hard)"),
                    })?,
                )
            }
            None => None,
        };
        if let Some(category) = category {
            if !self.bank.has_category(category) {
                return Err(ServiceError::BadRequest {
                    field: "category",
                    message: format!(
                        "unknown category {category:?}; see /api/v1/training/focus-areas"
                    ),
                });
            }
        }
        let challenge_id = Uuid::now_v7();
        let item = self
            .bank
            .pick(difficulty, category, seed_from(&[challenge_id.as_bytes()]))
            .ok_or_else(|| ServiceError::BadRequest {
                field: "category",
                message: "no item matches this category and difficulty".into(),
            })?;
        let choice = ItemChoice {
            item_id: item.id.clone(),
            category: item.category.clone(),
            prompt: item.prompt.clone(),
            difficulty: item.difficulty.as_str().to_owned(),
            algo_runs: Vec::new(),
        };
        let outcome = self
            .learners
            .execute(
                user_id,
                LearnerCommand::StartChallenge {
                    challenge_id,
                    item: choice,
                },
            )
            .await??;
        Ok(ChallengeHandedOut {
            challenge_id,
            prompt: item.prompt.clone(),
            category: item.category.clone(),
            difficulty: item.difficulty.as_str().to_owned(),
            position: position_of(&outcome),
        })
    }

    /// Grades a challenge owned by `user_id`.
    pub async fn grade_challenge(
        &self,
        user_id: &str,
        challenge_id: Uuid,
        answer: &str,
    ) -> Result<ChallengeGraded, ServiceError> {
        if answer.len() > RESPONSE_BYTES_MAX {
            return Err(ServiceError::BadRequest {
                field: "answer",
                message: format!("longer than {RESPONSE_BYTES_MAX} bytes"),
            });
        }
        let state = self.learners.state(user_id).await?.state;
        let challenge = state
            .challenges
            .get(&challenge_id)
            .ok_or(Rejection::UnknownChallenge(challenge_id))?;
        if challenge.completed {
            return Err(Rejection::ChallengeCompleted(challenge_id).into());
        }
        let item = self.bank.get(&challenge.item_id).ok_or_else(|| {
            ServiceError::Internal(format!("item {} is not in the bank", challenge.item_id))
        })?;
        let verdict = grade(item, answer);
        let grade_result = GradeResult {
            score: u32::from(verdict.score),
            correct: verdict.correct,
            feedback: verdict.feedback,
            mistake_tag: verdict.matched_misconception,
        };
        let command = LearnerCommand::GradeChallenge {
            challenge_id,
            item_id: item.id.clone(),
            answer_digest: digest(answer),
            grade: grade_result.clone(),
        };
        let outcome = self.learners.execute(user_id, command).await??;
        Ok(ChallengeGraded {
            score: grade_result.score,
            correct: grade_result.correct,
            feedback: grade_result.feedback,
            mistake_tag: grade_result.mistake_tag,
            position: position_of(&outcome),
        })
    }
}
