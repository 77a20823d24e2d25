//! Test support: a loopback server that plays back recorded vendor bytes
//! (`tests/fixtures/providers/`) and records what the adapter sent, plus the
//! tests every adapter must pass the same way (timeouts, refused connections,
//! key redaction, `Debug`).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::Response,
};
use futures::StreamExt;

use super::{build_with_key, Adapter};
use crate::{
    config::{CircuitConfig, ProviderConfig},
    gateway::types::{ChatMessage, ChatRequest, ErrorKind, ProviderError, StreamEvent},
};

/// The four protocols and the content type each streams with.
pub(crate) const KINDS: [(&str, &str); 4] = [
    ("openai", "text/event-stream"),
    ("anthropic", "text/event-stream"),
    ("gemini", "text/event-stream"),
    ("ollama", "application/x-ndjson"),
];

/// A recorded file's bytes.
pub(crate) fn fixture(vendor: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/providers/{vendor}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// What the server answers.
#[derive(Clone)]
pub(crate) struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Send the body in pieces this large, so decoders meet real chunk splits.
    pub chunk_bytes: usize,
    /// Never answer.
    pub hang: bool,
    /// Replace `{key}` in the body with the key the request carried.
    pub echo_key: bool,
}

impl Canned {
    pub(crate) fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Canned {
        Canned {
            status,
            content_type,
            headers: Vec::new(),
            body,
            chunk_bytes: 7,
            hang: false,
            echo_key: false,
        }
    }

    pub(crate) fn json(status: u16, body: Vec<u8>) -> Canned {
        Canned::new(status, "application/json", body)
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running playback server.
pub(crate) struct Server {
    pub base: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    /// The requests seen so far.
    pub(crate) fn recorded(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("lock").clone()
    }

    /// The only request seen.
    pub(crate) fn one(&self) -> Recorded {
        let all = self.recorded();
        assert_eq!(all.len(), 1, "requests: {all:?}");
        all.into_iter().next().expect("one request")
    }
}

/// Serves `canned` for every request on a fresh loopback port.
pub(crate) async fn serve(canned: Canned) -> Server {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&recorded);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let canned = canned.clone();
            let seen = Arc::clone(&seen);
            async move { answer(canned, seen, method, uri, headers, body).await }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        recorded,
    }
}

