//! The rate limit of `GET /payments/service-health`: one call per window, a short queue.
//!
//! Before: the handler asks [`HealthLimiter::admit`] when a call arrives. After: the
//! handler answers at once, sleeps until its reserved window opens, or answers `429`.
//!
//! The real processors allow one call per fixed 5 s window per processor and let up to
//! two more callers wait for the following windows, served one per window in arrival
//! order; anyone beyond that is refused with `Retry-After`. Here a window opens with the
//! first call after the previous window closed (an idle simulator does not tick), and a
//! waiter reserves the next free window when it arrives, so the order is fixed at
//! admission and a client that gives up still uses its window, as it would there.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What a health call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAdmission {
    /// Served now: this call opened a window.
    Now,
    /// Served when the reserved window opens at this instant.
    At(Instant),
    /// Refused; the next window nobody reserved opens after this long.
    Refused {
        /// Time until the first unreserved window.
        retry_after: Duration,
    },
}

/// One limiter per simulated processor (the real limit is global, not per client).
#[derive(Debug)]
pub struct HealthLimiter {
    /// Length of a window (5 s in the real processors).
    window: Duration,
    /// How many callers may wait for a later window (2 in the real processors).
    max_waiters: usize,
    /// Reservations and the next free window.
    state: Mutex<WindowState>,
}

#[derive(Debug, Default)]
struct WindowState {
    /// When the next unreserved window may open; `None` until the first call.
    next_free: Option<Instant>,
    /// Opening instants of windows reserved by waiting callers, earliest first.
    reserved: VecDeque<Instant>,
}

impl HealthLimiter {
    /// A limiter with windows of `window` and up to `max_waiters` queued callers.
    pub fn new(window: Duration, max_waiters: usize) -> Self {
        Self {
            window,
            max_waiters,
            state: Mutex::default(),
        }
    }

    /// Decides the fate of a call arriving at `now`.
    pub fn admit(&self, now: Instant) -> HealthAdmission {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Windows that have opened are no longer waiting.
        while state.reserved.front().is_some_and(|at| *at <= now) {
            state.reserved.pop_front();
        }
        match state.next_free {
            Some(next_free) if next_free > now => {
                if state.reserved.len() < self.max_waiters {
                    state.reserved.push_back(next_free);
                    state.next_free = Some(next_free + self.window);
                    HealthAdmission::At(next_free)
                } else {
                    HealthAdmission::Refused {
                        retry_after: next_free - now,
                    }
                }
            }
            _ => {
                state.next_free = Some(now + self.window);
                HealthAdmission::Now
            }
        }
    }
}

/// `Retry-After` in whole seconds, rounded up, never 0 (the header has no fractions).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(5);

    #[test]
    fn one_call_per_window_then_two_waiters_then_refusals() {
        let limiter = HealthLimiter::new(W, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0), HealthAdmission::Now);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(limiter.admit(soon), HealthAdmission::At(t0 + W));
        assert_eq!(limiter.admit(soon), HealthAdmission::At(t0 + 2 * W));
        assert_eq!(
            limiter.admit(soon),
            HealthAdmission::Refused {
                retry_after: 3 * W - Duration::from_millis(10)
            }
        );
    }

    #[test]
    fn a_served_waiter_frees_its_queue_place() {
        let limiter = HealthLimiter::new(W, 2);
        let t0 = Instant::now();
        limiter.admit(t0);
        limiter.admit(t0);
        limiter.admit(t0);
        // The first waiter's window has opened: one place in the queue again.
        let later = t0 + W + Duration::from_millis(1);
        assert_eq!(limiter.admit(later), HealthAdmission::At(t0 + 3 * W));
        assert!(matches!(
            limiter.admit(later),
            HealthAdmission::Refused { .. }
        ));
    }

    #[test]
    fn an_idle_limiter_serves_at_once() {
        let limiter = HealthLimiter::new(W, 2);
        let t0 = Instant::now();
        limiter.admit(t0);
        assert_eq!(limiter.admit(t0 + W), HealthAdmission::Now);
        assert_eq!(limiter.admit(t0 + 10 * W), HealthAdmission::Now);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(300)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
        assert_eq!(retry_after_secs(Duration::from_millis(9_001)), 10);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
