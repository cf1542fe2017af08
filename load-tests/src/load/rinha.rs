//! The reference load test (docs/protocol.md §5): `paystream-load rinha`.
//!
//! One run, in order:
//! 1. purge the backend and both processors ([`control`](super::control)), set stage 0;
//! 2. ramp virtual users linearly from 1 to `max_requests` over the duration; each posts a
//!    fresh payment of 19.90 and sleeps 1 s, in a loop ([`vu`]);
//! 3. meanwhile change the processors' conditions at every stage boundary ([`STAGES`]), run
//!    the [`checker`](super::checker) every stage length, and read the backend's all-time
//!    totals once a second for the backlog over time (`backlog_sampler`; not contest
//!    traffic, so not in the latency or request counts);
//! 4. let in-flight work settle, read the final summaries over the last duration + 10 s,
//!    and [`score`](super::score) them into a
//!    [`RinhaReport`](super::rinha_report::RinhaReport), returned (the binary writes it).
//!
//! The stage length is a parameter so tests can run the whole schedule in seconds.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::checker::{self, CheckWindow};
use super::control::{iso_ms, BackendSummary, Conditions, Control, Endpoints, ProcessorSummary};
use super::procstat::{CpuPerPayment, GroupSample, LoadAverages, ProcGroup};
use super::redis_info::command_costs;
use super::rinha_report::{FinalSummary, RinhaReport, RinhaSettings, StageRecord, TimelinePoint};
use super::score::{self, ScoreInput};
use super::stats::{round3, signed, whole_ms, Latency, Outcome, Outcomes, Percentiles};

/// The amount every payment carries, as the JSON literal the contest sends.
pub const PAYMENT_AMOUNT: &str = "19.90";
/// How far back, beyond the run's duration, the final summary looks (the contest: 60 + 10 s).
pub const FINAL_WINDOW_EXTRA: Duration = Duration::from_secs(10);
/// How long each VU sleeps after each payment.
pub const THINK_TIME: Duration = Duration::from_secs(1);

/// What a run does and where.
#[derive(Clone, Debug)]
pub struct RinhaConfig {
    /// The backend and the processors.
    pub endpoints: Endpoints,
    /// Peak number of virtual users (the contest's `MAX_REQUESTS`).
    pub max_requests: u32,
    /// How long the VUs ramp and post.
    pub duration: Duration,
    /// Length of each of the six stages and the checker's period.
    pub stage: Duration,
    /// Client timeout of each `POST /payments`.
    pub timeout: Duration,
    /// Pause after the last VU stopped, before the final summaries are read.
    pub settle: Duration,
    /// The run's name (the binary names its files after it).
    pub name: String,
    /// Process groups whose CPU per payment is reported (`--pid NAME=PID,...`).
    pub pids: Vec<ProcGroup>,
    /// The stack's Redis: its statistics are reset at the start and each command's calls
    /// and µs per payment reported at the end (`None`: not read).
    pub redis_url: Option<String>,
}

impl Default for RinhaConfig {
    /// The contest's settings against the local stack (`scripts/up.sh`, docs/protocol.md §6).
    fn default() -> Self {
        RinhaConfig {
            endpoints: Endpoints::default(),
            max_requests: 550,
            duration: Duration::from_secs(60),
            stage: Duration::from_secs(10),
            timeout: Duration::from_millis(1500),
            settle: Duration::from_secs(2),
            name: "rinha".into(),
            pids: Vec::new(),
            redis_url: None,
        }
    }
}

/// The processors' conditions during one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub default: Conditions,
    pub fallback: Conditions,
}

const fn cond(delay_ms: u64, failing: bool) -> Conditions {
    Conditions { delay_ms, failing }
}

/// The six stages of docs/protocol.md §5, one per stage length.
pub const STAGES: [Stage; 6] = [
    Stage {
        default: cond(0, false),
        fallback: cond(0, false),
    },
    Stage {
        default: cond(100, false),
        fallback: cond(0, false),
    },
    Stage {
        default: cond(100, true),
        fallback: cond(0, false),
    },
    Stage {
        default: cond(2000, true),
        fallback: cond(1000, true),
    },
    Stage {
        default: cond(20, false),
        fallback: cond(20, false),
    },
    Stage {
        default: cond(0, false),
        fallback: cond(5000, false),
    },
];

