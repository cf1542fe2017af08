//! `paystream-load`: the reference load test (`rinha`), the throughput benchmark
//! (`throughput`), the backlog drain benchmark (`drain`) and the soak (`soak`).
//!
//! Data flow: flags → a run's configuration → the run in `paystream_load_tests::load`
//! returns its report → [`write_run`] writes `<out>/<name>.json` and `<out>/<name>.svg`
//! (`load::plot`) and prints the table (`load::report`): the one place results reach the
//! disk and stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use paystream_load_tests::load::control::Endpoints;
use paystream_load_tests::load::procstat::{ProcGroup, Watch};
use paystream_load_tests::load::{
    plot, report, run_drain, run_rinha, run_soak, run_throughput, DrainConfig, RinhaConfig,
    SoakConfig, ThroughputConfig,
};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "paystream-load", about = "Paystream load generators", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The reference test of docs/protocol.md §5: ramping VUs, six processor stages, checker, score.
    Rinha(RinhaArgs),
    /// Open-loop benchmark stepping through fixed arrival rates.
    Throughput(ThroughputArgs),
    /// Backlog drain: both processors fail while payments queue, then the default recovers;
    /// measures how fast the backlog is processed. Leaves both processors healthy, no delay.
    Drain(DrainArgs),
    /// The soak (a benchmark, not CI): open-loop payments for a long run while the processor
    /// conditions of docs/protocol.md §5 cycle; checks, memory of every process and of Redis, a
    /// drain and the final totals; judges flatness once retention holds state steady.
    /// Leaves both processors healthy, no delay. Exits non-zero when the verdict fails.
    Soak(SoakArgs),
}

#[derive(Args)]
struct Output {
    /// Directory for <name>.json and <name>.svg.
    #[arg(long, default_value = "load-tests/results")]
    out: PathBuf,
    /// Base name of the files [default: <command>-<UTC timestamp>].
    #[arg(long)]
    name: Option<String>,
}

impl Output {
    /// The files' base name, `<kind>-<UTC timestamp>` by default.
    fn name(&self, kind: &str) -> String {
        self.name.clone().unwrap_or_else(|| default_name(kind))
    }
}

/// The backend and the processors of `rinha` and `drain`.
#[derive(Args)]
struct EndpointArgs {
    /// The backend (load balancer) base URL.
    #[arg(long, default_value = "http://127.0.0.1:9999")]
    backend: String,
    /// The default processor's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    default_url: String,
    /// The fallback processor's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8002")]
    fallback_url: String,
    /// Backend admin token, sent as X-Admin-Token with the purge.
    #[arg(long)]
    admin_token: Option<String>,
    /// Processors' admin token, sent as X-Rinha-Token.
    #[arg(long, default_value = "123")]
    processor_token: String,
}

impl From<EndpointArgs> for Endpoints {
    fn from(a: EndpointArgs) -> Self {
        Endpoints {
            backend_url: a.backend,
            default_url: a.default_url,
            fallback_url: a.fallback_url,
            admin_token: a.admin_token,
            processor_token: a.processor_token,
        }
    }
}

#[derive(Args)]
struct RinhaArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Peak virtual users.
    #[arg(long, default_value_t = 550)]
    max_requests: u32,
    /// Length of the ramp.
    #[arg(long, default_value_t = 60.0)]
    duration_secs: f64,
    /// Length of each stage and the checker's period.
    #[arg(long, default_value_t = 10.0)]
    stage_secs: f64,
    /// Client timeout of each payment, ms.
    #[arg(long, default_value_t = 1500)]
    timeout_ms: u64,
    /// Pause before the final summaries, s.
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
    /// Report a process group's CPU per payment: NAME=PID[,PID...] (repeatable).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pids: Vec<ProcGroup>,
    /// The stack's Redis (e.g. redis+unix:///RUN_DIR/redis.sock): report each command's
    /// calls and µs per payment (its statistics are reset at the start).
    #[arg(long)]
    redis_url: Option<String>,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct ThroughputArgs {
    /// The backend (load balancer or a gateway) base URL.
    #[arg(long, default_value = "http://127.0.0.1:9999")]
    backend: String,
    /// Backend admin token, sent as X-Admin-Token with the purge.
    #[arg(long)]
    admin_token: Option<String>,
    /// Do not purge the backend first.
    #[arg(long)]
    no_purge: bool,
    /// Arrival rates to step through, req/s; 0 is a closed-loop step (each connection sends
    /// its next request as soon as the previous one is answered).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,40000,60000"
    )]
    rates: Vec<u64>,
    /// Length of each step, s.
    #[arg(long, default_value_t = 10.0)]
    step_secs: f64,
    /// Stop stepping after a step whose p99 exceeds this, ms.
    #[arg(long, default_value_t = 5.0)]
    p99_limit_ms: f64,
    #[command(flatten)]
    open_loop: OpenLoopArgs,
    /// After the last step, wait up to this for the backlog to drain, s.
    #[arg(long, default_value_t = 10.0)]
    drain_secs: f64,
    /// Watch a process group's CPU and memory: NAME=PID[,PID...] (repeatable).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pids: Vec<ProcGroup>,
    /// The processors' base URLs, DEFAULT,FALLBACK: purged first, and what they stored is
    /// reported beside what was accepted and processed.
    #[arg(long, value_delimiter = ',')]
    processors: Option<Vec<String>>,
    #[command(flatten)]
    output: Output,
}

