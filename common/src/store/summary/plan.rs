//! The summary planner: how a `[from, to]` window is read so that the cost grows with the
//! days inside it plus a bounded part of its two edge seconds, never with the payments
//! outside it. Pure arithmetic over milliseconds and bucket numbers, no Redis.
//!
//! Before it: the gateway's `GET /payments-summary`, through [`crate::store::Store::summary`].
//! After it: [`super`], which runs the plan as one atomic read (`summary.lua` for the whole
//! buckets, per-payment reads for the edges) and adds up the reply.

use crate::keys::Bucket;
use crate::store::types::Window;
use crate::time::Millis;

/// How a window is read: the whole seconds, minutes and hours up to the first and from the
/// last whole day as listed buckets (at most 2 x 59 + 2 x 59 + 2 x 23, plus the edge
/// seconds read whole); the whole days between through the days index; and the partial
/// seconds at either edge, to the millisecond, one of two ways ([`Edges`]). The cost grows
/// with the days inside the window plus the payments of a bounded part of each of its two
/// edge seconds, never with the payments outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SummaryPlan {
    /// [`Edges::Payments`]: millisecond ranges, each within one second, read per payment.
    pub(super) edges: Vec<EdgeRange>,
    /// [`Edges::Tenths`]: the partial seconds, read through their tenths.
    pub(super) fine: Vec<FineEdge>,
    /// Whole seconds, minutes and hours.
    pub(super) buckets: Vec<Bucket>,
    /// Whole days, as index scores (`-inf` / `+inf` when open).
    pub(super) days: Option<(String, String)>,
}

/// How the partial seconds at a window's edges are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Edges {
    /// The range's whole tenths of a second from their buckets (which count every payment,
    /// like the second's, `record.lua`), plus or minus the rest per payment from `ev` and the
    /// compacted detail: at most half a tenth at each end. Valid only where the second's ten
    /// tenths add up to its bucket (count and cents), which the read checks.
    Tenths,
    /// The range from `ev` and the compacted detail, or the second's bucket minus the rest
    /// when that is shorter: at most half a second per payment. Valid always.
    Payments,
}

/// Payments of `from..=to` (one unit's milliseconds), added to the totals or subtracted
/// from them (the rest of a unit that is read whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EdgeRange {
    pub(super) from: Millis,
    pub(super) to: Millis,
    pub(super) subtract: bool,
}

/// A partial second `from..=to` read through its tenths: the `tenths` read whole, plus or
/// minus the `pieces`, which together cover the range exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FineEdge {
    pub(super) from: Millis,
    pub(super) to: Millis,
    /// Tenths of a second (`ms div 100`) read from their buckets.
    pub(super) tenths: Vec<i64>,
    /// Ranges, each within one tenth, read per payment from `ev` and the compacted detail.
    pub(super) pieces: Vec<EdgeRange>,
}

impl FineEdge {
    pub(super) fn second(&self) -> i64 {
        self.from.div_euclid(1000)
    }
}

/// A range of whole seconds, `None` where it is open.
type Seconds = (Option<i64>, Option<i64>);

/// Covers `from..=to` with units of `unit` ms: the units read whole, and ranges read per
/// payment, each within one unit — either the part of a unit inside the range, or, when
/// the rest of that unit is shorter, the rest, subtracted from the unit read whole.
fn cover(from: Millis, to: Millis, unit: i64) -> (Vec<i64>, Vec<EdgeRange>) {
    let mut whole = Vec::new();
    let mut pieces = Vec::new();
    for u in from.div_euclid(unit)..=to.div_euclid(unit) {
        let (start, end) = (u * unit, u * unit + unit - 1);
        let (a, b) = (from.max(start), to.min(end));
        let rest: Vec<(Millis, Millis)> = [(start, a - 1), (b + 1, end)]
            .into_iter()
            .filter(|(x, y)| x <= y)
            .collect();
        let rest_len: i64 = rest.iter().map(|(x, y)| y - x + 1).sum();
        if rest_len < b - a + 1 {
            whole.push(u);
            pieces.extend(rest.into_iter().map(|(from, to)| EdgeRange {
                from,
                to,
                subtract: true,
            }));
        } else {
            pieces.push(EdgeRange {
                from: a,
                to: b,
                subtract: false,
            });
        }
    }
    (whole, pieces)
}

