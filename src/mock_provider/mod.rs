//! The built-in mock LLM provider: an OpenAI-compatible server on loopback with
//! settable latency, error rate, faults and token usage, for tests and
//! benchmarks. It is clearly a mock: every answer starts with `[mock]`, every
//! response carries `x-tutorlog-mock: 1`, and it says so when it starts.
//!
//! - `POST /v1/chat/completions`: whole or streamed (SSE) answers;
//!   `stream_options.include_usage` adds the usage chunk.
//! - `GET /v1/models`: the served models.
//! - `GET /mock/stats`: requests, errors and tokens served so far.
//! - `GET|POST /mock/config`: read or change `error_rate`, `latency_ms`,
//!   `jitter_ms`, `fault` and `drip_ms` while it runs.
//!
//! Fast on purpose (the zero-latency target of gateway benchmarks): the hot path
//! takes no lock, only atomics; the fault draw is a counter-based hash of the
//! seed and the request number, so a seed fixes the sequence of faults without a
//! shared RNG. See `docs/mock-provider.md`.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

mod answer;
mod server;

/// Longest `--latency-ms` / `--jitter-ms`.
pub const LATENCY_MS_MAX: u64 = 600_000;
/// Longest `--drip-ms`.
pub const DRIP_MS_MAX: u64 = 60_000;
/// Most `--completion-tokens`.
pub const COMPLETION_TOKENS_MAX: u32 = 100_000;
/// Most models in `--models`.
pub const MODELS_MAX: usize = 64;
/// How long a `hang` fault holds a request at most, so a forgotten mock cannot
/// hold sockets forever.
const HANG_MAX: Duration = Duration::from_secs(3600);

/// What the mock does to a request picked by `error_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// HTTP 500 with an OpenAI-style error body.
    #[value(name = "http500")]
    Http500,
    /// HTTP 429 with `Retry-After: 1`.
    #[value(name = "http429")]
    Http429,
    /// HTTP 200 whose body (or stream event) is not JSON.
    Malformed,
    /// An answer cut off mid-way: half a JSON body, or a stream without its end.
    Truncate,
    /// Never answers (until the mock stops).
    Hang,
    /// A correct answer, one token every `drip_ms` (a slow provider, not an error).
    Drip,
}

impl Fault {
    const ALL: [Fault; 6] = [
        Fault::Http500,
        Fault::Http429,
        Fault::Malformed,
        Fault::Truncate,
        Fault::Hang,
        Fault::Drip,
    ];

    fn index(self) -> u8 {
        match self {
            Fault::Http500 => 0,
            Fault::Http429 => 1,
            Fault::Malformed => 2,
            Fault::Truncate => 3,
            Fault::Hang => 4,
            Fault::Drip => 5,
        }
    }

    fn from_index(index: u8) -> Fault {
        Fault::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(Fault::Http500)
    }
}

/// How the mock behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MockOptions {
    /// Delay before every answer, in ms.
    pub latency_ms: u64,
    /// Up to this much more delay, drawn per request, in ms.
    pub jitter_ms: u64,
    /// Probability in [0, 1] that a request gets `fault`.
    pub error_rate: f64,
    /// Prompt tokens reported; `None`: a quarter of the message bytes, rounded up.
    pub prompt_tokens: Option<u32>,
    /// Completion tokens per answer, capped by the request's `max_tokens`.
    pub completion_tokens: u32,
    /// Seed of the fault and jitter draws.
    pub seed: u64,
    /// What a picked request gets.
    pub fault: Fault,
    /// Pause between tokens under [`Fault::Drip`], in ms.
    pub drip_ms: u64,
    /// Models served; empty: any model is accepted and `/v1/models` lists `mock`.
    pub models: Vec<String>,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            prompt_tokens: None,
            completion_tokens: 16,
            seed: 0,
            fault: Fault::Http500,
            drip_ms: 50,
            models: Vec::new(),
        }
    }
}

/// A value the mock cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct MockError {
    /// The option, as `/mock/config` names it (`error_rate`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl MockError {
    fn new(field: &'static str, message: impl Into<String>) -> MockError {
        MockError {
            field,
            message: message.into(),
        }
    }

    /// The same error naming the command-line flag (`--error-rate`).
    pub fn for_flag(&self) -> String {
        format!("--{} {}", self.field.replace('_', "-"), self.message)
    }
}

