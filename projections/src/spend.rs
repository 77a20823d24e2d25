//! `spend`: money per provider × budget period (calendar month, from the events'
//! `period`, so no reset job is needed), folded from the `budget-{provider}`
//! streams; plus committed cost per model (within each provider × period), per user
//! and per session.
//!
//! All amounts are integer micro-USD, so the view reconciles exactly with the
//! budget actor: `reserved` is the sum of open reservations (reserved, not yet
//! committed or released), `committed` the sum of `budget.committed`, and
//! `remaining = limit − reserved − committed`, floored at 0. A provider whose
//! monthly limit is 0 is free (never blocks): it shows `free: true`, limit 0,
//! remaining 0 and no `percent_used`. A provider with no `budget.limit.changed` yet
//! counts as free too.
//!
//! A commit is attributed to its reservation's user, session and model by request
//! id. Only *open* reservations are kept (closed ones are forgotten), so that map is
//! bounded by the calls in flight; [`OPEN_RESERVATIONS_PER_PROVIDER_MAX`] is a
//! safety net for reservations nobody ever closes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tutorlog_schemas::{
    events::{BudgetCommitted, BudgetExceeded, BudgetReleased, BudgetReserved},
    Envelope, Event,
};
use uuid::Uuid;

use crate::{
    narrow::{FilterKind, Narrow, ViewFilter},
    projection::Projection,
};

/// Stream prefix of budget aggregates: `budget-{provider}`.
pub const BUDGET_STREAM_PREFIX: &str = "budget-";
/// Most open reservations kept per provider. Past it the oldest (smallest request
/// id; ids are UUID v7, so by time) is dropped and its estimate no longer counts as
/// reserved: counted in [`ProviderSpend::reservations_dropped`].
pub const OPEN_RESERVATIONS_PER_PROVIDER_MAX: usize = 100_000;
/// Most sessions whose cost is kept; past it the least recently active tenth is
/// dropped at once (counted in [`SpendModel::sessions_dropped`]).
pub const SESSIONS_KEPT_MAX: usize = 50_000;
/// Sessions dropped together when [`SESSIONS_KEPT_MAX`] is passed: dropping in
/// batches keeps the cost of finding the oldest amortised.
const SESSIONS_DROPPED_PER_BATCH: usize = SESSIONS_KEPT_MAX / 10;
/// The model name of a commit whose reservation is unknown.
pub const UNKNOWN_MODEL: &str = "(unknown)";

const _: () =
    assert!(SESSIONS_DROPPED_PER_BATCH > 0 && SESSIONS_DROPPED_PER_BATCH < SESSIONS_KEPT_MAX);

/// Committed cost and the number of committed requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostCount {
    /// Sum of actual costs, micro-USD.
    pub committed_micros: u64,
    /// Requests committed.
    pub requests: u64,
}

impl CostCount {
    fn add(&mut self, micros: u64) {
        self.committed_micros = self.committed_micros.saturating_add(micros);
        self.requests += 1;
    }
}

/// Event counts of one provider × period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendCounts {
    /// `budget.reserved`.
    pub reservations: u64,
    /// `budget.committed`.
    pub commits: u64,
    /// `budget.released`.
    pub releases: u64,
    /// `provider.budget.exceeded`.
    pub exceeded: u64,
    /// Of `exceeded`, refusals by the per-request limit (the rest hit the monthly one).
    pub exceeded_per_request: u64,
    /// Commits whose reservation was not known (dropped, or before the log began).
    pub commits_unmatched: u64,
}

/// One provider × period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodSpend {
    /// The monthly limit in effect (the provider's latest `budget.limit.changed`
    /// at or before this period), micro-USD; 0 when free.
    pub limit_micros: u64,
    /// Whether the provider is free (monthly limit 0): it never blocks.
    pub free: bool,
    /// Sum of open reservations' estimates, micro-USD.
    pub reserved_micros: u64,
    /// Sum of actual costs committed, micro-USD.
    pub committed_micros: u64,
    /// `limit − reserved − committed`, floored at 0 (0 when free), micro-USD.
    pub remaining_micros: u64,
    /// `(reserved + committed) / limit` in percent, to 2 decimals; `None` when free.
    pub percent_used: Option<f64>,
    /// Sum of the estimates of the reservations that were committed, micro-USD
    /// (compare with `committed_micros` to see how good estimates are).
    pub committed_estimate_micros: u64,
    /// Input tokens committed.
    pub input_tokens: u64,
    /// Output tokens committed.
    pub output_tokens: u64,
    /// Event counts.
    pub counts: SpendCounts,
    /// Committed cost per model.
    pub models: BTreeMap<String, CostCount>,
}

