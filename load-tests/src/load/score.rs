//! The reference test's score (docs/protocol.md §5), in exact decimals.
//!
//! Comes before: the final summaries ([`control`](super::control)), the run's p99
//! ([`stats`](super::stats)) and the checker's verdicts ([`checker`](super::checker)).
//! Comes after: [`report`](super::report) prints the [`Score`].
//!
//! ```text
//! gross  = backend default amount + backend fallback amount
//! fees   = default feePerTransaction x default amount + fallback fee x fallback amount
//! bonus  = max((11 - p99_ms) x 0.02, 0)
//! fine   = 0.35 if any inconsistency was seen, else 0
//! score  = (gross - fees) x (1 + bonus - fine)
//! ```
//! Disqualified: the backend reports more payments than a processor stored, or more than the
//! client saw accepted (2xx). Lag (lost profit, no penalty): accepted minus reported.

use serde::Serialize;

use super::control::{BackendSummary, ProcessorSummary};
use common::money::Decimal;

/// Everything the score depends on.
#[derive(Clone, Copy, Debug)]
pub struct ScoreInput {
    /// The backend's summary over the final window.
    pub backend: BackendSummary,
    /// The default processor's admin summary over the same window.
    pub default: ProcessorSummary,
    /// The fallback processor's admin summary over the same window.
    pub fallback: ProcessorSummary,
    /// `POST /payments` answered 2xx, as counted by the client.
    pub accepted: u64,
    /// The run's 99th percentile latency, whole microseconds.
    pub p99_us: u64,
    /// Checks that found the backend and the processors disagreeing.
    pub inconsistencies: u64,
}

/// The score and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Score {
    /// Sum of the amounts the backend reports.
    pub gross: Decimal,
    /// Fee on the default processor's amount.
    pub default_fee: Decimal,
    /// Fee on the fallback processor's amount.
    pub fallback_fee: Decimal,
    /// Both fees.
    pub fees: Decimal,
    /// `gross - fees`.
    pub net: Decimal,
    /// The p99 the bonus was computed from, milliseconds (exact to the microsecond).
    pub p99_ms: Decimal,
    /// `max((11 - p99_ms) * 0.02, 0)`.
    pub bonus: Decimal,
    /// 0.35 when any inconsistency was seen, else 0.
    pub fine: Decimal,
    /// `1 + bonus - fine`.
    pub factor: Decimal,
    /// `net * factor`, rounded to cents (half away from zero).
    pub score: Decimal,
    /// Payments the backend reports (default + fallback).
    pub reported: u64,
    /// `accepted - reported`: accepted payments not (yet) processed. Negative means the
    /// backend reports payments nobody saw accepted.
    pub lag: i64,
    /// True when any disqualification rule fired.
    pub disqualified: bool,
    /// Which rules fired, in words.
    pub disqualified_reasons: Vec<String>,
}

/// The fine for any inconsistency.
pub const FINE: Decimal = Decimal::new(35, 2);

/// The bonus for a p99 in microseconds: `max((11 - ms) * 0.02, 0)`, exact:
/// `(11000 - us) * 2 / 100000`.
pub fn bonus(p99_us: u64) -> Decimal {
    let us = i128::from(p99_us);
    if us >= 11_000 {
        Decimal::ZERO
    } else {
        Decimal::new((11_000 - us) * 2, 5).trimmed(0)
    }
}

