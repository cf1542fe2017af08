//! What a `redis-cost` run found: the variants it compares, one sample per variant and round,
//! and what follows from them. A leaf: [`redis_cost`](super::redis_cost) fills it,
//! [`report`](super::report) and [`plot`](super::plot) read it, and it imports neither.

use serde::Serialize;

pub use super::stats::Spread;

/// One way of recording a batch of payments the processor answered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `record.lua`, one payment per call.
    #[serde(rename = "lua-1")]
    Lua1,
    /// `record.lua`, a batch per call (group commit).
    LuaBatch,
    /// The same writes as plain commands, one `MULTI`/`EXEC` per payment, a batch of them
    /// per pipeline round trip. No idempotency check: a cost reference only.
    MultiEv,
    /// [`Variant::MultiEv`] without the `ev` `ZADD`: what the per-payment sorted set costs.
    MultiNoEv,
    /// [`Variant::MultiEv`] with a per-millisecond bucket (count, cents) instead of `ev`.
    MultiMsBucket,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Lua1,
        Variant::LuaBatch,
        Variant::MultiEv,
        Variant::MultiNoEv,
        Variant::MultiMsBucket,
    ];

    /// Short name, as in the JSON and the chart.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lua1 => "lua-1",
            Variant::LuaBatch => "lua-batch",
            Variant::MultiEv => "multi-ev",
            Variant::MultiNoEv => "multi-no-ev",
            Variant::MultiMsBucket => "multi-ms-bucket",
        }
    }

    /// One line for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Variant::Lua1 => "record.lua, 1 payment per call",
            Variant::LuaBatch => "record.lua, one batch per call",
            Variant::MultiEv => "MULTI/EXEC per payment, pipelined (no idempotency check)",
            Variant::MultiNoEv => "as multi-ev without the ev ZADD",
            Variant::MultiMsBucket => "as multi-ev with a per-ms bucket instead of ev",
        }
    }

    /// Whether the summary's edges can be read from what this variant writes.
    pub fn keeps_edges(self) -> bool {
        self != Variant::MultiNoEv
    }
}

/// The run's parameters and the server it measured.
#[derive(Debug, Clone, Serialize)]
pub struct RedisCostSettings {
    pub redis_url: String,
    pub redis_version: String,
    /// `off`, or the `appendfsync` policy when AOF is on.
    pub aof: String,
    pub payments: usize,
    pub rounds: usize,
    /// Payments per call (`lua-batch`) or per pipeline round trip (`multi-*`).
    pub batch: usize,
    /// Spacing of the payments' `requestedAt`: payments per second.
    pub rate_per_sec: u64,
    /// Idle time inside each CPU window after the last write, so `everysec`'s fsync of the
    /// writes is counted, ms.
    pub settle_ms: u64,
}

/// One variant in one round.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub round: usize,
    pub variant: Variant,
    pub payments: usize,
    /// Redis process CPU (user + sys, every thread) over the window, per payment.
    pub cpu_us_per_payment: f64,
    /// The same for Redis' main thread only.
    pub main_thread_cpu_us_per_payment: f64,
    /// Client-side time to record them all, one call or round trip at a time, per payment.
    pub wall_us_per_payment: f64,
    /// `used_memory` after the record minus before the accept, per payment.
    pub memory_bytes_per_payment: f64,
    /// `MEMORY USAGE` of the edge structure (`ev` or the ms buckets), per payment.
    pub edge_key_bytes_per_payment: Option<f64>,
    /// Forks (AOF rewrite, snapshot) during the window: a non-zero value taints the sample.
    pub forks: u64,
    /// Summary windows compared with the payments' own totals, and how many matched.
    pub windows_checked: usize,
    pub windows_exact: usize,
}

/// One variant over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    pub variant: Variant,
    pub description: &'static str,
    pub rounds: usize,
    pub cpu_us: Spread,
    pub main_thread_cpu_us: Spread,
    pub wall_us: Spread,
    pub memory_bytes: Spread,
    pub edge_key_bytes: Option<Spread>,
    /// Every checked window of every round matched.
    pub exact: bool,
    pub windows_checked: usize,
}

