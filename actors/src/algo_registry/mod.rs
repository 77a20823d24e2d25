//! The algorithm registry (seed 001): versions, params and audited runs, one
//! aggregate per algorithm key on stream `algo-{key}`.
//!
//! - [`decider`]: the pure [`decider::AlgoRegistry`] decider.
//! - [`catalog`]: the registry handle the daemon uses: seeds the defaults on first
//!   start, keeps the ACTIVE version + params of every key in memory for live runs,
//!   and records runs.
//! - [`batch`]: difficulty recalibration and mistake mining over the log, as
//!   audited runs.

pub mod batch;
pub mod catalog;
pub mod decider;

pub use catalog::{ActiveAlgo, AlgoCatalog};
pub use decider::{AlgoCommand, AlgoRegistry, AlgoRejection, AlgoState};
