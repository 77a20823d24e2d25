//! The bytes of the export: four JSONL data files and `manifest.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{
    canonical_json, split::Split, BuildReport, Dataset, ExampleKind, PairKind, SourceStats,
    EXPORT_SCHEMA_VERSION, OUTLIER_MIN_EXAMPLES, OUTLIER_Z_MAX, PAIRS_PER_PROMPT_MAX,
    PAIR_CHOSEN_QUALITY_MIN, PAIR_MARGIN, PAIR_REJECTED_QUALITY_MAX, SPLIT_WEIGHTS_PERCENT,
    WEIGHT_CONFIDENCE, WEIGHT_DIVERSITY, WEIGHT_INFORMATIVENESS, WEIGHT_QUALITY,
};

/// The data files, in version-hash order.
pub const DATA_FILE_NAMES: [&str; 4] = [
    "train.jsonl",
    "validation.jsonl",
    "test.jsonl",
    "preferences.jsonl",
];
/// The manifest's file name.
pub const MANIFEST_FILE_NAME: &str = "manifest.json";
/// The manifest's `format`.
const MANIFEST_FORMAT: &str = "tutorlog.dataset";

/// What part of the log was read, and with which flags.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRange {
    /// First position read (`None`: nothing was read).
    pub first_position: Option<u64>,
    /// Last position read.
    pub last_position: Option<u64>,
    /// `--since`, if given.
    pub since: Option<DateTime<Utc>>,
    /// `--min-quality`.
    pub min_quality: f64,
    /// The item bank's fingerprint.
    pub bank_fingerprint: String,
    /// Items in the bank.
    pub bank_items: usize,
}

/// The export, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFiles {
    /// `(name, bytes)` of each data file, in [`DATA_FILE_NAMES`] order.
    pub data: Vec<(&'static str, Vec<u8>)>,
    /// `manifest.json`.
    pub manifest: Vec<u8>,
    /// The content hash (BLAKE3 hex of the data files).
    pub version: String,
}

