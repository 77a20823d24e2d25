//! Provider adapters: one per wire protocol, all behind [`Adapter`].

use std::{fmt::Debug, sync::Arc, time::Duration};

use async_trait::async_trait;

use super::types::{ChatRequest, ChatResponse, EventStream, ProviderError};
use crate::config::ProviderConfig;

/// A provider's API, spoken in the gateway's neutral types.
#[async_trait]
pub trait Adapter: Send + Sync + Debug {
    /// The whole answer. Fails with `Timeout` if it has not fully arrived within
    /// `timeout`.
    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError>;

    /// A streamed answer. Returns once the provider accepted the request (status
    /// and headers within `timeout`); the caller bounds the stream itself.
    async fn stream(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError>;
}

/// Why an adapter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The configured kind has no adapter.
    #[error("providers.{provider}: unknown kind {kind:?}")]
    UnknownKind {
        /// Provider name.
        provider: String,
        /// The kind.
        kind: String,
    },
    /// The base URL does not parse.
    #[error("providers.{provider}.base_url: {message}")]
    BadUrl {
        /// Provider name.
        provider: String,
        /// What is wrong.
        message: String,
    },
}

/// Builds the adapter for one configured provider. The API key is read from
/// `api_key_env` here, once, and never logged.
pub fn build(
    provider: &ProviderConfig,
    client: reqwest::Client,
) -> Result<Arc<dyn Adapter>, AdapterError> {
    let _ = client;
    Err(AdapterError::UnknownKind {
        provider: provider.name.clone(),
        kind: provider.kind.clone(),
    })
}

/// The HTTP client every adapter shares: rustls, `TCP_NODELAY`, keep-alive pool.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default()
}
