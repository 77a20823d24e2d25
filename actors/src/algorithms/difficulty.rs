//! Difficulty: calibrate an item's difficulty from its most recent attempts.
//!
//! The estimate is the smoothed failure log-odds of the last `window_size` attempts
//! (Laplace: one virtual success and one virtual failure, so 10/10 correct is not
//! "infinitely easy"). When attempts carry the learner's ability (logit, from
//! mastery v2) the mean ability is added, a first-order Rasch correction: an item
//! answered mostly by strong learners is harder than its raw success rate says.
//! The result is on the same logit scale as mastery v2's `item_difficulty`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_range, AlgoError, AlgoKey};

/// Params of difficulty v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DifficultyParams {
    /// How many of the most recent attempts to use (seed: 100).
    pub window_size: u32,
    /// Fewer attempts than this give no calibration (seed: 10).
    pub min_attempts: u32,
    /// Smoothed success rate at or above which an item is labelled easy.
    pub easy_above: f64,
    /// Smoothed success rate below which an item is labelled hard.
    pub hard_below: f64,
}

impl Default for DifficultyParams {
    fn default() -> Self {
        DifficultyParams {
            window_size: 100,
            min_attempts: 10,
            easy_above: 0.8,
            hard_below: 0.5,
        }
    }
}

impl DifficultyParams {
    /// Check ranges and that the window can hold the minimum.
    pub fn validate(&self) -> Result<(), AlgoError> {
        let k = AlgoKey::Difficulty;
        if self.window_size == 0 || self.min_attempts > self.window_size {
            return Err(AlgoError::InvalidParams {
                key: k,
                field: "window_size",
                reason: format!(
                    "must be at least 1 and at least min_attempts ({})",
                    self.min_attempts
                ),
            });
        }
        check_range(k, "easy_above", self.easy_above, 0.0, 1.0)?;
        check_range(k, "hard_below", self.hard_below, 0.0, self.easy_above)
    }
}

/// One attempt at an item, oldest first in the slices given to [`calibrate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ItemAttempt {
    /// Whether the answer was correct.
    pub correct: bool,
    /// The learner's ability (logit) at the time, if known.
    pub learner_ability: Option<f64>,
}

/// Coarse label for item banks and UIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifficultyBand {
    /// Smoothed success rate ≥ `easy_above`.
    Easy,
    /// In between.
    Medium,
    /// Smoothed success rate < `hard_below`.
    Hard,
}

/// A calibrated difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ItemDifficulty {
    /// Attempts used (at most `window_size`).
    pub attempts: u32,
    /// Correct among them.
    pub correct: u32,
    /// Laplace-smoothed success rate.
    pub p_correct: f64,
    /// Difficulty on the logit scale (higher is harder).
    pub difficulty: f64,
    /// Label.
    pub band: DifficultyBand,
}

/// Calibrate from `attempts` (oldest first): `None` when fewer than `min_attempts`.
pub fn calibrate(params: &DifficultyParams, attempts: &[ItemAttempt]) -> Option<ItemDifficulty> {
    let window = params.window_size as usize;
    let recent = &attempts[attempts.len().saturating_sub(window)..];
    if recent.len() < params.min_attempts as usize || recent.is_empty() {
        return None;
    }
    let n = recent.len() as f64;
    let correct = recent.iter().filter(|a| a.correct).count();
    let p_correct = (correct as f64 + 1.0) / (n + 2.0);
    let (sum, known) = recent
        .iter()
        .filter_map(|a| a.learner_ability)
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
    let mean_ability = if known == 0 { 0.0 } else { sum / known as f64 };
    let band = if p_correct >= params.easy_above {
        DifficultyBand::Easy
    } else if p_correct < params.hard_below {
        DifficultyBand::Hard
    } else {
        DifficultyBand::Medium
    };
    Some(ItemDifficulty {
        // Window sizes are u32, so the count fits.
        attempts: recent.len() as u32,
        correct: correct as u32,
        p_correct,
        difficulty: mean_ability + ((1.0 - p_correct) / p_correct).ln(),
        band,
    })
}

