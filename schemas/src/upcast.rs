//! Upcasters: older schema versions of an event, and how each becomes today's shape.
//!
//! When an event's shape changes, its previous struct moves here (frozen, with its
//! version in the name), the catalogue's version goes up by one, and an arm is added
//! to [`decode_old`]. The committed corpus in `schemas/tests/corpus/` holds records
//! encoded with every old version and is decoded by a test on every build.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    codec::{self, CodecError},
    events::{Event, TrainingStarted},
};

/// `training.started` v1: before sessions carried a provider plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStartedV1 {
    /// Session id.
    pub session_id: Uuid,
    /// Learner id.
    pub user_id: String,
    /// Focus area.
    pub focus_area: String,
    /// Planned rounds.
    pub rounds: u32,
}

impl From<TrainingStartedV1> for TrainingStarted {
    fn from(old: TrainingStartedV1) -> Self {
        TrainingStarted {
            session_id: old.session_id,
            user_id: old.user_id,
            focus_area: old.focus_area,
            rounds: old.rounds,
            // v1 sessions were planned before provider plans existed: no constraint.
            provider_plan: Vec::new(),
        }
    }
}

/// Decodes a payload written with an older schema version than the catalogue's.
pub(crate) fn decode_old(
    event_type: &str,
    schema_version: u16,
    bytes: &[u8],
) -> Result<Event, CodecError> {
    match (event_type, schema_version) {
        ("training.started", 1) => {
            codec::decode::<TrainingStartedV1>(bytes).map(|old| Event::TrainingStarted(old.into()))
        }
        _ => Err(CodecError::NoUpcaster {
            event_type: event_type.to_owned(),
            schema_version,
        }),
    }
}
