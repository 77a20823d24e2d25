//! [`AlgoCatalog`]: the algorithm registry as the rest of the daemon uses it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tutorlog_schemas::events::{AlgoStatus, RunTrigger};
use tutorlog_store::EventStore;
use uuid::Uuid;

use crate::aggregate::CommandError;
use crate::algo_registry::decider::{
    run_started, AlgoCommand, AlgoRegistry, AlgoRejection, AlgoState, VersionSeed,
};
use crate::algorithms::{
    canonicalize_json_str, default_versions, AlgoError, AlgoKey, AlgoParams, VersionStatus,
};
use crate::clock::Clock;
use crate::registry::{RegistryConfig, RegistryHandle};

/// The ACTIVE version of one key with its parsed params.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlgo {
    /// Key.
    pub key: AlgoKey,
    /// Version.
    pub version: u32,
    /// Parsed params.
    pub params: AlgoParams,
    /// Canonical JSON of the params.
    pub params_json: String,
    /// SHA-256 of `params_json`.
    pub checksum: String,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The command was refused.
    #[error(transparent)]
    Rejected(#[from] AlgoRejection),
    /// The params or key are invalid.
    #[error(transparent)]
    Algo(#[from] AlgoError),
    /// The params are not JSON.
    #[error("params: {0}")]
    Json(String),
    /// The log or actor failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The stored params no longer parse (a bug or an older build's params).
    #[error("stored params of {key} v{version} do not parse: {reason}")]
    Stored {
        /// Key.
        key: AlgoKey,
        /// Version.
        version: u32,
        /// Why.
        reason: String,
    },
}

/// The registry of every algorithm key plus an in-memory copy of what is ACTIVE.
#[derive(Clone)]
pub struct AlgoCatalog {
    registry: RegistryHandle<AlgoRegistry>,
    active: Arc<RwLock<BTreeMap<AlgoKey, ActiveAlgo>>>,
    states: Arc<RwLock<BTreeMap<AlgoKey, AlgoState>>>,
}

fn status_of(status: VersionStatus) -> AlgoStatus {
    match status {
        VersionStatus::Active => AlgoStatus::Active,
        VersionStatus::Deprecated => AlgoStatus::Deprecated,
        VersionStatus::Experimental => AlgoStatus::Experimental,
    }
}

impl AlgoCatalog {
    /// Starts the registry actors, registers the seed's defaults on first start, and
    /// loads what is ACTIVE.
    pub async fn start(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CatalogError> {
        let (registry, _join) =
            RegistryHandle::<AlgoRegistry>::start(store, clock, RegistryConfig::default())
                .await
                .map_err(|error| CommandError::Unavailable {
                    id: "algo".into(),
                    reason: error.to_string(),
                })?;
        let catalog = AlgoCatalog {
            registry,
            active: Arc::default(),
            states: Arc::default(),
        };
        let specs = default_versions();
        for key in AlgoKey::ALL {
            let mut versions = Vec::new();
            for spec in specs.iter().filter(|s| s.key == key) {
                versions.push(VersionSeed {
                    version: spec.version,
                    status: status_of(spec.status),
                    description: spec.description.to_owned(),
                    params_json: AlgoParams::defaults(key, spec.version)?.to_canonical_json()?,
                });
            }
            catalog
                .execute(
                    key,
                    AlgoCommand::Seed {
                        key: key.as_str().to_owned(),
                        versions,
                    },
                )
                .await?;
        }
        Ok(catalog)
    }

    async fn execute(
        &self,
        key: AlgoKey,
        command: AlgoCommand,
    ) -> Result<Option<u64>, CatalogError> {
        let outcome = self.registry.execute(key.as_str(), command).await??;
        self.install(key, outcome.state)?;
        Ok(outcome.position)
    }

    fn install(&self, key: AlgoKey, state: AlgoState) -> Result<(), CatalogError> {
        if let Some((version, info)) = state.active() {
            if let Some((json, checksum)) = &info.params {
                let params = AlgoParams::from_json(key, version, json).map_err(|error| {
                    CatalogError::Stored {
                        key,
                        version,
                        reason: error.to_string(),
                    }
                })?;
                let active = ActiveAlgo {
                    key,
                    version,
                    params,
                    params_json: json.clone(),
                    checksum: checksum.clone(),
                };
                write(&self.active).insert(key, active);
            }
        }
        write(&self.states).insert(key, state);
        Ok(())
    }

    /// The ACTIVE version and params of `key`.
    pub fn active(&self, key: AlgoKey) -> Option<ActiveAlgo> {
        read(&self.active).get(&key).cloned()
    }

    /// Every key's state (versions, statuses, params), for `/learning/info`.
    pub fn states(&self) -> BTreeMap<AlgoKey, AlgoState> {
        read(&self.states).clone()
    }

    /// Registers a new EXPERIMENTAL version with params (raw JSON, validated and
    /// canonicalised). Returns the log position.
    pub async fn register(
        &self,
        key: AlgoKey,
        version: u32,
        description: String,
        params: &str,
    ) -> Result<Option<u64>, CatalogError> {
        let params_json = validated(key, version, params)?;
        let seed = VersionSeed {
            version,
            status: AlgoStatus::Experimental,
            description,
            params_json,
        };
        self.execute(
            key,
            AlgoCommand::Register {
                key: key.as_str().to_owned(),
                seed,
            },
        )
        .await
    }

    /// Makes `version` the ACTIVE one.
    pub async fn activate(&self, key: AlgoKey, version: u32) -> Result<Option<u64>, CatalogError> {
        self.execute(
            key,
            AlgoCommand::Activate {
                key: key.as_str().to_owned(),
                version,
            },
        )
        .await
    }

    /// Replaces the active params of `version`.
    pub async fn set_params(
        &self,
        key: AlgoKey,
        version: u32,
        params: &str,
    ) -> Result<Option<u64>, CatalogError> {
        let params_json = validated(key, version, params)?;
        self.execute(
            key,
            AlgoCommand::SetParams {
                key: key.as_str().to_owned(),
                version,
                params_json,
            },
        )
        .await
    }

    /// Runs `run` with the ACTIVE version of `key` as an audited run
    /// (`algo.run.started`, then `succeeded` with its output summary or `failed`).
    /// Returns the run id and the log position of the last event.
    pub async fn audited_run<F>(
        &self,
        key: AlgoKey,
        trigger: RunTrigger,
        user_id: Option<String>,
        input_summary: String,
        run: F,
    ) -> Result<(Uuid, Option<u64>, Result<String, String>), CatalogError>
    where
        F: FnOnce(&ActiveAlgo) -> Result<String, String>,
    {
        let active = self
            .active(key)
            .ok_or_else(|| AlgoRejection::Invariant(format!("{key} has no ACTIVE version")))?;
        let started = run_started(
            key.as_str(),
            active.version,
            &active.checksum,
            trigger,
            user_id,
            input_summary,
        );
        let run_id = started.run_id;
        self.execute(key, AlgoCommand::StartRun(started)).await?;
        let result = run(&active);
        let command = match &result {
            Ok(output_summary) => AlgoCommand::SucceedRun {
                key: key.as_str().to_owned(),
                run_id,
                output_summary: output_summary.clone(),
            },
            Err(error) => AlgoCommand::FailRun {
                key: key.as_str().to_owned(),
                run_id,
                error: error.clone(),
            },
        };
        let position = self.execute(key, command).await?;
        Ok((run_id, position, result))
    }
}

fn validated(key: AlgoKey, version: u32, params: &str) -> Result<String, CatalogError> {
    let canonical =
        canonicalize_json_str(params).map_err(|error| CatalogError::Json(error.to_string()))?;
    let parsed = AlgoParams::from_json(key, version, &canonical)?;
    Ok(parsed.to_canonical_json()?)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The maps are replaced whole under the lock; a panic cannot leave one torn.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
