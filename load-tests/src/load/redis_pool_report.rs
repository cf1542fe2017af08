//! What a `redis-pool` run found: the ways of reaching Redis it compares, one sample per
//! variant, caller count and round, and their medians. A leaf: [`redis_pool`](super::redis_pool)
//! fills it, [`plot`](super::plot) draws it, and it imports neither.

use std::fmt::Write as _;

use serde::Serialize;

use super::procstat::LoadAverages;
use super::stats::Spread;

/// One way of running the gateway's accept (`accept.lua`) from many concurrent callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Today: `Store::accept` — one multiplexed `ConnectionManager`, callers that arrive
    /// while a call is in flight share the next script call (the batcher).
    Manager,
    /// The same connection, one script call per payment (pipelined on the socket).
    ManagerUnbatched,
    /// A deadpool-redis pool of `n` connections: each caller checks one out and runs its own
    /// script call — how a pool is normally used.
    Pool(usize),
    /// The batcher with up to `n` script calls in flight, each on a connection from a pool
    /// of `n`.
    PoolBatched(usize),
}

impl Variant {
    /// Today's first, then the pools in the order of `sizes`.
    pub fn all(sizes: &[usize]) -> Vec<Variant> {
        let mut v = vec![Variant::Manager, Variant::ManagerUnbatched];
        v.extend(sizes.iter().map(|&n| Variant::Pool(n)));
        v.extend(sizes.iter().map(|&n| Variant::PoolBatched(n)));
        v
    }

    /// Short name, as in the JSON and the chart.
    pub fn name(self) -> String {
        match self {
            Variant::Manager => "manager-batched".into(),
            Variant::ManagerUnbatched => "manager-1".into(),
            Variant::Pool(n) => format!("pool-{n}"),
            Variant::PoolBatched(n) => format!("pool-{n}-batched"),
        }
    }

    /// One line for the table.
    pub fn describe(self) -> String {
        match self {
            Variant::Manager => "ConnectionManager + batcher (today)".into(),
            Variant::ManagerUnbatched => "ConnectionManager, one call per payment".into(),
            Variant::Pool(n) => format!("deadpool-redis, {n} connections, one call per payment"),
            Variant::PoolBatched(n) => {
                format!("deadpool-redis, {n} connections, batcher with {n} calls in flight")
            }
        }
    }
}

impl Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// The run's parameters and the server it measured.
#[derive(Debug, Clone, Serialize)]
pub struct RedisPoolSettings {
    pub redis_url: String,
    pub redis_version: String,
    /// `off`, or the `appendfsync` policy when AOF is on.
    pub aof: String,
    pub callers: Vec<usize>,
    pub pool_sizes: Vec<usize>,
    /// How long each measurement runs, s.
    pub duration_s: f64,
    pub rounds: usize,
}

/// One variant with one caller count in one round.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub variant: Variant,
    pub callers: usize,
    pub round: usize,
    /// Accepts answered (every one a new payment) and failed.
    pub calls: u64,
    pub errors: u64,
    pub calls_per_sec: f64,
    /// This process' CPU (`/proc/self/stat`: the callers, the client library, tokio).
    pub client_cpu_us_per_call: Option<f64>,
    /// Redis' CPU (`INFO cpu`, user + sys, every thread).
    pub redis_cpu_us_per_call: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub load_average: LoadAverages,
}

/// One variant with one caller count over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub variant: Variant,
    pub callers: usize,
    pub calls_per_sec: Option<Spread>,
    pub client_cpu_us_per_call: Option<Spread>,
    pub redis_cpu_us_per_call: Option<Spread>,
    pub p50_ms: Option<Spread>,
    pub p99_ms: Option<Spread>,
    pub errors: u64,
}

/// Everything a run measured: written as `<out>/<name>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RedisPoolReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: RedisPoolSettings,
    pub summaries: Vec<Summary>,
    pub samples: Vec<Sample>,
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

