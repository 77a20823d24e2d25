//! The learning algorithms behind the algorithm registry (seed 001), as pure code.
//!
//! Everything here is a plain function of its arguments: no I/O, no clock, no global
//! RNG. Time comes in as a [`chrono::DateTime<Utc>`] and randomness as a `u64` seed
//! (derive it from event data with [`seed_from`]), so the same inputs, version and
//! params give the same output bit for bit, and replaying the log can rely on the
//! results recorded in events instead of re-running anything.
//!
//! - [`mastery`]: Bayesian knowledge tracing with time decay (v1) and an Elo/IRT
//!   model (v2); probability of a correct answer and a 0–100 score.
//! - [`revision`]: SM-2 style scheduling (v1) and FSRS (v2); next due date and the
//!   probability of recall at a given time.
//! - [`difficulty`]: item difficulty calibrated from recent attempts.
//! - [`adaptive`]: next-item selection toward a target success rate with seeded
//!   exploration.
//! - [`mistakes`]: recurring mistake patterns per learner from tagged wrong answers.
//! - [`eval`]: AUC and log loss for offline evaluation.
//!
//! Params of every (key, version) are a serde struct whose `Default` is the seed's
//! defaults; [`AlgoParams`] wraps them for the registry, which stores them as
//! canonical JSON ([`canonical_json`]) with a SHA-256 checksum ([`checksum`]).

pub mod adaptive;
pub mod difficulty;
pub mod eval;
pub mod mastery;
pub mod mistakes;
pub mod revision;

use std::fmt;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why an algorithm call or a params document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlgoError {
    /// The algorithm key is not one of [`AlgoKey::ALL`].
    #[error(
        "unknown algorithm {0:?} (expected mastery, revision, difficulty, adaptive or mistakes)"
    )]
    UnknownAlgo(String),
    /// No implementation of this version exists for the key.
    #[error("algorithm {key} has no version {version}")]
    UnknownVersion {
        /// The algorithm.
        key: AlgoKey,
        /// The version asked for.
        version: u32,
    },
    /// A parameter is out of range or inconsistent.
    #[error("invalid {key} params: {field}: {reason}")]
    InvalidParams {
        /// The algorithm.
        key: AlgoKey,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The params document is not valid JSON for this (key, version).
    #[error("invalid {key} params JSON: {message}")]
    ParamsJson {
        /// The algorithm.
        key: AlgoKey,
        /// The parser's message.
        message: String,
    },
    /// An input value is unusable (for example a rating outside 1..=4).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// The five algorithm families of seed 001.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgoKey {
    /// Learner mastery estimation.
    Mastery,
    /// Spaced-repetition scheduling.
    Revision,
    /// Item difficulty calibration.
    Difficulty,
    /// Next-item selection.
    Adaptive,
    /// Recurring mistake mining.
    Mistakes,
}

impl AlgoKey {
    /// Every key, in a fixed order.
    pub const ALL: [AlgoKey; 5] = [
        AlgoKey::Mastery,
        AlgoKey::Revision,
        AlgoKey::Difficulty,
        AlgoKey::Adaptive,
        AlgoKey::Mistakes,
    ];

    /// The key as stored in events and shown over HTTP.
    pub fn as_str(self) -> &'static str {
        match self {
            AlgoKey::Mastery => "mastery",
            AlgoKey::Revision => "revision",
            AlgoKey::Difficulty => "difficulty",
            AlgoKey::Adaptive => "adaptive",
            AlgoKey::Mistakes => "mistakes",
        }
    }
}

impl fmt::Display for AlgoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AlgoKey {
    type Err = AlgoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlgoKey::ALL
            .into_iter()
            .find(|key| key.as_str() == s)
            .ok_or_else(|| AlgoError::UnknownAlgo(s.to_owned()))
    }
}

/// Lifecycle status of an algorithm version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionStatus {
    /// The one version used for live runs of its key.
    Active,
    /// Kept for replay and audit, not used for new runs.
    Deprecated,
    /// Available on request (offline evaluation, explicit admin runs).
    Experimental,
}

/// A version the registry registers on first start.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSpec {
    /// The algorithm.
    pub key: AlgoKey,
    /// Version number (shown as `v{n}`).
    pub version: u32,
    /// Status at registration.
    pub status: VersionStatus,
    /// One line for humans.
    pub description: &'static str,
}