/// The open-loop client of `throughput` and `soak`.
#[derive(Args)]
struct OpenLoopArgs {
    /// Keep-alive connections (= most requests in flight).
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Per-request timeout, ms.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Drop a request that cannot start this long after its due time, ms.
    #[arg(long, default_value_t = 1000)]
    max_lag_ms: u64,
}

#[derive(Args)]
struct DrainArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Payments posted per second during the outage.
    #[arg(long, default_value_t = 550)]
    rate: u64,
    /// How long both processors fail while payments are posted, s.
    #[arg(long, default_value_t = 10.0)]
    outage_secs: f64,
    /// The default processor's delay after it recovers, ms.
    #[arg(long, default_value_t = 20)]
    recovery_delay_ms: u64,
    /// Give up waiting for the drain after this long since the recovery, s.
    #[arg(long, default_value_t = 60.0)]
    timeout_secs: f64,
    /// How often the backend's summary is read, ms.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Keep-alive connections for the outage load (= most payments in flight).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Timeout of each payment, ms.
    #[arg(long, default_value_t = 2000)]
    request_timeout_ms: u64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct SoakArgs {
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// Payments posted per second (open loop).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// How long payments are posted, s.
    #[arg(long, default_value_t = 1800.0)]
    duration_secs: f64,
    /// Length of each processor condition and the checker's period, s.
    #[arg(long, default_value_t = 10.0)]
    stage_secs: f64,
    /// How often memory, Redis and the backlog are sampled, s.
    #[arg(long, default_value_t = 5.0)]
    sample_secs: f64,
    #[command(flatten)]
    open_loop: OpenLoopArgs,
    /// After the load, wait up to this for every accepted payment to be processed, s.
    #[arg(long, default_value_t = 120.0)]
    drain_timeout_secs: f64,
    /// The stack's Redis (memory, keys, stream); not sampled without it.
    #[arg(long)]
    redis_url: Option<String>,
    /// The stack's PAYSTREAM_KEY_PREFIX.
    #[arg(long, default_value = "ps")]
    key_prefix: String,
    /// The stack's PAYMENT_RETENTION, s (where the steady window starts).
    #[arg(long)]
    payment_retention_secs: Option<f64>,
    /// The stack's SUMMARY_DETAIL_HORIZON, s.
    #[arg(long)]
    detail_horizon_secs: Option<f64>,
    /// How far back the older window checked beside each recent one ends, s (beyond the
    /// detail horizon, its edges are read from compacted detail).
    #[arg(long, default_value_t = 120.0)]
    old_check_age_secs: f64,
    /// Watch a fixed process group: NAME=PID[,PID...] (repeatable; reported, not judged).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pids: Vec<ProcGroup>,
    /// The stack's pid files (scripts/up.sh's $RUN_DIR/pids), read again at every sample so
    /// restarted processes are followed; these groups are judged.
    #[arg(long)]
    pid_dir: Option<PathBuf>,
    #[command(flatten)]
    output: Output,
}

fn secs(s: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{flag} must be a non-negative number of seconds"))
}

