//! Google's Gemini API: `POST {base_url}/v1beta/models/{model}:generateContent`,
//! and `:streamGenerateContent?alt=sse` for streams; key in `x-goog-api-key`.
//!
//! Roles are `user` and `model`; system messages become `systemInstruction`.
//! A stream has no terminator event: it ends after the candidate that carries a
//! `finishReason`, so a body that ends before one is truncated. Output usage
//! includes `thoughtsTokenCount`: thinking tokens are billed as output.

use std::{collections::VecDeque, time::Duration};

use async_trait::async_trait;
use reqwest::{header::HeaderName, Url};
use serde::{de::IgnoredAny, Deserialize, Serialize};

use super::{
    classify::{ApiKey, Failure},
    endpoint,
    sse::Flow,
    vendor_reason,
    wire::{Framing, Reporter, StreamParser},
    Adapter, Auth, Http,
};
use crate::gateway::types::{
    ChatRequest, ChatResponse, EventStream, ProviderError, StreamEvent, Usage,
};

/// A Gemini provider.
#[derive(Debug)]
pub(crate) struct Gemini {
    http: Http,
    base: Url,
}

impl Gemini {
    pub(crate) fn new(
        base: &Url,
        key: ApiKey,
        client: reqwest::Client,
    ) -> Result<Gemini, &'static str> {
        Ok(Gemini {
            http: Http::new(
                "gemini",
                key,
                client,
                Auth::Header(HeaderName::from_static("x-goog-api-key")),
                &[],
            )?,
            base: base.clone(),
        })
    }

    fn url(&self, model: &str, stream: bool) -> Url {
        // Google's own names are `models/{id}`; accept both spellings.
        let model = model.strip_prefix("models/").unwrap_or(model);
        let method = if stream {
            "streamGenerateContent"
        } else {
            "generateContent"
        };
        let mut url = endpoint(
            &self.base,
            &["v1beta", "models", &format!("{model}:{method}")],
        );
        if stream {
            url.set_query(Some("alt=sse"));
        }
        url
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    max_output_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

fn body(request: &ChatRequest) -> Result<Vec<u8>, serde_json::Error> {
    let system: Vec<Part<'_>> = request
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| Part { text: &m.content })
        .collect();
    let contents = request
        .messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| Content {
            role: if m.role == "assistant" {
                "model"
            } else {
                "user"
            },
            parts: [Part { text: &m.content }],
        })
        .collect();
    serde_json::to_vec(&Body {
        contents,
        system_instruction: (!system.is_empty()).then_some(SystemInstruction { parts: system }),
        generation_config: GenerationConfig {
            max_output_tokens: request.max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            stop_sequences: &request.stop,
        },
    })
}

/// `finishReason` in OpenAI's terms.
fn finish_reason(reason: &str) -> String {
    match reason {
        "STOP" => "stop".into(),
        "MAX_TOKENS" => "length".into(),
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter".into()
        }
        other => vendor_reason(other),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    /// A stream reports a failure after its 200 as a chunk with an `error`.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<CandidatePart>,
}

