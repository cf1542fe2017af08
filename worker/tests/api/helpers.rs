//! The whole path in one process: a real redis-server on an ephemeral port, the real
//! gateway on 127.0.0.1:0, two simulated processors on 127.0.0.1:0, and workers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::shutdown::{Shutdown, ShutdownTrigger};
use common::store::Store;
use common::testing::{unique_prefix, RedisServer};
use gateway::{AppState, GatewayConfig};
use load_tests::sim::{self, SimConfig, SimHandle};
use paystream_worker::{Hooks, WorkerConfig, WorkerHandle};

pub struct Stack {
    pub redis: RedisServer,
    pub prefix: String,
    pub gateway: SocketAddr,
    pub default: SimHandle,
    pub fallback: SimHandle,
    pub store: Store,
    pub client: reqwest::Client,
    _gateway_stop: ShutdownTrigger,
}

pub async fn spawn_stack() -> Stack {
    spawn_stack_with(StackOptions::default()).await
}

/// Variations of the test stack.
#[derive(Clone)]
pub struct StackOptions {
    pub aof: bool,
    /// Redis on a Unix socket only (AOF on): for restart tests.
    pub unix_socket: bool,
    pub default: SimConfig,
    pub fallback: SimConfig,
    /// The gateway's `FIRST_ATTEMPT_MS` (`None`: its default; 0: every attempt begun).
    pub first_attempt_ms: Option<u64>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            aof: false,
            unix_socket: false,
            default: SimConfig::default_processor(),
            fallback: SimConfig::fallback_processor(),
            first_attempt_ms: None,
        }
    }
}

pub async fn spawn_stack_with(options: StackOptions) -> Stack {
    let redis = if options.unix_socket {
        RedisServer::start_on_unix_socket()
    } else if options.aof {
        RedisServer::start_with_aof()
    } else {
        RedisServer::start()
    };
    let prefix = unique_prefix();
    let url = redis.url();
    let first_attempt = options.first_attempt_ms.map(|ms| ms.to_string());
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_URL", url.as_str()),
        ("PAYSTREAM_KEY_PREFIX", prefix.as_str()),
        ("REDIS_TIMEOUT_MS", "1000"),
        ("ADMIN_TOKEN", "test-admin"),
    ]);
    if let Some(ms) = first_attempt.as_deref() {
        env.insert("FIRST_ATTEMPT_MS", ms);
    }
    let state = AppState::new(GatewayConfig::from_env(&env).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let (stop, shutdown) = Shutdown::new();
    let store = state.store.clone();
    tokio::spawn(gateway::run(listener, state, shutdown));
    let default = sim::spawn(options.default).await.unwrap();
    let fallback = sim::spawn(options.fallback).await.unwrap();
    Stack {
        redis,
        prefix,
        gateway,
        default,
        fallback,
        store,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        _gateway_stop: stop,
    }
}

impl Stack {
    /// Worker settings for this stack (the same environment a child process gets);
    /// `extra` overrides.
    pub fn worker_config(&self, extra: &[(&str, &str)]) -> WorkerConfig {
        let env: HashMap<String, String> = self.worker_env(extra).into_iter().collect();
        WorkerConfig::from_env(&env).unwrap()
    }

    /// The worker's environment for this stack, as a child process would get it.
    pub fn worker_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("REDIS_URL".to_string(), self.redis.url()),
            ("PAYSTREAM_KEY_PREFIX".to_string(), self.prefix.clone()),
            ("PROCESSOR_DEFAULT_URL".to_string(), self.default.url()),
            ("PROCESSOR_FALLBACK_URL".to_string(), self.fallback.url()),
            ("WORKER_METRICS_ADDR".to_string(), "off".to_string()),
            ("RETRY_BASE_MS".to_string(), "5".to_string()),
            ("RETRY_MAX_MS".to_string(), "50".to_string()),
            ("RUST_LOG".to_string(), "warn".to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    pub async fn start_worker(&self, extra: &[(&str, &str)]) -> WorkerHandle {
        self.start_worker_with(extra, Hooks::default()).await
    }

    pub async fn start_worker_with(&self, extra: &[(&str, &str)], hooks: Hooks) -> WorkerHandle {
        let (_never, shutdown) = Shutdown::new();
        // The external trigger lives as long as the test: leak it deliberately.
        std::mem::forget(_never);
        paystream_worker::start_with_hooks(self.worker_config(extra), shutdown, hooks)
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway, path)
    }

    pub async fn post(&self, id: &uuid::Uuid, amount: &str) -> u16 {
        self.client
            .post(self.url("/payments"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"correlationId":"{id}","amount":{amount}}}"#))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn status(&self, id: &uuid::Uuid) -> serde_json::Value {
        self.client
            .get(self.url(&format!("/payments/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The gateway's summary over all time, as (default count, default cents, fallback
    /// count, fallback cents).
    pub async fn totals(&self) -> (u64, i128, u64, i128) {
        let s = self.store.summary(Default::default()).await.unwrap();
        (
            s.default.requests,
            s.default.cents,
            s.fallback.requests,
            s.fallback.cents,
        )
    }

    /// Waits until the summary counts `n` payments in all, or panics after `limit`.
    pub async fn wait_processed(&self, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let (d, _, f, _) = self.totals().await;
            if d + f >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} processed after {limit:?} (backlog {})",
                d + f,
                self.store.backlog().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of payment status hashes (every payment Redis accepted).
    pub async fn accepted_in_redis(&self) -> usize {
        let mut conn = self.store.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(self.store.keys().payment_pattern())
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.len()
    }

    /// A processor's admin summary over HTTP, as (count, amount text).
    pub async fn admin_summary(&self, sim: &SimHandle, query: &str) -> (u64, String) {
        let text = self
            .client
            .get(format!("{}/admin/payments-summary{query}", sim.url()))
            .header("X-Rinha-Token", "123")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let amount = text
            .split("\"totalAmount\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .unwrap()
            .to_string();
        (value["totalRequests"].as_u64().unwrap(), amount)
    }

    /// The gateway's summary over HTTP, raw text.
    pub async fn summary_text(&self, query: &str) -> String {
        self.client
            .get(self.url(&format!("/payments-summary{query}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Posts every id (amount `amount`) from `tasks` concurrent loops; each must get a 202.
pub async fn post_all(
    stack: &std::sync::Arc<Stack>,
    ids: &[uuid::Uuid],
    amount: &str,
    tasks: usize,
) {
    let mut posts = tokio::task::JoinSet::new();
    for chunk in ids.chunks(ids.len().div_ceil(tasks.max(1)).max(1)) {
        let (stack, chunk, amount) = (stack.clone(), chunk.to_vec(), amount.to_string());
        posts.spawn(async move {
            for id in chunk {
                assert_eq!(stack.post(&id, &amount).await, 202);
            }
        });
    }
    while let Some(r) = posts.join_next().await {
        r.unwrap();
    }
}

impl Stack {
    /// The worker binary as a child process of this test, for kill -9 and SIGTERM.
    pub fn spawn_worker_process(&self, extra: &[(&str, &str)]) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_paystream-worker"))
            .envs(self.worker_env(extra))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// Waits for `cond` or panics with `what` after `limit` (generous: never a speed claim).
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
