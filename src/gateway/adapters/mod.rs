//! Provider adapters: one per wire protocol, all behind [`Adapter`].
//!
//! | kind | module | endpoint |
//! |---|---|---|
//! | `openai`, `mock` | `openai` | `POST {base_url}/chat/completions` |
//! | `anthropic` | `anthropic` | `POST {base_url}/v1/messages` |
//! | `gemini` | `gemini` | `POST {base_url}/v1beta/models/{model}:generateContent` |
//! | `ollama` | `ollama` | `POST {base_url}/api/chat` (native, NDJSON) |
//!
//! Every failure goes through one classification (`classify`), so a 429 is
//! `RateLimited` with its `Retry-After` whichever vendor sent it, a stream that
//! breaks off before the vendor's end marker is `Malformed`, and no message ever
//! contains the API key.

use std::{fmt::Debug, sync::Arc, time::Duration};

use async_trait::async_trait;
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE},
    Url,
};
use tokio::time::Instant;

use super::types::{ChatRequest, ChatResponse, EventStream, ProviderError};
use crate::config::ProviderConfig;

mod anthropic;
mod classify;
#[cfg(test)]
mod fixtures;
mod gemini;
mod ollama;
mod openai;
mod sse;
mod wire;

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
    /// The key in `api_key_env` cannot be sent in an HTTP header (not UTF-8, or
    /// control characters inside it). The value itself is never shown.
    #[error(
        "providers.{provider}.api_key_env: the value of ${env} is not a usable API key ({reason})"
    )]
    BadKey {
        /// Provider name.
        provider: String,
        /// The environment variable.
        env: String,
        /// What is wrong with it, without the value.
        reason: &'static str,
    },
}

/// Builds the adapter for one configured provider. The API key is read from
/// `api_key_env` here, once, and never logged. A variable that is named but not
/// set is a warning, not an error (a local Ollama needs no key); the provider
/// then answers 401 and is classified `Auth` if it wanted one.
pub fn build(
    provider: &ProviderConfig,
    client: reqwest::Client,
) -> Result<Arc<dyn Adapter>, AdapterError> {
    let key = match &provider.api_key_env {
        None => None,
        Some(env) => match std::env::var(env) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => {
                tracing::warn!(
                    provider = %provider.name,
                    env = %env,
                    "api_key_env is not set; calling the provider without a key"
                );
                None
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(AdapterError::BadKey {
                    provider: provider.name.clone(),
                    env: env.clone(),
                    reason: "not UTF-8",
                })
            }
        },
    };
    build_with_key(provider, key.as_deref(), client)
}

/// [`build`] with the key given directly instead of read from the environment.
pub(crate) fn build_with_key(
    provider: &ProviderConfig,
    key: Option<&str>,
    client: reqwest::Client,
) -> Result<Arc<dyn Adapter>, AdapterError> {
    let base = base_url(provider)?;
    let key = classify::ApiKey::new(key);
    let bad_key = |reason| AdapterError::BadKey {
        provider: provider.name.clone(),
        env: provider.api_key_env.clone().unwrap_or_default(),
        reason,
    };
    let adapter: Arc<dyn Adapter> = match provider.kind.as_str() {
        "openai" => Arc::new(openai::OpenAi::new("openai", &base, key, client).map_err(bad_key)?),
        "mock" => Arc::new(openai::OpenAi::new("mock", &base, key, client).map_err(bad_key)?),
        "anthropic" => Arc::new(anthropic::Anthropic::new(&base, key, client).map_err(bad_key)?),
        "gemini" => Arc::new(gemini::Gemini::new(&base, key, client).map_err(bad_key)?),
        "ollama" => Arc::new(ollama::Ollama::new(&base, key, client).map_err(bad_key)?),
        other => {
            return Err(AdapterError::UnknownKind {
                provider: provider.name.clone(),
                kind: other.to_owned(),
            })
        }
    };
    Ok(adapter)
}

