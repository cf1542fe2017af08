//! `paystream-load`: the reference load test (`rinha`), the throughput benchmark
//! (`throughput`), the backlog drain benchmark (`drain`), what Redis spends per recorded
//! payment (`redis-cost`), the summary query with millions of payments (`state-scale`), the
//! soak (`soak`), and the measurements of issue 10's open questions: the reference run
//! against a static nginx (`ref-ratio`), where a process' CPU goes (`perf-buckets`), a
//! deadpool-redis pool (`redis-pool`) and a tower stack (`tower-cost`, over `serve-gateway`).
//! Flags in, report out; the work is in `paystream_load_tests::load`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use paystream_load_tests::load::control::Endpoints;
use paystream_load_tests::load::gateway_stack::{serve_gateway, ServiceStack};
use paystream_load_tests::load::perf_buckets::{run_perf_buckets, PerfBucketsConfig};
use paystream_load_tests::load::procstat::{ProcGroup, Watch};
use paystream_load_tests::load::ref_compare::{run_ref_ratio, RefRatioConfig, TARGET_RATIO};
use paystream_load_tests::load::tower_cost::{run_tower_cost, TowerCostConfig};
use paystream_load_tests::load::{
    report, run_drain, run_redis_cost, run_redis_pool, run_rinha, run_soak, run_state_scale,
    run_throughput, DrainConfig, RedisCostConfig, RedisPoolConfig, RinhaConfig, SoakConfig,
    StateScaleConfig, ThroughputConfig,
};

