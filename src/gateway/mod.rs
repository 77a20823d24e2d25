//! The LLM gateway: provider adapters, the call path (route, reserve, call, commit)
//! and the OpenAI-compatible surface.
//!
//! - [`types`]: the provider-neutral request, response, stream and error types every
//!   adapter speaks.
//! - [`adapters`]: one module per provider protocol (`openai`, `anthropic`, `gemini`,
//!   `ollama`), each turning a [`types::ChatRequest`] into the vendor's HTTP call and
//!   its answer back into [`types::ChatResponse`] / [`types::StreamEvent`]s.

pub mod adapters;
pub mod benchmarks;
pub mod keys;
pub mod service;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;