fn check_error_rate(value: f64) -> Result<(), MockError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(MockError::new(
            "error_rate",
            format!("must be between 0 and 1, got {value}"),
        ))
    }
}

fn check_at_most(field: &'static str, value: u64, max: u64) -> Result<(), MockError> {
    if value <= max {
        Ok(())
    } else {
        Err(MockError::new(
            field,
            format!("must be at most {max}, got {value}"),
        ))
    }
}

fn check_drip(value: u64) -> Result<(), MockError> {
    if (1..=DRIP_MS_MAX).contains(&value) {
        Ok(())
    } else {
        Err(MockError::new(
            "drip_ms",
            format!("must be between 1 and {DRIP_MS_MAX}, got {value}"),
        ))
    }
}

impl MockOptions {
    /// Checks every value; the error names the option.
    pub fn validate(&self) -> Result<(), MockError> {
        check_error_rate(self.error_rate)?;
        check_at_most("latency_ms", self.latency_ms, LATENCY_MS_MAX)?;
        check_at_most("jitter_ms", self.jitter_ms, LATENCY_MS_MAX)?;
        check_drip(self.drip_ms)?;
        if !(1..=COMPLETION_TOKENS_MAX).contains(&self.completion_tokens) {
            return Err(MockError::new(
                "completion_tokens",
                format!(
                    "must be between 1 and {COMPLETION_TOKENS_MAX}, got {}",
                    self.completion_tokens
                ),
            ));
        }
        if self.models.len() > MODELS_MAX {
            return Err(MockError::new(
                "models",
                format!("lists {} models, at most {MODELS_MAX}", self.models.len()),
            ));
        }
        if let Some(bad) = self
            .models
            .iter()
            .find(|m| m.trim().is_empty() || m.len() > 256)
        {
            return Err(MockError::new(
                "models",
                format!("has an empty or over-long name: {bad:?}"),
            ));
        }
        Ok(())
    }
}

/// A change to a running mock (`POST /mock/config`): every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// New error rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// New latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// New jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// New fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// New drip pace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drip_ms: Option<u64>,
}

/// The mock's counters (`GET /mock/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Chat completion requests received.
    pub requests: u64,
    /// Requests answered with anything but a whole, valid answer: injected
    /// faults (all but `drip`, which is slow but correct) and rejected requests.
    pub errors: u64,
    /// Prompt tokens of successful answers, as their usage reports them.
    pub prompt_tokens_served: u64,
    /// Completion tokens of successful answers, as their usage reports them.
    pub completion_tokens_served: u64,
}

/// Shared by all requests; atomics only, so the hot path never waits.
#[derive(Debug)]
struct State {
    error_rate_bits: AtomicU64,
    latency_ms: AtomicU64,
    jitter_ms: AtomicU64,
    fault: AtomicU8,
    drip_ms: AtomicU64,
    prompt_tokens: Option<u32>,
    completion_tokens: u32,
    seed: u64,
    models: Vec<String>,
    requests: AtomicU64,
    errors: AtomicU64,
    prompt_tokens_served: AtomicU64,
    completion_tokens_served: AtomicU64,
    /// Flips to `true` when the mock stops: hanging requests and drips end.
    stopping: watch::Receiver<bool>,
}