impl SummaryPlan {
    pub(super) fn of(window: Window, how: Edges) -> Self {
        let sec = |ms: Millis| ms.div_euclid(1000);
        let (partial, whole): (Vec<(Millis, Millis)>, Option<Seconds>) =
            match (window.from, window.to) {
                (Some(f), Some(t)) if f > t => (Vec::new(), None),
                (Some(f), Some(t)) if sec(f) == sec(t) => (vec![(f, t)], None),
                (Some(f), Some(t)) => {
                    let (fs, ts) = (sec(f), sec(t));
                    (
                        vec![(f, (fs + 1) * 1000 - 1), (ts * 1000, t)],
                        (fs + 1 < ts).then_some((Some(fs + 1), Some(ts - 1))),
                    )
                }
                (None, Some(t)) => (vec![(sec(t) * 1000, t)], Some((None, Some(sec(t) - 1)))),
                (Some(f), None) => (
                    vec![(f, (sec(f) + 1) * 1000 - 1)],
                    Some((Some(sec(f) + 1), None)),
                ),
                (None, None) => (Vec::new(), Some((None, None))),
            };
        let (mut buckets, days) = whole.map_or((Vec::new(), None), split);
        let mut edges = Vec::new();
        let mut fine = Vec::new();
        for (from, to) in partial {
            let (seconds, pieces) = cover(from, to, 1000);
            if pieces.is_empty() || how == Edges::Payments {
                // A whole second is read from its bucket either way.
                buckets.extend(seconds.into_iter().map(Bucket::Second));
                edges.extend(pieces);
            } else {
                let (tenths, pieces) = cover(from, to, 100);
                fine.push(FineEdge {
                    from,
                    to,
                    tenths,
                    pieces,
                });
            }
        }
        let score =
            |b: Option<i64>, open: &str| b.map_or_else(|| open.to_string(), |d| d.to_string());
        Self {
            edges,
            fine,
            buckets,
            days: days.map(|(lo, hi)| (score(lo, "-inf"), score(hi, "+inf"))),
        }
    }

    /// Whether `summary.lua` has anything to read (not for a window inside one second).
    pub(super) fn reads_buckets(&self) -> bool {
        !self.buckets.is_empty() || self.days.is_some()
    }

    /// Whether the window has partial seconds at its edges.
    pub(super) fn reads_edges(&self) -> bool {
        !self.edges.is_empty() || !self.fine.is_empty()
    }

    /// `summary.lua`'s arguments: the days range, then the other buckets' fields.
    pub(super) fn args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(3 + self.buckets.len());
        let (d1, d2) = self.days.clone().unwrap_or_default();
        args.extend([d1, d2, self.buckets.len().to_string()]);
        args.extend(self.buckets.iter().map(|b| b.field()));
        args
    }
}

