use super::*;
use crate::test_support::{assert_restore_equivalence, at, envelope_at};
use proptest::prelude::*;
use tutorlog_schemas::events::{BudgetLimitChanged, BudgetLimitKind};

/// Seconds from `at(0)` (2027-01-15T08:00Z) to 2027-02-01T00:00Z.
const FEBRUARY: i64 = 1_440_000;

fn request(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

fn limit(monthly: u64, per_request: u64) -> Event {
    Event::BudgetLimitChanged(BudgetLimitChanged {
        monthly_micros: monthly,
        per_request_micros: per_request,
    })
}

fn reserve(
    id: u128,
    estimate: u64,
    period: &str,
    user: Option<&str>,
    session: Option<&str>,
) -> Event {
    Event::BudgetReserved(BudgetReserved {
        request_id: request(id),
        model: "gpt-4o-mini".into(),
        estimate_micros: estimate,
        period: period.into(),
        user_id: user.map(str::to_owned),
        session_id: session.map(str::to_owned),
    })
}

fn commit(id: u128, actual: u64, period: &str) -> Event {
    Event::BudgetCommitted(BudgetCommitted {
        request_id: request(id),
        actual_micros: actual,
        input_tokens: 10,
        output_tokens: 20,
        price_version: "p1".into(),
        period: period.into(),
    })
}

fn release(id: u128, period: &str) -> Event {
    Event::BudgetReleased(BudgetReleased {
        request_id: request(id),
        reason: "provider_error".into(),
        period: period.into(),
    })
}

fn exceeded(id: u128, kind: BudgetLimitKind, period: &str) -> Event {
    Event::BudgetExceeded(BudgetExceeded {
        request_id: request(id),
        estimate_micros: 5_000_000,
        limit: kind,
        limit_micros: 1_000_000,
        remaining_micros: 10,
        period: period.into(),
    })
}

/// Events of `budget-openai` at one-second steps from `start`.
fn envelopes(stream: &str, start: i64, events: Vec<Event>) -> Vec<Envelope> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| envelope_at(stream, index as u64, at(start + index as i64), event))
        .collect()
}

fn fold(spend: &mut Spend, events: &[Envelope]) {
    for event in events {
        spend.apply(event);
    }
}

#[test]
fn an_open_reservation_counts_as_reserved_until_it_commits() {
    let mut spend = Spend::new();
    let events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(10_000_000, 500_000),
            reserve(1, 300_000, "2027-01", Some("ada"), Some("s1")),
            reserve(2, 200_000, "2027-01", Some("bob"), None),
        ],
    );
    fold(&mut spend, &events);
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(period.limit_micros, 10_000_000);
    assert_eq!(period.reserved_micros, 500_000);
    assert_eq!(period.committed_micros, 0);
    assert_eq!(period.remaining_micros, 9_500_000);
    assert_eq!(period.percent_used, Some(5.0));
    assert_eq!(
        spend
            .provider("openai")
            .expect("provider")
            .open_reservations,
        2
    );

    spend.apply(&envelope_at(
        "budget-openai",
        3,
        at(3),
        commit(1, 123_456, "2027-01"),
    ));
    spend.apply(&envelope_at(
        "budget-openai",
        4,
        at(4),
        release(2, "2027-01"),
    ));
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(
        (period.reserved_micros, period.committed_micros),
        (0, 123_456)
    );
    assert_eq!(period.remaining_micros, 10_000_000 - 123_456);
    assert_eq!(period.percent_used, Some(1.23));
    assert_eq!(period.committed_estimate_micros, 300_000);
    assert_eq!((period.input_tokens, period.output_tokens), (10, 20));
    assert_eq!(
        (
            period.counts.reservations,
            period.counts.commits,
            period.counts.releases
        ),
        (2, 1, 1)
    );
    assert_eq!(
        period.models.get("gpt-4o-mini"),
        Some(&CostCount {
            committed_micros: 123_456,
            requests: 1
        })
    );
    let ada = spend.user("ada").expect("ada");
    assert_eq!((ada.committed_micros, ada.requests), (123_456, 1));
    assert_eq!(
        ada.periods.get("2027-01").map(|c| c.committed_micros),
        Some(123_456)
    );
    assert!(spend.user("bob").is_none(), "a release costs nothing");
    let session = spend.session("s1").expect("session");
    assert_eq!((session.committed_micros, session.requests), (123_456, 1));
    assert_eq!(session.user_id.as_deref(), Some("ada"));
    assert_eq!(
        spend
            .provider("openai")
            .expect("provider")
            .open_reservations,
        0
    );
    assert!(spend
        .model()
        .open
        .get("openai")
        .is_some_and(BTreeMap::is_empty));
    let view = spend.view().expect("view");
    assert!(view.get("open").is_none());
    assert_eq!(
        view["providers"]["openai"]["periods"]["2027-01"]["committed_micros"],
        123_456
    );
}

