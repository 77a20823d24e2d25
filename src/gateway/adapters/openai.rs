//! OpenAI chat completions, and every server that copies it (vLLM, Groq,
//! Ollama's `/v1`, the built-in mock): `POST {base_url}/chat/completions`.
//!
//! `max_tokens` rather than `max_completion_tokens`: the newer name is OpenAI's
//! alone, and every compatible server takes the old one. Streams ask for
//! `stream_options.include_usage`, so the last chunk before `[DONE]` carries the
//! usage with an empty `choices`.

use std::{collections::VecDeque, time::Duration};

use async_trait::async_trait;
use reqwest::Url;
use serde::{de::IgnoredAny, Deserialize, Serialize};

use super::{
    classify::{ApiKey, Failure},
    endpoint,
    sse::Flow,
    wire::{Framing, Reporter, StreamParser},
    Adapter, Auth, Http,
};
use crate::gateway::types::{
    ChatMessage, ChatRequest, ChatResponse, EventStream, ProviderError, StreamEvent, Usage,
};

/// An OpenAI-compatible provider.
#[derive(Debug)]
pub(crate) struct OpenAi {
    http: Http,
    url: Url,
}

impl OpenAi {
    /// `protocol` names it in messages: `openai`, or `mock` for the mock.
    pub(crate) fn new(
        protocol: &'static str,
        base: &Url,
        key: ApiKey,
        client: reqwest::Client,
    ) -> Result<OpenAi, &'static str> {
        Ok(OpenAi {
            http: Http::new(protocol, key, client, Auth::Bearer, &[])?,
            url: endpoint(base, &["chat", "completions"]),
        })
    }
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn body(request: &ChatRequest, stream: bool) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Body {
        model: &request.model,
        messages: &request.messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: &request.stop,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    })
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some compatible servers answer a failure with 200 and an `error` object.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    /// `null` when the answer is only tool calls.
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Usage {
        Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}

