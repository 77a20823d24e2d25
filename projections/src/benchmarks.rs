//! `benchmarks`: the latest benchmark result per provider × category (the run of
//! the most recent `benchmark.result.recorded`, aggregated over that run's tests in
//! the category), and summaries of the last [`BENCHMARK_RUNS_KEPT_MAX`] runs.
//! Folded from the `benchmarks` stream.
//!
//! A row follows its run as results arrive: the first result of a newer run
//! replaces the row, later results of that run are added to it, and
//! `run_completed` turns true with `benchmark.run.completed`. The router and the
//! HTTP layer read it through [`Benchmarks::latest`], filtered by category and age.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{events::BenchmarkResultRecorded, Envelope, Event};
use uuid::Uuid;

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
    spend::keep_key,
};

/// The benchmark scheduler's stream.
pub const BENCHMARK_STREAM: &str = "benchmarks";
/// Run summaries kept (the oldest is dropped first).
pub const BENCHMARK_RUNS_KEPT_MAX: usize = 20;

/// One provider × category, as stored: sums, from which the view takes means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRow {
    /// The run these results belong to.
    pub run_id: Uuid,
    /// Model of the latest result.
    pub model: String,
    /// Tests recorded.
    pub tests: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Sum of quality scores (0–100 each).
    pub quality_sum: f64,
    /// Sum of latencies, microseconds.
    pub latency_sum_micros: u64,
    /// Sum of costs, micro-USD.
    pub cost_micros: u64,
    /// When the latest result was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Whether the run has completed.
    pub run_completed: bool,
}

impl BenchmarkRow {
    fn new(result: &BenchmarkResultRecorded, at: DateTime<Utc>) -> Self {
        BenchmarkRow {
            run_id: result.run_id,
            model: result.model.clone(),
            tests: 0,
            successes: 0,
            quality_sum: 0.0,
            latency_sum_micros: 0,
            cost_micros: 0,
            recorded_at: at,
            run_completed: false,
        }
    }

    fn add(&mut self, result: &BenchmarkResultRecorded, at: DateTime<Utc>) {
        self.model.clone_from(&result.model);
        self.tests += 1;
        self.successes += u64::from(result.success);
        self.quality_sum += result.quality;
        self.latency_sum_micros = self
            .latency_sum_micros
            .saturating_add(result.latency_micros);
        self.cost_micros = self.cost_micros.saturating_add(result.cost_micros);
        self.recorded_at = at;
    }

    /// The row as results: means over its tests.
    pub fn result(&self, provider: &str, category: &str) -> BenchmarkResult {
        let tests = self.tests.max(1) as f64;
        BenchmarkResult {
            provider: provider.to_owned(),
            category: category.to_owned(),
            model: self.model.clone(),
            run_id: self.run_id,
            tests: self.tests,
            successes: self.successes,
            success_rate: self.successes as f64 / tests,
            mean_quality: self.quality_sum / tests,
            mean_latency_micros: self.latency_sum_micros as f64 / tests,
            cost_micros: self.cost_micros,
            recorded_at: self.recorded_at,
            run_completed: self.run_completed,
        }
    }
}

/// The latest result of one provider × category, as the view and
/// [`Benchmarks::latest`] give it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = BenchmarkRow)]
pub struct BenchmarkResult {
    /// Provider.
    pub provider: String,
    /// Category.
    pub category: String,
    /// Model of the latest result.
    pub model: String,
    /// The run.
    pub run_id: Uuid,
    /// Tests recorded in this run and category.
    pub tests: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// `successes / tests`.
    pub success_rate: f64,
    /// Mean quality 0–100 (failed calls score 0).
    pub mean_quality: f64,
    /// Mean latency, microseconds.
    pub mean_latency_micros: f64,
    /// Total cost of these tests, micro-USD.
    pub cost_micros: u64,
    /// When the latest of them was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Whether the run has completed (else more results may follow).
    pub run_completed: bool,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Scheduled, not started.
    #[default]
    Scheduled,
    /// Started, results coming in.
    Running,
    /// Completed.
    Completed,
}