#[test]
fn exceeded_reservations_are_counted_but_cost_nothing() {
    let mut spend = Spend::new();
    let events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(1_000_000, 0),
            exceeded(1, BudgetLimitKind::Monthly, "2027-01"),
            exceeded(2, BudgetLimitKind::PerRequest, "2027-01"),
        ],
    );
    fold(&mut spend, &events);
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(
        (period.counts.exceeded, period.counts.exceeded_per_request),
        (2, 1)
    );
    assert_eq!((period.reserved_micros, period.committed_micros), (0, 0));
    assert_eq!(period.remaining_micros, 1_000_000);
    assert_eq!(period.percent_used, Some(0.0));
}

#[test]
fn months_are_separate_and_a_limit_change_applies_from_its_month_on() {
    let mut spend = Spend::new();
    let mut events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(1_000_000, 0),
            reserve(1, 400_000, "2027-01", Some("ada"), None),
            commit(1, 600_000, "2027-01"),
        ],
    );
    // February: a new month, and a higher limit from then on.
    let february = [
        limit(2_000_000, 0),
        reserve(2, 100_000, "2027-02", Some("ada"), None),
        commit(2, 100_000, "2027-02"),
        // A January reservation committed in February stays in January.
        reserve(3, 50_000, "2027-01", None, None),
    ];
    for (index, event) in february.into_iter().enumerate() {
        events.push(envelope_at(
            "budget-openai",
            3 + index as u64,
            at(FEBRUARY + index as i64),
            event,
        ));
    }
    fold(&mut spend, &events);
    let january = spend.period("openai", "2027-01").expect("january");
    assert_eq!(january.limit_micros, 1_000_000, "January keeps its limit");
    assert_eq!(
        (january.committed_micros, january.reserved_micros),
        (600_000, 50_000)
    );
    assert_eq!(january.remaining_micros, 350_000);
    assert_eq!(january.percent_used, Some(65.0));
    let february = spend.period("openai", "2027-02").expect("february");
    assert_eq!(february.limit_micros, 2_000_000);
    assert_eq!(february.committed_micros, 100_000);
    assert_eq!(february.remaining_micros, 1_900_000);
    let ada = spend.user("ada").expect("ada");
    assert_eq!(ada.committed_micros, 700_000);
    assert_eq!(ada.periods.len(), 2);
    assert_eq!(
        spend.provider("openai").expect("p").monthly_limit_micros,
        2_000_000
    );
}

#[test]
fn overspend_floors_remaining_at_zero() {
    let mut spend = Spend::new();
    let events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(1_000, 0),
            reserve(1, 900, "2027-01", None, None),
            commit(1, 1_500, "2027-01"),
        ],
    );
    fold(&mut spend, &events);
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(period.remaining_micros, 0);
    assert_eq!(period.percent_used, Some(150.0));
}

#[test]
fn a_free_provider_reports_limit_zero() {
    let mut spend = Spend::new();
    let events = envelopes(
        "budget-local-ollama",
        0,
        vec![
            limit(0, 0),
            reserve(1, 0, "2027-01", Some("ada"), None),
            commit(1, 0, "2027-01"),
        ],
    );
    fold(&mut spend, &events);
    let provider = spend.provider("local-ollama").expect("provider");
    assert!(provider.free);
    let period = spend.period("local-ollama", "2027-01").expect("period");
    assert!(period.free);
    assert_eq!((period.limit_micros, period.remaining_micros), (0, 0));
    assert_eq!(period.percent_used, None);
    assert_eq!(period.counts.commits, 1);
    assert_eq!(spend.user("ada").expect("ada").requests, 1);
    let view = spend.view().expect("view");
    let row = &view["providers"]["local-ollama"]["periods"]["2027-01"];
    assert_eq!(row["free"], true);
    assert!(row["percent_used"].is_null());
}

