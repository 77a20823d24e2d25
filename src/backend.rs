//! Opens the event log the configuration names: the embedded segmented log in
//! `<data_dir>/log` (default) or KurrentDB (`store.backend = "kurrentdb"`, only in
//! builds with `--features kurrentdb`; see docs/kurrentdb.md).
//!
//! Everything above this module sees only `Arc<dyn EventStore>`; the few things that
//! differ per backend (closing, the poisoned-log probe, audit verification) are on
//! [`StoreHandle`].

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context};
use tutorlog_store::{EmbeddedStore, EventStore, StoreOptions};

use crate::config::Config;

/// Which backend a [`StoreHandle`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The embedded segmented log.
    Embedded,
    /// A KurrentDB server or cluster.
    KurrentDb,
}

enum Backend {
    Embedded(EmbeddedStore),
    #[cfg(feature = "kurrentdb")]
    KurrentDb(tutorlog_store::KurrentStore),
}

/// An open log: the shared store plus what only its owner needs.
pub struct StoreHandle {
    /// The log, for actors, projections and HTTP handlers.
    pub store: Arc<dyn EventStore>,
    backend: Backend,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("kind", &self.kind())
            .field("description", &self.description())
            .finish()
    }
}

impl StoreHandle {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Embedded(_) => BackendKind::Embedded,
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(_) => BackendKind::KurrentDb,
        }
    }

    /// Where the log lives, for logs and `/readyz` (credentials removed).
    pub fn description(&self) -> String {
        match &self.backend {
            Backend::Embedded(store) => format!("embedded log in {}", store.dir().display()),
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(store) => format!("KurrentDB at {}", store.endpoint()),
        }
    }

    /// The embedded store, for the tools that only exist there (head hash,
    /// blocking reads).
    pub fn embedded(&self) -> Option<&EmbeddedStore> {
        match &self.backend {
            Backend::Embedded(store) => Some(store),
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(_) => None,
        }
    }

    /// A probe for `AppState::poisoned`: the embedded log refuses writes after a
    /// failed fsync until restarted; KurrentDB has no such state (its failures are
    /// per request, as `StoreError::Unavailable`).
    pub fn poisoned_probe(&self) -> Arc<dyn Fn() -> Option<String> + Send + Sync> {
        match &self.backend {
            Backend::Embedded(store) => {
                let store = store.clone();
                Arc::new(move || store.poisoned())
            }
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(_) => Arc::new(|| None),
        }
    }

    /// `audit verify` on this backend: the whole hash chain for the embedded log,
    /// the per-stream chains for KurrentDB. Returns printable summary lines.
    pub async fn verify(&self) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::Embedded(store) => {
                let dir = store.dir().to_path_buf();
                let report = tokio::task::spawn_blocking(move || {
                    tutorlog_store::embedded::verify::verify(&dir)
                })
                .await
                .context("verify task")??;
                Ok(vec![
                    format!("records        {}", report.records),
                    format!("streams        {}", report.streams),
                    format!("head hash      {}", report.head_hash),
                ])
            }
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(store) => {
                let report = store.verify().await?;
                Ok(vec![
                    format!("records        {}", report.records),
                    format!("streams        {}", report.streams),
                    "chains         per stream (KurrentDB backend; see docs/kurrentdb.md)"
                        .to_owned(),
                ])
            }
        }
    }

    /// Closes the log: the embedded writer drains its queue and syncs; KurrentDB
    /// subscriptions end. Call after projections and HTTP have stopped.
    pub fn close(self) {
        match self.backend {
            Backend::Embedded(store) => store.close(),
            #[cfg(feature = "kurrentdb")]
            Backend::KurrentDb(store) => store.close(),
        }
    }
}

