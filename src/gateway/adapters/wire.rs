//! What every adapter does the same way: send under a deadline, read a bounded
//! body, and turn a streamed body into [`StreamEvent`]s through a vendor parser.

use std::{collections::VecDeque, time::Duration};

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{
    classify::{classify, ApiKey, Failure},
    sse::{Flow, FrameError, LineSplitter, SseDecoder, SseEvent},
};
use crate::gateway::types::{EventStream, ProviderError, StreamEvent};

/// Largest whole (non-streamed) answer accepted.
pub(crate) const RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest error body read; the message keeps far less, the rest is noise.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// What an adapter needs to report failures: its protocol name and its key.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    /// The protocol, as messages name it (`openai`, `anthropic`, ...).
    pub protocol: &'static str,
    /// Redacted from everything.
    pub key: ApiKey,
}

impl Reporter {
    /// Classifies one failure.
    pub(crate) fn error(&self, failure: Failure<'_>) -> ProviderError {
        classify(self.protocol, failure, &self.key)
    }

    /// A body or frame that does not parse.
    pub(crate) fn undecodable(&self, what: &'static str, detail: impl ToString) -> ProviderError {
        self.error(Failure::Undecodable {
            what,
            detail: detail.to_string(),
        })
    }

    /// Parses JSON, classifying a failure as `Malformed`.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        what: &'static str,
        bytes: &[u8],
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(bytes).map_err(|e| self.undecodable(what, e))
    }
}

/// Sends the request and waits for its status and headers until `deadline`. A
/// non-success status is classified here, with as much of its body as arrives
/// before the deadline.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    deadline: Instant,
    waited: Duration,
    reporter: &Reporter,
) -> Result<reqwest::Response, ProviderError> {
    let response = match tokio::time::timeout_at(deadline, request.send()).await {
        Err(_elapsed) => {
            return Err(reporter.error(Failure::Deadline {
                waited,
                stage: "status and headers",
            }))
        }
        Ok(Err(error)) => return Err(reporter.error(Failure::Transport(&error))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    // An error body that stalls or breaks still leaves the status to classify by.
    let body =
        match tokio::time::timeout_at(deadline, read_capped(response, ERROR_BODY_BYTES_MAX, true))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) | Err(_) => Vec::new(),
        };
    Err(reporter.error(Failure::Status {
        status: status.as_u16(),
        headers: &headers,
        body: &body,
    }))
}

/// Reads the whole body until `deadline`, at most [`RESPONSE_BYTES_MAX`].
pub(crate) async fn read_body(
    response: reqwest::Response,
    deadline: Instant,
    waited: Duration,
    reporter: &Reporter,
) -> Result<Vec<u8>, ProviderError> {
    match tokio::time::timeout_at(deadline, read_capped(response, RESPONSE_BYTES_MAX, false)).await
    {
        Err(_elapsed) => Err(reporter.error(Failure::Deadline {
            waited,
            stage: "whole answer",
        })),
        Ok(Err(BodyError::Transport(error))) => Err(reporter.error(Failure::Transport(&error))),
        Ok(Err(BodyError::TooLarge)) => Err(reporter.undecodable(
            "the answer",
            format!("larger than {RESPONSE_BYTES_MAX} bytes"),
        )),
        Ok(Ok(body)) => Ok(body),
    }
}

enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads chunks up to `limit` bytes; past it, either stops (`keep_prefix`, for
/// error bodies) or fails.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    keep_prefix: bool,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            if keep_prefix {
                let room = limit - body.len();
                body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                return Ok(body);
            }
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How a streamed body is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Server-sent events.
    Sse,
    /// One JSON object per line.
    Ndjson,
}

/// A vendor's stream grammar: frames in, [`StreamEvent`]s out.
pub(crate) trait StreamParser: Send + 'static {
    /// One frame: an SSE event (`event` is its type) or an NDJSON line
    /// (`event` is `None`). Returns [`Flow::Stop`] at the vendor's end marker.
    fn frame(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, ProviderError>;

    /// The body ended without [`Flow::Stop`]. Succeeds only where the end of the
    /// body is itself the end marker (Gemini, after its final candidate).
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError>;
}

enum Decoder {
    Sse(SseDecoder),
    Ndjson(LineSplitter),
}

/// Frame errors and parser errors travel together through the decoders.
enum Stop {
    Frame(FrameError),
    Provider(ProviderError),
}

impl From<FrameError> for Stop {
    fn from(error: FrameError) -> Self {
        Stop::Frame(error)
    }
}

impl Decoder {
    fn push<P: StreamParser>(
        &mut self,
        chunk: &[u8],
        parser: &mut P,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, Stop> {
        match self {
            Decoder::Sse(decoder) => decoder.push(chunk, |e: SseEvent<'_>| {
                parser.frame(e.event, e.data, out).map_err(Stop::Provider)
            }),
            Decoder::Ndjson(lines) => lines.push(chunk, |line: &str| ndjson(line, parser, out)),
        }
    }

    fn finish<P: StreamParser>(
        &mut self,
        parser: &mut P,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, Stop> {
        match self {
            Decoder::Sse(decoder) => decoder.finish(|e: SseEvent<'_>| {
                parser.frame(e.event, e.data, out).map_err(Stop::Provider)
            }),
            Decoder::Ndjson(lines) => lines.finish(|line: &str| ndjson(line, parser, out)),
        }
    }
}

fn ndjson<P: StreamParser>(
    line: &str,
    parser: &mut P,
    out: &mut VecDeque<StreamEvent>,
) -> Result<Flow, Stop> {
    if line.trim().is_empty() {
        return Ok(Flow::Continue);
    }
    parser.frame(None, line, out).map_err(Stop::Provider)
}

