//! `redis-pool`: the gateway's accept over its one multiplexed connection against a
//! deadpool-redis pool (issue 10, scope 6: "use them where they serve, or say why not, with
//! the measurement").
//!
//! Comes before [`plot`](super::plot) and [`report`](super::report), which read the
//! [`RedisPoolReport`] this fills. Per round, caller count and [`Variant`] (the variants
//! alternate, so machine noise hits all alike), on keys of its own prefix:
//! 1. a short warm-up (connections opened, the script loaded), not measured;
//! 2. `callers` tasks run the real `accept.lua` call — each a new payment — back to back
//!    for the duration, between two readings of this process' CPU (`/proc/self/stat`) and of
//!    Redis' (`INFO cpu`);
//! 3. every key of the prefix is purged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::batch::Batcher;
use common::keys::Keys;
use common::payment::{Cents, PaymentId};
use common::store::{Accepted, RedisOptions, Store, StoreError, MAX_BATCH};
use time::OffsetDateTime;

use super::procstat::{per_payment, sample_pid, LoadAverages};
use super::redis_cost::Scratch;
use super::redis_info::Info;
use super::redis_pool_report::{summarize, RedisPoolReport, RedisPoolSettings, Sample, Variant};
use super::stats::Latency;

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct RedisPoolConfig {
    pub redis_url: String,
    /// Concurrent callers, one measurement each.
    pub callers: Vec<usize>,
    /// Connections of each pool variant.
    pub pool_sizes: Vec<usize>,
    /// How long each measurement runs.
    pub duration: Duration,
    pub rounds: usize,
    pub out_dir: Option<PathBuf>,
    pub name: String,
}

/// Every payment's amount (19.90), in cents.
const AMOUNT_CENTS: i64 = 1990;
/// Far above what a measurement enqueues: no payment is shed.
const BACKLOG_LIMIT: u64 = u64::MAX / 2;
/// Not measured: opens connections, loads the script.
const WARM_UP: Duration = Duration::from_millis(300);

type Request = (PaymentId, Cents, u64);

/// One variant's way of running an accept.
enum Client {
    Manager(Store),
    ManagerUnbatched(Store),
    Pool {
        store: Store,
        pool: deadpool_redis::Pool,
    },
    PoolBatched(Batcher<Request, Accepted>),
}

fn pool_error(e: deadpool_redis::PoolError) -> StoreError {
    StoreError::Unexpected(format!("pool: {e}"))
}

fn only(replies: Vec<Accepted>) -> Result<Accepted, StoreError> {
    let mut replies = replies.into_iter();
    match (replies.next(), replies.next()) {
        (Some(a), None) => Ok(a),
        _ => Err(StoreError::Unexpected("one reply expected".into())),
    }
}

impl Client {
    fn new(variant: Variant, options: &RedisOptions, keys: Keys) -> anyhow::Result<Client> {
        let store = Store::connect_lazy(options, keys)?;
        let pool = |size: usize| -> anyhow::Result<deadpool_redis::Pool> {
            Ok(deadpool_redis::Config::from_url(options.url.clone())
                .builder()?
                .max_size(size)
                .runtime(deadpool_redis::Runtime::Tokio1)
                .build()?)
        };
        Ok(match variant {
            Variant::Manager => Client::Manager(store),
            Variant::ManagerUnbatched => Client::ManagerUnbatched(store),
            Variant::Pool(n) => Client::Pool {
                store,
                pool: pool(n)?,
            },
            Variant::PoolBatched(n) => {
                let pool = pool(n)?;
                // The store's batching (at most MAX_BATCH per call, no linger), with n calls
                // in flight instead of one, each on a connection of its own.
                Client::PoolBatched(Batcher::spawn(
                    "accept",
                    MAX_BATCH,
                    n,
                    Duration::ZERO,
                    move |batch: Vec<Request>| {
                        let (store, pool) = (store.clone(), pool.clone());
                        async move {
                            let mut conn = pool.get().await.map_err(pool_error)?;
                            store.accept_batch_on(&mut conn, &batch).await
                        }
                    },
                ))
            }
        })
    }

    async fn accept(&self, id: PaymentId) -> Result<Accepted, StoreError> {
        let request = (id, Cents::new(AMOUNT_CENTS), BACKLOG_LIMIT);
        match self {
            Client::Manager(store) => store.accept(&id, request.1, BACKLOG_LIMIT).await,
            Client::ManagerUnbatched(store) => only(store.accept_batch(&[request]).await?),
            Client::Pool { store, pool } => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                only(store.accept_batch_on(&mut conn, &[request]).await?)
            }
            Client::PoolBatched(batcher) => batcher.call(request).await,
        }
    }
}

/// What the callers of one measurement counted.
struct Counted {
    calls: u64,
    errors: u64,
    latency: Latency,
}

