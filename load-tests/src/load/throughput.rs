//! The open-loop throughput benchmark: `paystream-load throughput`.
//!
//! Steps through fixed arrival rates. Within a step, request `i` is *due* at
//! `t0 + i / rate` whatever happened to earlier requests (open loop), and its latency is
//! measured from that due time when the client was already behind, so a stalled server
//! cannot hide its stall by slowing the client down (coordinated omission). When a sender
//! was idle and waiting for the due time, latency counts from the actual send instead: the
//! lateness of our own timer wheel (up to ~1 ms) is not the server's.
//!
//! The client: `connections` raw hyper HTTP/1 keep-alive connections, one task each; every
//! task claims the next due request from a shared counter, so in-flight requests are bounded
//! by the connection count. A request that cannot start within `max_lag` of its due time is
//! *dropped* (counted, never sent).
//!
//! A rate of 0 is a *closed-loop* step instead: every connection sends its next request as
//! soon as the previous one is answered, for the step's length; it measures how many
//! payments the backend takes at most through that many connections.
//!
//! Beside the load, a sampler polls every 500 ms the backend's `GET /payments-summary`
//! totals (processed payments, hence backlog and end-to-end processed/s) and the CPU and
//! memory of the watched processes ([`procstat`](super::procstat)). The run stops stepping at
//! the first step whose p99 exceeds the limit or which could not get 99 % of its requests
//! accepted, then lets the backlog drain for up to `drain` while sampling.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};

use super::control::{iso_ms, Control, DEFAULT_PROCESSOR_TOKEN};
use super::procstat::{GroupSample, LoadAverages, ProcGroup};
use super::rinha::payment_body;
use super::stats::{round3, signed, whole_ms, Latency, Outcome, Outcomes};
use super::throughput_report::{
    ProcessSummary, Processed, Sample, StepReport, ThroughputReport, ThroughputSettings,
};

/// Name under which the load generator samples itself.
pub const SELF_GROUP: &str = "load-generator";
/// Smallest share of a step's requests that must be accepted (2xx) for it to pass.
pub const MIN_ACCEPTED_RATIO: f64 = 0.99;

/// What a benchmark does and where.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    /// The backend under test, e.g. `http://127.0.0.1:9999`.
    pub backend_url: String,
    /// Sent as `X-Admin-Token` to the backend's purge when set.
    pub admin_token: Option<String>,
    /// Purge the backend before the first step.
    pub purge: bool,
    /// Arrival rates to step through, requests per second.
    pub rates: Vec<u64>,
    /// How long each rate is held.
    pub step: Duration,
    /// A step whose p99 exceeds this ends the stepping.
    pub p99_limit: Duration,
    /// Keep-alive connections, hence the most requests in flight.
    pub connections: usize,
    /// Per-request timeout (the connection is replaced after one).
    pub timeout: Duration,
    /// A request that cannot start this long after its due time is dropped.
    pub max_lag: Duration,
    /// After the last step, keep sampling until the backlog is empty or this has passed.
    pub drain: Duration,
    /// Sampling period of the backlog and of `/proc`.
    pub sample_every: Duration,
    /// Processes to watch (the load generator itself is always added).
    pub procs: Vec<ProcGroup>,
    /// The run's name (the binary names its files after it).
    pub name: String,
    /// The processors' base URLs (default, fallback): when set, both are purged first and
    /// their admin summaries are read after the drain, so the report shows what they
    /// stored beside what was accepted and processed.
    pub processors: Option<(String, String)>,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        ThroughputConfig {
            backend_url: "http://127.0.0.1:9999".into(),
            admin_token: None,
            purge: true,
            rates: vec![5_000, 10_000, 20_000, 40_000, 60_000],
            step: Duration::from_secs(10),
            p99_limit: Duration::from_millis(5),
            connections: 128,
            timeout: Duration::from_secs(2),
            max_lag: Duration::from_secs(1),
            drain: Duration::from_secs(10),
            sample_every: Duration::from_millis(500),
            procs: Vec::new(),
            name: "throughput".into(),
            processors: None,
        }
    }
}

/// The address and headers every request of a run shares.
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    uri: Uri,
}

impl Target {
    async fn resolve(base: &str) -> anyhow::Result<Self> {
        let rest = base
            .strip_prefix("http://")
            .with_context(|| format!("only http:// backends are supported, got {base:?}"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} resolves to nothing"))?;
        Ok(Target {
            addr,
            host: HeaderValue::from_str(authority)?,
            uri: format!("{prefix}/payments").parse()?,
        })
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(payment_body(uuid::Uuid::new_v4())))
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "benchmark connection closed");
        }
    });
    Ok(sender)
}