/// Groups the samples by variant, in [`Variant::ALL`] order; variants without samples are
/// left out.
pub fn summarize(samples: &[Sample]) -> Vec<VariantSummary> {
    Variant::ALL
        .iter()
        .filter_map(|&variant| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.variant == variant).collect();
            let spread = |f: fn(&Sample) -> f64| -> Option<Spread> {
                Spread::of(&mine.iter().map(|s| f(s)).collect::<Vec<_>>())
            };
            let edge: Vec<f64> = mine
                .iter()
                .filter_map(|s| s.edge_key_bytes_per_payment)
                .collect();
            Some(VariantSummary {
                variant,
                description: variant.describe(),
                rounds: mine.len(),
                cpu_us: spread(|s| s.cpu_us_per_payment)?,
                main_thread_cpu_us: spread(|s| s.main_thread_cpu_us_per_payment)?,
                wall_us: spread(|s| s.wall_us_per_payment)?,
                memory_bytes: spread(|s| s.memory_bytes_per_payment)?,
                edge_key_bytes: Spread::of(&edge),
                exact: mine.iter().all(|s| s.windows_exact == s.windows_checked),
                windows_checked: mine.iter().map(|s| s.windows_checked).sum(),
            })
        })
        .collect()
}

/// Differences between medians that answer the questions (µs CPU or bytes per
/// payment); `None` when a variant is missing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Findings {
    /// `record.lua` one at a time minus in batches: what the group commit saves.
    pub batching_saves_cpu_us: Option<f64>,
    /// `record.lua` in batches minus the same writes as plain `MULTI` pipelines: the price of
    /// Lua (plus its idempotency reads).
    pub lua_over_multi_cpu_us: Option<f64>,
    /// `multi-ev` minus `multi-no-ev`.
    pub ev_cpu_us: Option<f64>,
    pub ev_memory_bytes: Option<f64>,
    /// `MEMORY USAGE` of `ev` per payment.
    pub ev_key_bytes: Option<f64>,
    /// `multi-ms-bucket` minus `multi-no-ev`.
    pub ms_bucket_cpu_us: Option<f64>,
    pub ms_bucket_memory_bytes: Option<f64>,
    /// `MEMORY USAGE` of the ms buckets per payment.
    pub ms_bucket_key_bytes: Option<f64>,
}

impl Findings {
    pub fn of(summaries: &[VariantSummary]) -> Findings {
        let find = |v: Variant| summaries.iter().find(|s| s.variant == v);
        let diff =
            |a: Variant, b: Variant, f: fn(&VariantSummary) -> f64| Some(f(find(a)?) - f(find(b)?));
        let key = |v: Variant| Some(find(v)?.edge_key_bytes?.median);
        let cpu = |s: &VariantSummary| s.cpu_us.median;
        let mem = |s: &VariantSummary| s.memory_bytes.median;
        Findings {
            batching_saves_cpu_us: diff(Variant::Lua1, Variant::LuaBatch, cpu),
            lua_over_multi_cpu_us: diff(Variant::LuaBatch, Variant::MultiEv, cpu),
            ev_cpu_us: diff(Variant::MultiEv, Variant::MultiNoEv, cpu),
            ev_memory_bytes: diff(Variant::MultiEv, Variant::MultiNoEv, mem),
            ev_key_bytes: key(Variant::MultiEv),
            ms_bucket_cpu_us: diff(Variant::MultiMsBucket, Variant::MultiNoEv, cpu),
            ms_bucket_memory_bytes: diff(Variant::MultiMsBucket, Variant::MultiNoEv, mem),
            ms_bucket_key_bytes: key(Variant::MultiMsBucket),
        }
    }
}

