//! What a reference run ([`rinha`](super::rinha)'s [`RinhaReport`]) measured: plain data,
//! written as JSON, printed by [`report`](super::report) and drawn by [`plot`](super::plot).
//! A leaf: it names no scenario.

use serde::Serialize;

use super::checker::CheckRecord;
use super::control::{BackendSummary, Conditions, ProcessorSummary};
use super::procstat::{CpuPerPayment, LoadAverages};
use super::redis_info::CommandCost;
use super::score::Score;
use super::stats::{Outcomes, Percentiles};

/// One second of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the load started (requests started in `[second, second + 1)`).
    pub second: u64,
    pub requests: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Payments the backend reported processed (both processors, all time) at the end of
    /// this second; `None` when that reading failed or was not taken.
    pub processed: Option<u64>,
    /// Payments accepted (2xx answers received) by then minus `processed`: what is still
    /// queued.
    pub backlog: Option<i64>,
}

/// A stage change as it was applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageRecord {
    pub index: usize,
    /// When it was due, seconds since the load started.
    pub planned_s: f64,
    /// When the processors had accepted it (negative: before the load started).
    pub applied_s: f64,
    pub label: String,
    pub default: Conditions,
    pub fallback: Conditions,
    pub error: Option<String>,
}

/// The settings a report was produced with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RinhaSettings {
    pub backend_url: String,
    pub default_url: String,
    pub fallback_url: String,
    pub max_requests: u32,
    pub duration_s: f64,
    pub stage_s: f64,
    pub timeout_ms: u64,
    pub settle_s: f64,
    /// The checker's window: `[now - check_from_offset_ms, now - check_to_offset_ms]`.
    pub check_from_offset_ms: u64,
    pub check_to_offset_ms: u64,
}

/// The final summaries the score was computed from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinalSummary {
    pub from: String,
    pub to: String,
    pub backend: BackendSummary,
    pub default: ProcessorSummary,
    pub fallback: ProcessorSummary,
}

/// Everything a run measured: written as `<out>/<name>.json` by the binary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RinhaReport {
    pub name: String,
    pub started_at: String,
    pub finished_at: String,
    /// How busy the machine was (the load generator and the stack included).
    pub load_average: LoadAverages,
    pub settings: RinhaSettings,
    /// `POST /payments` outcomes as the client saw them.
    pub requests: Outcomes,
    /// All requests to the backend (payments and checker summaries); its p99 gives the bonus.
    pub latency: Percentiles,
    /// `POST /payments` only.
    pub payment_latency: Percentiles,
    pub summary: FinalSummary,
    /// Checks that found a difference in request counts.
    pub inconsistencies: u64,
    /// Checks that could not read a summary (not counted as inconsistencies).
    pub check_errors: u64,
    pub score: Score,
    pub stages: Vec<StageRecord>,
    pub checks: Vec<CheckRecord>,
    pub timeline: Vec<TimelinePoint>,
    /// CPU of each watched process group from the start of the run to the final
    /// summaries, per accepted payment.
    pub processes: Vec<CpuPerPayment>,
    /// The stack's Redis over the same span, per accepted payment (`--redis-url`).
    pub redis_commands: Vec<CommandCost>,
}
