//! The learning domain (seed 000): one learner aggregate per user, stream
//! `learner-{user}`.
//!
//! - [`decider`]: the pure [`decider::Learner`] decider (training sessions, rounds,
//!   pause/resume, mastery decay, challenges).
//! - [`service`]: the façade the HTTP layer calls; it reads the learner's state,
//!   runs the ACTIVE algorithms and the grader, and sends the results in a command.

pub mod decider;
pub mod service;

pub use decider::{Learner, LearnerCommand, LearnerState, LearningPolicy, Rejection};
pub use service::{LearningService, PauseOutcome, ProviderPause, ServiceError};
