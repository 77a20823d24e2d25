//! Provider-neutral chat types: what the gateway hands an adapter and what it gets
//! back. Adapters translate these to and from each vendor's wire format.

use std::{pin::Pin, time::Duration};

use futures::Stream;
pub use tutorlog_schemas::events::ErrorKind;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A chat completion request, already resolved to one provider's model name.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The model as the provider names it (no `provider/` prefix).
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Most output tokens; the gateway always sets it (it bounds the cost estimate).
    pub max_tokens: u32,
    /// Sampling temperature, if the client set one.
    pub temperature: Option<f64>,
    /// Nucleus sampling, if the client set one.
    pub top_p: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
}

/// Token usage as the provider reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// A whole (non-streamed) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The model that answered, as the provider reports it.
    pub model: String,
    /// The answer's text.
    pub content: String,
    /// Why generation stopped, in OpenAI's terms (`stop`, `length`, ...).
    pub finish_reason: Option<String>,
    /// Token usage; `None` if the provider did not report it.
    pub usage: Option<Usage>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More text.
    Delta(String),
    /// Generation stopped, with the reason in OpenAI's terms.
    Finish(Option<String>),
    /// Token usage (usually at the end).
    Usage(Usage),
}

/// A stream of answer pieces. It ends (`None`) after the provider's end marker; a
/// stream that breaks off before it yields an error of kind `Malformed`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// Why a provider call failed, classified for the breaker and failover.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ProviderError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// A short description for logs and clients; never contains a key.
    pub message: String,
    /// The provider's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error of `kind` with a message and no status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
        }
    }
}
