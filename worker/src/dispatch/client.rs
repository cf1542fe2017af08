//! The HTTP client of both processors: keep-alive connections, the body written without
//! an intermediate JSON value, a timeout per call.

use std::time::{Duration, Instant};

use common::metrics as names;
use common::payment::{Cents, PaymentId, Processor};
use common::time::{format_ms, parse_ms, Millis};
use serde::Deserialize;

use crate::dispatch::outcome::{Lookup, SendOutcome};

/// When a call must have started by: the send window after `begin` confirmed ownership,
/// on two clocks. The monotonic clock ignores wall-clock steps but stops while the machine
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

/// One client for both processors; cheap to clone.
#[derive(Clone)]
pub struct ProcessorClient {
    http: reqwest::Client,
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
    pub fn new(urls: [String; 2], timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2))
            .http1_only()
            .build()?;
        Ok(Self {
            http,
            urls,
            timeout,
        })
    }

    pub fn url(&self, processor: Processor) -> &str {
        &self.urls[processor.index()]
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
        let mut call = std::pin::pin!(self
            .http
            .post(format!("{}/payments", self.url(processor)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout.min(self.timeout))
            .send());
        let mut first_poll = true;
        let result = std::future::poll_fn(|cx| {
            if std::mem::take(&mut first_poll) && start_by.passed() {
                return std::task::Poll::Ready(None);
            }
            std::future::Future::poll(call.as_mut(), cx).map(Some)
        })
        .await?;
        let outcome = match result {
            Ok(response) => SendOutcome::from_status(response.status().as_u16()),
            // Refused before anything was sent: the processor cannot have it.
            Err(e) if e.is_connect() => SendOutcome::Failed { status: None },
            Err(_) => SendOutcome::Ambiguous,
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
        let result = self
            .http
            .get(format!("{}/payments/{id}", self.url(processor)))
            .timeout(self.timeout)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(_) => return Lookup::Unknown,
        };
        match response.status().as_u16() {
            404 => Lookup::Absent,
            200 => match response.json::<StoredPayment>().await {
                Ok(p) => match parse_ms(&p.requested_at) {
                    Ok(requested_at) => Lookup::Found { requested_at },
                    Err(_) => Lookup::Unknown,
                },
                Err(_) => Lookup::Unknown,
            },
            _ => Lookup::Unknown,
        }
    }
}

impl ProcessorClient {
    /// `GET /payments/service-health` with its own timeout.
    pub async fn health(&self, processor: Processor, timeout: Duration) -> HealthAnswer {
        let result = self
            .http
            .get(format!("{}/payments/service-health", self.url(processor)))
            .timeout(timeout)
            .send()
            .await;
        match result {
            Ok(r) if r.status().as_u16() == 429 => HealthAnswer::RateLimited,
            Ok(r) if r.status().is_success() => match r.json::<ServiceHealth>().await {
                Ok(h) => HealthAnswer::Report {
                    failing: h.failing,
                    min_response_ms: h.min_response_time,
                },
                Err(_) => HealthAnswer::Unavailable,
            },
            _ => HealthAnswer::Unavailable,
        }
    }
}
