//! `tower-cost`: what a typical tower stack around the gateway's router costs per request
//! (issue 10, scope 6).
//!
//! Starts this binary twice as `serve-gateway` ([`gateway_stack`](super::gateway_stack)):
//! once plain (the product's `service_fn`), once with the tower layers; both against the same
//! Redis (the gateway's environment: `REDIS_URL`, `BACKLOG_LIMIT`, ...). Then, per round and
//! rate, the open-loop [`throughput`](super::throughput) client loads each in turn (the order
//! alternates between rounds) and reads the gateway process' CPU from `/proc`. Writes
//! `<out>/<name>.json`; prints its own table, so nothing imports this back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use super::control::{Control, DEFAULT_PROCESSOR_TOKEN};
use super::gateway_stack::{ServiceStack, TOWER_CONCURRENCY_LIMIT, TOWER_TIMEOUT};
use super::procstat::{LoadAverages, ProcGroup};
use super::stats::Spread;
use super::throughput::{run_throughput, ThroughputConfig};

/// How long the purge before each step may take.
const PURGE_TIMEOUT: Duration = Duration::from_secs(120);

/// What to measure.
#[derive(Clone, Debug)]
pub struct TowerCostConfig {
    /// Fixed arrival rates, requests per second; each is one measurement.
    pub rates: Vec<u64>,
    /// How long each rate is held.
    pub step: Duration,
    pub rounds: usize,
    /// Keep-alive connections of the load client.
    pub connections: usize,
    /// This binary (it is started again as `serve-gateway`).
    pub exe: PathBuf,
    pub out_dir: Option<PathBuf>,
    pub name: String,
}

/// One stack at one rate in one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TowerSample {
    pub stack: ServiceStack,
    pub round: usize,
    pub rate: u64,
    pub accepted_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The gateway process' CPU over the step, per accepted payment.
    pub gateway_cpu_us_per_payment: Option<f64>,
    pub load_average: LoadAverages,
}

/// One stack at one rate over the rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TowerSummary {
    pub stack: ServiceStack,
    pub rate: u64,
    pub gateway_cpu_us_per_payment: Option<Spread>,
    pub p50_ms: Option<Spread>,
    pub p99_ms: Option<Spread>,
}

/// Everything `tower-cost` measured: written as `<out>/<name>.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TowerCostReport {
    pub name: String,
    pub rates: Vec<u64>,
    pub step_s: f64,
    pub rounds: usize,
    pub connections: usize,
    /// The tower layers, outermost first.
    pub tower_stack: Vec<String>,
    pub summaries: Vec<TowerSummary>,
    pub samples: Vec<TowerSample>,
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

/// A `serve-gateway` child and where it listens.
struct Served {
    stack: ServiceStack,
    child: Child,
    pid: u32,
    url: String,
}