fn jsonl<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// BLAKE3 over each data file's name, a zero byte, its length (u64 LE) and bytes.
fn version(data: &[(&'static str, Vec<u8>)]) -> String {
    let mut hasher = blake3::Hasher::new();
    for (name, bytes) in data {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().to_hex().to_string()
}

/// Renders the dataset and its manifest.
pub fn render(dataset: &Dataset, stats: &SourceStats, range: &SourceRange) -> ExportFiles {
    let mut data: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(DATA_FILE_NAMES.len());
    for (name, split) in DATA_FILE_NAMES.iter().zip(Split::ALL) {
        let lines = dataset.split(split).iter().map(|e| e.line.as_str());
        data.push((*name, jsonl(lines)));
    }
    let pairs = dataset.preferences.iter().map(|p| p.line.as_str());
    data.push((DATA_FILE_NAMES[3], jsonl(pairs)));
    let version = version(&data);
    let manifest = manifest(dataset, stats, range, &data, &version);
    // Pretty for people, yet canonical: re-parse the canonical text so the key order
    // is sorted whatever `serde_json::Map` does, then indent.
    let canonical = canonical_json(&manifest);
    let pretty = serde_json::from_str::<Value>(&canonical)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or(canonical);
    let mut manifest_bytes = pretty.into_bytes();
    manifest_bytes.push(b'\n');
    ExportFiles {
        data,
        manifest: manifest_bytes,
        version,
    }
}

fn files_section(data: &[(&'static str, Vec<u8>)]) -> Value {
    let files: serde_json::Map<String, Value> = data
        .iter()
        .map(|(name, bytes)| {
            let lines = bytes.iter().filter(|b| **b == b'\n').count();
            (
                (*name).to_owned(),
                json!({
                    "lines": lines,
                    "bytes": bytes.len(),
                    "blake3": blake3::hash(bytes).to_hex().to_string(),
                }),
            )
        })
        .collect();
    Value::Object(files)
}

fn split_counts(counts: &[usize; 3]) -> Value {
    json!({ "train": counts[0], "validation": counts[1], "test": counts[2] })
}

fn counts_section(dataset: &Dataset) -> Value {
    let mut strata: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, [usize; 3]> = ExampleKind::ALL
        .iter()
        .map(|k| (k.as_str(), [0; 3]))
        .collect();
    for (slot, split) in Split::ALL.iter().enumerate() {
        for example in dataset.split(*split) {
            if let Some(count) = strata.entry(example.stratum()).or_default().get_mut(slot) {
                *count += 1;
            }
            if let Some(count) = kinds
                .get_mut(example.kind.as_str())
                .and_then(|c| c.get_mut(slot))
            {
                *count += 1;
            }
        }
    }
    let pair_kinds: serde_json::Map<String, Value> = [PairKind::Item, PairKind::Gateway]
        .iter()
        .map(|kind| {
            let count = dataset
                .preferences
                .iter()
                .filter(|p| p.kind == *kind)
                .count();
            (kind.as_str().to_owned(), json!(count))
        })
        .collect();
    let [train, validation, test] = [0, 1, 2].map(|slot| dataset.splits[slot].len());
    json!({
        "examples": train + validation + test,
        "train": train,
        "validation": validation,
        "test": test,
        "preferences": dataset.preferences.len(),
        "by_kind": kinds.iter().map(|(k, c)| ((*k).to_owned(), split_counts(c))).collect::<serde_json::Map<_, _>>(),
        "preferences_by_kind": pair_kinds,
        "strata": strata.iter().map(|(s, c)| (s.clone(), split_counts(c))).collect::<serde_json::Map<_, _>>(),
    })
}

fn pipeline_section(report: &BuildReport) -> Value {
    json!({
        "candidates": report.candidates,
        "merged_duplicates": report.merged_duplicates,
        "below_min_quality": report.below_min_quality,
        "outlier_check": if report.outlier_check { "applied" } else { "skipped" },
        "outliers_removed": report.outliers_removed,
        "pair_candidates": report.pair_candidates,
        "pairs_below_min_quality": report.pairs_below_min_quality,
        "unknown_items": report.unknown_items,
        "recovered_responses": report.recovered_responses,
        "unusable_exchanges": report.unusable_exchanges,
    })
}

fn filters_section(range: &SourceRange) -> Value {
    json!({
        "min_quality": range.min_quality,
        "since": range.since.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        "weights": {
            "quality": WEIGHT_QUALITY,
            "confidence": WEIGHT_CONFIDENCE,
            "diversity": WEIGHT_DIVERSITY,
            "informativeness": WEIGHT_INFORMATIVENESS,
        },
        "outliers": {
            "method": "robust z-score (median, MAD) of sqrt(characters)",
            "z_max": OUTLIER_Z_MAX,
            "only_above_examples": OUTLIER_MIN_EXAMPLES,
        },
        "split": {
            "weights_percent": {
                "train": SPLIT_WEIGHTS_PERCENT[0],
                "validation": SPLIT_WEIGHTS_PERCENT[1],
                "test": SPLIT_WEIGHTS_PERCENT[2],
            },
            "stratify_by": ["category", "difficulty"],
            "order": "stratum name, then BLAKE3 of the line",
        },
        "pairs": {
            "margin": PAIR_MARGIN,
            "gateway_chosen_quality_min": PAIR_CHOSEN_QUALITY_MIN,
            "gateway_rejected_quality_max": PAIR_REJECTED_QUALITY_MAX,
            "gateway_pairs_per_prompt_max": PAIRS_PER_PROMPT_MAX,
        },
    })
}

fn source_section(stats: &SourceStats, range: &SourceRange) -> Value {
    json!({
        "first_position": range.first_position,
        "last_position": range.last_position,
        "events_read": stats.events_read,
        "undecodable": stats.undecodable,
        "rounds": stats.rounds,
        "challenges": stats.challenges,
        "exchanges": stats.exchanges,
        "exchanges_unusable": stats.exchanges_unusable,
        "feedback": stats.feedback,
        "item_bank": { "fingerprint": range.bank_fingerprint, "items": range.bank_items },
    })
}

fn manifest(
    dataset: &Dataset,
    stats: &SourceStats,
    range: &SourceRange,
    data: &[(&'static str, Vec<u8>)],
    version: &str,
) -> Value {
    let empty = data.iter().all(|(_, bytes)| bytes.is_empty());
    let note = empty.then(|| {
        if dataset.report.candidates == 0 && dataset.report.pair_candidates == 0 {
            "the log holds no exportable rounds or exchanges in the range read".to_owned()
        } else {
            format!(
                "no example or pair reached --min-quality {} ({} candidate examples, {} candidate pairs)",
                range.min_quality, dataset.report.candidates, dataset.report.pair_candidates
            )
        }
    });
    json!({
        "format": MANIFEST_FORMAT,
        "schema_version": EXPORT_SCHEMA_VERSION,
        "version": version,
        "empty": empty,
        "note": note,
        "files": files_section(data),
        "counts": counts_section(dataset),
        "pipeline": pipeline_section(&dataset.report),
        "filters": filters_section(range),
        "source": source_section(stats, range),
    })
}