/// What one step measured while it ran.
#[derive(Default)]
pub(super) struct StepStats {
    pub(super) outcomes: Outcomes,
    pub(super) dropped: u64,
    /// From the due time (or the actual start when the sender was idle) to the full answer.
    pub(super) latency: Latency,
    /// From the moment the request was written to the full answer.
    pub(super) service: Latency,
    /// How late requests started relative to their due time.
    pub(super) start_lag: Latency,
}

/// The shared schedule of one step.
pub(super) struct Step {
    /// When request 0 is due.
    pub(super) t0: Instant,
    rate: u64,
    slots: u64,
    next: AtomicU64,
    max_lag: Duration,
    timeout: Duration,
    stats: Mutex<StepStats>,
    /// Requests accepted over the whole run (read by the sampler for the backlog).
    accepted_total: Arc<AtomicU64>,
    /// A closed-loop step: no due times, requests are sent back to back until then.
    closed_until: Option<Instant>,
}

impl Step {
    /// `slots` requests at `rate` per second, the first due 10 ms from now (time to hand the
    /// step to the connections). 2xx answers are also counted into `accepted_total`.
    pub(super) fn new(
        rate: u64,
        slots: u64,
        max_lag: Duration,
        timeout: Duration,
        accepted_total: Arc<AtomicU64>,
    ) -> Self {
        Step {
            t0: Instant::now() + Duration::from_millis(10),
            rate,
            slots,
            next: AtomicU64::new(0),
            max_lag,
            timeout,
            stats: Mutex::default(),
            accepted_total,
            closed_until: None,
        }
    }

    /// A closed-loop step of length `length`: each connection sends its next request as
    /// soon as the previous one is answered.
    pub(super) fn closed(
        length: Duration,
        timeout: Duration,
        accepted_total: Arc<AtomicU64>,
    ) -> Self {
        let mut step = Step::new(0, u64::MAX, Duration::MAX, timeout, accepted_total);
        step.closed_until = Some(step.t0 + length);
        step
    }

    /// What the step measured (taken out, so call it once the step has run).
    pub(super) fn take_stats(&self) -> StepStats {
        std::mem::take(&mut *self.stats())
    }

    fn due(&self, seq: u64) -> Instant {
        let nanos = u128::from(seq) * 1_000_000_000 / u128::from(self.rate.max(1));
        self.t0 + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, StepStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's loop for one step; hands the connection back for the next step.
async fn sender_task(
    step: Arc<Step>,
    target: Arc<Target>,
    mut sender: Option<Sender>,
) -> Option<Sender> {
    loop {
        let seq = step.next.fetch_add(1, Ordering::Relaxed);
        if seq >= step.slots {
            return sender;
        }
        let due = match step.closed_until {
            Some(until) if Instant::now() >= until => return sender,
            Some(_) => Instant::now().max(step.t0),
            None => step.due(seq),
        };
        let now = Instant::now();
        let measure_from = if due > now {
            sleep_until(due).await;
            Instant::now()
        } else if now - due > step.max_lag {
            step.stats().dropped += 1;
            continue;
        } else {
            due
        };
        let start_lag = Instant::now().saturating_duration_since(due);

        let outcome = match send_one(&step, &target, &mut sender).await {
            Ok((outcome, sent_at)) => {
                let done = Instant::now();
                if matches!(outcome, Outcome::Status(200..=299)) {
                    step.accepted_total.fetch_add(1, Ordering::Relaxed);
                }
                let mut stats = step.stats();
                stats.service.record(done - sent_at);
                stats.latency.record(done - measure_from);
                stats.start_lag.record(start_lag);
                outcome
            }
            Err(outcome) => {
                sender = None;
                let mut stats = step.stats();
                stats.latency.record(Instant::now() - measure_from);
                stats.start_lag.record(start_lag);
                outcome
            }
        };
        step.stats().outcomes.add(outcome);
    }
}

/// Sends one payment on the task's connection, (re)connecting as needed. `Err` means the
/// connection is unusable afterwards.
async fn send_one(
    step: &Step,
    target: &Target,
    sender: &mut Option<Sender>,
) -> Result<(Outcome, Instant), Outcome> {
    let deadline = Instant::now() + step.timeout;
    let work = async {
        // A keep-alive connection the server closed is replaced silently; only a failure to
        // get a usable one counts as an error.
        let usable = match sender.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            *sender = Some(connect(target.addr).await.map_err(|e| {
                tracing::debug!(error = %e, "connect failed");
                Outcome::Error
            })?);
        }
        let s = sender.as_mut().ok_or(Outcome::Error)?;
        s.ready().await.map_err(|_| Outcome::Error)?;
        let request = target.request().map_err(|_| Outcome::Error)?;
        let sent_at = Instant::now();
        let response = s.send_request(request).await.map_err(|e| {
            tracing::debug!(error = %e, "request failed");
            Outcome::Error
        })?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|_| Outcome::Error)?;
        Ok((Outcome::Status(status), sent_at))
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(Outcome::Timeout),
    }
}