/// Computes the score.
pub fn compute(input: &ScoreInput) -> Score {
    let b = &input.backend;
    let gross = b.default.total_amount + b.fallback.total_amount;
    let default_fee = input.default.fee_per_transaction * b.default.total_amount;
    let fallback_fee = input.fallback.fee_per_transaction * b.fallback.total_amount;
    let fees = default_fee + fallback_fee;
    let net = gross - fees;
    let bonus = bonus(input.p99_us);
    let fine = if input.inconsistencies > 0 {
        FINE
    } else {
        Decimal::ZERO
    };
    let factor = Decimal::ONE + bonus - fine;
    let score = (net * factor).round(2);

    let reported = b.default.total_requests + b.fallback.total_requests;
    let lag = i64::try_from(input.accepted).unwrap_or(i64::MAX)
        - i64::try_from(reported).unwrap_or(i64::MAX);

    let mut reasons = Vec::new();
    for (name, backend, processor) in [
        (
            "default",
            b.default.total_requests,
            input.default.total_requests,
        ),
        (
            "fallback",
            b.fallback.total_requests,
            input.fallback.total_requests,
        ),
    ] {
        if backend > processor {
            reasons.push(format!(
                "backend reports {backend} {name} payments, the {name} processor stored {processor}"
            ));
        }
    }
    if reported > input.accepted {
        reasons.push(format!(
            "backend reports {reported} payments, only {} were accepted (2xx)",
            input.accepted
        ));
    }

    Score {
        gross,
        default_fee: default_fee.round(2),
        fallback_fee: fallback_fee.round(2),
        fees: fees.round(2),
        net: net.round(2),
        p99_ms: Decimal::new(i128::from(input.p99_us), 3),
        bonus,
        fine,
        factor: factor.trimmed(0),
        score,
        reported,
        lag,
        disqualified: !reasons.is_empty(),
        disqualified_reasons: reasons,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::load::control::Totals;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn processor(count: u64, amount: &str, fee: &str) -> ProcessorSummary {
        ProcessorSummary {
            total_requests: count,
            total_amount: d(amount),
            total_fee: d(amount) * d(fee),
            fee_per_transaction: d(fee),
        }
    }

    fn input(
        default: (u64, &str),
        fallback: (u64, &str),
        accepted: u64,
        p99_us: u64,
    ) -> ScoreInput {
        ScoreInput {
            backend: BackendSummary {
                default: Totals {
                    total_requests: default.0,
                    total_amount: d(default.1),
                },
                fallback: Totals {
                    total_requests: fallback.0,
                    total_amount: d(fallback.1),
                },
            },
            default: processor(default.0, default.1, "0.05"),
            fallback: processor(fallback.0, fallback.1, "0.15"),
            accepted,
            p99_us,
            inconsistencies: 0,
        }
    }

    #[test]
    fn bonus_is_exact_and_floored_at_zero() {
        assert_eq!(bonus(1_000), d("0.2"));
        assert_eq!(bonus(1_234), d("0.19532"));
        assert_eq!(bonus(0), d("0.22"));
        assert_eq!(bonus(10_999), d("0.00002"));
        assert_eq!(bonus(11_000), Decimal::ZERO);
        assert_eq!(bonus(1_500_000), Decimal::ZERO);
    }

    #[test]
    fn scores_a_clean_run_like_the_best_entries() {
        // 16 752 payments of 19.90, all on default, p99 1.5 ms.
        let i = input((16752, "333364.80"), (0, "0"), 16752, 1_500);
        let s = compute(&i);
        assert_eq!(s.gross, d("333364.80"));
        assert_eq!(s.default_fee, d("16668.24"));
        assert_eq!(s.fallback_fee, Decimal::ZERO);
        assert_eq!(s.net, d("316696.56"));
        assert_eq!(s.bonus, d("0.19"));
        assert_eq!(s.factor, d("1.19"));
        // 316696.56 * 1.19 = 376868.9064
        assert_eq!(s.score.to_string(), "376868.91");
        assert_eq!(s.lag, 0);
        assert!(!s.disqualified);
        assert_eq!(s.p99_ms.to_string(), "1.500");
    }

    #[test]
    fn fallback_costs_more_and_fine_applies() {
        let mut i = input((100, "1990"), (10, "199"), 115, 20_000);
        i.inconsistencies = 2;
        let s = compute(&i);
        assert_eq!(s.gross, d("2189"));
        assert_eq!(s.default_fee, d("99.5"));
        assert_eq!(s.fallback_fee, d("29.85"));
        assert_eq!(s.fees, d("129.35"));
        assert_eq!(s.bonus, Decimal::ZERO);
        assert_eq!(s.fine, d("0.35"));
        assert_eq!(s.factor, d("0.65"));
        // (2189 - 129.35) * 0.65 = 1338.7725 -> 1338.77
        assert_eq!(s.score, d("1338.77"));
        assert_eq!(s.lag, 5);
        assert!(!s.disqualified);
    }

    #[test]
    fn half_cent_rounds_away_from_zero() {
        // One fallback payment of 19.90: fee 2.985, net 16.915, factor 1 -> 16.92.
        let i = input((0, "0"), (1, "19.90"), 1, 11_000);
        let s = compute(&i);
        assert_eq!(s.fallback_fee, d("2.99"));
        assert_eq!(s.net, d("16.92"));
        assert_eq!(s.score, d("16.92"));
    }

    #[test]
    fn over_reporting_disqualifies() {
        // More than the processor stored.
        let mut i = input((10, "199"), (0, "0"), 10, 1_000);
        i.default.total_requests = 9;
        let s = compute(&i);
        assert!(s.disqualified);
        assert_eq!(s.disqualified_reasons.len(), 1);
        assert!(s.disqualified_reasons[0].contains("default processor stored 9"));

        // More than the client saw accepted.
        let i = input((10, "199"), (2, "39.8"), 11, 1_000);
        let s = compute(&i);
        assert!(s.disqualified);
        assert_eq!(s.lag, -1);
        assert!(s.disqualified_reasons[0].contains("only 11 were accepted"));

        // Under-reporting is only lag.
        let s = compute(&input((10, "199"), (0, "0"), 12, 1_000));
        assert!(!s.disqualified);
        assert_eq!(s.lag, 2);
    }
}