/// The versions implemented here, with their initial status: exactly one ACTIVE per key.
pub fn default_versions() -> Vec<VersionSpec> {
    vec![
        VersionSpec {
            key: AlgoKey::Mastery,
            version: 1,
            status: VersionStatus::Active,
            description: "Bayesian knowledge tracing with weekly decay toward the prior",
        },
        VersionSpec {
            key: AlgoKey::Mastery,
            version: 2,
            status: VersionStatus::Experimental,
            description: "Elo/IRT (Rasch) learner ability against item difficulty, with decay",
        },
        VersionSpec {
            key: AlgoKey::Revision,
            version: 1,
            status: VersionStatus::Active,
            description: "SM-2 style spaced repetition with fixed first intervals",
        },
        VersionSpec {
            key: AlgoKey::Revision,
            version: 2,
            status: VersionStatus::Experimental,
            description: "FSRS-6 memory model (stability, difficulty, power forgetting curve)",
        },
        VersionSpec {
            key: AlgoKey::Difficulty,
            version: 1,
            status: VersionStatus::Active,
            description: "Smoothed logit difficulty from the most recent attempts",
        },
        VersionSpec {
            key: AlgoKey::Adaptive,
            version: 1,
            status: VersionStatus::Active,
            description: "Closest-to-target success with seeded epsilon exploration",
        },
        VersionSpec {
            key: AlgoKey::Mistakes,
            version: 1,
            status: VersionStatus::Active,
            description: "Frequent mistake tags per learner within a lookback window",
        },
    ]
}

/// The params of one (key, version), typed.
#[derive(Debug, Clone, PartialEq)]
pub enum AlgoParams {
    /// mastery v1.
    MasteryBkt(mastery::BktParams),
    /// mastery v2.
    MasteryElo(mastery::EloParams),
    /// revision v1.
    RevisionSm2(revision::Sm2Params),
    /// revision v2.
    RevisionFsrs(revision::FsrsParams),
    /// difficulty v1.
    Difficulty(difficulty::DifficultyParams),
    /// adaptive v1.
    Adaptive(adaptive::AdaptiveParams),
    /// mistakes v1.
    Mistakes(mistakes::MistakesParams),
}

impl AlgoParams {
    /// The seed's defaults for (key, version).
    pub fn defaults(key: AlgoKey, version: u32) -> Result<Self, AlgoError> {
        Ok(match (key, version) {
            (AlgoKey::Mastery, 1) => AlgoParams::MasteryBkt(Default::default()),
            (AlgoKey::Mastery, 2) => AlgoParams::MasteryElo(Default::default()),
            (AlgoKey::Revision, 1) => AlgoParams::RevisionSm2(Default::default()),
            (AlgoKey::Revision, 2) => AlgoParams::RevisionFsrs(Default::default()),
            (AlgoKey::Difficulty, 1) => AlgoParams::Difficulty(Default::default()),
            (AlgoKey::Adaptive, 1) => AlgoParams::Adaptive(Default::default()),
            (AlgoKey::Mistakes, 1) => AlgoParams::Mistakes(Default::default()),
            _ => return Err(AlgoError::UnknownVersion { key, version }),
        })
    }

    /// Parse and validate a params document for (key, version). Missing fields take
    /// their defaults; unknown fields are refused so a typo cannot pass silently.
    pub fn from_json(key: AlgoKey, version: u32, json: &str) -> Result<Self, AlgoError> {
        fn parse<T: DeserializeOwned>(key: AlgoKey, json: &str) -> Result<T, AlgoError> {
            serde_json::from_str(json).map_err(|e| AlgoError::ParamsJson {
                key,
                message: e.to_string(),
            })
        }
        let params = match Self::defaults(key, version)? {
            AlgoParams::MasteryBkt(_) => AlgoParams::MasteryBkt(parse(key, json)?),
            AlgoParams::MasteryElo(_) => AlgoParams::MasteryElo(parse(key, json)?),
            AlgoParams::RevisionSm2(_) => AlgoParams::RevisionSm2(parse(key, json)?),
            AlgoParams::RevisionFsrs(_) => AlgoParams::RevisionFsrs(parse(key, json)?),
            AlgoParams::Difficulty(_) => AlgoParams::Difficulty(parse(key, json)?),
            AlgoParams::Adaptive(_) => AlgoParams::Adaptive(parse(key, json)?),
            AlgoParams::Mistakes(_) => AlgoParams::Mistakes(parse(key, json)?),
        };
        params.validate()?;
        Ok(params)
    }

    /// The algorithm these params belong to.
    pub fn key(&self) -> AlgoKey {
        match self {
            AlgoParams::MasteryBkt(_) | AlgoParams::MasteryElo(_) => AlgoKey::Mastery,
            AlgoParams::RevisionSm2(_) | AlgoParams::RevisionFsrs(_) => AlgoKey::Revision,
            AlgoParams::Difficulty(_) => AlgoKey::Difficulty,
            AlgoParams::Adaptive(_) => AlgoKey::Adaptive,
            AlgoParams::Mistakes(_) => AlgoKey::Mistakes,
        }
    }

    /// The version these params belong to.
    pub fn version(&self) -> u32 {
        match self {
            AlgoParams::MasteryElo(_) | AlgoParams::RevisionFsrs(_) => 2,
            _ => 1,
        }
    }

    /// Check ranges and consistency.
    pub fn validate(&self) -> Result<(), AlgoError> {
        match self {
            AlgoParams::MasteryBkt(p) => p.validate(),
            AlgoParams::MasteryElo(p) => p.validate(),
            AlgoParams::RevisionSm2(p) => p.validate(),
            AlgoParams::RevisionFsrs(p) => p.validate(),
            AlgoParams::Difficulty(p) => p.validate(),
            AlgoParams::Adaptive(p) => p.validate(),
            AlgoParams::Mistakes(p) => p.validate(),
        }
    }