/// The open-loop client of a run: the backend's address and the keep-alive connections,
/// reused from step to step. [`drain`](super::drain) uses it for its outage load too.
pub(super) struct LoadClient {
    target: Arc<Target>,
    /// One per sender task; `None` until (re)connected.
    senders: Vec<Option<Sender>>,
}

impl LoadClient {
    /// Opens the connections up front so the first step does not pay for the handshakes.
    pub(super) async fn open(base: &str, connections: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(connections > 0, "at least one connection is needed");
        let target = Arc::new(Target::resolve(base).await?);
        let mut senders = Vec::with_capacity(connections);
        for _ in 0..connections {
            senders.push(connect(target.addr).await.ok());
        }
        anyhow::ensure!(
            senders.iter().any(Option::is_some),
            "cannot connect to {base}"
        );
        Ok(LoadClient { target, senders })
    }

    /// Runs `step` to its end: every due request sent (or dropped) and answered (or timed out).
    pub(super) async fn run(&mut self, step: &Arc<Step>) -> anyhow::Result<()> {
        let tasks: Vec<_> = self
            .senders
            .drain(..)
            .map(|s| tokio::spawn(sender_task(step.clone(), self.target.clone(), s)))
            .collect();
        for task in tasks {
            self.senders
                .push(task.await.context("a sender task panicked")?);
        }
        Ok(())
    }
}

/// Whether a step passed, and why not.
pub fn judge(scheduled: u64, accepted: u64, p99_ms: f64, limit_ms: f64) -> Option<String> {
    if p99_ms > limit_ms {
        return Some(format!("p99 {p99_ms:.3} ms > {limit_ms} ms"));
    }
    let ratio = if scheduled == 0 {
        1.0
    } else {
        accepted as f64 / scheduled as f64
    };
    if ratio < MIN_ACCEPTED_RATIO {
        return Some(format!(
            "only {:.1} % of {scheduled} requests accepted",
            ratio * 100.0
        ));
    }
    None
}

/// Average cores of each group between `from_s` and `to_s`, from the samples nearest inside.
pub fn cores_between(samples: &[Sample], from_s: f64, to_s: f64) -> BTreeMap<String, f64> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_s >= from_s && s.t_s <= to_s)
        .collect();
    let mut cores = BTreeMap::new();
    if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
        let dt = last.t_s - first.t_s;
        if dt > 0.0 {
            for (name, end) in &last.procs {
                if let Some(start) = first.procs.get(name) {
                    let used = (end.cpu_seconds - start.cpu_seconds).max(0.0);
                    cores.insert(name.clone(), round3(used / dt));
                }
            }
        }
    }
    cores
}

/// Processed payments per second between consecutive readings that had a count.
pub fn fill_processed_rates(samples: &mut [Sample]) {
    let mut previous: Option<(f64, u64)> = None;
    for s in samples.iter_mut() {
        if let Some(p) = s.processed {
            if let Some((t, q)) = previous {
                let dt = s.t_s - t;
                if dt > 0.0 {
                    s.processed_per_sec = Some(round3(p.saturating_sub(q) as f64 / dt));
                }
            }
            previous = Some((s.t_s, p));
        }
    }
}

