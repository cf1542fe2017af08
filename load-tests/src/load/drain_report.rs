//! What a drain run ([`drain`](super::drain)'s [`DrainReport`]) measured: plain data,
//! written as JSON, printed by [`report`](super::report) and drawn by [`plot`](super::plot).
//! A leaf: it names no scenario.

use serde::Serialize;

use super::control::{BackendSummary, ProcessorSummary, Totals};
use super::stats::{Outcomes, Percentiles};

/// One reading of the backend's all-time totals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DrainSample {
    /// Milliseconds since the default processor recovered (`t0`); negative during the outage.
    pub t_ms: f64,
    /// Milliseconds since the outage's first payment was due.
    pub since_start_ms: f64,
    /// Payments accepted (2xx) by then.
    pub accepted: u64,
    /// Payments the backend reports processed (both processors).
    pub processed: u64,
    /// Of which on the fallback processor.
    pub fallback: u64,
    /// `accepted - processed`.
    pub backlog: i64,
}

/// The backend's totals against what each processor stored, read once the run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Consistency {
    pub backend: BackendSummary,
    pub default: ProcessorSummary,
    pub fallback: ProcessorSummary,
    /// Count and amount agree for both processors.
    pub consistent: bool,
}

impl Consistency {
    pub fn new(
        backend: BackendSummary,
        default: ProcessorSummary,
        fallback: ProcessorSummary,
    ) -> Self {
        let agrees = |ours: Totals, theirs: &ProcessorSummary| {
            (ours.total_requests, ours.total_amount) == (theirs.total_requests, theirs.total_amount)
        };
        let consistent = agrees(backend.default, &default) && agrees(backend.fallback, &fallback);
        Consistency {
            backend,
            default,
            fallback,
            consistent,
        }
    }
}

/// How long the backlog took to reach a share of its size at `t0`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Milestone {
    /// Share of the backlog at `t0` processed, e.g. 0.9.
    pub share: f64,
    /// Milliseconds since `t0`; `None` when not reached before the timeout.
    pub ms: Option<f64>,
}

/// The settings a report was produced with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrainSettings {
    pub backend_url: String,
    pub default_url: String,
    pub fallback_url: String,
    pub rate: u64,
    pub outage_s: f64,
    pub recovery_delay_ms: u64,
    pub timeout_s: f64,
    pub poll_every_ms: u64,
    pub connections: usize,
    pub request_timeout_ms: u64,
}

/// Everything a run measured: written as `<out>/<name>.json` by the binary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrainReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: DrainSettings,
    /// `POST /payments` during the outage, as the client saw them.
    pub posts: Outcomes,
    /// Payments due during the outage that could not start in time (never sent).
    pub dropped: u64,
    /// Latency of those posts, from their due time.
    pub post_latency: Percentiles,
    /// From the first payment's due time to `t0`, seconds.
    pub outage_s: f64,
    /// Payments accepted (2xx) during the outage.
    pub accepted: u64,
    /// `accepted - processed` just before the recovery.
    pub backlog_at_t0: i64,
    /// The backend reported every accepted payment processed before the timeout.
    pub drained: bool,
    /// From `t0` to the first reading with every accepted payment processed, ms.
    pub drain_ms: Option<f64>,
    /// From `t0` to 50, 90 and 99 % of the backlog at `t0` processed.
    pub milestones: Vec<Milestone>,
    /// Payments processed after `t0` per second of draining (until drained, or until the
    /// last reading when not).
    pub drain_rate_per_sec: Option<f64>,
    /// Processed at the last reading.
    pub processed: u64,
    /// `accepted - processed` at the last reading.
    pub backlog_end: i64,
    /// Payments the backend reports on the fallback at the end (it failed all along: 0).
    pub fallback: u64,
    /// Read after the last reading.
    pub consistency: Consistency,
    /// Backend summary calls that failed (those readings are missing from `samples`).
    pub poll_errors: u64,
    /// Why the processors could not be set back to healthy, if they could not.
    pub restore_error: Option<String>,
    pub samples: Vec<DrainSample>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use common::money::Decimal;

    #[test]
    fn consistency_compares_counts_and_amounts() {
        let totals = |n: u64| Totals {
            total_requests: n,
            total_amount: Decimal::from_cents(1990) * Decimal::from_int(i64::try_from(n).unwrap()),
        };
        let stored = |n: u64| ProcessorSummary {
            total_requests: n,
            total_amount: Decimal::from_cents(1990) * Decimal::from_int(i64::try_from(n).unwrap()),
            ..ProcessorSummary::default()
        };
        let backend = BackendSummary {
            default: totals(3),
            fallback: totals(0),
        };
        assert!(Consistency::new(backend, stored(3), stored(0)).consistent);
        assert!(!Consistency::new(backend, stored(4), stored(0)).consistent);
        assert!(!Consistency::new(backend, stored(3), stored(1)).consistent);
    }
}
