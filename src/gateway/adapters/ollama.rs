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
    wire::{self, Framing, Reporter, StreamParser},
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
        let response = self
            .http
            .open_stream(self.url.clone(), body(request, true), timeout)
            .await?;
        let reporter = self.http.reporter().clone();
        Ok(wire::event_stream(
            wire::body_chunks(response, reporter.clone()),
            Framing::Ndjson,
            Parser {
                reporter: reporter.clone(),
            },
            reporter,
        ))
    }
}
