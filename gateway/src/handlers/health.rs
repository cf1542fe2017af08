//! `GET /healthz` (the process answers), `GET /readyz` (Redis answers), `GET /metrics`.

use hyper::{header, Response, StatusCode};

use crate::error::ApiError;
use crate::responses::{self, Body};
use crate::AppState;

pub fn live() -> Response<Body> {
    responses::json_static(StatusCode::OK, r#"{"status":"ok"}"#)
}

pub async fn ready(state: &AppState) -> Result<Response<Body>, ApiError> {
    state.store.ping().await?;
    Ok(responses::json_static(
        StatusCode::OK,
        r#"{"status":"ready"}"#,
    ))
}

pub fn metrics(state: &AppState) -> Response<Body> {
    let mut response = responses::json(StatusCode::OK, state.metrics.render());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
