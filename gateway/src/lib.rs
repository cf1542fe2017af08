//! The Paystream gateway: a thin hyper HTTP/1.1 server in front of Redis.
//!
//! # Data flow
//!
//! A request passes: [`server`] (accept loop, keep-alive, header size cap, graceful drain) →
//! [`router`] (method + path → handler, per-route metrics) → one of [`handlers`]:
//! `payments` ([`limits`] first — per-client and global rate limits, when configured, and
//! Redis' memory against its high-water mark —, then parse the body into a `ValidPayment`, then one atomic script: status hash + `XADD`,
//! which also sheds load when the backlog is over its limit), `status`, `summary`,
//! `admin` (token or explicit opt-in), `health` → [`responses`] (static bodies, JSON
//! writers) or [`error`] (the one error → problem+json mapping).
//! [`config`] reads everything above from the environment once.
//!
//! The gateway never talks to a processor: a `202` means the payment is durably in Redis
//! and the worker pool takes it from there.

pub mod config;
pub mod error;
pub mod handlers;
pub mod limits;
pub mod responses;
pub mod router;
pub mod server;

use std::sync::Arc;

use common::store::Store;
use limits::RateLimits;
use metrics_exporter_prometheus::PrometheusHandle;

pub use config::GatewayConfig;
pub use server::run;

/// Everything a request handler needs, shared by all connections.
pub struct AppState {
    /// Redis access: the only way handlers touch state.
    pub store: Store,
    /// Parsed once at start.
    pub config: GatewayConfig,
    /// Renders `/metrics` (served by `main` on `GATEWAY_METRICS_ADDR`, not by [`run`]);
    /// `None` with `GATEWAY_METRICS_ADDR=off`, which also turns recording off (no recorder:
    /// every metric call is a no-op).
    pub metrics: Option<PrometheusHandle>,
    /// `POST /payments` rate limiters; `None` (the default) when every limit is off, so
    /// the hot path pays one branch.
    pub limits: Option<Arc<RateLimits>>,
    /// Redis' memory against `MEMORY_HIGH_WATER`, updated by a task [`run`] starts.
    pub memory: Arc<limits::MemoryWatch>,
}

impl AppState {
    /// Builds the state; the Redis connection is made lazily, so the gateway starts (and
    /// reports not-ready) while Redis is down.
    pub fn new(config: GatewayConfig) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect_lazy(&config.redis.options, config.redis.keys.clone())?
            .with_first_attempt(config.first_attempt);
        Ok(Arc::new(Self {
            store,
            metrics: config
                .metrics_addr
                .map(|_| common::telemetry::install_metrics()),
            limits: RateLimits::from_config(&config.rate_limit).map(Arc::new),
            memory: Arc::default(),
            config,
        }))
    }
}