/// One benchmark run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRunSummary {
    /// Run id.
    pub run_id: Uuid,
    /// Where it is.
    pub status: RunStatus,
    /// `schedule` or `manual`, when the schedule event was seen.
    pub trigger: Option<String>,
    /// Categories scheduled.
    pub categories: Vec<String>,
    /// Providers scheduled, plus any that results came from (sorted).
    pub providers: Vec<String>,
    /// When it was scheduled.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Tests planned (from `benchmark.run.started`).
    pub tests_planned: Option<u32>,
    /// Results recorded.
    pub results: u64,
    /// Of which failed calls.
    pub failures: u64,
    /// Sum of quality over its results.
    pub quality_sum: f64,
    /// Cost of the run, micro-USD.
    pub cost_micros: u64,
    /// Wall time reported at completion, microseconds.
    pub duration_micros: Option<u64>,
}

/// The `benchmarks` model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchmarksModel {
    /// Provider → category → latest row.
    pub latest: BTreeMap<String, BTreeMap<String, BenchmarkRow>>,
    /// The last [`BENCHMARK_RUNS_KEPT_MAX`] runs, oldest first.
    pub runs: Vec<BenchmarkRunSummary>,
    /// Results ever recorded.
    pub results_total: u64,
}

/// The `benchmarks` projection.
#[derive(Debug, Clone, Default)]
pub struct Benchmarks {
    model: BenchmarksModel,
}

impl Benchmarks {
    /// An empty projection.
    pub fn new() -> Self {
        Benchmarks::default()
    }

    /// The latest result per provider × category, optionally of one `category`
    /// only, recorded no longer than `max_age` before `now`; sorted by category,
    /// then provider. (`now` is an argument so the answer is reproducible.)
    pub fn latest(
        &self,
        category: Option<&str>,
        max_age: TimeDelta,
        now: DateTime<Utc>,
    ) -> Vec<BenchmarkResult> {
        let oldest = now.checked_sub_signed(max_age);
        let mut results: Vec<BenchmarkResult> = self
            .model
            .latest
            .iter()
            .flat_map(|(provider, categories)| {
                categories
                    .iter()
                    .filter(|(name, _)| category.is_none_or(|wanted| wanted == name.as_str()))
                    .filter(|(_, row)| oldest.is_none_or(|oldest| row.recorded_at >= oldest))
                    .map(|(name, row)| row.result(provider, name))
            })
            .collect();
        results.sort_by(|a, b| (&a.category, &a.provider).cmp(&(&b.category, &b.provider)));
        results
    }

    /// Run summaries, oldest first.
    pub fn runs(&self) -> &[BenchmarkRunSummary] {
        &self.model.runs
    }

    /// The summary of `run_id`, created (dropping the oldest past the bound) if new.
    fn run(&mut self, run_id: Uuid) -> &mut BenchmarkRunSummary {
        let runs = &mut self.model.runs;
        let index = match runs.iter().position(|run| run.run_id == run_id) {
            Some(index) => index,
            None => {
                if runs.len() >= BENCHMARK_RUNS_KEPT_MAX {
                    runs.remove(0);
                }
                runs.push(BenchmarkRunSummary {
                    run_id,
                    ..BenchmarkRunSummary::default()
                });
                runs.len() - 1
            }
        };
        &mut runs[index]
    }

    fn result(&mut self, result: &BenchmarkResultRecorded, at: DateTime<Utc>) {
        self.model.results_total += 1;
        let categories = self
            .model
            .latest
            .entry(result.provider.clone())
            .or_default();
        let row = categories
            .entry(result.category.clone())
            .or_insert_with(|| BenchmarkRow::new(result, at));
        if row.run_id != result.run_id {
            *row = BenchmarkRow::new(result, at);
        }
        row.add(result, at);
        let run = self.run(result.run_id);
        if run.status == RunStatus::Scheduled {
            run.status = RunStatus::Running;
        }
        run.results += 1;
        run.failures += u64::from(!result.success);
        run.quality_sum += result.quality;
        run.cost_micros = run.cost_micros.saturating_add(result.cost_micros);
        if let Err(index) = run.providers.binary_search(&result.provider) {
            run.providers.insert(index, result.provider.clone());
        }
    }

