//! Latency histograms and request outcome counters.
//!
//! Every request the generators send ends here: its latency goes into an HDR histogram
//! (microseconds, so a 1.2 ms p99 is not rounded to 1 ms), its outcome into [`Outcomes`].
//! [`report`](super::report) and [`plot`](super::plot) read the [`Percentiles`] back out.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram holds exactly (60 s); anything slower is clamped to it.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// Three significant digits: 1 µs resolution up to ~2 ms, 0.1 % beyond.
    pub fn new() -> Self {
        Latency::with_sigfig(3)
    }

    /// Coarser histograms (2 digits: 1 %) for the many per-second buckets of a timeline.
    pub fn with_sigfig(sigfig: u8) -> Self {
        Latency {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig.clamp(1, 5))
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Records one latency (sub-microsecond values count as 1 µs).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Records one latency given in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        if let Err(e) = self.hist.add(&other.hist) {
            // Only possible with different bounds, which this type never creates.
            tracing::warn!(error = %e, "latency histograms could not be merged");
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The 99th percentile in whole microseconds (the score's input).
    pub fn p99_us(&self) -> u64 {
        self.quantile_us(0.99)
    }

    /// The usual summary, in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.hist.len(),
            min_ms: us_to_ms(self.hist.min()),
            mean_ms: self.hist.mean().round() / 1000.0,
            p50_ms: us_to_ms(self.quantile_us(0.50)),
            p90_ms: us_to_ms(self.quantile_us(0.90)),
            p99_ms: us_to_ms(self.quantile_us(0.99)),
            p999_ms: us_to_ms(self.quantile_us(0.999)),
            max_ms: us_to_ms(self.hist.max()),
        }
    }
}

/// Whole milliseconds of `d`, as the reports' settings print durations.
pub fn whole_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Rounded to three decimals (seconds to the millisecond, rates and cores to a thousandth).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A count as a signed number, for differences such as `accepted - processed`.
pub fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Microseconds to milliseconds, kept to the microsecond.
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A latency distribution summary in milliseconds (as written to the JSON reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// What became of a set of requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Requests sent (or attempted).
    pub requests: u64,
    /// Answered with a 2xx status.
    pub accepted: u64,
    /// Answered with any other status, counted by status code.
    pub rejected: BTreeMap<u16, u64>,
    /// No complete answer within the client timeout.
    pub timeouts: u64,
    /// Connection or protocol errors.
    pub errors: u64,
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Timeout,
    Error,
}

impl Outcomes {
    /// Counts one request.
    pub fn add(&mut self, outcome: Outcome) {
        self.requests += 1;
        match outcome {
            Outcome::Status(s) if (200..300).contains(&s) => self.accepted += 1,
            Outcome::Status(s) => *self.rejected.entry(s).or_default() += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Outcomes) {
        self.requests += other.requests;
        self.accepted += other.accepted;
        for (status, n) in &other.rejected {
            *self.rejected.entry(*status).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.errors += other.errors;
    }

    /// All non-2xx answers together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_percentiles_from_a_known_distribution() {
        let mut h = Latency::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        // Three significant digits: values are exact to within 0.1 %.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(p.p50_ms, 500.0), "p50 {}", p.p50_ms);
        assert!(close(p.p90_ms, 900.0), "p90 {}", p.p90_ms);
        assert!(close(p.p99_ms, 990.0), "p99 {}", p.p99_ms);
        assert!(close(p.p999_ms, 999.0), "p99.9 {}", p.p999_ms);
        assert!(close(p.max_ms, 1000.0), "max {}", p.max_ms);
        assert!(close(p.min_ms, 1.0), "min {}", p.min_ms);
        assert!(close(p.mean_ms, 500.5), "mean {}", p.mean_ms);
    }

    #[test]
    fn keeps_microsecond_resolution_below_two_ms() {
        let mut h = Latency::new();
        for _ in 0..99 {
            h.record_us(800);
        }
        h.record_us(1234);
        assert_eq!(h.quantile_us(0.99), 800);
        assert_eq!(h.quantile_us(1.0), 1234);
        assert_eq!(h.percentiles().max_ms, 1.234);
    }

    #[test]
    fn empty_and_extreme_values_are_safe() {
        let mut h = Latency::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        assert_eq!(h.p99_us(), 0);
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        assert_eq!(h.count(), 2);
        assert!(h.percentiles().max_ms >= 59_000.0);
    }

    #[test]
    fn merges_histograms_and_outcomes() {
        let mut a = Latency::new();
        let mut b = Latency::with_sigfig(3);
        a.record_us(100);
        b.record_us(300);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.quantile_us(1.0), 300);

        let mut o = Outcomes::default();
        o.add(Outcome::Status(202));
        o.add(Outcome::Status(503));
        o.add(Outcome::Status(503));
        o.add(Outcome::Timeout);
        let mut p = Outcomes::default();
        p.add(Outcome::Error);
        p.add(Outcome::Status(200));
        o.merge(&p);
        assert_eq!(o.requests, 6);
        assert_eq!(o.accepted, 2);
        assert_eq!(o.rejected.get(&503), Some(&2));
        assert_eq!(o.rejected_total(), 2);
        assert_eq!((o.timeouts, o.errors), (1, 1));
    }
}
