//! Offline evaluation metrics: AUC and log loss over (prediction, outcome) pairs.

/// Predictions are clipped to `[EPS, 1 − EPS]` for log loss, so one confident miss
/// costs a lot but not infinity.
pub const EPS: f64 = 1e-15;

/// Area under the ROC curve: the probability that a random positive is ranked above
/// a random negative, ties counted half (Mann–Whitney with midranks). `None` when
/// there are no positives or no negatives.
pub fn auc(pairs: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|p| p.1).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        // Ranks are 1-based: this tie group spans ranks i+1..=j.
        let midrank = (i + 1 + j) as f64 / 2.0;
        let pos_in_group = sorted[i..j].iter().filter(|p| p.1).count() as f64;
        rank_sum += midrank * pos_in_group;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Mean negative log-likelihood (natural log); `None` for no pairs.
pub fn log_loss(pairs: &[(f64, bool)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let total: f64 = pairs
        .iter()
        .map(|&(p, y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Some(total / pairs.len() as f64)
}

/// The baseline predictor: a learner's (or card's) running accuracy with Laplace
/// smoothing, `(correct + 1) / (seen + 2)`, so the first prediction is 0.5.
pub fn running_accuracy(correct: u64, seen: u64) -> f64 {
    (correct as f64 + 1.0) / (seen as f64 + 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_perfect_random_and_ties() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(auc(&perfect), Some(1.0));
        let inverted = [(0.9, false), (0.1, true)];
        assert_eq!(auc(&inverted), Some(0.0));
        let ties = [(0.5, false), (0.5, true), (0.5, true), (0.5, false)];
        assert_eq!(auc(&ties), Some(0.5));
        // One positive above one of two negatives: 0.5.
        assert_eq!(auc(&[(0.2, false), (0.5, true), (0.7, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
    }

    #[test]
    fn log_loss_values() {
        let ll = log_loss(&[(0.5, true), (0.5, false)]).expect("non-empty");
        assert!((ll - 2f64.ln()).abs() < 1e-12);
        let certain_miss = log_loss(&[(0.0, true)]).expect("non-empty");
        assert!(certain_miss.is_finite() && certain_miss > 30.0);
        assert_eq!(log_loss(&[]), None);
    }

    #[test]
    fn running_accuracy_starts_at_half() {
        assert_eq!(running_accuracy(0, 0), 0.5);
        assert_eq!(running_accuracy(3, 4), 4.0 / 6.0);
    }
}
