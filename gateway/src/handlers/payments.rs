//! `POST /payments`: rate limits (when on), then parse into a `ValidPayment`, then one
//! atomic script creates the status and appends the stream entry — or sheds the payment
//! when the backlog is over its limit. A `202` is only sent once Redis has it.

use std::net::SocketAddr;

use bytes::Bytes;
use common::metrics as names;
use common::payment::{PaymentId, Status, ValidPayment};
use common::store::Accepted;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode};

use crate::error::ApiError;
use crate::limits;
use crate::responses::{self, Body};
use crate::AppState;

/// Largest accepted request body (docs/protocol.md §2).
pub const MAX_BODY_BYTES: usize = 4 * 1024;

pub async fn create(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, ApiError> {
    let result = accept(state, req, peer).await;
    let outcome = match &result {
        Ok((_, Outcome::Enqueued)) => "accepted",
        Ok((_, Outcome::Replayed(_))) => "replayed",
        Err(e) => e.kind(),
    };
    metrics::counter!(names::PAYMENTS_RECEIVED_TOTAL, "outcome" => outcome).increment(1);
    let (id, outcome) = result?;
    Ok(accepted_response(&id, outcome))
}

enum Outcome {
    Enqueued,
    Replayed(Status),
}

async fn accept(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<(PaymentId, Outcome), ApiError> {
    // Before anything else: a rejected request must cost neither parsing nor Redis.
    if let Some(limits) = &state.limits {
        limits
            .check(req.headers(), peer)
            .map_err(|wait| ApiError::RateLimited {
                retry_after_secs: limits::retry_after_secs(wait),
            })?;
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let body = read_body(req).await?;
    let payment = ValidPayment::parse(&body)?;
    // Redis' memory near full (or full): stop accepting new payments so what was accepted
    // can still finish — but a retry of one Redis holds still gets its replay or conflict
    // (a read, which works at a full memory), never a 503 that would say "not accepted".
    if state.memory.is_high() {
        return known(state, &payment).await?.ok_or(ApiError::MemoryHigh);
    }
    let accepted = match state
        .store
        .accept(&payment.id, payment.amount, state.config.backlog_limit)
        .await
    {
        Err(e) if common::error::is_out_of_memory(&e) => {
            return known(state, &payment)
                .await?
                .ok_or(ApiError::Unavailable(e));
        }
        other => other?,
    };
    match accepted {
        Accepted::Enqueued => {
            tracing::debug!(correlation_id = %payment.id, amount = %payment.amount, "payment accepted");
            Ok((payment.id, Outcome::Enqueued))
        }
        Accepted::Replay(status) => Ok((payment.id, Outcome::Replayed(status))),
        Accepted::Conflict { stored } => Err(ApiError::Conflict {
            stored: stored.to_string(),
        }),
        Accepted::Busy { backlog } => {
            metrics::gauge!(names::GATEWAY_SHED_BACKLOG).set(backlog as f64);
            Err(ApiError::Busy { backlog })
        }
    }
}

/// The answer for a payment Redis already holds (a replay, or a conflict on its amount), or
/// `None` when it holds none: the accept path's read-only half, for when writes are shed.
async fn known(
    state: &AppState,
    payment: &ValidPayment,
) -> Result<Option<(PaymentId, Outcome)>, ApiError> {
    match state.store.payment(&payment.id).await? {
        Some(view) if view.amount == payment.amount => {
            Ok(Some((payment.id, Outcome::Replayed(view.status))))
        }
        Some(view) => Err(ApiError::Conflict {
            stored: view.amount.to_string(),
        }),
        None => Ok(None),
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] (declared or actual).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the body: {e}"
        ))),
    }
}

fn accepted_response(id: &PaymentId, outcome: Outcome) -> Response<Body> {
    let mut buf = [0u8; 36];
    let id = id.encode(&mut buf);
    let (status, state) = match outcome {
        Outcome::Enqueued => (StatusCode::ACCEPTED, Status::Queued),
        Outcome::Replayed(s) => (StatusCode::OK, s),
    };
    let body = format!(
        r#"{{"correlationId":"{id}","status":"{}"}}"#,
        state.as_str()
    );
    let mut response = responses::json(status, body);
    if let Ok(location) = header::HeaderValue::from_str(&format!("/payments/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
