//! What a soak run measured, and its verdict: the leaf module [`soak`](super::soak) fills and
//! [`report`](super::report) and [`plot`](super::plot) read.
//!
//! The verdict. Memory must be flat once retention holds state to a time window: the
//! *steady window* starts when both retention horizons have passed since the load began
//! (`PAYMENT_RETENTION`: status hashes created at the start begin to expire;
//! `SUMMARY_DETAIL_HORIZON`: detail begins to be compacted) plus [`SETTLE`], and ends with
//! the load. Over it, each series gets a least-squares line ([`fit`]); a series is flat when
//! the line grows less in an hour than [`FLAT_PER_HOUR`] of its mean, or than its absolute
//! floor (noise on small processes). Only growth fails: a line that falls by more than that
//! (memory given back) passes and is marked `falls`. A run shorter than retention has no
//! steady window: its slopes (over the last half) are reported, not judged.
//!
//! Redis' memory is judged without the summary's kept time series (per-second counts and
//! cents, their index, the compacted per-millisecond detail and the tenths of a second):
//! docs/operations.md states it is
//! kept for good, growing with time (~11 bytes per millisecond with payments), not with
//! payments; its growth is reported beside the verdict.

use std::collections::BTreeMap;

use serde::Serialize;

use super::checker::CheckRecord;
use super::control::{BackendSummary, ProcessorSummary};
use super::rinha_report::StageRecord;
use super::stats::{round3, Outcomes, Percentiles};

/// Time after both retention horizons before the steady window starts, s: the expiry of
/// the first status hashes catches up with their creation, compaction with recording.
pub const SETTLE: f64 = 60.0;
/// A series is flat when its fitted growth over an hour stays below this share of its mean.
pub const FLAT_PER_HOUR: f64 = 0.05;
/// ... or below this many MB per hour (memory series).
pub const FLAT_FLOOR_MB_PER_HOUR: f64 = 2.0;
/// ... or below this many keys per hour (Redis' key count).
pub const FLAT_FLOOR_KEYS_PER_HOUR: f64 = 1_000.0;

/// The settings a report was produced with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoakSettings {
    pub backend_url: String,
    pub default_url: String,
    pub fallback_url: String,
    /// Payments posted per second (open loop).
    pub rate: u64,
    pub duration_s: f64,
    /// Length of each processor condition (docs/protocol.md §5's six, cycling) and the checker's period.
    pub stage_s: f64,
    pub sample_every_s: f64,
    pub connections: usize,
    pub timeout_ms: u64,
    pub max_lag_ms: u64,
    pub drain_timeout_s: f64,
    /// The checker's window: `[now - check_from_offset_ms, now - check_to_offset_ms]`.
    pub check_from_offset_ms: u64,
    pub check_to_offset_ms: u64,
    /// Age of the older window checked beside each check (compacted detail), s.
    pub old_check_age_s: f64,
    /// The stack's `PAYMENT_RETENTION` and `SUMMARY_DETAIL_HORIZON`, as given to the run.
    pub payment_retention_s: Option<f64>,
    pub detail_horizon_s: Option<f64>,
    /// Redis' `appendfsync` (or `off` without AOF), as Redis reported it.
    pub appendfsync: Option<String>,
    pub redis_url: Option<String>,
}

/// The load of one sampling interval. (The rare counters are left out of the JSON when 0:
/// a long run has hundreds of samples.)
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IntervalLoad {
    pub requests: u64,
    pub accepted: u64,
    /// `5xx` answers.
    #[serde(skip_serializing_if = "is_zero")]
    pub server_errors: u64,
    /// Other non-2xx answers.
    #[serde(skip_serializing_if = "is_zero")]
    pub rejected: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeouts: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub errors: u64,
    /// Due but never sent: the client could not start them within `max_lag`.
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl IntervalLoad {
    /// The interval's figures from its outcomes and latency.
    pub fn new(outcomes: &Outcomes, dropped: u64, latency: &Percentiles) -> Self {
        let server_errors = outcomes
            .rejected
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, n)| n)
            .sum();
        IntervalLoad {
            requests: outcomes.requests,
            accepted: outcomes.accepted,
            server_errors,
            rejected: outcomes.rejected_total() - server_errors,
            timeouts: outcomes.timeouts,
            errors: outcomes.errors,
            dropped,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            max_ms: latency.max_ms,
        }
    }
}

