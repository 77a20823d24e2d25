//! The algorithm registry decider (seed 001): one aggregate per algorithm key, stream
//! `algo-{key}`.
//!
//! Invariants kept by `decide` and checked by tests: exactly one ACTIVE version per
//! key once seeded; each version has at most one active param set (the last
//! `algo.params.set`), stored as canonical JSON whose SHA-256 must match its
//! checksum; a version can only become ACTIVE with params; runs go RUNNING →
//! SUCCESS | FAILED once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use tutorlog_schemas::events::{
    AlgoParamsSet, AlgoRunFailed, AlgoRunStarted, AlgoRunSucceeded, AlgoStatus,
    AlgoVersionActivated, AlgoVersionDeprecated, AlgoVersionRegistered, RunTrigger,
};
use tutorlog_schemas::Event;
use uuid::Uuid;

use crate::algorithms::checksum;
use crate::decider::Decider;

/// Runs remembered as open (RUNNING) per key; a run left open beyond this is
/// forgotten (its audit row stays RUNNING in the view).
pub const OPEN_RUNS_MAX: usize = 1024;

/// A version to register, with its params.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSeed {
    /// Version number.
    pub version: u32,
    /// Status at registration.
    pub status: AlgoStatus,
    /// One line for humans.
    pub description: String,
    /// Canonical params JSON.
    pub params_json: String,
}

/// Commands for one algorithm key.
#[derive(Debug, Clone, PartialEq)]
pub enum AlgoCommand {
    /// Register the default versions on first start (no-op once any version exists).
    Seed {
        /// Algorithm key.
        key: String,
        /// Versions; exactly one must be ACTIVE.
        versions: Vec<VersionSeed>,
    },
    /// Register a new EXPERIMENTAL version with its params.
    Register {
        /// Algorithm key.
        key: String,
        /// The version.
        seed: VersionSeed,
    },
    /// Make a version the ACTIVE one (the previous one is deprecated).
    Activate {
        /// Algorithm key.
        key: String,
        /// Version.
        version: u32,
    },
    /// Set a version's active params.
    SetParams {
        /// Algorithm key.
        key: String,
        /// Version.
        version: u32,
        /// Canonical params JSON.
        params_json: String,
    },
    /// Record the start of a run.
    StartRun(AlgoRunStarted),
    /// Record a run's success.
    SucceedRun {
        /// Algorithm key.
        key: String,
        /// Run id.
        run_id: Uuid,
        /// Canonical JSON output summary.
        output_summary: String,
    },
    /// Record a run's failure.
    FailRun {
        /// Algorithm key.
        key: String,
        /// Run id.
        run_id: Uuid,
        /// Error.
        error: String,
    },
}

/// Why the registry refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgoRejection {
    /// No such version.
    #[error("{key} has no version {version}")]
    UnknownVersion {
        /// Key.
        key: String,
        /// Version.
        version: u32,
    },
    /// The version exists already.
    #[error("{key} version {version} already exists")]
    VersionExists {
        /// Key.
        key: String,
        /// Version.
        version: u32,
    },
    /// The active version cannot be deprecated without activating another.
    #[error("{0}")]
    Invariant(String),
    /// No such open run.
    #[error("run {0} is not running")]
    UnknownRun(Uuid),
}

/// One version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// Status.
    pub status: AlgoStatus,
    /// Description.
    pub description: String,
    /// Active params (canonical JSON) and checksum.
    pub params: Option<(String, String)>,
}

/// What the registry knows of one key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlgoState {
    /// Versions.
    pub versions: BTreeMap<u32, VersionInfo>,
    /// Runs started and not finished.
    pub open_runs: BTreeSet<Uuid>,
}

impl AlgoState {
    /// The ACTIVE version, if any.
    pub fn active(&self) -> Option<(u32, &VersionInfo)> {
        self.versions
            .iter()
            .find(|(_, v)| v.status == AlgoStatus::Active)
            .map(|(n, v)| (*n, v))
    }

    /// Number of ACTIVE versions (1 once seeded).
    pub fn active_count(&self) -> usize {
        self.versions
            .values()
            .filter(|v| v.status == AlgoStatus::Active)
            .count()
    }
}

/// The registry decider.
pub struct AlgoRegistry;

fn params_set(key: &str, version: u32, params_json: &str) -> Event {
    Event::AlgoParamsSet(AlgoParamsSet {
        key: key.to_owned(),
        version,
        params_json: params_json.to_owned(),
        checksum: checksum(params_json),
    })
}

