//! `routing`: seed 004's materialized view of routing performance — per provider ×
//! model × category × day (UTC date of the event time) from `execution.recorded`:
//! requests, successes and success rate, mean quality (over the records that have
//! one), mean and max latency, cost estimate versus actual, and the feedback given
//! on those requests.
//!
//! `feedback.recorded` names only its request, so the execution's row is looked up
//! in an index of the last [`RECENT_REQUESTS_MAX`] requests; feedback on an older
//! request is counted in `feedback_unmatched` instead. The index is part of the
//! model (a restored snapshot must join exactly as an uninterrupted fold would) but
//! not of the view.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tutorlog_schemas::{
    events::{ExecutionRecorded, FeedbackRecorded},
    Envelope, Event,
};
use uuid::Uuid;

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
    spend::keep_key,
};

/// Requests remembered for joining feedback to its execution's row.
pub const RECENT_REQUESTS_MAX: usize = 100_000;
/// The provider or model name of an execution that reached none.
pub const NO_PROVIDER: &str = "(none)";

/// One provider × model × category × day, as stored: sums and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingRow {
    /// Executions recorded.
    pub requests: u64,
    /// Of which the client got an answer.
    pub successes: u64,
    /// Of which needed more than one provider attempt.
    pub failovers: u64,
    /// Of which were streamed.
    pub streamed: u64,
    /// Sum of quality over the executions that have one.
    pub quality_sum: f64,
    /// Executions with a quality.
    pub quality_count: u64,
    /// Sum of durations, microseconds.
    pub duration_sum_micros: u64,
    /// Longest duration, microseconds.
    pub duration_max_micros: u64,
    /// Sum of cost estimates, micro-USD.
    pub cost_estimate_micros: u64,
    /// Sum of actual costs, micro-USD.
    pub cost_actual_micros: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Failed executions per error kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Feedback records joined to these executions.
    pub feedback: u64,
    /// Sum of ratings (1–5) given.
    pub rating_sum: u64,
    /// Ratings given.
    pub rating_count: u64,
    /// Feedback that accepted the answer.
    pub accepted: u64,
    /// Feedback that rejected the answer.
    pub rejected: u64,
}

impl RoutingRow {
    fn execution(&mut self, execution: &ExecutionRecorded) {
        self.requests += 1;
        self.successes += u64::from(execution.success);
        self.failovers += u64::from(execution.attempts > 1);
        self.streamed += u64::from(execution.streamed);
        if let Some(quality) = execution.quality {
            self.quality_sum += quality;
            self.quality_count += 1;
        }
        self.duration_sum_micros = self
            .duration_sum_micros
            .saturating_add(execution.duration_micros);
        self.duration_max_micros = self.duration_max_micros.max(execution.duration_micros);
        self.cost_estimate_micros = self
            .cost_estimate_micros
            .saturating_add(execution.cost_estimate_micros);
        self.cost_actual_micros = self
            .cost_actual_micros
            .saturating_add(execution.cost_actual_micros);
        self.input_tokens = self.input_tokens.saturating_add(execution.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(execution.output_tokens);
        if let (false, Some(kind)) = (execution.success, execution.error_kind) {
            *self
                .errors_by_kind
                .entry(kind.as_str().to_owned())
                .or_insert(0) += 1;
        }
    }

    fn feedback(&mut self, feedback: &FeedbackRecorded) {
        self.feedback += 1;
        if let Some(rating) = feedback.rating {
            self.rating_sum += u64::from(rating);
            self.rating_count += 1;
        }
        match feedback.accepted {
            Some(true) => self.accepted += 1,
            Some(false) => self.rejected += 1,
            None => {}
        }
    }

    /// The row with its rates and means.
    pub fn view(&self) -> RoutingRowView<'_> {
        let requests = self.requests.max(1) as f64;
        RoutingRowView {
            row: self,
            success_rate: self.successes as f64 / requests,
            mean_quality: (self.quality_count > 0)
                .then(|| self.quality_sum / self.quality_count as f64),
            mean_latency_micros: self.duration_sum_micros as f64 / requests,
            cost_ratio: (self.cost_estimate_micros > 0)
                .then(|| self.cost_actual_micros as f64 / self.cost_estimate_micros as f64),
            mean_rating: (self.rating_count > 0)
                .then(|| self.rating_sum as f64 / self.rating_count as f64),
        }
    }
}

