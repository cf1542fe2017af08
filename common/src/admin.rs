//! A process's own small HTTP listener for operators: `GET /metrics` (Prometheus text) and
//! `GET /healthz`. Gateways and workers each serve it on their own address
//! (`GATEWAY_METRICS_ADDR`, `WORKER_METRICS_ADDR`), never on the public port: Prometheus
//! scrapes every instance directly, and clients that may post payments cannot read
//! internals.

use std::convert::Infallible;

use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Serves until `shutdown` fires.
pub async fn serve(listener: TcpListener, metrics: PrometheusHandle, mut shutdown: Shutdown) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = shutdown.wait() => return,
        };
        let metrics = metrics.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            async move {
                let (status, content_type, body) = match req.uri().path() {
                    "/metrics" => (
                        StatusCode::OK,
                        "text/plain; version=0.0.4",
                        metrics.render(),
                    ),
                    "/healthz" => (
                        StatusCode::OK,
                        "application/json",
                        r#"{"status":"ok"}"#.to_string(),
                    ),
                    _ => (
                        StatusCode::NOT_FOUND,
                        "application/json",
                        r#"{"status":"not found"}"#.to_string(),
                    ),
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                if let Ok(v) = header::HeaderValue::from_str(content_type) {
                    response.headers_mut().insert(header::CONTENT_TYPE, v);
                }
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
