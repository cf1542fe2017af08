//! `paystream-gateway`: config → telemetry → metrics → Redis → bind → serve → drain.

use common::config::ProcessEnv;
use common::shutdown::Shutdown;
use paystream_gateway::config::ListenAddr;
use paystream_gateway::server::Listener;
use paystream_gateway::{run, AppState, GatewayConfig};

fn main() {
    if let Err(e) = common::telemetry::init(&ProcessEnv) {
        eprintln!("paystream-gateway: {e}");
        std::process::exit(2);
    }
    let config = match GatewayConfig::from_env(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paystream-gateway: {e}");
            std::process::exit(2);
        }
    };
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve(config)));
    if let Err(e) = result {
        eprintln!("paystream-gateway: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let listen = config.listen.clone();
    let state = AppState::new(config)?;
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
    run(listener, state, Shutdown::on_signals()).await;
    if let ListenAddr::Unix(path) = &listen {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("gateway stopped");
    Ok(())
}
