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
    wire::{self, Framing, Reporter, StreamParser},
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
    pub(crate) fn new(
        base: &Url,
        key: ApiKey,
        client: reqwest::Client,
    ) -> Result<OpenAi, &'static str> {
        Ok(OpenAi {
            http: Http::new("openai", key, client, Auth::Bearer, &[])?,
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
            },
            reporter,
        ))
    }
}