struct State<S, P> {
    bytes: S,
    decoder: Decoder,
    parser: P,
    reporter: Reporter,
    ready: VecDeque<StreamEvent>,
    /// The error to yield once `ready` is drained; then the stream ends.
    failed: Option<ProviderError>,
    done: bool,
}

impl<S, B, P> State<S, P>
where
    S: Stream<Item = Result<B, ProviderError>> + Send + Unpin + 'static,
    B: AsRef<[u8]>,
    P: StreamParser,
{
    /// Reads until there is something to yield or the stream is over.
    async fn advance(&mut self) {
        while self.ready.is_empty() && !self.done {
            let result = match self.bytes.next().await {
                Some(Ok(chunk)) => {
                    self.decoder
                        .push(chunk.as_ref(), &mut self.parser, &mut self.ready)
                }
                Some(Err(error)) => Err(Stop::Provider(error)),
                None => {
                    self.done = true;
                    match self.decoder.finish(&mut self.parser, &mut self.ready) {
                        Ok(Flow::Stop) => Ok(Flow::Stop),
                        Ok(Flow::Continue) => self
                            .parser
                            .end(&mut self.ready)
                            .map(|()| Flow::Stop)
                            .map_err(Stop::Provider),
                        Err(stop) => Err(stop),
                    }
                }
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => self.done = true,
                Err(stop) => {
                    self.done = true;
                    self.failed = Some(match stop {
                        Stop::Provider(error) => error,
                        Stop::Frame(error) => self.reporter.undecodable("the stream", error),
                    });
                }
            }
        }
    }
}

/// Decodes a streamed body with `parser`. The stream yields events until the
/// vendor's end marker, then ends; a break before it yields one error and ends.
pub(crate) fn event_stream<S, B, P>(
    bytes: S,
    framing: Framing,
    parser: P,
    reporter: Reporter,
) -> EventStream
where
    S: Stream<Item = Result<B, ProviderError>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
    P: StreamParser,
{
    let state = State {
        bytes,
        decoder: match framing {
            Framing::Sse => Decoder::Sse(SseDecoder::default()),
            Framing::Ndjson => Decoder::Ndjson(LineSplitter::default()),
        },
        parser,
        reporter,
        ready: VecDeque::new(),
        failed: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        state.advance().await;
        if let Some(event) = state.ready.pop_front() {
            return Some((Ok(event), state));
        }
        let error = state.failed.take()?;
        Some((Err(error), state))
    }))
}

/// A response's body as the chunk stream [`event_stream`] takes.
pub(crate) fn body_chunks(
    response: reqwest::Response,
    reporter: Reporter,
) -> impl Stream<Item = Result<impl AsRef<[u8]> + Send + 'static, ProviderError>> + Send + Unpin + 'static
{
    response
        .bytes_stream()
        .map(move |chunk| chunk.map_err(|error| reporter.error(Failure::Transport(&error))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::types::ErrorKind;

    /// Lines `say X` become deltas, `end` is the end marker, `boom` fails.
    struct Toy;

    impl StreamParser for Toy {
        fn frame(
            &mut self,
            _event: Option<&str>,
            data: &str,
            out: &mut VecDeque<StreamEvent>,
        ) -> Result<Flow, ProviderError> {
            match data {
                "end" => Ok(Flow::Stop),
                "boom" => Err(ProviderError::new(ErrorKind::Server, "boom")),
                other => {
                    out.push_back(StreamEvent::Delta(other.to_owned()));
                    Ok(Flow::Continue)
                }
            }
        }

        fn end(&mut self, _out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
            Err(ProviderError::new(ErrorKind::Malformed, "no end"))
        }
    }

    fn reporter() -> Reporter {
        Reporter {
            protocol: "toy",
            key: ApiKey::default(),
        }
    }

    async fn collect(
        chunks: Vec<Result<Vec<u8>, ProviderError>>,
    ) -> Vec<Result<String, ErrorKind>> {
        let stream = event_stream(
            futures::stream::iter(chunks),
            Framing::Ndjson,
            Toy,
            reporter(),
        );
        stream
            .map(|item| match item {
                Ok(StreamEvent::Delta(text)) => Ok(text),
                Ok(other) => Ok(format!("{other:?}")),
                Err(error) => Err(error.kind),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn ends_at_the_marker_and_ignores_the_rest() {
        let items = collect(vec![Ok(b"a\nb".to_vec()), Ok(b"\nend\nc\n".to_vec())]).await;
        assert_eq!(items, [Ok("a".into()), Ok("b".into())]);
    }

    #[tokio::test]
    async fn a_body_without_the_marker_fails_once() {
        let items = collect(vec![Ok(b"a\n".to_vec())]).await;
        assert_eq!(items, [Ok("a".into()), Err(ErrorKind::Malformed)]);
    }

    #[tokio::test]
    async fn parser_and_transport_errors_end_the_stream() {
        let items = collect(vec![Ok(b"a\nboom\nb\n".to_vec())]).await;
        assert_eq!(items, [Ok("a".into()), Err(ErrorKind::Server)]);
        let items = collect(vec![
            Ok(b"a\n".to_vec()),
            Err(ProviderError::new(ErrorKind::Connect, "reset")),
            Ok(b"b\n".to_vec()),
        ])
        .await;
        assert_eq!(items, [Ok("a".into()), Err(ErrorKind::Connect)]);
    }

    #[tokio::test]
    async fn bad_bytes_are_malformed() {
        let items = collect(vec![Ok(b"\xff\n".to_vec())]).await;
        assert_eq!(items, [Err(ErrorKind::Malformed)]);
    }
}
