//! The mock's answers as bytes: pure functions of the request and the options,
//! so the HTTP side only decides which one to send and when.

use serde::{Deserialize, Serialize};

/// Filler words; answer token `i > 0` is `" " + WORDS[(i - 1) % len]`.
const WORDS: [&str; 8] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
];

/// The first token of every answer: nobody mistakes it for a model.
pub(crate) const LABEL: &str = "[mock]";

/// The parts of an OpenAI chat request the mock reads. Everything else
/// (`temperature`, `tools`, ...) is accepted and ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Request {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// One message; only its text counts.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub content: Content,
}

/// A message's content: a string, or OpenAI's list of typed parts.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    /// `"content": "text"`.
    Text(String),
    /// `"content": [{"type": "text", "text": "..."}, ...]`.
    Parts(Vec<Part>),
    /// `null` or missing (an assistant turn with only tool calls).
    #[default]
    None,
}

/// One content part.
#[derive(Debug, Deserialize)]
pub(crate) struct Part {
    #[serde(default)]
    pub text: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl Request {
    /// All message text, in bytes.
    pub(crate) fn message_bytes(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| match &m.content {
                Content::Text(text) => text.len() as u64,
                Content::Parts(parts) => parts
                    .iter()
                    .filter_map(|p| p.text.as_ref())
                    .map(|t| t.len() as u64)
                    .sum(),
                Content::None => 0,
            })
            .sum()
    }

    /// The client's cap on output tokens, under either name.
    pub(crate) fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether a stream should end with a usage chunk.
    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// What one successful answer contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub prompt_tokens: u64,
    pub completion_tokens: u32,
    /// `length` when `max_tokens` cut the answer short, else `stop`.
    pub finish_reason: &'static str,
}

/// Prompt tokens are `prompt_tokens` if set, else a quarter of the message
/// bytes rounded up (the usual rule of thumb for English); completion tokens are
/// `completion_tokens` capped by the request's `max_tokens`.
pub(crate) fn plan(request: &Request, prompt_tokens: Option<u32>, completion_tokens: u32) -> Plan {
    let prompt_tokens =
        prompt_tokens.map_or_else(|| request.message_bytes().div_ceil(4), u64::from);
    let (completion_tokens, finish_reason) = match request.max_tokens() {
        Some(max) if max < completion_tokens => (max, "length"),
        _ => (completion_tokens, "stop"),
    };
    Plan {
        prompt_tokens,
        completion_tokens,
        finish_reason,
    }
}

/// Answer token `index`.
pub(crate) fn token(index: u32) -> String {
    match index.checked_sub(1) {
        None => LABEL.to_owned(),
        Some(i) => format!(" {}", WORDS[i as usize % WORDS.len()]),
    }
}

/// The whole answer text of `count` tokens.
pub(crate) fn text(count: u32) -> String {
    (0..count).map(token).collect()
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: [Choice; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    message: AssistantMessage,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage {
    role: &'static str,
    content: String,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl From<Plan> for Usage {
    fn from(plan: Plan) -> Usage {
        let completion = u64::from(plan.completion_tokens);
        Usage {
            prompt_tokens: plan.prompt_tokens,
            completion_tokens: completion,
            total_tokens: plan.prompt_tokens + completion,
        }
    }
}

/// Identity shared by a completion and all chunks of one stream.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub id: String,
    pub model: String,
    pub created: u64,
}

const FINGERPRINT: &str = "tutorlog-mock";

/// A `chat.completion` body.
pub(crate) fn completion(meta: &Meta, plan: Plan) -> Vec<u8> {
    let body = Completion {
        id: &meta.id,
        object: "chat.completion",
        created: meta.created,
        model: &meta.model,
        system_fingerprint: FINGERPRINT,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: text(plan.completion_tokens),
            },
            logprobs: None,
            finish_reason: plan.finish_reason,
        }],
        usage: plan.into(),
    };
    // A struct of strings and integers always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice>,
    /// With include_usage every chunk has `usage`, null until the last one;
    /// without it, none has (OpenAI's behaviour both ways).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Delta,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

/// One piece of a stream, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The opening chunk: role and empty content.
    Role,
    /// Answer token `n`.
    Token(u32),
    /// The chunk with the finish reason.
    Finish,
    /// The usage chunk (`choices: []`), when asked for.
    Usage,
    /// `data: [DONE]`.
    Done,
}

/// The pieces of a whole stream.
pub(crate) fn pieces(plan: Plan, include_usage: bool) -> impl Iterator<Item = Piece> {
    std::iter::once(Piece::Role)
        .chain((0..plan.completion_tokens).map(Piece::Token))
        .chain(std::iter::once(Piece::Finish))
        .chain(include_usage.then_some(Piece::Usage))
        .chain(std::iter::once(Piece::Done))
}