fn base_url(provider: &ProviderConfig) -> Result<Url, AdapterError> {
    let bad = |message: String| AdapterError::BadUrl {
        provider: provider.name.clone(),
        message,
    };
    let url =
        Url::parse(&provider.base_url).map_err(|e| bad(format!("{e}: {:?}", provider.base_url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(bad(format!(
            "must be an http:// or https:// URL, got {:?}",
            provider.base_url
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "must not have a query or fragment (paths are appended to it), got {:?}",
            provider.base_url
        )));
    }
    Ok(url)
}

/// Connecting longer than this is a dead host, whatever the call's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle keep-alive connections kept per host. The gateway's benchmarks run 256+
/// requests at once against one provider; each needs a warm connection.
const POOL_IDLE_PER_HOST_MAX: usize = 1024;

/// How long an idle connection is kept. Below the 120 s+ that common load
/// balancers allow, so we close first and never reuse a half-closed socket.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client every adapter shares: rustls, `TCP_NODELAY`, keep-alive pool.
///
/// There is deliberately no client-wide request timeout: each call brings its
/// own (`timeout_ms` of its provider), and a stream is bounded by its caller.
///
/// TLS: reqwest 0.12's `rustls-tls` builds its `ClientConfig` with the
/// process-wide rustls crypto provider if one is installed, and otherwise with
/// ring, passed explicitly (`builder_with_provider`); it never installs one.
/// It never calls rustls's `ClientConfig::builder()` either, which panics when
/// both ring and aws-lc-rs are compiled in, as they are with `--features
/// kurrentdb`. So this works before or after the KurrentDB client installs
/// aws-lc-rs on connect, and leaves that install to it (kurrentdb 1.2 calls
/// `install_default().ok()`). Do not install a provider here. The `fixtures`
/// tests check this in both builds.
pub fn http_client() -> reqwest::Client {
    let builder = || {
        reqwest::Client::builder()
            // Without it a keep-alive request stalls ~44 ms on a delayed ACK.
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("tutorlog/", env!("CARGO_PKG_VERSION")))
            // A provider API never redirects a POST. Following one would also send
            // `x-api-key` / `x-goog-api-key` to the new host: reqwest strips only
            // `Authorization` and cookies on a cross-host redirect. A 3xx is
            // classified `Malformed` instead.
            .redirect(reqwest::redirect::Policy::none())
    };
    builder().build().unwrap_or_else(|error| {
        // Only TLS initialisation can fail here; reqwest's own default would
        // fail the same way, so say why before it does.
        tracing::error!(%error, "cannot build the provider HTTP client");
        reqwest::Client::new()
    })
}

/// One provider's HTTP side: its client, fixed headers (auth marked sensitive so
/// `Debug` shows `Sensitive`), and failure reporting.
#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    headers: HeaderMap,
    reporter: wire::Reporter,
}

impl Http {
    /// `auth` names the header carrying the key and how to spell its value.
    pub(crate) fn new(
        protocol: &'static str,
        key: classify::ApiKey,
        client: reqwest::Client,
        auth: Auth,
        extra: &[(HeaderName, &'static str)],
    ) -> Result<Http, &'static str> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in extra {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        if let Some(secret) = key.expose() {
            let (name, text) = match auth {
                Auth::Bearer => (AUTHORIZATION, format!("Bearer {secret}")),
                Auth::Header(name) => (name, secret.to_owned()),
            };
            let mut value = HeaderValue::from_str(&text)
                .map_err(|_| "it contains characters an HTTP header cannot carry")?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Http {
            client,
            headers,
            reporter: wire::Reporter { protocol, key },
        })
    }

    /// Failure reporting for this provider.
    pub(crate) fn reporter(&self) -> &wire::Reporter {
        &self.reporter
    }

    fn post(&self, url: Url, body: Vec<u8>, streaming: bool) -> reqwest::RequestBuilder {
        let accept = if streaming {
            "text/event-stream, application/x-ndjson"
        } else {
            "application/json"
        };
        self.client
            .post(url)
            .headers(self.headers.clone())
            .header(ACCEPT, accept)
            .body(body)
    }

    /// POSTs `body` and reads the whole answer, both within `timeout`.
    pub(crate) async fn complete(
        &self,
        url: Url,
        body: Result<Vec<u8>, serde_json::Error>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ProviderError> {
        let deadline = Instant::now() + timeout;
        let body = self.encoded(body)?;
        let response = wire::send(
            self.post(url, body, false),
            deadline,
            timeout,
            &self.reporter,
        )
        .await?;
        wire::read_body(response, deadline, timeout, &self.reporter).await
    }

    /// POSTs `body` and returns once status and headers arrived within `timeout`.
    pub(crate) async fn open_stream(
        &self,
        url: Url,
        body: Result<Vec<u8>, serde_json::Error>,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let deadline = Instant::now() + timeout;
        let body = self.encoded(body)?;
        wire::send(
            self.post(url, body, true),
            deadline,
            timeout,
            &self.reporter,
        )
        .await
    }

    /// POSTs `body` for a streamed answer and decodes it with the parser
    /// `parser` builds (given this provider's reporter), in `framing`.
    pub(crate) async fn stream<P: wire::StreamParser>(
        &self,
        url: Url,
        body: Result<Vec<u8>, serde_json::Error>,
        timeout: Duration,
        framing: wire::Framing,
        parser: impl FnOnce(wire::Reporter) -> P,
    ) -> Result<EventStream, ProviderError> {
        let response = self.open_stream(url, body, timeout).await?;
        let reporter = self.reporter.clone();
        Ok(wire::event_stream(
            wire::body_chunks(response, reporter.clone()),
            framing,
            parser(reporter.clone()),
            reporter,
        ))
    }

    fn encoded(&self, body: Result<Vec<u8>, serde_json::Error>) -> Result<Vec<u8>, ProviderError> {
        // Our own request types always serialize; a failure is a bad request, not
        // the provider's fault.
        body.map_err(|error| {
            ProviderError::new(
                super::types::ErrorKind::BadRequest,
                format!(
                    "{}: the request does not encode: {error}",
                    self.reporter.protocol
                ),
            )
        })
    }
}

/// How a vendor wants its key.
pub(crate) enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `<header>: <key>`.
    Header(HeaderName),
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // Never fails: `base_url` rejected cannot-be-a-base URLs.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Finish reasons that keep the vendor's word when there is no OpenAI term.
pub(crate) fn vendor_reason(reason: &str) -> String {
    reason.to_ascii_lowercase()
}
