//! The budget decider: one provider's money (stream `budget-{provider}`).
//!
//! Rules (seed 000 "BudgetManager", made strict):
//! - A call reserves an *upper bound* of its cost before it goes out; the
//!   reservation fits only if `committed + reserved + estimate ≤ monthly limit` for
//!   the month of the decision time, and `estimate ≤ per-request limit`. A refusal is
//!   itself an event (`provider.budget.exceeded`), so audits see every "no".
//! - The actual cost is committed from the response's usage; a failed call releases
//!   its reservation. Either closes the reservation; a second close is refused.
//! - The period is the calendar month (UTC) of the decision time; nothing resets
//!   budgets, a new month simply has nothing spent yet. A reservation is charged to
//!   the month it was made in, even if it commits after midnight on the 1st.
//! - A monthly limit of 0 is a free provider (never blocked by the month); a
//!   per-request limit of 0 is no per-request limit.
//!
//! Because `decide` sees reserved money as spent, concurrent callers can never
//! overspend: the actor decides one command at a time against a state that already
//! holds every earlier reservation.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Utc};
use tutorlog_schemas::{
    events::{
        BudgetCommitted, BudgetExceeded, BudgetLimitChanged, BudgetLimitKind, BudgetReleased,
        BudgetReserved,
    },
    CodecError, Event, NewEvent, RecordedEvent,
};
use uuid::Uuid;

use crate::decider::{decode_via_catalogue, encode_via_catalogue, Decider, LogEvent};

/// The budget period of an instant: its UTC calendar month, `YYYY-MM`.
pub fn period_of(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

/// The budget's limits, in micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Per calendar month; 0 = free provider.
    pub monthly_micros: u64,
    /// Per request; 0 = none.
    pub per_request_micros: u64,
}

/// Money of one period, in micro-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeriodTotals {
    /// Set aside by open reservations.
    pub reserved_micros: u64,
    /// Spent by committed calls.
    pub committed_micros: u64,
    /// Reservations made.
    pub reservations: u64,
    /// Reservations committed.
    pub commits: u64,
    /// Reservations released.
    pub releases: u64,
    /// Reservations refused.
    pub exceeded: u64,
}

/// An open reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReservation {
    /// Period it is charged to.
    pub period: String,
    /// Its estimate, micro-USD.
    pub estimate_micros: u64,
}

/// What the budget knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetState {
    /// Current limits (`None` until the first `budget.limit.changed`).
    pub limits: Option<Limits>,
    /// Totals per period, oldest first.
    pub periods: BTreeMap<String, PeriodTotals>,
    /// Reservations neither committed nor released.
    pub open: HashMap<Uuid, OpenReservation>,
}

impl BudgetState {
    /// The totals of `period` (zero if nothing happened in it).
    pub fn totals(&self, period: &str) -> PeriodTotals {
        self.periods.get(period).copied().unwrap_or_default()
    }

    /// Money left in `period` under the monthly limit; `None` for a free provider.
    pub fn remaining(&self, period: &str) -> Option<u64> {
        let limits = self.limits.unwrap_or_default();
        if limits.monthly_micros == 0 {
            return None;
        }
        let totals = self.totals(period);
        Some(
            limits
                .monthly_micros
                .saturating_sub(totals.committed_micros)
                .saturating_sub(totals.reserved_micros),
        )
    }

    fn period_mut(&mut self, period: &str) -> &mut PeriodTotals {
        self.periods.entry(period.to_owned()).or_default()
    }
}

/// What callers ask of a budget.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetCommand {
    /// Set the limits from configuration (a no-op when unchanged).
    SetLimits(Limits),
    /// Set aside `estimate_micros` for a call.
    Reserve {
        /// The gateway request.
        request_id: Uuid,
        /// Model called.
        model: String,
        /// Upper bound of the cost.
        estimate_micros: u64,
        /// Attributed user.
        user_id: Option<String>,
        /// Session.
        session_id: Option<String>,
    },
    /// Charge the actual cost of a reserved call.
    Commit {
        /// The gateway request.
        request_id: Uuid,
        /// Cost from usage.
        actual_micros: u64,
        /// Input tokens.
        input_tokens: u64,
        /// Output tokens.
        output_tokens: u64,
        /// Digest of the price table used.
        price_version: String,
    },
    /// Give a reservation back unspent.
    Release {
        /// The gateway request.
        request_id: Uuid,
        /// Why.
        reason: String,
    },
}

