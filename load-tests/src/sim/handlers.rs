//! Routing and the HTTP handlers of the processor API (docs/protocol.md §3).
//!
//! Before: [`server`](super::server) hands each request of a connection to [`handle`].
//! After: handlers decide through [`admission`](super::admission),
//! [`health`](super::health) and the [`store`](super::store), parse money with
//! `common::money` (the gateway's parser, rounding to cents as the processors do) and time
//! with the workspace's `common::time::parse_ms`, and turn failures into responses through
//! [`SimError`].
//!
//! `POST /payments` runs its queueing, delay and store in a spawned task: a client that
//! times out and drops the connection drops only the wait for the answer, so the
//! payment is still stored later, as with the real processors.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::money::{Cents, Decimal, SubCents};
use common::time::parse_ms;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::debug;
use uuid::Uuid;

use super::error::SimError;
use super::health::{retry_after_secs, HealthAdmission};
use super::state::{Counters, Simulator};
use super::store::{Inserted, StoredPayment};

/// Largest request body accepted (a payment is ~120 bytes).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The admin header.
const TOKEN_HEADER: &str = "x-rinha-token";

const PAYMENTS: &str = "/payments";
const PAYMENTS_PREFIX: &str = "/payments/";
const SERVICE_HEALTH: &str = "/payments/service-health";
const ADMIN_SUMMARY: &str = "/admin/payments-summary";
const ADMIN_DELAY: &str = "/admin/configurations/delay";
const ADMIN_FAILURE: &str = "/admin/configurations/failure";
const ADMIN_TOKEN: &str = "/admin/configurations/token";
const ADMIN_PURGE: &str = "/admin/purge-payments";

const PROCESSED_BODY: &[u8] = br#"{"message":"payment processed successfully"}"#;
const PURGED_BODY: &[u8] = br#"{"message":"All payments purged."}"#;

type Answer = Response<Full<Bytes>>;

/// Answers one request; failures are already responses, so this never fails.
pub async fn handle(sim: Simulator, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let answer = route(sim, &method, &path, request)
        .await
        .unwrap_or_else(|err| {
            debug!(%method, %path, status = err.status().as_u16(), error = %err, "request refused");
            err.into_response()
        });
    Ok(answer)
}

async fn route(
    sim: Simulator,
    method: &Method,
    path: &str,
    request: Request<Incoming>,
) -> Result<Answer, SimError> {
    match path {
        PAYMENTS if method == Method::POST => post_payment(sim, request).await,
        SERVICE_HEALTH if method == Method::GET => service_health(sim).await,
        ADMIN_SUMMARY if method == Method::GET => admin_summary(&sim, &request),
        ADMIN_DELAY if method == Method::PUT => set_delay(&sim, request).await,
        ADMIN_FAILURE if method == Method::PUT => set_failure(&sim, request).await,
        ADMIN_TOKEN if method == Method::PUT => set_token(&sim, request).await,
        ADMIN_PURGE if method == Method::POST => purge(&sim, &request),
        PAYMENTS | SERVICE_HEALTH | ADMIN_SUMMARY | ADMIN_DELAY | ADMIN_FAILURE | ADMIN_TOKEN
        | ADMIN_PURGE => Err(SimError::MethodNotAllowed),
        path => match path.strip_prefix(PAYMENTS_PREFIX) {
            Some(id) if method == Method::GET => get_payment(&sim, id),
            Some(_) => Err(SimError::MethodNotAllowed),
            None => Err(SimError::NotFound),
        },
    }
}

// ---- POST /payments ------------------------------------------------------------------

#[derive(Deserialize)]
struct PaymentRequest<'a> {
    #[serde(rename = "correlationId")]
    correlation_id: Uuid,
    #[serde(borrow)]
    amount: &'a RawValue,
    #[serde(rename = "requestedAt", borrow)]
    requested_at: Cow<'a, str>,
}

