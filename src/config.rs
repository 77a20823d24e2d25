//! The daemon's configuration: one TOML file, every key with a default except
//! providers, validated at start with errors that name the key.
//!
//! `tutorlog.example.toml` at the repository root documents every key. Command-line
//! flags and their `TUTORLOG_*` environment variables override the file.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this shape (unknown key, wrong type, ...).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A key has a value outside what it accepts.
    #[error("invalid config: `{key}` {message}")]
    Invalid {
        /// Dotted key, e.g. `server.listen`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[learning]`.
    pub learning: LearningConfig,
    /// `[gateway]`.
    pub gateway: GatewayConfig,
    /// `[projections]`.
    pub projections: ProjectionsConfig,
    /// `[[providers]]`; none by default.
    pub providers: Vec<ProviderConfig>,
}

/// `[server]`: where the daemon listens and keeps its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Directory for the log (`log/`) and projection snapshots (`projections/`).
    pub data_dir: PathBuf,
    /// Environment variable holding the admin bearer token.
    pub admin_token_env: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request taking longer than this is answered 503.
    pub request_timeout_secs: u64,
    /// How long a query with `min_position` waits for projections at most, in ms.
    pub min_position_wait_ms: u64,
    /// Origins allowed to call the API from a browser (CORS). Empty (the default)
    /// sends no CORS headers, so browsers refuse cross-origin calls.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            admin_token_env: "TUTORLOG_ADMIN_TOKEN".into(),
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 60,
            min_position_wait_ms: 2000,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `[store]`: which log backend to use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `embedded` (default) or `kurrentdb`.
    pub backend: String,
    /// KurrentDB connection string, for `backend = "kurrentdb"`.
    pub kurrentdb_url: Option<String>,
    /// Size at which the embedded log starts a new segment file.
    pub segment_bytes: u64,
    /// Embedded log: how long (µs) a write nobody waits on (a gateway call's record,
    /// its commit in fast mode, a circuit outcome) may be held back to share an
    /// fsync with later writes; any write a caller waits on ends the wait at once.
    /// 0 turns it off; at most 100,000.
    pub linger_micros: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: "embedded".into(),
            kurrentdb_url: None,
            segment_bytes: tutorlog_store::embedded::SEGMENT_BYTES_DEFAULT,
            linger_micros: tutorlog_store::embedded::LINGER_DEFAULT.as_micros() as u64,
        }
    }
}

/// `[learning]`: the learning domain's defaults (seed 000).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// Mastery score (0–100) at which a focus area counts as mastered.
    pub mastery_threshold: f64,
    /// Fraction of mastery lost per week without practice.
    pub weekly_decay: f64,
    /// Rounds in a session when the request does not say.
    pub default_rounds: u32,
    /// A session expires after this long.
    pub session_timeout_secs: u64,
    /// A learner's actor is stopped (passivated) after this long without a request;
    /// its state comes back from the log on the next one.
    pub learner_idle_secs: u64,
    /// Batch algorithm runs (difficulty recalibration, mistake mining) every this many
    /// seconds; 0 turns the schedule off (they still run on demand).
    pub batch_every_secs: u64,
    /// Ask an LLM, through the gateway, for tutor feedback on each graded round
    /// (on top of the rubric's). With no affordable provider the session pauses
    /// with reason `budget` (or `provider` when none is healthy).
    pub llm_feedback: bool,
    /// The gateway model for that feedback: `auto`, `provider/model` or a name.
    pub llm_feedback_model: String,
    /// `max_tokens` of a feedback call.
    pub llm_feedback_max_tokens: u32,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            mastery_threshold: 80.0,
            weekly_decay: 0.02,
            default_rounds: 5,
            session_timeout_secs: 3600,
            learner_idle_secs: 60,
            batch_every_secs: 86_400,
            llm_feedback: false,
            llm_feedback_model: "auto".into(),
            llm_feedback_max_tokens: 200,
        }
    }
}

/// `[projections]`: how often read models are snapshotted, and how they share
/// the CPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionsConfig {
    /// Snapshot after this many applied events.
    pub snapshot_every_events: u64,
    /// ... or after this many seconds with new events.
    pub snapshot_every_secs: u64,
    /// How much lower than the request path the projections' threads run, as a
    /// nice increment (0-19; 0 = the same priority). Linux only.
    pub nice: i32,
}

impl Default for ProjectionsConfig {
    fn default() -> Self {
        ProjectionsConfig {
            snapshot_every_events: 100_000,
            snapshot_every_secs: 60,
            nice: 10,
        }
    }
}