/// Redis at one sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RedisSample {
    /// `INFO memory`: what Redis allocated, and what the OS gives it.
    pub used_memory: u64,
    pub used_memory_rss: u64,
    pub dbsize: u64,
    /// Stream entries (queued or in flight), delivered-not-acknowledged, not yet delivered.
    pub stream_len: u64,
    pub pending: u64,
    pub undelivered: u64,
    pub dead_letters: u64,
    /// `MEMORY USAGE ... SAMPLES 0` (every element) of the summary's kept time series:
    /// per-second counts, cents and index, and the compacted detail, both processors.
    pub summary_kept_bytes: u64,
    /// `MEMORY USAGE` (Redis' sampled estimate) of the per-payment detail not yet compacted
    /// (`ev`).
    pub summary_detail_bytes: u64,
    /// `INFO persistence` `aof_current_size`, when AOF is on.
    pub aof_bytes: Option<u64>,
}

/// One process group at one sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcPoint {
    /// Resident memory of the group's live processes, KiB.
    pub rss_kb: u64,
    /// Processes read.
    pub procs: usize,
    /// CPU seconds used since the previous sample (a restarted process from its start).
    pub cpu_s: f64,
    /// That CPU per payment accepted in the interval, µs (`None` without payments).
    pub cpu_us_per_payment: Option<f64>,
}

/// One sample of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SoakSample {
    /// Seconds since the load started.
    pub t_s: f64,
    /// The processor condition (0..5) in force; `None` after the load (healthy, draining).
    pub stage: Option<usize>,
    /// Payments accepted (2xx) so far.
    pub accepted: u64,
    /// Payments the backend reports processed (both processors), when it answered.
    pub processed: Option<u64>,
    /// `accepted - processed`.
    pub backlog: Option<i64>,
    /// The load since the previous sample.
    pub load: IntervalLoad,
    pub redis: Option<RedisSample>,
    pub procs: BTreeMap<String, ProcPoint>,
}

/// A process that came or went between two samples (a restart by the supervisor).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PidChange {
    pub t_s: f64,
    pub group: String,
    pub gone: Vec<u32>,
    pub new: Vec<u32>,
    /// The group's main process (its pid file's, not a child) is among `gone`.
    pub main_gone: bool,
}

/// A check, as the plot marks it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckMark {
    pub at_s: f64,
    /// The older window (compacted detail) rather than the recent one.
    pub old: bool,
    /// `None`: a summary could not be read.
    pub consistent: Option<bool>,
}

/// A group's CPU over the whole load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessCost {
    pub name: String,
    /// A process of the stack (from its pid files) rather than a fixed group.
    pub stack: bool,
    pub cpu_seconds: f64,
    pub cpu_us_per_payment: Option<f64>,
    pub rss_last_kb: u64,
    pub rss_max_kb: u64,
}

/// What the backend and the processors held once the backlog drained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinalTotals {
    /// Backlog (accepted − processed) when the load ended.
    pub lag_at_end: Option<i64>,
    /// Every accepted payment was reported processed before the drain timeout.
    pub drained: bool,
    /// From the end of the load to that reading, s.
    pub drain_s: Option<f64>,
    pub accepted: u64,
    /// POSTs without an answer (timeouts, errors): each may or may not have been accepted.
    pub unanswered: u64,
    pub backend: BackendSummary,
    pub default: ProcessorSummary,
    pub fallback: ProcessorSummary,
    pub dead_letters: Option<u64>,
    /// Each processor stored exactly what the backend reports for it, count and amount.
    pub consistent: bool,
    /// What the processors stored is every accepted payment once: at least the accepted
    /// count, at most that plus the unanswered POSTs.
    pub all_processed_once: bool,
}

/// How one series behaved over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flatness {
    pub series: String,
    /// `MB` or `keys`.
    pub unit: String,
    pub samples: usize,
    pub from_s: f64,
    pub to_s: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Least-squares slope, unit per minute.
    pub slope_per_min: f64,
    /// `None`: not judged (no steady window, or a series outside the verdict). `Some(true)`:
    /// it does not grow beyond the limit (it may fall: see `falls`).
    pub flat: Option<bool>,
    /// It falls by more than the limit: memory given back, no growth; reported, passes.
    pub falls: bool,
}

