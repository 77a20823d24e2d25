//! The open-loop arrival schedule: request `i` is due at `start + i / rate`.
//!
//! Each request's latency is measured from its due time, not from when the
//! generator got round to sending it: if the daemon stalls for a second, the
//! requests that should have gone out during that second are late, and their
//! latency shows it (a closed-loop client would just send fewer requests, and a
//! percentile over what it sent would hide the stall: "coordinated omission").

use std::time::{Duration, Instant};

/// Highest `--rate`: one request per microsecond is far beyond what one generator
/// thread can send, and keeps every due time an exact number of nanoseconds apart
/// within `f64` precision for runs of years.
pub const RATE_MAX: f64 = 1_000_000.0;

/// Evenly spaced due times.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// `rate` requests per second from `start` (0 < `rate` ≤ [`RATE_MAX`]).
    pub fn new(start: Instant, rate: f64) -> Schedule {
        assert!(
            rate.is_finite() && rate > 0.0 && rate <= RATE_MAX,
            "rate {rate} out of range"
        );
        Schedule { start, rate }
    }

    /// When request `index` is due. Computed from the index, never by adding up
    /// intervals, so rounding never drifts.
    pub fn due(&self, index: u64) -> Instant {
        self.start + self.offset(index)
    }

    /// Request `index`'s due time after the start.
    pub fn offset(&self, index: u64) -> Duration {
        let nanos = (index as f64 * 1e9 / self.rate).round();
        Duration::from_nanos(nanos as u64)
    }

    /// How many requests fall due before `start + window`.
    pub fn count_within(&self, window: Duration) -> u64 {
        // The smallest index whose offset is at or past the window.
        let estimate = (window.as_secs_f64() * self.rate).ceil() as u64;
        let mut index = estimate.saturating_sub(1);
        while self.offset(index) >= window && index > 0 {
            index -= 1;
        }
        while self.offset(index) < window {
            index += 1;
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 4.0);
        let offsets: Vec<Duration> = (0..5).map(|i| schedule.due(i) - start).collect();
        assert_eq!(
            offsets,
            [0, 250, 500, 750, 1000].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn due_times_do_not_drift_over_long_runs() {
        let schedule = Schedule::new(Instant::now(), 3.0);
        // 1/3 s is not a whole number of nanoseconds; the millionth request is
        // still due exactly 1,000,000/3 s in, to the nanosecond.
        assert_eq!(schedule.offset(3_000_000), Duration::from_secs(1_000_000));
        assert_eq!(
            schedule.offset(1),
            Duration::from_nanos(333_333_333),
            "rounded to the nearest nanosecond"
        );
        assert_eq!(schedule.offset(2), Duration::from_nanos(666_666_667));
        let fast = Schedule::new(Instant::now(), 7_919.0);
        for index in [1u64, 1_000, 7_919, 1_000_000_007] {
            let expected = index as f64 / 7_919.0;
            let got = fast.offset(index).as_secs_f64();
            assert!(
                (got - expected).abs() < 1e-6,
                "{index}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn due_times_are_strictly_increasing_at_high_rates() {
        let schedule = Schedule::new(Instant::now(), RATE_MAX);
        for index in 0..10_000 {
            assert!(schedule.offset(index + 1) > schedule.offset(index));
        }
    }

    #[test]
    fn a_window_holds_rate_times_seconds_requests() {
        let schedule = Schedule::new(Instant::now(), 100.0);
        assert_eq!(schedule.count_within(Duration::from_secs(3)), 300);
        assert_eq!(schedule.count_within(Duration::from_millis(1)), 1);
        assert_eq!(schedule.count_within(Duration::ZERO), 0);
        let odd = Schedule::new(Instant::now(), 2.5);
        // Due at 0, 0.4, 0.8, 1.2: four before 1.5 s, and 1.2 s is not before 1.2 s.
        assert_eq!(odd.count_within(Duration::from_millis(1500)), 4);
        assert_eq!(odd.count_within(Duration::from_millis(1200)), 3);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn a_zero_rate_is_refused() {
        let _schedule = Schedule::new(Instant::now(), 0.0);
    }
}
