//! The routing decision: which provider serves a request, and in which order the
//! others are tried if it fails. A pure function of what the caller gathered
//! without waiting (circuit views, budget snapshots, the latest benchmarks and
//! routing history), so it runs on the hot path and its every input and output can
//! be recorded in `provider.selected`.
//!
//! Rules, in order:
//! 1. A candidate is **eligible** if its circuit allows a call now. Ineligible
//!    candidates are listed with why. Candidates whose budget snapshot says it
//!    cannot afford the estimate stay eligible but go after all others: the
//!    snapshot may lag commits in flight, and only the reservation itself decides.
//! 2. A **pinned** request (`provider/model`, or a model only one provider serves)
//!    considers only the pinned candidates.
//! 3. **Session continuity**: if the session's last provider is eligible and the
//!    session stayed on the same category, it goes first.
//! 4. The rest are ordered by **score** (seed 003's weights): `0.5·quality +
//!    0.3·speed + 0.2·cost`, times the recent success rate, plus a small bonus for
//!    configured priority (`0.05 × (ranks − rank) / ranks`, lower priority numbers
//!    rank first) so that with no data at all the configured order decides. Quality
//!    is the latest benchmark score for the category (0–100); speed is
//!    `1 / (1 + latency_s)`; a candidate without one gets the mean of the others'
//!    (50 and 0.5 when nobody has one), so no history is neither a bonus nor a
//!    penalty; cost is
//!    `1 / (1 + estimate in thousandths of a dollar)`. Ties break on priority, then
//!    name, so the decision is deterministic.

use tutorlog_schemas::events::RouteCandidate;

/// Weight of benchmark quality in the score (seed 003).
pub const WEIGHT_QUALITY: f64 = 0.5;
/// Weight of speed.
pub const WEIGHT_SPEED: f64 = 0.3;
/// Weight of cost.
pub const WEIGHT_COST: f64 = 0.2;
/// Largest bonus for configured priority.
pub const PRIORITY_BONUS: f64 = 0.05;

/// What the router knows about one provider × model for this request.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateInput {
    /// Provider name.
    pub provider: String,
    /// Model it would use.
    pub model: String,
    /// Configured priority (lower first).
    pub priority: u32,
    /// Whether the circuit allows a call now.
    pub circuit_allows: bool,
    /// The circuit phase, for the reason text.
    pub circuit_phase: &'static str,
    /// Whether the budget can afford the estimate now.
    pub affordable: bool,
    /// The request's cost estimate on this candidate, micro-USD.
    pub estimate_micros: u64,
    /// Latest benchmark quality for the category, 0–100.
    pub quality: Option<f64>,
    /// Recent success rate, 0–1.
    pub success_rate: Option<f64>,
    /// Recent mean latency, milliseconds.
    pub latency_ms: Option<f64>,
}

/// The request, as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    /// Detected category.
    pub category: &'a str,
    /// Whether the candidates are a pin (only they may serve it).
    pub pinned: bool,
    /// The session's last provider and the category it served, if any.
    pub sticky: Option<(&'a str, &'a str)>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    /// Every candidate with its score and reason, best first (ineligible last).
    pub candidates: Vec<RouteCandidate>,
    /// Indices into the caller's input of the eligible candidates, in the order
    /// to try them.
    pub order: Vec<usize>,
    /// Why the first one was chosen (`pinned`, `session_continuity`,
    /// `best_score`, `no_candidate`).
    pub reason: &'static str,
}

fn speed_of(latency_ms: f64) -> f64 {
    1.0 / (1.0 + latency_ms.max(0.0) / 1000.0)
}

/// The mean of the known values, for candidates that have none: a provider with
/// no history yet is neither favoured nor penalised.
fn neutral(values: impl Iterator<Item = Option<f64>>, default: f64) -> f64 {
    let (sum, count) = values
        .flatten()
        .fold((0.0, 0u32), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        default
    } else {
        sum / f64::from(count)
    }
}