/// Parses a payment body: all three fields required, amount exact, requestedAt ISO-8601.
fn parse_payment(body: &[u8]) -> Result<StoredPayment, SimError> {
    let request: PaymentRequest<'_> =
        serde_json::from_slice(body).map_err(|err| SimError::BadRequest(err.to_string()))?;
    let cents = Cents::parse_amount(request.amount.get(), SubCents::Round)
        .map_err(|err| SimError::BadRequest(err.to_string()))?;
    let requested_at_ms = parse_ms(&request.requested_at)
        .map_err(|err| SimError::BadRequest(format!("requestedAt: {err}")))?;
    Ok(StoredPayment {
        correlation_id: request.correlation_id,
        amount_cents: cents.get(),
        requested_at_ms,
        requested_at: request.requested_at.into_owned(),
    })
}

async fn post_payment(sim: Simulator, request: Request<Incoming>) -> Result<Answer, SimError> {
    Counters::bump(&sim.shared.counters.payment_posts);
    if let Some(status) = fault_status(&sim.shared.faults.status_unforwarded) {
        return Ok(json(status, Bytes::from_static(b"{}")));
    }
    // The delay in force when the request arrives applies, even if it changes meanwhile.
    let delay = Duration::from_millis(sim.delay_ms());
    let Some(ticket) = sim.shared.gate.try_enter() else {
        Counters::bump(&sim.shared.counters.payment_429s);
        return Err(SimError::Overloaded);
    };
    let payment = parse_payment(&read_body(request).await?)?;

    // Spawned so that a disconnecting client cannot cancel the delay or the store.
    let task = tokio::spawn(async move {
        let _slot = ticket.wait_for_slot().await.ok_or(SimError::Internal)?;
        tokio::time::sleep(delay).await;
        decide(&sim, payment)
    });
    task.await.map_err(|_| SimError::Internal)?
}

/// The status a fault answers with, if it is on (non-zero).
fn fault_status(fault: &AtomicU64) -> Option<StatusCode> {
    u16::try_from(fault.load(Ordering::Relaxed))
        .ok()
        .filter(|s| *s != 0)
        .and_then(|s| StatusCode::from_u16(s).ok())
}

/// After the delay: failure mode, duplicate check, store.
fn decide(sim: &Simulator, payment: StoredPayment) -> Result<Answer, SimError> {
    let counters = &sim.shared.counters;
    if sim.failure() {
        Counters::bump(&counters.payment_failures);
        return Err(SimError::Failing);
    }
    let id = payment.correlation_id;
    match sim.shared.store.insert(payment) {
        Inserted::Stored => {
            debug!(correlation_id = %id, "payment stored");
            if let Some(status) = fault_status(&sim.shared.faults.status_after_store) {
                return Ok(json(status, Bytes::from_static(b"{}")));
            }
            Ok(json(StatusCode::OK, Bytes::from_static(PROCESSED_BODY)))
        }
        Inserted::Duplicate => {
            Counters::bump(&counters.duplicate_rejections);
            Err(SimError::Duplicate)
        }
    }
}

// ---- GET /payments/service-health ----------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    failing: bool,
    min_response_time: u64,
}

async fn service_health(sim: Simulator) -> Result<Answer, SimError> {
    let counters = &sim.shared.counters;
    Counters::bump(&counters.health_calls);
    match sim.admit_health_call() {
        HealthAdmission::Now => {}
        HealthAdmission::At(opens) => tokio::time::sleep_until(opens).await,
        HealthAdmission::Refused { retry_after } => {
            Counters::bump(&counters.health_429s);
            return Err(SimError::HealthRateLimited {
                retry_after_secs: retry_after_secs(retry_after),
            });
        }
    }
    Counters::bump(&counters.health_served);
    // The state when the call is served, not when it arrived.
    to_json(
        StatusCode::OK,
        &HealthBody {
            failing: sim.failure(),
            min_response_time: sim.delay_ms(),
        },
    )
}

// ---- GET /payments/{id} --------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentBody<'a> {
    correlation_id: Uuid,
    amount: &'a RawValue,
    requested_at: &'a str,
}