#[derive(Parser)]
#[command(name = "paystream-load", about = "Paystream load generators", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The reference test of SPEC section 5: ramping VUs, six processor stages, checker, score.
    Rinha(RinhaArgs),
    /// Open-loop benchmark stepping through fixed arrival rates.
    Throughput(ThroughputArgs),
    /// Backlog drain: both processors fail while payments queue, then the default recovers;
    /// measures how fast the backlog is processed. Leaves both processors healthy, no delay.
    Drain(DrainArgs),
    /// Redis CPU, wall time and memory per recorded payment: record.lua one at a time and
    /// batched, the same writes as MULTI pipelines, without `ev`, and with a per-ms bucket.
    /// Uses keys of its own prefix and deletes them.
    RedisCost(RedisCostArgs),
    /// Compares reference runs against a static nginx with the stack's, round by round: p50,
    /// p99, their ratio and the verdict against the target (issue 10: p99 ≤ 1.5×).
    RefRatio(RefRatioArgs),
    /// Groups a `perf script` of one process into where its CPU goes (parse, metrics, redis,
    /// http, runtime, kernel, ...), in % and µs per payment.
    PerfBuckets(PerfBucketsArgs),
    /// The gateway's accept from N concurrent callers over the multiplexed ConnectionManager
    /// (today) and over deadpool-redis pools: calls/s, client and Redis CPU per call, p50/p99.
    /// Uses keys of its own prefix and deletes them.
    RedisPool(RedisPoolArgs),
    /// The gateway's CPU per payment with and without a tower stack (LoadShed, concurrency
    /// limit, Timeout), both served by this binary against the Redis of the environment.
    TowerCost(TowerCostArgs),
    /// Serves the gateway (configured by its environment variables) from this binary, plain
    /// or inside a tower stack; prints the bound address first. Used by `tower-cost`.
    ServeGateway(ServeGatewayArgs),
    /// The soak (a benchmark, not CI): open-loop payments for a long run while SPEC section
    /// 5's processor conditions cycle; checks, memory of every process and of Redis, a
    /// drain and the final totals; judges flatness once retention holds state steady.
    /// Leaves both processors healthy, no delay. Exits non-zero when the verdict fails.
    Soak(SoakArgs),
    /// The summary query's latency and Redis memory once Redis holds many processed payments:
    /// starts its own scratch redis-server (ephemeral port, own data dir, AOF off), fills it
    /// through accept.lua and record.lua, then measures per retention state.
    StateScale(StateScaleArgs),
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
    /// The output directory and the files' base name, `<kind>-<UTC timestamp>` by default.
    fn into_dir_and_name(self, kind: &str) -> (Option<PathBuf>, String) {
        (
            Some(self.out),
            self.name.unwrap_or_else(|| default_name(kind)),
        )
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
    /// Arrival rates to step through, req/s.
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
struct RedisCostArgs {
    /// The Redis to measure (use a scratch server: its CPU is read from INFO).
    #[arg(long, default_value = "redis://127.0.0.1:6390")]
    redis_url: String,
    /// Payments per variant and round.
    #[arg(long, default_value_t = 20_000)]
    payments: usize,
    /// Rounds; the variants alternate within each.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Payments per record.lua call (lua-batch) or per pipeline round trip (multi-*).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Payments per second of requestedAt (how many share a millisecond bucket).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Idle time inside each CPU window after the last write (covers everysec's fsync), ms.
    #[arg(long, default_value_t = 1100)]
    settle_ms: u64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct RefRatioArgs {
    /// The static nginx's `rinha` JSON files, in round order (repeatable).
    #[arg(long = "static", required = true)]
    static_files: Vec<PathBuf>,
    /// The stack's `rinha` JSON files, in the same order (repeatable).
    #[arg(long = "stack", required = true)]
    stack_files: Vec<PathBuf>,
    /// The largest stack p99 / static p99 that meets the target.
    #[arg(long, default_value_t = TARGET_RATIO)]
    target_ratio: f64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct PerfBucketsArgs {
    /// `perf script` output of the profiled process.
    #[arg(long)]
    script: PathBuf,
    /// `throughput` JSON of an unprofiled run at the same rate (the CPU per payment).
    #[arg(long)]
    load: PathBuf,
    /// `throughput` JSON of the profiled run (its CPU shows perf's overhead).
    #[arg(long)]
    profiled_load: Option<PathBuf>,
    /// The process group in those reports (as in `--pid NAME=...`).
    #[arg(long)]
    group: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct RedisPoolArgs {
    /// The Redis to measure (use a scratch server: its CPU is read from INFO).
    #[arg(long)]
    redis_url: String,
    /// Concurrent callers, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,128")]
    callers: Vec<usize>,
    /// Connections of the deadpool-redis pools.
    #[arg(long, value_delimiter = ',', default_value = "4,16")]
    pool_sizes: Vec<usize>,
    /// Length of each measurement, s.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Rounds; the variants alternate within each.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct TowerCostArgs {
    /// Fixed arrival rates, req/s, each held for --step-secs per stack and round.
    #[arg(long, value_delimiter = ',', default_value = "5000,10000")]
    rates: Vec<u64>,
    #[arg(long, default_value_t = 10.0)]
    step_secs: f64,
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Keep-alive connections of the load client.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct ServeGatewayArgs {
    /// How the router is served.
    #[arg(long, value_enum, default_value = "plain")]
    stack: ServiceStack,
    /// Where to listen (port 0: any; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
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

#[derive(Args)]
struct StateScaleArgs {
    /// Processed payments to fill Redis with.
    #[arg(long, default_value_t = 10_000_000)]
    payments: u64,
    /// Payments per second of requestedAt (1 000/s: 10 M payments span 2.8 h).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Payments per accept.lua and per record.lua call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Script calls in flight during the fill.
    #[arg(long, default_value_t = 8)]
    lanes: usize,
    /// Summary calls per kind of window and retention state.
    #[arg(long, default_value_t = 1000)]
    reps: usize,
    /// Distinct windows per kind (each also checked against the payments' own totals).
    #[arg(long, default_value_t = 20)]
    windows: usize,
    /// SUMMARY_DETAIL_HORIZON of the compaction, s.
    #[arg(long, default_value_t = common::retention::DEFAULT_DETAIL_HORIZON.as_secs())]
    detail_horizon_secs: u64,
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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        // The gateway's own start: its logging and configuration (exit 2 naming a bad
        // variable), and its runtime (GATEWAY_THREADS), as `paystream-gateway` has them.
        Command::ServeGateway(a) => {
            let config = common::runtime::configure(
                "paystream-load serve-gateway",
                gateway::GatewayConfig::from_env,
            );
            common::runtime::build(config.threads)?
                .block_on(serve_gateway(config, a.listen, a.stack))
        }
        command => {
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
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rinha(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("rinha");
            let cfg = RinhaConfig {
                endpoints: a.endpoints.into(),
                max_requests: a.max_requests,
                duration: secs(a.duration_secs, "duration-secs")?,
                stage: secs(a.stage_secs, "stage-secs")?,
                timeout: Duration::from_millis(a.timeout_ms),
                settle: secs(a.settle_secs, "settle-secs")?,
                out_dir,
                name,
                pids: a.pids,
                redis_url: a.redis_url,
            };
            let r = run_rinha(cfg).await?;
            print!("{}", report::rinha_table(&r));
        }
        Command::Throughput(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("throughput");
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
                out_dir,
                name,
            };
            let r = run_throughput(cfg).await?;
            print!("{}", report::throughput_table(&r));
        }
        Command::Drain(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("drain");
            let cfg = DrainConfig {
                endpoints: a.endpoints.into(),
                rate: a.rate,
                outage: secs(a.outage_secs, "outage-secs")?,
                recovery_delay_ms: a.recovery_delay_ms,
                timeout: secs(a.timeout_secs, "timeout-secs")?,
                poll_every: Duration::from_millis(a.poll_ms),
                connections: a.connections,
                request_timeout: Duration::from_millis(a.request_timeout_ms),
                out_dir,
                name,
            };
            let r = run_drain(cfg).await?;
            print!("{}", report::drain_table(&r));
            if let Some(e) = &r.restore_error {
                anyhow::bail!("the processors were not set back to healthy: {e}");
            }
        }
        Command::RedisCost(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("redis-cost");
            let cfg = RedisCostConfig {
                redis_url: a.redis_url,
                payments: a.payments,
                rounds: a.rounds,
                batch: a.batch,
                rate_per_sec: a.rate,
                settle: Duration::from_millis(a.settle_ms),
                out_dir,
                name,
            };
            let r = run_redis_cost(cfg).await?;
            print!("{}", report::redis_cost_table(&r));
            if r.variants.iter().any(|v| v.windows_checked > 0 && !v.exact) {
                anyhow::bail!("a summary read back did not match the payments recorded");
            }
        }
        Command::RefRatio(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("ref-vs-static");
            let r = run_ref_ratio(&RefRatioConfig {
                static_files: a.static_files,
                stack_files: a.stack_files,
                target_ratio: a.target_ratio,
                out_dir,
                name,
            })?;
            print!("{}", r.table());
        }
        Command::PerfBuckets(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("perf-buckets");
            let r = run_perf_buckets(&PerfBucketsConfig {
                script: a.script,
                load: a.load,
                profiled_load: a.profiled_load,
                group: a.group,
                out_dir,
                name,
            })?;
            print!("{}", r.table());
        }
        Command::RedisPool(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("redis-pool");
            let r = run_redis_pool(RedisPoolConfig {
                redis_url: a.redis_url,
                callers: a.callers,
                pool_sizes: a.pool_sizes,
                duration: secs(a.secs, "secs")?,
                rounds: a.rounds,
                out_dir,
                name,
            })
            .await?;
            print!("{}", r.table());
        }
        Command::TowerCost(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("tower-cost");
            let r = run_tower_cost(TowerCostConfig {
                rates: a.rates,
                step: secs(a.step_secs, "step-secs")?,
                rounds: a.rounds,
                connections: a.connections,
                exe: std::env::current_exe()?,
                out_dir,
                name,
            })
            .await?;
            print!("{}", r.table());
        }
        Command::ServeGateway(_) => {
            anyhow::bail!("serve-gateway runs on the gateway's own runtime")
        }
        Command::StateScale(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("state-scale");
            let cfg = StateScaleConfig {
                payments: a.payments,
                rate_per_sec: a.rate,
                batch: a.batch,
                lanes: a.lanes,
                reps: a.reps,
                distinct_windows: a.windows,
                detail_horizon: Duration::from_secs(a.detail_horizon_secs),
                out_dir,
                name,
            };
            let r = run_state_scale(cfg).await?;
            print!("{}", report::state_scale_table(&r));
            if !r.exact() {
                anyhow::bail!("a summary read back did not match the payments recorded");
            }
        }
        Command::Soak(a) => {
            let (out_dir, name) = a.output.into_dir_and_name("soak");
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
                out_dir,
                name,
            };
            let r = run_soak(cfg).await?;
            print!("{}", report::soak_table(&r));
            if r.verdict.passed == Some(false) {
                anyhow::bail!("the soak failed: {}", r.verdict.reasons.join("; "));
            }
        }
    }
    Ok(())
}