/// The run's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The window the flatness is computed over, s since the load started.
    pub window_from_s: f64,
    pub window_to_s: f64,
    /// Both retention horizons passed (plus [`SETTLE`]) before the load ended: the window is
    /// the steady state and flatness is judged.
    pub steady: bool,
    /// Judged: the stack's processes, Redis without the summary's kept series, Redis' keys.
    /// Reported: Redis' total, the summary's kept series, the fixed groups.
    pub series: Vec<Flatness>,
    pub inconsistencies: u64,
    pub old_window_inconsistencies: u64,
    pub check_errors: u64,
    pub server_errors: u64,
    pub lag_at_end: Option<i64>,
    /// `true` only when everything judged passed; `None` when flatness could not be judged.
    pub passed: Option<bool>,
    /// What failed, or why it was not judged.
    pub reasons: Vec<String>,
}

/// Everything a soak run measured: written as `<out>/<name>.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoakReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: SoakSettings,
    /// `POST /payments` over the whole load.
    pub requests: Outcomes,
    pub dropped: u64,
    pub latency: Percentiles,
    pub verdict: Verdict,
    pub totals: FinalTotals,
    pub processes: Vec<ProcessCost>,
    /// Every check, recent and old windows.
    pub checks: Vec<CheckMark>,
    /// The checks that found a difference or could not read a summary, in full.
    pub failed_checks: Vec<CheckRecord>,
    /// Stage changes that failed (all others were applied on time).
    pub stage_errors: Vec<StageRecord>,
    pub stages_applied: u64,
    pub pid_changes: Vec<PidChange>,
    pub samples: Vec<SoakSample>,
}

/// The stack's Redis process group (`up.sh`'s `redis.pid`). Its RSS is reported, not judged:
/// it includes the AOF rewrite child while one runs (its copy-on-write pages counted in
/// full) and the allocator's fragmentation; Redis is judged by its own accounting
/// (`used_memory`, without the summary's kept series) and its key count.
pub const REDIS_GROUP: &str = "redis";

/// What the verdict is drawn from.
pub struct VerdictInput<'a> {
    pub settings: &'a SoakSettings,
    pub samples: &'a [SoakSample],
    /// The groups from the stack's pid files: judged; the others are only reported.
    pub stack_groups: &'a [String],
    /// When the load ended, s since it started.
    pub load_end_s: f64,
    pub checks: &'a [CheckMark],
    pub totals: &'a FinalTotals,
    pub requests: &'a Outcomes,
    pub dropped: u64,
    /// Payments due over the load.
    pub scheduled: u64,
    /// Every change of a group's processes (see [`restarts`]).
    pub pid_changes: &'a [PidChange],
}

/// The restarts among `changes`: a stack process that went away during the run (the
/// supervisor restarted it, or it died). In Redis' group only the main process counts: its
/// AOF-rewrite child comes and goes by design. A restart fails the run; it also keeps a
/// falling RSS line (a fresh process) from passing for memory given back.
pub fn restarts(changes: &[PidChange], stack_groups: &[String]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| stack_groups.contains(&c.group) && !c.gone.is_empty())
        .filter(|c| c.group != REDIS_GROUP || c.main_gone)
        .map(|c| {
            format!(
                "{} restarted at {} s (pid {:?} gone)",
                c.group, c.t_s, c.gone
            )
        })
        .collect()
}