/// Medians per variant and caller count, variants in the order given, then callers.
pub fn summarize(samples: &[Sample], variants: &[Variant], callers: &[usize]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &variant in variants {
        for &n in callers {
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.variant == variant && s.callers == n)
                .collect();
            if of.is_empty() {
                continue;
            }
            let spread = |f: fn(&Sample) -> Option<f64>| {
                Spread::of(&of.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
            };
            out.push(Summary {
                variant,
                callers: n,
                calls_per_sec: spread(|s| Some(s.calls_per_sec)),
                client_cpu_us_per_call: spread(|s| s.client_cpu_us_per_call),
                redis_cpu_us_per_call: spread(|s| s.redis_cpu_us_per_call),
                p50_ms: spread(|s| Some(s.p50_ms)),
                p99_ms: spread(|s| Some(s.p99_ms)),
                errors: of.iter().map(|s| s.errors).sum(),
            });
        }
    }
    out
}

impl RedisPoolReport {
    /// The human table: one line per variant and caller count.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "accept.lua from N concurrent callers, Redis {} (AOF {}), {} s × {} rounds; medians",
            s.redis_version, s.aof, s.duration_s, s.rounds
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>22} {:>18} {:>18} {:>8} {:>8} {:>6}",
            "variant",
            "callers",
            "calls/s (range)",
            "client µs/call",
            "Redis µs/call",
            "p50 ms",
            "p99 ms",
            "errors"
        );
        let median = |v: Option<Spread>, d: usize| {
            v.map_or_else(|| "n/a".into(), |v| format!("{:.d$}", v.median))
        };
        for m in &self.summaries {
            let _ = writeln!(
                out,
                "{:<16} {:>7} {:>22} {:>18} {:>18} {:>8} {:>8} {:>6}",
                m.variant.name(),
                m.callers,
                Spread::show_or_na(m.calls_per_sec, 0),
                Spread::show_or_na(m.client_cpu_us_per_call, 1),
                Spread::show_or_na(m.redis_cpu_us_per_call, 1),
                median(m.p50_ms, 3),
                median(m.p99_ms, 3),
                m.errors
            );
        }
        let loads: Vec<String> = self
            .samples
            .iter()
            .filter_map(|s| s.load_average.start.map(|l| l.one))
            .map(|l| format!("{l:.1}"))
            .collect();
        let _ = writeln!(
            out,
            "load average (1 min) at each sample: {}",
            loads.join(" ")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(variant: Variant, callers: usize, rate: f64, redis_us: f64) -> Sample {
        Sample {
            variant,
            callers,
            round: 1,
            calls: rate as u64,
            errors: 0,
            calls_per_sec: rate,
            client_cpu_us_per_call: Some(10.0),
            redis_cpu_us_per_call: Some(redis_us),
            p50_ms: 0.2,
            p99_ms: 1.0,
            load_average: LoadAverages::default(),
        }
    }

    #[test]
    fn variants_are_named_and_ordered() {
        let v = Variant::all(&[4, 16]);
        let names: Vec<String> = v.iter().map(|v| v.name()).collect();
        assert_eq!(
            names,
            [
                "manager-batched",
                "manager-1",
                "pool-4",
                "pool-16",
                "pool-4-batched",
                "pool-16-batched"
            ]
        );
        assert_eq!(
            serde_json::to_value(Variant::PoolBatched(4)).unwrap(),
            "pool-4-batched"
        );
    }

    #[test]
    fn summaries_take_medians_per_variant_and_callers() {
        let samples = [
            sample(Variant::Manager, 16, 1000.0, 20.0),
            sample(Variant::Manager, 16, 3000.0, 30.0),
            sample(Variant::Pool(4), 16, 500.0, 50.0),
            sample(Variant::Manager, 1, 100.0, 90.0),
        ];
        let s = summarize(
            &samples,
            &[Variant::Manager, Variant::Pool(4)],
            &[1, 16, 128],
        );
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].variant, s[0].callers), (Variant::Manager, 1));
        let rate = s[1].calls_per_sec.unwrap();
        assert_eq!((rate.median, rate.min, rate.max), (2000.0, 1000.0, 3000.0));
        assert_eq!(s[1].redis_cpu_us_per_call.unwrap().median, 25.0);
        assert_eq!(s[2].variant, Variant::Pool(4));
        assert_eq!(s[2].calls_per_sec.unwrap().median, 500.0);
    }
}
