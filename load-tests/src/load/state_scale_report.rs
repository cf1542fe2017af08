//! What a `state-scale` run found: the summary query's latency per kind of window once Redis
//! holds many processed payments, and Redis memory per payment in each retention state. A
//! leaf: [`state_scale`](super::state_scale) fills it, [`report`](super::report) and
//! [`plot`](super::plot) read it, and it imports neither.

use serde::Serialize;

use super::procstat::LoadAverage;
use super::stats::Percentiles;

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct StateScaleReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: StateScaleSettings,
    pub fill: Fill,
    /// Redis memory after each step, in order.
    pub memory: Vec<MemoryState>,
    /// One row per retention state measured and kind of window.
    pub queries: Vec<QueryKind>,
    /// The machine's load averages at the start of each phase (other jobs share the cores).
    pub load: Vec<PhaseLoad>,
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

/// The run's parameters and the server it filled.
#[derive(Debug, Clone, Serialize)]
pub struct StateScaleSettings {
    pub redis_version: String,
    /// `off`: a scratch server started by the run, no AOF, no snapshots.
    pub aof: String,
    pub payments: u64,
    /// `requestedAt` spacing, payments per second.
    pub rate_per_sec: u64,
    /// First and last `requestedAt` (ISO-8601) and the seconds between them.
    pub first_requested_at: String,
    pub last_requested_at: String,
    pub span_secs: f64,
    /// Payments per `accept.lua` and per `record.lua` call, and how many such calls ran at once.
    pub batch: usize,
    pub lanes: usize,
    /// Summary calls per kind of window and state, cycling over `distinct_windows` windows.
    pub reps: usize,
    pub distinct_windows: usize,
    /// `SUMMARY_DETAIL_HORIZON` the first compaction used, s.
    pub detail_horizon_secs: u64,
}

/// Filling Redis and the retention steps after it.
#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    /// `accept.lua` + `record.lua` for every payment, s.
    pub fill_secs: f64,
    pub payments_per_sec: f64,
    /// `compact.lua` with the detail horizon, then with none, s.
    pub compact_horizon_secs: f64,
    pub compacted_horizon: u64,
    pub compact_all_secs: f64,
    pub compacted_all: u64,
}

/// `used_memory` in one state.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryState {
    pub state: String,
    pub description: String,
    pub used_memory_bytes: u64,
    /// Above the empty server, per payment.
    pub bytes_per_payment: f64,
    /// `MEMORY USAGE` of each summary key present (both processors), bytes.
    pub summary_keys: Vec<KeySize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeySize {
    pub key: String,
    pub bytes: u64,
}

/// The summary call for one kind of window in one state.
#[derive(Debug, Clone, Serialize)]
pub struct QueryKind {
    /// The retention state the data was in.
    pub state: String,
    pub kind: String,
    pub description: String,
    /// Client side: `Store::summary`, the script call and the 128-bit summation.
    pub latency: Percentiles,
    /// Server side: µs per call of its outermost command (`EXEC`, or `EVALSHA` for a bare
    /// script), from `INFO commandstats`.
    pub server_us_per_call: Option<f64>,
    /// Of the timed calls, how many read the window a second time without tenths (an edge
    /// second recorded without them).
    pub rereads: u64,
    /// Distinct windows compared with the payments' own totals, and how many matched.
    pub windows_checked: usize,
    pub windows_exact: usize,
    /// The p99 this kind must stay under, if any, and whether it did.
    pub target_p99_ms: Option<f64>,
    pub target_met: Option<bool>,
}

/// Load averages when a phase began.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseLoad {
    pub phase: String,
    pub load: LoadAverage,
}

impl StateScaleReport {
    /// Every window read back matched the payments recorded.
    pub fn exact(&self) -> bool {
        self.queries
            .iter()
            .all(|q| q.windows_checked == q.windows_exact)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small report for the renderers' tests.
    pub(crate) fn sample_report() -> StateScaleReport {
        let latency = |p50: f64, p99: f64| Percentiles {
            count: 100,
            min_ms: p50 / 2.0,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p99 * 0.8,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99 * 1.5,
        };
        let query = |kind: &str, p50: f64, p99: f64, target: Option<f64>| QueryKind {
            state: "compacted".into(),
            kind: kind.into(),
            description: format!("{kind} window"),
            latency: latency(p50, p99),
            server_us_per_call: Some(p50 * 500.0),
            rereads: 0,
            windows_checked: 20,
            windows_exact: 20,
            target_p99_ms: target,
            target_met: target.map(|t| p99 <= t),
        };
        StateScaleReport {
            name: "state-scale-test".into(),
            started_at: "2026-11-28T10:00:00Z".into(),
            finished_at: "2026-11-28T10:30:00Z".into(),
            settings: StateScaleSettings {
                redis_version: "7.0.15".into(),
                aof: "off".into(),
                payments: 1_000_000,
                rate_per_sec: 1000,
                first_requested_at: "2026-11-28T07:00:00.000Z".into(),
                last_requested_at: "2026-11-28T07:16:39.999Z".into(),
                span_secs: 1000.0,
                batch: 64,
                lanes: 8,
                reps: 100,
                distinct_windows: 20,
                detail_horizon_secs: 3600,
            },
            fill: Fill {
                fill_secs: 60.0,
                payments_per_sec: 16_666.7,
                compact_horizon_secs: 10.0,
                compacted_horizon: 600_000,
                compact_all_secs: 5.0,
                compacted_all: 400_000,
            },
            memory: vec![
                MemoryState {
                    state: "filled".into(),
                    description: "every status hash and ev member".into(),
                    used_memory_bytes: 430_000_000,
                    bytes_per_payment: 430.0,
                    summary_keys: vec![KeySize {
                        key: "{ps}:sum:default:ev".into(),
                        bytes: 140_000_000,
                    }],
                },
                MemoryState {
                    state: "expired".into(),
                    description: "status hashes gone".into(),
                    used_memory_bytes: 12_000_000,
                    bytes_per_payment: 12.0,
                    summary_keys: Vec::new(),
                },
            ],
            queries: vec![
                query("1m-old", 0.25, 0.5, Some(1.0)),
                query("all-open", 0.4, 0.9, Some(5.0)),
            ],
            load: vec![PhaseLoad {
                phase: "fill".into(),
                load: LoadAverage {
                    one: 2.5,
                    five: 2.0,
                    fifteen: 1.5,
                },
            }],
            notes: vec!["a note".into()],
            files: Vec::new(),
        }
    }

    #[test]
    fn exact_means_every_checked_window_matched() {
        let mut r = sample_report();
        assert!(r.exact());
        r.queries[1].windows_exact = 19;
        assert!(!r.exact());
    }
}