async fn serve(exe: &PathBuf, stack: ServiceStack) -> anyhow::Result<Served> {
    let mut child = Command::new(exe)
        .args([
            "serve-gateway",
            "--stack",
            stack.name(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve-gateway", exe.display()))?;
    let pid = child.id().context("the gateway exited at once")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the gateway did not print its address within 30 s")??
        .context("the gateway exited before listening (see its stderr)")?;
    Ok(Served {
        stack,
        child,
        pid,
        url: format!("http://{}", addr.trim()),
    })
}

/// Medians per stack and rate, in the order of `rates` then [`ServiceStack::ALL`].
pub fn summarize(samples: &[TowerSample], rates: &[u64]) -> Vec<TowerSummary> {
    let mut out = Vec::new();
    for &rate in rates {
        for stack in ServiceStack::ALL {
            let of: Vec<&TowerSample> = samples
                .iter()
                .filter(|s| s.stack == stack && s.rate == rate)
                .collect();
            if of.is_empty() {
                continue;
            }
            let cpu: Vec<f64> = of
                .iter()
                .filter_map(|s| s.gateway_cpu_us_per_payment)
                .collect();
            let p50: Vec<f64> = of.iter().map(|s| s.p50_ms).collect();
            let p99: Vec<f64> = of.iter().map(|s| s.p99_ms).collect();
            out.push(TowerSummary {
                stack,
                rate,
                gateway_cpu_us_per_payment: Spread::of(&cpu),
                p50_ms: Spread::of(&p50),
                p99_ms: Spread::of(&p99),
            });
        }
    }
    out
}

/// Runs every round and writes `<out>/<name>.json`.
pub async fn run_tower_cost(cfg: TowerCostConfig) -> anyhow::Result<TowerCostReport> {
    anyhow::ensure!(
        cfg.rounds > 0 && !cfg.rates.is_empty(),
        "rounds and rates are needed"
    );
    let mut served = Vec::new();
    for stack in ServiceStack::ALL {
        served.push(serve(&cfg.exe, stack).await?);
    }
    let mut samples = Vec::new();
    for round in 1..=cfg.rounds {
        for &rate in &cfg.rates {
            for k in 0..served.len() {
                // Each round starts with the other stack.
                let s = &served[(round + k) % served.len()];
                // Both gateways share the Redis: the previous step's payments go first, with
                // time to spare (a purge of 100 000 payments under AOF `always` can take
                // seconds on a busy machine), outside the measurement.
                Control::new(
                    &s.url,
                    "http://127.0.0.1:0",
                    "http://127.0.0.1:0",
                    None,
                    DEFAULT_PROCESSOR_TOKEN.into(),
                    PURGE_TIMEOUT,
                )?
                .purge_backend()
                .await
                .with_context(|| format!("purging before {} at {rate}/s", s.stack.name()))?;
                let load_average = LoadAverages::started();
                let r = run_throughput(ThroughputConfig {
                    backend_url: s.url.clone(),
                    purge: false,
                    rates: vec![rate],
                    step: cfg.step,
                    // Measure, never stop early.
                    p99_limit: Duration::from_secs(3600),
                    connections: cfg.connections,
                    drain: Duration::ZERO,
                    procs: vec![ProcGroup {
                        name: "gateway".into(),
                        pids: vec![s.pid],
                    }],
                    out_dir: None,
                    name: format!("{}-{rate}-{round}", s.stack.name()),
                    ..ThroughputConfig::default()
                })
                .await
                .with_context(|| format!("{} at {rate}/s", s.stack.name()))?;
                let step = r.steps.first().context("no step ran")?;
                let sample = TowerSample {
                    stack: s.stack,
                    round,
                    rate,
                    accepted_per_sec: step.accepted_per_sec,
                    p50_ms: step.latency.p50_ms,
                    p99_ms: step.latency.p99_ms,
                    gateway_cpu_us_per_payment: r
                        .processes
                        .iter()
                        .find(|p| p.name == "gateway")
                        .and_then(|p| p.cpu_us_per_payment),
                    load_average: load_average.ended(),
                };
                tracing::info!(
                    stack = s.stack.name(),
                    round,
                    rate,
                    cpu_us = sample.gateway_cpu_us_per_payment,
                    p99_ms = sample.p99_ms,
                    "measured"
                );
                samples.push(sample);
            }
        }
    }
    for mut s in served {
        let _ = s.child.start_kill();
        let _ = s.child.wait().await;
    }
    let mut report = TowerCostReport {
        name: cfg.name.clone(),
        rates: cfg.rates.clone(),
        step_s: cfg.step.as_secs_f64(),
        rounds: cfg.rounds,
        connections: cfg.connections,
        tower_stack: vec![
            "map_result (shed → 503, timeout → 504)".into(),
            "LoadShed".into(),
            format!("GlobalConcurrencyLimit({TOWER_CONCURRENCY_LIMIT})"),
            format!("Timeout({} s)", TOWER_TIMEOUT.as_secs()),
            "service_fn(router::handle)".into(),
        ],
        summaries: summarize(&samples, &cfg.rates),
        samples,
        notes: vec![
            "both stacks are `paystream-load serve-gateway` processes of the same build, \
             configured by the same environment; `plain` runs gateway::run exactly as \
             paystream-gateway does."
                .into(),
            "CPU is the gateway process' utime + stime from /proc over the step, per accepted \
             payment (the load generator is another process)."
                .into(),
        ],
        files: Vec::new(),
    };
    super::report::write_report(cfg.out_dir.as_deref(), &cfg.name, &mut report, |r| {
        &mut r.files
    })?;
    Ok(report)
}

impl TowerCostReport {
    /// The human table: one line per stack and rate.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "gateway with and without a tower stack ({} rounds of {} s per rate; median (range))",
            self.rounds, self.step_s
        );
        let _ = writeln!(
            out,
            "{:>7}  {:<6} {:>24} {:>8} {:>18}",
            "rate", "stack", "gateway CPU µs/payment", "p50 ms", "p99 ms"
        );
        for s in &self.summaries {
            let _ = writeln!(
                out,
                "{:>7}  {:<6} {:>24} {:>8} {:>18}",
                s.rate,
                s.stack.name(),
                Spread::show_or_na(s.gateway_cpu_us_per_payment, 1),
                s.p50_ms
                    .map_or_else(|| "n/a".into(), |v| format!("{:.3}", v.median)),
                Spread::show_or_na(s.p99_ms, 2),
            );
        }
        for sample in &self.samples {
            let _ = writeln!(
                out,
                "  round {} {} at {}/s: load average {}",
                sample.round,
                sample.stack.name(),
                sample.rate,
                sample.load_average
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(stack: ServiceStack, round: usize, rate: u64, cpu: f64, p99: f64) -> TowerSample {
        TowerSample {
            stack,
            round,
            rate,
            accepted_per_sec: rate as f64,
            p50_ms: 0.5,
            p99_ms: p99,
            gateway_cpu_us_per_payment: Some(cpu),
            load_average: LoadAverages::default(),
        }
    }

    #[test]
    fn summaries_are_medians_per_stack_and_rate_in_order() {
        let samples = [
            sample(ServiceStack::Tower, 1, 5000, 30.0, 2.0),
            sample(ServiceStack::Plain, 1, 5000, 20.0, 1.0),
            sample(ServiceStack::Plain, 2, 5000, 24.0, 3.0),
            sample(ServiceStack::Tower, 2, 5000, 34.0, 2.5),
            sample(ServiceStack::Plain, 1, 10000, 18.0, 4.0),
        ];
        let s = summarize(&samples, &[5000, 10000]);
        assert_eq!(s.len(), 3, "no tower sample at 10000/s: no line");
        assert_eq!((s[0].stack, s[0].rate), (ServiceStack::Plain, 5000));
        let cpu = s[0].gateway_cpu_us_per_payment.unwrap();
        assert_eq!((cpu.median, cpu.min, cpu.max), (22.0, 20.0, 24.0));
        assert_eq!(s[0].p99_ms.unwrap().max, 3.0);
        assert_eq!(s[1].stack, ServiceStack::Tower);
        assert_eq!(s[1].gateway_cpu_us_per_payment.unwrap().median, 32.0);
        assert_eq!((s[2].rate, s[2].p99_ms.unwrap().median), (10000, 4.0));
        let report = TowerCostReport {
            name: "t".into(),
            rates: vec![5000, 10000],
            step_s: 10.0,
            rounds: 2,
            connections: 128,
            tower_stack: Vec::new(),
            summaries: s,
            samples: samples.to_vec(),
            notes: Vec::new(),
            files: Vec::new(),
        };
        let table = report.table();
        assert!(table.contains("22.0 (20.0–24.0)"), "{table}");
    }
}
