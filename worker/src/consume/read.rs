//! The reader: `XREADGROUP ... COUNT n BLOCK` on a connection of its own (a blocking read
//! would stall every command pipelined behind it on a shared connection), reading only as
//! many entries as there are free permits, so nothing waits in memory unowned. A `TIME`
//! pipelined before each read bounds Redis' clock for the entries it returns
//! ([`RedisClock`]): what decides whether a first attempt the accept pinned may still be
//! sent without `begin`.

use std::sync::Arc;
use std::time::Duration;

use common::keys::GROUP;
use common::metrics as names;
use common::store::Store;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};

use crate::backoff::Backoff;
use crate::consume::{spawn_payment, Pool};
use crate::dispatch::client::RedisClock;

/// How long one XREADGROUP blocks when the stream is empty.
const BLOCK: Duration = Duration::from_millis(1_000);

pub async fn run(pool: Arc<Pool>) {
    let ctx = pool.ctx.clone();
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut conn: Option<MultiplexedConnection> = None;
    while !shutdown.is_triggered() {
        let permits = tokio::select! {
            p = pool.permits_up_to(ctx.config.batch_size) => p,
            _ = shutdown.wait() => break,
        };
        if conn.is_none() {
            match connect(&ctx.config.redis.options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "reader cannot reach redis");
                    drop(permits);
                    backoff.wait().await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let read = tokio::select! {
            r = read_batch(c, &ctx.store, &ctx.config.consumer, permits.len()) => r,
            _ = shutdown.wait() => break,
        };
        match read {
            Ok((clock, entries)) => {
                backoff.reset();
                let (good, bad) = Store::decode_entries(&entries);
                if !good.is_empty() {
                    metrics::counter!(names::STREAM_READ_TOTAL, "source" => "new")
                        .increment(good.len() as u64);
                }
                if let Err(e) = crate::consume::dead_letter_undecodable(&ctx, bad).await {
                    // They stay pending on this consumer; reclaim retries them.
                    tracing::warn!(error = %e, "could not dead-letter undecodable entries");
                }
                let mut permits = permits.into_iter();
                for entry in good {
                    if let Some(permit) = permits.next() {
                        spawn_payment(&pool, entry, permit, Some(clock));
                    }
                }
            }
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    let _ = ctx.store.ensure_group().await;
                } else {
                    tracing::warn!(error = %e, "XREADGROUP failed");
                    conn = None;
                }
                drop(permits);
                backoff.wait().await;
            }
        }
    }
}

async fn connect(
    options: &common::store::RedisOptions,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(BLOCK + options.response_timeout));
    options
        .client()?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Reads up to `count` new entries (none when the block timed out), with what the `TIME`
/// before the read says of Redis' clock.
async fn read_batch(
    conn: &mut MultiplexedConnection,
    store: &Store,
    consumer: &str,
    count: usize,
) -> Result<(RedisClock, Vec<Value>), redis::RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME");
    pipe.cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(store.keys().stream())
        .arg(">");
    let (mono, wall) = (tokio::time::Instant::now(), std::time::SystemTime::now());
    let ((secs, micros), reply): ((i64, i64), Value) = pipe.query_async(conn).await?;
    let clock = RedisClock {
        redis_ms: secs * 1000 + micros / 1000,
        mono,
        wall,
    };
    // [[stream, [entry, ...]]] (RESP2) or {stream: [entry, ...]} (RESP3); Nil on timeout.
    let entries = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .find_map(|s| match s {
                Value::Array(mut parts) if parts.len() == 2 => match parts.pop() {
                    Some(Value::Array(entries)) => Some(entries),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_default(),
        Value::Map(streams) => streams
            .into_iter()
            .find_map(|(_, v)| match v {
                Value::Array(entries) => Some(entries),
                _ => None,
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok((clock, entries))
}
