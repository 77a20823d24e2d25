//! The [`Projection`] trait: a pure fold of the log into a read model.
//!
//! A projection never does I/O and never fails: the runner (live) and
//! [`crate::replay_until`] (as of a past moment) feed it events in log order, handle
//! decoding, checkpoints and snapshots, and publish its model.

use serde::{de::DeserializeOwned, Serialize};
use tutorlog_schemas::{CodecError, Envelope, RecordedEvent};

use crate::{error::ProjectionError, feed::FeedEvent};

/// Longest projection name, in bytes. Names become snapshot file names and metric
/// labels.
pub const PROJECTION_NAME_BYTES_MAX: usize = 64;

/// A read model folded from `$all`, one event at a time, in log order.
///
/// Call order for every event the runner or replay sees, in position order:
/// 1. the event is decoded with [`Envelope::decode`]; a decode error other than an
///    unknown event type stops the fold before this event touches the projection;
/// 2. [`Projection::apply_raw`] is called with the stored record, for every event,
///    including event types this build does not know;
/// 3. [`Projection::apply`] is called with the decoded envelope, only for known
///    event types.
///
/// Both apply methods are infallible: an event that does not fit the model (say, a
/// pause for a session never started) is ignored, or is a bug to fix in the
/// projection. Neither may do I/O or read the clock; the same events must always
/// fold into the same model, so that a snapshot plus the rest of the log equals a
/// full replay.
///
/// The projection value may hold configuration as well as state; only
/// [`Projection::Model`] is snapshotted, and [`Projection::restore`] puts a model
/// back (from a snapshot, or [`Default`] for a fold from position 0).
///
/// ```
/// use std::collections::BTreeMap;
/// use tutorlog_projections::Projection;
/// use tutorlog_schemas::{Envelope, Event};
///
/// /// Sessions started per focus area.
/// #[derive(Default)]
/// struct StartsPerFocusArea {
///     model: BTreeMap<String, u64>,
/// }
///
/// impl Projection for StartsPerFocusArea {
///     const NAME: &'static str = "starts_per_focus_area";
///     type Model = BTreeMap<String, u64>;
///
///     fn apply(&mut self, envelope: &Envelope) {
///         if let Event::TrainingStarted(started) = &envelope.payload {
///             *self.model.entry(started.focus_area.clone()).or_insert(0) += 1;
///         }
///     }
///     fn model(&self) -> &Self::Model {
///         &self.model
///     }
///     fn restore(&mut self, model: Self::Model) {
///         self.model = model;
///     }
/// }
/// ```
pub trait Projection: Send + Sync + 'static {
    /// Stable name: snapshot file name and metric label. ASCII lowercase letters,
    /// digits and `_`, 1 to [`PROJECTION_NAME_BYTES_MAX`] bytes (checked at compile
    /// time when a runner or replay is instantiated).
    const NAME: &'static str;

    /// Version of the fold. Bump it whenever `apply`/`apply_raw` change meaning or
    /// the model changes shape: snapshots of another version are not trusted, so
    /// the projection rebuilds from the log with the new logic.
    const VERSION: u32 = 1;

    /// The read model: what is snapshotted (as JSON) and shown to readers.
    type Model: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static;

    /// Folds one decoded event into the model.
    fn apply(&mut self, envelope: &Envelope);

    /// Sees every stored record before [`Projection::apply`], including those whose
    /// event type this build does not know (which never reach `apply`). The default
    /// does nothing; log-level views such as [`crate::stream_stats`] use it.
    fn apply_raw(&mut self, _recorded: &RecordedEvent) {}

    /// The current model.
    fn model(&self) -> &Self::Model;

    /// Replaces the model (from a snapshot, or `Default` to start from position 0).
    fn restore(&mut self, model: Self::Model);

    /// The projection's [`Projection::NAME`].
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// The view as JSON, for HTTP and CLI output. The default is the model itself.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self.model())
    }
}

/// Whether `name` is a valid [`Projection::NAME`]; usable in const context.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > PROJECTION_NAME_BYTES_MAX {
        return false;
    }
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if !(byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_') {
            return false;
        }
        index += 1;
    }
    true
}

/// Fails the build when a projection's name is invalid (post-monomorphization).
pub(crate) const fn assert_valid_name<P: Projection>() {
    const { assert!(is_valid_name(P::NAME), "invalid Projection::NAME") }
}

/// What happened to one record fed to a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Folded {
    /// Decoded and applied.
    Applied,
    /// Unknown event type: seen by `apply_raw` only.
    Skipped,
}

/// Decodes `recorded` and feeds it to `projection` in the documented order.
/// Any decode error other than an unknown event type is returned before the
/// projection sees the event.
pub(crate) fn fold_record<P: Projection>(
    projection: &mut P,
    recorded: &RecordedEvent,
) -> Result<Folded, ProjectionError> {
    match Envelope::decode(recorded) {
        Ok(envelope) => {
            projection.apply_raw(recorded);
            projection.apply(&envelope);
            Ok(Folded::Applied)
        }
        Err(CodecError::UnknownEventType { .. }) => {
            projection.apply_raw(recorded);
            Ok(Folded::Skipped)
        }
        Err(source) => Err(ProjectionError::Decode {
            projection: P::NAME,
            position: recorded.position,
            event_type: recorded.event_type.clone(),
            schema_version: recorded.schema_version,
            source,
        }),
    }
}

/// [`fold_record`] for an event the feed already decoded: the envelope is used as
/// it is; an event that did not decode is decoded again here, for its own verdict
/// (skipped, or the error).
pub(crate) fn fold_feed_event<P: Projection>(
    projection: &mut P,
    event: &FeedEvent,
) -> Result<Folded, ProjectionError> {
    match &event.envelope {
        Some(envelope) => {
            projection.apply_raw(&event.recorded);
            projection.apply(envelope);
            Ok(Folded::Applied)
        }
        None => fold_record(projection, &event.recorded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(is_valid_name("stream_stats"));
        assert!(is_valid_name("v2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Stream"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name("../x"));
        assert!(!is_valid_name(&"a".repeat(PROJECTION_NAME_BYTES_MAX + 1)));
        assert!(is_valid_name(&"a".repeat(PROJECTION_NAME_BYTES_MAX)));
    }
}
