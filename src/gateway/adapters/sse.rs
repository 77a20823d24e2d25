//! Incremental decoders for the two stream framings the vendors use: server-sent
//! events (OpenAI, Anthropic, Gemini) and newline-delimited JSON (Ollama).
//!
//! Network chunks split the bytes anywhere: inside a UTF-8 character, between the
//! `\r` and `\n` of a line ending, inside `data:`. Both decoders keep whatever
//! is incomplete and produce exactly the frames the whole byte stream holds,
//! however it was cut (the property test below checks this).

/// Longest line, and longest event (all its `data` lines), accepted. Vendors send
/// one token or one JSON object per event; anything this large is not a stream.
pub(crate) const FRAME_BYTES_MAX: usize = 1024 * 1024;

/// Why the bytes are not a valid stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// A line or event exceeded [`FRAME_BYTES_MAX`].
    #[error("a line or event exceeds {FRAME_BYTES_MAX} bytes")]
    TooLong,
    /// A line is not UTF-8.
    #[error("a line is not valid UTF-8")]
    NotUtf8,
}

/// Whether the consumer wants more frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// The end marker came; ignore anything after it.
    Stop,
}

/// Splits bytes into lines ending in LF, CRLF or CR (the SSE rule; NDJSON uses
/// LF, and a CR before it is dropped the same way).
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    /// The start of a line whose end has not arrived.
    partial: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` starting the next belongs to it.
    after_cr: bool,
}

impl LineSplitter {
    /// Feeds one chunk, calling `line` for each complete line (without its ending).
    /// Stops early, dropping the rest, when `line` returns [`Flow::Stop`].
    pub(crate) fn push<E: From<FrameError>>(
        &mut self,
        chunk: &[u8],
        mut line: impl FnMut(&str) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        let mut rest = chunk;
        // An empty chunk says nothing about what follows the `\r`.
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(end);
            let flow = if self.partial.is_empty() {
                line(utf8(head)?)?
            } else {
                self.extend(head)?;
                let flow = line(utf8(&self.partial)?);
                self.partial.clear();
                flow?
            };
            // `tail` starts with the line ending itself.
            rest = match tail {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.after_cr = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        self.extend(rest)?;
        Ok(Flow::Continue)
    }

    /// The stream ended: an unterminated last line is still a line.
    pub(crate) fn finish<E: From<FrameError>>(
        &mut self,
        mut line: impl FnMut(&str) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        self.after_cr = false;
        if self.partial.is_empty() {
            return Ok(Flow::Continue);
        }
        let partial = std::mem::take(&mut self.partial);
        line(utf8(&partial)?)
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if self.partial.len() + bytes.len() > FRAME_BYTES_MAX {
            return Err(FrameError::TooLong);
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)
}

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent<'a> {
    /// The `event:` field; `None` for the default type (`message`).
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// A server-sent events decoder (the WHATWG "event stream" interpretation):
/// `field: value` lines, one optional space after the colon, `:` comments, a
/// blank line dispatches; `id` and `retry` are ignored (we never reconnect).
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineSplitter,
    fields: SseFields,
}

#[derive(Debug, Default)]
struct SseFields {
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds one chunk, calling `event` for each complete event.
    pub(crate) fn push<E: From<FrameError>>(
        &mut self,
        chunk: &[u8],
        mut event: impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        let SseDecoder { lines, fields } = self;
        lines.push(chunk, |line| fields.line(line, &mut event))
    }

    /// The stream ended. Unlike the browser rule, an event whose final blank line
    /// never came is still dispatched: some servers end with `data: [DONE]\n`, and
    /// a cut-off event fails to parse anyway, so nothing truncated passes as whole.
    pub(crate) fn finish<E: From<FrameError>>(
        &mut self,
        mut event: impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        let SseDecoder { lines, fields } = self;
        if lines.finish(|line| fields.line(line, &mut event))? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        fields.dispatch(&mut event)
    }
}

impl SseFields {
    fn line<E: From<FrameError>>(
        &mut self,
        line: &str,
        event: &mut impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        if line.is_empty() {
            return self.dispatch(event);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            // A comment (the field name is empty): keep-alives such as `: ping`.
            "" => {}
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.data.len() + value.len() + 1 > FRAME_BYTES_MAX {
                    return Err(FrameError::TooLong.into());
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn dispatch<E>(
        &mut self,
        event: &mut impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        // An event with no data is not dispatched; its type is forgotten.
        let flow = if self.has_data {
            event(SseEvent {
                event: (!self.event.is_empty()).then_some(self.event.as_str()),
                data: &self.data,
            })
        } else {
            Ok(Flow::Continue)
        };
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        flow
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        event: Option<String>,
        data: String,
    }

    fn decode_sse(chunks: &[&[u8]]) -> Result<Vec<Owned>, FrameError> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        let mut sink = |e: SseEvent<'_>| -> Result<Flow, FrameError> {
            events.push(Owned {
                event: e.event.map(str::to_owned),
                data: e.data.to_owned(),
            });
            Ok(Flow::Continue)
        };
        for chunk in chunks {
            decoder.push(chunk, &mut sink)?;
        }
        decoder.finish(&mut sink)?;
        Ok(events)
    }

    fn decode_lines(chunks: &[&[u8]]) -> Result<Vec<String>, FrameError> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        let mut sink = |line: &str| -> Result<Flow, FrameError> {
            lines.push(line.to_owned());
            Ok(Flow::Continue)
        };
        for chunk in chunks {
            splitter.push(chunk, &mut sink)?;
        }
        splitter.finish(&mut sink)?;
        Ok(lines)
    }

    #[test]
    fn the_spec_examples_decode() {
        let events = decode_sse(&[
            b": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n",
            b"data:first\ndata: second\n\nevent: x\nid: 3\nretry: 10\n\n",
            b"data\n\n",
        ])
        .expect("decodes");
        assert_eq!(
            events,
            [
                Owned {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                Owned {
                    event: None,
                    data: "first\nsecond".into()
                },
                // `event: x` had no data: not dispatched, and its type does not leak.
                Owned {
                    event: None,
                    data: String::new()
                },
            ]
        );
    }

    #[test]
    fn a_last_event_without_blank_line_is_dispatched() {
        let events = decode_sse(&[b"data: one\n\ndata: [DONE]\n"]).expect("decodes");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "[DONE]");
    }

    #[test]
    fn cr_split_from_its_lf_is_one_line_ending() {
        let lines = decode_lines(&[b"a\r", b"\nb\r", b"c\n"]).expect("decodes");
        assert_eq!(lines, ["a", "b", "c"]);
        // An empty chunk between them changes nothing.
        let lines = decode_lines(&[b"a\r", b"", b"\nb\n"]).expect("decodes");
        assert_eq!(lines, ["a", "b"]);
    }

    #[test]
    fn utf8_split_inside_a_character_survives() {
        let text = "data: héllo ✓\n\n".as_bytes();
        let events = decode_sse(&[&text[..8], &text[8..13], &text[13..]]).expect("decodes");
        assert_eq!(events[0].data, "héllo ✓");
    }

    #[test]
    fn invalid_utf8_and_oversized_lines_fail() {
        assert_eq!(decode_lines(&[b"\xff\xfe\n"]), Err(FrameError::NotUtf8));
        let long = vec![b'a'; FRAME_BYTES_MAX + 1];
        assert_eq!(decode_lines(&[&long]), Err(FrameError::TooLong));
        let data_line = format!("data: {}\n", "b".repeat(FRAME_BYTES_MAX / 2));
        let twice = format!("{data_line}{data_line}\n");
        assert_eq!(decode_sse(&[twice.as_bytes()]), Err(FrameError::TooLong));
    }

    #[test]
    fn stop_drops_the_rest() {
        let mut splitter = LineSplitter::default();
        let mut seen = Vec::new();
        let flow = splitter
            .push(b"a\nSTOP\nb\n", |line: &str| -> Result<Flow, FrameError> {
                seen.push(line.to_owned());
                Ok(if line == "STOP" {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })
            .expect("splits");
        assert_eq!(flow, Flow::Stop);
        assert_eq!(seen, ["a", "STOP"]);
    }

    /// A valid stream: events with names, multi-line data, comments, and every
    /// line ending, so the splits land in all the awkward places.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
        let data_line = "[a-zA-Z0-9 {}\":,é✓]{0,12}";
        let event = (
            proptest::option::of("[a-z_]{1,10}"),
            proptest::collection::vec(data_line, 1..4),
            proptest::bool::ANY,
            ending,
        );
        proptest::collection::vec(event, 0..8).prop_map(|events| {
            let mut bytes = String::new();
            for (name, data, comment, end) in events {
                if comment {
                    bytes.push_str(": keep-alive");
                    bytes.push_str(end);
                }
                if let Some(name) = name {
                    bytes.push_str("event: ");
                    bytes.push_str(&name);
                    bytes.push_str(end);
                }
                for line in data {
                    bytes.push_str("data: ");
                    bytes.push_str(&line);
                    bytes.push_str(end);
                }
                bytes.push_str(end);
            }
            bytes.into_bytes()
        })
    }

    fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&bytes[start..point]);
            start = point;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    proptest! {
        #[test]
        fn any_split_decodes_the_same(
            bytes in stream(),
            cuts in proptest::collection::vec(0usize..10_000, 0..12),
        ) {
            let whole = decode_sse(&[&bytes]).expect("a valid stream decodes");
            let split = decode_sse(&split_at(&bytes, &cuts)).expect("a valid stream decodes");
            prop_assert_eq!(&whole, &split);
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(&whole, &decode_sse(&one_by_one).expect("decodes"));
        }

        #[test]
        fn any_split_gives_the_same_lines(
            bytes in stream(),
            cuts in proptest::collection::vec(0usize..10_000, 0..12),
        ) {
            let whole = decode_lines(&[&bytes]).expect("decodes");
            prop_assert_eq!(whole, decode_lines(&split_at(&bytes, &cuts)).expect("decodes"));
        }
    }
}
