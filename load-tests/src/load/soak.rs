//! The soak: `paystream-load soak`. A benchmark, not a test: is the stack still
//! correct and its memory flat after half an hour at a steady rate, once retention holds its
//! state to a time window?
//!
//! One run, in order:
//! 1. purge the backend and both processors ([`control`](super::control)), set stage 0;
//! 2. post fresh payments of 19.90 open-loop at `rate` for `duration` (the
//!    [`throughput`](super::throughput) client: keep-alive connections, latency from the due
//!    time, a payment that cannot start within `max_lag` is dropped);
//! 3. meanwhile cycle docs/protocol.md §5's six processor conditions ([`rinha`](super::rinha)'s stages),
//!    one per `stage`, for the whole run; every `stage` run the
//!    [`checker`](super::checker) on the recent window (`now - 15 s .. now - 1.5 s` with 10 s
//!    stages) and on the same window `old_check_age` earlier, whose detail is compacted; and
//!    every `sample_every` take a [`SoakSample`]: the load since the last one, the backend's
//!    processed count, Redis (`INFO`, keys, stream, pending, dead letters, the summary's
//!    size) and each watched process group's RSS and CPU
//!    ([`procstat`](super::procstat): the stack's groups re-read from `up.sh`'s pid files
//!    every time, so a restarted process is followed);
//! 4. when the load ends, read the lag, set both processors healthy with no delay and wait
//!    until every accepted payment is reported processed and the stream is empty (or
//!    `drain_timeout`), then compare the backend's all-time totals with what each processor
//!    stored;
//! 5. judge ([`soak_report::verdict`](super::soak_report::verdict)) and return the
//!    [`SoakReport`](super::soak_report::SoakReport).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use common::keys::Keys;
use common::payment::Processor;
use common::store::{RedisOptions, Store, StoreError};
use time::OffsetDateTime;
use tokio::time::{sleep_until, Instant};

use super::checker::{self, CheckRecord, CheckWindow};
use super::control::{iso_ms, Control, Endpoints};
use super::drain::HEALTHY;
use super::drain_report::Consistency;
use super::procstat::{GroupReading, ProcGroup, Watch, Watched};
use super::redis_info::{aof_mode, info_field};
use super::rinha::{apply_stage, stage_record, STAGES};
use super::rinha_report::StageRecord;
use super::soak_report::{
    verdict, CheckMark, FinalTotals, IntervalLoad, PidChange, ProcPoint, ProcessCost, RedisSample,
    SoakReport, SoakSample, SoakSettings, VerdictInput,
};
use super::stats::{round3, signed, whole_ms, Latency, Outcomes};
use super::throughput::{LoadClient, Step, SELF_GROUP};

/// What a soak does and where.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// The backend and the processors.
    pub endpoints: Endpoints,
    /// Payments posted per second.
    pub rate: u64,
    /// How long payments are posted.
    pub duration: Duration,
    /// Length of each processor condition, and the checker's period.
    pub stage: Duration,
    /// How often a sample is taken.
    pub sample_every: Duration,
    /// Keep-alive connections (the most payments in flight).
    pub connections: usize,
    /// Timeout of each `POST /payments`.
    pub timeout: Duration,
    /// A payment that cannot start this long after its due time is dropped.
    pub max_lag: Duration,
    /// After the load, how long to wait for every accepted payment to be processed.
    pub drain_timeout: Duration,
    /// The stack's Redis, for its memory, keys and stream; no Redis samples when `None`.
    pub redis_url: Option<String>,
    /// The stack's `PAYSTREAM_KEY_PREFIX`.
    pub key_prefix: String,
    /// The stack's `PAYMENT_RETENTION` and `SUMMARY_DETAIL_HORIZON`: where the steady
    /// window starts. Unknown: flatness is reported, not judged.
    pub payment_retention: Option<Duration>,
    pub detail_horizon: Option<Duration>,
    /// How far back the older window checked beside each recent one ends.
    pub old_check_age: Duration,
    /// The processes to watch (the load generator is always added).
    pub watch: Watch,
    /// The run's name (the binary names its files after it).
    pub name: String,
}