impl Stage {
    /// A short label for tables and plots: `D 100ms fail / F 0ms ok`.
    pub fn label(&self) -> String {
        let c =
            |c: Conditions| format!("{}ms {}", c.delay_ms, if c.failing { "fail" } else { "ok" });
        format!("D {} / F {}", c(self.default), c(self.fallback))
    }
}

/// When each stage begins (offset from the start of the load) for a run of `duration` with
/// stages of `stage`: stage `i` at `i * stage`, as long as that is before the end. A run
/// longer than six stages stays in the last one.
pub fn stage_schedule(duration: Duration, stage: Duration) -> Vec<(Duration, usize)> {
    (0..STAGES.len())
        .map(|i| (stage * i as u32, i))
        .filter(|(at, i)| *i == 0 || *at < duration)
        .collect()
}

/// When VU `k` (1-based) starts: the VU count ramps linearly from 1 at time 0 to `max` at
/// `duration`, so VU k joins when the target reaches k, at `(k - 1) / (max - 1) * duration`.
pub fn vu_start(k: u32, max: u32, duration: Duration) -> Duration {
    if max <= 1 || k <= 1 {
        return Duration::ZERO;
    }
    duration.mul_f64(f64::from(k.min(max) - 1) / f64::from(max - 1))
}

/// The body of one payment: a fresh UUID v4 and the number literal 19.90.
pub fn payment_body(id: uuid::Uuid) -> Bytes {
    Bytes::from(format!(
        r#"{{"correlationId":"{}","amount":{PAYMENT_AMOUNT}}}"#,
        id.hyphenated()
    ))
}

/// What the VUs and the checker measured, shared while the run goes.
#[derive(Default)]
struct RunStats {
    /// `POST /payments` outcomes.
    outcomes: Outcomes,
    /// Every request to the backend (payments and the checker's summaries): the score's p99.
    all: Latency,
    /// `POST /payments` only.
    payments: Latency,
    /// Per second of the run (by request start).
    timeline: Vec<Bucket>,
}

struct Bucket {
    outcomes: Outcomes,
    latency: Latency,
}

impl RunStats {
    fn record_payment(&mut self, second: usize, latency: Duration, outcome: Outcome) {
        self.outcomes.add(outcome);
        self.all.record(latency);
        self.payments.record(latency);
        while self.timeline.len() <= second {
            self.timeline.push(Bucket {
                outcomes: Outcomes::default(),
                latency: Latency::with_sigfig(2),
            });
        }
        let bucket = &mut self.timeline[second];
        bucket.outcomes.add(outcome);
        bucket.latency.record(latency);
    }
}

type Shared = Arc<Mutex<RunStats>>;

/// One reading of the backend's all-time totals by [`backlog_sampler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BacklogReading {
    /// The timeline second it closes: taken at `t0 + second + 1 s`.
    second: usize,
    /// 2xx answers received before the summary was asked for.
    accepted: u64,
    processed: u64,
}

