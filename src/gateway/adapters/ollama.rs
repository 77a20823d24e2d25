//! Ollama's native chat API: `POST {base_url}/api/chat`, NDJSON when streaming.
//!
//! (For Ollama's OpenAI-compatible `/v1`, use kind `openai`.) `max_tokens` is
//! `options.num_predict`; usage is `prompt_eval_count` / `eval_count` on the
//! final object, the one with `done: true`. A key, when set, goes as a bearer
//! token (Ollama's cloud and authenticating proxies take it that way).

use std::{collections::VecDeque, time::Duration};

use async_trait::async_trait;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{
    classify::{ApiKey, Failure},
    endpoint,
    sse::Flow,
    vendor_reason,
    wire::{Framing, Reporter, StreamParser},
    Adapter, Auth, Http,
};
use crate::gateway::types::{
    ChatMessage, ChatRequest, ChatResponse, EventStream, ProviderError, StreamEvent, Usage,
};

/// An Ollama server.
#[derive(Debug)]
pub(crate) struct Ollama {
    http: Http,
    url: Url,
}

impl Ollama {
    pub(crate) fn new(
        base: &Url,
        key: ApiKey,
        client: reqwest::Client,
    ) -> Result<Ollama, &'static str> {
        Ok(Ollama {
            http: Http::new("ollama", key, client, Auth::Bearer, &[])?,
            url: endpoint(base, &["api", "chat"]),
        })
    }
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    options: Options<'a>,
}

#[derive(Serialize)]
struct Options<'a> {
    num_predict: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
}

fn body(request: &ChatRequest, stream: bool) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Body {
        model: &request.model,
        messages: &request.messages,
        stream,
        options: Options {
            num_predict: request.max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            stop: &request.stop,
        },
    })
}

/// `done_reason` in OpenAI's terms (`stop` and `length` already are).
fn finish_reason(reason: &str) -> String {
    vendor_reason(reason)
}

#[derive(Deserialize)]
struct Chat {
    #[serde(default)]
    model: String,
    /// The documented final stream object has no `message` at all.
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    /// A failure after the stream started comes as `{"error": "..."}`.
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: String,
}

impl Chat {
    fn usage(&self) -> Option<Usage> {
        // Ollama leaves `prompt_eval_count` out when the whole prompt was cached.
        (self.prompt_eval_count.is_some() || self.eval_count.is_some()).then(|| Usage {
            input_tokens: self.prompt_eval_count.unwrap_or(0),
            output_tokens: self.eval_count.unwrap_or(0),
        })
    }
}

fn parse(
    bytes: &[u8],
    request: &ChatRequest,
    reporter: &Reporter,
) -> Result<ChatResponse, ProviderError> {
    let chat: Chat = reporter.json("the answer", bytes)?;
    if chat.error.is_some() {
        return Err(reporter.error(Failure::InStream {
            body: &String::from_utf8_lossy(bytes),
        }));
    }
    let usage = chat.usage();
    Ok(ChatResponse {
        model: if chat.model.is_empty() {
            request.model.clone()
        } else {
            chat.model
        },
        content: chat.message.map(|m| m.content).unwrap_or_default(),
        finish_reason: chat.done_reason.as_deref().map(finish_reason),
        usage,
    })
}

/// One object per line until `done: true`.
struct Parser {
    reporter: Reporter,
}

impl StreamParser for Parser {
    fn frame(
        &mut self,
        _event: Option<&str>,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError> {
        let chat: Chat = self.reporter.json("a stream line", data.as_bytes())?;
        if chat.error.is_some() {
            return Err(self.reporter.error(Failure::InStream { body: data }));
        }
        if let Some(message) = &chat.message {
            if !message.content.is_empty() {
                out.push_back(StreamEvent::Delta(message.content.clone()));
            }
        }
        if !chat.done {
            return Ok(Flow::Continue);
        }
        out.push_back(StreamEvent::Finish(
            chat.done_reason.as_deref().map(finish_reason),
        ));
        if let Some(usage) = chat.usage() {
            out.push_back(StreamEvent::Usage(usage));
        }
        Ok(Flow::Stop)
    }

    fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        Err(self.reporter.error(Failure::Truncated {
            marker: "a line with \"done\": true",
        }))
    }
}

