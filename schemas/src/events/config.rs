//! Daemon events: stream `config`.

use serde::{Deserialize, Serialize};

/// `config.applied` (v1): the daemon started with, or reloaded, a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigApplied {
    /// BLAKE3 hex digest of the effective configuration (secrets excluded).
    pub digest: String,
    /// Digest of the configuration applied before, if any.
    pub previous_digest: Option<String>,
    /// Dotted keys whose values changed since the previous configuration.
    pub changes: Vec<String>,
    /// The effective configuration as canonical JSON, secrets removed.
    pub effective_json: String,
}
