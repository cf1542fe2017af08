//! `paystream-worker`: config → telemetry → metrics → start the pool → wait for a signal →
//! drain within the deadline.

use common::config::ProcessEnv;
use common::shutdown::Shutdown;
use paystream_worker::{admin, start, Hooks, WorkerConfig};

fn main() {
    if let Err(e) = common::telemetry::init(&ProcessEnv) {
        eprintln!("paystream-worker: {e}");
        std::process::exit(2);
    }
    let config = match WorkerConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paystream-worker: {e}");
            std::process::exit(2);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(config)));
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