impl State {
    fn new(options: &MockOptions, stopping: watch::Receiver<bool>) -> State {
        State {
            error_rate_bits: AtomicU64::new(options.error_rate.to_bits()),
            latency_ms: AtomicU64::new(options.latency_ms),
            jitter_ms: AtomicU64::new(options.jitter_ms),
            fault: AtomicU8::new(options.fault.index()),
            drip_ms: AtomicU64::new(options.drip_ms),
            prompt_tokens: options.prompt_tokens,
            completion_tokens: options.completion_tokens,
            seed: options.seed,
            models: options.models.clone(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            prompt_tokens_served: AtomicU64::new(0),
            completion_tokens_served: AtomicU64::new(0),
            stopping,
        }
    }

    fn error_rate(&self) -> f64 {
        f64::from_bits(self.error_rate_bits.load(Ordering::Relaxed))
    }

    fn stats(&self) -> MockStats {
        MockStats {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            prompt_tokens_served: self.prompt_tokens_served.load(Ordering::Relaxed),
            completion_tokens_served: self.completion_tokens_served.load(Ordering::Relaxed),
        }
    }

    /// The live settings, all fields set.
    fn config(&self) -> MockConfig {
        MockConfig {
            error_rate: Some(self.error_rate()),
            latency_ms: Some(self.latency_ms.load(Ordering::Relaxed)),
            jitter_ms: Some(self.jitter_ms.load(Ordering::Relaxed)),
            fault: Some(Fault::from_index(self.fault.load(Ordering::Relaxed))),
            drip_ms: Some(self.drip_ms.load(Ordering::Relaxed)),
        }
    }

    /// Validates the whole change, then applies it; nothing changes on error.
    fn configure(&self, change: &MockConfig) -> Result<MockConfig, MockError> {
        if let Some(rate) = change.error_rate {
            check_error_rate(rate)?;
        }
        if let Some(latency) = change.latency_ms {
            check_at_most("latency_ms", latency, LATENCY_MS_MAX)?;
        }
        if let Some(jitter) = change.jitter_ms {
            check_at_most("jitter_ms", jitter, LATENCY_MS_MAX)?;
        }
        if let Some(drip) = change.drip_ms {
            check_drip(drip)?;
        }
        if let Some(fault) = change.fault {
            self.fault.store(fault.index(), Ordering::Relaxed);
        }
        if let Some(latency) = change.latency_ms {
            self.latency_ms.store(latency, Ordering::Relaxed);
        }
        if let Some(jitter) = change.jitter_ms {
            self.jitter_ms.store(jitter, Ordering::Relaxed);
        }
        if let Some(drip) = change.drip_ms {
            self.drip_ms.store(drip, Ordering::Relaxed);
        }
        // Last, so a request that sees the new rate also sees the new fault.
        if let Some(rate) = change.error_rate {
            self.error_rate_bits
                .store(rate.to_bits(), Ordering::Release);
        }
        Ok(self.config())
    }
}

/// A running mock, for in-process tests.
#[derive(Debug)]
pub struct MockHandle {
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MockHandle {
    /// The counters so far.
    pub fn stats(&self) -> MockStats {
        self.state.stats()
    }

    /// Changes behaviour at runtime, as `POST /mock/config` does.
    pub fn configure(&self, change: &MockConfig) -> Result<MockConfig, MockError> {
        self.state.configure(change)
    }

    /// Stops serving: hanging requests are released, then the server drains.
    pub async fn stop(self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

/// Starts a mock on `127.0.0.1`, on a free port.
pub async fn spawn(options: MockOptions) -> std::io::Result<(SocketAddr, MockHandle)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    spawn_on(listener, options)
}

/// Starts a mock on an already bound listener.
pub fn spawn_on(
    listener: TcpListener,
    options: MockOptions,
) -> std::io::Result<(SocketAddr, MockHandle)> {
    options
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let addr = listener.local_addr()?;
    let (stop, stopping) = watch::channel(false);
    let state = Arc::new(State::new(&options, stopping.clone()));
    let task = tokio::spawn(server::serve(listener, Arc::clone(&state), stopping));
    Ok((addr, MockHandle { state, stop, task }))
}

/// `tutorlog mock-provider`.
#[derive(Debug, Clone, clap::Args)]
pub struct MockProviderArgs {
    /// Address to listen on; port 0 picks a free one. The bound address is printed
    /// on stdout as `mock-provider listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Delay before every answer, in ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Up to this much extra delay per request, in ms.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Probability (0..=1) that a request gets the --fault.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Prompt tokens to report [default: ceil(message bytes / 4)].
    #[arg(long)]
    pub prompt_tokens: Option<u32>,
    /// Completion tokens per answer (capped by the request's max_tokens).
    #[arg(long, default_value_t = 16)]
    pub completion_tokens: u32,
    /// Seed for the fault and jitter draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// What a request picked by --error-rate gets.
    #[arg(long, value_enum, default_value = "http500")]
    pub fault: Fault,
    /// Pause between tokens under --fault drip, in ms.
    #[arg(long, default_value_t = 50)]
    pub drip_ms: u64,
    /// Models served, comma-separated [default: any model].
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
}

impl MockProviderArgs {
    /// The options these flags mean, validated; the error names the flag.
    pub fn options(&self) -> Result<MockOptions, String> {
        let options = MockOptions {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            error_rate: self.error_rate,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            seed: self.seed,
            fault: self.fault,
            drip_ms: self.drip_ms,
            models: self.models.iter().map(|m| m.trim().to_owned()).collect(),
        };
        options.validate().map_err(|e| e.for_flag())?;
        Ok(options)
    }
}

/// Runs `tutorlog mock-provider` until SIGINT or SIGTERM.
pub fn run(args: &MockProviderArgs) -> anyhow::Result<()> {
    let options = args.options().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tutorlog-mock")
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("mock-provider: cannot listen on {}: {e}", args.listen))?;
        let (addr, handle) = spawn_on(listener, options.clone())?;
        tracing::warn!(
            address = %addr,
            latency_ms = options.latency_ms,
            jitter_ms = options.jitter_ms,
            error_rate = options.error_rate,
            fault = ?options.fault,
            completion_tokens = options.completion_tokens,
            seed = options.seed,
            "MOCK LLM provider, not a real model: answers start with [mock]"
        );
        // Machine-readable, for scripts and tests that asked for port 0.
        println!("mock-provider listening on http://{addr}");
        stop_signal().await;
        tracing::info!(stats = ?handle.stats(), "mock-provider stopping");
        handle.stop().await?;
        Ok(())
    })
}

