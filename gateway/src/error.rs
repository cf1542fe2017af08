//! The gateway's one error type and its one mapping to HTTP: RFC 9457 problem+json,
//! never leaking internals.

use bytes::Bytes;
use common::payment::RequestError;
use common::store::StoreError;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("no payment with this correlationId")]
    NotFound,
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("correlationId already used with a different amount ({stored})")]
    Conflict { stored: String },
    #[error("backlog is full ({backlog} payments waiting); retry later")]
    Busy { backlog: u64 },
    /// Redis memory is above `MEMORY_HIGH_WATER`: accepts stop before memory is full, so
    /// the payments already accepted can still be finished and recorded.
    #[error("storage is nearly full; nothing was written; retry later")]
    MemoryHigh,
    #[error("storage unavailable, nothing was written; retry later")]
    Unavailable(#[source] StoreError),
    /// Redis did not answer after the request was sent: it may have taken effect.
    #[error("storage did not answer in time: the request may or may not have taken effect; retry it with the same correlationId (a payment is never accepted or charged twice)")]
    OutcomeUnknown(#[source] StoreError),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("unsupported media type: send application/json")]
    UnsupportedMediaType,
    #[error("millisecond detail is kept from {kept_from} on (SUMMARY_DETAIL_RETENTION): before that, give whole-second bounds (`from` at .000, `to` at .999), which stay exact at any age")]
    DetailDropped { kept_from: String },
    /// Another purge holds the purge flag: this one did not start.
    #[error("a purge is already running; wait for it to finish (the purge flag expires at most 10 s after its last renewal if it died)")]
    PurgeRunning,
    /// The purge lost its flag half-way and stopped before wiping the summary.
    #[error("the purge lost its flag (it expired or another purge took it) and stopped before wiping the summary; run it again")]
    PurgeLost,
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Malformed(m) => ApiError::BadRequest(m),
            RequestError::Invalid(m) => ApiError::Invalid(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // Nothing reached Redis, or it refused before running anything.
            StoreError::Unavailable(_) => ApiError::Unavailable(e),
            // Sent and unanswered, or answered with something no script returns: the
            // request may have taken effect.
            StoreError::Unknown(_) | StoreError::Unexpected(_) => ApiError::OutcomeUnknown(e),
            StoreError::DetailDropped { kept_from } => ApiError::DetailDropped {
                kept_from: common::time::format_ms(kept_from),
            },
            StoreError::PurgeRunning => ApiError::PurgeRunning,
            StoreError::PurgeLost => ApiError::PurgeLost,
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) | ApiError::DetailDropped { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::PurgeRunning | ApiError::PurgeLost => {
                StatusCode::CONFLICT
            }
            ApiError::Busy { .. } | ApiError::MemoryHigh | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// Bounded label for metrics and the problem `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "malformed",
            ApiError::Invalid(_) => "invalid",
            ApiError::TooLarge(_) => "too_large",
            ApiError::NotFound => "not_found",
            ApiError::NoRoute => "no_route",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Busy { .. } => "busy",
            ApiError::MemoryHigh => "memory_high",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::OutcomeUnknown(_) => "outcome_unknown",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unauthorized => "unauthorized",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::DetailDropped { .. } => "detail_dropped",
            ApiError::PurgeRunning => "purge_running",
            ApiError::PurgeLost => "purge_lost",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "Malformed request",
            ApiError::Invalid(_) => "Invalid payment",
            ApiError::TooLarge(_) => "Request body too large",
            ApiError::NotFound => "Payment not found",
            ApiError::NoRoute => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict { .. } => "Conflicting payment",
            ApiError::Busy { .. } => "Too many payments waiting",
            ApiError::MemoryHigh => "Storage nearly full",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::OutcomeUnknown(_) => "Outcome unknown",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::DetailDropped { .. } => "Window edge older than the millisecond detail",
            ApiError::PurgeRunning => "Purge already running",
            ApiError::PurgeLost => "Purge stopped",
        }
    }

    /// The problem+json response. Storage errors are logged, not shown.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let ApiError::Unavailable(e) | ApiError::OutcomeUnknown(e) = &self {
            tracing::warn!(error = %e, "storage error");
        }
        let status = self.status();
        let body = serde_json::json!({
            "type": format!("/problems/{}", self.kind()),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        let mut builder = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json");
        match &self {
            ApiError::Busy { .. }
            | ApiError::MemoryHigh
            | ApiError::Unavailable(_)
            | ApiError::OutcomeUnknown(_) => {
                builder = builder.header(header::RETRY_AFTER, "1");
            }
            ApiError::RateLimited { retry_after_secs } => {
                builder = builder.header(header::RETRY_AFTER, *retry_after_secs);
            }
            _ => {}
        }
        if matches!(self, ApiError::MethodNotAllowed) {
            builder = builder.header(header::ALLOW, "GET, POST");
        }
        builder
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}
