//! The circuit's published state, for checks that never await the actor.
//!
//! A request asks [`CircuitView::try_acquire`] before calling a provider: a few
//! atomic loads while closed, one compare-and-swap for a half-open trial permit. The
//! actor publishes every transition it decides ([`CircuitView::publish`]); the view
//! itself moves an open circuit to half-open when the open period has passed (the
//! first caller to notice wins the swap and tells the actor, which records
//! `circuit.half_opened`), so no request waits for a timer or a mailbox.
//!
//! The phase and its episode number share one `AtomicU64`, ordered
//! `(episode, phase)`: a publication older than what the view shows (the actor
//! catching up after the view already half-opened) is ignored.

use std::sync::{
    atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering},
    Arc,
};

use chrono::{DateTime, Utc};

use super::circuit::{CircuitPhase, CircuitState};

const PHASE_OPEN: u64 = 0;
const PHASE_HALF_OPEN: u64 = 1;
const PHASE_CLOSED: u64 = 2;

fn word(episode: u32, phase: u64) -> u64 {
    (u64::from(episode) << 2) | phase
}

fn split(word: u64) -> (u32, u64) {
    // The episode was a u32 shifted left by 2, so it fits back.
    (u32::try_from(word >> 2).unwrap_or(u32::MAX), word & 0b11)
}

/// The state a check sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewPhase {
    /// Calls flow.
    Closed,
    /// No calls until the given time (Unix milliseconds).
    Open {
        /// When trial calls are allowed, Unix ms.
        retry_at_ms: i64,
    },
    /// Trial calls only.
    HalfOpen {
        /// Trial permits left.
        permits_left: u32,
    },
}

impl ViewPhase {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ViewPhase::Closed => "closed",
            ViewPhase::Open { .. } => "open",
            ViewPhase::HalfOpen { .. } => "half_open",
        }
    }
}

/// A call may go out. Hand it back with [`Permit::consume`] once its outcome is
/// recorded; a trial permit dropped without that (the call was cancelled) is
/// returned to the pool so a half-open circuit cannot be starved by cancellations.
#[derive(Debug)]
pub struct Permit {
    trial: bool,
    episode: u32,
    view: Option<Arc<CircuitView>>,
}

impl Permit {
    /// Whether this is a half-open trial call.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Marks the permit as used (its outcome was recorded).
    pub fn consume(mut self) -> bool {
        self.view = None;
        self.trial
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(view) = self.view.take() {
            if self.trial {
                view.return_permit(self.episode);
            }
        }
    }
}

/// Why a call may not go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CircuitRejected {
    /// Open until `retry_at_ms`.
    #[error("circuit open; trial calls from {retry_at_ms} (Unix ms)")]
    Open {
        /// When trial calls are allowed, Unix ms.
        retry_at_ms: i64,
    },
    /// Half-open and every trial permit is taken.
    #[error("circuit half-open and all trial calls are in flight")]
    TrialsInFlight,
}

/// The lock-free published state of one provider's circuit.
pub struct CircuitView {
    /// `(episode, phase)`.
    state: AtomicU64,
    retry_at_ms: AtomicI64,
    permits: AtomicU32,
    max_permits: AtomicU32,
    on_half_open: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for CircuitView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitView")
            .field("phase", &self.phase())
            .finish()
    }
}

impl CircuitView {
    /// A closed circuit with `max_permits` trial calls per half-open phase;
    /// `on_half_open` runs (once per episode) when a check moves it to half-open.
    pub fn new(max_permits: u32, on_half_open: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(CircuitView {
            state: AtomicU64::new(word(0, PHASE_CLOSED)),
            retry_at_ms: AtomicI64::new(0),
            permits: AtomicU32::new(max_permits),
            max_permits: AtomicU32::new(max_permits),
            on_half_open,
        })
    }

    /// The phase now (without moving it).
    pub fn phase(&self) -> ViewPhase {
        let (_, phase) = split(self.state.load(Ordering::Acquire));
        match phase {
            PHASE_OPEN => ViewPhase::Open {
                retry_at_ms: self.retry_at_ms.load(Ordering::Acquire),
            },
            PHASE_HALF_OPEN => ViewPhase::HalfOpen {
                permits_left: self.permits.load(Ordering::Acquire),
            },
            _ => ViewPhase::Closed,
        }
    }