impl PeriodSpend {
    fn with_limit(limit_micros: u64) -> Self {
        let mut period = PeriodSpend::default();
        period.set_limit(limit_micros);
        period
    }

    fn set_limit(&mut self, limit_micros: u64) {
        self.limit_micros = limit_micros;
        self.free = limit_micros == 0;
        self.refresh();
    }

    /// Recomputes the derived figures after any change.
    fn refresh(&mut self) {
        let used = self.reserved_micros.saturating_add(self.committed_micros);
        if self.free {
            self.remaining_micros = 0;
            self.percent_used = None;
        } else {
            self.remaining_micros = self.limit_micros.saturating_sub(used);
            let percent = used as f64 * 100.0 / self.limit_micros as f64;
            self.percent_used = Some((percent * 100.0).round() / 100.0);
        }
    }
}

/// One provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpend {
    /// Current monthly limit, micro-USD (0: free).
    pub monthly_limit_micros: u64,
    /// Current per-request limit, micro-USD (0: none).
    pub per_request_limit_micros: u64,
    /// Whether the provider is free now.
    pub free: bool,
    /// When the limits last changed.
    pub limit_changed_at: Option<DateTime<Utc>>,
    /// Reservations open now.
    pub open_reservations: u64,
    /// Open reservations dropped at [`OPEN_RESERVATIONS_PER_PROVIDER_MAX`].
    pub reservations_dropped: u64,
    /// Period (`YYYY-MM`) → figures.
    pub periods: BTreeMap<String, PeriodSpend>,
}

impl ProviderSpend {
    fn period(&mut self, period: &str) -> &mut PeriodSpend {
        let limit = self.monthly_limit_micros;
        self.periods
            .entry(period.to_owned())
            .or_insert_with(|| PeriodSpend::with_limit(limit))
    }
}

/// One user, across providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpend {
    /// All-time committed cost, micro-USD.
    pub committed_micros: u64,
    /// All-time committed requests.
    pub requests: u64,
    /// Period (`YYYY-MM`) → committed cost and requests.
    pub periods: BTreeMap<String, CostCount>,
}

/// One session, across providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpend {
    /// The user of its first commit, if known.
    pub user_id: Option<String>,
    /// Committed cost, micro-USD.
    pub committed_micros: u64,
    /// Committed requests.
    pub requests: u64,
    /// Log position of its latest commit (which sessions are dropped first).
    pub last_position: u64,
}

/// A reservation not yet committed or released. Not in the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReservation {
    /// Period it was reserved in.
    pub period: String,
    /// Model.
    pub model: String,
    /// Estimate, micro-USD.
    pub estimate_micros: u64,
    /// User, if known.
    pub user_id: Option<String>,
    /// Session, if any.
    pub session_id: Option<String>,
}

/// The `spend` model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendModel {
    /// Provider → figures.
    pub providers: BTreeMap<String, ProviderSpend>,
    /// User → committed cost.
    pub users: BTreeMap<String, UserSpend>,
    /// Session → committed cost (the most recently active [`SESSIONS_KEPT_MAX`]).
    pub sessions: BTreeMap<String, SessionSpend>,
    /// Sessions dropped from `sessions`.
    pub sessions_dropped: u64,
    /// Provider → request id → open reservation. Not in the view.
    pub open: BTreeMap<String, BTreeMap<Uuid, OpenReservation>>,
}

/// The `spend` projection.
#[derive(Debug, Clone, Default)]
pub struct Spend {
    model: SpendModel,
}

/// What a commit is attributed to.
struct Attribution {
    model: String,
    user_id: Option<String>,
    session_id: Option<String>,
    estimate_micros: Option<u64>,
}

impl Spend {
    /// An empty projection.
    pub fn new() -> Self {
        Spend::default()
    }

    /// One provider's figures.
    pub fn provider(&self, provider: &str) -> Option<&ProviderSpend> {
        self.model.providers.get(provider)
    }

    /// One provider × period (`YYYY-MM`).
    pub fn period(&self, provider: &str, period: &str) -> Option<&PeriodSpend> {
        self.provider(provider)?.periods.get(period)
    }

    /// One user's committed cost.
    pub fn user(&self, user_id: &str) -> Option<&UserSpend> {
        self.model.users.get(user_id)
    }

