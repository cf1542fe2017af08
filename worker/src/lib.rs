//! The Paystream worker pool: consumes the payment stream and gets every payment stored by
//! exactly one processor, then records it.
//!
//! # Data flow
//!
//! [`consume::read`] (`XREADGROUP`, as many entries as free permits) and
//! [`consume::reclaim`] (`XAUTOCLAIM` of dead consumers' entries, heartbeat of ours) →
//! [`pipeline::process`], one task per payment: [`route`] chooses a processor →
//! `begin.lua` pins the payment to it in Redis → [`dispatch`] calls it → `record.lua`
//! marks it processed, adds it to the summary and acknowledges the entry, in one step.
//! [`admin`] serves `/metrics`.
//!
//! # Delivery contract
//!
//! The stream is at-least-once; the effect is exactly-once:
//! - an entry is acknowledged only by the script that records (or dead-letters) it, so a
//!   crash at any point leaves it pending, and another consumer reclaims it after
//!   `WORKER_CLAIM_IDLE_MS`;
//! - recording is idempotent by correlation id, so a second delivery cannot count twice;
//! - before any call, `begin.lua` confirms this consumer still owns the entry and pins the
//!   payment to the processor in Redis; the call must start within the send window
//!   (a third of `WORKER_CLAIM_IDLE_MS`, monotonic and wall clock) or the task confirms
//!   again, so a frozen or starved consumer never sends for an entry it lost;
//! - a payment can only move to the other processor once the first certainly does not
//!   hold it: a definite failure of the only unresolved attempt, or a 404 from its
//!   `GET /payments/{id}` *asked* after the attempt's safe time — on Redis' clock,
//!   covering the send window, the client timeout and the processor's queue wait + delay.
//!   A retry on the same processor that answers 422 means "stored there": it is recorded
//!   with the requestedAt that processor holds, and never moved on a 404.

pub use common::admin;
pub mod backoff;
pub mod config;
pub mod consume;
pub mod dispatch;
pub mod pipeline;
pub mod retention;
pub mod route;

use std::sync::Arc;
use std::time::Duration;

use common::shutdown::{Shutdown, ShutdownTrigger};
use common::store::Store;
use tokio::task::JoinHandle;

pub use config::WorkerConfig;
use consume::Pool;
use dispatch::ProcessorClient;
use pipeline::Context;

/// How often a worker reads Redis' memory (as often as the gateways do): a first attempt
/// goes without `begin` only while there is room.
const MEMORY_POLL: Duration = Duration::from_millis(250);
#[cfg(feature = "test-hooks")]
pub use pipeline::Hooks;

/// A running worker: its reader, reclaimer and payment tasks.
pub struct WorkerHandle {
    pool: Arc<Pool>,
    loops: Vec<JoinHandle<()>>,
    /// Stops this worker (the external shutdown it was started with triggers it too).
    stop: Arc<ShutdownTrigger>,
}

/// Starts a worker. `external` (e.g. signals) stops it gracefully, as does
/// [`WorkerHandle::shutdown`].
pub async fn start(config: WorkerConfig, external: Shutdown) -> anyhow::Result<WorkerHandle> {
    start_inner(
        config,
        external,
        #[cfg(feature = "test-hooks")]
        Hooks::default(),
    )
    .await
}

/// [`start`] with crash and pause points (test builds only).
#[cfg(feature = "test-hooks")]
pub async fn start_with_hooks(
    config: WorkerConfig,
    external: Shutdown,
    hooks: Hooks,
) -> anyhow::Result<WorkerHandle> {
    start_inner(config, external, hooks).await
}