/// `[gateway]`: the OpenAI-compatible gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// API keys accepted on `/v1/*`.
    pub api_keys: Vec<ApiKeyConfig>,
    /// `strict`: a reservation is durable before the provider is called;
    /// `fast`: durable with the commit.
    pub reservations: String,
    /// `max_tokens` sent to the provider when the client sets none; it bounds the
    /// cost estimate a call reserves.
    pub default_max_tokens: u32,
    /// Largest `max_tokens` a client may ask for.
    pub max_tokens_limit: u32,
    /// Record each call's messages and answer text in `execution.recorded` (for
    /// audits and `export dataset`); off keeps only metadata in the log.
    pub record_content: bool,
    /// A session keeps its provider (session continuity) for this long after its
    /// last call.
    pub session_ttl_secs: u64,
    /// Run the benchmark suite every this many hours (1–12); 0 = only on demand
    /// (`POST /api/v1/admin/run-benchmarks`).
    pub benchmark_every_hours: u64,
    /// Requests per second each API key may make on `/v1/*` (a token bucket);
    /// 0 = no limit.
    pub rate_limit_per_sec: f64,
    /// Burst a key may make above its rate.
    pub rate_limit_burst: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            api_keys: Vec::new(),
            reservations: "strict".into(),
            default_max_tokens: 1024,
            max_tokens_limit: 32_768,
            record_content: true,
            session_ttl_secs: 3600,
            benchmark_every_hours: 0,
            rate_limit_per_sec: 0.0,
            rate_limit_burst: 100,
        }
    }
}

/// One gateway API key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The key itself (local use only; prefer `key_env`).
    #[serde(default, skip_serializing)]
    pub key: Option<String>,
    /// Environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// User the key's spend is attributed to.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, used in stream names and `provider/model`.
    pub name: String,
    /// `openai` | `anthropic` | `gemini` | `ollama` | `mock`.
    pub kind: String,
    /// Base URL of the API.
    pub base_url: String,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Lower is tried first.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Per-call timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Monthly budget in USD; 0 = free provider, never blocks.
    #[serde(default)]
    pub monthly_budget_usd: f64,
    /// Per-request budget in USD; 0 = no limit.
    #[serde(default)]
    pub per_request_budget_usd: f64,
    /// Circuit breaker settings.
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// Models served, with prices.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
}

fn default_priority() -> u32 {
    1
}
fn default_timeout_ms() -> u64 {
    30_000
}

/// A provider's circuit breaker settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Failures that open the circuit.
    pub failure_threshold: u32,
    /// Successes in half-open that close it.
    pub success_threshold: u32,
    /// Seconds open before half-open.
    pub open_secs: u64,
    /// Trial calls allowed while half-open.
    pub half_open_max_calls: u32,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failure_threshold: 5,
            success_threshold: 2,
            open_secs: 60,
            half_open_max_calls: 3,
        }
    }
}

/// A model and its prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model name as the provider knows it.
    pub name: String,
    /// USD per million input tokens.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    /// USD per million output tokens.
    #[serde(default)]
    pub output_usd_per_mtok: f64,
}

const PROVIDER_KINDS: &[&str] = &["openai", "anthropic", "gemini", "ollama", "mock"];