/// Budget events (a subset of the catalogue).
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetEvent {
    /// `budget.limit.changed`.
    LimitChanged(BudgetLimitChanged),
    /// `budget.reserved`.
    Reserved(BudgetReserved),
    /// `budget.committed`.
    Committed(BudgetCommitted),
    /// `budget.released`.
    Released(BudgetReleased),
    /// `provider.budget.exceeded`.
    Exceeded(BudgetExceeded),
}

impl From<BudgetEvent> for Event {
    fn from(event: BudgetEvent) -> Event {
        match event {
            BudgetEvent::LimitChanged(e) => Event::BudgetLimitChanged(e),
            BudgetEvent::Reserved(e) => Event::BudgetReserved(e),
            BudgetEvent::Committed(e) => Event::BudgetCommitted(e),
            BudgetEvent::Released(e) => Event::BudgetReleased(e),
            BudgetEvent::Exceeded(e) => Event::BudgetExceeded(e),
        }
    }
}

impl TryFrom<Event> for BudgetEvent {
    type Error = Event;

    fn try_from(event: Event) -> Result<Self, Event> {
        match event {
            Event::BudgetLimitChanged(e) => Ok(BudgetEvent::LimitChanged(e)),
            Event::BudgetReserved(e) => Ok(BudgetEvent::Reserved(e)),
            Event::BudgetCommitted(e) => Ok(BudgetEvent::Committed(e)),
            Event::BudgetReleased(e) => Ok(BudgetEvent::Released(e)),
            Event::BudgetExceeded(e) => Ok(BudgetEvent::Exceeded(e)),
            other => Err(other),
        }
    }
}

impl LogEvent for BudgetEvent {
    fn to_new_event(&self) -> Result<NewEvent, CodecError> {
        encode_via_catalogue(self)
    }

    fn from_recorded(recorded: &RecordedEvent) -> Result<Option<Self>, CodecError> {
        decode_via_catalogue(recorded)
    }
}

/// Why a budget command was refused (a caller error, not a full budget: that is
/// the `Exceeded` event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRejection {
    /// A reservation with this request id exists already.
    #[error("request {0} already holds a reservation")]
    DuplicateReservation(Uuid),
    /// No open reservation has this request id (never made, or already closed).
    #[error("request {0} has no open reservation")]
    UnknownReservation(Uuid),
}

/// The budget decider.
#[derive(Debug)]
pub struct Budget;

impl Budget {
    /// Whether an `Exceeded` outcome is what `decide` produced for a reservation.
    pub fn refusal(events: &[BudgetEvent]) -> Option<&BudgetExceeded> {
        events.iter().find_map(|event| match event {
            BudgetEvent::Exceeded(exceeded) => Some(exceeded),
            _ => None,
        })
    }
}

impl Decider for Budget {
    type State = BudgetState;
    type Command = BudgetCommand;
    type Event = BudgetEvent;
    type Rejection = BudgetRejection;

    fn stream_name(id: &str) -> String {
        format!("budget-{id}")
    }

