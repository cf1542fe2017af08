//! The synthetic payments the Redis benchmarks record ([`redis_cost`](super::redis_cost),
//! [`state_scale`](super::state_scale)): amount, processor and `requestedAt` follow from the
//! payment's index, so a run can recompute any window's exact totals without keeping the
//! payments. A leaf: both benchmarks read it, it imports neither.

use common::payment::{Cents, PaymentId, Processor};
use common::store::{Totals, Window};
use common::time::Millis;

/// One payment as the worker knows it after the processor answered.
#[derive(Debug, Clone, Copy)]
pub struct Payment {
    pub id: PaymentId,
    pub cents: Cents,
    pub processor: Processor,
    pub requested_at: Millis,
}

/// Payment `i` of a run: every tenth on the fallback, amounts varying from 19.90 to 119.89,
/// `requestedAt` spaced at `rate_per_sec` from `start` (below 1 000/s each has its own
/// millisecond; above, several share one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    pub start: Millis,
    pub rate_per_sec: u64,
}

impl Synthetic {
    pub fn cents(i: u64) -> i64 {
        1990 + (i as i64 * 37) % 10_000
    }

    pub fn processor(i: u64) -> Processor {
        if i % 10 == 9 {
            Processor::Fallback
        } else {
            Processor::Default
        }
    }

    pub fn requested_at(&self, i: u64) -> Millis {
        self.start + (i as u128 * 1000 / self.rate_per_sec.max(1) as u128) as i64
    }

    /// Payment `i` with a fresh random id.
    pub fn payment(&self, i: u64) -> Payment {
        Payment {
            id: PaymentId::new(uuid::Uuid::new_v4()),
            cents: Cents::new(Self::cents(i)),
            processor: Self::processor(i),
            requested_at: self.requested_at(i),
        }
    }

    /// What a summary of payments `0..n` over `w` must say, per processor (default first).
    pub fn totals(&self, n: u64, w: Window) -> [Totals; 2] {
        // requestedAt never decreases with the index: the window is one index range.
        let first = w.from.map_or(0, |f| self.first_at_or_after(n, f));
        let end =
            w.to.map_or(n, |t| self.first_at_or_after(n, t.saturating_add(1)));
        let mut totals = [Totals::default(); 2];
        for i in first..end.max(first) {
            let t = &mut totals[Self::processor(i).index()];
            t.requests += 1;
            t.cents += i128::from(Self::cents(i));
        }
        totals
    }

    /// The first index in `0..n` whose `requestedAt` is at or after `at` (`n` if none).
    fn first_at_or_after(&self, n: u64, at: Millis) -> u64 {
        let (mut lo, mut hi) = (0u64, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.requested_at(mid) < at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow way: every payment tested against the window.
    fn brute(s: &Synthetic, n: u64, w: Window) -> [Totals; 2] {
        let mut totals = [Totals::default(); 2];
        for i in 0..n {
            let at = s.requested_at(i);
            if w.from.is_none_or(|f| at >= f) && w.to.is_none_or(|t| at <= t) {
                let t = &mut totals[Synthetic::processor(i).index()];
                t.requests += 1;
                t.cents += i128::from(Synthetic::cents(i));
            }
        }
        totals
    }

    #[test]
    fn totals_match_a_brute_force_count_at_any_rate() {
        for rate in [300, 1000, 4000] {
            let s = Synthetic {
                start: 1_000_000,
                rate_per_sec: rate,
            };
            let n = 2_000;
            let last = s.requested_at(n - 1);
            assert_eq!(s.requested_at(0), 1_000_000);
            for from in (999_990..last + 10).step_by(97) {
                for len in [0, 1, 2, 999, 1000, 2_500] {
                    for w in [
                        Window {
                            from: Some(from),
                            to: Some(from + len),
                        },
                        Window {
                            from: None,
                            to: Some(from),
                        },
                        Window {
                            from: Some(from),
                            to: None,
                        },
                    ] {
                        assert_eq!(s.totals(n, w), brute(&s, n, w), "{rate}/s {w:?}");
                    }
                }
            }
            let all = s.totals(n, Window::default());
            assert_eq!(all[0].requests + all[1].requests, n);
            assert_eq!(all[1].requests, n / 10);
        }
    }
}