impl Config {
    /// Parses TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "server.listen",
                format!(
                    "must be HOST:PORT with an IP address ({e}): {:?}",
                    self.server.listen
                ),
            )
        })?;
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir", "must not be empty"));
        }
        if self.server.body_limit_bytes == 0 {
            return Err(invalid("server.body_limit_bytes", "must be positive"));
        }
        if self.server.request_timeout_secs == 0 {
            return Err(invalid("server.request_timeout_secs", "must be positive"));
        }
        match self.store.backend.as_str() {
            "embedded" => {}
            "kurrentdb" => {
                if self.store.kurrentdb_url.is_none() {
                    return Err(invalid(
                        "store.kurrentdb_url",
                        "is required when store.backend = \"kurrentdb\"",
                    ));
                }
            }
            other => {
                return Err(invalid(
                    "store.backend",
                    format!("must be \"embedded\" or \"kurrentdb\", got {other:?}"),
                ))
            }
        }
        if !(4096..=tutorlog_store::embedded::SEGMENT_BYTES_MAX).contains(&self.store.segment_bytes)
        {
            return Err(invalid(
                "store.segment_bytes",
                format!(
                    "must be between 4096 and {}",
                    tutorlog_store::embedded::SEGMENT_BYTES_MAX
                ),
            ));
        }
        let linger_max = tutorlog_store::embedded::LINGER_MAX.as_micros() as u64;
        if self.store.linger_micros > linger_max {
            return Err(invalid(
                "store.linger_micros",
                format!("must be between 0 and {linger_max}"),
            ));
        }
        let learning = &self.learning;
        if !(0.0..=100.0).contains(&learning.mastery_threshold) {
            return Err(invalid(
                "learning.mastery_threshold",
                "must be between 0 and 100",
            ));
        }
        if !(0.0..1.0).contains(&learning.weekly_decay) {
            return Err(invalid(
                "learning.weekly_decay",
                "must be at least 0 and below 1",
            ));
        }
        if !(1..=100).contains(&learning.default_rounds) {
            return Err(invalid(
                "learning.default_rounds",
                "must be between 1 and 100",
            ));
        }
        if learning.llm_feedback_max_tokens == 0 {
            return Err(invalid(
                "learning.llm_feedback_max_tokens",
                "must be positive",
            ));
        }
        if learning.session_timeout_secs == 0 {
            return Err(invalid("learning.session_timeout_secs", "must be positive"));
        }
        if self.projections.snapshot_every_events == 0 {
            return Err(invalid(
                "projections.snapshot_every_events",
                "must be positive",
            ));
        }
        if !(0..=19).contains(&self.projections.nice) {
            return Err(invalid(
                "projections.nice",
                format!("must be 0-19, got {}", self.projections.nice),
            ));
        }
        if !["strict", "fast"].contains(&self.gateway.reservations.as_str()) {
            return Err(invalid(
                "gateway.reservations",
                format!(
                    "must be \"strict\" or \"fast\", got {:?}",
                    self.gateway.reservations
                ),
            ));
        }
        let gateway = &self.gateway;
        if gateway.default_max_tokens == 0 || gateway.default_max_tokens > gateway.max_tokens_limit
        {
            return Err(invalid(
                "gateway.default_max_tokens",
                "must be positive and at most gateway.max_tokens_limit",
            ));
        }
        if !gateway.rate_limit_per_sec.is_finite() || gateway.rate_limit_per_sec < 0.0 {
            return Err(invalid(
                "gateway.rate_limit_per_sec",
                "must be a non-negative number",
            ));
        }
        if gateway.rate_limit_per_sec > 0.0 && gateway.rate_limit_burst == 0 {
            return Err(invalid("gateway.rate_limit_burst", "must be positive"));
        }
        for (i, origin) in self.server.cors_allowed_origins.iter().enumerate() {
            let scheme = origin.starts_with("http://") || origin.starts_with("https://");
            if !scheme
                || origin.ends_with('/')
                || origin.parse::<axum::http::HeaderValue>().is_err()
            {
                return Err(invalid(
                    format!("server.cors_allowed_origins[{i}]"),
                    format!("must be an origin like https://app.example.com, got {origin:?}"),
                ));
            }
        }
        if gateway.benchmark_every_hours > 12 {
            return Err(invalid(
                "gateway.benchmark_every_hours",
                "must be 0 (on demand only) or between 1 and 12",
            ));
        }
        for (i, key) in self.gateway.api_keys.iter().enumerate() {
            if key.key.is_some() == key.key_env.is_some() {
                return Err(invalid(
                    format!("gateway.api_keys[{i}]"),
                    "needs exactly one of `key` or `key_env`",
                ));
            }
        }
        self.validate_providers()
    }

    fn validate_providers(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, provider) in self.providers.iter().enumerate() {
            let key = |field: &str| format!("providers[{i}].{field}");
            if provider.name.is_empty()
                || !provider
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    key("name"),
                    format!("must be letters, digits, '-' or '_': {:?}", provider.name),
                ));
            }
            if !names.insert(provider.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is used twice", provider.name),
                ));
            }
            if !PROVIDER_KINDS.contains(&provider.kind.as_str()) {
                return Err(invalid(
                    key("kind"),
                    format!("must be one of {PROVIDER_KINDS:?}, got {:?}", provider.kind),
                ));
            }
            if !(provider.base_url.starts_with("http://")
                || provider.base_url.starts_with("https://"))
            {
                return Err(invalid(
                    key("base_url"),
                    format!(
                        "must start with http:// or https://, got {:?}",
                        provider.base_url
                    ),
                ));
            }
            if provider.timeout_ms == 0 {
                return Err(invalid(key("timeout_ms"), "must be positive"));
            }
            for (field, value) in [
                ("monthly_budget_usd", provider.monthly_budget_usd),
                ("per_request_budget_usd", provider.per_request_budget_usd),
            ] {
                if !value.is_finite() || value < 0.0 {
                    return Err(invalid(key(field), "must be a non-negative number"));
                }
            }
            let circuit = &provider.circuit;
            if circuit.failure_threshold == 0
                || circuit.success_threshold == 0
                || circuit.half_open_max_calls == 0
                || circuit.open_secs == 0
            {
                return Err(invalid(
                    key("circuit"),
                    "thresholds, open_secs and half_open_max_calls must be positive",
                ));
            }
            if circuit.success_threshold > circuit.half_open_max_calls {
                return Err(invalid(
                    key("circuit.success_threshold"),
                    "cannot exceed half_open_max_calls",
                ));
            }
            for (m, model) in provider.models.iter().enumerate() {
                if model.name.is_empty() {
                    return Err(invalid(
                        key(&format!("models[{m}].name")),
                        "must not be empty",
                    ));
                }
                for (field, value) in [
                    ("input_usd_per_mtok", model.input_usd_per_mtok),
                    ("output_usd_per_mtok", model.output_usd_per_mtok),
                ] {
                    if !value.is_finite() || value < 0.0 {
                        return Err(invalid(
                            key(&format!("models[{m}].{field}")),
                            "must be a non-negative number",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The effective configuration as canonical JSON (sorted keys), without secrets:
    /// inline API keys are never serialized.
    pub fn effective_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        canonical_json(&value)
    }

    /// BLAKE3 hex digest of [`Config::effective_json`].
    pub fn digest(&self) -> String {
        blake3::hash(self.effective_json().as_bytes())
            .to_hex()
            .to_string()
    }
}

/// Serializes JSON with object keys sorted, so equal configs give equal text.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sort(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<_, _> =
                    map.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sort).collect())
            }
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

