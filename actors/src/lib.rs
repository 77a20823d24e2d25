//! tutorlog's actors and the pure domain logic they wrap.
//!
//! The pattern (DESIGN.md, "deciders inside actors"): every aggregate is a pure
//! [`decider::Decider`] (`decide` / `evolve`, no I/O, time passed in), hosted by a
//! thin [`aggregate::Aggregate`] actor that replays its stream, appends with the
//! expected revision and replies only once the events are durable. A
//! [`registry::Registry`] spawns those actors on demand by id, passivates idle ones
//! and restarts crashed ones from the log.
//!
//! - [`decider`]: the `Decider` trait, the log mapping ([`decider::LogEvent`]) and a
//!   given/when/then test harness. No tokio, no ractor.
//! - [`clock`]: where `now` comes from ([`clock::SystemClock`], [`clock::ManualClock`]).
//! - [`aggregate`]: the generic aggregate actor.
//! - [`registry`]: the supervisor keyed by aggregate id, and [`registry::RegistryHandle`]
//!   to call it.
//! - [`snapshot`]: opt-in aggregate snapshots stored in the log (`snapshot-{stream}`),
//!   so a long stream restarts from its last snapshot plus the tail. Pure.

pub mod aggregate;
pub mod algo_registry;
pub mod algorithms;
pub mod benchmarks;
pub mod clock;
pub mod content;
pub mod decider;
pub mod learning;
pub mod pipeline;
pub mod providers;
pub mod registry;
pub mod snapshot;

pub use aggregate::{
    Aggregate, AggregateArgs, AggregateMsg, CommandError, CommandMeta, CommandResult, Outcome,
    SnapshotMode, StateResult, Versioned,
};
pub use clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use decider::{Decider, Given, LogEvent, When};
pub use registry::{Registry, RegistryConfig, RegistryHandle, RegistryMsg, RegistryStats};
pub use snapshot::SnapshotPolicy;
