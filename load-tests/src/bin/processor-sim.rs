//! `processor-sim`: one simulated payment processor (docs/protocol.md §3) on a TCP port.
//!
//! Configuration (env, `--port` wins over `PORT`): `PORT` (8080), `BIND` (0.0.0.0),
//! `TRANSACTION_FEE` (0.05), `TOKEN` (123), `HEALTH_WINDOW_MS` (5000); `RUST_LOG` for
//! logs (default `info`). Run two of them for the default and fallback processors.
//! Stops on SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use common::config::ProcessEnv;
use paystream_load_tests::sim::{self, ServeConfig, Simulator};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match ServeConfig::from_env(&ProcessEnv, std::env::args().skip(1)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("processor-sim: {err}");
            return ExitCode::from(2);
        }
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("processor-sim: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> ExitCode {
    let fee = config.sim.fee.clone();
    let health_window = config.sim.health_window;
    let simulator = match Simulator::new(config.sim) {
        Ok(simulator) => simulator,
        Err(err) => {
            eprintln!("processor-sim: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("processor-sim: cannot listen on {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => info!(%addr, %fee, ?health_window, "processor simulator listening"),
        Err(err) => error!(error = %err, "cannot read the bound address"),
    }
    sim::run(listener, simulator, shutdown_signal()).await;
    info!("processor simulator stopped");
    ExitCode::SUCCESS
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
                    _ = terminate.recv() => info!("SIGTERM received, shutting down"),
                }
                return;
            }
            Err(err) => error!(error = %err, "cannot listen for SIGTERM; only SIGINT stops"),
        }
    }
    if let Err(err) = tokio::signal::ctrl_c().await {
        error!(error = %err, "cannot listen for SIGINT");
        std::future::pending::<()>().await;
    }
    info!("SIGINT received, shutting down");
}