/// How long one backlog reading may take before it is skipped.
const BACKLOG_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads the backend's all-time totals at `t0 + 1 s`, `t0 + 2 s`, ... until `stop` turns
/// true (a reading that comes late skips the seconds it missed).
///
/// These `GET /payments-summary` calls are an instrument of ours, not part of the contest's
/// traffic (its script only posts payments and runs the checker): they go into neither the
/// latency histograms (the score's p99) nor the request counts.
async fn backlog_sampler(
    control: Control,
    t0: Instant,
    stats: Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<BacklogReading> {
    let mut readings = Vec::new();
    let mut k: u64 = 1;
    loop {
        tokio::select! {
            _ = sleep_until(t0 + Duration::from_secs(k)) => {}
            _ = stop.changed() => return readings,
        }
        // Read before asking: a payment accepted while the summary is on its way must not
        // count as queued when it may already be in the processed figure.
        let accepted = lock(&stats).outcomes.accepted;
        match tokio::time::timeout(BACKLOG_READ_TIMEOUT, control.backend_summary(None, None)).await
        {
            Ok(Ok(s)) => readings.push(BacklogReading {
                second: usize::try_from(k - 1).unwrap_or(usize::MAX),
                accepted,
                processed: s.processed(),
            }),
            Ok(Err(e)) => tracing::debug!(error = %e, "backlog reading failed"),
            Err(_) => tracing::debug!("backlog reading timed out"),
        }
        k = (k + 1).max(t0.elapsed().as_secs() + 1);
    }
}

/// The per-second timeline: the load's buckets, with the backlog readings beside them, as
/// long as the longer of the two (readings go on through the settle time, after the load).
fn timeline(buckets: &[Bucket], readings: &[BacklogReading]) -> Vec<TimelinePoint> {
    let len = readings
        .iter()
        .map(|r| r.second + 1)
        .max()
        .unwrap_or(0)
        .max(buckets.len());
    (0..len)
        .map(|second| {
            let reading = readings.iter().find(|r| r.second == second);
            let (outcomes, p) = match buckets.get(second) {
                Some(b) => (b.outcomes.clone(), b.latency.percentiles()),
                None => (Outcomes::default(), Percentiles::default()),
            };
            TimelinePoint {
                second: second as u64,
                requests: outcomes.requests,
                accepted: outcomes.accepted,
                rejected: outcomes.rejected_total(),
                timeouts: outcomes.timeouts,
                errors: outcomes.errors,
                p50_ms: p.p50_ms,
                p99_ms: p.p99_ms,
                max_ms: p.max_ms,
                processed: reading.map(|r| r.processed),
                backlog: reading.map(|r| signed(r.accepted) - signed(r.processed)),
            }
        })
        .collect()
}

fn lock(stats: &Shared) -> std::sync::MutexGuard<'_, RunStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

fn secs_since(t0: Instant, t: Instant) -> f64 {
    round3(t.saturating_duration_since(t0).as_secs_f64())
}

/// Sets both processors to stage `index`'s conditions; the errors joined when any failed.
pub(super) async fn apply_stage(control: &Control, index: usize) -> Result<(), String> {
    let stage = STAGES[index];
    let errors: Vec<String> = control
        .set_both(stage.default, stage.fallback)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// How stage `index`, due at `planned_s`, was applied at `applied_s`.
pub(super) fn stage_record(
    index: usize,
    planned_s: f64,
    applied_s: f64,
    error: Option<String>,
) -> StageRecord {
    let stage = STAGES[index];
    StageRecord {
        index,
        planned_s,
        applied_s,
        label: stage.label(),
        default: stage.default,
        fallback: stage.fallback,
        error,
    }
}

/// One virtual user: post, sleep 1 s, until the end of the run.
async fn vu(client: reqwest::Client, url: Arc<str>, t0: Instant, end: Instant, stats: Shared) {
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let request = client
            .post(&*url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payment_body(uuid::Uuid::new_v4()));
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(_) => Outcome::Status(status),
                    Err(e) if e.is_timeout() => Outcome::Timeout,
                    Err(_) => Outcome::Error,
                }
            }
            Err(e) if e.is_timeout() => Outcome::Timeout,
            Err(e) => {
                tracing::debug!(error = %e, "payment request failed");
                Outcome::Error
            }
        };
        let latency = started.elapsed();
        let second =
            usize::try_from(started.saturating_duration_since(t0).as_secs()).unwrap_or(usize::MAX);
        lock(&stats).record_payment(second, latency, outcome);
        sleep_until((Instant::now() + THINK_TIME).min(end)).await;
    }
}

