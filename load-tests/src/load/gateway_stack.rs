//! `serve-gateway`: the gateway library served from this binary, as it is (the router as a
//! hyper `service_fn`, exactly what `paystream-gateway` runs) or wrapped in a typical tower
//! stack — so that [`tower_cost`](super::tower_cost) compares the two with everything else
//! equal: same build, same configuration (the gateway's environment variables), same
//! runtime (`GATEWAY_THREADS`), each in its own process so its CPU can be read from `/proc`.
//!
//! The tower stack, outermost first: errors mapped to a response (`503` when shed, `504`
//! when timed out), `LoadShed`, a concurrency limit shared by all connections, `Timeout`,
//! then the router. It adds nothing the gateway lacks (the exact limits are in Redis and
//! `governor`); it prices what the layers cost per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway::responses::{self, Body};
use gateway::{router, server, AppState, GatewayConfig};
use hyper::{Response, StatusCode};
use hyper_util::service::TowerToHyperService;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

/// Requests in flight at once over all connections before the tower stack sheds (`503`).
pub const TOWER_CONCURRENCY_LIMIT: usize = 1024;
/// A request the router has not answered in this long gets a `504` from the tower stack
/// (above the Redis response timeout, so it never fires before the gateway's own `504`).
pub const TOWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How the router is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStack {
    /// `gateway::run`: the router as a hyper `service_fn` (the product).
    Plain,
    /// The router inside `ServiceBuilder` layers (see the module docs).
    Tower,
}

impl ServiceStack {
    pub const ALL: [ServiceStack; 2] = [ServiceStack::Plain, ServiceStack::Tower];

    pub fn name(self) -> &'static str {
        match self {
            ServiceStack::Plain => "plain",
            ServiceStack::Tower => "tower",
        }
    }
}

/// The tower stack's errors as responses: nothing reaches hyper as a service error (the
/// type stays `BoxError`, as tower's `MapResult` wants an error the inner one converts to).
fn answer(result: Result<Response<Body>, BoxError>) -> Result<Response<Body>, BoxError> {
    Ok(result.unwrap_or_else(|e| {
        if e.is::<tower::timeout::error::Elapsed>() {
            responses::json_static(StatusCode::GATEWAY_TIMEOUT, r#"{"title":"timed out"}"#)
        } else {
            responses::json_static(StatusCode::SERVICE_UNAVAILABLE, r#"{"title":"overloaded"}"#)
        }
    }))
}

/// Serves the gateway configured from the environment (as `paystream-gateway` is) on
/// `listen` until SIGINT/SIGTERM, printing the bound address as the first line of stdout
/// (the parent reads it when it asked for port 0). Call it on the runtime
/// [`common::runtime::build`] makes from `config.threads`, as the gateway's `main` does.
pub async fn serve_gateway(
    config: GatewayConfig,
    listen: SocketAddr,
    stack: ServiceStack,
) -> anyhow::Result<()> {
    let state = AppState::new(config)?;
    let shutdown = common::shutdown::Shutdown::on_signals();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    println!("{}", listener.local_addr()?);
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "redis not reachable yet");
    }
    match stack {
        ServiceStack::Plain => server::run(listener, state, shutdown).await,
        ServiceStack::Tower => {
            let limit = Arc::new(tokio::sync::Semaphore::new(TOWER_CONCURRENCY_LIMIT));
            server::run_with(listener, state, shutdown, move |state, peer| {
                TowerToHyperService::new(
                    ServiceBuilder::new()
                        .map_result(answer)
                        .load_shed()
                        .layer(GlobalConcurrencyLimitLayer::with_semaphore(limit.clone()))
                        .timeout(TOWER_TIMEOUT)
                        .service_fn(move |req| router::handle(state.clone(), peer, req)),
                )
            })
            .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn the_stacks_errors_become_answers() {
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(
            answer(Err(shed)).unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let ok = responses::json_static(StatusCode::ACCEPTED, "{}");
        assert_eq!(answer(Ok(ok)).unwrap().status(), StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn an_unanswered_request_times_out_as_504() {
        use tower::{Service as _, ServiceExt as _};
        let mut svc = ServiceBuilder::new()
            .map_result(answer)
            .timeout(Duration::from_millis(10))
            .service_fn(|()| std::future::pending::<Result<Response<Body>, Infallible>>());
        let response = svc.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
