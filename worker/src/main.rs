//! `paystream-worker`: config → telemetry → metrics → start the pool → wait for a signal →
//! drain within the deadline.
//!
//! `paystream-worker redrive-dead-letters [LIMIT]` instead re-queues dead-lettered
//! payments (default: all of them) and exits.

use common::shutdown::Shutdown;
use paystream_worker::{admin, WorkerConfig};

fn main() {
    let config = common::runtime::configure("paystream-worker", WorkerConfig::from_env);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = common::runtime::build(config.threads);
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| match args.first().map(String::as_str) {
            None => rt.block_on(run(config)),
            Some("redrive-dead-letters") => {
                let limit = match args.get(1).map(|l| l.parse::<u64>()) {
                    None => u64::MAX,
                    Some(Ok(n)) => n,
                    Some(Err(_)) => {
                        eprintln!("paystream-worker: LIMIT must be a whole number");
                        std::process::exit(2);
                    }
                };
                rt.block_on(redrive(config, limit))
            }
            Some(other) => {
                eprintln!("paystream-worker: unknown command {other:?} (expected: redrive-dead-letters [LIMIT])");
                std::process::exit(2);
            }
        });
    if let Err(e) = result {
        eprintln!("paystream-worker: {e:#}");
        std::process::exit(1);
    }
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    if let Err(e) = check_grace(&config).await {
        eprintln!("paystream-worker: {e}");
        std::process::exit(2);
    }
    let shutdown = Shutdown::on_signals();
    // `WORKER_METRICS_ADDR=off` also turns recording off: without a recorder every metric
    // call is a no-op (docs/benchmarks.md measures the cost).
    if let Some(addr) = config.metrics_addr {
        let metrics = common::telemetry::install_metrics();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (WORKER_METRICS_ADDR): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
        tokio::spawn(admin::serve(listener, metrics, shutdown.clone()));
    }
    #[cfg(not(feature = "test-hooks"))]
    let worker = paystream_worker::start(config, shutdown.clone()).await?;
    #[cfg(feature = "test-hooks")]
    let worker =
        paystream_worker::start_with_hooks(config, shutdown.clone(), test_hooks::from_env())
            .await?;
    let mut wait = shutdown;
    wait.wait().await;
    worker.shutdown().await;
    tracing::info!("worker stopped");
    Ok(())
}

/// `AMBIGUITY_GRACE_MS` is the grace used while a processor has no health report: it must
/// cover the grace every delay a processor reports needs (`2 x delay + 1 s`). A deployment whose processors already reported a
/// longer delay is refused at start, naming the variable (at run time the report wins and
/// a gauge shows it). Redis not reachable yet: nothing to compare with, start anyway.
async fn check_grace(config: &WorkerConfig) -> Result<(), common::config::ConfigError> {
    let Ok(store) =
        common::store::Store::connect_lazy(&config.redis.options, config.redis.keys.clone())
    else {
        return Ok(());
    };
    let reports = match tokio::time::timeout(std::time::Duration::from_secs(2), store.read_health())
        .await
    {
        Ok(Ok(reports)) => reports,
        _ => {
            tracing::warn!(
                    "redis not reachable at start: AMBIGUITY_GRACE_MS not checked against the processors' reported delays"
                );
            return Ok(());
        }
    };
    let floor = config.ambiguity_grace;
    for (processor, report) in common::payment::Processor::ALL.into_iter().zip(reports) {
        let needs = |delay_ms: u64| {
            paystream_worker::route::grace_for_delay(std::time::Duration::from_millis(delay_ms))
        };
        if let Some(report) = report.filter(|r| needs(r.min_response_ms) > floor) {
            return Err(common::config::ConfigError::new(
                paystream_worker::config::vars::AMBIGUITY_GRACE_MS,
                floor.as_millis().to_string(),
                format!(
                    "below the {} ms (2 x delay + 1 s) the {processor} processor's reported delay \
                     of {} ms needs",
                    needs(report.min_response_ms).as_millis(),
                    report.min_response_ms
                ),
            ));
        }
    }
    Ok(())
}

async fn redrive(config: WorkerConfig, limit: u64) -> anyhow::Result<()> {
    let store =
        common::store::Store::connect_lazy(&config.redis.options, config.redis.keys.clone())?;
    let moved = store.redrive_dead_letters(limit).await?;
    println!("re-queued {moved} dead-lettered payments");
    Ok(())
}

/// Pause points of test builds, driven by the environment of a child process.
#[cfg(feature = "test-hooks")]
mod test_hooks {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Environment variable: when `1`, the first payment task that gets "go" from `begin`
    /// stops the whole process with SIGSTOP right before its send — a frozen worker — and
    /// carries on where it was once the test sends SIGCONT.
    pub const STOP_BEFORE_SEND: &str = "PAYSTREAM_TEST_STOP_BEFORE_SEND";

    /// Environment variable: milliseconds added to this process' wall clock (a worker whose
    /// clock is wrong must still never store a payment twice).
    pub const CLOCK_SKEW_MS: &str = "PAYSTREAM_TEST_CLOCK_SKEW_MS";

    pub fn from_env() -> paystream_worker::Hooks {
        if let Some(skew) = std::env::var(CLOCK_SKEW_MS)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            paystream_worker::pipeline::CLOCK_SKEW_MS.store(skew, Ordering::Relaxed);
        }
        let mut hooks = paystream_worker::Hooks::default();
        if std::env::var(STOP_BEFORE_SEND).as_deref() == Ok("1") {
            let armed = Arc::new(AtomicBool::new(true));
            hooks.before_send = Some(Arc::new(move |_id| {
                if armed.swap(false, Ordering::SeqCst) {
                    eprintln!("test hook: SIGSTOP before the send");
                    let _ = std::process::Command::new("kill")
                        .args(["-STOP", &std::process::id().to_string()])
                        .status();
                }
            }));
        }
        hooks
    }
}