    fn completed(&mut self, run_id: Uuid, duration_micros: u64, at: DateTime<Utc>) {
        let run = self.run(run_id);
        run.status = RunStatus::Completed;
        run.completed_at = Some(at);
        run.duration_micros = Some(duration_micros);
        for row in self
            .model
            .latest
            .values_mut()
            .flat_map(BTreeMap::values_mut)
        {
            if row.run_id == run_id {
                row.run_completed = true;
            }
        }
    }
}

/// A run summary as the view shows it (with its mean quality).
#[derive(Serialize)]
struct RunView<'a> {
    #[serde(flatten)]
    run: &'a BenchmarkRunSummary,
    mean_quality: Option<f64>,
}

impl Projection for Benchmarks {
    const NAME: &'static str = "benchmarks";
    type Model = BenchmarksModel;

    fn apply(&mut self, envelope: &Envelope) {
        if envelope.stream != BENCHMARK_STREAM {
            return;
        }
        let at = envelope.recorded_at;
        match &envelope.payload {
            Event::BenchmarkRunScheduled(scheduled) => {
                let run = self.run(scheduled.run_id);
                run.trigger = Some(scheduled.trigger.clone());
                run.categories.clone_from(&scheduled.categories);
                let mut providers = scheduled.providers.clone();
                providers.append(&mut run.providers);
                providers.sort_unstable();
                providers.dedup();
                run.providers = providers;
                run.scheduled_at = Some(at);
            }
            Event::BenchmarkRunStarted(started) => {
                let run = self.run(started.run_id);
                if run.status == RunStatus::Scheduled {
                    run.status = RunStatus::Running;
                }
                run.started_at = Some(at);
                run.tests_planned = Some(started.tests);
            }
            Event::BenchmarkResultRecorded(result) => self.result(result, at),
            Event::BenchmarkRunCompleted(done) => {
                self.completed(done.run_id, done.duration_micros, at)
            }
            _ => {}
        }
    }

    fn model(&self) -> &BenchmarksModel {
        &self.model
    }

    fn restore(&mut self, model: BenchmarksModel) {
        self.model = model;
    }

    /// `{"latest": {provider: {category: BenchmarkResult}}, "runs": [...],
    /// "results_total"}`: means instead of sums.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        let latest: BTreeMap<&str, BTreeMap<&str, BenchmarkResult>> = self
            .model
            .latest
            .iter()
            .map(|(provider, categories)| {
                let rows = categories
                    .iter()
                    .map(|(category, row)| (category.as_str(), row.result(provider, category)))
                    .collect();
                (provider.as_str(), rows)
            })
            .collect();
        let runs: Vec<RunView<'_>> = self
            .model
            .runs
            .iter()
            .map(|run| RunView {
                run,
                mean_quality: (run.results > 0).then(|| run.quality_sum / run.results as f64),
            })
            .collect();
        Ok(serde_json::json!({
            "latest": serde_json::to_value(latest)?,
            "runs": serde_json::to_value(runs)?,
            "results_total": self.model.results_total,
        }))
    }
}

impl Narrow for Benchmarks {
    const FILTERS: &'static [FilterKind] = &[FilterKind::Provider];

    /// `--provider P`: P's rows, and the runs that included P.
    fn narrowed(&self, filter: &ViewFilter) -> Self {
        match filter {
            ViewFilter::Provider(provider) => Benchmarks {
                model: BenchmarksModel {
                    latest: keep_key(&self.model.latest, provider),
                    runs: self
                        .model
                        .runs
                        .iter()
                        .filter(|run| run.providers.iter().any(|p| p == provider))
                        .cloned()
                        .collect(),
                    results_total: self.model.results_total,
                },
            },
            ViewFilter::User(_) => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
