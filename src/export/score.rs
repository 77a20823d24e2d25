//! The composite score's components (formulas in the module docs of
//! [`crate::export`]). Only correctly rounded IEEE 754 operations (no libm), so
//! scores are bit-identical on every platform.

use super::{
    Verdict, LENGTH_SCORE_WORDS, WEIGHT_CONFIDENCE, WEIGHT_DIVERSITY, WEIGHT_INFORMATIVENESS,
    WEIGHT_QUALITY,
};

/// Quality of an exchange without any signal: unknown, neither good nor bad.
pub const UNKNOWN_QUALITY: f64 = 50.0;

/// Beyond this many pieces of evidence confidence is 100 to within 1e-7 (and
/// `2ⁿ` still fits a u32).
const EVIDENCE_COUNT_MAX: u32 = 31;

/// `0.6·Q + 0.2·C + 0.1·D + 0.1·I`.
pub fn composite(quality: f64, confidence: f64, diversity: f64, informativeness: f64) -> f64 {
    WEIGHT_QUALITY * quality
        + WEIGHT_CONFIDENCE * confidence
        + WEIGHT_DIVERSITY * diversity
        + WEIGHT_INFORMATIVENESS * informativeness
}

/// `1 − 2⁻ⁿ`, exact for every `n` (a power of two is exact in f64).
fn saturation(count: u32) -> f64 {
    let count = count.min(EVIDENCE_COUNT_MAX);
    1.0 - 1.0 / f64::from(1u32 << count)
}

/// Training confidence: `100 · (1 − 2⁻ⁿ)` for `n` graded attempts.
pub fn confidence_from_attempts(attempts: usize) -> f64 {
    100.0 * saturation(u32::try_from(attempts).unwrap_or(u32::MAX))
}

/// Gateway confidence: `100 · (1 − 2⁻ˢ) · (1 − spread/100)` over the signals.
pub fn confidence_from_signals(signals: &[f64]) -> f64 {
    let Some(spread) = spread(signals) else {
        return 0.0;
    };
    let count = u32::try_from(signals.len()).unwrap_or(u32::MAX);
    100.0 * saturation(count) * (1.0 - spread / 100.0)
}

fn spread(signals: &[f64]) -> Option<f64> {
    let max = signals.iter().copied().reduce(f64::max)?;
    let min = signals.iter().copied().reduce(f64::min)?;
    Some((max - min).clamp(0.0, 100.0))
}

/// Gateway quality: the mean of the signals, or [`UNKNOWN_QUALITY`] without any.
pub fn quality_from_signals(signals: &[f64]) -> f64 {
    if signals.is_empty() {
        return UNKNOWN_QUALITY;
    }
    let count = u32::try_from(signals.len()).unwrap_or(u32::MAX);
    signals.iter().sum::<f64>() / f64::from(count)
}

/// The 0–100 signals of one verdict: `quality` as is, `(rating − 1) · 25`,
/// `accepted` as 100 or 0. Out-of-range values are clamped (the API bounds them;
/// the log may hold events written by other tools).
pub fn verdict_signals(verdict: &Verdict, signals: &mut Vec<f64>) {
    if let Some(quality) = verdict.quality.filter(|q| q.is_finite()) {
        signals.push(quality.clamp(0.0, 100.0));
    }
    if let Some(rating) = verdict.rating {
        let rating = f64::from(rating.clamp(1, 5));
        signals.push((rating - 1.0) * 25.0);
    }
    if let Some(accepted) = verdict.accepted {
        signals.push(if accepted { 100.0 } else { 0.0 });
    }
}

/// `L(text) = 100 · min(1, √(words / 200))`.
pub fn length_score(text: &str) -> f64 {
    let words = u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX);
    let ratio = f64::from(words) / f64::from(LENGTH_SCORE_WORDS);
    100.0 * ratio.sqrt().min(1.0)
}