/// `callers` tasks calling accept back to back for `duration`.
async fn drive(client: &Arc<Client>, callers: usize, duration: Duration) -> Counted {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut counted = Counted {
                    calls: 0,
                    errors: 0,
                    latency: Latency::new(),
                };
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match client.accept(PaymentId::new(uuid::Uuid::new_v4())).await {
                        Ok(Accepted::Enqueued) => {
                            counted.calls += 1;
                            counted.latency.record(started.elapsed());
                        }
                        Ok(other) => {
                            tracing::debug!(?other, "not enqueued");
                            counted.errors += 1;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            counted.errors += 1;
                        }
                    }
                }
                counted
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Counted {
        calls: 0,
        errors: 0,
        latency: Latency::new(),
    };
    for task in tasks {
        match task.await {
            Ok(c) => {
                total.calls += c.calls;
                total.errors += c.errors;
                total.latency.merge(&c.latency);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a caller panicked");
                total.errors += 1;
            }
        }
    }
    total
}

/// One measurement on its own key prefix, purged afterwards.
async fn measure(
    cfg: &RedisPoolConfig,
    options: &RedisOptions,
    admin: &Store,
    prefix: &str,
    variant: Variant,
    callers: usize,
    round: usize,
) -> anyhow::Result<Sample> {
    let keys = Keys::new(prefix);
    let client = Arc::new(Client::new(variant, options, keys.clone())?);
    drive(&client, callers, WARM_UP).await;

    let load_average = LoadAverages::started();
    let me = std::process::id();
    let (cpu_before, redis_before) = (sample_pid(me)?, Info::read(admin).await?);
    let started = Instant::now();
    let counted = drive(&client, callers, cfg.duration).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_after, redis_after) = (sample_pid(me)?, Info::read(admin).await?);
    drop(client);

    let purged = Store::connect_lazy(options, keys)?.purge().await;
    if let Err(e) = purged {
        tracing::warn!(error = %e, prefix, "purge failed");
    }
    let p = counted.latency.percentiles();
    Ok(Sample {
        variant,
        callers,
        round,
        calls: counted.calls,
        errors: counted.errors,
        calls_per_sec: (counted.calls as f64 / elapsed).round(),
        client_cpu_us_per_call: per_payment(
            cpu_after.cpu_seconds - cpu_before.cpu_seconds,
            counted.calls,
        ),
        redis_cpu_us_per_call: per_payment(redis_after.cpu_s - redis_before.cpu_s, counted.calls),
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        load_average: load_average.ended(),
    })
}

/// Runs every round and writes `<out>/<name>.json` and `.svg`.
pub async fn run_redis_pool(cfg: RedisPoolConfig) -> anyhow::Result<RedisPoolReport> {
    anyhow::ensure!(
        cfg.rounds > 0 && !cfg.callers.is_empty() && cfg.callers.iter().all(|&n| n > 0),
        "rounds and caller counts must be positive"
    );
    anyhow::ensure!(
        cfg.pool_sizes.iter().all(|&n| n > 0),
        "pool sizes must be positive"
    );
    let scratch = Scratch::open("redis-pool", &cfg.redis_url, Duration::from_secs(10)).await?;

    let variants = Variant::all(&cfg.pool_sizes);
    let mut samples = Vec::new();
    for round in 1..=cfg.rounds {
        for &callers in &cfg.callers {
            // Each round starts with another variant.
            for k in 0..variants.len() {
                let variant = variants[(round - 1 + k) % variants.len()];
                let prefix = format!(
                    "{}-{}-{callers}-{round}",
                    scratch.run_prefix,
                    variant.name()
                );
                let sample = measure(
                    &cfg,
                    &scratch.options,
                    &scratch.admin,
                    &prefix,
                    variant,
                    callers,
                    round,
                )
                .await
                .with_context(|| format!("{} with {callers} callers", variant.name()))?;
                tracing::info!(
                    variant = %variant.name(),
                    callers,
                    round,
                    calls_per_sec = sample.calls_per_sec,
                    client_us = sample.client_cpu_us_per_call,
                    redis_us = sample.redis_cpu_us_per_call,
                    p99_ms = sample.p99_ms,
                    "measured"
                );
                samples.push(sample);
            }
        }
    }

    let mut report = RedisPoolReport {
        name: cfg.name.clone(),
        started_at: super::control::iso_ms(scratch.started_at),
        finished_at: super::control::iso_ms(OffsetDateTime::now_utc()),
        settings: RedisPoolSettings {
            redis_url: cfg.redis_url.clone(),
            redis_version: scratch.info.version,
            aof: scratch.aof,
            callers: cfg.callers.clone(),
            pool_sizes: cfg.pool_sizes.clone(),
            duration_s: cfg.duration.as_secs_f64(),
            rounds: cfg.rounds,
        },
        summaries: summarize(&samples, &variants, &cfg.callers),
        samples,
        notes: vec![
            "every call is the gateway's accept.lua for a new payment (status hash + XADD), \
             through common::store as the gateway runs it; deadpool connections are redis-rs \
             MultiplexedConnections, and deadpool-redis PINGs a connection each time it hands \
             it out again (its recycle check), which is part of what a pool costs."
                .into(),
            "client CPU is this whole process (callers, client library, tokio), Redis CPU is \
             INFO cpu (user + sys, every thread), both per successful call."
                .into(),
        ],
        files: Vec::new(),
    };
    super::report::write_files(
        cfg.out_dir.as_deref(),
        &cfg.name,
        &mut report,
        |r| &mut r.files,
        super::plot::redis_pool_svg,
    )?;
    Ok(report)
}