/// Judges a run (see the module docs): flatness over the steady window, consistency in
/// real time and once drained, and the client's view (no 5xx, no timeouts, the rate kept).
pub fn verdict(input: &VerdictInput<'_>) -> Verdict {
    let s = input.settings;
    let (from, to, steady) =
        steady_window(s.payment_retention_s, s.detail_horizon_s, input.load_end_s);
    let window = (from, to);
    let samples = input.samples;
    let mut series = Vec::new();

    // Processes: the stack's judged (but Redis': see REDIS_GROUP), the others reported.
    let mut names: Vec<&String> = samples.iter().flat_map(|x| x.procs.keys()).collect();
    names.sort();
    names.dedup();
    names.sort_by_key(|n| !input.stack_groups.contains(n));
    for name in names {
        let stack = input.stack_groups.contains(name);
        let rss = |x: &SoakSample| x.procs.get(name).map(|p| kib_to_mb(p.rss_kb));
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter_map(|x| rss(x).map(|v| (x.t_s, v)))
            .collect();
        let redis = name == REDIS_GROUP && samples.iter().any(|x| x.redis.is_some());
        series.push(flatness(
            &format!("{name} RSS"),
            "MB",
            &points,
            window,
            FLAT_FLOOR_MB_PER_HOUR,
            steady && stack && !redis,
        ));
    }
    // Redis' own accounting.
    let redis_series = |f: fn(&RedisSample) -> f64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter_map(|x| x.redis.as_ref().map(|r| (x.t_s, f(r))))
            .collect()
    };
    if samples.iter().any(|x| x.redis.is_some()) {
        let mb = FLAT_FLOOR_MB_PER_HOUR;
        for (name, unit, f, floor, judged) in [
            (
                "redis used_memory",
                "MB",
                (|r: &RedisSample| bytes_to_mb(r.used_memory)) as fn(&RedisSample) -> f64,
                mb,
                false,
            ),
            (
                "redis used_memory without the summary's kept series",
                "MB",
                |r| bytes_to_mb(r.used_memory.saturating_sub(r.summary_kept_bytes)),
                mb,
                true,
            ),
            (
                "summary's kept series (by design: grows with time)",
                "MB",
                |r| bytes_to_mb(r.summary_kept_bytes),
                mb,
                false,
            ),
            (
                "redis keys",
                "keys",
                |r| r.dbsize as f64,
                FLAT_FLOOR_KEYS_PER_HOUR,
                true,
            ),
        ] {
            series.push(flatness(
                name,
                unit,
                &redis_series(f),
                window,
                floor,
                steady && judged,
            ));
        }
    }

    let count = |old: bool, f: fn(&CheckMark) -> bool| {
        input.checks.iter().filter(|c| c.old == old && f(c)).count() as u64
    };
    let inconsistencies = count(false, |c| c.consistent == Some(false));
    let old_window_inconsistencies = count(true, |c| c.consistent == Some(false));
    let check_errors = input
        .checks
        .iter()
        .filter(|c| c.consistent.is_none())
        .count() as u64;
    let server_errors: u64 = input
        .requests
        .rejected
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();

    let mut reasons = restarts(input.pid_changes, input.stack_groups);
    for f in series.iter().filter(|f| f.flat == Some(false)) {
        reasons.push(format!(
            "{} grows {} {}/min over the steady window",
            f.series, f.slope_per_min, f.unit
        ));
    }
    let t = input.totals;
    let unanswered = input.requests.timeouts + input.requests.errors;
    for (failed, why) in [
        (
            inconsistencies > 0,
            format!("{inconsistencies} inconsistencies (recent windows)"),
        ),
        (
            old_window_inconsistencies > 0,
            format!("{old_window_inconsistencies} inconsistencies (old windows, compacted detail)"),
        ),
        (
            check_errors > 0,
            format!("{check_errors} checks could not read a summary"),
        ),
        (server_errors > 0, format!("{server_errors} 5xx answers")),
        (
            unanswered > 0,
            format!("{unanswered} POSTs timed out or failed"),
        ),
        (
            input.dropped * 100 > input.scheduled,
            format!(
                "the load generator dropped {} of {} payments: the rate was not kept",
                input.dropped, input.scheduled
            ),
        ),
        (
            !t.drained,
            format!("backlog not drained within {} s", s.drain_timeout_s),
        ),
        (
            !t.consistent,
            "the backend's totals differ from what the processors stored".to_owned(),
        ),
        (
            !t.all_processed_once,
            "the processors did not store every accepted payment exactly once".to_owned(),
        ),
        (
            t.dead_letters.is_some_and(|n| n > 0),
            format!("{} dead letters", t.dead_letters.unwrap_or(0)),
        ),
    ] {
        if failed {
            reasons.push(why);
        }
    }
    let passed = if !reasons.is_empty() {
        Some(false)
    } else if steady {
        Some(true)
    } else {
        None
    };
    if !steady {
        reasons.push(format!(
            "memory not judged: the load ended at {} s, before both retention horizons + {SETTLE} s had passed; slopes are over its last half",
            input.load_end_s
        ));
    }
    Verdict {
        window_from_s: round3(from),
        window_to_s: round3(to),
        steady,
        series,
        inconsistencies,
        old_window_inconsistencies,
        check_errors,
        server_errors,
        lag_at_end: t.lag_at_end,
        passed,
        reasons,
    }
}