/// Runs the reference test once and returns its report. Errors only when the run cannot be scored at all: a purge or the
/// first stage failed, or the final summaries could not be read.
pub async fn run_rinha(cfg: RinhaConfig) -> anyhow::Result<RinhaReport> {
    anyhow::ensure!(cfg.max_requests >= 1, "max_requests must be at least 1");
    anyhow::ensure!(!cfg.duration.is_zero(), "duration must be positive");
    anyhow::ensure!(!cfg.stage.is_zero(), "stage length must be positive");

    let control = cfg.endpoints.control(Duration::from_secs(5))?;
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::try_from(cfg.max_requests).unwrap_or(usize::MAX))
        .build()?;
    let payments_url: Arc<str> = format!("{}/payments", control.backend()).into();
    let window = CheckWindow::for_stage(cfg.stage);

    // 1. A clean slate, and stage 0.
    control.purge_all().await?;
    let before_stage0 = Instant::now();
    apply_stage(&control, 0)
        .await
        .map_err(|e| anyhow::anyhow!("setting stage 0: {e}"))?;

    let redis = match &cfg.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).context("--redis-url")?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let _: () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async(&mut conn)
                .await?;
            Some(conn)
        }
        None => None,
    };
    let cpu_before: Vec<GroupSample> = cfg.pids.iter().map(ProcGroup::sample).collect();
    let started_at = OffsetDateTime::now_utc();
    let load_average = LoadAverages::started();
    let t0 = Instant::now();
    let end = t0 + cfg.duration;
    let stats: Shared = Arc::default();
    tracing::info!(
        backend = %cfg.endpoints.backend_url,
        max_requests = cfg.max_requests,
        duration_s = cfg.duration.as_secs_f64(),
        stage_s = cfg.stage.as_secs_f64(),
        "reference run started"
    );

    // 3. Stage changes and checks run beside the load.
    let stage_task = {
        let control = control.clone();
        let schedule = stage_schedule(cfg.duration, cfg.stage);
        let first = stage_record(0, 0.0, -secs_since(before_stage0, t0), None);
        tokio::spawn(async move {
            let mut records = vec![first];
            for (at, index) in schedule.into_iter().skip(1) {
                sleep_until(t0 + at).await;
                let result = apply_stage(&control, index).await;
                if let Err(e) = &result {
                    tracing::warn!(stage = index, error = %e, "stage change failed");
                }
                records.push(stage_record(
                    index,
                    at.as_secs_f64(),
                    secs_since(t0, Instant::now()),
                    result.err(),
                ));
            }
            records
        })
    };
    let checker_task = {
        let control = control.clone();
        let stats = stats.clone();
        let (stage, duration) = (cfg.stage, cfg.duration);
        tokio::spawn(async move {
            let mut records = Vec::new();
            let mut k = 1u32;
            while stage * k <= duration {
                sleep_until(t0 + stage * k).await;
                let at_s = secs_since(t0, Instant::now());
                let (record, latency) = checker::check(&control, window, at_s).await;
                lock(&stats).all.record(latency);
                if record.is_inconsistent() {
                    tracing::warn!(at_s, ?record.default_diff, ?record.fallback_diff, "inconsistency");
                }
                records.push(record);
                k += 1;
            }
            records
        })
    };

    let (stop_backlog, stop_rx) = tokio::sync::watch::channel(false);
    let backlog_task = tokio::spawn(backlog_sampler(control.clone(), t0, stats.clone(), stop_rx));

    // 2. The ramp.
    let mut vus = JoinSet::new();
    for k in 1..=cfg.max_requests {
        let start = t0 + vu_start(k, cfg.max_requests, cfg.duration);
        if start >= end {
            break;
        }
        sleep_until(start).await;
        vus.spawn(vu(
            client.clone(),
            payments_url.clone(),
            t0,
            end,
            stats.clone(),
        ));
    }
    while let Some(joined) = vus.join_next().await {
        joined.context("a virtual user panicked")?;
    }
    let stages = stage_task.await.context("the stage task panicked")?;
    let checks = checker_task.await.context("the checker task panicked")?;

    // 4. Settle, then the final summaries.
    tokio::time::sleep(cfg.settle).await;
    let _ = stop_backlog.send(true);
    let readings = backlog_task.await.context("the backlog sampler panicked")?;
    let to = OffsetDateTime::now_utc();
    let from = to - (cfg.duration + FINAL_WINDOW_EXTRA);
    let (backend, default, fallback) = final_summaries(&control, from, to).await?;
    let finished_at = OffsetDateTime::now_utc();
    let cpu_after: Vec<GroupSample> = cfg.pids.iter().map(ProcGroup::sample).collect();
    let commandstats = match redis {
        Some(mut conn) => Some(
            redis::cmd("INFO")
                .arg("commandstats")
                .query_async::<String>(&mut conn)
                .await?,
        ),
        None => None,
    };

    let stats = std::mem::take(&mut *lock(&stats));
    let processes = cfg
        .pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|(g, (b, a))| CpuPerPayment::between(g, b, a, stats.outcomes.accepted))
        .collect();
    let redis_commands = commandstats
        .map(|text| command_costs(&text, stats.outcomes.accepted))
        .unwrap_or_default();
    let inconsistencies = checks.iter().filter(|c| c.is_inconsistent()).count() as u64;
    let check_errors = checks.iter().filter(|c| c.consistent.is_none()).count() as u64;
    let score = score::compute(&ScoreInput {
        backend,
        default,
        fallback,
        accepted: stats.outcomes.accepted,
        p99_us: stats.all.p99_us(),
        inconsistencies,
    });
    let timeline = timeline(&stats.timeline, &readings);

    Ok(RinhaReport {
        name: cfg.name.clone(),
        started_at: iso_ms(started_at),
        finished_at: iso_ms(finished_at),
        load_average: load_average.ended(),
        settings: RinhaSettings {
            backend_url: cfg.endpoints.backend_url.clone(),
            default_url: cfg.endpoints.default_url.clone(),
            fallback_url: cfg.endpoints.fallback_url.clone(),
            max_requests: cfg.max_requests,
            duration_s: cfg.duration.as_secs_f64(),
            stage_s: cfg.stage.as_secs_f64(),
            timeout_ms: whole_ms(cfg.timeout),
            settle_s: cfg.settle.as_secs_f64(),
            check_from_offset_ms: whole_ms(window.from_offset),
            check_to_offset_ms: whole_ms(window.to_offset),
        },
        requests: stats.outcomes.clone(),
        latency: stats.all.percentiles(),
        payment_latency: stats.payments.percentiles(),
        summary: FinalSummary {
            from: iso_ms(from),
            to: iso_ms(to),
            backend,
            default,
            fallback,
        },
        inconsistencies,
        check_errors,
        score,
        stages,
        checks,
        timeline,
        processes,
        redis_commands,
    })
}

