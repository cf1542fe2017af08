//! Benchmark, not CI (`#[ignore]`): Redis memory per million processed payments, before
//! and after retention. Fills a real `redis-server` (AOF off) through the real scripts —
//! `accept.lua` then `record.lua` for every payment, requestedAt spread at 1 000 payments
//! per second in the past, 3 in 4 on default — then measures `used_memory`:
//! - *before*: every status hash and every per-payment summary member, as before retention
//!   existed (stream entries are deleted by the record step in the real pipeline; here the
//!   stream is emptied to match);
//! - *after*: the summary detail compacted (`compact.lua`, horizon 0) and the terminal status
//!   hashes gone, as `PAYMENT_RETENTION` leaves them once the window has passed.
//!
//! `PAYSTREAM_MEMORY_PAYMENTS=1000000 cargo nextest run -p paystream-load-tests --test load
//! memory --run-ignored only --no-capture`

use std::time::{Duration, Instant};

use common::config::{Env, RedisConfig};
use common::payment::{Cents, PaymentId, Processor};
use common::retention;
use common::store::Store;
use common::testing::{unique_prefix, RedisServer};
use uuid::Uuid;

async fn used_memory(store: &Store) -> u64 {
    let mut conn = store.connection();
    let _: () = redis::cmd("MEMORY")
        .arg("PURGE")
        .query_async(&mut conn)
        .await
        .unwrap_or(());
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes of Redis work; run explicitly"]
async fn redis_memory_per_million_payments_before_and_after_retention() {
    let n: u64 = std::env::var("PAYSTREAM_MEMORY_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let redis = RedisServer::start();
    let url = redis.url();
    let prefix = unique_prefix();
    let env = move |name: &str| match name {
        "REDIS_URL" => Some(url.clone()),
        "PAYSTREAM_KEY_PREFIX" => Some(prefix.clone()),
        "REDIS_TIMEOUT_MS" => Some("30000".into()),
        _ => None,
    };
    let config = RedisConfig::from_env(&env as &dyn Env).unwrap();
    let store = Store::connect_lazy(&config.options, config.keys.clone()).unwrap();
    store.ensure_group().await.unwrap();
    let empty = used_memory(&store).await;

    let started = Instant::now();
    let base = common::time::now_ms() - n as i64 - 60_000;
    let mut tasks = tokio::task::JoinSet::new();
    let lanes = 64u64;
    for lane in 0..lanes {
        let store = store.clone();
        tasks.spawn(async move {
            let mut i = lane;
            while i < n {
                let id = PaymentId::new(Uuid::new_v4());
                let cents = Cents::new(1990);
                let processor = if i % 4 == 3 {
                    Processor::Fallback
                } else {
                    Processor::Default
                };
                store.accept(&id, cents, 0).await.unwrap();
                store
                    .record(&id, cents, processor, base + i as i64, "")
                    .await
                    .unwrap();
                i += lanes;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let fill = started.elapsed();
    let mut conn = store.connection();
    // The real record step deletes each entry as it acknowledges it.
    let _: u64 = redis::cmd("XTRIM")
        .arg(store.keys().stream())
        .arg("MAXLEN")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = used_memory(&store).await;

    let started = Instant::now();
    let moved = retention::compact_summary(&store, Duration::ZERO, retention::COMPACT_BATCH)
        .await
        .unwrap();
    let compact = started.elapsed();
    assert_eq!(moved, n);
    let compacted = used_memory(&store).await;
    // What PAYMENT_RETENTION leaves once the window has passed: no terminal status hash.
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(store.keys().payment_pattern())
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let after = used_memory(&store).await;
    let per_million =
        |bytes: u64| (bytes.saturating_sub(empty)) as f64 * 1e6 / n as f64 / (1024.0 * 1024.0);
    println!(
        "{n} payments (fill {fill:.1?}, compaction {compact:.1?}): Redis used_memory per million payments: \
         before retention {:.1} MiB; summary detail compacted {:.1} MiB; after the retention window {:.1} MiB",
        per_million(before),
        per_million(compacted),
        per_million(after)
    );
    assert!(after < before);
}