/// A least-squares line through `points`: `(slope, intercept)`; `None` with fewer than two
/// distinct x values.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((slope, mean_y - slope * mean_x))
}

/// The series `(t_s, value)` inside `[from_s, to_s]`, summarised; `floor_per_hour` is the
/// absolute growth per hour still counted as flat, `judge` whether to decide at all.
pub fn flatness(
    series: &str,
    unit: &str,
    points: &[(f64, f64)],
    (from_s, to_s): (f64, f64),
    floor_per_hour: f64,
    judge: bool,
) -> Flatness {
    let inside: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= from_s && *t <= to_s)
        .collect();
    let values = || inside.iter().map(|p| p.1);
    let n = inside.len();
    let (mean, min, max) = if n == 0 {
        (0.0, 0.0, 0.0)
    } else {
        (
            values().sum::<f64>() / n as f64,
            values().fold(f64::INFINITY, f64::min),
            values().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let slope_per_min = fit(&inside).map_or(0.0, |(slope, _)| slope * 60.0);
    // Growth is what the verdict is for (a leak, state kept for good); a line that falls
    // is memory given back.
    let limit_per_hour = (FLAT_PER_HOUR * mean.abs()).max(floor_per_hour);
    let per_hour = slope_per_min * 60.0;
    let judged = judge && n >= 2;
    let flat = judged.then_some(per_hour <= limit_per_hour);
    let falls = judged && per_hour < -limit_per_hour;
    Flatness {
        series: series.to_owned(),
        unit: unit.to_owned(),
        samples: n,
        from_s,
        to_s,
        mean: round3(mean),
        min: round3(min),
        max: round3(max),
        slope_per_min: round3(slope_per_min),
        flat,
        falls,
    }
}

/// The window flatness is computed over, and whether it is the steady state: from both
/// retention horizons plus [`SETTLE`] to the end of the load, or (when the load ended
/// before that, or the horizons are unknown) its last half, not judged.
pub fn steady_window(
    payment_retention_s: Option<f64>,
    detail_horizon_s: Option<f64>,
    load_end_s: f64,
) -> (f64, f64, bool) {
    let kicked_in = match (payment_retention_s, detail_horizon_s) {
        (Some(r), Some(h)) => Some(r.max(h) + SETTLE),
        _ => None,
    };
    match kicked_in {
        // At least a tenth of the run, or a few samples are not a line.
        Some(from) if from < load_end_s * 0.9 => (from, load_end_s, true),
        _ => (load_end_s / 2.0, load_end_s, false),
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// MB from KiB or bytes.
pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn bytes_to_mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fits_a_line() {
        let (slope, intercept) = fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
        // Noise around a flat line: the slope is the least-squares one.
        let (slope, _) = fit(&[(0.0, 1.0), (1.0, -1.0), (2.0, 1.0), (3.0, -1.0)]).unwrap();
        assert!((slope + 0.4).abs() < 1e-12, "{slope}");
        assert_eq!(fit(&[(1.0, 1.0)]), None);
        assert_eq!(fit(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn flat_is_relative_to_the_mean_with_a_floor() {
        // 500 MB growing 0.2 MB/min = 12 MB/h: under 5 % (25 MB) an hour.
        let slow: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64 * 10.0, 500.0 + i as f64 * 10.0 / 60.0 * 0.2))
            .collect();
        let f = flatness(
            "redis",
            "MB",
            &slow,
            (0.0, 1e9),
            FLAT_FLOOR_MB_PER_HOUR,
            true,
        );
        assert_eq!(f.flat, Some(true));
        assert!((f.slope_per_min - 0.2).abs() < 1e-3, "{f:?}");
        assert_eq!(f.samples, 100);
        // 0.5 MB/min = 30 MB/h: over.
        let fast: Vec<(f64, f64)> = slow
            .iter()
            .map(|(t, _)| (*t, 500.0 + t / 60.0 * 0.5))
            .collect();
        let f = flatness(
            "redis",
            "MB",
            &fast,
            (0.0, 1e9),
            FLAT_FLOOR_MB_PER_HOUR,
            true,
        );
        assert_eq!(f.flat, Some(false));
        // A 5 MB process growing 1 MB/h: within the floor.
        let small: Vec<(f64, f64)> = (0..60)
            .map(|i| (i as f64 * 60.0, 5.0 + i as f64 / 60.0))
            .collect();
        let f = flatness(
            "gateway",
            "MB",
            &small,
            (0.0, 1e9),
            FLAT_FLOOR_MB_PER_HOUR,
            true,
        );
        assert_eq!(f.flat, Some(true));
        assert_eq!((f.min, f.max), (5.0, 5.983));
        // Falling as fast passes: it is marked, not failed.
        let falling: Vec<(f64, f64)> = slow
            .iter()
            .map(|(t, _)| (*t, 500.0 - t / 60.0 * 0.5))
            .collect();
        let f = flatness(
            "redis",
            "MB",
            &falling,
            (0.0, 1e9),
            FLAT_FLOOR_MB_PER_HOUR,
            true,
        );
        assert_eq!((f.flat, f.falls), (Some(true), true));
        assert!((f.slope_per_min + 0.5).abs() < 1e-3, "{f:?}");
        // Only the window counts; unjudged series say so.
        let f = flatness("gateway", "MB", &small, (600.0, 1200.0), 0.0, false);
        assert_eq!((f.samples, f.flat), (11, None));
        let f = flatness("x", "MB", &[], (0.0, 1.0), 0.0, true);
        assert_eq!((f.samples, f.flat, f.mean), (0, None, 0.0));
    }

    #[test]
    fn a_stack_process_that_went_away_fails_the_run_but_redis_children_do_not() {
        let change = |group: &str, gone: Vec<u32>, new: Vec<u32>| PidChange {
            t_s: 1200.0,
            group: group.to_owned(),
            main_gone: gone.contains(&1),
            gone,
            new,
        };
        let stack: Vec<String> = ["redis", "worker-1", "nginx"].map(String::from).to_vec();
        let changes = [
            // The AOF-rewrite child, and a process outside the stack.
            change("redis", vec![], vec![7]),
            change("redis", vec![7], vec![]),
            change("simulators", vec![3], vec![4]),
            // A worker the supervisor restarted; nginx gaining a process is no restart.
            change("worker-1", vec![11], vec![12]),
            change("nginx", vec![], vec![21]),
        ];
        assert_eq!(
            restarts(&changes, &stack),
            vec!["worker-1 restarted at 1200 s (pid [11] gone)".to_owned()]
        );
        assert!(restarts(&changes[..3], &stack).is_empty());
        // Redis' main process (pid 1 here) going away is a restart like any other.
        let redis_main = [change("redis", vec![1, 7], vec![8])];
        assert_eq!(
            restarts(&redis_main, &stack),
            vec!["redis restarted at 1200 s (pid [1, 7] gone)".to_owned()]
        );
    }

    #[test]
    fn the_steady_window_starts_after_both_horizons() {
        // 15 min retention, 1 min horizon, 30 min load: from 16 min on.
        assert_eq!(
            steady_window(Some(900.0), Some(60.0), 1800.0),
            (960.0, 1800.0, true)
        );
        // A short run: its last half, not steady.
        assert_eq!(
            steady_window(Some(900.0), Some(60.0), 240.0),
            (120.0, 240.0, false)
        );
        assert_eq!(
            steady_window(None, Some(60.0), 1800.0),
            (900.0, 1800.0, false)
        );
    }

    #[test]
    fn interval_load_splits_server_errors_from_other_rejections() {
        let mut o = Outcomes::default();
        for s in [202, 202, 503, 502, 429, 409] {
            o.add(super::super::stats::Outcome::Status(s));
        }
        o.add(super::super::stats::Outcome::Timeout);
        let l = IntervalLoad::new(&o, 3, &Percentiles::default());
        assert_eq!(
            (
                l.requests,
                l.accepted,
                l.server_errors,
                l.rejected,
                l.timeouts,
                l.dropped
            ),
            (7, 2, 2, 2, 1, 3)
        );
    }
}
