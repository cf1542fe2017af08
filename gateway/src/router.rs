//! Method + path → handler, and the per-route metrics every request records.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use common::metrics as names;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::error::ApiError;
use crate::handlers::{admin, health, payments, status, summary};
use crate::responses::Body;
use crate::AppState;

/// The routes, as bounded metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreatePayment,
    PaymentStatus,
    Summary,
    Purge,
    Health,
    Ready,
    Unknown,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::CreatePayment => "create_payment",
            Route::PaymentStatus => "payment_status",
            Route::Summary => "summary",
            Route::Purge => "purge",
            Route::Health => "healthz",
            Route::Ready => "readyz",
            Route::Unknown => "unknown",
        }
    }

    /// Which route a path is, whatever the method. `/metrics` is none of them: it is served
    /// on the gateway's own metrics listener (`GATEWAY_METRICS_ADDR`), never here.
    pub fn of(path: &str) -> Route {
        match path {
            "/payments" => Route::CreatePayment,
            "/payments-summary" => Route::Summary,
            "/purge-payments" => Route::Purge,
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            p if p.starts_with("/payments/") => Route::PaymentStatus,
            _ => Route::Unknown,
        }
    }
}

/// The service function: routes, runs the handler, maps errors, records metrics. `peer` is
/// the connection's remote address (the rate limiter's client key when nothing better is
/// known).
pub async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let route = Route::of(req.uri().path());
    let result = dispatch(&state, route, peer, req).await;
    let response = result.unwrap_or_else(ApiError::into_response);
    metrics::counter!(
        names::HTTP_REQUESTS_TOTAL,
        "route" => route.label(),
        "status" => status_label(response.status().as_u16()),
    )
    .increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION_SECONDS, "route" => route.label())
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

async fn dispatch(
    state: &AppState,
    route: Route,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    match (route, method) {
        (Route::CreatePayment, Method::POST) => payments::create(state, req, peer).await,
        (Route::PaymentStatus, Method::GET) => status::get(state, req.uri().path()).await,
        (Route::Summary, Method::GET) => summary::get(state, req.uri().query()).await,
        (Route::Purge, Method::POST) => admin::purge(state, &req).await,
        (Route::Health, Method::GET) => Ok(health::live()),
        (Route::Ready, Method::GET) => health::ready(state).await,
        (Route::Unknown, _) => Err(ApiError::NoRoute),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Status codes as a bounded label set.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
