//! The stratified 80/10/10 split (rule in the module docs of [`crate::export`]).

use super::SPLIT_WEIGHTS_PERCENT;

/// Which file an example goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    /// `train.jsonl`.
    Train,
    /// `validation.jsonl`.
    Validation,
    /// `test.jsonl`.
    Test,
}

impl Split {
    /// All splits, in file order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    /// The name used in file names and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    fn index(self) -> usize {
        match self {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        }
    }
}

/// Assigns splits along a sequence already ordered by (stratum, content hash): each
/// item goes to the split furthest behind its weight. Pure integer arithmetic, so
/// the same sequence always gives the same assignment, and after any prefix of `j`
/// items each split holds within one item of `j · weight / 100`.
pub fn assign_splits(count: usize) -> Vec<Split> {
    let mut assigned = [0u64; 3];
    let mut out = Vec::with_capacity(count);
    for seen in 1..=u64::try_from(count).unwrap_or(u64::MAX) {
        let mut best = Split::Train;
        let mut best_deficit = i128::MIN;
        for split in Split::ALL {
            let index = split.index();
            let weight = SPLIT_WEIGHTS_PERCENT.get(index).copied().unwrap_or(0);
            let have = assigned.get(index).copied().unwrap_or(0);
            let deficit = i128::from(seen) * i128::from(weight) - 100 * i128::from(have);
            // Strictly greater: ties go to the earlier split (train, then validation).
            if deficit > best_deficit {
                best = split;
                best_deficit = deficit;
            }
        }
        if let Some(slot) = assigned.get_mut(best.index()) {
            *slot += 1;
        }
        out.push(best);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(splits: &[Split]) -> [usize; 3] {
        let mut counts = [0; 3];
        for split in splits {
            counts[split.index()] += 1;
        }
        counts
    }

    #[test]
    fn every_prefix_is_within_one_item_of_the_weights() {
        let splits = assign_splits(10_000);
        let mut have = [0i64; 3];
        for (index, split) in splits.iter().enumerate() {
            have[split.index()] += 1;
            let seen = i64::try_from(index + 1).expect("fits");
            for (slot, weight) in SPLIT_WEIGHTS_PERCENT.iter().enumerate() {
                let ideal = seen * i64::try_from(*weight).expect("fits");
                assert!((100 * have[slot] - ideal).abs() < 100, "prefix {seen}");
            }
        }
        assert_eq!(counts(&splits), [8000, 1000, 1000]);
    }

    #[test]
    fn small_counts_fill_train_first_and_are_deterministic() {
        assert_eq!(assign_splits(0), Vec::<Split>::new());
        assert_eq!(assign_splits(1), vec![Split::Train]);
        assert_eq!(counts(&assign_splits(10)), [8, 1, 1]);
        assert_eq!(counts(&assign_splits(7)).iter().sum::<usize>(), 7);
        assert_eq!(assign_splits(123), assign_splits(123));
    }

    #[test]
    fn proportions_are_within_one_percent_for_any_size_from_100() {
        for count in 100..=2_000 {
            let [train, validation, test] = counts(&assign_splits(count));
            let total = count as f64;
            assert!((train as f64 / total - 0.8).abs() <= 0.01, "{count}");
            assert!((validation as f64 / total - 0.1).abs() <= 0.01, "{count}");
            assert!((test as f64 / total - 0.1).abs() <= 0.01, "{count}");
        }
    }
}
