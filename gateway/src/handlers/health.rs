//! `GET /healthz` (the process answers), `GET /readyz` (Redis answers). `/metrics` is on
//! the gateway's own listener ([`common::admin`]).

use hyper::{Response, StatusCode};

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
