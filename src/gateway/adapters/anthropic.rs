//! Anthropic's Messages API: `POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`.
//!
//! System messages go to the top-level `system` (the API has no system role);
//! `max_tokens` is required and always sent. Input usage counts cache reads and
//! writes too (`input_tokens` alone excludes them), matching OpenAI's
//! `prompt_tokens`, which includes cached tokens.

use std::{collections::VecDeque, time::Duration};

use async_trait::async_trait;
use reqwest::{header::HeaderName, Url};
use serde::{Deserialize, Serialize};

use super::{
    classify::{ApiKey, Failure},
    endpoint,
    sse::Flow,
    vendor_reason,
    wire::{self, Framing, Reporter, StreamParser},
    Adapter, Auth, Http,
};
use crate::gateway::types::{
    ChatRequest, ChatResponse, EventStream, ProviderError, StreamEvent, Usage,
};

/// The API version every request pins.
const VERSION: &str = "2023-06-01";

/// An Anthropic provider.
#[derive(Debug)]
pub(crate) struct Anthropic {
    http: Http,
    url: Url,
}

impl Anthropic {
    pub(crate) fn new(
        base: &Url,
        key: ApiKey,
        client: reqwest::Client,
    ) -> Result<Anthropic, &'static str> {
        let version = (HeaderName::from_static("anthropic-version"), VERSION);
        Ok(Anthropic {
            http: Http::new(
                "anthropic",
                key,
                client,
                Auth::Header(HeaderName::from_static("x-api-key")),
                &[version],
            )?,
            url: endpoint(base, &["v1", "messages"]),
        })
    }
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: &'a str,
}

fn body(request: &ChatRequest, stream: bool) -> Result<Vec<u8>, serde_json::Error> {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect();
    let messages = request
        .messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| Turn {
            // The API knows only these two; a tool or function turn is input.
            role: if m.role == "assistant" {
                "assistant"
            } else {
                "user"
            },
            content: &m.content,
        })
        .collect();
    serde_json::to_vec(&Body {
        model: &request.model,
        max_tokens: request.max_tokens,
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop,
        stream,
    })
}

/// `stop_reason` in OpenAI's terms.
fn finish_reason(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop".into(),
        "max_tokens" | "model_context_window_exceeded" => "length".into(),
        "tool_use" => "tool_calls".into(),
        "refusal" => "content_filter".into(),
        other => vendor_reason(other),
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// All prompt tokens, or `None` if this object did not report them.
    fn input(&self) -> Option<u64> {
        let base = self.input_tokens?;
        Some(
            base + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0),
        )
    }
}

fn parse(
    bytes: &[u8],
    request: &ChatRequest,
    reporter: &Reporter,
) -> Result<ChatResponse, ProviderError> {
    let message: Message = reporter.json("the answer", bytes)?;
    let content = message
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect::<String>();
    Ok(ChatResponse {
        model: if message.model.is_empty() {
            request.model.clone()
        } else {
            message.model
        },
        content,
        finish_reason: message.stop_reason.as_deref().map(finish_reason),
        usage: message.usage.map(|u| Usage {
            input_tokens: u.input().unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
        }),
    })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        content_block: Block,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error,
    /// `ping`, `content_block_stop`, and event types added later: the API
    /// promises new ones may appear, so they are skipped, not errors.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// Tool input and thinking deltas are not text of the answer.
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// message_start, content_block_*, message_delta, message_stop; `error` and
/// `ping` may come anywhere.
struct Parser {
    reporter: Reporter,
    input_tokens: u64,
    output_tokens: u64,
    usage_seen: bool,
}

impl Parser {
    fn usage(&mut self, usage: &WireUsage) {
        if let Some(input) = usage.input() {
            self.input_tokens = input;
            self.usage_seen = true;
        }
        // `message_delta` carries the cumulative output count; it replaces
        // `message_start`'s early one.
        if let Some(output) = usage.output_tokens {
            self.output_tokens = output;
            self.usage_seen = true;
        }
    }
}

impl StreamParser for Parser {
    fn frame(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError> {
        if event == Some("error") {
            return Err(self.reporter.error(Failure::InStream { body: data }));
        }
        match self
            .reporter
            .json::<Event>("a stream event", data.as_bytes())?
        {
            Event::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.usage(&usage);
                }
            }
            Event::ContentBlockStart { content_block } => {
                if let Some(text) = content_block.text.filter(|t| !t.is_empty()) {
                    if content_block.kind == "text" {
                        out.push_back(StreamEvent::Delta(text));
                    }
                }
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            } => {
                if !text.is_empty() {
                    out.push_back(StreamEvent::Delta(text));
                }
            }
            Event::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage(&usage);
                }
                if let Some(reason) = delta.stop_reason {
                    out.push_back(StreamEvent::Finish(Some(finish_reason(&reason))));
                }
            }
            Event::MessageStop => {
                if self.usage_seen {
                    out.push_back(StreamEvent::Usage(Usage {
                        input_tokens: self.input_tokens,
                        output_tokens: self.output_tokens,
                    }));
                }
                return Ok(Flow::Stop);
            }
            Event::Error => return Err(self.reporter.error(Failure::InStream { body: data })),
            Event::ContentBlockDelta {
                delta: BlockDelta::Other,
            }
            | Event::Other => {}
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        Err(self.reporter.error(Failure::Truncated {
            marker: "message_stop",
        }))
    }
}

#[async_trait]
impl Adapter for Anthropic {
    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let bytes = self
            .http
            .complete(self.url.clone(), body(request, false), timeout)
            .await?;
        parse(&bytes, request, self.http.reporter())
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let response = self
            .http
            .open_stream(self.url.clone(), body(request, true), timeout)
            .await?;
        let reporter = self.http.reporter().clone();
        Ok(wire::event_stream(
            wire::body_chunks(response, reporter.clone()),
            Framing::Sse,
            Parser {
                reporter: reporter.clone(),
                input_tokens: 0,
                output_tokens: 0,
                usage_seen: false,
            },
            reporter,
        ))
    }
}
