//! `POST /purge-payments`: clears every payment, status, aggregate and dead letter.
//! Requires `X-Admin-Token` when `ADMIN_TOKEN` is configured; without a token the admin
//! endpoints are disabled (403) unless `PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true`.

use hyper::{Request, Response, StatusCode};

use crate::error::ApiError;
use crate::responses::{self, Body};
use crate::AppState;

pub const TOKEN_HEADER: &str = "x-admin-token";

/// Rejects the request unless it carries the configured admin token, or no token is
/// configured and unauthenticated admin access was explicitly allowed.
pub fn authorize<B>(state: &AppState, req: &Request<B>) -> Result<(), ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return if state.config.allow_unauthenticated_admin {
            Ok(())
        } else {
            Err(ApiError::AdminDisabled)
        };
    };
    let presented = req
        .headers()
        .get(TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if expected.matches(presented) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

pub async fn purge<B>(state: &AppState, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    authorize(state, req)?;
    let deleted = state.store.purge().await?;
    tracing::info!(deleted, "payments purged");
    Ok(responses::json(
        StatusCode::OK,
        format!(r#"{{"message":"All payments purged.","deleted":{deleted}}}"#),
    ))
}