    /// Whether a call could go out at `now` (a peek for routing; takes nothing).
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        match self.phase() {
            ViewPhase::Closed => true,
            ViewPhase::Open { retry_at_ms } => now.timestamp_millis() >= retry_at_ms,
            ViewPhase::HalfOpen { permits_left } => permits_left > 0,
        }
    }

    /// Takes permission for one call at `now`.
    pub fn try_acquire(self: &Arc<Self>, now: DateTime<Utc>) -> Result<Permit, CircuitRejected> {
        loop {
            let current = self.state.load(Ordering::Acquire);
            let (episode, phase) = split(current);
            match phase {
                PHASE_CLOSED => {
                    return Ok(Permit {
                        trial: false,
                        episode,
                        view: None,
                    })
                }
                PHASE_OPEN => {
                    let retry_at_ms = self.retry_at_ms.load(Ordering::Acquire);
                    if now.timestamp_millis() < retry_at_ms {
                        return Err(CircuitRejected::Open { retry_at_ms });
                    }
                    if self
                        .state
                        .compare_exchange(
                            current,
                            word(episode, PHASE_HALF_OPEN),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        (self.on_half_open)();
                    }
                    // Loop: now half-open (by us or another caller), or newer.
                }
                _ => {
                    let taken =
                        self.permits
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                                left.checked_sub(1)
                            });
                    if taken.is_err() {
                        return Err(CircuitRejected::TrialsInFlight);
                    }
                    // The permit must belong to the episode we saw; if the circuit
                    // moved meanwhile, give it back and look again.
                    if self.state.load(Ordering::Acquire) != current {
                        self.permits.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    return Ok(Permit {
                        trial: true,
                        episode,
                        view: Some(Arc::clone(self)),
                    });
                }
            }
        }
    }

    fn return_permit(&self, episode: u32) {
        let (current, phase) = split(self.state.load(Ordering::Acquire));
        if current == episode && phase == PHASE_HALF_OPEN {
            let max = self.max_permits.load(Ordering::Acquire);
            let _ = self
                .permits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    (left < max).then_some(left + 1)
                });
        }
    }

    /// Publishes the actor's state; ignored if the view already shows something
    /// newer. `max_permits` is the current policy's half-open allowance.
    pub fn publish(&self, state: &CircuitState, max_permits: u32) {
        let (phase, retry_at_ms) = match state.phase {
            CircuitPhase::Closed => (PHASE_CLOSED, 0),
            CircuitPhase::Open { retry_at } => (PHASE_OPEN, retry_at.timestamp_millis()),
            CircuitPhase::HalfOpen => (PHASE_HALF_OPEN, 0),
        };
        let new = word(state.episode, phase);
        loop {
            let current = self.state.load(Ordering::Acquire);
            if new <= current {
                return;
            }
            if phase == PHASE_OPEN {
                // Ready before the phase becomes visible: a check that sees "open"
                // reads this episode's time, and half-open finds a full pool.
                self.retry_at_ms.store(retry_at_ms, Ordering::Release);
                self.max_permits.store(max_permits, Ordering::Release);
                self.permits.store(max_permits, Ordering::Release);
            }
            if self
                .state
                .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use chrono::TimeDelta;

    use super::*;
    use crate::decider::reference_time;

    fn open_state(episode: u32, retry_at: DateTime<Utc>) -> CircuitState {
        CircuitState {
            phase: CircuitPhase::Open { retry_at },
            episode,
            ..CircuitState::default()
        }
    }

    fn counting_view(max: u32) -> (Arc<CircuitView>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let view = CircuitView::new(
            max,
            Box::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        (view, calls)
    }

    #[test]
    fn closed_allows_everything_without_permits() {
        let (view, _) = counting_view(3);
        for _ in 0..100 {
            let permit = view.try_acquire(reference_time()).expect("closed");
            assert!(!permit.is_trial());
        }
    }

    #[test]
    fn open_refuses_until_retry_at_then_hands_out_exactly_the_trial_permits() {
        let now = reference_time();
        let (view, half_opens) = counting_view(3);
        view.publish(&open_state(1, now + TimeDelta::seconds(60)), 3);
        assert_eq!(
            view.try_acquire(now + TimeDelta::seconds(59)).err(),
            Some(CircuitRejected::Open {
                retry_at_ms: (now + TimeDelta::seconds(60)).timestamp_millis()
            })
        );
        let later = now + TimeDelta::seconds(60);
        let permits: Vec<_> = (0..3)
            .map(|_| view.try_acquire(later).expect("trial permit"))
            .collect();
        assert!(permits.iter().all(Permit::is_trial));
        assert_eq!(
            view.try_acquire(later).err(),
            Some(CircuitRejected::TrialsInFlight)
        );
        assert_eq!(half_opens.load(Ordering::SeqCst), 1, "told the actor once");
        drop(permits); // cancelled calls give their permits back
        assert!(view.try_acquire(later).is_ok());
    }

    #[test]
    fn consumed_permits_are_not_returned() {
        let now = reference_time();
        let (view, _) = counting_view(1);
        view.publish(&open_state(1, now), 1);
        let permit = view.try_acquire(now).expect("trial");
        assert!(permit.consume());
        assert_eq!(
            view.try_acquire(now).err(),
            Some(CircuitRejected::TrialsInFlight)
        );
    }

    #[test]
    fn a_stale_publication_does_not_undo_the_views_half_open() {
        let now = reference_time();
        let (view, _) = counting_view(3);
        let open = open_state(1, now);
        view.publish(&open, 3);
        let _trial = view.try_acquire(now).expect("half-open now");
        // The actor, not yet told, republishes "open" for the same episode.
        view.publish(&open, 3);
        assert!(matches!(view.phase(), ViewPhase::HalfOpen { .. }));
        // A newer episode does win.
        view.publish(&open_state(2, now + TimeDelta::seconds(60)), 3);
        assert!(matches!(view.phase(), ViewPhase::Open { .. }));
        // And closing wins over half-open of the same episode.
        let mut closed = open_state(2, now);
        closed.phase = CircuitPhase::Closed;
        view.publish(&closed, 3);
        assert_eq!(view.phase(), ViewPhase::Closed);
    }

    #[test]
    fn concurrent_checks_never_hand_out_more_than_the_trial_permits() {
        let now = reference_time();
        let (view, half_opens) = counting_view(3);
        view.publish(&open_state(1, now), 3);
        let granted = Arc::new(AtomicUsize::new(0));
        let permits = Arc::new(std::sync::Mutex::new(Vec::new()));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let view = Arc::clone(&view);
                let granted = Arc::clone(&granted);
                let permits = Arc::clone(&permits);
                scope.spawn(move || {
                    for _ in 0..1_000 {
                        if let Ok(permit) = view.try_acquire(now) {
                            granted.fetch_add(1, Ordering::SeqCst);
                            permits.lock().expect("lock").push(permit.consume());
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::SeqCst), 3);
        assert_eq!(half_opens.load(Ordering::SeqCst), 1);
    }
}
