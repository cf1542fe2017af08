//! The backlog drain benchmark: `paystream-load drain`.
//!
//! How fast does the worker catch up once a processor answers again? One run, in order:
//! 1. set both processors failing with no delay, then purge the backend and both processors
//!    ([`control`](super::control)): in that order, nothing a previous run left in flight can
//!    be stored after the purge;
//! 2. the outage: post fresh payments of 19.90 open-loop at `rate` for `outage`
//!    (`LoadClient` of the [`throughput`](super::throughput) benchmark: bounded in flight,
//!    latency from the due time); nothing can be processed, so every accepted payment queues;
//! 3. read the backend's totals once more (the backlog at recovery), then give the default
//!    processor a `recovery_delay_ms` delay and clear its failure: that moment is `t0`. The
//!    fallback stays failing, so nothing may go there;
//! 4. poll the backend's `GET /payments-summary` (no bounds) every `poll_every` until it
//!    reports every accepted payment processed, or `timeout` has passed;
//! 5. compare the backend's totals with what each processor stored, set both processors
//!    back to healthy with no delay (whatever happened before: the processors are shared with
//!    later runs), and return the [`DrainReport`](super::drain_report::DrainReport).
//!
//! Only HTTP: the backend and the processors' admin API, like [`rinha`](super::rinha), so it
//! runs against any deployment. Times are when a summary's answer arrived (the count was read
//! a little earlier), so the drain times are upper bounds by one summary round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::control::{iso_ms, Conditions, Control, ControlError, Endpoints, Processor};
use super::drain_report::{Consistency, DrainReport, DrainSample, DrainSettings, Milestone};
use super::stats::{signed, whole_ms};
use super::throughput::{LoadClient, Step};

/// The drain milestones reported besides the full drain: shares of the backlog at `t0`.
pub const MILESTONES: [f64; 3] = [0.5, 0.9, 0.99];
/// What the processors are left in at the end of a run.
pub const HEALTHY: Conditions = Conditions {
    delay_ms: 0,
    failing: false,
};
/// During the outage: both processors answer `500` at once.
pub const FAILING: Conditions = Conditions {
    delay_ms: 0,
    failing: true,
};
/// A payment that cannot start this long after its due time is dropped (never sent).
const MAX_LAG: Duration = Duration::from_secs(1);
/// Attempts at the reading just before the recovery, which the backlog at `t0` comes from.
const T0_READ_ATTEMPTS: u32 = 3;

/// What a run does and where.
#[derive(Clone, Debug)]
pub struct DrainConfig {
    /// The backend and the processors.
    pub endpoints: Endpoints,
    /// Payments posted per second during the outage.
    pub rate: u64,
    /// How long both processors fail while payments are posted.
    pub outage: Duration,
    /// The default processor's delay once it recovers.
    pub recovery_delay_ms: u64,
    /// Give up waiting for the drain after this long since the recovery.
    pub timeout: Duration,
    /// How often the backend's totals are read.
    pub poll_every: Duration,
    /// Keep-alive connections for the outage load, hence the most payments in flight.
    pub connections: usize,
    /// Timeout of each `POST /payments`.
    pub request_timeout: Duration,
    /// The run's name (the binary names its files after it).
    pub name: String,
}

impl Default for DrainConfig {
    /// The requirement's scenario against the local stack: a 10 s outage at 550 req/s, then
    /// the default processor answering in 20 ms.
    fn default() -> Self {
        DrainConfig {
            endpoints: Endpoints::default(),
            rate: 550,
            outage: Duration::from_secs(10),
            recovery_delay_ms: 20,
            timeout: Duration::from_secs(60),
            poll_every: Duration::from_millis(50),
            connections: 64,
            request_timeout: Duration::from_secs(2),
            name: "drain".into(),
        }
    }
}

/// A reading before the times are known relative to `t0`.
#[derive(Clone, Copy, Debug)]
struct Reading {
    at: Instant,
    accepted: u64,
    processed: u64,
    fallback: u64,
}

/// What the readings share while the run goes (the outage sampler, then the drain loop).
struct Readings {
    /// Asks the backend for its totals.
    control: Control,
    /// 2xx answers so far, counted by the load.
    accepted: Arc<AtomicU64>,
    /// Every successful reading, in time order (one reader at a time).
    list: Mutex<Vec<Reading>>,
    /// Readings that failed.
    errors: AtomicU64,
}