async fn answer(
    canned: Canned,
    seen: Arc<Mutex<Vec<Recorded>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = ["authorization", "x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_start_matches("Bearer ").to_owned())
        .unwrap_or_default();
    seen.lock().expect("lock").push(Recorded {
        method,
        uri,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    if canned.hang {
        std::future::pending::<()>().await;
    }
    let mut bytes = canned.body;
    if canned.echo_key {
        bytes = String::from_utf8_lossy(&bytes)
            .replace("{key}", &key)
            .into_bytes();
    }
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(canned.chunk_bytes.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut response = Response::builder()
        .status(StatusCode::from_u16(canned.status).expect("status"))
        .header("content-type", canned.content_type);
    for (name, value) in canned.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .expect("response")
}

/// A provider of `kind` at `base_url`.
pub(crate) fn provider(kind: &str, base_url: &str) -> ProviderConfig {
    ProviderConfig {
        name: format!("test-{kind}"),
        kind: kind.to_owned(),
        base_url: base_url.to_owned(),
        api_key_env: None,
        priority: 1,
        timeout_ms: 5_000,
        monthly_budget_usd: 0.0,
        per_request_budget_usd: 0.0,
        circuit: CircuitConfig::default(),
        models: Vec::new(),
    }
}

/// The base URL each kind is configured with, given the server's origin.
pub(crate) fn base_for(kind: &str, origin: &str) -> String {
    match kind {
        "openai" => format!("{origin}/v1"),
        _ => origin.to_owned(),
    }
}

pub(crate) const KEY: &str = "sk-test-0123456789abcdef";

/// An adapter of `kind` talking to `server`, with [`KEY`].
pub(crate) fn adapter(kind: &str, server: &Server) -> Arc<dyn Adapter> {
    build_with_key(
        &provider(kind, &base_for(kind, &server.base)),
        Some(KEY),
        super::http_client(),
    )
    .expect("adapter builds")
}

/// A request with a system prompt, a short history and every option set.
pub(crate) fn request(model: &str) -> ChatRequest {
    let message = |role: &str, content: &str| ChatMessage {
        role: role.into(),
        content: content.into(),
    };
    ChatRequest {
        model: model.into(),
        messages: vec![
            message("system", "You are terse."),
            message("user", "Hello"),
            message("assistant", "Hi."),
            message("user", "Why is the sky blue?"),
        ],
        max_tokens: 64,
        temperature: Some(0.5),
        top_p: Some(0.9),
        stop: vec!["\n\n".into()],
    }
}

/// Everything a stream yields: its events, and the error that ended it if any.
pub(crate) async fn drain(
    adapter: &dyn Adapter,
    request: &ChatRequest,
) -> Result<(Vec<StreamEvent>, Option<ProviderError>), ProviderError> {
    let mut stream = adapter.stream(request, Duration::from_secs(5)).await?;
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                assert!(stream.next().await.is_none(), "nothing after an error");
                return Ok((events, Some(error)));
            }
        }
    }
    Ok((events, None))
}

/// The text of all deltas.
pub(crate) fn text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// Checks one recorded error fixture through both `complete` and `stream`.
pub(crate) async fn check_error(
    kind: &str,
    status: u16,
    file: &str,
    expected: ErrorKind,
    needle: &str,
) -> ProviderError {
    let mut canned = Canned::json(status, fixture(kind, file));
    if status == 429 {
        canned.headers.push(("retry-after", "20".into()));
    }
    let server = serve(canned).await;
    let adapter = adapter(kind, &server);
    let request = request("model-x");
    let error = adapter
        .complete(&request, Duration::from_secs(5))
        .await
        .expect_err("an error status fails");
    assert_eq!(error.kind, expected, "{kind} {file}: {error}");
    assert_eq!(error.status, Some(status));
    assert!(
        error.message.contains(needle),
        "{kind} {file}: {}",
        error.message
    );
    assert!(error.message.chars().count() <= super::classify::MESSAGE_CHARS_MAX + 1);
    if status == 429 {
        assert_eq!(error.retry_after, Some(Duration::from_secs(20)));
    }
    let streamed = match adapter.stream(&request, Duration::from_secs(5)).await {
        Err(error) => error,
        Ok(_) => panic!("{kind} {file}: a stream with an error status must not open"),
    };
    assert_eq!(streamed, error, "stream and complete classify alike");
    error
}

#[tokio::test]
async fn a_provider_that_never_answers_times_out_on_time() {
    let timeout = Duration::from_millis(300);
    // A hang never ends: any bound far below that proves the timeout works,
    // and a loaded CI machine can fire a timer a second late.
    let slack = Duration::from_secs(5);
    for (kind, content_type) in KINDS {
        let mut canned = Canned::new(200, content_type, Vec::new());
        canned.hang = true;
        let server = serve(canned).await;
        let adapter = adapter(kind, &server);
        let started = Instant::now();
        let error = adapter
            .complete(&request("m"), timeout)
            .await
            .expect_err("hangs");
        assert_eq!(error.kind, ErrorKind::Timeout, "{kind}: {error}");
        assert!(started.elapsed() < timeout + slack, "{kind} complete");
        let started = Instant::now();
        let error = match adapter.stream(&request("m"), timeout).await {
            Err(error) => error,
            Ok(_) => panic!("{kind}: a hanging stream cannot open"),
        };
        assert_eq!(error.kind, ErrorKind::Timeout, "{kind}: {error}");
        assert!(started.elapsed() < timeout + slack, "{kind} stream");
    }
}

#[tokio::test]
async fn a_body_that_stalls_times_out_the_whole_call() {
    // Status and headers arrive; the body never finishes. `complete` bounds both.
    let (listener, addr) = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        (listener, addr)
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _read = socket.read(&mut buffer).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"id\":";
                if socket.write_all(head.as_bytes()).await.is_ok() {
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    let origin = format!("http://{addr}");
    let timeout = Duration::from_millis(300);
    for (kind, _) in KINDS {
        let adapter = build_with_key(
            &provider(kind, &base_for(kind, &origin)),
            None,
            super::http_client(),
        )
        .expect("builds");
        let started = Instant::now();
        let error = adapter
            .complete(&request("m"), timeout)
            .await
            .expect_err("stalls");
        assert_eq!(error.kind, ErrorKind::Timeout, "{kind}: {error}");
        assert!(started.elapsed() < timeout + Duration::from_secs(5));
    }
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let origin = format!("http://{addr}");
    for (kind, _) in KINDS {
        let adapter = build_with_key(
            &provider(kind, &base_for(kind, &origin)),
            Some(KEY),
            super::http_client(),
        )
        .expect("builds");
        let error = adapter
            .complete(&request("m"), Duration::from_secs(2))
            .await
            .expect_err("refused");
        assert_eq!(error.kind, ErrorKind::Connect, "{kind}: {error}");
        assert!(!error.message.contains(KEY));
        let error = match adapter.stream(&request("m"), Duration::from_secs(2)).await {
            Err(error) => error,
            Ok(_) => panic!("{kind}: refused stream opened"),
        };
        assert_eq!(error.kind, ErrorKind::Connect, "{kind}: {error}");
    }
}

#[tokio::test]
async fn an_echoed_key_never_reaches_the_message() {
    // A vendor that quotes the whole key back (as OpenAI once did).
    let body = br#"{"error":{"message":"Incorrect API key provided: {key}.","type":"invalid_request_error"}}"#;
    for (kind, _) in KINDS {
        let mut canned = Canned::json(401, body.to_vec());
        canned.echo_key = true;
        let server = serve(canned).await;
        let adapter = adapter(kind, &server);
        let error = adapter
            .complete(&request("m"), Duration::from_secs(5))
            .await
            .expect_err("401");
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(!error.message.contains(KEY), "{kind}: {}", error.message);
        assert!(
            error.message.contains("[redacted]"),
            "{kind}: {}",
            error.message
        );
        assert!(!format!("{error:?}").contains(KEY));
        assert_eq!(server.recorded().len(), 1, "the key was sent");
    }
}

#[tokio::test]
async fn debug_never_prints_the_key() {
    let server = serve(Canned::json(200, b"{}".to_vec())).await;
    for (kind, _) in KINDS {
        let adapter = adapter(kind, &server);
        let debug = format!("{adapter:?}");
        assert!(!debug.contains(KEY), "{kind}: {debug}");
        assert!(!debug.contains("0123456789abcdef"), "{kind}: {debug}");
    }
}

#[tokio::test]
async fn a_success_that_does_not_parse_is_malformed() {
    for (kind, content_type) in KINDS {
        let server = serve(Canned::json(200, b"{\"id\": \"cut off".to_vec())).await;
        let error = adapter(kind, &server)
            .complete(&request("m"), Duration::from_secs(5))
            .await
            .expect_err("malformed");
        assert_eq!(error.kind, ErrorKind::Malformed, "{kind}: {error}");
        let garbage = if content_type == "text/event-stream" {
            b"data: {not json}\n\n".to_vec()
        } else {
            b"{not json}\n".to_vec()
        };
        let server = serve(Canned::new(200, content_type, garbage)).await;
        let (_events, error) = drain(adapter(kind, &server).as_ref(), &request("m"))
            .await
            .expect("opens");
        assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Malformed), "{kind}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    // Following it would carry the key header to wherever `location` points.
    let mut canned = Canned::json(307, Vec::new());
    canned
        .headers
        .push(("location", "http://127.0.0.1:9/steal".into()));
    for (kind, _) in KINDS {
        let server = serve(canned.clone()).await;
        let error = adapter(kind, &server)
            .complete(&request("m"), Duration::from_secs(5))
            .await
            .expect_err("a redirect fails");
        assert_eq!(
            (error.kind, error.status),
            (ErrorKind::Malformed, Some(307))
        );
        assert_eq!(server.recorded().len(), 1);
    }
}

#[tokio::test]
async fn an_empty_stream_is_truncated() {
    for (kind, content_type) in KINDS {
        let server = serve(Canned::new(200, content_type, Vec::new())).await;
        let (events, error) = drain(adapter(kind, &server).as_ref(), &request("m"))
            .await
            .expect("opens");
        assert!(events.is_empty());
        assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Malformed), "{kind}");
    }
}