/// Splits the whole seconds `[lo, hi]` (non-empty) into the fewest buckets: at each level,
/// the units before the first and after the last whole unit of the next level stay at this
/// level; what is left goes up. Returns those buckets and the whole days left (`None` when
/// the range holds no whole day).
fn split((mut lo, mut hi): Seconds) -> (Vec<Bucket>, Option<Seconds>) {
    // (units of this level in one of the next, this level's bucket)
    type Level = (i64, fn(i64) -> Bucket);
    let levels: [Level; 3] = [
        (60, Bucket::Second),
        (60, Bucket::Minute),
        (24, Bucket::Hour),
    ];
    let mut buckets = Vec::new();
    for (size, bucket) in levels {
        // The whole units of the next level inside [lo, hi].
        let up_lo = lo.map(|a| a.div_euclid(size) + i64::from(a.rem_euclid(size) != 0));
        let up_hi = hi.map(|b| (b + 1).div_euclid(size) - 1);
        if let (Some(a), Some(b), Some(ua), Some(ub)) = (lo, hi, up_lo, up_hi) {
            if ua > ub {
                buckets.extend((a..=b).map(bucket));
                return (buckets, None);
            }
        }
        if let (Some(a), Some(ua)) = (lo, up_lo) {
            buckets.extend((a..ua * size).map(bucket));
        }
        if let (Some(b), Some(ub)) = (hi, up_hi) {
            buckets.extend(((ub + 1) * size..=b).map(bucket));
        }
        (lo, hi) = (up_lo, up_hi);
    }
    (buckets, Some((lo, hi)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The ms ranges a plan reads with their weight (+1 read, -1 subtracted); `i64::MIN` /
    /// `i64::MAX` for open ends.
    fn ranges(plan: &SummaryPlan) -> Vec<(i64, i64, i32)> {
        let mut out: Vec<(i64, i64, i32)> = plan
            .edges
            .iter()
            .map(|e| {
                assert_eq!(e.from.div_euclid(1000), e.to.div_euclid(1000), "{e:?}");
                (e.from, e.to, if e.subtract { -1 } else { 1 })
            })
            .collect();
        // A fine edge's whole tenths plus or minus its pieces must cover its range exactly.
        for e in &plan.fine {
            assert_eq!(e.from.div_euclid(1000), e.to.div_euclid(1000), "{e:?}");
            let mut ev = Vec::new();
            for p in &e.pieces {
                assert_eq!(p.from.div_euclid(100), p.to.div_euclid(100), "{p:?}");
                ev.push((p.from, p.to, if p.subtract { -1 } else { 1 }));
            }
            ev.extend(e.tenths.iter().map(|t| (t * 100, t * 100 + 99, 1)));
            assert_eq!(weights(&ev, e.from, e.to), "exact", "{e:?}");
            out.push((e.from, e.to, 1));
        }
        for b in &plan.buckets {
            let (start, len) = match *b {
                Bucket::Second(s) => (s * 1000, 1000),
                Bucket::Minute(m) => (m * 60_000, 60_000),
                Bucket::Hour(h) => (h * 3_600_000, 3_600_000),
                Bucket::Day(d) => (d * 86_400_000, 86_400_000),
                Bucket::Tenth(t) => panic!("tenth {t} read by summary.lua"),
            };
            out.push((start, start + len - 1, 1));
        }
        if let Some((lo, hi)) = &plan.days {
            let lo = lo.parse::<i64>().map_or(i64::MIN, |d| d * 86_400_000);
            let hi = hi
                .parse::<i64>()
                .map_or(i64::MAX, |d| (d + 1) * 86_400_000 - 1);
            assert!(lo <= hi, "{plan:?}");
            out.push((lo, hi, 1));
        }
        out
    }

    /// Whether weighted ranges count every ms of `[from, to]` exactly once and nothing
    /// outside it: sweeping them gives 1 inside and 0 elsewhere. `"exact"`, or where not.
    fn weights(ranges: &[(i64, i64, i32)], from: i64, to: i64) -> String {
        let mut deltas = std::collections::BTreeMap::<i128, i32>::new();
        for &(a, b, weight) in ranges {
            *deltas.entry(i128::from(a)).or_default() += weight;
            *deltas.entry(i128::from(b) + 1).or_default() -= weight;
        }
        // The window's own ends are breakpoints too, so every stretch between two
        // breakpoints lies wholly inside or wholly outside it.
        deltas.entry(i128::from(from)).or_default();
        deltas.entry(i128::from(to) + 1).or_default();
        deltas.entry(i128::from(i64::MIN)).or_default();
        let mut cover = 0;
        for (point, delta) in deltas {
            cover += delta;
            let inside = from <= to && i128::from(from) <= point && point <= i128::from(to);
            if cover != i32::from(inside) {
                return format!("{cover} at {point}");
            }
        }
        "exact".into()
    }

    /// Every ms of the window is counted exactly once and nothing outside it, both ways of
    /// reading the edges.
    fn assert_exact_cover(w: Window) {
        for how in [Edges::Tenths, Edges::Payments] {
            let plan = SummaryPlan::of(w, how);
            assert!(
                plan.buckets.len() <= 2 * 59 + 2 * 59 + 2 * 23 + 2,
                "{} buckets for {w:?}",
                plan.buckets.len()
            );
            // Per payment: at most half of each edge second, or of each end's tenth.
            let per_payment: i64 = plan.edges.iter().map(|e| e.to - e.from + 1).sum();
            assert!(per_payment <= 1000, "{w:?}: {plan:?}");
            for e in &plan.fine {
                let per_payment: i64 = e.pieces.iter().map(|p| p.to - p.from + 1).sum();
                assert!(per_payment <= 100, "{w:?}: {e:?}");
            }
            assert!(plan.edges.is_empty() || plan.fine.is_empty());
            let (from, to) = (w.from.unwrap_or(i64::MIN), w.to.unwrap_or(i64::MAX));
            assert_eq!(
                weights(&ranges(&plan), from, to),
                "exact",
                "{w:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn the_plan_reads_every_millisecond_of_any_window_exactly_once() {
        const DAY: i64 = 86_400_000;
        let base = 20_284 * DAY; // 2025-07-15T00:00:00Z
                                 // Near every kind of boundary, and far from them.
        let anchors = [
            base,
            base + 3_600_000,
            base + 60_000,
            base + 1_000,
            base + 12 * 3_600_000 + 34 * 60_000 + 56_789,
            // Inside a second, away from its tenths' boundaries.
            base + 5_234,
            base + 5_451,
            -DAY,
            0,
        ];
        let offsets = [
            -86_400_001,
            -3_600_001,
            -60_001,
            -1_001,
            -1,
            0,
            1,
            999,
            1_000,
            59_999,
        ];
        let lengths = [
            0,
            1,
            98,
            444,
            998,
            999,
            1_000,
            1_999,
            60_000,
            119_999,
            120_000,
            3_599_999,
            3_600_000,
            7_199_999,
            DAY - 1,
            DAY,
            2 * DAY + 1,
            40 * DAY + 3_723_004,
        ];
        for anchor in anchors {
            for off in offsets {
                let from = anchor + off;
                for len in lengths {
                    for w in [
                        Window {
                            from: Some(from),
                            to: Some(from + len),
                        },
                        Window {
                            from: Some(from + len),
                            to: Some(from),
                        },
                        Window {
                            from: None,
                            to: Some(from + len),
                        },
                        Window {
                            from: Some(from),
                            to: None,
                        },
                    ] {
                        assert_exact_cover(w);
                    }
                }
            }
        }
        assert_exact_cover(Window::default());
    }

    #[test]
    fn the_shorter_side_of_an_edge_second_is_read_per_payment() {
        // From .900: read .900-.999 per payment. To .900: the second whole minus .901-.999.
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_900),
                to: Some(8_900),
            },
            Edges::Payments,
        );
        let edge = |from, to, subtract| EdgeRange { from, to, subtract };
        assert_eq!(
            plan.edges,
            [edge(5_900, 5_999, false), edge(8_901, 8_999, true)]
        );
        assert!(plan.buckets.contains(&Bucket::Second(8)));
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_100),
                to: Some(5_100),
            },
            Edges::Payments,
        );
        assert_eq!(plan.edges, [edge(5_100, 5_100, false)]);
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_001),
                to: Some(5_998),
            },
            Edges::Payments,
        );
        assert_eq!(
            plan.edges,
            [edge(5_000, 5_000, true), edge(5_999, 5_999, true)]
        );
        assert_eq!(plan.buckets, [Bucket::Second(5)]);
    }

    #[test]
    fn with_tenths_an_edge_reads_at_most_half_a_tenth_at_each_end_per_payment() {
        let edge = |from, to, subtract| EdgeRange { from, to, subtract };
        // .120-.999 of second 5: tenths 2..9 whole, .100-.119 subtracted from tenth 1;
        // .000-.040 of second 8: read per payment (the rest of tenth 0 is longer).
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_120),
                to: Some(8_040),
            },
            Edges::Tenths,
        );
        assert!(plan.edges.is_empty());
        assert_eq!(plan.buckets, [Bucket::Second(6), Bucket::Second(7)]);
        assert_eq!(
            plan.fine,
            [
                FineEdge {
                    from: 5_120,
                    to: 5_999,
                    tenths: (51..=59).collect(),
                    pieces: vec![edge(5_100, 5_119, true)],
                },
                FineEdge {
                    from: 8_000,
                    to: 8_040,
                    tenths: vec![],
                    pieces: vec![edge(8_000, 8_040, false)],
                },
            ]
        );
        // A whole second at an edge is its bucket, as without tenths.
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_000),
                to: Some(6_999),
            },
            Edges::Tenths,
        );
        assert!(plan.fine.is_empty() && plan.edges.is_empty());
        assert_eq!(plan.buckets, [Bucket::Second(5), Bucket::Second(6)]);
        assert_eq!(Bucket::Tenth(51).field(), "t51");
    }

    #[test]
    fn long_windows_read_whole_days_through_the_index() {
        let plan = SummaryPlan::of(Window::default(), Edges::Payments);
        assert_eq!(plan.days, Some(("-inf".into(), "+inf".into())));
        assert!(plan.buckets.is_empty());
        assert_eq!(
            plan.args(),
            ["-inf".to_string(), "+inf".to_string(), "0".to_string()]
        );
        // 2025-07-15T12:34:56.789Z .. 2025-07-18T01:02:03.004Z: partial seconds, then 3 s,
        // 25 min, 11 h to the first midnight; 2 days; 1 h, 2 min, 3 s after the last.
        let from = 1_752_582_896_789;
        let to = from + 2 * 86_400_000 + 12 * 3_600_000 + 27 * 60_000 + 6_215;
        let plan = SummaryPlan::of(
            Window {
                from: Some(from),
                to: Some(to),
            },
            Edges::Payments,
        );
        let edge = |from, to| EdgeRange {
            from,
            to,
            subtract: false,
        };
        assert_eq!(
            plan.edges,
            [edge(from, 1_752_582_896_999), edge(to - 4, to)]
        );
        assert_eq!(plan.days, Some(("20285".into(), "20286".into())));
        let count = |f: fn(&Bucket) -> bool| plan.buckets.iter().filter(|b| f(b)).count();
        assert_eq!(count(|b| matches!(b, Bucket::Second(_))), 3 + 3);
        assert_eq!(count(|b| matches!(b, Bucket::Minute(_))), 25 + 2);
        assert_eq!(count(|b| matches!(b, Bucket::Hour(_))), 11 + 1);
        assert_eq!(plan.args()[2], plan.buckets.len().to_string());
        assert_eq!(plan.args()[3..].len(), plan.buckets.len());
        assert!(plan.args().contains(&"h486839".to_string()));
    }
}