    /// One session's committed cost.
    pub fn session(&self, session_id: &str) -> Option<&SessionSpend> {
        self.model.sessions.get(session_id)
    }

    fn provider_mut(&mut self, provider: &str) -> &mut ProviderSpend {
        self.model.providers.entry(provider.to_owned()).or_default()
    }

    fn limit_changed(&mut self, provider: &str, monthly: u64, per_request: u64, at: DateTime<Utc>) {
        let from_period = at.format("%Y-%m").to_string();
        let row = self.provider_mut(provider);
        row.monthly_limit_micros = monthly;
        row.per_request_limit_micros = per_request;
        row.free = monthly == 0;
        row.limit_changed_at = Some(at);
        // The new limit applies from the month of the change on; earlier months
        // keep the limit they had.
        for (_, period) in row.periods.range_mut(from_period..) {
            period.set_limit(monthly);
        }
    }

    fn reserved(&mut self, provider: &str, reserved: &BudgetReserved) {
        // A repeated reservation of the same request replaces the first.
        self.close(provider, &reserved.request_id);
        let open = self.model.open.entry(provider.to_owned()).or_default();
        open.insert(
            reserved.request_id,
            OpenReservation {
                period: reserved.period.clone(),
                model: reserved.model.clone(),
                estimate_micros: reserved.estimate_micros,
                user_id: reserved.user_id.clone(),
                session_id: reserved.session_id.clone(),
            },
        );
        let dropped = if open.len() > OPEN_RESERVATIONS_PER_PROVIDER_MAX {
            open.pop_first().map(|(_, reservation)| reservation)
        } else {
            None
        };
        let row = self.provider_mut(provider);
        row.open_reservations += 1;
        let period = row.period(&reserved.period);
        period.counts.reservations += 1;
        period.reserved_micros = period
            .reserved_micros
            .saturating_add(reserved.estimate_micros);
        period.refresh();
        if let Some(reservation) = dropped {
            let row = self.provider_mut(provider);
            row.reservations_dropped += 1;
            row.open_reservations = row.open_reservations.saturating_sub(1);
            unreserve(row.period(&reservation.period), reservation.estimate_micros);
        }
    }

    /// Removes an open reservation, taking its estimate out of `reserved`.
    fn close(&mut self, provider: &str, request_id: &Uuid) -> Option<OpenReservation> {
        let reservation = self.model.open.get_mut(provider)?.remove(request_id)?;
        let row = self.provider_mut(provider);
        row.open_reservations = row.open_reservations.saturating_sub(1);
        unreserve(row.period(&reservation.period), reservation.estimate_micros);
        Some(reservation)
    }

    fn committed(&mut self, provider: &str, committed: &BudgetCommitted, position: u64) {
        let attribution = match self.close(provider, &committed.request_id) {
            Some(reservation) => Attribution {
                model: reservation.model,
                user_id: reservation.user_id,
                session_id: reservation.session_id,
                estimate_micros: Some(reservation.estimate_micros),
            },
            None => Attribution {
                model: UNKNOWN_MODEL.to_owned(),
                user_id: None,
                session_id: None,
                estimate_micros: None,
            },
        };
        let actual = committed.actual_micros;
        let period = self.provider_mut(provider).period(&committed.period);
        period.counts.commits += 1;
        period.committed_micros = period.committed_micros.saturating_add(actual);
        period.input_tokens = period.input_tokens.saturating_add(committed.input_tokens);
        period.output_tokens = period.output_tokens.saturating_add(committed.output_tokens);
        match attribution.estimate_micros {
            Some(estimate) => {
                period.committed_estimate_micros =
                    period.committed_estimate_micros.saturating_add(estimate)
            }
            None => period.counts.commits_unmatched += 1,
        }
        period
            .models
            .entry(attribution.model)
            .or_default()
            .add(actual);
        period.refresh();
        if let Some(user_id) = &attribution.user_id {
            let user = self.model.users.entry(user_id.clone()).or_default();
            user.committed_micros = user.committed_micros.saturating_add(actual);
            user.requests += 1;
            user.periods
                .entry(committed.period.clone())
                .or_default()
                .add(actual);
        }
        if let Some(session_id) = &attribution.session_id {
            self.session_committed(session_id, attribution.user_id, actual, position);
        }
    }

