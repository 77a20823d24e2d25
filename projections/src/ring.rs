//! [`Ring`]: a fixed-capacity buffer of the last `N` values, for sliding windows
//! (error rate over the last calls, latency percentiles over the last successes).
//!
//! It is part of read models, so it is snapshotted as JSON: `{"values": [...],
//! "next": k}` in storage order. The same pushes always give the same JSON, and a
//! snapshot that breaks the ring's invariants fails to deserialize (the runner then
//! rebuilds the projection from the log instead of trusting it).

use serde::{Deserialize, Serialize};

/// The last `N` values pushed (fewer until `N` were pushed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RingRepr<T>", bound(deserialize = "T: Deserialize<'de>"))]
pub struct Ring<T, const N: usize> {
    /// Storage order: once full, `values[next]` is the oldest.
    values: Vec<T>,
    /// Where the next push overwrites, once full; 0 while not full.
    next: usize,
}

/// The serialized form, checked before it becomes a [`Ring`].
#[derive(Deserialize)]
struct RingRepr<T> {
    values: Vec<T>,
    next: usize,
}

impl<T, const N: usize> TryFrom<RingRepr<T>> for Ring<T, N> {
    type Error = String;

    fn try_from(repr: RingRepr<T>) -> Result<Self, Self::Error> {
        let full = repr.values.len() == N;
        if repr.values.len() > N || (repr.next != 0 && !full) || (full && repr.next >= N) {
            return Err(format!(
                "ring of capacity {N} with {} values and next {}",
                repr.values.len(),
                repr.next
            ));
        }
        Ok(Ring {
            values: repr.values,
            next: repr.next,
        })
    }
}

impl<T, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Ring {
            values: Vec::new(),
            next: 0,
        }
    }
}

impl<T: Copy, const N: usize> Ring<T, N> {
    const CAPACITY_IS_POSITIVE: () = assert!(N > 0, "a ring holds at least one value");

    /// Appends `value`, dropping the oldest once `N` values are held.
    pub fn push(&mut self, value: T) {
        let () = Self::CAPACITY_IS_POSITIVE;
        if self.values.len() < N {
            self.values.push(value);
            return;
        }
        if let Some(slot) = self.values.get_mut(self.next) {
            *slot = value;
        }
        self.next = (self.next + 1) % N;
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        let (newer, older) = self.values.split_at(self.next.min(self.values.len()));
        older.iter().chain(newer.iter()).copied()
    }
}

impl<const N: usize> Ring<u64, N> {
    /// The nearest-rank percentiles `percents` (each 1 to 100) of the values held,
    /// in the order asked; `None` each when empty. Sorts one copy of the values.
    pub fn percentiles<const K: usize>(&self, percents: [u64; K]) -> [Option<u64>; K] {
        let mut sorted: Vec<u64> = self.values.clone();
        sorted.sort_unstable();
        percents.map(|percent| nearest_rank(&sorted, percent))
    }
}

/// The nearest-rank `percent`-th percentile of `sorted`: the smallest value with at
/// least `percent` % of the values at or below it.
fn nearest_rank(sorted: &[u64], percent: u64) -> Option<u64> {
    let count = sorted.len() as u64;
    if count == 0 {
        return None;
    }
    let rank = (percent.clamp(1, 100) * count).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_in_order() {
        let mut ring = Ring::<u64, 3>::default();
        assert!(ring.is_empty());
        for value in 1..=5 {
            ring.push(value);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.iter().collect::<Vec<_>>(), [3, 4, 5]);
        let json = serde_json::to_string(&ring).expect("json");
        let back: Ring<u64, 3> = serde_json::from_str(&json).expect("back");
        assert_eq!(back, ring);
    }

    #[test]
    fn nearest_rank_percentiles_of_known_sequences() {
        let mut ring = Ring::<u64, 1000>::default();
        assert_eq!(ring.percentiles([50, 99]), [None, None]);
        ring.push(7);
        assert_eq!(ring.percentiles([50, 99]), [Some(7), Some(7)]);
        let mut ring = Ring::<u64, 1000>::default();
        // Pushed out of order: percentiles do not depend on arrival order.
        for value in (1..=100).rev() {
            ring.push(value);
        }
        assert_eq!(
            ring.percentiles([50, 99, 100]),
            [Some(50), Some(99), Some(100)]
        );
        let mut ring = Ring::<u64, 1000>::default();
        for value in 1..=1500 {
            ring.push(value);
        }
        // Only 501..=1500 remain.
        assert_eq!(ring.percentiles([50, 99]), [Some(1000), Some(1490)]);
    }

    #[test]
    fn broken_snapshots_are_refused() {
        for json in [
            r#"{"values":[1,2,3,4],"next":0}"#,
            r#"{"values":[1,2],"next":1}"#,
            r#"{"values":[1,2,3],"next":3}"#,
        ] {
            assert!(
                serde_json::from_str::<Ring<u64, 3>>(json).is_err(),
                "{json}"
            );
        }
        let ok: Ring<u64, 3> = serde_json::from_str(r#"{"values":[1,2,3],"next":2}"#).expect("ok");
        assert_eq!(ok.iter().collect::<Vec<_>>(), [3, 1, 2]);
    }
}
