//! `spawn_app()`: the real gateway on 127.0.0.1:0 against a real redis-server on an
//! ephemeral port, with its own key prefix.

use common::shutdown::{Shutdown, ShutdownTrigger};
use common::store::Store;
use common::testing::{unique_prefix, RedisServer};
use paystream_gateway::{run, AppState, GatewayConfig};
use std::collections::HashMap;
use std::net::SocketAddr;

pub struct TestApp {
    pub addr: SocketAddr,
    /// The gateway's own metrics listener (as `main` serves it on `GATEWAY_METRICS_ADDR`).
    pub metrics_addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Store,
    pub redis: RedisServer,
    state: std::sync::Arc<AppState>,
    _stop: ShutdownTrigger,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// An app whose Redis calls may take long: for tests that check exact totals over many
/// windows, where a slow answer on a loaded machine is not what they test (the 500 ms of
/// [`spawn_app`] would make it a timing assertion).
pub async fn spawn_patient_app() -> TestApp {
    spawn_app_with(&[("REDIS_TIMEOUT_MS", "60000")]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let url = redis.url();
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_URL", url.as_str()),
        ("PAYSTREAM_KEY_PREFIX", prefix.as_str()),
        ("GATEWAY_LISTEN", "127.0.0.1:0"),
        ("REDIS_TIMEOUT_MS", "500"),
        // The contest profile: purge without a token (tests of the token pass ADMIN_TOKEN,
        // which wins over the opt-out).
        ("PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN", "true"),
    ]);
    env.extend(extra.iter().copied());
    let config = GatewayConfig::from_env(&env).expect("test config");
    let state = AppState::new(config).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = Shutdown::new();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    tokio::spawn(common::admin::serve(
        metrics_listener,
        state.metrics.clone().expect("tests keep metrics on"),
        shutdown.clone(),
    ));
    tokio::spawn(run(listener, state.clone(), shutdown));
    TestApp {
        addr,
        metrics_addr,
        client: reqwest::Client::new(),
        store: state.store.clone(),
        redis,
        state,
        _stop: stop,
    }
}

impl TestApp {
    /// The shared state, to serve the same app on another listener.
    pub fn state(&self) -> std::sync::Arc<AppState> {
        self.state.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn post_payment(&self, body: &str) -> reqwest::Response {
        self.client
            .post(self.url("/payments"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// `POST /payments` with extra headers.
    pub async fn post_payment_with(
        &self,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/payments"))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// Writes `request` as is on a fresh connection and returns whatever the server sent
    /// back before closing it (for requests no HTTP client would send).
    pub async fn raw(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        // The server may answer and close before it read everything: not an error here.
        let _ = stream.write_all(request).await;
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                .await
            {
                Ok(Ok(n)) if n > 0 => response.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&response).into_owned()
    }

    /// `/metrics` from the gateway's metrics listener.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics_addr);
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn backlog(&self) -> u64 {
        self.store.backlog().await.unwrap()
    }

    /// Number of payment status hashes.
    pub async fn payment_keys(&self) -> usize {
        let mut conn = self.store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(self.store.keys().payment_pattern())
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.len()
    }
}

pub fn payment_body(id: &uuid::Uuid, amount: &str) -> String {
    format!(r#"{{"correlationId":"{id}","amount":{amount}}}"#)
}