#[test]
fn failover_keeps_reservations_apart_per_provider() {
    let mut spend = Spend::new();
    let mut events = envelopes("budget-openai", 0, vec![limit(1_000_000, 0)]);
    events.push(envelope_at("budget-groq", 1, at(1), limit(1_000_000, 0)));
    events.push(envelope_at(
        "budget-openai",
        2,
        at(2),
        reserve(7, 100, "2027-01", Some("ada"), None),
    ));
    events.push(envelope_at(
        "budget-groq",
        3,
        at(3),
        reserve(7, 80, "2027-01", Some("ada"), None),
    ));
    events.push(envelope_at(
        "budget-openai",
        4,
        at(4),
        release(7, "2027-01"),
    ));
    events.push(envelope_at(
        "budget-groq",
        5,
        at(5),
        commit(7, 60, "2027-01"),
    ));
    fold(&mut spend, &events);
    let openai = spend.period("openai", "2027-01").expect("openai");
    assert_eq!((openai.reserved_micros, openai.committed_micros), (0, 0));
    let groq = spend.period("groq", "2027-01").expect("groq");
    assert_eq!((groq.reserved_micros, groq.committed_micros), (0, 60));
    assert_eq!(spend.user("ada").expect("ada").committed_micros, 60);
}

#[test]
fn a_commit_without_its_reservation_still_counts() {
    let mut spend = Spend::new();
    let events = envelopes(
        "budget-openai",
        0,
        vec![limit(1_000, 0), commit(9, 70, "2027-01")],
    );
    fold(&mut spend, &events);
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(period.committed_micros, 70);
    assert_eq!(period.counts.commits_unmatched, 1);
    assert_eq!(
        period.models.get(UNKNOWN_MODEL).map(|c| c.requests),
        Some(1)
    );
    assert!(spend.model().users.is_empty());
}

#[test]
fn other_streams_and_events_are_ignored() {
    let mut spend = Spend::new();
    spend.apply(&envelope_at("circuit-openai", 0, at(0), limit(5, 5)));
    spend.apply(&envelope_at("budget-", 1, at(1), limit(5, 5)));
    spend.apply(&envelope_at(
        "budget-openai",
        2,
        at(2),
        Event::TrainingResumed(tutorlog_schemas::events::TrainingResumed {
            session_id: Uuid::from_u128(1),
        }),
    ));
    assert_eq!(spend.model(), &SpendModel::default());
}

#[test]
fn sessions_are_bounded_dropping_the_least_recent() {
    let mut spend = Spend::new();
    let mut position = 0;
    for session in 0..=SESSIONS_KEPT_MAX as u128 {
        let name = format!("s{session:06}");
        for event in [
            reserve(session, 1, "2027-01", None, Some(&name)),
            commit(session, 1, "2027-01"),
        ] {
            spend.apply(&envelope_at("budget-openai", position, at(0), event));
            position += 1;
        }
    }
    let model = spend.model();
    assert_eq!(
        model.sessions.len(),
        SESSIONS_KEPT_MAX + 1 - SESSIONS_DROPPED_PER_BATCH
    );
    assert_eq!(model.sessions_dropped, SESSIONS_DROPPED_PER_BATCH as u64);
    assert!(spend.session("s000000").is_none());
    assert!(spend.session(&format!("s{SESSIONS_KEPT_MAX:06}")).is_some());
    let period = spend.period("openai", "2027-01").expect("period");
    assert_eq!(
        period.committed_micros,
        SESSIONS_KEPT_MAX as u64 + 1,
        "totals keep everything"
    );
}

#[test]
fn narrowing_keeps_one_provider_or_one_user() {
    let mut spend = Spend::new();
    let mut events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(1_000_000, 0),
            reserve(1, 10, "2027-01", Some("ada"), Some("s1")),
            commit(1, 10, "2027-01"),
            reserve(2, 10, "2027-01", Some("bob"), Some("s2")),
            commit(2, 10, "2027-01"),
        ],
    );
    events.push(envelope_at("budget-groq", 5, at(5), limit(0, 0)));
    fold(&mut spend, &events);
    let openai = spend.narrowed(&ViewFilter::Provider("openai".into()));
    assert_eq!(
        openai.model().providers.keys().collect::<Vec<_>>(),
        ["openai"]
    );
    assert!(openai.model().users.is_empty() && openai.model().sessions.is_empty());
    let ada = spend.narrowed(&ViewFilter::User("ada".into()));
    assert!(ada.model().providers.is_empty());
    assert_eq!(ada.model().users.keys().collect::<Vec<_>>(), ["ada"]);
    assert_eq!(ada.model().sessions.keys().collect::<Vec<_>>(), ["s1"]);
    let nobody = spend.narrowed(&ViewFilter::Provider("nope".into()));
    assert!(nobody.model().providers.is_empty());
}