#[derive(Deserialize)]
struct CandidatePart {
    #[serde(default)]
    text: Option<String>,
    /// A thought summary, not the answer.
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

impl From<UsageMetadata> for Usage {
    fn from(usage: UsageMetadata) -> Usage {
        Usage {
            input_tokens: usage.prompt_token_count,
            output_tokens: usage.candidates_token_count + usage.thoughts_token_count,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

impl Response {
    /// The first candidate's answer text.
    fn text(&self) -> String {
        self.candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .map(|c| {
                c.parts
                    .iter()
                    .filter(|p| !p.thought)
                    .filter_map(|p| p.text.as_deref())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why generation stopped, if this response says: a candidate's reason, or a
    /// prompt blocked before any candidate.
    fn finish(&self) -> Option<String> {
        match self.candidates.first() {
            Some(candidate) => candidate.finish_reason.as_deref().map(finish_reason),
            None => self
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_ref())
                .map(|_| "content_filter".to_owned()),
        }
    }
}

fn parse(
    bytes: &[u8],
    request: &ChatRequest,
    reporter: &Reporter,
) -> Result<ChatResponse, ProviderError> {
    let response: Response = reporter.json("the answer", bytes)?;
    let finish = response.finish();
    if response.candidates.is_empty() && finish.is_none() {
        return Err(reporter.undecodable("the answer", "no candidates"));
    }
    Ok(ChatResponse {
        model: response
            .model_version
            .clone()
            .unwrap_or_else(|| request.model.clone()),
        content: response.text(),
        finish_reason: finish,
        usage: response.usage_metadata.map(Usage::from),
    })
}

/// `data: {GenerateContentResponse}` per chunk; usage is cumulative, so only
/// the last one counts, reported once the body has ended.
struct Parser {
    reporter: Reporter,
    finished: bool,
    usage: Option<UsageMetadata>,
}

impl StreamParser for Parser {
    fn frame(
        &mut self,
        _event: Option<&str>,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError> {
        let response: Response = self.reporter.json("a stream chunk", data.as_bytes())?;
        if response.error.is_some() {
            return Err(self.reporter.error(Failure::InStream { body: data }));
        }
        let text = response.text();
        if !text.is_empty() {
            out.push_back(StreamEvent::Delta(text));
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        if let Some(reason) = response.finish() {
            self.finished = true;
            out.push_back(StreamEvent::Finish(Some(reason)));
        }
        Ok(Flow::Continue)
    }

    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        if !self.finished {
            return Err(self.reporter.error(Failure::Truncated {
                marker: "a candidate with a finishReason",
            }));
        }
        if let Some(usage) = self.usage {
            out.push_back(StreamEvent::Usage(usage.into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Adapter for Gemini {
    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let bytes = self
            .http
            .complete(self.url(&request.model, false), body(request), timeout)
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
                self.url(&request.model, true),
                body(request),
                timeout,
                Framing::Sse,
                |reporter| Parser {
                    reporter,
                    finished: false,
                    usage: None,
                },
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

    fn expected_body() -> serde_json::Value {
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Hi."}]},
                {"role": "user", "parts": [{"text": "Why is the sky blue?"}]},
            ],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "generationConfig": {
                "maxOutputTokens": 64,
                "temperature": 0.5,
                "topP": 0.9,
                "stopSequences": ["\n\n"],
            },
        })
    }

    #[tokio::test]
    async fn complete_parses_the_documented_response() {
        let server = serve(Canned::json(200, fixture("gemini", "complete.json"))).await;
        let answer = fixtures::adapter("gemini", &server)
            .complete(
                &fixtures::request("gemini-2.5-flash"),
                Duration::from_secs(5),
            )
            .await
            .expect("answers");
        assert!(answer.content.starts_with("AI works by learning patterns"));
        assert_eq!(answer.model, "gemini-2.5-flash");
        assert_eq!(answer.finish_reason.as_deref(), Some("stop"));
        // Thinking tokens are billed as output.
        assert_eq!(
            answer.usage,
            Some(Usage {
                input_tokens: 4,
                output_tokens: 16 + 987
            })
        );
        let sent = server.one();
        assert_eq!(
            sent.uri.path(),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(sent.uri.query(), None);
        assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
        assert_eq!(sent.header("authorization"), None);
        assert_eq!(sent.body, expected_body());
    }

    #[tokio::test]
    async fn stream_decodes_the_documented_chunks() {
        let server = serve(Canned::new(
            200,
            "text/event-stream",
            fixture("gemini", "stream.sse"),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("gemini", &server).as_ref(),
            &fixtures::request("models/gemini-2.0-flash"),
        )
        .await
        .expect("opens");
        assert_eq!(error, None);
        assert_eq!(
            text(&events),
            "The sky is blue because air scatters blue light more than red light."
        );
        assert_eq!(
            events[events.len() - 2..],
            [
                StreamEvent::Finish(Some("stop".into())),
                StreamEvent::Usage(Usage {
                    input_tokens: 8,
                    output_tokens: 17
                }),
            ]
        );
        let sent = server.one();
        assert_eq!(
            sent.uri.path(),
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        );
        assert_eq!(sent.uri.query(), Some("alt=sse"));
        assert_eq!(sent.body, expected_body());
    }

    #[tokio::test]
    async fn a_stream_without_a_final_candidate_is_malformed() {
        let whole = String::from_utf8(fixture("gemini", "stream.sse")).expect("utf-8");
        let events: Vec<&str> = whole.split_inclusive("\r\n\r\n").collect();
        let cut = events[..events.len() - 1].concat();
        let server = serve(Canned::new(200, "text/event-stream", cut.into_bytes())).await;
        let (events, error) = drain(
            fixtures::adapter("gemini", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(text(&events), "The sky is blue because air scatters blue");
        let error = error.expect("truncated");
        assert_eq!(error.kind, ErrorKind::Malformed);
        assert!(error.message.contains("finishReason"));
    }

    #[tokio::test]
    async fn documented_errors_classify() {
        check_error(
            "gemini",
            401,
            "error_401.json",
            ErrorKind::Auth,
            "UNAUTHENTICATED: Request had invalid authentication",
        )
        .await;
        check_error(
            "gemini",
            400,
            "error_400_api_key.json",
            ErrorKind::Auth,
            "API key not valid",
        )
        .await;
        check_error(
            "gemini",
            429,
            "error_429.json",
            ErrorKind::RateLimited,
            "RESOURCE_EXHAUSTED: You exceeded your current quota",
        )
        .await;
        check_error(
            "gemini",
            500,
            "error_500.json",
            ErrorKind::Server,
            "INTERNAL: An internal error",
        )
        .await;
        check_error(
            "gemini",
            400,
            "error_400.json",
            ErrorKind::BadRequest,
            "contents is not specified",
        )
        .await;
    }

    #[tokio::test]
    async fn a_429_without_retry_after_uses_retry_info() {
        let server = serve(Canned::json(429, fixture("gemini", "error_429.json"))).await;
        let error = fixtures::adapter("gemini", &server)
            .complete(&fixtures::request("m"), Duration::from_secs(5))
            .await
            .expect_err("429");
        assert_eq!(error.retry_after, Some(Duration::from_secs(22)));
    }

    #[tokio::test]
    async fn a_blocked_prompt_is_a_content_filter_finish() {
        let body = br#"{"promptFeedback":{"blockReason":"SAFETY"},
            "usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#;
        let server = serve(Canned::json(200, body.to_vec())).await;
        let adapter = fixtures::adapter("gemini", &server);
        let answer = adapter
            .complete(&fixtures::request("m"), Duration::from_secs(5))
            .await
            .expect("a block is an answer");
        assert_eq!(answer.content, "");
        assert_eq!(answer.finish_reason.as_deref(), Some("content_filter"));
        let server = serve(Canned::new(
            200,
            "text/event-stream",
            format!(
                "data: {}\r\n\r\n",
                String::from_utf8_lossy(body).replace('\n', " ")
            )
            .into_bytes(),
        ))
        .await;
        let (events, error) = drain(
            fixtures::adapter("gemini", &server).as_ref(),
            &fixtures::request("m"),
        )
        .await
        .expect("opens");
        assert_eq!(error, None);
        assert_eq!(
            events[0],
            StreamEvent::Finish(Some("content_filter".into()))
        );
    }
}