/// Opens the log named by `config.store` (`backend`, `kurrentdb_url`,
/// `segment_bytes`, `linger_micros`); the embedded log lives in `<data_dir>/log`.
pub async fn open_store(config: &Config, data_dir: &Path) -> anyhow::Result<StoreHandle> {
    match config.store.backend.as_str() {
        "embedded" => {
            let options = StoreOptions {
                segment_bytes: config.store.segment_bytes,
                linger: std::time::Duration::from_micros(config.store.linger_micros),
                ..StoreOptions::default()
            };
            let dir = crate::commands::log_dir(data_dir);
            let store = EmbeddedStore::open_with(&dir, options)
                .with_context(|| format!("opening the event log in {}", dir.display()))?;
            Ok(StoreHandle {
                store: Arc::new(store.clone()),
                backend: Backend::Embedded(store),
            })
        }
        "kurrentdb" => {
            let Some(url) = config.store.kurrentdb_url.as_deref() else {
                bail!("store.kurrentdb_url is required when store.backend = \"kurrentdb\" (e.g. \"esdb://127.0.0.1:2113?tls=false\")");
            };
            open_kurrentdb(url).await
        }
        other => bail!("store.backend must be \"embedded\" or \"kurrentdb\", got {other:?}"),
    }
}

/// Opens the log for reading only, for tools that run beside a daemon (`events`,
/// `audit verify`, `replay`): the embedded log is opened without its lock, as it is
/// at this moment; KurrentDB is connected to as usual.
pub async fn open_reader(config: &Config, data_dir: &Path) -> anyhow::Result<StoreHandle> {
    match config.store.backend.as_str() {
        "embedded" => {
            let dir = crate::commands::log_dir(data_dir);
            let store = EmbeddedStore::open_read_only(&dir)
                .with_context(|| format!("opening the event log in {}", dir.display()))?;
            Ok(StoreHandle {
                store: Arc::new(store.clone()),
                backend: Backend::Embedded(store),
            })
        }
        _ => open_store(config, data_dir).await,
    }
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str) -> anyhow::Result<StoreHandle> {
    // The client installs its rustls crypto provider (aws-lc-rs) on first connect;
    // nothing in tutorlog installs one before this point.
    let store = tutorlog_store::KurrentStore::connect(url)
        .await
        .context("opening the KurrentDB event log")?;
    Ok(StoreHandle {
        store: Arc::new(store.clone()),
        backend: Backend::KurrentDb(store),
    })
}

#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(_url: &str) -> anyhow::Result<StoreHandle> {
    bail!(
        "store.backend = \"kurrentdb\" is not available in this build: rebuild with \
         `cargo build --release --features kurrentdb`, or set store.backend = \"embedded\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_is_the_default_and_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = open_store(&Config::default(), dir.path())
            .await
            .expect("open");
        assert_eq!(handle.kind(), BackendKind::Embedded);
        assert!(handle.embedded().is_some());
        assert_eq!(handle.store.last_position(), None);
        assert!((handle.poisoned_probe())().is_none());
        assert!(handle.description().contains("embedded"));
        handle.close();
        assert!(dir.path().join("log").is_dir());
    }

    #[tokio::test]
    async fn kurrentdb_without_a_url_is_refused() {
        let mut config = Config::default();
        config.store.backend = "kurrentdb".into();
        let error = open_store(&config, Path::new("/nonexistent"))
            .await
            .expect_err("no url");
        assert!(error.to_string().contains("store.kurrentdb_url"), "{error}");
    }

    #[cfg(not(feature = "kurrentdb"))]
    #[tokio::test]
    async fn kurrentdb_needs_the_feature() {
        let mut config = Config::default();
        config.store.backend = "kurrentdb".into();
        config.store.kurrentdb_url = Some("esdb://127.0.0.1:2113?tls=false".into());
        let error = open_store(&config, Path::new("/nonexistent"))
            .await
            .expect_err("feature off");
        assert!(
            error.to_string().contains("--features kurrentdb"),
            "{error}"
        );
    }

    #[cfg(feature = "kurrentdb")]
    #[tokio::test]
    async fn kurrentdb_rejects_a_bad_url() {
        let mut config = Config::default();
        config.store.backend = "kurrentdb".into();
        config.store.kurrentdb_url = Some("not a url".into());
        let error = open_store(&config, Path::new("/nonexistent"))
            .await
            .expect_err("bad url");
        assert!(
            format!("{error:#}").contains("connection string"),
            "{error:#}"
        );
    }
}