fn summarize_processed(samples: &[Sample], accepted: u64) -> Processed {
    let counted: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| s.processed.map(|p| (s.t_s, p)))
        .collect();
    let last = counted.last().copied();
    // The busy interval: from the last reading before the count first moved to the first
    // reading at its final value.
    let first_move = counted.windows(2).position(|w| w[1].1 > w[0].1);
    let final_value = last.map(|l| l.1);
    let settled = counted.iter().find(|c| Some(c.1) == final_value).copied();
    let avg = match (first_move, settled) {
        (Some(i), Some((t_end, p_end))) if t_end > counted[i].0 => Some(round3(
            (p_end - counted[i].1) as f64 / (t_end - counted[i].0),
        )),
        _ => None,
    };
    let peak = samples
        .iter()
        .filter_map(|s| s.processed_per_sec)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    Processed {
        accepted,
        processed: final_value,
        backlog_end: final_value.map(|p| signed(accepted) - signed(p)),
        avg_per_sec: avg,
        peak_per_sec: peak,
        stored_by_processors: None,
    }
}

fn summarize_processes(
    groups: &[ProcGroup],
    samples: &[Sample],
    accepted: u64,
) -> Vec<ProcessSummary> {
    groups
        .iter()
        .map(|g| {
            let readings: Vec<(f64, &GroupSample)> = samples
                .iter()
                .filter_map(|s| s.procs.get(&g.name).map(|p| (s.t_s, p)))
                .filter(|(_, p)| p.alive > 0)
                .collect();
            let (cpu_seconds, avg_cores) = match (readings.first(), readings.last()) {
                (Some(a), Some(b)) if b.0 > a.0 => {
                    let used = (b.1.cpu_seconds - a.1.cpu_seconds).max(0.0);
                    (round3(used), round3(used / (b.0 - a.0)))
                }
                _ => (0.0, 0.0),
            };
            ProcessSummary {
                name: g.name.clone(),
                pids: g.pids.clone(),
                cpu_seconds,
                avg_cores,
                rss_last_kb: readings.last().map_or(0, |r| r.1.rss_kb),
                rss_max_sampled_kb: readings.iter().map(|r| r.1.rss_kb).max().unwrap_or(0),
                rss_peak_kb: readings.last().map_or(0, |r| r.1.hwm_kb),
                cpu_us_per_payment: super::procstat::per_payment(cpu_seconds, accepted),
            }
        })
        .collect()
}

/// Ticks every `every` from `start`; a tick that comes late delays the next ones instead of
/// bursting to catch up. The samplers of this benchmark and of [`drain`](super::drain) use it.
pub(super) fn ticker(start: Instant, every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(start, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Polls the backend's totals and `/proc` until `stop` turns true.
async fn sampler(
    control: Control,
    groups: Vec<ProcGroup>,
    every: Duration,
    t0: Instant,
    accepted: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<Sample>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = ticker(Instant::now(), every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let at = Instant::now();
        let procs = groups
            .iter()
            .map(|g| (g.name.clone(), g.sample()))
            .collect();
        let processed = match tokio::time::timeout(
            every.max(Duration::from_millis(200)),
            control.backend_summary(None, None),
        )
        .await
        {
            Ok(Ok(s)) => Some(s.processed()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "backlog sample failed");
                None
            }
            Err(_) => None,
        };
        let accepted = accepted.load(Ordering::Relaxed);
        let sample = Sample {
            t_s: round3(at.saturating_duration_since(t0).as_secs_f64()),
            processed,
            accepted,
            backlog: processed.map(|p| signed(accepted) - signed(p)),
            processed_per_sec: None,
            procs,
        };
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sample);
    }
}

