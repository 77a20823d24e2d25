//! Robust outlier detection on example length (modified z-score, Iglewicz and
//! Hoaglin 1993): the median and the median absolute deviation are not dragged by
//! the outliers themselves, as a mean and standard deviation would be.

use super::{OUTLIER_MIN_EXAMPLES, OUTLIER_Z_MAX};

/// 0.6745 is the 0.75 quantile of the standard normal: MAD / 0.6745 estimates σ.
const MAD_SCALE: f64 = 0.6745;
/// √(π/2): mean absolute deviation × 1.253314 estimates σ (used when MAD is 0).
const MEAN_AD_SCALE: f64 = 1.253_314;

fn median(sorted: &[f64]) -> f64 {
    let count = sorted.len();
    match count {
        0 => 0.0,
        _ if count % 2 == 1 => sorted.get(count / 2).copied().unwrap_or(0.0),
        _ => {
            let low = sorted.get(count / 2 - 1).copied().unwrap_or(0.0);
            let high = sorted.get(count / 2).copied().unwrap_or(0.0);
            (low + high) / 2.0
        }
    }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

/// The robust z-score of each value; all 0 when the values do not vary.
pub fn robust_z_scores(values: &[f64]) -> Vec<f64> {
    let center = median(&sorted(values.iter().copied()));
    let deviations = sorted(values.iter().map(|v| (v - center).abs()));
    let mad = median(&deviations);
    if mad > 0.0 {
        return values
            .iter()
            .map(|v| MAD_SCALE * (v - center) / mad)
            .collect();
    }
    let count = u32::try_from(values.len().max(1)).unwrap_or(u32::MAX);
    let mean_ad = deviations.iter().sum::<f64>() / f64::from(count);
    if mean_ad > 0.0 {
        return values
            .iter()
            .map(|v| (v - center) / (MEAN_AD_SCALE * mean_ad))
            .collect();
    }
    vec![0.0; values.len()]
}

/// For each value, whether it is an outlier (`|z| > 3.5`). Nothing is flagged
/// unless there are more than [`OUTLIER_MIN_EXAMPLES`] values: below that the
/// median and MAD are too noisy to judge by.
pub fn outlier_flags(values: &[f64]) -> Vec<bool> {
    if values.len() <= OUTLIER_MIN_EXAMPLES {
        return vec![false; values.len()];
    }
    robust_z_scores(values)
        .into_iter()
        .map(|z| z.abs() > OUTLIER_Z_MAX)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_follow_the_median_and_mad() {
        // median 3, deviations [2,1,0,1,2] → MAD 1.
        let z = robust_z_scores(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(z, vec![-1.349, -0.6745, 0.0, 0.6745, 1.349]);
        // Even count: median of the middle two.
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), 3.0);
    }

    #[test]
    fn a_constant_majority_falls_back_to_the_mean_deviation() {
        let mut values = vec![10.0; 9];
        values.push(20.0);
        let z = robust_z_scores(&values);
        // mean AD = 1, so z = 10 / 1.253314 for the odd one, 0 for the rest.
        assert!((z[9] - 10.0 / MEAN_AD_SCALE).abs() < 1e-12);
        assert!(z[..9].iter().all(|z| *z == 0.0));
        assert_eq!(robust_z_scores(&[7.0; 4]), vec![0.0; 4]);
    }

    #[test]
    fn only_large_sets_lose_outliers() {
        let mut values: Vec<f64> = (0..101).map(|i| 10.0 + f64::from(i % 7)).collect();
        values.push(500.0);
        values.push(-400.0);
        let flags = outlier_flags(&values);
        assert_eq!(flags.iter().filter(|f| **f).count(), 2);
        assert!(flags[101] && flags[102]);
        let small: Vec<f64> = values[..99].iter().copied().chain([500.0]).collect();
        assert_eq!(small.len(), OUTLIER_MIN_EXAMPLES);
        assert!(outlier_flags(&small).iter().all(|f| !f));
    }
}
