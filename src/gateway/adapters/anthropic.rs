//! Anthropic's Messages API: `POST {base_url}/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`.
//!
//! System messages go to the top-level `system` (the API has no system role);
//! `max_tokens` is required and always sent. Input usage counts cache reads and
//! writes too (`input_tokens` alone excludes them), matching OpenAI's
//! `prompt_tokens`, which includes cached tokens.

use std::collections::VecDeque;

use reqwest::{header::HeaderName, Url};
use serde::{Deserialize, Serialize};

use super::{
    classify::{ApiKey, Failure},
    endpoint,
    sse::Flow,
    vendor_reason,
    wire::{Framing, Reporter, StreamParser},
    Auth, Http, Vendor,
};
use crate::gateway::types::{ChatRequest, ChatResponse, ProviderError, StreamEvent, Usage};

/// The API version every request pins.
const VERSION: &str = "2023-06-01";

/// The highest `temperature` the Messages API accepts.
const TEMPERATURE_MAX: f64 = 1.0;

/// An Anthropic provider.
#[derive(Debug)]
pub(crate) struct Anthropic {
    http: Http,
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
                endpoint(base, &["v1", "messages"]),
                "anthropic",
                key,
                client,
                Auth::Header(HeaderName::from_static("x-api-key")),
                &[version],
            )?,
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
pub(crate) struct Parser {
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

impl Vendor for Anthropic {
    type Parser = Parser;
    const FRAMING: Framing = Framing::Sse;

    fn http(&self) -> &Http {
        &self.http
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
            // OpenAI's scale runs to 2, Anthropic's to 1, which refuses more with
            // a 400. An `auto` request must not fail only because the router chose
            // Anthropic, so above 1 it gets Anthropic's most random setting.
            temperature: request.temperature.map(|t| t.min(TEMPERATURE_MAX)),
            top_p: request.top_p,
            stop_sequences: &request.stop,
            stream,
        })
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

