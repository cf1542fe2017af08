//! `paystream-worker`: config → telemetry → metrics → start the pool → wait for a signal →
//! drain within the deadline.
//!
//! `paystream-worker redrive-dead-letters [LIMIT]` instead re-queues dead-lettered
//! payments (default: all of them) and exits.

use common::shutdown::Shutdown;
use paystream_worker::{admin, start, Hooks, WorkerConfig};

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
    let shutdown = Shutdown::on_signals();
    let metrics = common::telemetry::install_metrics();
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (WORKER_METRICS_ADDR): {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
        tokio::spawn(admin::serve(listener, metrics, shutdown.clone()));
    }
    let worker = start(config, shutdown.clone(), Hooks::default()).await?;
    let mut wait = shutdown;
    wait.wait().await;
    worker.shutdown().await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn redrive(config: WorkerConfig, limit: u64) -> anyhow::Result<()> {
    let store =
        common::store::Store::connect_lazy(&config.redis.options, config.redis.keys.clone())?;
    let mut moved = 0u64;
    while moved < limit {
        let batch = (limit - moved).min(1_000);
        let n = store
            .redrive_dead_letters(batch, common::time::now_ms())
            .await?;
        if n == 0 && store.dead_letter_count().await? == 0 {
            break;
        }
        moved += n;
    }
    println!("re-queued {moved} dead-lettered payments");
    Ok(())
}