    fn session_committed(
        &mut self,
        session_id: &str,
        user_id: Option<String>,
        actual: u64,
        position: u64,
    ) {
        let session = self
            .model
            .sessions
            .entry(session_id.to_owned())
            .or_default();
        if session.user_id.is_none() {
            session.user_id = user_id;
        }
        session.committed_micros = session.committed_micros.saturating_add(actual);
        session.requests += 1;
        session.last_position = position;
        if self.model.sessions.len() > SESSIONS_KEPT_MAX {
            self.drop_oldest_sessions();
        }
    }

    /// Drops the least recently active sessions (ties by session id, so the result
    /// depends only on the model).
    fn drop_oldest_sessions(&mut self) {
        let mut by_age: Vec<(u64, String)> = self
            .model
            .sessions
            .iter()
            .map(|(id, session)| (session.last_position, id.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, id) in by_age.into_iter().take(SESSIONS_DROPPED_PER_BATCH) {
            self.model.sessions.remove(&id);
            self.model.sessions_dropped += 1;
        }
    }

    fn released(&mut self, provider: &str, released: &BudgetReleased) {
        self.close(provider, &released.request_id);
        let period = self.provider_mut(provider).period(&released.period);
        period.counts.releases += 1;
        period.refresh();
    }

    fn exceeded(&mut self, provider: &str, exceeded: &BudgetExceeded) {
        let period = self.provider_mut(provider).period(&exceeded.period);
        period.counts.exceeded += 1;
        if exceeded.limit == tutorlog_schemas::events::BudgetLimitKind::PerRequest {
            period.counts.exceeded_per_request += 1;
        }
    }
}

fn unreserve(period: &mut PeriodSpend, estimate_micros: u64) {
    debug_assert!(
        period.reserved_micros >= estimate_micros,
        "reserved went negative"
    );
    period.reserved_micros = period.reserved_micros.saturating_sub(estimate_micros);
    period.refresh();
}

impl Projection for Spend {
    const NAME: &'static str = "spend";
    type Model = SpendModel;

    fn apply(&mut self, envelope: &Envelope) {
        let Some(provider) = envelope.stream.strip_prefix(BUDGET_STREAM_PREFIX) else {
            return;
        };
        if provider.is_empty() {
            return;
        }
        match &envelope.payload {
            Event::BudgetLimitChanged(changed) => self.limit_changed(
                provider,
                changed.monthly_micros,
                changed.per_request_micros,
                envelope.recorded_at,
            ),
            Event::BudgetReserved(reserved) => self.reserved(provider, reserved),
            Event::BudgetCommitted(committed) => {
                self.committed(provider, committed, envelope.position)
            }
            Event::BudgetReleased(released) => self.released(provider, released),
            Event::BudgetExceeded(exceeded) => self.exceeded(provider, exceeded),
            _ => {}
        }
    }

    fn model(&self) -> &SpendModel {
        &self.model
    }

    fn restore(&mut self, model: SpendModel) {
        self.model = model;
    }

    /// Everything but the open-reservation index.
    fn view(&self) -> Result<serde_json::Value, serde_json::Error> {
        Ok(serde_json::json!({
            "providers": serde_json::to_value(&self.model.providers)?,
            "users": serde_json::to_value(&self.model.users)?,
            "sessions": serde_json::to_value(&self.model.sessions)?,
            "sessions_dropped": self.model.sessions_dropped,
        }))
    }
}

impl Narrow for Spend {
    const FILTERS: &'static [FilterKind] = &[FilterKind::User, FilterKind::Provider];

    /// `--provider P`: that provider's rows (users and sessions span providers and
    /// are left out). `--user U`: that user's costs and sessions (provider rows
    /// aggregate every user and are left out).
    fn narrowed(&self, filter: &ViewFilter) -> Self {
        let model = &self.model;
        let narrowed = match filter {
            ViewFilter::Provider(provider) => SpendModel {
                providers: keep_key(&model.providers, provider),
                open: keep_key(&model.open, provider),
                ..SpendModel::default()
            },
            ViewFilter::User(user) => SpendModel {
                users: keep_key(&model.users, user),
                sessions: model
                    .sessions
                    .iter()
                    .filter(|(_, session)| session.user_id.as_deref() == Some(user.as_str()))
                    .map(|(id, session)| (id.clone(), session.clone()))
                    .collect(),
                ..SpendModel::default()
            },
        };
        Spend { model: narrowed }
    }
}

/// The entry of `key` alone.
pub(crate) fn keep_key<V: Clone>(map: &BTreeMap<String, V>, key: &str) -> BTreeMap<String, V> {
    map.get_key_value(key)
        .map(|(key, value)| (key.clone(), value.clone()))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests;