    fn parser(reporter: Reporter) -> Parser {
        Parser {
            reporter,
            input_tokens: 0,
            output_tokens: 0,
            usage_seen: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::fixtures::{self, check_error, drain, fixture, serve, text, Canned, KEY};
    use super::{Anthropic, Vendor};
    use crate::gateway::types::{ErrorKind, StreamEvent, Usage};

    fn expected_body(stream: bool) -> serde_json::Value {
        let mut body = json!({
            "model": "claude-3-5-sonnet-20241022",
            "max_tokens": 64,
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Why is the sky blue?"},
            ],
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["\n\n"],
        });
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    #[test]
    fn a_temperature_past_anthropics_range_is_sent_as_its_maximum() {
        let mut request = fixtures::request("claude-3-5-sonnet-20241022");
        for (given, sent) in [(1.7, 1.0), (1.0, 1.0), (0.3, 0.3)] {
            request.temperature = Some(given);
            let body: serde_json::Value = serde_json::from_slice(
                &<Anthropic as Vendor>::body(&request, false).expect("body"),
            )
            .expect("json");
            assert_eq!(body["temperature"], json!(sent), "{given}");
        }
    }

    #[tokio::test]
    async fn complete_parses_the_documented_message() {
        let server = serve(Canned::json(200, fixture("anthropic", "complete.json"))).await;
        let adapter = fixtures::adapter("anthropic", &server);
        let answer = adapter
            .complete(
                &fixtures::request("claude-3-5-sonnet-20241022"),
                Duration::from_secs(5),
            )
            .await
            .expect("answers");
        assert_eq!(answer.content, "Hi! My name is Claude.");
        assert_eq!(answer.model, "claude-3-5-sonnet-20241022");
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            answer.usage,
            Some(Usage {
                input_tokens: 2095,
                output_tokens: 503
            })
        );
        let sent = server.one();
        assert_eq!(sent.uri.path(), "/v1/messages");
        assert_eq!(sent.header("x-api-key"), Some(KEY));
        assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(sent.header("authorization"), None);
        assert_eq!(sent.body, expected_body(false));
    }

    #[tokio::test]
    async fn stream_decodes_the_documented_events() {
        let server = serve(Canned::new(
            200,
            "text/event-stream",
            fixture("anthropic", "stream.sse"),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("anthropic", &server).as_ref(),
            &fixtures::request("claude-3-5-sonnet-20241022"),
        )
        .await
        .expect("opens");
        assert_eq!(error, None);
        assert_eq!(
            events,
            [
                StreamEvent::Delta("Hello".into()),
                StreamEvent::Delta("!".into()),
                StreamEvent::Finish(Some("stop".into())),
                StreamEvent::Usage(Usage {
                    input_tokens: 25,
                    output_tokens: 15
                }),
            ]
        );
        assert_eq!(server.one().body, expected_body(true));
    }

    #[tokio::test]
    async fn a_stream_without_message_stop_is_malformed() {
        let whole = String::from_utf8(fixture("anthropic", "stream.sse")).expect("utf-8");
        let cut = whole
            .split("event: message_stop")
            .next()
            .expect("prefix")
            .to_owned();
        let server = serve(Canned::new(200, "text/event-stream", cut.into_bytes())).await;
        let (events, error) = drain(
            fixtures::adapter("anthropic", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), "Hello!");
        let error = error.expect("truncated");
        assert_eq!(error.kind, ErrorKind::Malformed);
        assert!(error.message.contains("message_stop"));
    }

    #[tokio::test]
    async fn the_documented_error_event_is_a_server_failure() {
        let server = serve(Canned::new(
            200,
            "text/event-stream",
            fixture("anthropic", "stream_error.sse"),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("anthropic", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert!(events.is_empty());
        let error = error.expect("error event");
        assert_eq!(error.kind, ErrorKind::Server);
        assert!(error.message.contains("overloaded_error: Overloaded"));
    }

    #[tokio::test]
    async fn documented_errors_classify() {
        check_error(
            "anthropic",
            401,
            "error_401.json",
            ErrorKind::Auth,
            "authentication_error: invalid x-api-key",
        )
        .await;
        let limited = check_error(
            "anthropic",
            429,
            "error_429.json",
            ErrorKind::RateLimited,
            "rate_limit_error: Number of request tokens",
        )
        .await;
        assert!(limited.message.ends_with('…'), "long messages are cut");
        check_error(
            "anthropic",
            500,
            "error_500.json",
            ErrorKind::Server,
            "api_error: Internal server error",
        )
        .await;
        check_error(
            "anthropic",
            529,
            "error_529.json",
            ErrorKind::Server,
            "overloaded_error",
        )
        .await;
        check_error(
            "anthropic",
            400,
            "error_400.json",
            ErrorKind::BadRequest,
            "max_tokens: Field required",
        )
        .await;
    }

    #[test]
    fn cached_prompt_tokens_count_as_input_and_reasons_map() {
        let body = br#"{"model":"m","content":[{"type":"thinking","thinking":"..."},
            {"type":"text","text":"a"},{"type":"tool_use","id":"t","name":"f","input":{}},
            {"type":"text","text":"b"}],"stop_reason":"max_tokens",
            "usage":{"input_tokens":10,"cache_creation_input_tokens":5,
            "cache_read_input_tokens":100,"output_tokens":7}}"#;
        let reporter = super::Reporter {
            protocol: "anthropic",
            key: super::ApiKey::default(),
        };
        let answer = <super::Anthropic as super::super::Vendor>::parse(
            body,
            &fixtures::request("m"),
            &reporter,
        )
        .expect("parses");
        assert_eq!(answer.content, "ab");
        assert_eq!(answer.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            answer.usage,
            Some(Usage {
                input_tokens: 115,
                output_tokens: 7
            })
        );
        assert_eq!(super::finish_reason("tool_use"), "tool_calls");
        assert_eq!(super::finish_reason("refusal"), "content_filter");
        assert_eq!(super::finish_reason("pause_turn"), "pause_turn");
    }
}
