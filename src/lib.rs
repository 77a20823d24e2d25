//! The tutorlog daemon: configuration, HTTP API, CLI commands and wiring.
//!
//! The domain lives in the member crates: `tutorlog-schemas` (events and codec),
//! `tutorlog-store` (the log), `tutorlog-actors` (deciders inside actors) and
//! `tutorlog-projections` (read models). This crate puts them together.

pub mod backend;
pub mod background;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod explain;
pub mod export;
pub mod gateway;
pub mod http;
pub mod load;
pub mod log_time;
pub mod mock_provider;
pub mod reload;
pub mod telemetry;
pub mod views;
