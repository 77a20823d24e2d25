//! Test support: a scripted adapter.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    adapters::Adapter,
    types::{ChatRequest, ChatResponse, ErrorKind, EventStream, ProviderError, StreamEvent, Usage},
};

/// An adapter that answers from a script, then with its default.
#[derive(Debug)]
pub struct Scripted {
    script: Mutex<VecDeque<Result<ChatResponse, ProviderError>>>,
    fallback: Result<ChatResponse, ProviderError>,
    calls: AtomicU64,
    /// How long each whole answer takes.
    delay: Duration,
}

impl Scripted {
    pub fn ok(tokens: (u64, u64)) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(VecDeque::new()),
            fallback: Ok(response("fine", tokens)),
            calls: AtomicU64::new(0),
            delay: Duration::ZERO,
        })
    }

    pub fn failing(kind: ErrorKind) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(VecDeque::new()),
            fallback: Err(ProviderError::new(kind, "scripted failure")),
            calls: AtomicU64::new(0),
            delay: Duration::ZERO,
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn next(&self) -> Result<ChatResponse, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.script
            .lock()
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

pub fn response(text: &str, (input, output): (u64, u64)) -> ChatResponse {
    ChatResponse {
        model: "m".into(),
        content: text.into(),
        finish_reason: Some("stop".into()),
        usage: Some(Usage {
            input_tokens: input,
            output_tokens: output,
        }),
    }
}

#[async_trait]
impl Adapter for Scripted {
    async fn complete(
        &self,
        _request: &ChatRequest,
        _timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        let answer = self.next();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        answer
    }

    async fn stream(
        &self,
        _request: &ChatRequest,
        _timeout: Duration,
    ) -> Result<EventStream, ProviderError> {
        let answer = self.next()?;
        let mut events = vec![Ok(StreamEvent::Delta(answer.content.clone()))];
        events.push(Ok(StreamEvent::Finish(answer.finish_reason.clone())));
        if let Some(usage) = answer.usage {
            events.push(Ok(StreamEvent::Usage(usage)));
        }
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

impl Scripted {
    /// An adapter that always answers `text` with `tokens` of usage.
    pub fn answering(text: &str, tokens: (u64, u64)) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(VecDeque::new()),
            fallback: Ok(response(text, tokens)),
            calls: AtomicU64::new(0),
            delay: Duration::ZERO,
        })
    }

    /// Like [`Scripted::ok`], each whole answer taking `delay`.
    pub fn slow(tokens: (u64, u64), delay: Duration) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(VecDeque::new()),
            fallback: Ok(response("fine", tokens)),
            calls: AtomicU64::new(0),
            delay,
        })
    }
}
