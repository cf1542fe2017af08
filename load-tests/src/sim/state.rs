//! The running state of one simulated processor ([`Simulator`]) and its counters.
//!
//! Before: [`SimConfig`] is validated into it. After: every request handler and the
//! test handle share it through an `Arc`. Knobs that change at run time (delay,
//! failure) are atomics; the token and the payments sit behind std mutexes that are
//! never held across an `.await`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use common::money::Decimal;
use tokio::time::Instant;
use uuid::Uuid;

use super::admission::Gate;
use super::config::{ConfigError, SimConfig, HEALTH_MAX_WAITERS};
use super::health::{HealthAdmission, HealthLimiter};
use super::store::{Store, StoredPayment};

/// Totals over stored payments, as the handle reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimSummary {
    /// How many payments.
    pub total_requests: u64,
    /// Sum of their amounts, in cents (saturated at `i64::MAX`, far beyond any test).
    pub total_cents: i64,
}

/// A simulated payment processor: cheap to clone, all clones share the same state.
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

/// What every clone of a [`Simulator`] shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Fee per transaction, exact; fixed for the simulator's life.
    pub(crate) fee: Decimal,
    /// Current value expected in `X-Rinha-Token`.
    pub(crate) token: Mutex<String>,
    /// Delay applied to each payment, read when the payment arrives.
    pub(crate) delay_ms: AtomicU64,
    /// When on, payments answer `500` after their delay and are not stored.
    pub(crate) failing: AtomicBool,
    /// Stored payments.
    pub(crate) store: Store,
    /// Rate limit of the health endpoint.
    pub(crate) health: HealthLimiter,
    /// Concurrency limit of `POST /payments`.
    pub(crate) gate: Arc<Gate>,
    /// What happened so far, for tests.
    pub(crate) counters: Counters,
    /// Faults of what may sit in front of a processor (tests only; off by default).
    pub(crate) faults: Faults,
}

/// Misbehaviour a real deployment can show between a client and a processor.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Non-zero: a payment that was stored is answered with this status instead of `200`,
    /// like a proxy whose upstream answer was lost (`502`, `504`).
    pub(crate) status_after_store: AtomicU64,
    /// Non-zero: every payment is answered with this status at once and never stored, like
    /// a proxy that could not reach the processor (`502`, `504`: the client cannot tell
    /// this from a lost answer).
    pub(crate) status_unforwarded: AtomicU64,
    /// `GET /payments/{id}` answers `404` whatever is stored (an inconsistent processor).
    pub(crate) lookups_absent: AtomicBool,
}

