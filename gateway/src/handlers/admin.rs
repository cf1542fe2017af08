//! `POST /purge-payments`: clears every payment, status, aggregate and dead letter.
//! Requires `X-Admin-Token` to match `ADMIN_TOKEN`; the gateway does not start without a
//! token unless `PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true` opened them on purpose.

use hyper::{Request, Response, StatusCode};

use crate::config::AdminAccess;
use crate::error::ApiError;
use crate::responses::{self, Body};
use crate::AppState;

pub const TOKEN_HEADER: &str = "x-admin-token";

/// Rejects the request unless it carries the configured admin token, or admin access was
/// explicitly opened.
pub fn authorize<B>(state: &AppState, req: &Request<B>) -> Result<(), ApiError> {
    let AdminAccess::Token(expected) = &state.config.admin else {
        return Ok(());
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
