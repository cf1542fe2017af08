//! `paystream-gateway`: config → telemetry → metrics (own listener) → Redis → bind → serve →
//! drain.

use common::shutdown::Shutdown;
use paystream_gateway::config::ListenAddr;
use paystream_gateway::server::Listener;
use paystream_gateway::{run, AppState, GatewayConfig};

fn main() {
    let config = common::runtime::configure("paystream-gateway", GatewayConfig::from_env);
    let result = common::runtime::build(config.threads)
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve(config)));
    if let Err(e) = result {
        eprintln!("paystream-gateway: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let listen = config.listen.clone();
    let metrics_addr = config.metrics_addr;
    let state = AppState::new(config)?;
    let shutdown = Shutdown::on_signals();
    // Operators' listener first: a port clash fails the start before we take traffic.
    if let (Some(addr), Some(handle)) = (metrics_addr, state.metrics.clone()) {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (GATEWAY_METRICS_ADDR): {e}"))?;
        tracing::info!(addr = %l.local_addr()?, "gateway metrics listening");
        tokio::spawn(common::admin::serve(l, handle, shutdown.clone()));
    }
    let listener: Listener = match &listen {
        ListenAddr::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (GATEWAY_LISTEN): {e}"))?;
            tracing::info!(addr = %l.local_addr()?, "gateway listening");
            l.into()
        }
        ListenAddr::Unix(path) => {
            // A socket file left by a previous run would make bind fail.
            let _ = std::fs::remove_file(path);
            let l = tokio::net::UnixListener::bind(path)
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (GATEWAY_LISTEN): {e}"))?;
            // nginx workers may run as another user.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
            tracing::info!(addr = %listen, "gateway listening");
            l.into()
        }
    };
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "redis not reachable yet; answering 503 until it is");
    }
    run(listener, state, shutdown).await;
    if let ListenAddr::Unix(path) = &listen {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("gateway stopped");
    Ok(())
}
