//! The HTTP client of both processors: keep-alive connections, the body written without
//! an intermediate JSON value, a timeout per call.

use std::time::{Duration, Instant};

use common::metrics as names;
use common::payment::{Cents, PaymentId, Processor};
use common::time::{format_ms, parse_ms, Millis};
use serde::Deserialize;

use crate::dispatch::http1::{CallError, Pool};
use crate::dispatch::outcome::{is_json_object, Lookup, SendOutcome};

/// When a call must have started by: the send window after `begin` confirmed ownership
/// (or, for a first attempt the accept pinned, the end of its window on Redis' clock, as
/// [`RedisClock`] bounds it), on two clocks. The monotonic clock ignores wall-clock steps but stops while the machine
/// is suspended (a paused VM); the wall clock runs through a suspend. A call starts only if
/// neither says the window has passed.
#[derive(Debug, Clone, Copy)]
pub struct SendDeadline {
    monotonic: tokio::time::Instant,
    wall: std::time::SystemTime,
}

impl SendDeadline {
    /// A window of `window` from now.
    pub fn after(window: Duration) -> Self {
        Self {
            monotonic: tokio::time::Instant::now() + window,
            wall: std::time::SystemTime::now() + window,
        }
    }

    pub fn passed(&self) -> bool {
        tokio::time::Instant::now() >= self.monotonic || std::time::SystemTime::now() >= self.wall
    }
}

/// What one `TIME` reply tells of Redis' clock from here on: `TIME` ran after the local
/// instants `mono` and `wall` were taken, so at any later local moment Redis' clock shows
/// at most `redis_ms` plus the time passed since them. No comparison of two machines'
/// clocks: an upper bound of Redis' own time, from this process' elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct RedisClock {
    pub redis_ms: Millis,
    pub mono: tokio::time::Instant,
    pub wall: std::time::SystemTime,
}

impl RedisClock {
    /// An upper bound of Redis' time now.
    pub fn redis_now(&self) -> Millis {
        let mono = self.mono.elapsed();
        let wall = self.wall.elapsed().unwrap_or_default();
        self.redis_ms + mono.max(wall).as_millis().min(i64::MAX as u128) as Millis
    }

    /// A call started before this deadline starts before Redis' clock reaches `until`
    /// (on both local clocks; already passed when `until` is not after `redis_ms`).
    pub fn deadline(&self, until: Millis) -> SendDeadline {
        let left = Duration::from_millis(until.saturating_sub(self.redis_ms).max(0) as u64);
        SendDeadline {
            monotonic: self.mono + left,
            wall: self.wall + left,
        }
    }
}

/// How one HTTP exchange with a processor ended.
enum Exchange {
    /// An answer: status and body.
    Answer(u16, bytes::Bytes),
    /// Nothing was sent (no connection could be made).
    NotSent,
    /// The request may have been sent; no answer (timeout, reset).
    NoAnswer,
}

/// One client for both processors; cheap to clone.
#[derive(Clone)]
pub struct ProcessorClient {
    /// Keep-alive pools, indexed by `Processor::index()`.
    pools: std::sync::Arc<[Pool; 2]>,
    /// Base URLs, indexed by `Processor::index()`.
    urls: [String; 2],
    timeout: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPayment {
    requested_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceHealth {
    failing: bool,
    min_response_time: u64,
}

/// Result of `GET /payments/service-health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthAnswer {
    Report {
        failing: bool,
        min_response_ms: u64,
    },
    /// `429`: the window's call was already used by someone.
    RateLimited,
    Unavailable,
}

impl ProcessorClient {
    pub fn new(urls: [String; 2], timeout: Duration) -> anyhow::Result<Self> {
        let connect_timeout = Duration::from_secs(2);
        let pool =
            |url: &str| Pool::new(url, 1024, connect_timeout).map_err(|e| anyhow::anyhow!(e));
        Ok(Self {
            pools: std::sync::Arc::new([pool(&urls[0])?, pool(&urls[1])?]),
            urls,
            timeout,
        })
    }

    pub fn url(&self, processor: Processor) -> &str {
        &self.urls[processor.index()]
    }

    /// One request to `processor`, its whole answer within `timeout`.
    async fn exchange(
        &self,
        processor: Processor,
        method: hyper::Method,
        path: &str,
        body: Option<bytes::Bytes>,
        timeout: Duration,
    ) -> Exchange {
        match self.pools[processor.index()]
            .call(method, path, body, timeout)
            .await
        {
            Ok((status, body)) => Exchange::Answer(status.as_u16(), body),
            Err(CallError::Connect(_) | CallError::NotSent(_)) => Exchange::NotSent,
            Err(_) => Exchange::NoAnswer,
        }
    }