async fn stop_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures::StreamExt;

    use super::*;
    use crate::{
        config::{CircuitConfig, ProviderConfig},
        gateway::{
            adapters::{build, http_client, Adapter},
            types::{ChatMessage, ChatRequest, ErrorKind, StreamEvent, Usage},
        },
    };

    fn adapter(addr: SocketAddr) -> Arc<dyn Adapter> {
        let provider = ProviderConfig {
            name: "mock".into(),
            kind: "mock".into(),
            base_url: format!("http://{addr}/v1"),
            api_key_env: None,
            priority: 1,
            timeout_ms: 5_000,
            monthly_budget_usd: 0.0,
            per_request_budget_usd: 0.0,
            circuit: CircuitConfig::default(),
            models: Vec::new(),
        };
        build(&provider, http_client()).expect("adapter")
    }

    fn request(max_tokens: u32) -> ChatRequest {
        ChatRequest {
            model: "mock".into(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "twelve bytes".into(),
            }],
            max_tokens,
            temperature: None,
            top_p: None,
            stop: Vec::new(),
        }
    }

    async fn outcomes(seed: u64) -> Vec<bool> {
        let (addr, handle) = spawn(MockOptions {
            seed,
            error_rate: 0.5,
            ..MockOptions::default()
        })
        .await
        .expect("spawn");
        let adapter = adapter(addr);
        let mut failed = Vec::new();
        for _ in 0..40 {
            let result = adapter.complete(&request(4), Duration::from_secs(5)).await;
            if let Err(error) = &result {
                assert_eq!(error.kind, ErrorKind::Server);
            }
            failed.push(result.is_err());
        }
        let stats = handle.stats();
        assert_eq!(stats.requests, 40);
        let count = failed.iter().filter(|f| **f).count() as u64;
        assert_eq!(stats.errors, count);
        // Tokens only for the successes: 3 prompt (12 bytes / 4), 4 completion.
        assert_eq!(stats.prompt_tokens_served, 3 * (40 - count));
        assert_eq!(stats.completion_tokens_served, 4 * (40 - count));
        handle.stop().await.expect("stops");
        failed
    }

    #[tokio::test]
    async fn a_seed_fixes_the_fault_sequence() {
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await);
        assert_ne!(first, outcomes(8).await);
        let failures = first.iter().filter(|f| **f).count();
        assert!((8..=32).contains(&failures), "{failures} of 40 at rate 0.5");
    }

    #[tokio::test]
    async fn drip_paces_a_correct_answer() {
        let (addr, handle) = spawn(MockOptions {
            error_rate: 1.0,
            fault: Fault::Drip,
            drip_ms: 20,
            completion_tokens: 5,
            ..MockOptions::default()
        })
        .await
        .expect("spawn");
        let adapter = adapter(addr);
        let started = Instant::now();
        let mut stream = adapter
            .stream(&request(100), Duration::from_secs(5))
            .await
            .expect("opens");
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event.expect("no error"));
        }
        // role, 5 tokens, finish, usage, done: 8 pauses of 20 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(140),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Usage(Usage {
                input_tokens: 3,
                output_tokens: 5
            }))
        );
        let answer = adapter
            .complete(&request(100), Duration::from_secs(5))
            .await
            .expect("a drip is an answer");
        assert_eq!(answer.content, "[mock] lorem ipsum dolor sit");
        let stats = handle.stats();
        assert_eq!((stats.errors, stats.completion_tokens_served), (0, 10));
        // A client that gives up before the drip ends sees a timeout.
        let error = adapter
            .complete(&request(100), Duration::from_millis(30))
            .await
            .expect_err("too slow");
        assert_eq!(error.kind, ErrorKind::Timeout);
        handle.stop().await.expect("stops");
    }

    #[tokio::test]
    async fn stopping_releases_hanging_requests() {
        let (addr, handle) = spawn(MockOptions {
            error_rate: 1.0,
            fault: Fault::Hang,
            ..MockOptions::default()
        })
        .await
        .expect("spawn");
        let pending = tokio::spawn(async move {
            http_client()
                .post(format!("http://{addr}/v1/chat/completions"))
                .body(r#"{"model":"m","messages":[]}"#)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        // Stop only once the request is in the handler, hanging.
        let deadline = Instant::now() + Duration::from_secs(30);
        while handle.stats().requests == 0 {
            assert!(Instant::now() < deadline, "the request never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pending.is_finished(), "hangs");
        let started = Instant::now();
        handle.stop().await.expect("stops");
        // The hang lasts an hour; the margin is for a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(pending.await.expect("joins").expect("answered"), 503);
    }

    #[tokio::test]
    async fn configure_checks_everything_before_changing_anything() {
        let (_addr, handle) = spawn(MockOptions::default()).await.expect("spawn");
        let error = handle
            .configure(&MockConfig {
                latency_ms: Some(5),
                error_rate: Some(1.5),
                ..MockConfig::default()
            })
            .expect_err("bad rate");
        assert_eq!(error.field, "error_rate");
        let now = handle.configure(&MockConfig::default()).expect("no change");
        assert_eq!((now.latency_ms, now.error_rate), (Some(0), Some(0.0)));
        let now = handle
            .configure(&MockConfig {
                fault: Some(Fault::Truncate),
                error_rate: Some(0.25),
                ..MockConfig::default()
            })
            .expect("valid");
        assert_eq!(
            (now.fault, now.error_rate),
            (Some(Fault::Truncate), Some(0.25))
        );
        handle.stop().await.expect("stops");
    }

    #[test]
    fn flags_are_validated_by_name() {
        let args = |edit: fn(&mut MockProviderArgs)| {
            let mut args = MockProviderArgs {
                listen: "127.0.0.1:0".parse().expect("addr"),
                latency_ms: 0,
                jitter_ms: 0,
                error_rate: 0.0,
                prompt_tokens: None,
                completion_tokens: 16,
                seed: 0,
                fault: Fault::Http500,
                drip_ms: 50,
                models: Vec::new(),
            };
            edit(&mut args);
            args.options()
        };
        assert!(args(|_| {}).is_ok());
        let error = args(|a| a.error_rate = 1.5).expect_err("rate");
        assert!(
            error.starts_with("--error-rate must be between 0 and 1"),
            "{error}"
        );
        assert!(args(|a| a.error_rate = f64::NAN).is_err());
        let error = args(|a| a.completion_tokens = 0).expect_err("tokens");
        assert!(error.starts_with("--completion-tokens"), "{error}");
        let error = args(|a| a.drip_ms = 0).expect_err("drip");
        assert!(error.starts_with("--drip-ms"), "{error}");
        let error = args(|a| a.latency_ms = LATENCY_MS_MAX + 1).expect_err("latency");
        assert!(error.starts_with("--latency-ms"), "{error}");
        let error = args(|a| a.models = vec!["a".into(), " ".into()]).expect_err("models");
        assert!(error.starts_with("--models"), "{error}");
    }
}
