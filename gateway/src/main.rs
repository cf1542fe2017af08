//! `paystream-gateway`: config → telemetry → metrics → Redis → bind → serve → drain.

use common::config::ProcessEnv;
use common::shutdown::Shutdown;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve(config)));
    if let Err(e) = result {
        eprintln!("paystream-gateway: {e:#}");
        std::process::exit(1);
    }
}

async fn serve(config: GatewayConfig) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = AppState::new(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "redis not reachable yet; answering 503 until it is");
    }
    run(listener, state, Shutdown::on_signals()).await;
    tracing::info!("gateway stopped");
    Ok(())
}
