//! Turning every way a provider call can fail into one [`ProviderError`].
//!
//! All four adapters report failures through [`classify`], so the breaker and the
//! failover logic see the same [`ErrorKind`] for the same situation whichever
//! vendor it came from. Messages carry the vendor's own words (redacted, then
//! truncated) so an operator can act on them, and never the API key.

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::gateway::types::{ErrorKind, ProviderError};

/// Longest message kept from a vendor, in characters; longer ones end in `…`.
pub(crate) const MESSAGE_CHARS_MAX: usize = 200;

/// Longest `Retry-After` honoured. A provider asking for more is treated as
/// asking for this much: the breaker's own open period takes over from there.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// What replaces the key wherever a vendor echoes it back.
const REDACTED: &str = "[redacted]";

/// A provider's API key. `Debug` never shows it, and [`ApiKey::redact`] removes it
/// from any text before that text reaches a log or a client.
#[derive(Clone, Default)]
pub(crate) struct ApiKey(Option<Arc<str>>);

impl ApiKey {
    /// A key; an empty or all-whitespace value counts as no key.
    pub(crate) fn new(value: Option<&str>) -> ApiKey {
        ApiKey(
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(Arc::from),
        )
    }

    /// The key itself, for the one header that carries it.
    pub(crate) fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `text` with every occurrence of the key replaced.
    pub(crate) fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.0.as_deref() {
            Some(key) if text.contains(key) => Cow::Owned(text.replace(key, REDACTED)),
            _ => Cow::Borrowed(text),
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ApiKey(<set>)"
        } else {
            "ApiKey(<none>)"
        })
    }
}

/// One way a call failed, as observed; [`classify`] decides what it means.
#[derive(Debug)]
pub(crate) enum Failure<'a> {
    /// Our own deadline passed while waiting for `stage`.
    Deadline {
        /// How long we waited.
        waited: Duration,
        /// What we were waiting for ("status and headers", "the whole answer").
        stage: &'static str,
    },
    /// The HTTP client failed: connecting, sending, or reading the body.
    Transport(&'a reqwest::Error),
    /// The provider answered with a non-success status.
    Status {
        /// The status code.
        status: u16,
        /// The response headers (for `Retry-After`).
        headers: &'a HeaderMap,
        /// The (possibly partial) error body.
        body: &'a [u8],
    },
    /// A success body (or one stream frame) that does not parse.
    Undecodable {
        /// What was being parsed.
        what: &'static str,
        /// The parser's complaint (positions, not content).
        detail: String,
    },
    /// The stream ended before the vendor's end marker.
    Truncated {
        /// The marker that never came.
        marker: &'static str,
    },
    /// The vendor reported an error inside a stream that had started with 200.
    InStream {
        /// The error frame's JSON.
        body: &'a str,
    },
}

/// The one classification every adapter uses. `provider` names the vendor
/// protocol in messages; `key` is redacted from everything the vendor said.
pub(crate) fn classify(provider: &str, failure: Failure<'_>, key: &ApiKey) -> ProviderError {
    match failure {
        Failure::Deadline { waited, stage } => ProviderError::new(
            ErrorKind::Timeout,
            format!("{provider}: no {stage} within {} ms", waited.as_millis()),
        ),
        Failure::Transport(error) => transport(provider, error, key),
        Failure::Status {
            status,
            headers,
            body,
        } => {
            let detail = VendorError::parse(body);
            let kind = match status {
                400 if detail.key_invalid => ErrorKind::Auth,
                _ => kind_for_status(status),
            };
            let message = match &detail.message {
                Some(text) => format!("{provider}: HTTP {status}: {text}"),
                None if body.is_empty() => format!("{provider}: HTTP {status} with an empty body"),
                None => format!(
                    "{provider}: HTTP {status}: {}",
                    String::from_utf8_lossy(body).trim()
                ),
            };
            let retry_after = retry_after(headers).or(if status == 429 {
                detail.retry_delay
            } else {
                None
            });
            ProviderError {
                kind,
                status: Some(status),
                message: clean(&message, key),
                retry_after,
            }
        }
        Failure::Undecodable { what, detail } => ProviderError::new(
            ErrorKind::Malformed,
            clean(&format!("{provider}: {what} does not parse: {detail}"), key),
        ),
        Failure::Truncated { marker } => ProviderError::new(
            ErrorKind::Malformed,
            format!("{provider}: the stream ended before {marker}"),
        ),
        Failure::InStream { body } => {
            let detail = VendorError::parse(body.as_bytes());
            let kind = detail
                .code
                .map(kind_for_status)
                .or_else(|| detail.kind.as_deref().and_then(kind_for_vendor_type))
                // A provider that fails mid-answer has failed, not the request.
                .unwrap_or(ErrorKind::Server);
            let text = detail.message.as_deref().unwrap_or(body);
            ProviderError {
                kind,
                status: detail.code,
                message: clean(&format!("{provider}: error in stream: {text}"), key),
                retry_after: None,
            }
        }
    }
}

