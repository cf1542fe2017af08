//! The worker's retention task (`worker::retention`), run by the real worker binary with
//! short settings: it compacts the summary's per-payment detail once it is older than
//! `SUMMARY_DETAIL_HORIZON` and the summary stays equal to the processor's own to the
//! millisecond; it drops compacted detail older than `SUMMARY_DETAIL_RETENTION`; it trims
//! dead letters older than `PAYMENT_RETENTION`. A status expiry is
//! too long to wait for here (the worker refuses a retention below its in-flight bounds:
//! minutes), so the expiry set on the terminal hashes is checked instead; the expiry itself
//! is `common/tests/store/retention.rs`.

use std::time::Duration;

use common::payment::Processor;
use common::store::Window;
use uuid::Uuid;

use crate::helpers::{spawn_stack, wait_for, Stack};

/// The least retention the worker's default in-flight bounds allow (870 s), rounded up.
const RETENTION: &str = "15m";
const RETENTION_MS: i64 = 15 * 60 * 1000;

async fn redis_int(stack: &Stack, cmd: &str, key: &str) -> i64 {
    let mut conn = stack.store.connection();
    redis::cmd(cmd)
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Payments still in the summary's per-payment detail (`ev`) of both processors.
async fn detail_left(stack: &Stack) -> i64 {
    let mut n = 0;
    for p in Processor::ALL {
        n += redis_int(stack, "ZCARD", &stack.store.keys().summary(p).events).await;
    }
    n
}

/// Adds a dead letter whose entry id is `id` (`*`: now).
async fn add_dead_letter(stack: &Stack, id: &str) {
    let mut conn = stack.store.connection();
    let _: String = redis::cmd("XADD")
        .arg(stack.store.keys().dead_letters())
        .arg(id)
        .arg(&["id", &Uuid::new_v4().to_string(), "reason", "test"])
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_compacts_the_summary_detail_keeps_it_exact_and_trims_old_dead_letters() {
    let stack = spawn_stack().await;
    // Compacted detail of a second two hours old (beyond a 1 h detail retention), its day
    // listed as record.lua lists it.
    let old_second = common::time::now_ms() / 1000 - 7_200;
    let keys = stack.store.keys().summary(Processor::Default);
    {
        let mut conn = stack.store.connection();
        let day = old_second.div_euclid(86_400);
        let _: () = redis::pipe()
            .cmd("HSET")
            .arg(&keys.detail)
            .arg(old_second)
            .arg("5:1:100")
            .ignore()
            .cmd("ZADD")
            .arg(&keys.days)
            .arg(day)
            .arg(day)
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // A dead letter two days old (beyond the retention) and a fresh one.
    let two_days_ago = common::time::now_ms() - 2 * 86_400_000;
    add_dead_letter(&stack, &format!("{two_days_ago}-0")).await;
    add_dead_letter(&stack, "*").await;
    assert_eq!(stack.store.dead_letter_count().await.unwrap(), 2);

    let mut child = stack.spawn_worker_process(&[
        ("PAYMENT_RETENTION", RETENTION),
        ("SUMMARY_DETAIL_HORIZON", "1s"),
        ("SUMMARY_DETAIL_RETENTION", "1h"),
        ("RETENTION_INTERVAL", "200ms"),
    ]);
    // Payments in four rounds, each sent in a later UTC second than the one before, so the
    // detail spans several seconds and the windows below cross their edges.
    let mut ids = Vec::new();
    for round in 0..4u32 {
        for i in 0..40u32 {
            let id = Uuid::new_v4();
            let amount = format!("{}.{:02}", 1 + round, (i * 7) % 100);
            assert_eq!(stack.post(&id, &amount).await, 202);
            ids.push(id);
        }
        stack
            .wait_processed(ids.len() as u64, Duration::from_secs(60))
            .await;
        let second = common::time::now_ms() / 1000;
        wait_for(Duration::from_secs(5), "the next second", || async {
            common::time::now_ms() / 1000 > second
        })
        .await;
    }

    // The retention task moves every payment's detail out of `ev` once its second is more
    // than the horizon old, and trims the old dead letter (only).
    wait_for(
        Duration::from_secs(60),
        "the summary detail to be compacted",
        || async { detail_left(&stack).await == 0 },
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "the old dead letter to be trimmed",
        || async { stack.store.dead_letter_count().await.unwrap() == 1 },
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "the detail older than its retention to be dropped",
        || async {
            let mut conn = stack.store.connection();
            let left: bool = redis::cmd("HEXISTS")
                .arg(&keys.detail)
                .arg(old_second)
                .query_async(&mut conn)
                .await
                .unwrap();
            let kept_from: Option<i64> = redis::cmd("GET")
                .arg(&keys.detail_kept_from)
                .query_async(&mut conn)
                .await
                .unwrap();
            !left && kept_from.is_some_and(|s| s > old_second)
        },
    )
    .await;
    let compacted = redis_int(
        &stack,
        "HLEN",
        &stack.store.keys().summary(Processor::Default).detail,
    )
    .await;
    assert!(compacted >= 4, "{compacted} compacted seconds");

    // The summary still equals the processor's own for any window, to the millisecond:
    // windows between the payments' requestedAt values, and one millisecond inside them.
    let mut times: Vec<i64> = ids
        .iter()
        .map(|id| stack.default.stored(id).unwrap().requested_at_ms)
        .collect();
    times.sort_unstable();
    let mut windows = vec![(None, None)];
    for (k, &from) in times.iter().enumerate().step_by(9) {
        let to = times[(k * 7 + 13) % times.len()].max(from);
        windows.extend([(Some(from), Some(to)), (Some(from), Some(from))]);
        if to > from {
            windows.extend([(Some(from + 1), Some(to)), (Some(from), Some(to - 1))]);
        }
    }
    for (from, to) in windows {
        let ours = stack.store.summary(Window { from, to }).await.unwrap();
        for (p, sim) in [
            (ours.default, &stack.default),
            (ours.fallback, &stack.fallback),
        ] {
            let theirs = sim.summary(from, to);
            assert_eq!(
                (p.requests, p.cents),
                (theirs.total_requests, i128::from(theirs.total_cents)),
                "window {from:?} .. {to:?}"
            );
        }
    }
    assert_eq!(stack.totals().await.0, ids.len() as u64);

    // Every terminal status expires after the retention (set by the record step).
    for id in &ids {
        let key = stack.store.keys().payment(&id.to_string().parse().unwrap());
        let ttl = redis_int(&stack, "PTTL", &key).await;
        assert!(
            ttl > RETENTION_MS - 120_000 && ttl <= RETENTION_MS,
            "{id}: PTTL {ttl}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