/// Monotonic counters of what the simulator saw (never reset, not even by a purge).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Every `POST /payments` received, whatever its answer.
    pub(crate) payment_posts: AtomicU64,
    /// `POST /payments` refused by the concurrency limit (`429`).
    pub(crate) payment_429s: AtomicU64,
    /// `POST /payments` answered `500` by failure mode.
    pub(crate) payment_failures: AtomicU64,
    /// `POST /payments` answered `422` (already stored).
    pub(crate) duplicate_rejections: AtomicU64,
    /// Every `GET /payments/service-health` received.
    pub(crate) health_calls: AtomicU64,
    /// Health calls answered `200` (immediately or after waiting).
    pub(crate) health_served: AtomicU64,
    /// Health calls refused with `429`.
    pub(crate) health_429s: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Simulator {
    /// Validates `config` into a fresh simulator with no payments.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        let fee = config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                fee,
                token: Mutex::new(config.token),
                delay_ms: AtomicU64::new(config.initial_delay_ms),
                failing: AtomicBool::new(config.initial_failure),
                store: Store::default(),
                health: HealthLimiter::new(config.health_window, HEALTH_MAX_WAITERS),
                gate: Arc::new(Gate::new(config.max_concurrent, config.max_queued)),
                counters: Counters::default(),
                faults: Faults::default(),
            }),
        })
    }

    /// Fault: answer `status` (0 = off) instead of `200` after storing a payment.
    pub fn set_status_after_store(&self, status: u16) {
        self.shared
            .faults
            .status_after_store
            .store(u64::from(status), Ordering::Relaxed);
    }

    /// Fault: answer `status` (0 = off) to every payment at once, storing none.
    pub fn set_status_unforwarded(&self, status: u16) {
        self.shared
            .faults
            .status_unforwarded
            .store(u64::from(status), Ordering::Relaxed);
    }

    /// Fault: `GET /payments/{id}` answers `404` even for stored payments.
    pub fn set_lookups_absent(&self, on: bool) {
        self.shared
            .faults
            .lookups_absent
            .store(on, Ordering::Relaxed);
    }

    /// `POST /payments` admitted and not answered yet (handled or queued).
    pub fn payments_in_flight(&self) -> usize {
        self.shared.gate.inside()
    }

    /// Sets the delay applied to payments arriving from now on; returns the old one.
    pub fn set_delay(&self, ms: u64) -> u64 {
        self.shared.delay_ms.swap(ms, Ordering::SeqCst)
    }

    /// The current delay in milliseconds.
    pub fn delay_ms(&self) -> u64 {
        self.shared.delay_ms.load(Ordering::SeqCst)
    }

    /// Turns failure mode on or off; returns the old value.
    pub fn set_failure(&self, on: bool) -> bool {
        self.shared.failing.swap(on, Ordering::SeqCst)
    }

    /// Whether failure mode is on.
    pub fn failure(&self) -> bool {
        self.shared.failing.load(Ordering::SeqCst)
    }

    /// Replaces the admin token.
    pub fn set_token(&self, token: impl Into<String>) {
        *self
            .shared
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = token.into();
    }

    /// Whether `candidate` is the current admin token.
    pub(crate) fn token_matches(&self, candidate: &[u8]) -> bool {
        self.shared
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_bytes()
            == candidate
    }

    /// The fee per transaction.
    pub fn fee(&self) -> Decimal {
        self.shared.fee
    }

    /// How many payments are stored.
    pub fn stored_count(&self) -> usize {
        self.shared.store.len()
    }

    /// The stored payment with this correlation id.
    pub fn stored(&self, id: &Uuid) -> Option<StoredPayment> {
        self.shared.store.get(id)
    }

    /// Totals over stored payments with `requested_at_ms` in `[from_ms, to_ms]`.
    /// Unlike the HTTP endpoint (which ignores the window when a bound is missing),
    /// each `None` bound is simply open, like the gateway's own summary.
    pub fn summary(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> SimSummary {
        let totals = self.shared.store.totals(from_ms, to_ms);
        SimSummary {
            total_requests: totals.count,
            total_cents: i64::try_from(totals.cents).unwrap_or(i64::MAX),
        }
    }

    /// Deletes every stored payment (like `POST /admin/purge-payments`).
    pub fn purge(&self) {
        self.shared.store.purge();
    }

    /// Every `POST /payments` received.
    pub fn payment_posts(&self) -> u64 {
        read(&self.shared.counters.payment_posts)
    }

    /// `POST /payments` refused with `429` by the concurrency limit.
    pub fn payment_429s(&self) -> u64 {
        read(&self.shared.counters.payment_429s)
    }

    /// `POST /payments` answered `500` by failure mode.
    pub fn payment_failures(&self) -> u64 {
        read(&self.shared.counters.payment_failures)
    }

    /// `POST /payments` answered `422` because the id was already stored.
    pub fn duplicate_rejections(&self) -> u64 {
        read(&self.shared.counters.duplicate_rejections)
    }

    /// Every `GET /payments/service-health` received.
    pub fn health_calls(&self) -> u64 {
        read(&self.shared.counters.health_calls)
    }

    /// Health calls answered `200`.
    pub fn health_served(&self) -> u64 {
        read(&self.shared.counters.health_served)
    }

    /// Health calls refused with `429`.
    pub fn health_429s(&self) -> u64 {
        read(&self.shared.counters.health_429s)
    }

    /// Asks the health rate limiter about a call arriving now.
    pub(crate) fn admit_health_call(&self) -> HealthAdmission {
        self.shared.health.admit(Instant::now())
    }
}