/// The kind an HTTP status means.
pub(crate) fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        429 => ErrorKind::RateLimited,
        401 | 403 => ErrorKind::Auth,
        500..=599 => ErrorKind::Server,
        // 400, 404, 413, 422 and every other 4xx: the request itself was refused.
        400..=499 => ErrorKind::BadRequest,
        // 1xx/3xx where a 2xx was due: the provider is not speaking its API.
        _ => ErrorKind::Malformed,
    }
}

/// The kind a vendor's symbolic error type means, for errors that arrive without
/// a status (inside a stream). Anthropic's `error.type` and Google's `status`.
fn kind_for_vendor_type(kind: &str) -> Option<ErrorKind> {
    Some(match kind {
        "rate_limit_error" | "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "authentication_error" | "permission_error" | "UNAUTHENTICATED" | "PERMISSION_DENIED" => {
            ErrorKind::Auth
        }
        "invalid_request_error"
        | "not_found_error"
        | "request_too_large"
        | "INVALID_ARGUMENT"
        | "NOT_FOUND"
        | "FAILED_PRECONDITION" => ErrorKind::BadRequest,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "api_error" | "overloaded_error" | "INTERNAL" | "UNAVAILABLE" => ErrorKind::Server,
        _ => return None,
    })
}

fn transport(provider: &str, error: &reqwest::Error, key: &ApiKey) -> ProviderError {
    // The source chain holds the useful part ("Connection refused (os error 111)").
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // A connect timeout is an unreachable host, not a slow provider: Connect first.
    let kind = if error.is_connect() {
        ErrorKind::Connect
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        // Sending or reading broke mid-way (reset, closed early): the connection
        // failed, whatever reqwest calls the stage.
        ErrorKind::Connect
    };
    ProviderError {
        kind,
        status: error.status().map(|s| s.as_u16()),
        message: clean(&format!("{provider}: {text}"), key),
        retry_after: None,
    }
}

/// `Retry-After` as delay-seconds (integer or decimal). The HTTP-date form is
/// not used by any of the four vendors and is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_seconds(value.trim())
}

fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(RETRY_AFTER_MAX.as_secs_f64()),
    ))
}

/// Redacts the key, then truncates: in that order, so a cut can never leave a
/// prefix of the key behind.
pub(crate) fn clean(text: &str, key: &ApiKey) -> String {
    truncate(&key.redact(text))
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MESSAGE_CHARS_MAX) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut short = text[..end].to_owned();
            short.push('…');
            short
        }
    }
}

/// What a vendor's error body says, whichever vendor: OpenAI and Gemini nest it as
/// `{"error": {"message", "type"|"status", "code"}}`, Anthropic as
/// `{"type": "error", "error": {"type", "message"}}`, Ollama as `{"error": "text"}`.
#[derive(Debug, Default)]
struct VendorError {
    message: Option<String>,
    /// Anthropic's `error.type`, OpenAI's `error.type`/`code`, Google's `status`.
    kind: Option<String>,
    /// A numeric HTTP-like code (Google's `error.code`).
    code: Option<u16>,
    /// Google's `API_KEY_INVALID` (sent with 400, but it is an auth failure).
    key_invalid: bool,
    /// Google's `RetryInfo.retryDelay` ("22s").
    retry_delay: Option<Duration>,
}