/// Batch recalibration: every item with enough attempts, keyed and ordered by item id.
pub fn calibrate_all(
    params: &DifficultyParams,
    attempts_by_item: &BTreeMap<String, Vec<ItemAttempt>>,
) -> BTreeMap<String, ItemDifficulty> {
    attempts_by_item
        .iter()
        .filter_map(|(item, attempts)| calibrate(params, attempts).map(|d| (item.clone(), d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(pattern: &[bool]) -> Vec<ItemAttempt> {
        pattern
            .iter()
            .map(|&correct| ItemAttempt {
                correct,
                learner_ability: None,
            })
            .collect()
    }

    #[test]
    fn needs_min_attempts() {
        let p = DifficultyParams::default();
        assert!(calibrate(&p, &attempts(&[true; 9])).is_none());
        assert!(calibrate(&p, &attempts(&[true; 10])).is_some());
        assert!(calibrate(&p, &[]).is_none());
    }

    #[test]
    fn hand_computed_difficulty_and_bands() {
        let p = DifficultyParams::default();
        // 8 of 10 correct: p = 9/12 = 0.75, difficulty = ln(0.25/0.75).
        let mut pattern = vec![true; 8];
        pattern.extend([false, false]);
        let d = calibrate(&p, &attempts(&pattern)).expect("enough");
        assert_eq!((d.attempts, d.correct), (10, 8));
        assert!((d.p_correct - 0.75).abs() < 1e-12);
        assert!((d.difficulty - (1.0f64 / 3.0).ln()).abs() < 1e-12);
        assert_eq!(d.band, DifficultyBand::Medium);
        let easy = calibrate(&p, &attempts(&[true; 20])).expect("enough");
        assert_eq!(easy.band, DifficultyBand::Easy);
        assert!(easy.difficulty < 0.0 && easy.difficulty.is_finite());
        let hard = calibrate(&p, &attempts(&[false; 20])).expect("enough");
        assert_eq!(hard.band, DifficultyBand::Hard);
        assert!(hard.difficulty > 0.0 && hard.difficulty.is_finite());
    }

    #[test]
    fn only_the_last_window_counts() {
        let p = DifficultyParams::default();
        // 200 old failures then 100 successes: only the successes are in the window.
        let mut pattern = vec![false; 200];
        pattern.extend(vec![true; 100]);
        let d = calibrate(&p, &attempts(&pattern)).expect("enough");
        assert_eq!((d.attempts, d.correct), (100, 100));
    }

    #[test]
    fn stronger_answerers_make_an_item_harder() {
        let p = DifficultyParams::default();
        let mut strong = attempts(&[
            true, false, true, false, true, false, true, false, true, false,
        ]);
        for a in &mut strong {
            a.learner_ability = Some(1.5);
        }
        let plain = calibrate(
            &p,
            &attempts(&[
                true, false, true, false, true, false, true, false, true, false,
            ]),
        )
        .expect("enough");
        let adjusted = calibrate(&p, &strong).expect("enough");
        assert!((adjusted.difficulty - plain.difficulty - 1.5).abs() < 1e-12);
    }

    #[test]
    fn batch_skips_items_without_enough_attempts() {
        let p = DifficultyParams::default();
        let mut by_item = BTreeMap::new();
        by_item.insert("a".to_string(), attempts(&[true; 12]));
        by_item.insert("b".to_string(), attempts(&[true; 3]));
        let out = calibrate_all(&p, &by_item);
        assert_eq!(out.keys().collect::<Vec<_>>(), vec!["a"]);
    }

    #[test]
    fn window_smaller_than_minimum_is_refused() {
        let p = DifficultyParams {
            window_size: 5,
            ..DifficultyParams::default()
        };
        assert!(p.validate().is_err());
    }
}