async fn start_inner(
    config: WorkerConfig,
    external: Shutdown,
    #[cfg(feature = "test-hooks")] hooks: Hooks,
) -> anyhow::Result<WorkerHandle> {
    let store = Store::connect_lazy(&config.redis.options, config.redis.keys.clone())?
        .with_lingers(config.lingers)
        .with_batch_max(config.script_batch_max);
    let mut backoff = backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    // The group must exist before the first read; wait for Redis if it is not up yet.
    while let Err(e) = store.ensure_group().await {
        if external.is_triggered() {
            anyhow::bail!("stopped before redis was reachable: {e}");
        }
        tracing::warn!(error = %e, "waiting for redis");
        backoff.wait().await;
    }
    let client = ProcessorClient::new(config.processor_urls.clone(), config.processor_timeout)?;
    let (stop, shutdown) = Shutdown::new();
    let stop = Arc::new(stop);
    let link = {
        let (stop, mut external, mut own) = (stop.clone(), external, shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = external.wait() => stop.trigger(),
                _ = own.wait() => {}
            }
        })
    };
    let router = route::Router::new(
        config.policy,
        config.breaker,
        config.processor_timeout,
        config.ambiguity_grace,
    );
    let ctx = Arc::new(Context {
        store,
        client,
        router,
        shutdown,
        memory: Arc::new(common::memory::MemoryWatch::high_until_read()),
        #[cfg(feature = "test-hooks")]
        hooks,
        config,
    });
    tracing::info!(
        consumer = %ctx.config.consumer,
        concurrency = ctx.config.concurrency,
        policy = ctx.config.policy.name(),
        "worker started"
    );
    let health = {
        let waker = ctx.clone();
        tokio::spawn(route::health::run(
            ctx.store.clone(),
            ctx.client.clone(),
            ctx.router.health.clone(),
            ctx.config.health,
            ctx.config.consumer.clone(),
            ctx.shutdown.clone(),
            move |p| waker.router.recovered(p),
        ))
    };
    // Read before the first entry is, so that a worker started with room sends first
    // attempts from its first read on.
    let full = pipeline::MEMORY_FULL;
    let _ = tokio::time::timeout(MEMORY_POLL, ctx.memory.read(&ctx.store, full)).await;
    let memory = {
        let watch =
            common::memory::watch_memory(ctx.store.clone(), ctx.memory.clone(), full, MEMORY_POLL);
        let mut shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = watch => {}
                _ = shutdown.wait() => {}
            }
        })
    };
    let pool = Pool::new(ctx);
    let loops = vec![
        memory,
        tokio::spawn(consume::read::run(pool.clone())),
        tokio::spawn(consume::reclaim::run(pool.clone())),
        tokio::spawn(retention::run(
            pool.ctx.store.clone(),
            pool.ctx.config.redis.retention,
            pool.ctx.shutdown.clone(),
        )),
        health,
        link,
    ];
    Ok(WorkerHandle { pool, loops, stop })
}

impl WorkerHandle {
    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.pool.ctx.config.consumer
    }

    /// The grace this worker applies to `processor` now (after its health report).
    pub fn grace(&self, processor: common::payment::Processor) -> Duration {
        self.pool.ctx.router.grace(processor)
    }

    /// Payments being handled right now.
    pub fn in_flight(&self) -> usize {
        self.pool.ctx.config.concurrency - self.pool.permits.available_permits()
    }

    /// Graceful stop: no new reads; payments in a processor call finish, are recorded and
    /// acknowledged; payments waiting for a retry are released (they stay pending and
    /// another consumer reclaims them). Returns once all are done or the drain timeout
    /// passed.
    pub async fn shutdown(self) {
        self.stop.trigger();
        let drain = self.pool.ctx.config.drain_timeout;
        let all = self.pool.ctx.config.concurrency as u32;
        match tokio::time::timeout(drain, self.pool.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("worker drained"),
            Err(_) => tracing::warn!(in_flight = self.in_flight(), "drain timed out"),
        }
        for task in self.loops {
            let _ = task.await;
        }
    }

    /// Simulates a crash (`kill -9`): every loop and payment task stops where it is,
    /// nothing more is recorded or acknowledged, the heartbeat stops. Test builds only.
    #[cfg(feature = "test-hooks")]
    pub fn abort(self) {
        for task in &self.loops {
            task.abort();
        }
        self.pool.abort_all();
    }
}