fn default_name(kind: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{kind}-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Writes a finished run's `<out>/<name>.json` and `<out>/<name>.svg`, then prints its
/// table and the files written.
fn write_run<R: Serialize>(
    output: &Output,
    name: &str,
    report: &R,
    table: fn(&R) -> String,
    svg: fn(&Path, &R) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = &output.out;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_path = dir.join(format!("{name}.json"));
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = dir.join(format!("{name}.svg"));
    svg(&svg_path, report).with_context(|| format!("drawing {}", svg_path.display()))?;
    print!("{}", table(report));
    for path in [json_path, svg_path] {
        println!("written: {}", path.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rinha(a) => {
            let name = a.output.name("rinha");
            let cfg = RinhaConfig {
                endpoints: a.endpoints.into(),
                max_requests: a.max_requests,
                duration: secs(a.duration_secs, "duration-secs")?,
                stage: secs(a.stage_secs, "stage-secs")?,
                timeout: Duration::from_millis(a.timeout_ms),
                settle: secs(a.settle_secs, "settle-secs")?,
                name: name.clone(),
                pids: a.pids,
                redis_url: a.redis_url,
            };
            let r = run_rinha(cfg).await?;
            write_run(&a.output, &name, &r, report::rinha_table, plot::rinha_svg)?;
        }
        Command::Throughput(a) => {
            let name = a.output.name("throughput");
            let cfg = ThroughputConfig {
                backend_url: a.backend,
                admin_token: a.admin_token,
                purge: !a.no_purge,
                rates: a.rates,
                step: secs(a.step_secs, "step-secs")?,
                p99_limit: secs(a.p99_limit_ms / 1000.0, "p99-limit-ms")?,
                connections: a.open_loop.connections,
                timeout: Duration::from_millis(a.open_loop.timeout_ms),
                max_lag: Duration::from_millis(a.open_loop.max_lag_ms),
                drain: secs(a.drain_secs, "drain-secs")?,
                sample_every: Duration::from_millis(500),
                procs: a.pids,
                name: name.clone(),
                processors: match a.processors.as_deref() {
                    None => None,
                    Some([default, fallback]) => Some((default.clone(), fallback.clone())),
                    Some(other) => anyhow::bail!(
                        "--processors takes two URLs, DEFAULT,FALLBACK; got {other:?}"
                    ),
                },
            };
            let r = run_throughput(cfg).await?;
            write_run(
                &a.output,
                &name,
                &r,
                report::throughput_table,
                plot::throughput_svg,
            )?;
            let p = &r.processed;
            if let Some(stored) = p.stored_by_processors {
                // Every 2xx processed, each once: what the processors hold is what the
                // backend counts (an answer lost to a client timeout may add payments that
                // were accepted without the client knowing, never fewer).
                anyhow::ensure!(
                    p.processed == Some(stored) && stored >= p.accepted,
                    "not exactly once: {} accepted, {:?} processed, {stored} stored by the processors",
                    p.accepted,
                    p.processed
                );
            }
        }
        Command::Drain(a) => {
            let name = a.output.name("drain");
            let cfg = DrainConfig {
                endpoints: a.endpoints.into(),
                rate: a.rate,
                outage: secs(a.outage_secs, "outage-secs")?,
                recovery_delay_ms: a.recovery_delay_ms,
                timeout: secs(a.timeout_secs, "timeout-secs")?,
                poll_every: Duration::from_millis(a.poll_ms),
                connections: a.connections,
                request_timeout: Duration::from_millis(a.request_timeout_ms),
                name: name.clone(),
            };
            let r = run_drain(cfg).await?;
            write_run(&a.output, &name, &r, report::drain_table, plot::drain_svg)?;
            if let Some(e) = &r.restore_error {
                anyhow::bail!("the processors were not set back to healthy: {e}");
            }
        }
        Command::Soak(a) => {
            let name = a.output.name("soak");
            let optional = |s: Option<f64>, flag| s.map(|s| secs(s, flag)).transpose();
            let cfg = SoakConfig {
                endpoints: a.endpoints.into(),
                rate: a.rate,
                duration: secs(a.duration_secs, "duration-secs")?,
                stage: secs(a.stage_secs, "stage-secs")?,
                sample_every: secs(a.sample_secs, "sample-secs")?,
                connections: a.open_loop.connections,
                timeout: Duration::from_millis(a.open_loop.timeout_ms),
                max_lag: Duration::from_millis(a.open_loop.max_lag_ms),
                drain_timeout: secs(a.drain_timeout_secs, "drain-timeout-secs")?,
                redis_url: a.redis_url,
                key_prefix: a.key_prefix,
                payment_retention: optional(a.payment_retention_secs, "payment-retention-secs")?,
                detail_horizon: optional(a.detail_horizon_secs, "detail-horizon-secs")?,
                old_check_age: secs(a.old_check_age_secs, "old-check-age-secs")?,
                watch: Watch {
                    fixed: a.pids,
                    pid_dir: a.pid_dir,
                },
                name: name.clone(),
            };
            let r = run_soak(cfg).await?;
            write_run(&a.output, &name, &r, report::soak_table, plot::soak_svg)?;
            if r.verdict.passed == Some(false) {
                anyhow::bail!("the soak failed: {}", r.verdict.reasons.join("; "));
            }
        }
    }
    Ok(())
}