/// Dotted paths whose values differ between two JSON documents.
pub fn changed_keys(before: &serde_json::Value, after: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &path,
                        x.get(key).unwrap_or(&null),
                        y.get(key).unwrap_or(&null),
                        out,
                    );
                }
            }
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) if x.len() == y.len() => {
                for (i, (a, b)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{prefix}[{i}]"), a, b, out);
                }
            }
            _ if a != b => out.push(prefix.to_owned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let config = parse("").expect("defaults");
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.server.data_dir, PathBuf::from("./data"));
        assert_eq!(config.learning.mastery_threshold, 80.0);
        assert_eq!(config.learning.weekly_decay, 0.02);
        assert_eq!(config.gateway.reservations, "strict");
        assert!(config.providers.is_empty());
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../tutorlog.example.toml");
        let config = parse(text).expect("example config is valid");
        assert!(!config.providers.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"nope\"", "server.listen"),
            ("[store]\nbackend = \"postgres\"", "store.backend"),
            ("[learning]\nweekly_decay = 1.5", "learning.weekly_decay"),
            ("[projections]\nnice = 20", "projections.nice"),
            ("[projections]\nnice = -1", "projections.nice"),
            (
                "[gateway]\nreservations = \"maybe\"",
                "gateway.reservations",
            ),
            (
                "[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"ftp://x\"",
                "providers[0].base_url",
            ),
            (
                "[[providers]]\nname = \"a\"\nkind = \"weird\"\nbase_url = \"http://x\"",
                "providers[0].kind",
            ),
        ];
        for (text, key) in cases {
            let message = parse(text).expect_err(text).to_string();
            assert!(message.contains(key), "{message:?} does not name {key}");
        }
        let message = parse("[server]\nlisen = \"x\"")
            .expect_err("typo")
            .to_string();
        assert!(message.contains("lisen"), "{message}");
    }

    #[test]
    fn secrets_never_reach_the_effective_json() {
        let config =
            parse("[gateway]\napi_keys = [{ key = \"sk-secret-123\", user_id = \"dev\" }]")
                .expect("parse");
        assert!(!config.effective_json().contains("sk-secret-123"));
    }

    #[test]
    fn changed_keys_lists_dotted_paths() {
        let a = serde_json::json!({"server": {"listen": "a", "x": 1}, "k": [1], "p": [{"q": 1}]});
        let b = serde_json::json!({"server": {"listen": "b", "x": 1}, "k": [2], "p": [{"q": 2}]});
        assert_eq!(
            changed_keys(&a, &b),
            vec!["k[0]", "p[0].q", "server.listen"]
        );
        // A list that grows or shrinks is one change of the whole list.
        let c = serde_json::json!({"p": [{"q": 1}, {"q": 2}]});
        assert_eq!(changed_keys(&a, &c), vec!["k", "p", "server"]);
    }
}