fn get_payment(sim: &Simulator, id: &str) -> Result<Answer, SimError> {
    // An id that is not a UUID cannot be stored either.
    let id = Uuid::parse_str(id).map_err(|_| SimError::NotFound)?;
    if sim.shared.faults.lookups_absent.load(Ordering::Relaxed) {
        return Err(SimError::NotFound);
    }
    let payment = sim.stored(&id).ok_or(SimError::NotFound)?;
    let amount = raw_number(Cents::new(payment.amount_cents).to_string())?;
    to_json(
        StatusCode::OK,
        &PaymentBody {
            correlation_id: payment.correlation_id,
            amount: &amount,
            requested_at: &payment.requested_at,
        },
    )
}

// ---- Admin ---------------------------------------------------------------------------

fn require_token(sim: &Simulator, request: &Request<Incoming>) -> Result<(), SimError> {
    match request.headers().get(TOKEN_HEADER) {
        Some(value) if sim.token_matches(value.as_bytes()) => Ok(()),
        _ => Err(SimError::Unauthorized),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryBody<'a> {
    total_requests: u64,
    total_amount: &'a RawValue,
    total_fee: &'a RawValue,
    fee_per_transaction: &'a RawValue,
}

fn admin_summary(sim: &Simulator, request: &Request<Incoming>) -> Result<Answer, SimError> {
    require_token(sim, request)?;
    let query = request.uri().query().unwrap_or("");
    let bound = |name: &str| -> Result<Option<i64>, SimError> {
        query_param(query, name)?
            .filter(|value| !value.is_empty())
            .map(|value| {
                parse_ms(&value).map_err(|err| SimError::BadRequest(format!("{name}: {err}")))
            })
            .transpose()
    };
    // Like the real processors: without both bounds, the window is everything.
    let (from, to) = match (bound("from")?, bound("to")?) {
        (Some(from), Some(to)) => (Some(from), Some(to)),
        _ => (None, None),
    };
    let totals = sim.shared.store.totals(from, to);
    let amount = Decimal::new(totals.cents, 2);
    let fee = sim.fee();
    // Exact, finer than a cent when it is (0.15 × 0.01 = 0.0015), never fewer than 2 decimals.
    let total_fee = fee
        .checked_mul(amount)
        .ok_or(SimError::Internal)?
        .trimmed(2);
    to_json(
        StatusCode::OK,
        &SummaryBody {
            total_requests: totals.count,
            total_amount: &raw_number(amount.to_string())?,
            total_fee: &raw_number(total_fee.to_string())?,
            fee_per_transaction: &raw_number(fee.to_string())?,
        },
    )
}

#[derive(Serialize)]
struct ConfigChange<T> {
    config: &'static str,
    was: T,
    is: T,
}

#[derive(Deserialize)]
struct DelayRequest {
    delay: u64,
}

async fn set_delay(sim: &Simulator, request: Request<Incoming>) -> Result<Answer, SimError> {
    require_token(sim, &request)?;
    let DelayRequest { delay } = parse_json(&read_body(request).await?)?;
    let was = sim.set_delay(delay);
    to_json(
        StatusCode::OK,
        &ConfigChange {
            config: "delay",
            was,
            is: delay,
        },
    )
}

#[derive(Deserialize)]
struct FailureRequest {
    failure: bool,
}

async fn set_failure(sim: &Simulator, request: Request<Incoming>) -> Result<Answer, SimError> {
    require_token(sim, &request)?;
    let FailureRequest { failure } = parse_json(&read_body(request).await?)?;
    let was = sim.set_failure(failure);
    to_json(
        StatusCode::OK,
        &ConfigChange {
            config: "failure",
            was,
            is: failure,
        },
    )
}

#[derive(Deserialize)]
struct TokenRequest {
    token: String,
}

async fn set_token(sim: &Simulator, request: Request<Incoming>) -> Result<Answer, SimError> {
    require_token(sim, &request)?;
    let TokenRequest { token } = parse_json(&read_body(request).await?)?;
    // An empty token could never be presented in a header value that matches.
    if token.is_empty() {
        return Err(SimError::BadRequest("token must not be empty".to_owned()));
    }
    sim.set_token(token);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

fn purge(sim: &Simulator, request: &Request<Incoming>) -> Result<Answer, SimError> {
    require_token(sim, request)?;
    sim.purge();
    Ok(json(StatusCode::OK, Bytes::from_static(PURGED_BODY)))
}

// ---- Helpers -------------------------------------------------------------------------

async fn read_body(request: Request<Incoming>) -> Result<Bytes, SimError> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(SimError::PayloadTooLarge),
        Err(err) => Err(SimError::BadRequest(format!("cannot read body: {err}"))),
    }
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|err| SimError::BadRequest(err.to_string()))
}

