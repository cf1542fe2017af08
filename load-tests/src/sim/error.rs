//! Every way a request to the simulator can fail, and the one mapping to HTTP.
//!
//! Before: any handler returns a [`SimError`]. After: [`SimError::into_response`] is
//! the only place a status code for a failure is chosen. Bodies are a small JSON
//! object `{"error": "..."}`, as the real processors' clients only look at the status.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;
use thiserror::Error;

/// A failed request.
#[derive(Debug, Error)]
pub enum SimError {
    /// Malformed JSON, a missing field, a bad value, a bad query.
    #[error("{0}")]
    BadRequest(String),
    /// Request body above the size cap.
    #[error("request body too large")]
    PayloadTooLarge,
    /// Missing or wrong `X-Rinha-Token`.
    #[error("missing or invalid X-Rinha-Token")]
    Unauthorized,
    /// No such route, or no such payment.
    #[error("not found")]
    NotFound,
    /// A known path with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The correlation id is already stored.
    #[error("payment with this correlationId already exists")]
    Duplicate,
    /// Failure mode is on.
    #[error("payment processor failure (simulated)")]
    Failing,
    /// The payment concurrency limit and its queue are full.
    #[error("too many requests")]
    Overloaded,
    /// The health endpoint's window and its queue are taken.
    #[error("service-health is rate limited: one call per window")]
    HealthRateLimited {
        /// Value of the `Retry-After` header.
        retry_after_secs: u64,
    },
    /// A bug in the simulator (a handling task panicked).
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl SimError {
    /// The status this failure is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Duplicate => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Failing | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Overloaded | Self::HealthRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The HTTP answer for this failure.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let message = self.to_string();
        let body = serde_json::to_vec(&ErrorBody { error: &message }).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Self::HealthRateLimited { retry_after_secs } = self {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
