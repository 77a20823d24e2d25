//! The gateway's API keys (`gateway.api_keys`), resolved once at start.
//!
//! A key comes from the config (`key`, for local use) or from an environment
//! variable (`key_env`). Checking compares against every key in constant time, so
//! neither the position of a match nor a common prefix shows in the timing. Keys
//! are never logged, recorded or echoed.
//!
//! Each key has its own token bucket (`gateway.rate_limit_per_sec`,
//! `gateway.rate_limit_burst`): a key over its rate gets 429 with the seconds to
//! wait, and cannot starve the others.

use std::{sync::Arc, time::Instant};

use parking_lot::Mutex;

use crate::config::GatewayConfig;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One accepted key.
#[derive(Clone)]
struct Key {
    secret: Vec<u8>,
    user_id: Option<String>,
    bucket: Arc<Mutex<Bucket>>,
}

/// The accepted keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Key>,
    /// Tokens per second per key; 0 = unlimited.
    rate: f64,
    burst: f64,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

/// Why the keys could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// `key_env` names a variable that is unset or empty.
    #[error("gateway.api_keys[{index}].key_env: environment variable {var} is not set")]
    MissingEnv {
        /// Which entry.
        index: usize,
        /// The variable.
        var: String,
    },
}

/// Who a request's key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No keys are configured: the gateway is open (local use).
    Open,
    /// A configured key matched.
    Key {
        /// The user its spend is attributed to.
        user_id: Option<String>,
    },
}

/// Why a request with a key was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No key, or not a configured one.
    Unknown,
    /// The key is over its rate; retry after this many seconds.
    RateLimited {
        /// Seconds until a token is available.
        retry_after_secs: f64,
    },
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (index, byte) in b.iter().enumerate() {
        diff |= a.get(index).copied().unwrap_or(0) ^ byte;
    }
    diff == 0
}

impl ApiKeys {
    /// Resolves the configured keys, reading `key_env` variables now.
    pub fn from_config(config: &GatewayConfig) -> Result<ApiKeys, KeysError> {
        let mut keys = Vec::new();
        for (index, entry) in config.api_keys.iter().enumerate() {
            let secret = match (&entry.key, &entry.key_env) {
                (Some(key), _) => key.clone(),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(value) if !value.is_empty() => value,
                    _ => {
                        return Err(KeysError::MissingEnv {
                            index,
                            var: var.clone(),
                        })
                    }
                },
                // Config validation refuses entries with neither.
                (None, None) => continue,
            };
            keys.push(Key {
                secret: secret.into_bytes(),
                user_id: entry.user_id.clone(),
                bucket: Arc::new(Mutex::new(Bucket {
                    tokens: f64::from(config.rate_limit_burst),
                    at: Instant::now(),
                })),
            });
        }
        Ok(ApiKeys {
            keys,
            rate: config.rate_limit_per_sec,
            burst: f64::from(config.rate_limit_burst),
        })
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a presented key (`None` when the request had none) and takes one
    /// token from its bucket.
    pub fn check(&self, presented: Option<&str>) -> Result<Caller, Refusal> {
        self.check_at(presented, Instant::now())
    }

    /// [`ApiKeys::check`] at a given instant (tests).
    pub fn check_at(&self, presented: Option<&str>, now: Instant) -> Result<Caller, Refusal> {
        if self.keys.is_empty() {
            return Ok(Caller::Open);
        }
        let presented = presented.ok_or(Refusal::Unknown)?.as_bytes();
        let mut found: Option<&Key> = None;
        for key in &self.keys {
            // Every key is compared, match or not.
            if constant_time_eq(presented, &key.secret) && found.is_none() {
                found = Some(key);
            }
        }
        let key = found.ok_or(Refusal::Unknown)?;
        if self.rate > 0.0 {
            let mut bucket = key.bucket.lock();
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                return Err(Refusal::RateLimited {
                    retry_after_secs: (1.0 - bucket.tokens) / self.rate,
                });
            }
            bucket.tokens -= 1.0;
        }
        Ok(Caller::Key {
            user_id: key.user_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    fn keys(entries: Vec<ApiKeyConfig>) -> Result<ApiKeys, KeysError> {
        ApiKeys::from_config(&GatewayConfig {
            api_keys: entries,
            ..GatewayConfig::default()
        })
    }

    #[test]
    fn no_keys_means_open_and_keys_mean_checked() {
        assert_eq!(keys(vec![]).expect("keys").check(None), Ok(Caller::Open));
        let keys = keys(vec![ApiKeyConfig {
            key: Some("sk-1".into()),
            key_env: None,
            user_id: Some("dev".into()),
        }])
        .expect("keys");
        assert_eq!(
            keys.check(Some("sk-1")),
            Ok(Caller::Key {
                user_id: Some("dev".into())
            })
        );
        for wrong in [None, Some(""), Some("sk-"), Some("sk-12"), Some("sk-2")] {
            assert_eq!(keys.check(wrong), Err(Refusal::Unknown), "{wrong:?}");
        }
        assert!(!format!("{keys:?}").contains("sk-1"));
    }

    #[test]
    fn each_key_has_its_own_token_bucket() {
        let keys = ApiKeys::from_config(&GatewayConfig {
            api_keys: vec![
                ApiKeyConfig {
                    key: Some("a".into()),
                    key_env: None,
                    user_id: None,
                },
                ApiKeyConfig {
                    key: Some("b".into()),
                    key_env: None,
                    user_id: None,
                },
            ],
            rate_limit_per_sec: 10.0,
            rate_limit_burst: 3,
            ..GatewayConfig::default()
        })
        .expect("keys");
        let start = Instant::now();
        for _ in 0..3 {
            assert!(keys.check_at(Some("a"), start).is_ok());
        }
        let Err(Refusal::RateLimited { retry_after_secs }) = keys.check_at(Some("a"), start) else {
            panic!("the burst is spent")
        };
        assert!((retry_after_secs - 0.1).abs() < 1e-9, "{retry_after_secs}");
        // Another key is not affected; time refills.
        assert!(keys.check_at(Some("b"), start).is_ok());
        let later = start + std::time::Duration::from_millis(100);
        assert!(keys.check_at(Some("a"), later).is_ok());
        assert!(keys.check_at(Some("a"), later).is_err());
        // Refill stops at the burst.
        let much_later = start + std::time::Duration::from_secs(60);
        for _ in 0..3 {
            assert!(keys.check_at(Some("a"), much_later).is_ok());
        }
        assert!(keys.check_at(Some("a"), much_later).is_err());
    }

    #[test]
    fn a_missing_env_key_names_the_entry_and_variable() {
        let error = keys(vec![ApiKeyConfig {
            key: None,
            key_env: Some("TUTORLOG_TEST_SURELY_UNSET_KEY".into()),
            user_id: None,
        }])
        .expect_err("unset");
        let message = error.to_string();
        assert!(
            message.contains("api_keys[0]") && message.contains("TUTORLOG_TEST_SURELY_UNSET_KEY")
        );
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }
}
