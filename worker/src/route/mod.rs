//! Deciding which processor a payment goes to, and when to wait instead. Comes after the
//! stream read, before the dispatch. [`policy`] is the fee rule, [`breaker`] the
//! per-process circuit breakers fed by real call outcomes, [`health`] the shared health
//! report. The pinning rule (a payment whose outcome on one processor is unknown never
//! goes to the other) is enforced by the store's scripts, not here.

pub mod breaker;
pub mod health;
pub mod policy;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::metrics as names;
use common::payment::Processor;
use common::time::{now_ms, Millis};
use tokio::sync::Notify;

use breaker::{Breaker, BreakerConfig, Permit, State};
use health::HealthCache;
use policy::{Policy, Situation};

/// What to do with a payment now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Send(Processor, Permit),
    /// No processor the policy allows can take it now: wait for a change.
    Wait,
}

/// Per process: the policy, both breakers, the health copy.
pub struct Router {
    policy: Policy,
    breakers: [Breaker; 2],
    pub health: Arc<HealthCache>,
    /// Per processor: when a payment call last succeeded (UTC ms). A health report older
    /// than that does not override the evidence of a real call.
    last_success: [AtomicI64; 2],
    /// Per processor: payment calls that succeeded so far.
    successes: [AtomicU64; 2],
    /// Woken when a processor may have become available.
    changed: Notify,
    /// Longest client timeout of a payment call.
    timeout_cap: Duration,
    /// Least wait before asking a processor about an unanswered call.
    grace_floor: Duration,
}

impl Router {
    pub fn new(
        policy: Policy,
        breaker: BreakerConfig,
        timeout_cap: Duration,
        grace_floor: Duration,
    ) -> Self {
        Self {
            policy,
            breakers: [Breaker::new(breaker), Breaker::new(breaker)],
            health: Arc::new(HealthCache::default()),
            last_success: [AtomicI64::new(0), AtomicI64::new(0)],
            successes: [AtomicU64::new(0), AtomicU64::new(0)],
            changed: Notify::new(),
            timeout_cap,
            grace_floor,
        }
    }

    /// Whether `processor` can take calls now: breaker not open, and no health report
    /// newer than the last success says it is failing (such a report opens the breaker).
    fn usable(&self, processor: Processor) -> bool {
        let breaker = &self.breakers[processor.index()];
        if let Some(report) = self.health.get(processor) {
            let last_ok = self.last_success[processor.index()].load(Ordering::Relaxed);
            if report.failing && report.observed_at > last_ok && breaker.state() == State::Closed {
                breaker.force_open();
            }
        }
        breaker.state() != State::Open
    }

    /// What the policy wants for a payment of `age` now.
    fn wanted(&self, age: Duration) -> Processor {
        self.policy.choose(Situation {
            age,
            default_failing: !self.usable(Processor::Default),
            fallback_failing: !self.usable(Processor::Fallback),
        })
    }

    pub fn choose(&self, age: Duration) -> Choice {
        let wanted = self.wanted(age);
        let choice = match self.breakers[wanted.index()].try_acquire() {
            Some(permit) => Choice::Send(wanted, permit),
            None => Choice::Wait,
        };
        let decision = match choice {
            Choice::Send(Processor::Default, _) => "default",
            Choice::Send(Processor::Fallback, _) => "fallback",
            Choice::Wait => "hold",
        };
        metrics::counter!(names::ROUTING_DECISIONS_TOTAL, "decision" => decision).increment(1);
        choice
    }

    /// A permit for `processor` if the policy would send a payment of `age` there now and
    /// its breaker lets a call through (a retry on the processor a payment is pinned to);
    /// counted as a routing decision only when granted.
    pub fn permit_if_chosen(&self, processor: Processor, age: Duration) -> Option<Permit> {
        if self.wanted(age) != processor {
            return None;
        }
        let permit = self.breakers[processor.index()].try_acquire()?;
        metrics::counter!(names::ROUTING_DECISIONS_TOTAL, "decision" => processor.as_str())
            .increment(1);
        Some(permit)
    }

    /// Reports a call made with `permit`. `failed`: definite failure or no answer.
    pub fn outcome(&self, processor: Processor, permit: Permit, failed: bool, took: Duration) {
        let breaker = &self.breakers[processor.index()];
        let before = breaker.state();
        breaker.record(permit, failed, took);
        if !failed {
            self.last_success[processor.index()].store(now_ms(), Ordering::Relaxed);
            self.successes[processor.index()].fetch_add(1, Ordering::Relaxed);
        }
        let after = breaker.state();
        metrics::gauge!(names::BREAKER_STATE, "processor" => processor.as_str()).set(after.gauge());
        if before != after {
            tracing::info!(%processor, ?before, ?after, "circuit breaker changed");
            if after == State::Closed {
                self.changed.notify_waiters();
            }
        }
    }

    /// How many payment calls to `processor` have succeeded in this process: a count
    /// that grew since a moment shows the processor answered in time after it.
    pub fn successes(&self, processor: Processor) -> u64 {
        self.successes[processor.index()].load(Ordering::Relaxed)
    }

    /// A permit taken but not used (the payment turned out to be pinned elsewhere).
    pub fn release(&self, processor: Processor, permit: Permit) {
        self.breakers[processor.index()].release(permit);
    }

    /// A processor recovered according to the health report: wake waiting payments.
    pub fn recovered(&self, processor: Processor) {
        tracing::info!(%processor, "health report: recovered");
        self.changed.notify_waiters();
    }

    /// Waits until something changed or `max` passed.
    pub async fn wait_for_change(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.changed.notified()).await;
    }

    /// The client timeout for a payment call: three times the reported minimum response
    /// time plus 500 ms, at least 1 s, at most the configured cap.
    pub fn timeout(&self, processor: Processor) -> Duration {
        match self.health.get(processor) {
            Some(r) => Duration::from_millis(r.min_response_ms.saturating_mul(3) + 500)
                .max(Duration::from_secs(1))
                .min(self.timeout_cap),
            None => self.timeout_cap,
        }
    }

    /// How long after an unanswered call ended the processor may still store it: its
    /// queue wait plus its delay. docs/protocol.md §3: at most 500 requests wait for 800 slots, so a
    /// waiting request gets a slot within one delay, then runs its own: twice the reported
    /// delay, plus a second for the report's age and the network. Never below the
    /// configured floor (`AMBIGUITY_GRACE_MS`), which covers processors with no report yet.
    pub fn grace(&self, processor: Processor) -> Duration {
        let Some(report) = self.health.get(processor) else {
            return self.grace_floor;
        };
        let reported = Duration::from_millis(report.min_response_ms);
        // A floor below a real delay is overridden by the report; operators see it.
        metrics::gauge!(names::GRACE_BELOW_DELAY, "processor" => processor.as_str())
            .set(f64::from(u8::from(reported > self.grace_floor)));
        self.grace_floor.max(grace_for_delay(reported))
    }
}

/// The grace a processor reporting `delay` needs: at most 500 requests wait for 800 slots
/// (docs/protocol.md §3), so a waiting request gets a slot within one delay and then runs its
/// own, plus a second of margin.
pub fn grace_for_delay(delay: Duration) -> Duration {
    delay.saturating_mul(2) + Duration::from_secs(1)
}

/// Milliseconds of a duration, for `Millis` arithmetic.
pub fn millis(d: Duration) -> Millis {
    d.as_millis().min(i64::MAX as u128) as Millis
}