/// Exact decimal text as a JSON number, so no float ever prints an amount.
fn raw_number(text: String) -> Result<Box<RawValue>, SimError> {
    RawValue::from_string(text).map_err(|_| SimError::Internal)
}

fn to_json<T: Serialize>(status: StatusCode, body: &T) -> Result<Answer, SimError> {
    let body = serde_json::to_vec(body).map_err(|_| SimError::Internal)?;
    Ok(json(status, Bytes::from(body)))
}

fn json(status: StatusCode, body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The percent-decoded value of `name` in a query string (`+` is kept: it is an offset
/// sign in a timestamp far more often than an encoded space).
fn query_param<'q>(query: &'q str, name: &str) -> Result<Option<Cow<'q, str>>, SimError> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

fn percent_decode(text: &str) -> Result<Cow<'_, str>, SimError> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    let bad = || SimError::BadRequest(format!("bad percent-encoding in {text:?}"));
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn payment_bodies_parse_exactly() {
        let id = Uuid::new_v4();
        let body = format!(
            r#"{{"correlationId":"{id}","amount":19.90,"requestedAt":"2025-07-15T12:34:56.000Z"}}"#
        );
        let payment = parse_payment(body.as_bytes()).unwrap();
        assert_eq!(payment.correlation_id, id);
        assert_eq!(payment.amount_cents, 1990);
        assert_eq!(payment.requested_at_ms, 1_752_582_896_000);
        assert_eq!(payment.requested_at, "2025-07-15T12:34:56.000Z");
    }

    #[test]
    fn payment_bodies_missing_or_wrong_fields_are_bad_requests() {
        let id = Uuid::new_v4();
        let at = "2025-07-15T12:34:56.000Z";
        for body in [
            format!(r#"{{"correlationId":"{id}","amount":19.90}}"#),
            format!(r#"{{"correlationId":"{id}","requestedAt":"{at}"}}"#),
            format!(r#"{{"amount":19.90,"requestedAt":"{at}"}}"#),
            format!(r#"{{"correlationId":"nope","amount":19.90,"requestedAt":"{at}"}}"#),
            format!(r#"{{"correlationId":"{id}","amount":"19.90","requestedAt":"{at}"}}"#),
            format!(r#"{{"correlationId":"{id}","amount":-1,"requestedAt":"{at}"}}"#),
            format!(r#"{{"correlationId":"{id}","amount":19.90,"requestedAt":"yesterday"}}"#),
            format!(r#"{{"correlationId":"{id}","amount":19.90,"requestedAt":12}}"#),
            "not json".to_owned(),
        ] {
            assert!(
                matches!(parse_payment(body.as_bytes()), Err(SimError::BadRequest(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn escaped_requested_at_is_kept_unescaped() {
        let id = Uuid::new_v4();
        let body = format!(
            r#"{{"correlationId":"{id}","amount":1,"requestedAt":"2025-07-15T12:34:56.000\u005A"}}"#
        );
        let payment = parse_payment(body.as_bytes()).unwrap();
        assert_eq!(payment.requested_at, "2025-07-15T12:34:56.000Z");
    }

    #[test]
    fn query_params_are_percent_decoded() {
        let query = "from=2025-07-15T12%3A34%3A56.000%2B02%3A00&to=2025-07-15T12:34:56Z&x";
        assert_eq!(
            query_param(query, "from").unwrap().as_deref(),
            Some("2025-07-15T12:34:56.000+02:00")
        );
        assert_eq!(
            query_param(query, "to").unwrap().as_deref(),
            Some("2025-07-15T12:34:56Z")
        );
        assert_eq!(query_param(query, "x").unwrap().as_deref(), Some(""));
        assert_eq!(query_param(query, "y").unwrap(), None);
        assert!(query_param("from=%zz", "from").is_err());
        assert!(query_param("from=%2", "from").is_err());
    }
}
