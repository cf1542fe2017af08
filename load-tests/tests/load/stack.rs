//! The real Paystream stack, started in-process for the load generators' tests: a real
//! `redis-server` on an ephemeral port, the gateway on `127.0.0.1:0`, one worker pool, and
//! the two processor simulators on `127.0.0.1:0`. The same start-up path as
//! `worker/tests/api/helpers.rs`; everything stops when the [`Stack`] is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::shutdown::{Shutdown, ShutdownTrigger};
use common::store::Store;
use common::testing::{unique_prefix, RedisServer};
use gateway::{AppState, GatewayConfig};
use paystream_load_tests::load::control::Endpoints;
use paystream_load_tests::sim::{self, SimConfig, SimHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::{WorkerConfig, WorkerHandle};

/// Worker settings for runs whose stages last about a second instead of ten: a breaker that
/// stays open for its production 5 s would sit out whole stages.
pub const COMPRESSED_WORKER: &[(&str, &str)] = &[("BREAKER_OPEN_MS", "100")];

/// A running stack. Field order is drop order: the shutdown goes first, Redis last.
pub struct Stack {
    /// Dropping it stops the gateway's accept loop and the worker (its external shutdown).
    _stop: ShutdownTrigger,
    /// The worker pool; kept so its tasks are owned by the test.
    _worker: WorkerHandle,
    /// Where the gateway listens.
    pub gateway: SocketAddr,
    /// The gateway's Redis access (same key prefix), to look at the backlog.
    pub store: Store,
    /// The stack's key prefix (`PAYSTREAM_KEY_PREFIX`).
    pub prefix: String,
    /// The default processor simulator.
    pub default: SimHandle,
    /// The fallback processor simulator.
    pub fallback: SimHandle,
    /// The real `redis-server`, killed when dropped.
    pub redis: RedisServer,
}

/// Starts the stack with the worker's production defaults. With `admin_token`, the
/// gateway's admin endpoints require it in `X-Admin-Token`; without, they are open
/// (`PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true`, as for local stacks).
pub async fn spawn_stack(admin_token: Option<&str>) -> Stack {
    spawn_stack_with(admin_token, &[]).await
}

/// [`spawn_stack`] with extra worker settings (e.g. [`COMPRESSED_WORKER`]).
pub async fn spawn_stack_with(admin_token: Option<&str>, worker_extra: &[(&str, &str)]) -> Stack {
    let redis = RedisServer::start();
    let prefix = unique_prefix();
    let redis_url = redis.url();
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    let (stop, shutdown) = Shutdown::new();

    let mut env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_URL", redis_url.as_str()),
        ("PAYSTREAM_KEY_PREFIX", prefix.as_str()),
        ("GATEWAY_LISTEN", "127.0.0.1:0"),
    ]);
    match admin_token {
        Some(token) => env.insert("ADMIN_TOKEN", token),
        None => env.insert("PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN", "true"),
    };
    let state = AppState::new(GatewayConfig::from_env(&env).unwrap()).unwrap();
    let store = state.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    tokio::spawn(gateway::run(listener, state, shutdown.clone()));

    let (default_url, fallback_url) = (default.url(), fallback.url());
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_URL", redis_url.as_str()),
        ("PAYSTREAM_KEY_PREFIX", prefix.as_str()),
        ("PROCESSOR_DEFAULT_URL", default_url.as_str()),
        ("PROCESSOR_FALLBACK_URL", fallback_url.as_str()),
        ("WORKER_METRICS_ADDR", "off"),
    ]);
    env.extend(worker_extra.iter().copied());
    let worker = worker::start(WorkerConfig::from_env(&env).unwrap(), shutdown)
        .await
        .unwrap();

    Stack {
        _stop: stop,
        _worker: worker,
        gateway,
        store,
        prefix,
        default,
        fallback,
        redis,
    }
}

impl Stack {
    /// The gateway's base URL: what the load generators call the backend.
    pub fn url(&self) -> String {
        format!("http://{}", self.gateway)
    }

    /// The gateway and both processor simulators, for a run's configuration; `admin_token`
    /// goes with the backend's purge.
    pub fn endpoints(&self, admin_token: Option<&str>) -> Endpoints {
        Endpoints {
            backend_url: self.url(),
            default_url: self.default.url(),
            fallback_url: self.fallback.url(),
            admin_token: admin_token.map(Into::into),
            ..Endpoints::default()
        }
    }

    /// Entries still in the payment stream (queued or in flight).
    pub async fn backlog(&self) -> u64 {
        self.store.backlog().await.unwrap()
    }

    /// Waits until the stream is empty, or `limit` has passed; returns the backlog then.
    pub async fn wait_drained(&self, limit: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let backlog = self.backlog().await;
            if backlog == 0 || tokio::time::Instant::now() >= deadline {
                return backlog;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pid of the `redis-server` child (from `INFO server`): the one part of the stack
    /// that runs in a process of its own, so the only one worth a `--pid` entry.
    pub async fn redis_pid(&self) -> u32 {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", self.redis.port()))
            .await
            .unwrap();
        conn.write_all(b"INFO server\r\n").await.unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // A bulk string of a few hundred bytes: read until the whole field is in.
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "redis closed the connection during INFO");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let field = text
                .split_once("process_id:")
                .and_then(|(_, rest)| rest.split_once("\r\n"));
            if let Some((pid, _)) = field {
                return pid.trim().parse().unwrap();
            }
        }
    }
}