impl VendorError {
    fn parse(body: &[u8]) -> VendorError {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return VendorError::default();
        };
        let error = value.get("error").unwrap_or(&Value::Null);
        if let Some(text) = error.as_str() {
            return VendorError {
                message: Some(text.to_owned()),
                ..VendorError::default()
            };
        }
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let kind = text(error, "status")
            .or_else(|| text(error, "type"))
            .filter(|k| !k.is_empty());
        let message = text(error, "message")
            .or_else(|| text(&value, "message"))
            .map(|m| match &kind {
                Some(k) if !m.starts_with(k.as_str()) => format!("{k}: {m}"),
                _ => m,
            });
        let code = error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        let details = error.get("details").and_then(Value::as_array);
        let details = details.map(Vec::as_slice).unwrap_or_default();
        let key_invalid = details
            .iter()
            .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
        let retry_delay = details.iter().find_map(|d| {
            let delay = d.get("retryDelay")?.as_str()?;
            parse_seconds(delay.strip_suffix('s')?)
        });
        VendorError {
            message,
            kind,
            code,
            key_invalid,
            retry_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn status(code: u16, body: &str, retry: Option<&str>) -> ProviderError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        }
        classify(
            "test",
            Failure::Status {
                status: code,
                headers: &headers,
                body: body.as_bytes(),
            },
            &ApiKey::new(Some("sk-secret-123")),
        )
    }

    #[test]
    fn statuses_map_to_kinds() {
        for (code, kind) in [
            (400, ErrorKind::BadRequest),
            (401, ErrorKind::Auth),
            (403, ErrorKind::Auth),
            (404, ErrorKind::BadRequest),
            (413, ErrorKind::BadRequest),
            (422, ErrorKind::BadRequest),
            (409, ErrorKind::BadRequest),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::Server),
            (502, ErrorKind::Server),
            (503, ErrorKind::Server),
            (529, ErrorKind::Server),
        ] {
            let error = status(code, "", None);
            assert_eq!(error.kind, kind, "HTTP {code}");
            assert_eq!(error.status, Some(code));
        }
    }

    #[test]
    fn retry_after_is_parsed_in_seconds() {
        let error = status(429, "{}", Some("7"));
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
        let error = status(429, "{}", Some(" 1.5 "));
        assert_eq!(error.retry_after, Some(Duration::from_millis(1500)));
        let error = status(429, "{}", Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(error.retry_after, None);
        let error = status(429, "{}", Some("-3"));
        assert_eq!(error.retry_after, None);
        let error = status(503, "{}", Some("2"));
        assert_eq!(error.retry_after, Some(Duration::from_secs(2)));
        let error = status(429, "{}", Some("99999999999"));
        assert_eq!(error.retry_after, Some(RETRY_AFTER_MAX));
    }

    #[test]
    fn google_retry_delay_is_a_fallback_for_429() {
        let body = r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#;
        assert_eq!(
            status(429, body, None).retry_after,
            Some(Duration::from_secs(22))
        );
        assert_eq!(
            status(429, body, Some("3")).retry_after,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn google_invalid_key_is_auth_despite_400() {
        let body = r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
            "details":[{"reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert_eq!(status(400, body, None).kind, ErrorKind::Auth);
    }

    #[test]
    fn vendor_messages_are_kept_with_their_type() {
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            status(529, anthropic, None).message,
            "test: HTTP 529: overloaded_error: Overloaded"
        );
        let ollama = r#"{"error":"model \"llama3\" not found, try pulling it first"}"#;
        assert_eq!(
            status(404, ollama, None).message,
            "test: HTTP 404: model \"llama3\" not found, try pulling it first"
        );
        let plain = status(502, "<html>Bad gateway</html>", None);
        assert_eq!(plain.message, "test: HTTP 502: <html>Bad gateway</html>");
    }

    #[test]
    fn the_key_never_survives_and_messages_are_bounded() {
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: sk-secret-123. {}","type":"invalid_request_error"}}}}"#,
            "x".repeat(500)
        );
        let error = status(401, &body, None);
        assert!(
            !error.message.contains("sk-secret-123"),
            "{}",
            error.message
        );
        assert!(error.message.contains(REDACTED));
        assert_eq!(error.message.chars().count(), MESSAGE_CHARS_MAX + 1);
        assert!(error.message.ends_with('…'));
    }

    #[test]
    fn redaction_happens_before_truncation() {
        // The key straddles the cut: truncating first would leave its prefix.
        let key = ApiKey::new(Some("sk-ABCDEFGHIJKLMNOP"));
        let text = format!("{}sk-ABCDEFGHIJKLMNOP", "y".repeat(MESSAGE_CHARS_MAX - 5));
        let cleaned = clean(&text, &key);
        assert!(!cleaned.contains("sk-AB"), "{cleaned}");
    }

    #[test]
    fn in_stream_errors_use_code_then_type() {
        let key = ApiKey::default();
        let anthropic =
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let error = classify("a", Failure::InStream { body: anthropic }, &key);
        assert_eq!(error.kind, ErrorKind::Server);
        let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#;
        let error = classify("a", Failure::InStream { body: limited }, &key);
        assert_eq!(error.kind, ErrorKind::RateLimited);
        let google = r#"{"error":{"code":503,"message":"busy","status":"UNAVAILABLE"}}"#;
        let error = classify("g", Failure::InStream { body: google }, &key);
        assert_eq!((error.kind, error.status), (ErrorKind::Server, Some(503)));
        let ollama = r#"{"error":"an error was encountered while running the model"}"#;
        let error = classify("o", Failure::InStream { body: ollama }, &key);
        assert_eq!(error.kind, ErrorKind::Server);
        assert!(error.message.contains("an error was encountered"));
    }

    #[test]
    fn debug_hides_the_key() {
        let key = ApiKey::new(Some("sk-secret-123"));
        assert_eq!(format!("{key:?}"), "ApiKey(<set>)");
        assert_eq!(format!("{:?}", ApiKey::new(Some("  "))), "ApiKey(<none>)");
    }
}
