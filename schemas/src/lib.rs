//! Every event tutorlog stores, the envelope around it, and the one codec that turns
//! both into bytes.
//!
//! Nothing here does I/O. The store frames and checksums the bytes this crate
//! produces; actors and projections work with the typed [`Event`] and [`Envelope`].
//!
//! Rules that keep a stored log readable forever:
//! - an event type's name and meaning never change once written;
//! - a change of shape gets a new `schema_version` plus an upcaster in [`upcast`],
//!   and the old shape stays decodable (a committed corpus test proves it);
//! - bincode is used only inside [`codec`], so the byte format changes in one place.

pub mod codec;
pub mod envelope;
pub mod events;
pub mod json;
pub mod upcast;

pub use codec::CodecError;
pub use envelope::{Envelope, NewEvent, RecordedEvent};
pub use events::Event;