fn decide_seed(
    state: &AlgoState,
    key: &str,
    versions: &[VersionSeed],
) -> Result<Vec<Event>, AlgoRejection> {
    if !state.versions.is_empty() {
        return Ok(Vec::new());
    }
    let active = versions
        .iter()
        .filter(|v| v.status == AlgoStatus::Active)
        .count();
    if active != 1 {
        return Err(AlgoRejection::Invariant(format!(
            "{key}: seed needs exactly one ACTIVE version, got {active}"
        )));
    }
    let mut events = Vec::with_capacity(versions.len() * 2);
    for seed in versions {
        events.push(Event::AlgoVersionRegistered(AlgoVersionRegistered {
            key: key.to_owned(),
            version: seed.version,
            status: seed.status,
            description: seed.description.clone(),
        }));
        events.push(params_set(key, seed.version, &seed.params_json));
    }
    Ok(events)
}

impl Decider for AlgoRegistry {
    type State = AlgoState;
    type Command = AlgoCommand;
    type Event = Event;
    type Rejection = AlgoRejection;

    fn stream_name(id: &str) -> String {
        format!("algo-{id}")
    }

    fn decide(
        state: &AlgoState,
        command: &AlgoCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<Event>, AlgoRejection> {
        let unknown = |key: &str, version: u32| AlgoRejection::UnknownVersion {
            key: key.to_owned(),
            version,
        };
        match command {
            AlgoCommand::Seed { key, versions } => decide_seed(state, key, versions),
            AlgoCommand::Register { key, seed } => {
                if state.versions.contains_key(&seed.version) {
                    return Err(AlgoRejection::VersionExists {
                        key: key.clone(),
                        version: seed.version,
                    });
                }
                Ok(vec![
                    Event::AlgoVersionRegistered(AlgoVersionRegistered {
                        key: key.clone(),
                        version: seed.version,
                        status: AlgoStatus::Experimental,
                        description: seed.description.clone(),
                    }),
                    params_set(key, seed.version, &seed.params_json),
                ])
            }
            AlgoCommand::Activate { key, version } => {
                let info = state
                    .versions
                    .get(version)
                    .ok_or_else(|| unknown(key, *version))?;
                if info.status == AlgoStatus::Active {
                    return Ok(Vec::new());
                }
                if info.params.is_none() {
                    return Err(AlgoRejection::Invariant(format!(
                        "{key} v{version} has no params; set them first"
                    )));
                }
                let previous = state.active().map(|(n, _)| n);
                let mut events = vec![Event::AlgoVersionActivated(AlgoVersionActivated {
                    key: key.clone(),
                    version: *version,
                    previous,
                })];
                if let Some(previous) = previous {
                    events.push(Event::AlgoVersionDeprecated(AlgoVersionDeprecated {
                        key: key.clone(),
                        version: previous,
                    }));
                }
                Ok(events)
            }
            AlgoCommand::SetParams {
                key,
                version,
                params_json,
            } => {
                let info = state
                    .versions
                    .get(version)
                    .ok_or_else(|| unknown(key, *version))?;
                let sum = checksum(params_json);
                if info
                    .params
                    .as_ref()
                    .is_some_and(|(_, current)| *current == sum)
                {
                    return Ok(Vec::new());
                }
                Ok(vec![params_set(key, *version, params_json)])
            }
            AlgoCommand::StartRun(started) => {
                if !state.versions.contains_key(&started.version) {
                    return Err(unknown(&started.key, started.version));
                }
                Ok(vec![Event::AlgoRunStarted(started.clone())])
            }
            AlgoCommand::SucceedRun {
                key,
                run_id,
                output_summary,
            } => {
                if !state.open_runs.contains(run_id) {
                    return Err(AlgoRejection::UnknownRun(*run_id));
                }
                Ok(vec![Event::AlgoRunSucceeded(AlgoRunSucceeded {
                    run_id: *run_id,
                    key: key.clone(),
                    output_summary: output_summary.clone(),
                })])
            }
            AlgoCommand::FailRun { key, run_id, error } => {
                if !state.open_runs.contains(run_id) {
                    return Err(AlgoRejection::UnknownRun(*run_id));
                }
                Ok(vec![Event::AlgoRunFailed(AlgoRunFailed {
                    run_id: *run_id,
                    key: key.clone(),
                    error: error.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: AlgoState, event: &Event) -> AlgoState {
        match event {
            Event::AlgoVersionRegistered(registered) => {
                state.versions.insert(
                    registered.version,
                    VersionInfo {
                        status: registered.status,
                        description: registered.description.clone(),
                        params: None,
                    },
                );
            }
            Event::AlgoParamsSet(set) => {
                if let Some(info) = state.versions.get_mut(&set.version) {
                    info.params = Some((set.params_json.clone(), set.checksum.clone()));
                }
            }
            Event::AlgoVersionActivated(activated) => {
                for (number, info) in &mut state.versions {
                    if *number == activated.version {
                        info.status = AlgoStatus::Active;
                    } else if info.status == AlgoStatus::Active {
                        info.status = AlgoStatus::Deprecated;
                    }
                }
            }
            Event::AlgoVersionDeprecated(deprecated) => {
                if let Some(info) = state.versions.get_mut(&deprecated.version) {
                    if info.status != AlgoStatus::Active {
                        info.status = AlgoStatus::Deprecated;
                    }
                }
            }
            Event::AlgoRunStarted(started) => {
                state.open_runs.insert(started.run_id);
                while state.open_runs.len() > OPEN_RUNS_MAX {
                    state.open_runs.pop_first();
                }
            }
            Event::AlgoRunSucceeded(AlgoRunSucceeded { run_id, .. })
            | Event::AlgoRunFailed(AlgoRunFailed { run_id, .. }) => {
                state.open_runs.remove(run_id);
            }
            _ => {}
        }
        state
    }
}

/// A run-start record for `key` with the given context (helper for callers).
pub fn run_started(
    key: &str,
    version: u32,
    params_checksum: &str,
    trigger: RunTrigger,
    user_id: Option<String>,
    input_summary: String,
) -> AlgoRunStarted {
    AlgoRunStarted {
        run_id: Uuid::now_v7(),
        key: key.to_owned(),
        version,
        params_checksum: params_checksum.to_owned(),
        user_id,
        session_id: None,
        trigger,
        input_summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(version: u32, status: AlgoStatus) -> VersionSeed {
        VersionSeed {
            version,
            status,
            description: format!("v{version}"),
            params_json: format!("{{\"v\":{version}}}"),
        }
    }

    fn seeded() -> Vec<Event> {
        AlgoRegistry::decide(
            &AlgoState::default(),
            &AlgoCommand::Seed {
                key: "mastery".into(),
                versions: vec![
                    seed(1, AlgoStatus::Active),
                    seed(2, AlgoStatus::Experimental),
                ],
            },
            crate::decider::reference_time(),
        )
        .expect("seed")
    }

    #[test]
    fn seeding_registers_versions_with_checksummed_params_once() {
        let events = seeded();
        assert_eq!(events.len(), 4);
        assert!(
            matches!(&events[1], Event::AlgoParamsSet(p) if p.checksum == checksum("{\"v\":1}") && p.checksum.len() == 64)
        );
        let state = AlgoRegistry::given(events.clone()).state().clone();
        assert_eq!(state.active_count(), 1);
        assert_eq!(state.active().map(|(n, _)| n), Some(1));
        // A second seed (next daemon start) does nothing.
        AlgoRegistry::given(events)
            .when(AlgoCommand::Seed {
                key: "mastery".into(),
                versions: vec![seed(1, AlgoStatus::Active)],
            })
            .then([]);
    }

    #[test]
    fn a_seed_needs_exactly_one_active_version() {
        let two = AlgoCommand::Seed {
            key: "k".into(),
            versions: vec![seed(1, AlgoStatus::Active), seed(2, AlgoStatus::Active)],
        };
        assert!(matches!(
            AlgoRegistry::given([]).when(two).result(),
            Err(AlgoRejection::Invariant(_))
        ));
        let none = AlgoCommand::Seed {
            key: "k".into(),
            versions: vec![seed(1, AlgoStatus::Experimental)],
        };
        assert!(matches!(
            AlgoRegistry::given([]).when(none).result(),
            Err(AlgoRejection::Invariant(_))
        ));
    }

    #[test]
    fn activation_keeps_exactly_one_active() {
        let state = AlgoRegistry::given(seeded())
            .when(AlgoCommand::Activate {
                key: "mastery".into(),
                version: 2,
            })
            .then([
                Event::AlgoVersionActivated(AlgoVersionActivated {
                    key: "mastery".into(),
                    version: 2,
                    previous: Some(1),
                }),
                Event::AlgoVersionDeprecated(AlgoVersionDeprecated {
                    key: "mastery".into(),
                    version: 1,
                }),
            ]);
        assert_eq!(state.active_count(), 1);
        assert_eq!(state.active().map(|(n, _)| n), Some(2));
        assert_eq!(
            state.versions.get(&1).map(|v| v.status),
            Some(AlgoStatus::Deprecated)
        );
        AlgoRegistry::given(seeded())
            .when(AlgoCommand::Activate {
                key: "mastery".into(),
                version: 1,
            })
            .then([]);
        AlgoRegistry::given(seeded())
            .when(AlgoCommand::Activate {
                key: "mastery".into(),
                version: 9,
            })
            .then_err(AlgoRejection::UnknownVersion {
                key: "mastery".into(),
                version: 9,
            });
    }

    #[test]
    fn params_replace_the_active_set_and_are_idempotent() {
        let json = "{\"v\":7}".to_owned();
        let state = AlgoRegistry::given(seeded())
            .when(AlgoCommand::SetParams {
                key: "mastery".into(),
                version: 1,
                params_json: json.clone(),
            })
            .then([Event::AlgoParamsSet(AlgoParamsSet {
                key: "mastery".into(),
                version: 1,
                params_json: json.clone(),
                checksum: checksum(&json),
            })]);
        assert_eq!(
            state.versions.get(&1).and_then(|v| v.params.clone()),
            Some((json.clone(), checksum(&json)))
        );
        let mut history = seeded();
        history.push(params_set("mastery", 1, &json));
        AlgoRegistry::given(history)
            .when(AlgoCommand::SetParams {
                key: "mastery".into(),
                version: 1,
                params_json: json,
            })
            .then([]);
    }

    #[test]
    fn registered_versions_start_experimental_and_runs_close_once() {
        let state = AlgoRegistry::given(seeded())
            .when(AlgoCommand::Register {
                key: "mastery".into(),
                seed: seed(3, AlgoStatus::Active),
            })
            .then([
                Event::AlgoVersionRegistered(AlgoVersionRegistered {
                    key: "mastery".into(),
                    version: 3,
                    status: AlgoStatus::Experimental,
                    description: "v3".into(),
                }),
                params_set("mastery", 3, "{\"v\":3}"),
            ]);
        assert_eq!(state.active_count(), 1);
        let started = run_started("mastery", 1, "c", RunTrigger::Manual, None, "{}".into());
        let run_id = started.run_id;
        let mut history = seeded();
        history.push(Event::AlgoRunStarted(started));
        let done = AlgoRegistry::given(history.clone())
            .when(AlgoCommand::SucceedRun {
                key: "mastery".into(),
                run_id,
                output_summary: "{}".into(),
            })
            .result()
            .clone()
            .expect("succeed");
        history.extend(done);
        AlgoRegistry::given(history)
            .when(AlgoCommand::FailRun {
                key: "mastery".into(),
                run_id,
                error: "x".into(),
            })
            .then_err(AlgoRejection::UnknownRun(run_id));
    }

    /// Every sequence of up to four registry commands from a seeded key keeps
    /// exactly one ACTIVE version, with params, whatever is accepted or refused.
    #[test]
    fn no_command_sequence_breaks_exactly_one_active() {
        let commands = [
            AlgoCommand::Register {
                key: "mastery".into(),
                seed: seed(3, AlgoStatus::Active),
            },
            AlgoCommand::Register {
                key: "mastery".into(),
                seed: seed(4, AlgoStatus::Experimental),
            },
            AlgoCommand::Activate {
                key: "mastery".into(),
                version: 1,
            },
            AlgoCommand::Activate {
                key: "mastery".into(),
                version: 2,
            },
            AlgoCommand::Activate {
                key: "mastery".into(),
                version: 3,
            },
            AlgoCommand::Activate {
                key: "mastery".into(),
                version: 9,
            },
            AlgoCommand::SetParams {
                key: "mastery".into(),
                version: 2,
                params_json: "{\"v\":22}".into(),
            },
            AlgoCommand::Seed {
                key: "mastery".into(),
                versions: vec![seed(7, AlgoStatus::Active)],
            },
        ];
        let base = AlgoRegistry::given(seeded()).state().clone();
        let now = crate::decider::reference_time();
        let length_max = 4u32;
        let sequences = commands.len().pow(length_max);
        for mut code in 0..sequences {
            let mut state = base.clone();
            for _ in 0..length_max {
                let command = &commands[code % commands.len()];
                code /= commands.len();
                if let Ok(events) = AlgoRegistry::decide(&state, command, now) {
                    state = AlgoRegistry::fold(state, &events);
                }
                assert_eq!(state.active_count(), 1, "{state:?}");
                let (_, active) = state.active().expect("an active version");
                assert!(active.params.is_some(), "{state:?}");
            }
        }
    }

    #[test]
    fn a_version_without_params_cannot_become_active() {
        let mut history = seeded();
        history.push(Event::AlgoVersionRegistered(AlgoVersionRegistered {
            key: "mastery".into(),
            version: 5,
            status: AlgoStatus::Experimental,
            description: "bare".into(),
        }));
        assert!(matches!(
            AlgoRegistry::given(history)
                .when(AlgoCommand::Activate {
                    key: "mastery".into(),
                    version: 5,
                })
                .result(),
            Err(AlgoRejection::Invariant(_))
        ));
    }
}
