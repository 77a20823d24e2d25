//! The chat scenario's conversations: what learners and developers send through
//! the gateway, across the router's categories (coding, math, research, language,
//! empathy for a frustrated or anxious learner, general). Bodies are serialised
//! once, at start; a request clones a reference-counted buffer.

use bytes::Bytes;
use serde_json::json;

/// Share of chat requests sent with `stream: true`.
pub const STREAM_SHARE: f64 = 0.3;
/// `max_tokens` on every chat request: tutoring answers, not essays.
pub const CHAT_TOKENS_MAX: u32 = 256;

const SYSTEM_PROMPT: &str =
    "You are a patient tutor. Answer briefly and check the learner's understanding.";

/// (category, the learner's message). The category is what the router should
/// detect; it is reported, not sent.
pub const CONVERSATIONS: &[(&str, &str)] = &[
    ("coding", "Why does my Rust code say `borrowed value does not live long enough` when I return a reference to a local String?"),
    ("coding", "Write a Python function that returns the n-th Fibonacci number without recursion."),
    ("coding", "What is the difference between an INNER JOIN and a LEFT JOIN in SQL? Show a small example."),
    ("coding", "My loop `for i in range(len(xs)): xs.remove(xs[i])` throws IndexError. What is wrong?"),
    ("math", "How do I solve 3x - 7 = 11? Please show each step."),
    ("math", "What is the derivative of x^2 * sin(x)?"),
    ("math", "If I roll two dice, what is the probability that the sum is 7?"),
    ("math", "Can you explain why dividing by a negative number flips an inequality?"),
    ("empathy", "I've failed this quiz three times and I feel stupid. I don't think I can ever learn algebra."),
    ("empathy", "This is so frustrating, nothing makes sense and I'm about to give up on programming."),
    ("empathy", "I'm really anxious about my exam tomorrow and I can't focus on anything."),
    ("research", "Summarise the main causes of the First World War in a few bullet points."),
    ("research", "What is the current scientific consensus on how the Moon formed?"),
    ("language", "Translate 'Where is the library?' into Spanish and French."),
    ("language", "Is it 'fewer' or 'less' in 'there are ___ people here today'? Why?"),
    ("general", "Give me three tips for remembering what I study."),
    ("general", "What should I learn first: statistics or linear algebra?"),
];

/// The prebuilt request bodies, JSON and streaming, for each conversation.
#[derive(Debug, Clone)]
pub struct ChatCatalog {
    bodies: Vec<(&'static str, Bytes, Bytes)>,
}

impl ChatCatalog {
    /// Builds every body for `model`.
    pub fn new(model: &str) -> ChatCatalog {
        let body = |message: &str, stream: bool| {
            let mut value = json!({
                "model": model,
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": message},
                ],
                "max_tokens": CHAT_TOKENS_MAX,
                "stream": stream,
            });
            if stream {
                value["stream_options"] = json!({"include_usage": true});
            }
            Bytes::from(value.to_string())
        };
        let bodies = CONVERSATIONS
            .iter()
            .map(|(category, message)| (*category, body(message, false), body(message, true)))
            .collect();
        ChatCatalog { bodies }
    }

    /// Conversations in the catalog.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether the catalog is empty (never: [`CONVERSATIONS`] is not).
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// Conversation `index`'s category and body.
    pub fn body(&self, index: usize, stream: bool) -> Option<(&'static str, Bytes)> {
        self.bodies.get(index).map(|(category, plain, streamed)| {
            (
                *category,
                if stream {
                    streamed.clone()
                } else {
                    plain.clone()
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_openai_chat_requests() {
        let catalog = ChatCatalog::new("auto");
        assert_eq!(catalog.len(), CONVERSATIONS.len());
        let categories: std::collections::BTreeSet<&str> =
            CONVERSATIONS.iter().map(|(c, _)| *c).collect();
        assert!(categories.len() >= 6, "{categories:?}");
        for index in 0..catalog.len() {
            for stream in [false, true] {
                let (_, body) = catalog.body(index, stream).expect("body");
                let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                assert_eq!(value["model"], "auto");
                assert_eq!(value["stream"], stream);
                assert_eq!(value["messages"][1]["role"], "user");
                assert_eq!(value["max_tokens"], CHAT_TOKENS_MAX);
            }
        }
        assert!(catalog.body(catalog.len(), false).is_none());
    }
}