fn scenario() -> Vec<Envelope> {
    let mut events = envelopes(
        "budget-openai",
        0,
        vec![
            limit(1_000_000, 100_000),
            reserve(1, 300, "2027-01", Some("ada"), Some("s1")),
            reserve(2, 200, "2027-01", Some("bob"), Some("s2")),
            exceeded(3, BudgetLimitKind::PerRequest, "2027-01"),
            commit(1, 250, "2027-01"),
            release(2, "2027-01"),
            reserve(4, 100, "2027-01", Some("ada"), Some("s1")),
        ],
    );
    let later = [
        limit(0, 0),
        commit(4, 90, "2027-01"),
        reserve(5, 10, "2027-02", None, None),
        commit(9, 1, "2027-02"),
    ];
    for (index, event) in later.into_iter().enumerate() {
        events.push(envelope_at(
            "budget-openai",
            7 + index as u64,
            at(FEBRUARY + index as i64),
            event,
        ));
    }
    events
}

#[test]
fn folding_across_a_snapshot_restore_equals_one_fold() {
    assert_restore_equivalence(Spend::new, &scenario());
}

#[test]
fn the_view_is_byte_identical_for_the_same_events() {
    let (mut first, mut second) = (Spend::new(), Spend::new());
    fold(&mut first, &scenario());
    fold(&mut second, &scenario());
    let json = |spend: &Spend| serde_json::to_string(&spend.view().expect("view")).expect("json");
    assert_eq!(json(&first), json(&second));
}

/// One random budget event: (kind, provider, request, amount, month, user).
fn arb_event() -> impl Strategy<Value = (u8, u8, u8, u64, u8, u8)> {
    (0u8..6, 0u8..2, 0u8..6, 0u64..2_000, 0u8..2, 0u8..3)
}

fn to_envelope(
    position: u64,
    (kind, provider, id, amount, month, user): (u8, u8, u8, u64, u8, u8),
) -> Envelope {
    let period = if month == 0 { "2027-01" } else { "2027-02" };
    let user_name = ["ada", "bob", "cy"][usize::from(user)];
    let id = u128::from(id);
    let event = match kind {
        0 => limit(amount * 10, amount),
        1 | 2 => reserve(id, amount, period, Some(user_name), Some(user_name)),
        3 => commit(id, amount, period),
        4 => release(id, period),
        _ => exceeded(id, BudgetLimitKind::Monthly, period),
    };
    let stream = if provider == 0 {
        "budget-openai"
    } else {
        "budget-groq"
    };
    let offset = if month == 0 { 0 } else { FEBRUARY };
    envelope_at(stream, position, at(offset + position as i64), event)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_budget_history_reconciles_and_survives_restore(raw in proptest::collection::vec(arb_event(), 0..40)) {
        let events: Vec<Envelope> = raw.into_iter().enumerate().map(|(i, e)| to_envelope(i as u64, e)).collect();
        let mut spend = Spend::new();
        fold(&mut spend, &events);
        // Reserved is exactly the sum of the open reservations of each period.
        for (provider, row) in &spend.model().providers {
            for (name, period) in &row.periods {
                let open: u64 = spend.model().open.get(provider).into_iter().flat_map(BTreeMap::values)
                    .filter(|r| &r.period == name).map(|r| r.estimate_micros).sum();
                prop_assert_eq!(period.reserved_micros, open);
                if !period.free {
                    prop_assert_eq!(period.remaining_micros,
                        period.limit_micros.saturating_sub(period.reserved_micros + period.committed_micros));
                }
                let by_model: u64 = period.models.values().map(|c| c.committed_micros).sum();
                prop_assert_eq!(by_model, period.committed_micros);
            }
            let open = spend.model().open.get(provider).map_or(0, BTreeMap::len) as u64;
            prop_assert_eq!(row.open_reservations, open);
        }
        assert_restore_equivalence(Spend::new, &events);
    }
}