fn parse(
    bytes: &[u8],
    request: &ChatRequest,
    reporter: &Reporter,
) -> Result<ChatResponse, ProviderError> {
    let completion: Completion = reporter.json("the answer", bytes)?;
    if completion.error.is_some() {
        return Err(reporter.error(Failure::InStream {
            body: &String::from_utf8_lossy(bytes),
        }));
    }
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(reporter.undecodable("the answer", "no choices"));
    };
    Ok(ChatResponse {
        model: if completion.model.is_empty() {
            request.model.clone()
        } else {
            completion.model
        },
        content: choice.message.and_then(|m| m.content).unwrap_or_default(),
        finish_reason: choice.finish_reason,
        usage: completion.usage.map(Usage::from),
    })
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Compatible servers (vLLM, OpenRouter) report a mid-stream failure as a
    /// chunk with an `error` object.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// `data: {chunk}` ... `data: [DONE]`.
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
        if data.trim() == "[DONE]" {
            return Ok(Flow::Stop);
        }
        let chunk: Chunk = self.reporter.json("a stream chunk", data.as_bytes())?;
        if chunk.error.is_some() {
            return Err(self.reporter.error(Failure::InStream { body: data }));
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                if !text.is_empty() {
                    out.push_back(StreamEvent::Delta(text));
                }
            }
            if let Some(reason) = choice.finish_reason {
                out.push_back(StreamEvent::Finish(Some(reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(StreamEvent::Usage(usage.into()));
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        Err(self.reporter.error(Failure::Truncated {
            marker: "data: [DONE]",
        }))
    }
}

#[async_trait]
impl Adapter for OpenAi {
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
                Framing::Sse,
                |reporter| Parser { reporter },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use serde_json::json;

    use super::super::fixtures::{self, check_error, drain, fixture, serve, text, Canned, KEY};
    use crate::gateway::types::{ErrorKind, StreamEvent, Usage};

    fn expected_body(stream: bool) -> serde_json::Value {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Why is the sky blue?"},
            ],
            "max_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\n"],
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    #[tokio::test]
    async fn complete_parses_the_documented_answer() {
        let server = serve(Canned::json(200, fixture("openai", "complete.json"))).await;
        let adapter = fixtures::adapter("openai", &server);
        let answer = adapter
            .complete(&fixtures::request("gpt-4o-mini"), Duration::from_secs(5))
            .await
            .expect("answers");
        assert_eq!(
            answer.content,
            "\n\nHello there, how may I assist you today?"
        );
        assert_eq!(answer.model, "gpt-4o-mini");
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            answer.usage,
            Some(Usage {
                input_tokens: 9,
                output_tokens: 12
            })
        );
        let sent = server.one();
        assert_eq!(sent.method, Method::POST);
        assert_eq!(sent.uri.path(), "/v1/chat/completions");
        assert_eq!(
            sent.header("authorization"),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(sent.header("content-type"), Some("application/json"));
        assert_eq!(sent.body, expected_body(false));
    }

    #[tokio::test]
    async fn stream_decodes_the_documented_chunks() {
        let server = serve(Canned::new(
            200,
            "text/event-stream",
            fixture("openai", "stream.sse"),
        ))
        .await;
        let adapter = fixtures::adapter("openai", &server);
        let (events, error) = drain(adapter.as_ref(), &fixtures::request("gpt-4o-mini"))
            .await
            .expect("opens");
        assert_eq!(error, None);
        assert_eq!(text(&events), "Hello! How can I help?");
        assert_eq!(
            events[events.len() - 2..],
            [
                StreamEvent::Finish(Some("stop".into())),
                StreamEvent::Usage(Usage {
                    input_tokens: 9,
                    output_tokens: 7
                }),
            ]
        );
        let sent = server.one();
        assert_eq!(sent.uri.path(), "/v1/chat/completions");
        assert_eq!(sent.body, expected_body(true));
    }

    #[tokio::test]
    async fn a_stream_without_done_is_malformed() {
        let whole = String::from_utf8(fixture("openai", "stream.sse")).expect("utf-8");
        let cut = whole.replace("data: [DONE]\n\n", "");
        let server = serve(Canned::new(200, "text/event-stream", cut.into_bytes())).await;
        let (events, error) = drain(
            fixtures::adapter("openai", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), "Hello! How can I help?");
        let error = error.expect("fails at the end");
        assert_eq!(error.kind, ErrorKind::Malformed);
        assert!(error.message.contains("[DONE]"), "{}", error.message);
    }

    #[tokio::test]
    async fn an_error_chunk_ends_the_stream() {
        let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
            data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\"}}\n\n";
        let server = serve(Canned::new(200, "text/event-stream", body.to_vec())).await;
        let (events, error) = drain(
            fixtures::adapter("openai", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), "Hi");
        let error = error.expect("fails");
        assert_eq!(error.kind, ErrorKind::Server);
        assert!(error.message.contains("upstream failed"));
    }

    #[tokio::test]
    async fn documented_errors_classify() {
        check_error(
            "openai",
            401,
            "error_401.json",
            ErrorKind::Auth,
            "Incorrect API key provided",
        )
        .await;
        check_error(
            "openai",
            429,
            "error_429.json",
            ErrorKind::RateLimited,
            "Rate limit reached",
        )
        .await;
        check_error(
            "openai",
            500,
            "error_500.json",
            ErrorKind::Server,
            "server_error: The server had an error",
        )
        .await;
        check_error(
            "openai",
            400,
            "error_400.json",
            ErrorKind::BadRequest,
            "Invalid 'max_tokens'",
        )
        .await;
    }

    #[tokio::test]
    async fn an_error_object_in_a_200_is_classified_not_parsed() {
        let body = br#"{"error":{"message":"backend exploded","type":"server_error","code":503}}"#;
        let server = serve(Canned::json(200, body.to_vec())).await;
        let error = fixtures::adapter("openai", &server)
            .complete(&fixtures::request("m"), Duration::from_secs(5))
            .await
            .expect_err("an error body");
        assert_eq!((error.kind, error.status), (ErrorKind::Server, Some(503)));
        assert!(error.message.contains("backend exploded"));
    }

    #[tokio::test]
    async fn an_answer_without_choices_is_malformed() {
        let server = serve(Canned::json(200, br#"{"id":"x","choices":[]}"#.to_vec())).await;
        let error = fixtures::adapter("openai", &server)
            .complete(&fixtures::request("m"), Duration::from_secs(5))
            .await
            .expect_err("no choices");
        assert_eq!(error.kind, ErrorKind::Malformed);
    }
}
