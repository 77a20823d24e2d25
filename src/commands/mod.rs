//! One-shot CLI commands that read the log directly (no daemon needed).

pub mod algo;
pub mod audit;
pub mod events;
pub mod explain;
pub mod export;
pub mod load;
pub mod replay;
pub mod table;

use std::path::{Path, PathBuf};

/// Where the embedded log lives inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// Where projection snapshots live inside a data directory.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("projections")
}