/// Runs the benchmark and returns its report.
pub async fn run_throughput(cfg: ThroughputConfig) -> anyhow::Result<ThroughputReport> {
    anyhow::ensure!(!cfg.rates.is_empty(), "at least one rate is needed");
    anyhow::ensure!(cfg.connections > 0, "at least one connection is needed");
    anyhow::ensure!(!cfg.step.is_zero(), "step length must be positive");

    let mut client = LoadClient::open(&cfg.backend_url, cfg.connections).await?;
    let (default_url, fallback_url) = cfg
        .processors
        .clone()
        .unwrap_or_else(|| ("http://127.0.0.1:0".into(), "http://127.0.0.1:0".into()));
    let control = Control::new(
        &cfg.backend_url,
        &default_url,
        &fallback_url,
        cfg.admin_token.clone(),
        DEFAULT_PROCESSOR_TOKEN.into(),
        Duration::from_secs(2),
    )?;
    if cfg.purge {
        control
            .purge_backend()
            .await
            .context("purging the backend")?;
    }
    if cfg.processors.is_some() {
        control
            .purge_all()
            .await
            .context("purging the processors")?;
    }

    let mut groups = vec![ProcGroup {
        name: SELF_GROUP.into(),
        pids: vec![std::process::id()],
    }];
    groups.extend(cfg.procs.iter().cloned());

    let started_at = OffsetDateTime::now_utc();
    let load_average = LoadAverages::started();
    let t_start = Instant::now();
    let accepted_total = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler_task = tokio::spawn(sampler(
        control.clone(),
        groups.clone(),
        cfg.sample_every,
        t_start,
        accepted_total.clone(),
        samples.clone(),
        stop_rx,
    ));

    let mut steps = Vec::new();
    let limit_ms = cfg.p99_limit.as_secs_f64() * 1000.0;
    for (index, rate) in cfg.rates.iter().copied().enumerate() {
        let mut scheduled =
            u64::try_from(u128::from(rate) * cfg.step.as_millis() / 1000).unwrap_or(u64::MAX);
        tracing::info!(index, rate, scheduled, "step started");
        let step = Arc::new(if rate == 0 {
            Step::closed(cfg.step, cfg.timeout, accepted_total.clone())
        } else {
            Step::new(
                rate,
                scheduled,
                cfg.max_lag,
                cfg.timeout,
                accepted_total.clone(),
            )
        });
        let started_s = round3(step.t0.saturating_duration_since(t_start).as_secs_f64());
        client.run(&step).await?;
        let elapsed_s = round3(step.t0.elapsed().as_secs_f64());
        let stats = step.take_stats();
        if rate == 0 {
            // Closed loop: what was sent is what was due.
            scheduled = stats.outcomes.requests;
        }
        let latency = stats.latency.percentiles();
        let stop_reason = judge(scheduled, stats.outcomes.accepted, latency.p99_ms, limit_ms);
        let ended_s = started_s + elapsed_s;
        let cpu_cores = {
            let samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
            cores_between(&samples, started_s, ended_s)
        };
        let report = StepReport {
            index,
            target_rate: rate,
            scheduled,
            started_s,
            elapsed_s,
            accepted_per_sec: round3(
                stats.outcomes.accepted as f64 / elapsed_s.max(cfg.step.as_secs_f64()),
            ),
            outcomes: stats.outcomes,
            dropped: stats.dropped,
            latency,
            service: stats.service.percentiles(),
            start_lag: stats.start_lag.percentiles(),
            cpu_cores,
            passed: stop_reason.is_none(),
            stop_reason,
        };
        tracing::info!(
            rate,
            accepted_per_sec = report.accepted_per_sec,
            p99_ms = report.latency.p99_ms,
            passed = report.passed,
            "step finished"
        );
        let passed = report.passed;
        steps.push(report);
        if !passed {
            break;
        }
    }
    drop(client);

    // Drain: keep sampling until the backend has processed everything accepted.
    let steps_end_s = t_start.elapsed().as_secs_f64();
    let drain_end = Instant::now() + cfg.drain;
    while Instant::now() < drain_end {
        let done = {
            let samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
            samples
                .last()
                .filter(|s| s.t_s >= steps_end_s)
                .and_then(|s| s.backlog)
                .is_some_and(|b| b <= 0)
        };
        if done {
            break;
        }
        tokio::time::sleep(cfg.sample_every.min(Duration::from_millis(250))).await;
    }
    // One last reading so the report ends with the final state.
    tokio::time::sleep(cfg.sample_every).await;
    let _ = stop_tx.send(true);
    sampler_task.await.context("the sampler panicked")?;
    let stored = match cfg.processors {
        Some(_) => {
            let (_, d, f) = control.final_summaries(None, None).await?;
            Some(d.total_requests + f.total_requests)
        }
        None => None,
    };
    let finished_at = OffsetDateTime::now_utc();

    let mut samples = std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner));
    fill_processed_rates(&mut samples);
    let accepted = accepted_total.load(Ordering::Relaxed);
    Ok(ThroughputReport {
        name: cfg.name.clone(),
        started_at: iso_ms(started_at),
        finished_at: iso_ms(finished_at),
        load_average: load_average.ended(),
        settings: ThroughputSettings {
            backend_url: cfg.backend_url.clone(),
            rates: cfg.rates.clone(),
            step_s: cfg.step.as_secs_f64(),
            p99_limit_ms: limit_ms,
            connections: cfg.connections,
            timeout_ms: whole_ms(cfg.timeout),
            max_lag_ms: whole_ms(cfg.max_lag),
            drain_s: cfg.drain.as_secs_f64(),
            sample_every_ms: whole_ms(cfg.sample_every),
        },
        max_passing_rate: steps
            .iter()
            .filter(|s| s.passed)
            .map(|s| s.target_rate)
            .max(),
        steps,
        processed: Processed {
            stored_by_processors: stored,
            ..summarize_processed(&samples, accepted)
        },
        processes: summarize_processes(&groups, &samples, accepted),
        samples,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(t_s: f64, processed: Option<u64>, cpu: f64) -> Sample {
        let mut procs = BTreeMap::new();
        procs.insert(
            "gw".to_owned(),
            GroupSample {
                cpu_seconds: cpu,
                rss_kb: 100 + t_s as u64,
                hwm_kb: 500,
                alive: 1,
            },
        );
        Sample {
            t_s,
            processed,
            accepted: 0,
            backlog: None,
            processed_per_sec: None,
            procs,
        }
    }

    #[test]
    fn due_times_follow_the_rate() {
        let step = Step {
            t0: Instant::now(),
            rate: 4,
            slots: 8,
            next: AtomicU64::new(0),
            max_lag: Duration::ZERO,
            timeout: Duration::ZERO,
            stats: Mutex::default(),
            accepted_total: Arc::default(),
            closed_until: None,
        };
        assert_eq!(step.due(0), step.t0);
        assert_eq!(step.due(1) - step.t0, Duration::from_millis(250));
        assert_eq!(step.due(7) - step.t0, Duration::from_millis(1750));
    }

    #[test]
    fn judges_latency_and_acceptance() {
        assert_eq!(judge(1000, 1000, 4.9, 5.0), None);
        assert!(judge(1000, 1000, 5.1, 5.0).unwrap().contains("p99"));
        assert_eq!(judge(1000, 990, 1.0, 5.0), None);
        assert!(judge(1000, 989, 1.0, 5.0).unwrap().contains("98.9 %"));
    }

    #[test]
    fn processed_rates_and_summary() {
        let mut s = vec![
            sample(0.0, Some(0), 0.0),
            sample(0.5, None, 0.2),
            sample(1.0, Some(0), 0.4),
            sample(1.5, Some(500), 0.9),
            sample(2.0, Some(1500), 1.4),
            sample(2.5, Some(1500), 1.5),
        ];
        fill_processed_rates(&mut s);
        assert_eq!(s[1].processed_per_sec, None);
        assert_eq!(s[2].processed_per_sec, Some(0.0));
        assert_eq!(s[3].processed_per_sec, Some(1000.0));
        assert_eq!(s[4].processed_per_sec, Some(2000.0));
        let p = summarize_processed(&s, 1600);
        assert_eq!(p.processed, Some(1500));
        assert_eq!(p.backlog_end, Some(100));
        assert_eq!(p.peak_per_sec, Some(2000.0));
        // 1500 processed between t=1.0 and t=2.0.
        assert_eq!(p.avg_per_sec, Some(1500.0));
    }

    #[test]
    fn cpu_per_step_and_process_summary() {
        let s = vec![
            sample(0.0, None, 0.0),
            sample(1.0, None, 0.5),
            sample(2.0, None, 2.5),
        ];
        let cores = cores_between(&s, 1.0, 2.0);
        assert_eq!(cores.get("gw"), Some(&2.0));
        assert!(cores_between(&s, 5.0, 6.0).is_empty());
        let groups = vec![ProcGroup {
            name: "gw".into(),
            pids: vec![1],
        }];
        let summary = summarize_processes(&groups, &s, 0);
        assert_eq!(summary[0].cpu_seconds, 2.5);
        assert_eq!(summary[0].avg_cores, 1.25);
        assert_eq!(summary[0].rss_last_kb, 102);
        assert_eq!(summary[0].rss_max_sampled_kb, 102);
        assert_eq!(summary[0].rss_peak_kb, 500);
    }

    #[tokio::test]
    async fn resolves_targets() {
        let t = Target::resolve("http://127.0.0.1:9999/").await.unwrap();
        assert_eq!(t.addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:9999");
        assert_eq!(t.uri, "/payments");
        let t = Target::resolve("http://127.0.0.1:8080/api").await.unwrap();
        assert_eq!(t.uri, "/api/payments");
        assert!(Target::resolve("https://example.invalid").await.is_err());
    }
}