    fn decide(
        state: &BudgetState,
        command: &BudgetCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<BudgetEvent>, BudgetRejection> {
        match command {
            BudgetCommand::SetLimits(limits) => {
                if state.limits == Some(*limits) {
                    return Ok(Vec::new());
                }
                Ok(vec![BudgetEvent::LimitChanged(BudgetLimitChanged {
                    monthly_micros: limits.monthly_micros,
                    per_request_micros: limits.per_request_micros,
                })])
            }
            BudgetCommand::Reserve {
                request_id,
                model,
                estimate_micros,
                user_id,
                session_id,
            } => {
                if state.open.contains_key(request_id) {
                    return Err(BudgetRejection::DuplicateReservation(*request_id));
                }
                let period = period_of(now);
                let limits = state.limits.unwrap_or_default();
                let exceeded = |limit, limit_micros, remaining_micros| {
                    BudgetEvent::Exceeded(BudgetExceeded {
                        request_id: *request_id,
                        estimate_micros: *estimate_micros,
                        limit,
                        limit_micros,
                        remaining_micros,
                        period: period.clone(),
                    })
                };
                if limits.per_request_micros > 0 && *estimate_micros > limits.per_request_micros {
                    return Ok(vec![exceeded(
                        BudgetLimitKind::PerRequest,
                        limits.per_request_micros,
                        limits.per_request_micros,
                    )]);
                }
                if let Some(remaining) = state.remaining(&period) {
                    if *estimate_micros > remaining {
                        return Ok(vec![exceeded(
                            BudgetLimitKind::Monthly,
                            limits.monthly_micros,
                            remaining,
                        )]);
                    }
                }
                Ok(vec![BudgetEvent::Reserved(BudgetReserved {
                    request_id: *request_id,
                    model: model.clone(),
                    estimate_micros: *estimate_micros,
                    period,
                    user_id: user_id.clone(),
                    session_id: session_id.clone(),
                })])
            }
            BudgetCommand::Commit {
                request_id,
                actual_micros,
                input_tokens,
                output_tokens,
                price_version,
            } => {
                let open = state
                    .open
                    .get(request_id)
                    .ok_or(BudgetRejection::UnknownReservation(*request_id))?;
                Ok(vec![BudgetEvent::Committed(BudgetCommitted {
                    request_id: *request_id,
                    actual_micros: *actual_micros,
                    input_tokens: *input_tokens,
                    output_tokens: *output_tokens,
                    price_version: price_version.clone(),
                    period: open.period.clone(),
                })])
            }
            BudgetCommand::Release { request_id, reason } => {
                let open = state
                    .open
                    .get(request_id)
                    .ok_or(BudgetRejection::UnknownReservation(*request_id))?;
                Ok(vec![BudgetEvent::Released(BudgetReleased {
                    request_id: *request_id,
                    reason: reason.clone(),
                    period: open.period.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: BudgetState, event: &BudgetEvent) -> BudgetState {
        match event {
            BudgetEvent::LimitChanged(changed) => {
                state.limits = Some(Limits {
                    monthly_micros: changed.monthly_micros,
                    per_request_micros: changed.per_request_micros,
                });
            }
            BudgetEvent::Reserved(reserved) => {
                let totals = state.period_mut(&reserved.period);
                totals.reserved_micros += reserved.estimate_micros;
                totals.reservations += 1;
                state.open.insert(
                    reserved.request_id,
                    OpenReservation {
                        period: reserved.period.clone(),
                        estimate_micros: reserved.estimate_micros,
                    },
                );
            }
            BudgetEvent::Committed(committed) => {
                let estimate = state
                    .open
                    .remove(&committed.request_id)
                    .map_or(0, |open| open.estimate_micros);
                let totals = state.period_mut(&committed.period);
                totals.reserved_micros = totals.reserved_micros.saturating_sub(estimate);
                totals.committed_micros += committed.actual_micros;
                totals.commits += 1;
            }
            BudgetEvent::Released(released) => {
                let estimate = state
                    .open
                    .remove(&released.request_id)
                    .map_or(0, |open| open.estimate_micros);
                let totals = state.period_mut(&released.period);
                totals.reserved_micros = totals.reserved_micros.saturating_sub(estimate);
                totals.releases += 1;
            }
            BudgetEvent::Exceeded(exceeded) => {
                state.period_mut(&exceeded.period).exceeded += 1;
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(year: i32, month: u32, day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, 0, 0)
            .single()
            .expect("valid time")
    }

    fn limits(monthly: u64, per_request: u64) -> BudgetEvent {
        BudgetEvent::LimitChanged(BudgetLimitChanged {
            monthly_micros: monthly,
            per_request_micros: per_request,
        })
    }

    fn reserve(id: u128, estimate: u64) -> BudgetCommand {
        BudgetCommand::Reserve {
            request_id: Uuid::from_u128(id),
            model: "m".into(),
            estimate_micros: estimate,
            user_id: Some("ada".into()),
            session_id: None,
        }
    }

    fn reserved(id: u128, estimate: u64, period: &str) -> BudgetEvent {
        BudgetEvent::Reserved(BudgetReserved {
            request_id: Uuid::from_u128(id),
            model: "m".into(),
            estimate_micros: estimate,
            period: period.into(),
            user_id: Some("ada".into()),
            session_id: None,
        })
    }

    fn commit(id: u128, actual: u64) -> BudgetCommand {
        BudgetCommand::Commit {
            request_id: Uuid::from_u128(id),
            actual_micros: actual,
            input_tokens: 10,
            output_tokens: 20,
            price_version: "p1".into(),
        }
    }

    #[test]
    fn a_reservation_that_fits_is_reserved_in_the_month_of_the_decision() {
        let state = Budget::given([limits(1_000, 0)])
            .at(at(2026, 12, 31, 23))
            .when(reserve(1, 400))
            .then([reserved(1, 400, "2026-12")]);
        assert_eq!(state.remaining("2026-12"), Some(600));
        assert_eq!(state.totals("2026-12").reserved_micros, 400);
    }

    #[test]
    fn reserved_money_counts_as_spent_so_the_next_reservation_is_refused() {
        let when = Budget::given([limits(1_000, 0), reserved(1, 700, "2026-12")])
            .at(at(2026, 12, 2, 0))
            .when(reserve(2, 400));
        when.then([BudgetEvent::Exceeded(BudgetExceeded {
            request_id: Uuid::from_u128(2),
            estimate_micros: 400,
            limit: BudgetLimitKind::Monthly,
            limit_micros: 1_000,
            remaining_micros: 300,
            period: "2026-12".into(),
        })]);
    }

    #[test]
    fn an_exact_fit_is_allowed_and_one_micro_more_is_not() {
        Budget::given([limits(1_000, 0), reserved(1, 600, "2026-12")])
            .at(at(2026, 12, 2, 0))
            .when(reserve(2, 400))
            .then([reserved(2, 400, "2026-12")]);
        let outcome = Budget::decide(
            Budget::given([limits(1_000, 0), reserved(1, 600, "2026-12")]).state(),
            &reserve(2, 401),
            at(2026, 12, 2, 0),
        )
        .expect("decides");
        assert!(Budget::refusal(&outcome).is_some());
    }

    #[test]
    fn the_per_request_limit_is_checked_before_the_month() {
        Budget::given([limits(0, 10_000)])
            .at(at(2026, 12, 1, 0))
            .when(reserve(1, 10_001))
            .then([BudgetEvent::Exceeded(BudgetExceeded {
                request_id: Uuid::from_u128(1),
                estimate_micros: 10_001,
                limit: BudgetLimitKind::PerRequest,
                limit_micros: 10_000,
                remaining_micros: 10_000,
                period: "2026-12".into(),
            })]);
    }

    #[test]
    fn a_free_provider_never_blocks() {
        let state = Budget::given([limits(0, 0)])
            .at(at(2026, 12, 1, 0))
            .when(reserve(1, u64::MAX / 2))
            .then([reserved(1, u64::MAX / 2, "2026-12")]);
        assert_eq!(state.remaining("2026-12"), None);
    }

    #[test]
    fn commit_charges_the_actual_cost_and_frees_the_rest_of_the_estimate() {
        let state = Budget::given([limits(1_000, 0), reserved(1, 700, "2026-12")])
            .at(at(2026, 12, 2, 0))
            .when(commit(1, 250))
            .then([BudgetEvent::Committed(BudgetCommitted {
                request_id: Uuid::from_u128(1),
                actual_micros: 250,
                input_tokens: 10,
                output_tokens: 20,
                price_version: "p1".into(),
                period: "2026-12".into(),
            })]);
        let totals = state.totals("2026-12");
        assert_eq!((totals.reserved_micros, totals.committed_micros), (0, 250));
        assert_eq!(state.remaining("2026-12"), Some(750));
        assert!(state.open.is_empty());
    }

    #[test]
    fn release_gives_the_estimate_back() {
        let state = Budget::given([limits(1_000, 0), reserved(1, 700, "2026-12")])
            .when(BudgetCommand::Release {
                request_id: Uuid::from_u128(1),
                reason: "timeout".into(),
            })
            .then([BudgetEvent::Released(BudgetReleased {
                request_id: Uuid::from_u128(1),
                reason: "timeout".into(),
                period: "2026-12".into(),
            })]);
        assert_eq!(state.remaining("2026-12"), Some(1_000));
        assert_eq!(state.totals("2026-12").releases, 1);
    }

    #[test]
    fn a_closed_reservation_cannot_be_closed_again() {
        let history = [
            limits(1_000, 0),
            reserved(1, 700, "2026-12"),
            BudgetEvent::Released(BudgetReleased {
                request_id: Uuid::from_u128(1),
                reason: "timeout".into(),
                period: "2026-12".into(),
            }),
        ];
        Budget::given(history.clone())
            .when(commit(1, 5))
            .then_err(BudgetRejection::UnknownReservation(Uuid::from_u128(1)));
        Budget::given(history)
            .when(BudgetCommand::Release {
                request_id: Uuid::from_u128(1),
                reason: "again".into(),
            })
            .then_err(BudgetRejection::UnknownReservation(Uuid::from_u128(1)));
    }

    #[test]
    fn a_request_id_holds_one_reservation_at_a_time() {
        Budget::given([limits(1_000, 0), reserved(1, 10, "2026-12")])
            .when(reserve(1, 10))
            .then_err(BudgetRejection::DuplicateReservation(Uuid::from_u128(1)));
    }

    #[test]
    fn a_new_month_starts_empty_and_late_commits_charge_their_own_month() {
        let history = [limits(1_000, 0), reserved(1, 900, "2026-11")];
        // On 1 December November's open reservation does not block December.
        Budget::given(history.clone())
            .at(at(2026, 12, 1, 0))
            .when(reserve(2, 1_000))
            .then([reserved(2, 1_000, "2026-12")]);
        // It commits to November, where it was reserved.
        let state = Budget::given(history)
            .at(at(2026, 12, 1, 0))
            .when(commit(1, 800))
            .then([BudgetEvent::Committed(BudgetCommitted {
                request_id: Uuid::from_u128(1),
                actual_micros: 800,
                input_tokens: 10,
                output_tokens: 20,
                price_version: "p1".into(),
                period: "2026-11".into(),
            })]);
        assert_eq!(state.totals("2026-11").committed_micros, 800);
        assert_eq!(state.totals("2026-12"), PeriodTotals::default());
    }

    #[test]
    fn unchanged_limits_are_a_no_op() {
        Budget::given([limits(5, 1)])
            .when(BudgetCommand::SetLimits(Limits {
                monthly_micros: 5,
                per_request_micros: 1,
            }))
            .then([]);
        Budget::given([limits(5, 1)])
            .when(BudgetCommand::SetLimits(Limits {
                monthly_micros: 6,
                per_request_micros: 1,
            }))
            .then([limits(6, 1)]);
    }

    #[test]
    fn any_sequence_of_reservations_never_exceeds_the_limit() {
        // A deterministic sweep instead of proptest: estimates from a fixed LCG.
        let limit = 10_000;
        let mut state = Budget::fold(BudgetState::default(), &[limits(limit, 0)]);
        let mut seed: u64 = 0x5eed;
        let now = at(2026, 12, 5, 0);
        for id in 0..2_000u128 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let estimate = (seed >> 33) % 900 + 1;
            let command = match seed % 4 {
                0 | 1 => reserve(id, estimate),
                _ => match state.open.keys().min().copied() {
                    Some(open) if seed % 4 == 2 => {
                        let reserved = state.open[&open].estimate_micros;
                        commit(open.as_u128(), reserved - reserved * (seed % 3) / 3)
                    }
                    Some(open) => BudgetCommand::Release {
                        request_id: open,
                        reason: "x".into(),
                    },
                    None => reserve(id, estimate),
                },
            };
            if let Ok(events) = Budget::decide(&state, &command, now) {
                state = Budget::fold(state, &events);
            }
            let totals = state.totals("2026-12");
            assert!(totals.reserved_micros + totals.committed_micros <= limit);
        }
    }
}