#[async_trait]
impl Adapter for Ollama {
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
        self.http
            .stream(
                self.url.clone(),
                body(request, true),
                timeout,
                Framing::Ndjson,
                |reporter| Parser { reporter },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::fixtures::{self, check_error, drain, fixture, serve, text, Canned, KEY};
    use crate::gateway::types::{ErrorKind, StreamEvent, Usage};

    fn expected_body(stream: bool) -> serde_json::Value {
        json!({
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Why is the sky blue?"},
            ],
            "stream": stream,
            "options": {"num_predict": 64, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n"]},
        })
    }

    #[tokio::test]
    async fn complete_parses_the_documented_response() {
        let server = serve(Canned::json(200, fixture("ollama", "complete.json"))).await;
        let answer = fixtures::adapter("ollama", &server)
            .complete(&fixtures::request("llama3.2"), Duration::from_secs(5))
            .await
            .expect("answers");
        assert_eq!(answer.content, "Hello! How are you today?");
        assert_eq!(answer.model, "llama3.2");
        assert_eq!(
            answer.finish_reason, None,
            "the documented example has none"
        );
        assert_eq!(
            answer.usage,
            Some(Usage {
                input_tokens: 26,
                output_tokens: 298
            })
        );
        let sent = server.one();
        assert_eq!(sent.uri.path(), "/api/chat");
        assert_eq!(
            sent.header("authorization"),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(sent.body, expected_body(false));
    }

    #[tokio::test]
    async fn stream_decodes_the_documented_lines() {
        let server = serve(Canned::new(
            200,
            "application/x-ndjson",
            fixture("ollama", "stream.ndjson"),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("ollama", &server).as_ref(),
            &fixtures::request("llama3.2"),
        )
        .await
        .expect("opens");
        assert_eq!(error, None);
        assert_eq!(text(&events), "The sky is blue.");
        assert_eq!(
            events[events.len() - 2..],
            [
                StreamEvent::Finish(Some("stop".into())),
                StreamEvent::Usage(Usage {
                    input_tokens: 26,
                    output_tokens: 282
                }),
            ]
        );
        assert_eq!(server.one().body, expected_body(true));
    }

    #[tokio::test]
    async fn a_stream_without_done_is_malformed() {
        let whole = String::from_utf8(fixture("ollama", "stream.ndjson")).expect("utf-8");
        let lines: Vec<&str> = whole.lines().collect();
        let cut = lines[..lines.len() - 1].join("\n");
        let server = serve(Canned::new(200, "application/x-ndjson", cut.into_bytes())).await;
        let (events, error) = drain(
            fixtures::adapter("ollama", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), "The sky is blue.");
        assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Malformed));
    }

    #[tokio::test]
    async fn the_documented_mid_stream_error_fails_the_stream() {
        let server = serve(Canned::new(
            200,
            "application/x-ndjson",
            fixture("ollama", "stream_error.ndjson"),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("ollama", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), " Yes.");
        let error = error.expect("error line");
        assert_eq!(error.kind, ErrorKind::Server);
        assert!(error
            .message
            .contains("an error was encountered while running the model"));
    }

    #[tokio::test]
    async fn documented_errors_classify() {
        check_error(
            "ollama",
            401,
            "error_401.json",
            ErrorKind::Auth,
            "unauthorized",
        )
        .await;
        check_error(
            "ollama",
            429,
            "error_429.json",
            ErrorKind::RateLimited,
            "too many requests",
        )
        .await;
        check_error(
            "ollama",
            500,
            "error_500.json",
            ErrorKind::Server,
            "the model failed to generate a response",
        )
        .await;
        check_error(
            "ollama",
            400,
            "error_400.json",
            ErrorKind::BadRequest,
            "model is required",
        )
        .await;
        check_error(
            "ollama",
            404,
            "error_404.json",
            ErrorKind::BadRequest,
            "not found, try pulling it first",
        )
        .await;
    }
}
