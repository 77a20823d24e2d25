//! Where `now` comes from.
//!
//! Domain logic never reads the wall clock: the aggregate actor asks an injected
//! [`Clock`] once per command and hands the instant to `decide`. The daemon uses
//! [`SystemClock`]; tests use [`ManualClock`] so every event they produce is
//! deterministic.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, replays, simulations).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `instant` (backwards too: tests may want that).
    pub fn set(&self, instant: DateTime<Utc>) {
        *self.lock() = instant;
    }

    /// Moves the clock forward by `delta` and returns the new instant.
    pub fn advance(&self, delta: TimeDelta) -> DateTime<Utc> {
        let mut now = self.lock();
        *now += delta;
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // The guarded value is a plain timestamp: a panic while holding the lock
        // cannot leave it half-written, so a poisoned lock is still usable.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    /// A clock stopped at [`crate::decider::reference_time`], the instant the
    /// decider test harness uses too.
    fn default() -> Self {
        ManualClock::new(crate::decider::reference_time())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::default();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        let later = clock.advance(TimeDelta::seconds(90));
        assert_eq!(later - start, TimeDelta::seconds(90));
        assert_eq!(clock.now(), later);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn system_clock_is_close_to_now() {
        let delta = Utc::now() - SystemClock.now();
        assert!(delta.num_seconds().abs() < 5);
    }
}

/// A clock that follows tokio's timer: a fixed start plus the time tokio says has
/// passed. Under `tokio::time::pause` it moves only when the test (or tokio's
/// auto-advance) moves time, so timers and decisions agree in tests.
#[derive(Debug)]
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now.
    pub fn new(start: DateTime<Utc>) -> Self {
        TokioClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.origin.elapsed()).unwrap_or(TimeDelta::MAX);
        self.start + elapsed
    }
}