fn score(
    candidate: &CandidateInput,
    rank: usize,
    ranks: usize,
    neutral_quality: f64,
    neutral_speed: f64,
) -> f64 {
    let quality = candidate
        .quality
        .unwrap_or(neutral_quality)
        .clamp(0.0, 100.0)
        / 100.0;
    let speed = candidate.latency_ms.map_or(neutral_speed, speed_of);
    let cost = 1.0 / (1.0 + candidate.estimate_micros as f64 / 1000.0);
    let reliability = candidate.success_rate.unwrap_or(1.0).clamp(0.0, 1.0);
    let bonus = PRIORITY_BONUS * (ranks - rank) as f64 / ranks.max(1) as f64;
    (WEIGHT_QUALITY * quality + WEIGHT_SPEED * speed + WEIGHT_COST * cost) * reliability + bonus
}

/// Decides the order in which to try `candidates` for `request`.
pub fn route(request: RouteRequest<'_>, candidates: &[CandidateInput]) -> RouteDecision {
    let mut priorities: Vec<u32> = candidates.iter().map(|c| c.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    let ranks = priorities.len();
    let rank_of = |p: u32| priorities.iter().position(|&q| q == p).unwrap_or(ranks);
    let neutral_quality = neutral(candidates.iter().map(|c| c.quality), 50.0);
    let neutral_speed = neutral(candidates.iter().map(|c| c.latency_ms.map(speed_of)), 0.5);

    let mut scored: Vec<(usize, f64, bool, String)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = score(
                c,
                rank_of(c.priority),
                ranks,
                neutral_quality,
                neutral_speed,
            );
            let (eligible, reason) = if !c.circuit_allows {
                (false, format!("circuit {}", c.circuit_phase))
            } else if !c.affordable {
                (
                    true,
                    "budget may not afford the estimate: tried last".to_owned(),
                )
            } else {
                (
                    true,
                    format!(
                        "quality {}, success {}, latency {}, estimate {} µ$",
                        c.quality.map_or("n/a".into(), |q| format!("{q:.1}")),
                        c.success_rate.map_or("n/a".into(), |r| format!("{r:.2}")),
                        c.latency_ms.map_or("n/a".into(), |l| format!("{l:.0} ms")),
                        c.estimate_micros
                    ),
                )
            };
            (i, s, eligible, reason)
        })
        .collect();
    scored.sort_by(|a, b| {
        let (ca, cb) = (&candidates[a.0], &candidates[b.0]);
        b.2.cmp(&a.2)
            .then(cb.affordable.cmp(&ca.affordable))
            .then(b.1.total_cmp(&a.1))
            .then(ca.priority.cmp(&cb.priority))
            .then(ca.provider.cmp(&cb.provider))
            .then(ca.model.cmp(&cb.model))
    });

    let mut reason = if request.pinned {
        "pinned"
    } else {
        "best_score"
    };
    if let Some((sticky, sticky_category)) = request.sticky {
        if sticky_category == request.category {
            if let Some(at) = scored
                .iter()
                .position(|(i, _, eligible, _)| *eligible && candidates[*i].provider == sticky)
            {
                let entry = scored.remove(at);
                scored.insert(0, entry);
                if !request.pinned {
                    reason = "session_continuity";
                }
            }
        }
    }
    let order: Vec<usize> = scored
        .iter()
        .filter(|(_, _, eligible, _)| *eligible)
        .map(|(i, ..)| *i)
        .collect();
    if order.is_empty() {
        reason = "no_candidate";
    }
    RouteDecision {
        candidates: scored
            .into_iter()
            .map(|(i, s, eligible, why)| RouteCandidate {
                provider: candidates[i].provider.clone(),
                model: candidates[i].model.clone(),
                score: (s * 1e6).round() / 1e6,
                eligible,
                reason: why,
            })
            .collect(),
        order,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(provider: &str, priority: u32) -> CandidateInput {
        CandidateInput {
            provider: provider.into(),
            model: format!("{provider}-m"),
            priority,
            circuit_allows: true,
            circuit_phase: "closed",
            affordable: true,
            estimate_micros: 0,
            quality: None,
            success_rate: None,
            latency_ms: None,
        }
    }

    fn request(category: &str) -> RouteRequest<'_> {
        RouteRequest {
            category,
            pinned: false,
            sticky: None,
        }
    }

    fn names(decision: &RouteDecision, input: &[CandidateInput]) -> Vec<String> {
        decision
            .order
            .iter()
            .map(|&i| input[i].provider.clone())
            .collect()
    }

    #[test]
    fn with_no_data_the_configured_priority_decides() {
        let input = [candidate("c", 3), candidate("a", 1), candidate("b", 2)];
        let decision = route(request("general"), &input);
        assert_eq!(names(&decision, &input), ["a", "b", "c"]);
        assert_eq!(decision.reason, "best_score");
    }

    #[test]
    fn benchmark_quality_for_the_category_beats_priority() {
        let mut good = candidate("good", 2);
        good.quality = Some(95.0);
        let mut poor = candidate("poor", 1);
        poor.quality = Some(40.0);
        let input = [poor, good];
        assert_eq!(
            names(&route(request("coding"), &input), &input),
            ["good", "poor"]
        );
    }

    #[test]
    fn cheaper_and_faster_win_when_quality_is_equal() {
        let mut cheap = candidate("cheap", 1);
        cheap.estimate_micros = 100;
        let mut dear = candidate("dear", 1);
        dear.estimate_micros = 50_000;
        let input = [dear.clone(), cheap];
        assert_eq!(
            names(&route(request("general"), &input), &input),
            ["cheap", "dear"]
        );
        let mut slow = candidate("slow", 1);
        slow.latency_ms = Some(5_000.0);
        let mut fast = dear;
        fast.provider = "fast".into();
        fast.estimate_micros = 100;
        fast.latency_ms = Some(100.0);
        let input = [slow, fast];
        assert_eq!(
            names(&route(request("general"), &input), &input),
            ["fast", "slow"]
        );
    }

    #[test]
    fn open_circuits_are_never_tried_and_empty_budgets_are_tried_last() {
        let mut open = candidate("open", 1);
        open.circuit_allows = false;
        open.circuit_phase = "open";
        let mut broke = candidate("broke", 1);
        broke.affordable = false;
        broke.quality = Some(100.0);
        let input = [open, broke, candidate("ok", 9)];
        let decision = route(request("general"), &input);
        assert_eq!(names(&decision, &input), ["ok", "broke"]);
        assert_eq!(decision.candidates.len(), 3);
        assert!(decision.candidates[..2].iter().all(|c| c.eligible));
        assert!(!decision.candidates[2].eligible);
        assert_eq!(decision.candidates[2].reason, "circuit open");
        assert!(decision.candidates[1].reason.starts_with("budget"));
    }

    #[test]
    fn nothing_eligible_is_no_candidate() {
        let mut open = candidate("open", 1);
        open.circuit_allows = false;
        let decision = route(request("general"), &[open]);
        assert!(decision.order.is_empty());
        assert_eq!(decision.reason, "no_candidate");
    }

    #[test]
    fn a_session_sticks_to_its_provider_while_it_is_healthy_and_on_topic() {
        let mut best = candidate("best", 1);
        best.quality = Some(99.0);
        let input = [best, candidate("sticky", 2)];
        let mut req = request("coding");
        req.sticky = Some(("sticky", "coding"));
        let decision = route(req, &input);
        assert_eq!(names(&decision, &input), ["sticky", "best"]);
        assert_eq!(decision.reason, "session_continuity");
        // A new topic re-routes.
        req.sticky = Some(("sticky", "math"));
        assert_eq!(names(&route(req, &input), &input), ["best", "sticky"]);
        // An unhealthy sticky provider is not kept.
        let mut input = input;
        input[1].circuit_allows = false;
        req.sticky = Some(("sticky", "coding"));
        assert_eq!(names(&route(req, &input), &input), ["best"]);
    }

    #[test]
    fn a_provider_without_history_is_neither_favoured_nor_penalised() {
        let mut measured = candidate("measured", 2);
        measured.latency_ms = Some(1.0);
        measured.quality = Some(70.0);
        let input = [measured, candidate("new", 1)];
        // Same (neutral) terms, so the better priority goes first.
        assert_eq!(
            names(&route(request("general"), &input), &input),
            ["new", "measured"]
        );
    }

    #[test]
    fn failures_lower_the_score() {
        let mut flaky = candidate("flaky", 1);
        flaky.success_rate = Some(0.2);
        let input = [flaky, candidate("steady", 2)];
        assert_eq!(
            names(&route(request("general"), &input), &input),
            ["steady", "flaky"]
        );
    }

    #[test]
    fn the_decision_is_deterministic() {
        let input = [candidate("x", 1), candidate("y", 1), candidate("z", 1)];
        let first = route(request("general"), &input);
        for _ in 0..10 {
            assert_eq!(route(request("general"), &input), first);
        }
        assert_eq!(names(&first, &input), ["x", "y", "z"]);
    }
}
