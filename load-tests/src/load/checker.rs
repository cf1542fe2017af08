//! The consistency checker of the reference test (docs/protocol.md §5).
//!
//! Every stage length, [`rinha`](super::rinha) asks the backend and both processors for the
//! same recent window and compares the request counts; any difference is one inconsistency
//! (it costs the 35 % fine in [`score`](super::score)). Every check's figures are kept for the
//! report.
//!
//! The window. The contest checks `[now - 15 s, now - 1.5 s]` every 10 s. The `to` offset is a
//! property of the backend (docs/protocol.md §4.2 promises agreement for windows ending at least ~1.5 s in
//! the past), not of the schedule, so it stays 1.5 s in compressed runs; the window length
//! (13.5 s = 1.35 stages) scales with the stage. A 10 s stage gives exactly the contest's
//! window; a 1 s stage checks `[now - 2.85 s, now - 1.5 s]`.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::control::{iso_ms, BackendSummary, Control, Processor, ProcessorSummary};
use common::money::Decimal;

/// How far before "now" a check window ends, whatever the stage length.
pub const CHECK_TO_OFFSET: Duration = Duration::from_millis(1500);

/// The window each check compares, relative to the moment of the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckWindow {
    /// `from = now - from_offset`.
    pub from_offset: Duration,
    /// `to = now - to_offset`.
    pub to_offset: Duration,
}

impl CheckWindow {
    /// The window for a given stage length (see the module docs).
    pub fn for_stage(stage: Duration) -> Self {
        CheckWindow {
            from_offset: CHECK_TO_OFFSET + stage.mul_f64(1.35),
            to_offset: CHECK_TO_OFFSET,
        }
    }

    /// The absolute bounds for a check made at `now`.
    pub fn bounds(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        (now - self.from_offset, now - self.to_offset)
    }
}

/// One processor's side of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Backend count minus processor count.
    pub requests: i64,
    /// Backend amount minus processor amount.
    pub amount: Decimal,
}

/// What one check saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRecord {
    /// Seconds since the load started.
    pub at_s: f64,
    pub from: String,
    pub to: String,
    pub backend: Option<BackendSummary>,
    pub default: Option<ProcessorSummary>,
    pub fallback: Option<ProcessorSummary>,
    pub default_diff: Option<Difference>,
    pub fallback_diff: Option<Difference>,
    /// `Some(false)` is an inconsistency; `None` when a summary could not be read.
    pub consistent: Option<bool>,
    /// Why a summary could not be read.
    pub error: Option<String>,
}

impl CheckRecord {
    /// True when this check counts as an inconsistency.
    pub fn is_inconsistent(&self) -> bool {
        self.consistent == Some(false)
    }
}

fn difference(backend: &BackendSummary, p: Processor, processor: &ProcessorSummary) -> Difference {
    let b = backend.get(p);
    Difference {
        requests: count(b.total_requests) - count(processor.total_requests),
        amount: b.total_amount - processor.total_amount,
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Compares the three summaries: consistent when both processors' request counts match.
pub fn compare(
    backend: &BackendSummary,
    default: &ProcessorSummary,
    fallback: &ProcessorSummary,
) -> (Difference, Difference, bool) {
    let d = difference(backend, Processor::Default, default);
    let f = difference(backend, Processor::Fallback, fallback);
    (d, f, d.requests == 0 && f.requests == 0)
}

/// Runs one check now. Returns the record and how long the backend took to answer (the run
/// counts that request in its latency histogram, as k6 does).
pub async fn check(control: &Control, window: CheckWindow, at_s: f64) -> (CheckRecord, Duration) {
    let (from, to) = window.bounds(OffsetDateTime::now_utc());
    let backend_call = async {
        let started = tokio::time::Instant::now();
        let result = control.backend_summary(Some(from), Some(to)).await;
        (result, started.elapsed())
    };
    let ((backend, backend_latency), default, fallback) = tokio::join!(
        backend_call,
        control.processor_summary(Processor::Default, Some(from), Some(to)),
        control.processor_summary(Processor::Fallback, Some(from), Some(to)),
    );
    let errors: Vec<String> = [
        backend.as_ref().err().map(ToString::to_string),
        default.as_ref().err().map(ToString::to_string),
        fallback.as_ref().err().map(ToString::to_string),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (backend, default, fallback) = (backend.ok(), default.ok(), fallback.ok());
    let compared = match (&backend, &default, &fallback) {
        (Some(b), Some(d), Some(f)) => Some(compare(b, d, f)),
        _ => None,
    };
    let record = CheckRecord {
        at_s,
        from: iso_ms(from),
        to: iso_ms(to),
        backend,
        default,
        fallback,
        default_diff: compared.map(|c| c.0),
        fallback_diff: compared.map(|c| c.1),
        consistent: compared.map(|c| c.2),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    };
    (record, backend_latency)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::load::control::Totals;
    use time::macros::datetime;

    fn totals(n: u64) -> Totals {
        Totals {
            total_requests: n,
            total_amount: Decimal::from_cents(1990 * n as i64),
        }
    }

    fn processor(n: u64) -> ProcessorSummary {
        ProcessorSummary {
            total_requests: n,
            total_amount: Decimal::from_cents(1990 * n as i64),
            total_fee: Decimal::ZERO,
            fee_per_transaction: Decimal::new(5, 2),
        }
    }

    #[test]
    fn window_matches_the_contest_at_full_length() {
        let w = CheckWindow::for_stage(Duration::from_secs(10));
        assert_eq!(w.from_offset, Duration::from_secs(15));
        assert_eq!(w.to_offset, Duration::from_millis(1500));
        let (from, to) = w.bounds(datetime!(2025-07-15 12:00:30 UTC));
        assert_eq!(iso_ms(from), "2025-07-15T12:00:15.000Z");
        assert_eq!(iso_ms(to), "2025-07-15T12:00:28.500Z");

        let w = CheckWindow::for_stage(Duration::from_secs(1));
        assert_eq!(w.from_offset, Duration::from_millis(2850));
        assert_eq!(w.to_offset, Duration::from_millis(1500));
    }

    #[test]
    fn any_count_difference_is_an_inconsistency() {
        let backend = BackendSummary {
            default: totals(10),
            fallback: totals(2),
        };
        let (d, f, ok) = compare(&backend, &processor(10), &processor(2));
        assert!(ok);
        assert_eq!(d.requests, 0);
        assert_eq!(f.amount, Decimal::ZERO);

        let (d, _, ok) = compare(&backend, &processor(11), &processor(2));
        assert!(!ok);
        assert_eq!(d.requests, -1);
        assert_eq!(d.amount, Decimal::from_cents(-1990));

        let (_, f, ok) = compare(&backend, &processor(10), &processor(1));
        assert!(!ok);
        assert_eq!(f.requests, 1);
    }

    #[test]
    fn amount_only_differences_do_not_count() {
        // The contest's rule is on request counts; amounts are reported for diagnosis.
        let backend = BackendSummary {
            default: totals(10),
            fallback: totals(0),
        };
        let mut p = processor(10);
        p.total_amount = Decimal::from_cents(1);
        let (d, _, ok) = compare(&backend, &p, &processor(0));
        assert!(ok);
        assert!(!d.amount.is_zero());
    }
}