/// `D = 100 / k` for `k` candidates sharing a prompt.
pub fn diversity(sharing: usize) -> f64 {
    let sharing = u32::try_from(sharing.max(1)).unwrap_or(u32::MAX);
    100.0 / f64::from(sharing)
}

/// `count / total` as a fraction (0 when `total` is 0).
pub fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    f64::from(count) / f64::from(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_weights_are_the_seeds() {
        assert_eq!(composite(100.0, 100.0, 100.0, 100.0), 100.0);
        assert_eq!(composite(0.0, 0.0, 0.0, 0.0), 0.0);
        assert!((composite(100.0, 0.0, 0.0, 0.0) - 60.0).abs() < 1e-12);
        assert!((composite(0.0, 100.0, 0.0, 0.0) - 20.0).abs() < 1e-12);
        assert!((composite(0.0, 0.0, 100.0, 0.0) - 10.0).abs() < 1e-12);
        assert!((composite(0.0, 0.0, 0.0, 100.0) - 10.0).abs() < 1e-12);
        // A reference answer asked once, unique, never failed, 20 words:
        // 60 + 10 + 10 + 0.1·(0.5·L) with L = 100·√0.1.
        let l = length_score(&"word ".repeat(20));
        assert!((l - 100.0 * 0.1f64.sqrt()).abs() < 1e-12);
        let score = composite(100.0, confidence_from_attempts(1), 100.0, 0.5 * l);
        assert!((score - (80.0 + 0.05 * l)).abs() < 1e-12);
    }

    #[test]
    fn confidence_grows_with_evidence_and_falls_with_disagreement() {
        assert_eq!(confidence_from_attempts(0), 0.0);
        assert_eq!(confidence_from_attempts(1), 50.0);
        assert_eq!(confidence_from_attempts(2), 75.0);
        assert_eq!(confidence_from_attempts(3), 87.5);
        assert!(confidence_from_attempts(1_000_000) <= 100.0);
        assert!(confidence_from_attempts(1_000_000) > 99.999_99);
        assert_eq!(confidence_from_signals(&[]), 0.0);
        assert_eq!(confidence_from_signals(&[90.0]), 50.0);
        assert_eq!(confidence_from_signals(&[100.0, 100.0]), 75.0);
        // Two signals 50 apart: 75 · (1 − 0.5).
        assert_eq!(confidence_from_signals(&[100.0, 50.0]), 37.5);
        assert_eq!(confidence_from_signals(&[100.0, 0.0]), 0.0);
    }

    #[test]
    fn verdicts_become_signals() {
        let mut signals = Vec::new();
        verdict_signals(
            &Verdict {
                rating: Some(4),
                accepted: Some(true),
                quality: Some(150.0),
            },
            &mut signals,
        );
        assert_eq!(signals, vec![100.0, 75.0, 100.0]);
        assert!((quality_from_signals(&signals) - 275.0 / 3.0).abs() < 1e-12);
        assert_eq!(quality_from_signals(&[]), UNKNOWN_QUALITY);
        signals.clear();
        verdict_signals(
            &Verdict {
                rating: Some(1),
                accepted: Some(false),
                quality: Some(f64::NAN),
            },
            &mut signals,
        );
        assert_eq!(signals, vec![0.0, 0.0]);
    }

    #[test]
    fn length_and_diversity_are_bounded() {
        assert_eq!(length_score(""), 0.0);
        assert_eq!(length_score(&"w ".repeat(200)), 100.0);
        assert_eq!(length_score(&"w ".repeat(5000)), 100.0);
        assert_eq!(length_score(&"w ".repeat(50)), 50.0);
        assert_eq!(diversity(0), 100.0);
        assert_eq!(diversity(1), 100.0);
        assert_eq!(diversity(4), 25.0);
        assert_eq!(share(1, 4), 0.25);
        assert_eq!(share(3, 0), 0.0);
    }
}