#[test]
fn build_checks_kind_url_and_key() {
    let client = super::http_client();
    let error = build_with_key(&provider("cohere", "http://x"), None, client.clone())
        .expect_err("unknown kind");
    assert!(error.to_string().contains("unknown kind"), "{error}");
    for url in [
        "not a url",
        "ftp://host/",
        "http://host/v1?x=1",
        "mailto:a@b",
    ] {
        let error =
            build_with_key(&provider("openai", url), None, client.clone()).expect_err("bad url");
        assert!(error.to_string().contains("base_url"), "{url}: {error}");
    }
    let mut config = provider("anthropic", "http://127.0.0.1:1");
    config.api_key_env = Some("SOME_KEY_ENV".into());
    let error = build_with_key(&config, Some("bad\nkey"), client.clone()).expect_err("bad key");
    let text = error.to_string();
    assert!(
        text.contains("SOME_KEY_ENV") && !text.contains("bad\nkey"),
        "{text}"
    );
    assert!(build_with_key(&provider("mock", "http://127.0.0.1:1/v1"), None, client).is_ok());
}

#[tokio::test]
async fn build_reads_the_key_from_the_environment_once() {
    let server = serve(Canned::json(200, fixture("openai", "complete.json"))).await;
    let env = "TUTORLOG_TEST_ADAPTER_KEY_2F7A";
    // Only this test uses this variable, and `std::env` is internally locked.
    std::env::set_var(env, format!("  {KEY}\n"));
    let mut config = provider("openai", &base_for("openai", &server.base));
    config.api_key_env = Some(env.into());
    let adapter = super::build(&config, super::http_client()).expect("builds");
    std::env::set_var(env, "changed-after-build");
    adapter
        .complete(&request("m"), Duration::from_secs(5))
        .await
        .expect("answers");
    let sent = server.one();
    assert_eq!(
        sent.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    std::env::remove_var(env);
    // A named but unset variable: no key, no error.
    config.api_key_env = Some("TUTORLOG_TEST_UNSET_KEY_9C1D".into());
    let adapter = super::build(&config, super::http_client()).expect("builds without a key");
    adapter
        .complete(&request("m"), Duration::from_secs(5))
        .await
        .expect("answers");
    assert_eq!(server.recorded()[1].header("authorization"), None);
}

#[test]
fn the_client_installs_no_process_wide_crypto_provider() {
    // The KurrentDB client installs aws-lc-rs on connect, and DESIGN.md warns
    // that a provider installed before it can make the store client panic.
    // Building our client first must leave none behind.
    let _client = super::http_client();
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    #[cfg(feature = "kurrentdb")]
    {
        // What the KurrentDB client does on connect; then a client built after it
        // uses that provider instead of ring.
        let installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
        assert!(installed.is_ok(), "nothing was installed before");
        let _after = super::http_client();
    }
}
