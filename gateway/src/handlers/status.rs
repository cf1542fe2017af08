//! `GET /payments/{correlationId}`: the payment's status as the worker last recorded it.

use common::payment::PaymentId;
use common::time::format_ms;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::ApiError;
use crate::responses::{self, Body};
use crate::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct View<'a> {
    correlation_id: String,
    /// Exact decimal; serialized as a JSON number.
    amount: &'a serde_json::value::RawValue,
    status: &'static str,
    processor: Option<&'static str>,
    requested_at: Option<String>,
    attempts: u32,
    accepted_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

pub async fn get(state: &AppState, path: &str) -> Result<Response<Body>, ApiError> {
    let raw = path.trim_start_matches("/payments/");
    let id: PaymentId = raw
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a UUID")))?;
    let view = state.store.payment(&id).await?.ok_or(ApiError::NotFound)?;
    let amount_text = view.amount.to_string();
    let amount = serde_json::value::RawValue::from_string(amount_text)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let body = View {
        correlation_id: view.id.to_string(),
        amount: &amount,
        status: view.status.as_str(),
        processor: view.processor.map(|p| p.as_str()),
        requested_at: view.requested_at.map(format_ms),
        attempts: view.attempts,
        accepted_at: format_ms(view.accepted_at),
        updated_at: format_ms(view.updated_at),
        reason: view.reason.as_deref(),
    };
    let json = serde_json::to_vec(&body).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(responses::json(StatusCode::OK, json))
}