/// A row as the view shows it: its sums plus rates and means.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingRowView<'a> {
    /// The sums and counts.
    #[serde(flatten)]
    pub row: &'a RoutingRow,
    /// `successes / requests`.
    pub success_rate: f64,
    /// Mean quality over the executions that have one.
    pub mean_quality: Option<f64>,
    /// Mean duration, microseconds.
    pub mean_latency_micros: f64,
    /// `cost_actual / cost_estimate`; `None` when nothing was estimated.
    pub cost_ratio: Option<f64>,
    /// Mean rating.
    pub mean_rating: Option<f64>,
}

/// The coordinates of one row. Not in the view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowKey {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Category.
    pub category: String,
    /// Day, `YYYY-MM-DD`.
    pub day: String,
}

/// Where a recent request's execution was counted: `(log position of the
/// execution, index of its row in [`RoutingModel::row_keys`])`. A pair rather than
/// the row's names, so that the index of [`RECENT_REQUESTS_MAX`] requests stays
/// about 5 MB of snapshot instead of 14. Not in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRequest(pub u64, pub u32);

/// Category → day → row.
pub type CategoryDays = BTreeMap<String, BTreeMap<String, RoutingRow>>;

/// The `routing` model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingModel {
    /// Provider → model → category → day (`YYYY-MM-DD`) → row.
    pub providers: BTreeMap<String, BTreeMap<String, CategoryDays>>,
    /// Executions recorded.
    pub executions_total: u64,
    /// Feedback records seen.
    pub feedback_total: u64,
    /// Feedback whose request was not among the recent ones.
    pub feedback_unmatched: u64,
    /// The key of every row an execution was counted in, in order of first use
    /// (as many as the view has rows). Not in the view.
    pub row_keys: Vec<RowKey>,
    /// Request id → its row, for the last [`RECENT_REQUESTS_MAX`] executions. Not in
    /// the view.
    pub recent_requests: BTreeMap<Uuid, RecentRequest>,
}

/// The view's nesting: provider → model → category → day → row.
type ProvidersView<'a> =
    BTreeMap<&'a str, BTreeMap<&'a str, BTreeMap<&'a str, BTreeMap<&'a str, RoutingRowView<'a>>>>>;

/// The `routing` projection.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    model: RoutingModel,
    /// `(position, request id)` of every entry of `recent_requests`, oldest first;
    /// derived from the model on restore.
    recent_order: BTreeSet<(u64, Uuid)>,
    /// Row key → its index in `row_keys`; derived from the model on restore.
    row_ids: BTreeMap<RowKey, u32>,
}

impl Routing {
    /// An empty projection.
    pub fn new() -> Self {
        Routing::default()
    }

    /// One provider's rows: model → category → day → row.
    pub fn provider(&self, provider: &str) -> Option<&BTreeMap<String, CategoryDays>> {
        self.model.providers.get(provider)
    }

    fn row(&mut self, key: &RowKey) -> &mut RoutingRow {
        self.model
            .providers
            .entry(key.provider.clone())
            .or_default()
            .entry(key.model.clone())
            .or_default()
            .entry(key.category.clone())
            .or_default()
            .entry(key.day.clone())
            .or_default()
    }

    fn execution(&mut self, execution: &ExecutionRecorded, envelope: &Envelope) {
        self.model.executions_total += 1;
        let key = RowKey {
            provider: execution
                .provider
                .clone()
                .unwrap_or_else(|| NO_PROVIDER.to_owned()),
            model: execution
                .model
                .clone()
                .unwrap_or_else(|| NO_PROVIDER.to_owned()),
            category: execution.category.clone(),
            day: envelope.recorded_at.format("%Y-%m-%d").to_string(),
        };
        self.row(&key).execution(execution);
        if let Some(row_id) = self.row_id(key) {
            self.remember(
                execution.request_id,
                RecentRequest(envelope.position, row_id),
            );
        }
    }

