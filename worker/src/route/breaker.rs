//! A circuit breaker per processor, fed by the outcomes of real payment calls.
//!
//! - **Closed**: calls flow. Outcomes are kept over a sliding time window; once the
//!   window holds at least `min_calls`, a failure rate ≥ `failure_rate` or a slow-call
//!   rate ≥ `slow_rate` opens the breaker.
//! - **Open** for `open_for`: no calls. Then **half-open**: at most `probes` calls at
//!   once; the first success closes it, a failure opens it again.
//!
//! Why our own: the state machine is small, it must also be forced open by the shared
//! health report (which no crate models), and it runs on tokio's clock so it is tested
//! with paused time. `tower-resilience` (pre-1.0) and `failsafe` (quiet since 2024)
//! were the candidates.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub window: Duration,
    pub min_calls: usize,
    pub failure_rate: f64,
    pub slow_call: Duration,
    pub slow_rate: f64,
    pub open_for: Duration,
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
            min_calls: 5,
            failure_rate: 0.5,
            slow_call: Duration::from_secs(4),
            slow_rate: 0.9,
            open_for: Duration::from_millis(200),
            probes: 3,
        }
    }
}

/// The breaker's state, as a metric value: 0 closed, 1 half-open, 2 open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    HalfOpen,
    Open,
}

impl State {
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Recent calls' outcomes, oldest first, with running counts of the failed and slow
    /// ones: deciding whether to open is O(1) per call, not a rescan of the window
    /// (thousands of calls at a few thousand payments/s).
    calls: Window,
}

/// The sliding window of call outcomes: (when, failed, slow), oldest first, and how many of
/// them failed and were slow.
#[derive(Debug, Default)]
struct Window {
    calls: VecDeque<(Instant, bool, bool)>,
    failed: usize,
    slow: usize,
}

impl Window {
    fn push(&mut self, at: Instant, failed: bool, slow: bool) {
        self.calls.push_back((at, failed, slow));
        self.failed += usize::from(failed);
        self.slow += usize::from(slow);
    }

