//! What a throughput run ([`throughput`](super::throughput)'s [`ThroughputReport`])
//! measured: plain data, written as JSON, printed by [`report`](super::report) and drawn by
//! [`plot`](super::plot). A leaf: it names no scenario.

use std::collections::BTreeMap;

use serde::Serialize;

use super::procstat::{GroupSample, LoadAverages};
use super::stats::{Outcomes, Percentiles};

/// One step's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    pub index: usize,
    /// The arrival rate asked for, requests per second (0: a closed-loop step).
    pub target_rate: u64,
    /// Requests due in the step (`rate * step`; a closed-loop step: the requests sent).
    pub scheduled: u64,
    /// Seconds since the benchmark started.
    pub started_s: f64,
    /// How long the step took until its last answer.
    pub elapsed_s: f64,
    /// Requests sent and what became of them.
    pub outcomes: Outcomes,
    /// Requests that could not start within `max_lag` of their due time.
    pub dropped: u64,
    /// 2xx answers per second of the step (its nominal length, or longer if the last
    /// answers came later).
    pub accepted_per_sec: f64,
    /// Latency from the due time (see the module docs); decides pass/fail.
    pub latency: Percentiles,
    /// Latency from the actual send.
    pub service: Percentiles,
    /// How late requests started; large values mean the client could not keep up.
    pub start_lag: Percentiles,
    /// Cores used by each watched process group during the step.
    pub cpu_cores: BTreeMap<String, f64>,
    pub passed: bool,
    /// Why the step failed (and the stepping stopped).
    pub stop_reason: Option<String>,
}

/// One reading of the sampler.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the benchmark started.
    pub t_s: f64,
    /// Payments the backend reports processed (both processors), when it answered.
    pub processed: Option<u64>,
    /// Payments accepted (2xx) by then.
    pub accepted: u64,
    /// `accepted - processed`.
    pub backlog: Option<i64>,
    /// Processed payments per second since the previous reading that had a count.
    pub processed_per_sec: Option<f64>,
    /// Watched processes, by group name.
    pub procs: BTreeMap<String, GroupSample>,
}

/// End-to-end processing over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Processed {
    /// Accepted by the gateway over the run.
    pub accepted: u64,
    /// Processed by the end of the drain.
    pub processed: Option<u64>,
    /// Still queued at the end.
    pub backlog_end: Option<i64>,
    /// Processed payments per second between the first and the last change of the count.
    pub avg_per_sec: Option<f64>,
    /// Highest processed/s over one sampling period.
    pub peak_per_sec: Option<f64>,
    /// Payments both processors hold after the drain (when the run was given their URLs):
    /// equal to `accepted` and `processed` when every payment was processed exactly once.
    pub stored_by_processors: Option<u64>,
}

/// One watched process group over the whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessSummary {
    pub name: String,
    pub pids: Vec<u32>,
    /// CPU seconds used between the first and the last sample.
    pub cpu_seconds: f64,
    /// Average cores used over that time.
    pub avg_cores: f64,
    /// Resident memory at the last sample, KiB.
    pub rss_last_kb: u64,
    /// Highest resident memory seen by a sample, KiB.
    pub rss_max_sampled_kb: u64,
    /// The kernel's high-water mark (`VmHWM`, summed over the group) at the last sample.
    pub rss_peak_kb: u64,
    /// CPU microseconds per accepted payment over the run (`None` without payments).
    pub cpu_us_per_payment: Option<f64>,
}

/// The settings a report was produced with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThroughputSettings {
    pub backend_url: String,
    pub rates: Vec<u64>,
    pub step_s: f64,
    pub p99_limit_ms: f64,
    pub connections: usize,
    pub timeout_ms: u64,
    pub max_lag_ms: u64,
    pub drain_s: f64,
    pub sample_every_ms: u64,
}

/// Everything a benchmark measured: written as `<out>/<name>.json` by the binary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThroughputReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    /// How busy the machine was (the load generator and the stack included).
    pub load_average: LoadAverages,
    pub settings: ThroughputSettings,
    pub steps: Vec<StepReport>,
    /// The highest target rate whose step passed.
    pub max_passing_rate: Option<u64>,
    pub processed: Processed,
    pub processes: Vec<ProcessSummary>,
    pub samples: Vec<Sample>,
}
