//! Every HTTP call of a run that is not load: purging, setting processor conditions, and
//! reading the summaries (backend `GET /payments-summary`, processors'
//! `GET /admin/payments-summary`, docs/protocol.md §2 and §3).
//!
//! [`rinha`](super::rinha) drives these around its load; [`checker`](super::checker) compares
//! the summaries; [`score`](super::score) scores the final ones. Amounts are read as exact
//! [`Decimal`]s from the numbers' text.

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use common::money::Decimal;

/// Header carrying the processors' admin token (docs/protocol.md §3).
pub const PROCESSOR_TOKEN_HEADER: &str = "X-Rinha-Token";
/// Header carrying the backend's admin token for `POST /purge-payments`.
pub const BACKEND_TOKEN_HEADER: &str = "X-Admin-Token";
/// The processors' initial admin token.
pub const DEFAULT_PROCESSOR_TOKEN: &str = "123";

/// `2025-07-15T12:34:56.000Z`: UTC, milliseconds, as the processors and the contest use.
const ISO_MS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a UTC instant the way every summary query of a run is written.
pub fn iso_ms(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(ISO_MS)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Which of the two processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Processor {
    Default,
    Fallback,
}

impl Processor {
    /// `"default"` / `"fallback"`.
    pub fn name(self) -> &'static str {
        match self {
            Processor::Default => "default",
            Processor::Fallback => "fallback",
        }
    }
}

/// A processor's simulated condition: a delay before every payment, and whether it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Conditions {
    pub delay_ms: u64,
    pub failing: bool,
}

/// One processor's line of the backend summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct Totals {
    pub total_requests: u64,
    pub total_amount: Decimal,
}

/// The backend's `GET /payments-summary` answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSummary {
    pub default: Totals,
    pub fallback: Totals,
}

impl BackendSummary {
    /// The line for one processor.
    pub fn get(&self, p: Processor) -> Totals {
        match p {
            Processor::Default => self.default,
            Processor::Fallback => self.fallback,
        }
    }

    /// Payments processed on either processor.
    pub fn processed(&self) -> u64 {
        self.default.total_requests + self.fallback.total_requests
    }
}

/// A processor's `GET /admin/payments-summary` answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct ProcessorSummary {
    pub total_requests: u64,
    pub total_amount: Decimal,
    #[serde(default)]
    pub total_fee: Decimal,
    pub fee_per_transaction: Decimal,
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what}: unexpected body: {source}")]
    Body {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Where a run finds the backend and the processors, and the tokens to administer them.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The backend under test (the load balancer), e.g. `http://127.0.0.1:9999`.
    pub backend_url: String,
    /// The default processor's base URL.
    pub default_url: String,
    /// The fallback processor's base URL.
    pub fallback_url: String,
    /// Sent as `X-Admin-Token` to the backend's purge when set.
    pub admin_token: Option<String>,
    /// The processors' admin token (`X-Rinha-Token`).
    pub processor_token: String,
}

impl Default for Endpoints {
    /// The local stack (`scripts/up.sh`, docs/protocol.md §6).
    fn default() -> Self {
        Endpoints {
            backend_url: "http://127.0.0.1:9999".into(),
            default_url: "http://127.0.0.1:8001".into(),
            fallback_url: "http://127.0.0.1:8002".into(),
            admin_token: None,
            processor_token: DEFAULT_PROCESSOR_TOKEN.into(),
        }
    }
}

impl Endpoints {
    /// A [`Control`] of these endpoints whose calls time out after `timeout`.
    pub fn control(&self, timeout: Duration) -> anyhow::Result<Control> {
        Control::new(
            &self.backend_url,
            &self.default_url,
            &self.fallback_url,
            self.admin_token.clone(),
            self.processor_token.clone(),
            timeout,
        )
    }
}