/// The final summaries, retried a few times: without them there is no score.
async fn final_summaries(
    control: &Control,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> anyhow::Result<(BackendSummary, ProcessorSummary, ProcessorSummary)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match control.final_summaries(Some(from), Some(to)).await {
            Ok(summaries) => return Ok(summaries),
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schedule_of_the_full_run() {
        let s = stage_schedule(Duration::from_secs(60), Duration::from_secs(10));
        let at: Vec<u64> = s.iter().map(|(d, _)| d.as_secs()).collect();
        assert_eq!(at, vec![0, 10, 20, 30, 40, 50]);
        assert_eq!(
            s.iter().map(|(_, i)| *i).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn schedule_compresses_and_truncates() {
        let s = stage_schedule(Duration::from_secs(6), Duration::from_secs(1));
        assert_eq!(s.len(), 6);
        assert_eq!(s[5], (Duration::from_secs(5), 5));
        // A run shorter than six stages stops changing conditions at its end...
        let s = stage_schedule(Duration::from_secs(25), Duration::from_secs(10));
        assert_eq!(s.iter().map(|(_, i)| *i).collect::<Vec<_>>(), vec![0, 1, 2]);
        // ...and a longer one stays in the last stage.
        assert_eq!(
            stage_schedule(Duration::from_secs(600), Duration::from_secs(10)).len(),
            6
        );
    }

    #[test]
    fn stages_are_the_specified_ones() {
        let c = |d, f| Conditions {
            delay_ms: d,
            failing: f,
        };
        assert_eq!(
            STAGES[0],
            Stage {
                default: c(0, false),
                fallback: c(0, false)
            }
        );
        assert_eq!(STAGES[1].default, c(100, false));
        assert_eq!(STAGES[2].default, c(100, true));
        assert_eq!(
            STAGES[3],
            Stage {
                default: c(2000, true),
                fallback: c(1000, true)
            }
        );
        assert_eq!(
            STAGES[4],
            Stage {
                default: c(20, false),
                fallback: c(20, false)
            }
        );
        assert_eq!(
            STAGES[5],
            Stage {
                default: c(0, false),
                fallback: c(5000, false)
            }
        );
        // The fallback keeps its previous condition unless the stage changes it.
        assert_eq!(STAGES[1].fallback, STAGES[0].fallback);
        assert_eq!(STAGES[2].fallback, STAGES[0].fallback);
        assert_eq!(STAGES[3].label(), "D 2000ms fail / F 1000ms fail");
    }

    #[test]
    fn vus_ramp_linearly() {
        let d = Duration::from_secs(60);
        assert_eq!(vu_start(1, 550, d), Duration::ZERO);
        assert_eq!(vu_start(550, 550, d), d);
        let mid = vu_start(275, 550, d).as_secs_f64();
        assert!((mid - 29.945).abs() < 0.01, "{mid}");
        assert_eq!(vu_start(1, 1, d), Duration::ZERO);
        // Expected payments: each VU posts about once per second from its start on.
        let total: f64 = (1..=550)
            .map(|k| (d - vu_start(k, 550, d)).as_secs_f64().ceil())
            .sum();
        assert!((16_400.0..17_000.0).contains(&total), "{total}");
    }

    #[test]
    fn payment_body_has_the_exact_literal() {
        let id = uuid::Uuid::nil();
        let body = payment_body(id);
        assert_eq!(
            &body[..],
            br#"{"correlationId":"00000000-0000-0000-0000-000000000000","amount":19.90}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["amount"].as_f64(), Some(19.9));
    }

    #[test]
    fn timeline_carries_the_backlog_and_outlasts_the_load() {
        let mut s = RunStats::default();
        s.record_payment(0, Duration::from_millis(1), Outcome::Status(202));
        s.record_payment(1, Duration::from_millis(1), Outcome::Status(202));
        let readings = [
            BacklogReading {
                second: 0,
                accepted: 1,
                processed: 0,
            },
            BacklogReading {
                second: 3,
                accepted: 2,
                processed: 2,
            },
        ];
        let t = timeline(&s.timeline, &readings);
        assert_eq!(t.len(), 4);
        assert_eq!((t[0].processed, t[0].backlog), (Some(0), Some(1)));
        assert_eq!(
            (t[1].requests, t[1].processed, t[1].backlog),
            (1, None, None)
        );
        assert_eq!(
            (t[3].requests, t[3].processed, t[3].backlog),
            (0, Some(2), Some(0))
        );
        assert_eq!(t.iter().map(|p| p.requests).sum::<u64>(), 2);
        // New fields only: what the JSON had before is still there.
        let json = serde_json::to_value(&t[3]).unwrap();
        for key in [
            "second",
            "requests",
            "accepted",
            "p99_ms",
            "processed",
            "backlog",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn timeline_buckets_grow_on_demand() {
        let mut s = RunStats::default();
        s.record_payment(3, Duration::from_millis(2), Outcome::Status(202));
        s.record_payment(0, Duration::from_millis(1), Outcome::Timeout);
        assert_eq!(s.timeline.len(), 4);
        assert_eq!(s.timeline[3].outcomes.accepted, 1);
        assert_eq!(s.timeline[0].outcomes.timeouts, 1);
        assert_eq!(s.outcomes.requests, 2);
        assert_eq!(s.all.count(), 2);
    }
}