/// A finished `redis-cost` run.
#[derive(Debug, Clone, Serialize)]
pub struct RedisCostReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: RedisCostSettings,
    /// Redis CPU while idle (nothing sent), µs per second: the floor under every window.
    pub idle_cpu_us_per_sec: f64,
    pub samples: Vec<Sample>,
    pub variants: Vec<VariantSummary>,
    pub findings: Findings,
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A report as a run would fill it: every variant, two rounds, CPU `cpu[v]` ± 0.5.
    pub(crate) fn sample_report() -> RedisCostReport {
        let cpu = [30.0, 10.0, 8.0, 6.0, 7.0];
        let mut samples = Vec::new();
        for round in 0..2 {
            for (i, &variant) in Variant::ALL.iter().enumerate() {
                let jitter = if round == 0 { -0.5 } else { 0.5 };
                let edge = match variant {
                    Variant::MultiEv | Variant::Lua1 | Variant::LuaBatch => Some(90.0),
                    Variant::MultiMsBucket => Some(40.0),
                    Variant::MultiNoEv => None,
                };
                samples.push(Sample {
                    round,
                    variant,
                    payments: 1000,
                    cpu_us_per_payment: cpu[i] + jitter,
                    main_thread_cpu_us_per_payment: cpu[i] - 1.0,
                    wall_us_per_payment: cpu[i] * 2.0,
                    memory_bytes_per_payment: 200.0 + edge.unwrap_or(0.0),
                    edge_key_bytes_per_payment: edge,
                    forks: 0,
                    windows_checked: 3,
                    windows_exact: 3,
                });
            }
        }
        let variants = summarize(&samples);
        RedisCostReport {
            name: "test".into(),
            started_at: "a".into(),
            finished_at: "b".into(),
            settings: RedisCostSettings {
                redis_url: "redis://127.0.0.1:1".into(),
                redis_version: "7.0.15".into(),
                aof: "everysec".into(),
                payments: 1000,
                rounds: 2,
                batch: 64,
                rate_per_sec: 1000,
                settle_ms: 1100,
            },
            idle_cpu_us_per_sec: 500.0,
            findings: Findings::of(&variants),
            variants,
            samples,
            notes: vec!["a note".into()],
            files: Vec::new(),
        }
    }

    #[test]
    fn summaries_follow_variant_order_and_findings_subtract_medians() {
        let r = sample_report();
        let order: Vec<Variant> = r.variants.iter().map(|v| v.variant).collect();
        assert_eq!(order, Variant::ALL);
        let multi_ev = &r.variants[2];
        assert_eq!(multi_ev.cpu_us.median, 8.0);
        assert_eq!((multi_ev.cpu_us.min, multi_ev.cpu_us.max), (7.5, 8.5));
        assert!(multi_ev.exact);
        assert_eq!(multi_ev.windows_checked, 6);
        assert_eq!(r.variants[3].edge_key_bytes, None);
        let f = r.findings;
        assert_eq!(f.batching_saves_cpu_us, Some(20.0));
        assert_eq!(f.lua_over_multi_cpu_us, Some(2.0));
        assert_eq!(f.ev_cpu_us, Some(2.0));
        assert_eq!(f.ev_memory_bytes, Some(90.0));
        assert_eq!(f.ev_key_bytes, Some(90.0));
        assert_eq!(f.ms_bucket_cpu_us, Some(1.0));
        assert_eq!(f.ms_bucket_key_bytes, Some(40.0));
    }

    #[test]
    fn a_missed_window_makes_a_variant_inexact_and_missing_variants_give_no_finding() {
        let mut r = sample_report();
        r.samples.retain(|s| s.variant != Variant::MultiNoEv);
        r.samples[0].windows_exact = 2;
        let variants = summarize(&r.samples);
        assert_eq!(variants.len(), 4);
        assert!(!variants[0].exact);
        let f = Findings::of(&variants);
        assert_eq!(f.ev_cpu_us, None);
        assert_eq!(f.batching_saves_cpu_us, Some(20.0));
    }

    #[test]
    fn variants_serialize_with_their_short_names() {
        for v in Variant::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
    }
}