    /// The index of `key` in `row_keys`, added if new; `None` past `u32::MAX` rows
    /// (such requests are not remembered, so their feedback goes unmatched).
    fn row_id(&mut self, key: RowKey) -> Option<u32> {
        if let Some(id) = self.row_ids.get(&key) {
            return Some(*id);
        }
        let id = u32::try_from(self.model.row_keys.len()).ok()?;
        self.model.row_keys.push(key.clone());
        self.row_ids.insert(key, id);
        Some(id)
    }

    fn remember(&mut self, request_id: Uuid, recent: RecentRequest) {
        self.recent_order.insert((recent.0, request_id));
        if let Some(previous) = self.model.recent_requests.insert(request_id, recent) {
            self.recent_order.remove(&(previous.0, request_id));
        }
        while self.model.recent_requests.len() > RECENT_REQUESTS_MAX {
            let Some((_, oldest)) = self.recent_order.pop_first() else {
                break;
            };
            self.model.recent_requests.remove(&oldest);
        }
    }

    fn feedback(&mut self, feedback: &FeedbackRecorded) {
        self.model.feedback_total += 1;
        let key = self
            .model
            .recent_requests
            .get(&feedback.request_id)
            .and_then(|recent| self.model.row_keys.get(usize::try_from(recent.1).ok()?))
            .cloned();
        let Some(key) = key else {
            self.model.feedback_unmatched += 1;
            return;
        };
        self.row(&key).feedback(feedback);
    }
}

impl Projection for Routing {
    const NAME: &'static str = "routing";
    type Model = RoutingModel;

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.payload {
            Event::ExecutionRecorded(execution) => self.execution(execution, envelope),
            Event::FeedbackRecorded(feedback) => self.feedback(feedback),
            _ => {}
        }
    }

    fn model(&self) -> &RoutingModel {
        &self.model
    }

    fn restore(&mut self, model: RoutingModel) {
        self.recent_order = model
            .recent_requests
            .iter()
            .map(|(id, recent)| (recent.0, *id))
            .collect();
        self.row_ids = model
            .row_keys
            .iter()
            .enumerate()
            .filter_map(|(index, key)| Some((key.clone(), u32::try_from(index).ok()?)))
            .collect();
        self.model = model;
    }

    /// `{"providers": {provider: {model: {category: {day: row}}}}, totals}`: rows
    /// with their rates and means; the join index stays inside.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        let providers: ProvidersView<'_> = self
            .model
            .providers
            .iter()
            .map(|(provider, models)| {
                let models = models
                    .iter()
                    .map(|(model, categories)| {
                        let categories = categories
                            .iter()
                            .map(|(category, days)| {
                                let days = days
                                    .iter()
                                    .map(|(day, row)| (day.as_str(), row.view()))
                                    .collect();
                                (category.as_str(), days)
                            })
                            .collect();
                        (model.as_str(), categories)
                    })
                    .collect();
                (provider.as_str(), models)
            })
            .collect();
        Ok(serde_json::json!({
            "providers": serde_json::to_value(providers)?,
            "executions_total": self.model.executions_total,
            "feedback_total": self.model.feedback_total,
            "feedback_unmatched": self.model.feedback_unmatched,
        }))
    }
}

impl Narrow for Routing {
    const FILTERS: &'static [FilterKind] = &[FilterKind::Provider];

    /// `--provider P`: P's rows; the totals stay those of the whole log.
    fn narrowed(&self, filter: &ViewFilter) -> Self {
        match filter {
            ViewFilter::Provider(provider) => Routing {
                model: RoutingModel {
                    providers: keep_key(&self.model.providers, provider),
                    executions_total: self.model.executions_total,
                    feedback_total: self.model.feedback_total,
                    feedback_unmatched: self.model.feedback_unmatched,
                    row_keys: Vec::new(),
                    recent_requests: BTreeMap::new(),
                },
                recent_order: BTreeSet::new(),
                row_ids: BTreeMap::new(),
            },
            ViewFilter::User(_) => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