    /// Canonical JSON (sorted keys, no whitespace): what the registry stores.
    pub fn to_canonical_json(&self) -> Result<String, AlgoError> {
        let key = self.key();
        match self {
            AlgoParams::MasteryBkt(p) => canonical_json(key, p),
            AlgoParams::MasteryElo(p) => canonical_json(key, p),
            AlgoParams::RevisionSm2(p) => canonical_json(key, p),
            AlgoParams::RevisionFsrs(p) => canonical_json(key, p),
            AlgoParams::Difficulty(p) => canonical_json(key, p),
            AlgoParams::Adaptive(p) => canonical_json(key, p),
            AlgoParams::Mistakes(p) => canonical_json(key, p),
        }
    }

    /// SHA-256 (lowercase hex) of [`AlgoParams::to_canonical_json`].
    pub fn checksum(&self) -> Result<String, AlgoError> {
        Ok(checksum(&self.to_canonical_json()?))
    }
}

/// Serialise `value` as canonical JSON: object keys sorted bytewise at every level,
/// no insignificant whitespace, numbers as serde_json writes them (shortest
/// round-trip form), so equal params always give equal bytes and equal checksums.
pub fn canonical_json<T: Serialize>(key: AlgoKey, value: &T) -> Result<String, AlgoError> {
    let value = serde_json::to_value(value).map_err(|e| AlgoError::ParamsJson {
        key,
        message: e.to_string(),
    })?;
    let mut out = String::new();
    write_canonical(&value, &mut out);
    Ok(out)
}

/// Re-encode any JSON document canonically (see [`canonical_json`]); for params
/// that arrive as text, e.g. from the admin API.
pub fn canonicalize_json_str(json: &str) -> Result<String, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(json)?;
    let mut out = String::new();
    write_canonical(&value, &mut out);
    Ok(out)
}

// Sorting by hand rather than trusting `serde_json::Map` ordering: with the
// `preserve_order` feature (which any crate in the graph may switch on) the map keeps
// insertion order and checksums would silently change.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 of `canonical` as lowercase hex.
pub fn checksum(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// A 64-bit seed derived from event data (for example the session id and round
/// number): the first 8 bytes of SHA-256 over the parts, each length-prefixed so
/// `["ab", "c"]` and `["a", "bc"]` differ.
pub fn seed_from(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// SplitMix64: tiny, fully specified, so a seed gives the same sequence on every
/// platform and crate version (unlike `rand`'s `StdRng`, whose algorithm may change).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) from the top 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0), by rejection so there is no modulo bias.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Checks a probability-like field is inside `[lo, hi]` (and not NaN).
pub(crate) fn check_range(
    key: AlgoKey,
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
) -> Result<(), AlgoError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(())
    } else {
        Err(AlgoError::InvalidParams {
            key,
            field,
            reason: format!("{value} is outside [{lo}, {hi}]"),
        })
    }
}

/// Elapsed time in (fractional) days from `from` to `to`, never negative: a clock
/// that went backwards must not make memory stronger.
pub(crate) fn days_between(
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> f64 {
    let ms = (to - from).num_milliseconds();
    if ms <= 0 {
        0.0
    } else {
        ms as f64 / 86_400_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let json = canonicalize_json_str(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":0.5}}"#)
            .expect("valid json");
        assert_eq!(json, r#"{"a":{"c":0.5,"z":[{"x":2,"y":1}]},"b":1}"#);
    }

    #[test]
    fn every_default_version_has_params_that_validate_and_round_trip() {
        for spec in default_versions() {
            let params = AlgoParams::defaults(spec.key, spec.version).expect("defaults");
            params.validate().expect("defaults validate");
            let json = params.to_canonical_json().expect("json");
            let back = AlgoParams::from_json(spec.key, spec.version, &json).expect("parse");
            assert_eq!(back, params);
            assert_eq!(back.to_canonical_json().expect("json"), json);
            assert_eq!(params.checksum().expect("sum").len(), 64);
        }
    }

    #[test]
    fn exactly_one_active_version_per_key() {
        let versions = default_versions();
        for key in AlgoKey::ALL {
            let active = versions
                .iter()
                .filter(|v| v.key == key && v.status == VersionStatus::Active)
                .count();
            assert_eq!(active, 1, "{key}");
        }
    }

    #[test]
    fn checksum_is_sha256_hex() {
        // sha256("") is a well-known constant.
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn seed_from_is_stable_and_length_prefixed() {
        assert_eq!(seed_from(&[b"ab", b"c"]), seed_from(&[b"ab", b"c"]));
        assert_ne!(seed_from(&[b"ab", b"c"]), seed_from(&[b"a", b"bc"]));
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        assert!(AlgoParams::from_json(AlgoKey::Adaptive, 1, r#"{"exploration":0.1}"#).is_err());
        assert!(matches!(
            AlgoParams::defaults(AlgoKey::Difficulty, 7),
            Err(AlgoError::UnknownVersion { .. })
        ));
        assert!("nope".parse::<AlgoKey>().is_err());
    }
}
