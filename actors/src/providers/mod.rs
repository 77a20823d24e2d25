//! The provider domain: each configured LLM provider has a budget and a circuit
//! breaker, both deciders inside [`crate::pipeline`] actors with views that
//! requests read without waiting, and the router that picks a provider per request.
//!
//! - [`budget`]: the budget decider (reserve, commit, release; monthly and
//!   per-request limits); [`budget_service`]: its actor and snapshot.
//! - [`circuit`]: the breaker decider (closed / open / half-open);
//!   [`circuit_view`]: the lock-free state requests check; [`circuit_service`]:
//!   its actor.
//! - [`category`]: which kind of request this is (coding, math, ...);
//!   [`router`]: the pure routing decision.

pub mod budget;
pub mod budget_service;
pub mod category;
pub mod circuit;
pub mod circuit_service;
pub mod circuit_view;
pub mod router;