/// Where the backend and the processors are, and the tokens to administer them.
#[derive(Clone, Debug)]
pub struct Control {
    client: reqwest::Client,
    backend: String,
    default_url: String,
    fallback_url: String,
    /// Sent as `X-Admin-Token` to the backend when set.
    admin_token: Option<String>,
    /// Sent as `X-Rinha-Token` to the processors.
    processor_token: String,
}

/// How long a backend purge may take (see [`Control::purge_backend`]).
pub const PURGE_TIMEOUT: Duration = Duration::from_secs(120);

impl Control {
    /// `timeout` bounds each control call (summaries and admin calls are never delayed by
    /// the simulated conditions, so a few seconds is plenty).
    pub fn new(
        backend: &str,
        default_url: &str,
        fallback_url: &str,
        admin_token: Option<String>,
        processor_token: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()?;
        Ok(Control {
            client,
            backend: trim_base(backend),
            default_url: trim_base(default_url),
            fallback_url: trim_base(fallback_url),
            admin_token,
            processor_token,
        })
    }

    /// The backend's base URL, without a trailing slash.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    fn processor_url(&self, p: Processor) -> &str {
        match p {
            Processor::Default => &self.default_url,
            Processor::Fallback => &self.fallback_url,
        }
    }

    async fn send(
        &self,
        what: String,
        request: reqwest::RequestBuilder,
    ) -> Result<bytes::Bytes, ControlError> {
        let response = request.send().await.map_err(|source| ControlError::Http {
            what: what.clone(),
            source,
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| ControlError::Http {
                what: what.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(ControlError::Status {
                what,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        Ok(body)
    }

    fn processor_request(
        &self,
        method: reqwest::Method,
        p: Processor,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.processor_url(p)))
            .header(PROCESSOR_TOKEN_HEADER, &self.processor_token)
    }

    /// `POST /purge-payments` on the backend. Its time grows with what it deletes (one
    /// script call, and with `appendfsync always` one fsync, per thousand payments): a
    /// benchmark's backlog of a few hundred thousand outlasts the other calls' timeout, so
    /// this one gets [`PURGE_TIMEOUT`].
    pub async fn purge_backend(&self) -> Result<(), ControlError> {
        let mut request = self
            .client
            .post(format!("{}/purge-payments", self.backend))
            .timeout(PURGE_TIMEOUT);
        if let Some(token) = &self.admin_token {
            request = request.header(BACKEND_TOKEN_HEADER, token);
        }
        self.send("purge backend".into(), request).await.map(drop)
    }

    /// `POST /admin/purge-payments` on one processor.
    pub async fn purge_processor(&self, p: Processor) -> Result<(), ControlError> {
        let request = self.processor_request(reqwest::Method::POST, p, "/admin/purge-payments");
        self.send(format!("purge {} processor", p.name()), request)
            .await
            .map(drop)
    }

    /// Purges the backend and both processors at once: a clean slate for a run.
    pub async fn purge_all(&self) -> anyhow::Result<()> {
        let (b, d, f) = tokio::join!(
            self.purge_backend(),
            self.purge_processor(Processor::Default),
            self.purge_processor(Processor::Fallback),
        );
        b.context("purging the backend")?;
        d.context("purging the default processor")?;
        f.context("purging the fallback processor")?;
        Ok(())
    }

    /// Sets both processors' conditions at once; the default's result first.
    pub async fn set_both(
        &self,
        default: Conditions,
        fallback: Conditions,
    ) -> [Result<(), ControlError>; 2] {
        let (d, f) = tokio::join!(
            self.set_conditions(Processor::Default, default),
            self.set_conditions(Processor::Fallback, fallback),
        );
        [d, f]
    }

    /// `PUT /admin/configurations/delay` then `.../failure` on one processor.
    pub async fn set_conditions(&self, p: Processor, c: Conditions) -> Result<(), ControlError> {
        let delay = self
            .processor_request(reqwest::Method::PUT, p, "/admin/configurations/delay")
            .json(&serde_json::json!({ "delay": c.delay_ms }));
        self.send(format!("set {} delay", p.name()), delay).await?;
        let failure = self
            .processor_request(reqwest::Method::PUT, p, "/admin/configurations/failure")
            .json(&serde_json::json!({ "failure": c.failing }));
        self.send(format!("set {} failure", p.name()), failure)
            .await
            .map(drop)
    }

    /// The backend's summary over `[from, to]` (open where `None`).
    pub async fn backend_summary(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<BackendSummary, ControlError> {
        let url = format!(
            "{}/payments-summary{}",
            self.backend,
            window_query(from, to)
        );
        let body = self
            .send("backend summary".into(), self.client.get(url))
            .await?;
        serde_json::from_slice(&body).map_err(|source| ControlError::Body {
            what: "backend summary".into(),
            source,
        })
    }

    /// One processor's admin summary over `[from, to]` (everything where `None`).
    pub async fn processor_summary(
        &self,
        p: Processor,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<ProcessorSummary, ControlError> {
        let path = format!("/admin/payments-summary{}", window_query(from, to));
        let what = format!("{} processor summary", p.name());
        let body = self
            .send(
                what.clone(),
                self.processor_request(reqwest::Method::GET, p, &path),
            )
            .await?;
        serde_json::from_slice(&body).map_err(|source| ControlError::Body { what, source })
    }

    /// The backend's and both processors' summaries over `[from, to]`, asked at once, as a
    /// run reads them once it ended.
    pub async fn final_summaries(
        &self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> anyhow::Result<(BackendSummary, ProcessorSummary, ProcessorSummary)> {
        let (b, d, f) = tokio::join!(
            self.backend_summary(from, to),
            self.processor_summary(Processor::Default, from, to),
            self.processor_summary(Processor::Fallback, from, to),
        );
        Ok((
            b.context("final backend summary")?,
            d.context("final default processor summary")?,
            f.context("final fallback processor summary")?,
        ))
    }
}

/// `?from=..&to=..`, written raw as the contest's script does (the ISO characters need no
/// escaping in a query).
fn window_query(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> String {
    let parts: Vec<String> = [("from", from), ("to", to)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|t| format!("{k}={}", iso_ms(t))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_iso_with_milliseconds() {
        let t = datetime!(2025-07-15 12:34:56.789123 UTC);
        assert_eq!(iso_ms(t), "2025-07-15T12:34:56.789Z");
        let t = datetime!(2025-07-15 14:34:56 +02:00);
        assert_eq!(iso_ms(t), "2025-07-15T12:34:56.000Z");
        assert_eq!(
            window_query(Some(t), Some(t)),
            "?from=2025-07-15T12:34:56.000Z&to=2025-07-15T12:34:56.000Z"
        );
        assert_eq!(window_query(None, None), "");
    }

    #[test]
    fn parses_summaries_exactly() {
        let b: BackendSummary = serde_json::from_str(
            r#"{"default":{"totalRequests":16752,"totalAmount":333364.80},
                "fallback":{"totalRequests":1,"totalAmount":19.9}}"#,
        )
        .unwrap();
        assert_eq!(b.default.total_requests, 16752);
        assert_eq!(b.default.total_amount, Decimal::from_cents(33_336_480));
        assert_eq!(
            b.get(Processor::Fallback).total_amount,
            Decimal::from_cents(1990)
        );

        let p: ProcessorSummary = serde_json::from_str(
            r#"{"totalRequests":2,"totalAmount":39.8,"totalFee":1.99,"feePerTransaction":0.05}"#,
        )
        .unwrap();
        assert_eq!(p.fee_per_transaction, Decimal::new(5, 2));
        assert_eq!(p.total_fee, Decimal::from_cents(199));
        // Our report writes snake_case with exact numbers.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"total_requests":2,"total_amount":39.8,"total_fee":1.99,"fee_per_transaction":0.05}"#
        );
    }
}