    /// `POST /payments` with `requested_at` exactly as it will be recorded, started before
    /// `start_by` or not at all (`None`: nothing was sent). The check runs when the request
    /// is first polled — no await between it and handing the request to the connection —
    /// so a task that was frozen or starved past its ownership window never sends.
    pub async fn send(
        &self,
        processor: Processor,
        id: &PaymentId,
        amount: Cents,
        requested_at: Millis,
        timeout: Duration,
        start_by: SendDeadline,
    ) -> Option<SendOutcome> {
        let mut buf = [0u8; 36];
        let body = format!(
            r#"{{"correlationId":"{}","amount":{},"requestedAt":"{}"}}"#,
            id.encode(&mut buf),
            amount,
            format_ms(requested_at)
        );
        let started = Instant::now();
        let mut call = std::pin::pin!(self.exchange(
            processor,
            hyper::Method::POST,
            "/payments",
            Some(body.into()),
            timeout.min(self.timeout),
        ));
        let mut first_poll = true;
        let result = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first_poll) && start_by.passed() {
                return std::task::Poll::Ready(None);
            }
            std::future::Future::poll(call.as_mut(), cx).map(Some)
        })
        .await?;
        let outcome = match result {
            Exchange::Answer(status, body) => SendOutcome::from_answer(status, &body),
            Exchange::NotSent => SendOutcome::Failed { status: None },
            Exchange::NoAnswer => SendOutcome::Ambiguous,
        };
        metrics::histogram!(
            names::PROCESSOR_CALL_DURATION_SECONDS,
            "processor" => processor.as_str(),
            "outcome" => outcome.label(),
        )
        .record(started.elapsed().as_secs_f64());
        metrics::counter!(
            names::PROCESSOR_CALLS_TOTAL,
            "processor" => processor.as_str(),
            "outcome" => outcome.label(),
        )
        .increment(1);
        Some(outcome)
    }

    /// `GET /payments/{id}`: whether, and with which requestedAt, the processor holds it.
    pub async fn lookup(&self, processor: Processor, id: &PaymentId) -> Lookup {
        let path = format!("/payments/{id}");
        let exchange = self
            .exchange(processor, hyper::Method::GET, &path, None, self.timeout)
            .await;
        match exchange {
            // Only the processor's own 404 says it does not hold the payment: a proxy's 404
            // page (the processor unregistered, restarting) says nothing about it.
            Exchange::Answer(404, body) if is_json_object(&body) => Lookup::Absent,
            Exchange::Answer(200, body) => match serde_json::from_slice::<StoredPayment>(&body) {
                Ok(p) => match parse_ms(&p.requested_at) {
                    Ok(requested_at) => Lookup::Found { requested_at },
                    Err(_) => Lookup::Unknown,
                },
                Err(_) => Lookup::Unknown,
            },
            _ => Lookup::Unknown,
        }
    }

    /// `GET /payments/service-health` with its own timeout.
    pub async fn health(&self, processor: Processor, timeout: Duration) -> HealthAnswer {
        let exchange = self
            .exchange(
                processor,
                hyper::Method::GET,
                "/payments/service-health",
                None,
                timeout,
            )
            .await;
        match exchange {
            Exchange::Answer(429, _) => HealthAnswer::RateLimited,
            Exchange::Answer(200..=299, body) => {
                match serde_json::from_slice::<ServiceHealth>(&body) {
                    Ok(h) => HealthAnswer::Report {
                        failing: h.failing,
                        min_response_ms: h.min_response_time,
                    },
                    Err(_) => HealthAnswer::Unavailable,
                }
            }
            _ => HealthAnswer::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn redis_time_is_bounded_from_the_read_by_the_time_passed_here() {
        let clock = RedisClock {
            redis_ms: 1_000_000,
            mono: tokio::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        };
        let start_by = clock.deadline(1_000_200);
        assert!(!start_by.passed());
        tokio::time::advance(Duration::from_millis(150)).await;
        assert!(clock.redis_now() >= 1_000_150, "never below Redis' time");
        assert!(!start_by.passed());
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(start_by.passed(), "Redis' clock may be past 1_000_200 now");
        assert!(
            clock.deadline(999_999).passed(),
            "a window that ended before the read"
        );
    }
}