impl Default for SoakConfig {
    /// The full soak against the local stack: 30 minutes at 2 000 payments/s.
    fn default() -> Self {
        SoakConfig {
            endpoints: Endpoints::default(),
            rate: 2_000,
            duration: Duration::from_secs(30 * 60),
            stage: Duration::from_secs(10),
            sample_every: Duration::from_secs(5),
            connections: 128,
            timeout: Duration::from_secs(2),
            max_lag: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(120),
            redis_url: None,
            key_prefix: common::config::defaults::KEY_PREFIX.into(),
            payment_retention: None,
            detail_horizon: None,
            old_check_age: Duration::from_secs(120),
            watch: Watch::default(),
            name: "soak".into(),
        }
    }
}

/// Runs the soak and returns its report.
/// The processors are left healthy with no delay.
pub async fn run_soak(cfg: SoakConfig) -> anyhow::Result<SoakReport> {
    anyhow::ensure!(cfg.rate > 0, "rate must be positive");
    anyhow::ensure!(!cfg.duration.is_zero(), "duration must be positive");
    anyhow::ensure!(!cfg.stage.is_zero(), "stage length must be positive");
    anyhow::ensure!(
        !cfg.sample_every.is_zero(),
        "sample period must be positive"
    );

    let control = cfg.endpoints.control(Duration::from_secs(5))?;
    let redis = match &cfg.redis_url {
        Some(url) => Some(Store::connect_lazy(
            &RedisOptions::new(url.as_str()),
            Keys::new(&cfg.key_prefix),
        )?),
        None => None,
    };
    let appendfsync = match &redis {
        Some(store) => Some(
            aof_mode(store)
                .await
                .context("reading Redis' appendfsync")?,
        ),
        None => None,
    };
    let mut client = LoadClient::open(&cfg.endpoints.backend_url, cfg.connections).await?;

    // 1. A clean slate, and stage 0.
    control.purge_all().await?;
    apply_stage(&control, 0)
        .await
        .map_err(|e| anyhow::anyhow!("setting stage 0: {e}"))?;

    // 2 and 3. The load, with the stages, the checks and the samples beside it.
    let started_at = OffsetDateTime::now_utc();
    let accepted = Arc::new(AtomicU64::new(0));
    let slots =
        u64::try_from(u128::from(cfg.rate) * cfg.duration.as_millis() / 1000).unwrap_or(u64::MAX);
    let step = Arc::new(Step::new(
        cfg.rate,
        slots,
        cfg.max_lag,
        cfg.timeout,
        accepted.clone(),
    ));
    let t0 = step.t0;
    tracing::info!(
        rate = cfg.rate,
        duration_s = cfg.duration.as_secs_f64(),
        "soak started"
    );
    let stages = tokio::spawn(cycle_stages(control.clone(), t0, cfg.duration, cfg.stage));
    let checks = tokio::spawn(run_checks(
        control.clone(),
        t0,
        cfg.duration,
        cfg.stage,
        cfg.old_check_age,
    ));
    let mut watch = cfg.watch.clone();
    watch.fixed.insert(
        0,
        ProcGroup {
            name: SELF_GROUP.into(),
            pids: vec![std::process::id()],
        },
    );
    let sampler = Sampler {
        control: control.clone(),
        redis: redis.clone(),
        watch,
        step: step.clone(),
        accepted: accepted.clone(),
        t0,
        duration: cfg.duration,
        stage: cfg.stage,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampling = tokio::spawn(sampler.run(cfg.sample_every, stopped));
    client.run(&step).await?;
    drop(client);

    // 4. The lag when the load ended, then the drain against healthy processors.
    let load_end = Instant::now();
    let load_end_s = round3(load_end.saturating_duration_since(t0).as_secs_f64());
    let accepted_n = accepted.load(Ordering::Relaxed);
    let lag_at_end = control
        .backend_summary(None, None)
        .await
        .ok()
        .map(|s| signed(accepted_n) - signed(s.processed()));
    let (stage_errors, stages_applied) = stages.await.context("the stage task panicked")?;
    let check_records = checks.await.context("the checker panicked")?;
    let [d, f] = control.set_both(HEALTHY, HEALTHY).await;
    d.and(f)
        .context("setting the processors healthy for the drain")?;
    let mut drain_s = None;
    while load_end.elapsed() < cfg.drain_timeout {
        if drained(&control, redis.as_ref(), accepted_n).await {
            drain_s = Some(round3(load_end.elapsed().as_secs_f64()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One more sample period, so the samples end with the drained state.
    tokio::time::sleep(cfg.sample_every).await;
    let _ = stop.send(true);
    let sampled = sampling.await.context("the sampler panicked")?;

    let (backend, default, fallback) = control.final_summaries(None, None).await?;
    let dead_letters = match &redis {
        Some(store) => store.dead_letter_count().await.ok(),
        None => None,
    };
    let unanswered = sampled.outcomes.timeouts + sampled.outcomes.errors;
    let stored = default.total_requests + fallback.total_requests;
    let totals = FinalTotals {
        lag_at_end,
        drained: drain_s.is_some(),
        drain_s,
        accepted: accepted_n,
        unanswered,
        backend,
        default,
        fallback,
        dead_letters,
        consistent: Consistency::new(backend, default, fallback).consistent,
        all_processed_once: (accepted_n..=accepted_n + unanswered).contains(&stored),
    };

    // 5. The verdict and the files.
    let settings = SoakSettings {
        backend_url: cfg.endpoints.backend_url.clone(),
        default_url: cfg.endpoints.default_url.clone(),
        fallback_url: cfg.endpoints.fallback_url.clone(),
        rate: cfg.rate,
        duration_s: cfg.duration.as_secs_f64(),
        stage_s: cfg.stage.as_secs_f64(),
        sample_every_s: cfg.sample_every.as_secs_f64(),
        connections: cfg.connections,
        timeout_ms: whole_ms(cfg.timeout),
        max_lag_ms: whole_ms(cfg.max_lag),
        drain_timeout_s: cfg.drain_timeout.as_secs_f64(),
        check_from_offset_ms: whole_ms(CheckWindow::for_stage(cfg.stage).from_offset),
        check_to_offset_ms: whole_ms(CheckWindow::for_stage(cfg.stage).to_offset),
        old_check_age_s: cfg.old_check_age.as_secs_f64(),
        payment_retention_s: cfg.payment_retention.map(|d| d.as_secs_f64()),
        detail_horizon_s: cfg.detail_horizon.map(|d| d.as_secs_f64()),
        appendfsync,
        redis_url: cfg.redis_url.clone(),
    };
    let checks: Vec<CheckMark> = check_records
        .iter()
        .map(|(old, c)| CheckMark {
            at_s: c.at_s,
            old: *old,
            consistent: c.consistent,
        })
        .collect();
    let processes = process_costs(&sampled, accepted_n);
    let verdict = verdict(&VerdictInput {
        settings: &settings,
        samples: &sampled.samples,
        stack_groups: &sampled.stack_groups,
        load_end_s,
        checks: &checks,
        totals: &totals,
        requests: &sampled.outcomes,
        dropped: sampled.dropped,
        scheduled: slots,
        pid_changes: &sampled.pid_changes,
    });
    Ok(SoakReport {
        name: cfg.name.clone(),
        started_at: iso_ms(started_at),
        finished_at: iso_ms(OffsetDateTime::now_utc()),
        settings,
        requests: sampled.outcomes,
        dropped: sampled.dropped,
        latency: sampled.latency.percentiles(),
        verdict,
        totals,
        processes,
        checks,
        failed_checks: check_records
            .into_iter()
            .filter(|(_, c)| c.consistent != Some(true))
            .map(|(_, c)| c)
            .collect(),
        stage_errors,
        stages_applied,
        pid_changes: sampled.pid_changes,
        samples: sampled.samples,
    })
}

/// Every accepted payment reported processed and, when Redis is watched, nothing left in the
/// stream: a POST that timed out may have been accepted too, and only the empty stream says
/// that it was recorded as well.
async fn drained(control: &Control, redis: Option<&Store>, accepted: u64) -> bool {
    let processed = control
        .backend_summary(None, None)
        .await
        .is_ok_and(|s| s.processed() >= accepted);
    let stream_empty = match redis {
        Some(store) => store.backlog().await.is_ok_and(|n| n == 0),
        None => true,
    };
    processed && stream_empty
}

/// The stage in force `t_s` seconds into the load, `None` after it (the drain runs against
/// healthy processors).
fn stage_at(t_s: f64, stage: Duration, duration: Duration) -> Option<usize> {
    (t_s < duration.as_secs_f64()).then(|| (t_s / stage.as_secs_f64()) as usize % STAGES.len())
}

/// Applies stage `k % 6` at `k * stage` for every `k` before the end of the load; returns
/// the changes that failed and how many were applied.
async fn cycle_stages(
    control: Control,
    t0: Instant,
    duration: Duration,
    stage: Duration,
) -> (Vec<StageRecord>, u64) {
    let (mut errors, mut applied) = (Vec::new(), 1);
    let mut k = 1u32;
    while stage * k < duration {
        sleep_until(t0 + stage * k).await;
        let index = k as usize % STAGES.len();
        match apply_stage(&control, index).await {
            Ok(()) => applied += 1,
            Err(e) => {
                tracing::warn!(stage = index, error = %e, "stage change failed");
                let at = (stage * k).as_secs_f64();
                let applied_s = round3(t0.elapsed().as_secs_f64());
                errors.push(stage_record(index, at, applied_s, Some(e)));
            }
        }
        k += 1;
    }
    (errors, applied)
}

/// Every `stage` until the end of the load: the checker on the recent window, and on the
/// same window `old_age` earlier once that lies inside the run. `true` marks the old ones.
async fn run_checks(
    control: Control,
    t0: Instant,
    duration: Duration,
    stage: Duration,
    old_age: Duration,
) -> Vec<(bool, CheckRecord)> {
    let recent = CheckWindow::for_stage(stage);
    let old = CheckWindow {
        from_offset: recent.from_offset + old_age,
        to_offset: recent.to_offset + old_age,
    };
    let mut records = Vec::new();
    let mut k = 1u32;
    while stage * k <= duration {
        sleep_until(t0 + stage * k).await;
        let at_s = round3(t0.elapsed().as_secs_f64());
        let old_inside = t0.elapsed() >= old.from_offset;
        let (now, then) = tokio::join!(checker::check(&control, recent, at_s), async {
            if old_inside {
                Some(checker::check(&control, old, at_s).await.0)
            } else {
                None
            }
        });
        for (is_old, record) in [(false, Some(now.0)), (true, then)] {
            let Some(record) = record else { continue };
            if record.is_inconsistent() {
                tracing::warn!(
                    at_s,
                    old = is_old,
                    ?record.default_diff,
                    ?record.fallback_diff,
                    "inconsistency"
                );
            }
            records.push((is_old, record));
        }
        k += 1;
    }
    records
}

/// What the sampler reads from, and what it shares with the load.
struct Sampler {
    control: Control,
    redis: Option<Store>,
    watch: Watch,
    /// The load's step: its statistics are taken out at every sample.
    step: Arc<Step>,
    accepted: Arc<AtomicU64>,
    t0: Instant,
    duration: Duration,
    stage: Duration,
}

/// What the sampler collected by the end.
#[derive(Default)]
struct Sampled {
    samples: Vec<SoakSample>,
    pid_changes: Vec<PidChange>,
    /// The groups that came from the stack's pid files (judged), by name.
    stack_groups: Vec<String>,
    outcomes: Outcomes,
    dropped: u64,
    latency: Latency,
}

impl Sampler {
    /// Samples every `every` from the start of the load until `stop` turns true, then once
    /// more (the load's last statistics).
    async fn run(self, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) -> Sampled {
        let mut out = Sampled::default();
        let mut previous: BTreeMap<String, GroupReading> = BTreeMap::new();
        let mut ticker = super::throughput::ticker(self.t0, every);
        loop {
            let stopping = tokio::select! {
                _ = ticker.tick() => false,
                _ = stop.changed() => true,
            };
            self.sample(&mut out, &mut previous).await;
            if stopping {
                return out;
            }
        }
    }

    async fn sample(&self, out: &mut Sampled, previous: &mut BTreeMap<String, GroupReading>) {
        let t_s = round3(self.t0.elapsed().as_secs_f64());
        // Reading /proc blocks (a few hundred small files): off the load's threads.
        let watch = self.watch.clone();
        let readings = tokio::task::spawn_blocking(move || watch.read())
            .await
            .unwrap_or_default();
        for w in readings.iter().filter(|w| w.stack) {
            if !out.stack_groups.contains(&w.name) {
                out.stack_groups.push(w.name.clone());
            }
        }

        let stats = self.step.take_stats();
        out.outcomes.merge(&stats.outcomes);
        out.dropped += stats.dropped;
        out.latency.merge(&stats.latency);
        let load = IntervalLoad::new(&stats.outcomes, stats.dropped, &stats.latency.percentiles());
        let accepted = self.accepted.load(Ordering::Relaxed);
        let processed = match tokio::time::timeout(
            Duration::from_secs(2),
            self.control.backend_summary(None, None),
        )
        .await
        {
            Ok(Ok(s)) => Some(s.processed()),
            _ => None,
        };
        let redis = match &self.redis {
            Some(store) => match redis_sample(store).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!(error = %e, "redis sample failed");
                    None
                }
            },
            None => None,
        };

        let mut procs = BTreeMap::new();
        for Watched { name, reading, .. } in readings {
            let before = previous.get(&name);
            let cpu_s = before.map_or(0.0, |b| reading.cpu_since(b));
            if let Some(change) = before.and_then(|b| pid_change(t_s, &name, b, &reading)) {
                out.pid_changes.push(change);
            }
            procs.insert(
                name.clone(),
                ProcPoint {
                    rss_kb: reading.sample.rss_kb,
                    procs: reading.sample.alive,
                    cpu_s: round3(cpu_s),
                    cpu_us_per_payment: super::procstat::per_payment(cpu_s, load.accepted),
                },
            );
            previous.insert(name, reading);
        }
        out.samples.push(SoakSample {
            t_s,
            stage: stage_at(t_s, self.stage, self.duration),
            accepted,
            processed,
            backlog: processed.map(|p| signed(accepted) - signed(p)),
            load,
            redis,
            procs,
        });
    }
}

/// Redis' memory, keys, stream and the summary's size, now.
async fn redis_sample(store: &Store) -> Result<RedisSample, StoreError> {
    let info: String = store
        .query(redis::cmd("INFO").arg("memory").arg("persistence"))
        .await?;
    let number = |name: &str| info_field(&info, name).and_then(|v| v.parse::<u64>().ok());
    let (pending, undelivered) = store.group_info().await?;
    let mut kept = 0;
    let mut detail = 0;
    for p in Processor::ALL {
        let keys = store.keys().summary(p);
        // A few fields per second each (buckets, days, compacted detail): small enough to
        // count exactly.
        for key in keys.all().into_iter().filter(|k| *k != keys.events) {
            kept += memory_usage(store, key, Some(0)).await?;
        }
        // One member per payment of the last horizon: Redis' sampled estimate.
        detail += memory_usage(store, &keys.events, None).await?;
    }
    Ok(RedisSample {
        used_memory: number("used_memory").unwrap_or(0),
        used_memory_rss: number("used_memory_rss").unwrap_or(0),
        dbsize: store.query(&redis::cmd("DBSIZE")).await?,
        stream_len: store.backlog().await?,
        pending,
        undelivered,
        dead_letters: store.dead_letter_count().await?,
        summary_kept_bytes: kept,
        summary_detail_bytes: detail,
        aof_bytes: number("aof_current_size"),
    })
}

/// `MEMORY USAGE key [SAMPLES n]` (`0`: every element; none: Redis' estimate from 5), 0
/// for a missing key.
async fn memory_usage(store: &Store, key: &str, samples: Option<u32>) -> Result<u64, StoreError> {
    let mut cmd = redis::cmd("MEMORY");
    cmd.arg("USAGE").arg(key);
    if let Some(n) = samples {
        cmd.arg("SAMPLES").arg(n);
    }
    let bytes: Option<u64> = store.query(&cmd).await?;
    Ok(bytes.unwrap_or(0))
}

/// Each group's CPU from the first sample to the last (load and drain), per accepted
/// payment, and its memory.
fn process_costs(sampled: &Sampled, accepted: u64) -> Vec<ProcessCost> {
    let mut names: Vec<&String> = sampled
        .samples
        .iter()
        .flat_map(|s| s.procs.keys())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let points: Vec<&ProcPoint> = sampled
                .samples
                .iter()
                .filter_map(|s| s.procs.get(name))
                .collect();
            let cpu_seconds: f64 = points.iter().map(|p| p.cpu_s).sum();
            ProcessCost {
                name: name.clone(),
                stack: sampled.stack_groups.contains(name),
                cpu_seconds: round3(cpu_seconds),
                cpu_us_per_payment: super::procstat::per_payment(cpu_seconds, accepted),
                rss_last_kb: points.last().map_or(0, |p| p.rss_kb),
                rss_max_kb: points.iter().map(|p| p.rss_kb).max().unwrap_or(0),
            }
        })
        .collect()
}

/// How a group's processes changed between two readings, if they did: which went, which
/// came, and whether the one that went includes the earlier reading's main process.
fn pid_change(
    t_s: f64,
    group: &str,
    before: &GroupReading,
    now: &GroupReading,
) -> Option<PidChange> {
    let (was, is) = (before.pids(), now.pids());
    if was == is {
        return None;
    }
    let gone: Vec<u32> = was.difference(&is).copied().collect();
    Some(PidChange {
        t_s,
        group: group.to_owned(),
        main_gone: before.main.is_some_and(|m| gone.contains(&m)),
        gone,
        new: is.difference(&was).copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_cycle_for_the_whole_load() {
        let (stage, duration) = (Duration::from_secs(10), Duration::from_secs(1800));
        assert_eq!(stage_at(0.0, stage, duration), Some(0));
        assert_eq!(stage_at(59.9, stage, duration), Some(5));
        assert_eq!(stage_at(60.0, stage, duration), Some(0));
        assert_eq!(stage_at(1795.0, stage, duration), Some(5));
        assert_eq!(stage_at(1800.0, stage, duration), None);
    }

    #[test]
    fn a_pid_change_says_whether_the_earlier_main_process_went() {
        let reading = |main: Option<u32>, pids: &[u32]| GroupReading {
            sample: Default::default(),
            cpu_by_pid: pids.iter().map(|p| (*p, 1.0)).collect(),
            main,
        };
        let change = |before: &GroupReading, now: &GroupReading| {
            pid_change(5.0, "redis", before, now).expect("the pids differ")
        };
        let redis = reading(Some(1), &[1, 7]);
        assert_eq!(
            pid_change(5.0, "redis", &redis, &reading(Some(1), &[1, 7])),
            None
        );
        // The AOF-rewrite child ended: the main process stayed.
        let child_gone = change(&redis, &reading(Some(1), &[1]));
        assert_eq!((child_gone.gone, child_gone.main_gone), (vec![7], false));
        // Restarted as 2; or gone, its pid file not yet rewritten (no main read now).
        let restarted = change(&redis, &reading(Some(2), &[2]));
        assert_eq!(
            (restarted.gone, restarted.new, restarted.main_gone),
            (vec![1, 7], vec![2], true)
        );
        let dead = change(&redis, &reading(None, &[7]));
        assert_eq!((dead.gone, dead.main_gone), (vec![1], true));
        // A child appearing is no restart.
        let child_came = change(&reading(Some(1), &[1]), &redis);
        assert_eq!((child_came.new, child_came.main_gone), (vec![7], false));
    }
}
