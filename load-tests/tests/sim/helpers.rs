//! Test support: a simulator on `127.0.0.1:0` per test, and a reqwest client for it.

use std::future::Future;
use std::time::Duration;

use paystream_load_tests::sim::{self, SimConfig, SimHandle};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use uuid::Uuid;

/// The initial admin token.
pub const TOKEN: &str = "123";
/// A `requestedAt` as workers send it, and its UTC milliseconds.
pub const AT: &str = "2025-07-15T12:34:56.000Z";
pub const AT_MS: i64 = 1_752_582_896_000;

/// One simulator and a client; the simulator stops when this is dropped.
pub struct TestSim {
    pub handle: SimHandle,
    pub client: reqwest::Client,
}

impl TestSim {
    /// A default processor (fee 0.05, token 123, no delay).
    pub async fn start() -> Self {
        Self::with(SimConfig::default_processor()).await
    }

    pub async fn with(config: SimConfig) -> Self {
        let handle = sim::spawn(config).await.unwrap();
        Self {
            handle,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    /// `POST /payments` with a body written verbatim (so the number's text is exact).
    pub async fn post_raw(&self, body: String) -> Response {
        post_raw(&self.client, &self.url("/payments"), body).await
    }

    pub async fn post_payment(&self, id: Uuid, amount: &str, requested_at: &str) -> Response {
        self.post_raw(payment_json(id, amount, requested_at)).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// `GET /admin/payments-summary` with the given query and token; status and body.
    pub async fn summary(
        &self,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .get(self.url("/admin/payments-summary"))
            .query(query);
        if let Some(token) = token {
            request = request.header("X-Rinha-Token", token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// `GET /admin/payments-summary` with the right token, parsed.
    pub async fn summary_json(&self, query: &[(&str, &str)]) -> Value {
        let (status, body) = self.summary(query, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `PUT /admin/configurations/<what>` with a raw JSON body.
    pub async fn put_config(&self, what: &str, body: &str, token: &str) -> Response {
        self.client
            .put(self.url(&format!("/admin/configurations/{what}")))
            .header("X-Rinha-Token", token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// `PUT /admin/configurations/<what>` with the right token; the answer parsed.
    pub async fn put_config_json(&self, what: &str, body: &str) -> Value {
        self.put_config(what, body, TOKEN)
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn purge(&self, token: &str) -> Response {
        self.client
            .post(self.url("/admin/purge-payments"))
            .header("X-Rinha-Token", token)
            .send()
            .await
            .unwrap()
    }
}

pub async fn post_raw(client: &reqwest::Client, url: &str, body: String) -> Response {
    client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A payment body with `amount` written exactly as given.
pub fn payment_json(id: Uuid, amount: &str, requested_at: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount},"requestedAt":"{requested_at}"}}"#)
}

/// Deadline of a wait for an event: a bound on a hang, not a speed claim (most waits end
/// within milliseconds; a shared machine may stall a test for seconds).
pub const EVENT_DEADLINE: Duration = Duration::from_secs(30);

/// A simulated delay (or window) within which the test must act while the simulator
/// waits: change a setting, send more requests, give up. Generous for the same reason;
/// every use costs the test this long.
pub const ACT_WITHIN_MS: u64 = 2_000;

/// Polls `condition` every 10 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, condition: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
