//! Config reload without a restart: SIGHUP or `POST /api/v1/admin/config/reload`.
//!
//! What may change while running is what an operator tunes: each provider's
//! prices, budgets, priority, timeout and breaker settings. The new file is read
//! with the same flag and environment overrides as at start, validated, compared
//! with the running configuration, and — only if every change is of that kind —
//! applied: limits as `budget.limit.changed`, priorities as
//! `provider.priority.changed`, and the whole as one `config.applied` listing the
//! changed keys. Anything else (a new provider, a base URL, the listen address,
//! learning settings, ...) is refused with the keys that need a restart; nothing
//! is applied then.

use std::sync::Arc;

use parking_lot::Mutex;
use tutorlog_store::EventStore;

use crate::{
    cli::ServeArgs,
    config::{changed_keys, Config, ConfigError},
    daemon::{load_config, record_config},
    gateway::service::Gateway,
};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The daemon was started without a config file.
    #[error("the daemon runs without a config file (pass --config or create ./tutorlog.toml, then restart)")]
    NoFile,
    /// The file does not load or validate; the message names the key.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// Keys changed that only a restart can apply.
    #[error("these keys need a restart, nothing was applied: {}", .0.join(", "))]
    RestartRequired(Vec<String>),
    /// Applying failed (a budget actor or the log).
    #[error("applying the configuration failed: {0}")]
    Apply(String),
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Dotted keys that changed (empty: the file matched the running config).
    pub changes: Vec<String>,
}

/// Re-reads and applies the configuration; one reload at a time.
pub struct Reloader {
    args: ServeArgs,
    current: Mutex<Arc<Config>>,
    gateway: Option<Gateway>,
    store: Arc<dyn EventStore>,
    running: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// Whether a changed key may be applied while running.
pub fn reloadable(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("providers[") else {
        return false;
    };
    let Some((_, field)) = rest.split_once("].") else {
        return false;
    };
    const FIELDS: [&str; 6] = [
        "priority",
        "timeout_ms",
        "monthly_budget_usd",
        "per_request_budget_usd",
        "circuit",
        "models",
    ];
    FIELDS.iter().any(|f| {
        field == *f || field.starts_with(&format!("{f}.")) || field.starts_with(&format!("{f}["))
    })
}

impl Reloader {
    /// A reloader for a daemon started with `args` and `config`.
    pub fn new(
        args: ServeArgs,
        config: Arc<Config>,
        gateway: Option<Gateway>,
        store: Arc<dyn EventStore>,
    ) -> Self {
        Reloader {
            args,
            current: Mutex::new(config),
            gateway,
            store,
            running: tokio::sync::Mutex::new(()),
        }
    }

    fn has_file(&self) -> bool {
        self.args.config.is_some() || std::path::Path::new("tutorlog.toml").exists()
    }

    /// Reloads; see the module docs.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.running.lock().await;
        if !self.has_file() {
            return Err(ReloadError::NoFile);
        }
        let next =
            load_config(&self.args).map_err(|error| match error.downcast::<ConfigError>() {
                Ok(config) => ReloadError::Invalid(config),
                Err(other) => ReloadError::Apply(format!("{other:#}")),
            })?;
        let current = Arc::clone(&self.current.lock());
        let before: serde_json::Value =
            serde_json::from_str(&current.effective_json()).unwrap_or_default();
        let after: serde_json::Value =
            serde_json::from_str(&next.effective_json()).unwrap_or_default();
        let changes = changed_keys(&before, &after);
        if changes.is_empty() {
            return Ok(Reloaded { changes });
        }
        let restart: Vec<String> = changes
            .iter()
            .filter(|key| !reloadable(key))
            .cloned()
            .collect();
        if !restart.is_empty() {
            return Err(ReloadError::RestartRequired(restart));
        }
        if let Some(gateway) = &self.gateway {
            for provider in &next.providers {
                if let Some(runtime) = gateway.provider(&provider.name) {
                    runtime
                        .apply(provider)
                        .await
                        .map_err(|e| ReloadError::Apply(e.to_string()))?;
                }
            }
        }
        record_config(self.store.as_ref(), &next)
            .await
            .map_err(|e| ReloadError::Apply(format!("{e:#}")))?;
        *self.current.lock() = Arc::new(next);
        tracing::info!(?changes, "configuration reloaded");
        Ok(Reloaded { changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provider_tuning_is_reloadable() {
        for key in [
            "providers[0].priority",
            "providers[2].monthly_budget_usd",
            "providers[1].circuit.open_secs",
            "providers[0].models[0].input_usd_per_mtok",
            "providers[0].timeout_ms",
        ] {
            assert!(reloadable(key), "{key}");
        }
        for key in [
            "providers[0].base_url",
            "providers[0].kind",
            "providers[1]",
            "providers",
            "server.listen",
            "learning.weekly_decay",
            "gateway.reservations",
            "providers[0].prioritylike",
        ] {
            assert!(!reloadable(key), "{key}");
        }
    }
}