    /// Drops the calls older than `window` before `now`.
    fn trim(&mut self, now: Instant, window: Duration) {
        while let Some(&(at, failed, slow)) = self.calls.front() {
            if now.duration_since(at) <= window {
                break;
            }
            self.calls.pop_front();
            self.failed -= usize::from(failed);
            self.slow -= usize::from(slow);
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    fn len(&self) -> usize {
        self.calls.len()
    }
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission for one call; report its outcome with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    probe: bool,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                phase: Phase::Closed,
                calls: Window::default(),
            }),
        }
    }

    pub fn state(&self) -> State {
        let Ok(mut inner) = self.inner.lock() else {
            return State::Closed;
        };
        self.advance(&mut inner, Instant::now());
        match inner.phase {
            Phase::Closed => State::Closed,
            Phase::HalfOpen { .. } => State::HalfOpen,
            Phase::Open { .. } => State::Open,
        }
    }

    /// Whether a call may be made now; a half-open breaker hands out `probes` permits.
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut inner = self.inner.lock().ok()?;
        let now = Instant::now();
        self.advance(&mut inner, now);
        match &mut inner.phase {
            Phase::Closed => Some(Permit { probe: false }),
            Phase::Open { .. } => None,
            Phase::HalfOpen { in_flight } => {
                if *in_flight < self.config.probes {
                    *in_flight += 1;
                    Some(Permit { probe: true })
                } else {
                    None
                }
            }
        }
    }

    /// Reports a call's outcome. `failed` = a definite failure or no answer.
    pub fn record(&self, permit: Permit, failed: bool, took: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        let slow = took >= self.config.slow_call;
        if permit.probe {
            if let Phase::HalfOpen { in_flight } = &mut inner.phase {
                *in_flight = in_flight.saturating_sub(1);
                if failed {
                    inner.phase = Phase::Open {
                        until: now + self.config.open_for,
                    };
                } else {
                    inner.phase = Phase::Closed;
                    inner.calls.clear();
                }
                return;
            }
        }
        inner.calls.push(now, failed, slow);
        inner.calls.trim(now, self.config.window);
        if matches!(inner.phase, Phase::Closed) && self.should_open(&inner) {
            inner.phase = Phase::Open {
                until: now + self.config.open_for,
            };
            inner.calls.clear();
        }
    }

    /// Gives back an unused permit.
    pub fn release(&self, permit: Permit) {
        if !permit.probe {
            return;
        }
        if let Ok(mut inner) = self.inner.lock() {
            if let Phase::HalfOpen { in_flight } = &mut inner.phase {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }

    /// Opens the breaker now (the shared health report says the processor is failing).
    pub fn force_open(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let until = Instant::now() + self.config.open_for;
            match inner.phase {
                Phase::Open { until: current } if current >= until => {}
                _ => {
                    inner.phase = Phase::Open { until };
                    inner.calls.clear();
                }
            }
        }
    }

    fn advance(&self, inner: &mut Inner, now: Instant) {
        if let Phase::Open { until } = inner.phase {
            if now >= until {
                inner.phase = Phase::HalfOpen { in_flight: 0 };
            }
        }
    }

    fn should_open(&self, inner: &Inner) -> bool {
        let n = inner.calls.len();
        if n < self.config.min_calls {
            return false;
        }
        let failed = inner.calls.failed as f64;
        let slow = inner.calls.slow as f64;
        failed / n as f64 >= self.config.failure_rate || slow / n as f64 >= self.config.slow_rate
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_millis(5);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            window: Duration::from_secs(1),
            min_calls: 4,
            failure_rate: 0.5,
            slow_call: Duration::from_millis(100),
            slow_rate: 0.75,
            open_for: Duration::from_millis(200),
            probes: 2,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_failure_rate_then_half_opens_then_closes() {
        let b = breaker();
        for failed in [false, true, false] {
            let p = b.try_acquire().unwrap();
            b.record(p, failed, FAST);
        }
        assert_eq!(b.state(), State::Closed, "below min_calls");
        let p = b.try_acquire().unwrap();
        b.record(p, true, FAST);
        assert_eq!(b.state(), State::Open);
        assert!(b.try_acquire().is_none());

        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(b.state(), State::HalfOpen);
        let p1 = b.try_acquire().unwrap();
        let _p2 = b.try_acquire().unwrap();
        assert!(
            b.try_acquire().is_none(),
            "only `probes` calls in half-open"
        );
        b.record(p1, false, FAST);
        assert_eq!(b.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again() {
        let b = breaker();
        b.force_open();
        tokio::time::advance(Duration::from_millis(199)).await;
        assert_eq!(b.state(), State::Open);
        tokio::time::advance(Duration::from_millis(1)).await;
        let p = b.try_acquire().unwrap();
        b.record(p, true, FAST);
        assert_eq!(b.state(), State::Open);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(b.state(), State::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_open_it_and_old_calls_leave_the_window() {
        let b = breaker();
        for _ in 0..3 {
            let p = b.try_acquire().unwrap();
            b.record(p, true, FAST);
        }
        // Those failures age out of the window before the fourth call.
        tokio::time::advance(Duration::from_millis(1_500)).await;
        let p = b.try_acquire().unwrap();
        b.record(p, true, FAST);
        assert_eq!(b.state(), State::Closed);
        for _ in 0..3 {
            let p = b.try_acquire().unwrap();
            b.record(p, false, Duration::from_millis(150));
        }
        // 4 calls: 1 failed (25 %), 3 slow (75 %): the slow-call rate opens it.
        assert_eq!(b.state(), State::Open);
    }

    /// The running counts always equal a recount of the window, whatever the order of
    /// outcomes and however far time jumps (the old code recounted on every call).
    #[test]
    fn the_running_counts_equal_a_recount() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let start = Instant::now();
        let span = Duration::from_millis(50);
        let mut w = Window::default();
        let mut now = start;
        for _ in 0..20_000 {
            now += Duration::from_millis(rng.random_range(0..20));
            w.push(now, rng.random_bool(0.3), rng.random_bool(0.2));
            if rng.random_bool(0.01) {
                w.clear();
            }
            w.trim(now, span);
            let failed = w.calls.iter().filter(|c| c.1).count();
            let slow = w.calls.iter().filter(|c| c.2).count();
            assert_eq!((w.failed, w.slow), (failed, slow));
            assert!(w.calls.iter().all(|c| now.duration_since(c.0) <= span));
        }
    }
}
