//! Adaptive: choose the next item so the learner succeeds about `target_accuracy`
//! of the time, with a seeded chance of exploring something else.
//!
//! With probability `1 − exploration_rate` the candidate whose expected success is
//! closest to the target is taken (ties: smallest item id, so the order candidates
//! arrive in does not matter); otherwise a uniformly random *other* candidate is. The
//! randomness is a SplitMix64 stream from the caller's seed (use
//! [`super::seed_from`] on event data such as the session id and round number), so a
//! replay makes the same choice.

use serde::{Deserialize, Serialize};

use super::{check_range, AlgoError, AlgoKey, SplitMix64};

/// Params of adaptive v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveParams {
    /// Expected success to aim at (seed: 0.75).
    pub target_accuracy: f64,
    /// Probability of exploring instead of exploiting (seed: 0.2).
    pub exploration_rate: f64,
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        AdaptiveParams {
            target_accuracy: 0.75,
            exploration_rate: 0.2,
        }
    }
}

impl AdaptiveParams {
    /// Check ranges.
    pub fn validate(&self) -> Result<(), AlgoError> {
        check_range(
            AlgoKey::Adaptive,
            "target_accuracy",
            self.target_accuracy,
            0.0,
            1.0,
        )?;
        check_range(
            AlgoKey::Adaptive,
            "exploration_rate",
            self.exploration_rate,
            0.0,
            1.0,
        )
    }
}

/// An item the learner could get next, with its expected success (e.g. mastery's
/// `p_correct` for that item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Item id.
    pub item_id: String,
    /// P(correct) for this learner; NaN counts as furthest from the target.
    pub p_success: f64,
}

/// The choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Index into the candidates given.
    pub index: usize,
    /// The chosen item.
    pub item_id: String,
    /// Its expected success.
    pub p_success: f64,
    /// Whether this was an exploration pick rather than the closest to target.
    pub explored: bool,
}

/// Pick the next item; `None` only when there are no candidates.
pub fn select(params: &AdaptiveParams, candidates: &[Candidate], seed: u64) -> Option<Selection> {
    let best = best_index(params.target_accuracy, candidates)?;
    let mut rng = SplitMix64::new(seed);
    let explore = candidates.len() > 1 && rng.next_f64() < params.exploration_rate;
    let index = if explore {
        // Draw among the others (skip over `best`), so exploring always changes the pick.
        let draw = rng.below(candidates.len() as u64 - 1) as usize;
        if draw >= best {
            draw + 1
        } else {
            draw
        }
    } else {
        best
    };
    let chosen = &candidates[index];
    Some(Selection {
        index,
        item_id: chosen.item_id.clone(),
        p_success: chosen.p_success,
        explored: explore,
    })
}

fn best_index(target: f64, candidates: &[Candidate]) -> Option<usize> {
    let distance = |c: &Candidate| {
        let d = (c.p_success - target).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            d
        }
    };
    (0..candidates.len()).min_by(|&a, &b| {
        let (ca, cb) = (&candidates[a], &candidates[b]);
        distance(ca)
            .total_cmp(&distance(cb))
            .then_with(|| ca.item_id.cmp(&cb.item_id))
            .then_with(|| a.cmp(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(ps: &[(&str, f64)]) -> Vec<Candidate> {
        ps.iter()
            .map(|(id, p)| Candidate {
                item_id: (*id).to_string(),
                p_success: *p,
            })
            .collect()
    }

    #[test]
    fn without_exploration_the_closest_to_target_wins() {
        let p = AdaptiveParams {
            exploration_rate: 0.0,
            ..AdaptiveParams::default()
        };
        let c = cands(&[("hard", 0.3), ("right", 0.72), ("easy", 0.95)]);
        for seed in 0..100 {
            let s = select(&p, &c, seed).expect("non-empty");
            assert_eq!(s.item_id, "right");
            assert!(!s.explored);
        }
    }

    #[test]
    fn ties_and_nan_are_broken_deterministically() {
        let p = AdaptiveParams {
            exploration_rate: 0.0,
            ..AdaptiveParams::default()
        };
        let c = cands(&[("b", 0.8), ("a", 0.7), ("z", f64::NAN)]);
        assert_eq!(select(&p, &c, 1).expect("non-empty").item_id, "a");
        let only_nan = cands(&[("z", f64::NAN)]);
        assert_eq!(select(&p, &only_nan, 1).expect("non-empty").item_id, "z");
        assert!(select(&p, &[], 1).is_none());
    }

    #[test]
    fn exploration_rate_is_respected_and_exploring_changes_the_pick() {
        let p = AdaptiveParams::default();
        let c = cands(&[("a", 0.2), ("b", 0.75), ("c", 0.9), ("d", 0.5)]);
        let n = 10_000u64;
        let mut explored = 0;
        for seed in 0..n {
            let s =
                select(&p, &c, super::super::seed_from(&[&seed.to_le_bytes()])).expect("non-empty");
            if s.explored {
                explored += 1;
                assert_ne!(s.item_id, "b");
            } else {
                assert_eq!(s.item_id, "b");
            }
        }
        let rate = explored as f64 / n as f64;
        assert!((rate - 0.2).abs() < 0.02, "{rate}");
    }

    #[test]
    fn same_seed_same_choice() {
        let p = AdaptiveParams {
            exploration_rate: 0.5,
            ..AdaptiveParams::default()
        };
        let c = cands(&[("a", 0.2), ("b", 0.75), ("c", 0.9), ("d", 0.5)]);
        for seed in 0..200 {
            assert_eq!(select(&p, &c, seed), select(&p, &c, seed));
        }
    }

    #[test]
    fn a_single_candidate_is_always_chosen() {
        let p = AdaptiveParams {
            exploration_rate: 1.0,
            ..AdaptiveParams::default()
        };
        let s = select(&p, &cands(&[("only", 0.1)]), 7).expect("non-empty");
        assert_eq!((s.index, s.explored), (0, false));
    }
}