/// One SSE event for `piece`, appended to `out`.
pub(crate) fn event(out: &mut Vec<u8>, meta: &Meta, plan: Plan, include_usage: bool, piece: Piece) {
    let chunk = |choices, usage| Chunk {
        id: &meta.id,
        object: "chat.completion.chunk",
        created: meta.created,
        model: &meta.model,
        system_fingerprint: FINGERPRINT,
        choices,
        usage: include_usage.then_some(usage),
    };
    let choice = |delta, finish_reason| {
        vec![ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }]
    };
    let body = match piece {
        Piece::Role => chunk(
            choice(
                Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                },
                None,
            ),
            None,
        ),
        Piece::Token(n) => chunk(
            choice(
                Delta {
                    role: None,
                    content: Some(token(n)),
                },
                None,
            ),
            None,
        ),
        Piece::Finish => chunk(choice(Delta::default(), Some(plan.finish_reason)), None),
        Piece::Usage => chunk(Vec::new(), Some(plan.into())),
        Piece::Done => {
            out.extend_from_slice(b"data: [DONE]\n\n");
            return;
        }
    };
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, &body).is_err() {
        // Writing JSON into a Vec cannot fail.
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// A whole stream as one buffer (the fast path, no pacing).
pub(crate) fn stream(meta: &Meta, plan: Plan, include_usage: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * (plan.completion_tokens as usize + 4));
    for piece in pieces(plan, include_usage) {
        event(&mut out, meta, plan, include_usage, piece);
    }
    out
}

/// A stream cut off mid-answer: the opening and half the tokens, then nothing.
pub(crate) fn truncated_stream(meta: &Meta, plan: Plan) -> Vec<u8> {
    let mut out = Vec::new();
    let half = plan.completion_tokens / 2;
    for piece in std::iter::once(Piece::Role).chain((0..half).map(Piece::Token)) {
        event(&mut out, meta, plan, false, piece);
    }
    out
}

/// An OpenAI-style error body.
pub(crate) fn error(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": {
            "message": format!("{LABEL} {message}"),
            "type": kind,
            "param": null,
            "code": code,
        }
    }))
    .unwrap_or_default()
}

/// splitmix64: a counter-based generator. Request `n`'s draws depend only on the
/// seed and `n`, so a seed fixes the fault sequence with no lock to share.
pub(crate) fn draw(seed: u64, request: u64, stream: u64) -> u64 {
    let mut z = seed ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A draw as a uniform number in [0, 1).
pub(crate) fn unit(seed: u64, request: u64, stream: u64) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (draw(seed, request, stream) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Request {
        serde_json::from_str(json).expect("request")
    }

    #[test]
    fn prompt_tokens_are_a_quarter_of_the_bytes_rounded_up() {
        let r = request(
            r#"{"model":"m","messages":[{"role":"user","content":"hello"},
            {"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url"}]},
            {"role":"assistant","content":null}]}"#,
        );
        assert_eq!(r.message_bytes(), 8);
        assert_eq!(plan(&r, None, 16).prompt_tokens, 2);
        assert_eq!(plan(&r, Some(100), 16).prompt_tokens, 100);
        let r = request(r#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#);
        assert_eq!(plan(&r, None, 16).prompt_tokens, 3);
    }

    #[test]
    fn max_tokens_caps_the_answer() {
        let r = request(r#"{"model":"m","messages":[],"max_tokens":4}"#);
        let p = plan(&r, None, 16);
        assert_eq!((p.completion_tokens, p.finish_reason), (4, "length"));
        let r = request(r#"{"model":"m","messages":[],"max_completion_tokens":40}"#);
        let p = plan(&r, None, 16);
        assert_eq!((p.completion_tokens, p.finish_reason), (16, "stop"));
    }

    #[test]
    fn answers_are_labelled_and_count_their_tokens() {
        assert_eq!(text(3), "[mock] lorem ipsum");
        let meta = Meta {
            id: "chatcmpl-mock-1".into(),
            model: "m".into(),
            created: 1,
        };
        let plan = Plan {
            prompt_tokens: 5,
            completion_tokens: 3,
            finish_reason: "stop",
        };
        let body: serde_json::Value =
            serde_json::from_slice(&completion(&meta, plan)).expect("json");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "[mock] lorem ipsum"
        );
        assert_eq!(body["usage"]["total_tokens"], 8);
        let sse = String::from_utf8(stream(&meta, plan, true)).expect("utf-8");
        let events: Vec<&str> = sse.split("\n\n").filter(|e| !e.is_empty()).collect();
        // role, 3 tokens, finish, usage, [DONE]
        assert_eq!(events.len(), 7);
        assert!(
            events[5].contains("\"choices\":[]") && events[5].contains("\"completion_tokens\":3")
        );
        assert_eq!(events[6], "data: [DONE]");
        let cut = String::from_utf8(truncated_stream(&meta, plan)).expect("utf-8");
        assert!(!cut.contains("[DONE]") && !cut.contains("finish_reason\":\"stop"));
    }

    #[test]
    fn draws_are_deterministic_and_roughly_uniform() {
        assert_eq!(draw(7, 3, 0), draw(7, 3, 0));
        assert_ne!(draw(7, 3, 0), draw(8, 3, 0));
        assert_ne!(draw(7, 3, 0), draw(7, 3, 1));
        let hits = (0..10_000).filter(|&n| unit(42, n, 0) < 0.25).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        assert!((0..10_000).all(|n| (0.0..1.0).contains(&unit(1, n, 0))));
    }
}