impl Readings {
    /// Reads the backend's totals once; `None` (and one more error) when that failed.
    async fn read(&self) -> Option<Reading> {
        match self.control.backend_summary(None, None).await {
            Ok(s) => {
                let reading = Reading {
                    at: Instant::now(),
                    accepted: self.accepted.load(Ordering::Relaxed),
                    processed: s.processed(),
                    fallback: s.fallback.total_requests,
                };
                self.list
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(reading);
                Some(reading)
            }
            Err(e) => {
                tracing::debug!(error = %e, "backend summary failed");
                self.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn take(&self) -> Vec<Reading> {
        std::mem::take(&mut *self.list.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Reads every `every` from `start` until `stop` turns true.
async fn poll_until_stopped(
    readings: Arc<Readings>,
    start: Instant,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = super::throughput::ticker(start, every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        readings.read().await;
    }
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    let ms = if to >= from {
        (to - from).as_secs_f64() * 1000.0
    } else {
        -((from - to).as_secs_f64() * 1000.0)
    };
    (ms * 10.0).round() / 10.0
}

/// The first time since `t0` at which at most `(1 - share)` of `backlog_at_t0` remained.
/// `share = 1` means everything accepted processed.
pub fn time_to_drain(samples: &[DrainSample], backlog_at_t0: i64, share: f64) -> Option<f64> {
    if backlog_at_t0 <= 0 {
        return Some(0.0);
    }
    let allowed = backlog_at_t0 as f64 * (1.0 - share);
    samples
        .iter()
        .filter(|s| s.t_ms >= 0.0)
        .find(|s| s.backlog <= 0 || (s.backlog as f64) <= allowed)
        .map(|s| s.t_ms)
}

/// Processed payments per second after `t0`, up to `end`: the first reading with everything
/// processed, or else the last reading.
pub fn drain_rate(end: Option<&DrainSample>, processed_at_t0: u64) -> Option<f64> {
    let end = end.filter(|s| s.t_ms > 0.0)?;
    Some((end.processed.saturating_sub(processed_at_t0) as f64 / (end.t_ms / 1000.0)).round())
}

/// Runs the benchmark once and returns its report. The processors are set back to healthy with no delay at the end, also when the run
/// failed after making them fail.
pub async fn run_drain(cfg: DrainConfig) -> anyhow::Result<DrainReport> {
    anyhow::ensure!(cfg.rate > 0, "rate must be positive");
    anyhow::ensure!(!cfg.outage.is_zero(), "outage length must be positive");
    anyhow::ensure!(!cfg.poll_every.is_zero(), "poll period must be positive");

    let control = cfg.endpoints.control(Duration::from_secs(2))?;
    let mut client = LoadClient::open(&cfg.endpoints.backend_url, cfg.connections).await?;

    let started_at = OffsetDateTime::now_utc();
    let result = outage_and_drain(&cfg, &control, &mut client).await;
    drop(client);
    let restored = set_both(&control, HEALTHY).await;
    if let Err(e) = &restored {
        tracing::warn!(error = %e, "could not set the processors back to healthy");
    }
    let mut report = result?;
    report.started_at = iso_ms(started_at);
    report.finished_at = iso_ms(OffsetDateTime::now_utc());
    report.restore_error = restored.err().map(|e| e.to_string());

    Ok(report)
}

async fn set_both(control: &Control, c: Conditions) -> Result<(), ControlError> {
    let [d, f] = control.set_both(c, c).await;
    d.and(f)
}

/// Steps 1 to 4 and the consistency read of step 5.
async fn outage_and_drain(
    cfg: &DrainConfig,
    control: &Control,
    client: &mut LoadClient,
) -> anyhow::Result<DrainReport> {
    // 1. Both processors fail, then a clean slate.
    set_both(control, FAILING)
        .await
        .context("making both processors fail")?;
    control.purge_all().await?;

    // 2. The outage: the load, with the totals read beside it.
    let accepted_total = Arc::new(AtomicU64::new(0));
    let readings = Arc::new(Readings {
        control: control.clone(),
        accepted: accepted_total.clone(),
        list: Mutex::default(),
        errors: AtomicU64::new(0),
    });
    let slots =
        u64::try_from(u128::from(cfg.rate) * cfg.outage.as_millis() / 1000).unwrap_or(u64::MAX);
    let step = Arc::new(Step::new(
        cfg.rate,
        slots,
        MAX_LAG,
        cfg.request_timeout,
        accepted_total.clone(),
    ));
    let start = step.t0;
    tracing::info!(rate = cfg.rate, slots, "outage started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(poll_until_stopped(
        readings.clone(),
        start,
        cfg.poll_every,
        stop_rx,
    ));
    client.run(&step).await?;
    let _ = stop_tx.send(true);
    sampler.await.context("the outage sampler panicked")?;
    let stats = step.take_stats();
    let accepted = accepted_total.load(Ordering::Relaxed);

    // 3. The backlog at recovery. Both processors still fail, so nothing more can be
    // processed before the default processor is told to answer again.
    let mut before = None;
    for _ in 0..T0_READ_ATTEMPTS {
        before = readings.read().await;
        if before.is_some() {
            break;
        }
        tokio::time::sleep(cfg.poll_every).await;
    }
    let before = before.context("reading the backend's totals before the recovery")?;
    control
        .set_conditions(
            Processor::Default,
            Conditions {
                delay_ms: cfg.recovery_delay_ms,
                failing: false,
            },
        )
        .await
        .context("recovering the default processor")?;
    let t0 = Instant::now();
    tracing::info!(
        accepted,
        backlog = signed(accepted) - signed(before.processed),
        "default processor recovered"
    );

    // 4. The drain.
    let mut ticker = super::throughput::ticker(Instant::now(), cfg.poll_every);
    loop {
        ticker.tick().await;
        if let Some(r) = readings.read().await {
            if r.processed >= accepted {
                break;
            }
        }
        if t0.elapsed() >= cfg.timeout {
            tracing::warn!(timeout_s = cfg.timeout.as_secs_f64(), "backlog not drained");
            break;
        }
    }

    // 5. What each processor stored against what the backend reports.
    let (backend, default, fallback) = control.final_summaries(None, None).await?;
    let consistency = Consistency::new(backend, default, fallback);

    let samples: Vec<DrainSample> = readings
        .take()
        .into_iter()
        .map(|r| DrainSample {
            t_ms: ms_between(t0, r.at),
            since_start_ms: ms_between(start, r.at),
            accepted: r.accepted,
            processed: r.processed,
            fallback: r.fallback,
            backlog: signed(r.accepted) - signed(r.processed),
        })
        .collect();
    let backlog_at_t0 = signed(accepted) - signed(before.processed);
    let drained = samples
        .iter()
        .find(|s| s.t_ms >= 0.0 && s.processed >= accepted)
        .copied();
    let drain_ms = drained.map(|s| s.t_ms);
    let last = samples.last().copied();
    Ok(DrainReport {
        name: cfg.name.clone(),
        started_at: String::new(),
        finished_at: String::new(),
        settings: DrainSettings {
            backend_url: cfg.endpoints.backend_url.clone(),
            default_url: cfg.endpoints.default_url.clone(),
            fallback_url: cfg.endpoints.fallback_url.clone(),
            rate: cfg.rate,
            outage_s: cfg.outage.as_secs_f64(),
            recovery_delay_ms: cfg.recovery_delay_ms,
            timeout_s: cfg.timeout.as_secs_f64(),
            poll_every_ms: whole_ms(cfg.poll_every),
            connections: cfg.connections,
            request_timeout_ms: whole_ms(cfg.request_timeout),
        },
        posts: stats.outcomes,
        dropped: stats.dropped,
        post_latency: stats.latency.percentiles(),
        outage_s: ms_between(start, t0) / 1000.0,
        accepted,
        backlog_at_t0,
        drained: drain_ms.is_some(),
        drain_ms,
        milestones: MILESTONES
            .iter()
            .map(|&share| Milestone {
                share,
                ms: time_to_drain(&samples, backlog_at_t0, share),
            })
            .collect(),
        drain_rate_per_sec: drain_rate(drained.or(last).as_ref(), before.processed),
        processed: last.map_or(before.processed, |s| s.processed),
        backlog_end: last.map_or(backlog_at_t0, |s| s.backlog),
        fallback: consistency.backend.fallback.total_requests,
        consistency,
        poll_errors: readings.errors.load(Ordering::Relaxed),
        restore_error: None,
        samples,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(t_ms: f64, accepted: u64, processed: u64) -> DrainSample {
        DrainSample {
            t_ms,
            since_start_ms: t_ms + 10_000.0,
            accepted,
            processed,
            fallback: 0,
            backlog: signed(accepted) - signed(processed),
        }
    }

    fn drain() -> Vec<DrainSample> {
        vec![
            sample(-5000.0, 2000, 0),
            sample(-2.0, 5500, 0),
            sample(50.0, 5500, 0),
            sample(400.0, 5500, 2000),
            sample(800.0, 5500, 2750),
            sample(1200.0, 5500, 5000),
            sample(1600.0, 5500, 5445),
            sample(2000.0, 5500, 5500),
        ]
    }

    #[test]
    fn milestones_are_the_first_readings_past_each_share() {
        let s = drain();
        assert_eq!(time_to_drain(&s, 5500, 0.5), Some(800.0));
        assert_eq!(time_to_drain(&s, 5500, 0.9), Some(1200.0));
        // 1 % of 5500 is 55 remaining: reached exactly at 1600 ms.
        assert_eq!(time_to_drain(&s, 5500, 0.99), Some(1600.0));
        assert_eq!(time_to_drain(&s, 5500, 1.0), Some(2000.0));
        // Readings before t0 never count, however small the backlog then.
        assert_eq!(time_to_drain(&s[..2], 5500, 0.5), None);
        // Nothing to drain: done at once.
        assert_eq!(time_to_drain(&s, 0, 0.99), Some(0.0));
    }

    #[test]
    fn drain_rate_over_the_drain_or_up_to_the_last_reading() {
        let s = drain();
        assert_eq!(drain_rate(s.last(), 0), Some(2750.0));
        // Not drained: 5000 processed in 1.2 s.
        assert_eq!(drain_rate(Some(&s[5]), 0), Some(4167.0));
        assert_eq!(drain_rate(Some(&s[1]), 0), None);
        assert_eq!(drain_rate(None, 0), None);
    }

    #[test]
    fn signed_milliseconds() {
        let t = Instant::now();
        assert_eq!(ms_between(t, t + Duration::from_micros(1_234_567)), 1234.6);
        assert_eq!(ms_between(t + Duration::from_millis(2), t), -2.0);
    }
}
