//! Bounded state (`common::retention`): terminal statuses expire after the retention (the
//! idempotency window), dead letters are trimmed after it, and the summary stays exact to
//! the millisecond for any window once its per-payment detail is compacted; after the
//! detail's own retention, whole-second windows stay exact and millisecond edges in the
//! dropped seconds are refused, never answered from partial data.

use std::time::{Duration, Instant};

use common::payment::{Cents, Processor, MAX_CENTS};
use common::retention;
use common::store::{Accepted, FailMode, Store, StoreError, Window};

use crate::helpers::{accept_and_deliver, begin, new_id, patient_store, store_with};
use crate::summary::{assert_summary_exact, record_random, Lcg};

async fn pttl(store: &Store, key: &str) -> i64 {
    let mut conn = store.connection();
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn zcard(store: &Store, key: &str) -> u64 {
    let mut conn = store.connection();
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The tenths of a second in the counts and cents hashes (`t<ms div 100>`, record.lua) add
/// up, count and cents, to their second's bucket, for every second with tenths; every
/// second with payments has them unless listed in `without`. Returns the tenths seen.
pub(crate) async fn assert_tenths_add_up(store: &Store, without: &[i64]) -> usize {
    use std::collections::BTreeMap;
    let mut conn = store.connection();
    let mut seen = 0;
    for p in Processor::ALL {
        let keys = store.keys().summary(p);
        // second -> (count, cents) of the second's bucket and of its tenths
        let mut buckets: BTreeMap<i64, [(i64, i64); 2]> = BTreeMap::new();
        for (key, slot) in [(&keys.counts, 0), (&keys.cents, 1)] {
            let all: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            for (field, value) in all {
                let Ok(v) = value.parse::<i64>() else {
                    continue;
                };
                let (second, which) = if let Some(t) = field.strip_prefix('t') {
                    seen += usize::from(slot == 0);
                    (t.parse::<i64>().unwrap().div_euclid(10), 1)
                } else if let Ok(second) = field.parse::<i64>() {
                    (second, 0)
                } else {
                    continue;
                };
                let cell = &mut buckets.entry(second).or_default()[which];
                if slot == 0 {
                    cell.0 += v;
                } else {
                    cell.1 += v;
                }
            }
        }
        for (second, [whole, tenths]) in buckets {
            if without.contains(&second) {
                continue;
            }
            assert_eq!(tenths, whole, "{p}: the tenths of second {second}");
        }
    }
    seen
}

#[tokio::test]
async fn the_summary_equals_a_brute_force_count_for_any_window_over_compacted_detail() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0xc0ffee);
    // Long past: every second of it is older than any horizon.
    let base: i64 = 1_752_582_896_000;
    let mut recorded = Vec::new();
    record_random(store, &mut rng, (base, 6_000), 200, &mut recorded).await;
    // Twelve of the largest amounts in one millisecond: their sum (1.2e16 cents) is beyond
    // what a double holds exactly, so compaction must add them as integers.
    for _ in 0..12 {
        let id = new_id();
        let at = base + 2_345;
        store.accept(&id, Cents::new(MAX_CENTS), 0).await.unwrap();
        store
            .record(&id, Cents::new(MAX_CENTS), Processor::Default, at, "")
            .await
            .unwrap();
        recorded.push((Processor::Default, at, MAX_CENTS));
    }
    assert_summary_exact(store, &recorded, (base, 6_000), 300, 1).await;
    assert!(assert_tenths_add_up(store, &[]).await > 30);

    // Compact in batches of 7 payments: seconds split across calls are merged.
    let moved = retention::compact_summary(store, Duration::ZERO, 7)
        .await
        .unwrap();
    assert_eq!(moved, recorded.len() as u64);
    let keys = store.keys();
    for p in Processor::ALL {
        assert_eq!(
            zcard(store, &keys.summary(p).events).await,
            0,
            "{p}: detail left in ev"
        );
    }
    assert_summary_exact(store, &recorded, (base, 6_000), 300, 2).await;

    // Payments recorded late into seconds already compacted: the query reads both places.
    record_random(store, &mut rng, (base, 6_000), 200, &mut recorded).await;
    assert_summary_exact(store, &recorded, (base, 6_000), 300, 3).await;
    // ... and a second compaction merges them in.
    let moved = retention::compact_summary(store, Duration::ZERO, 50)
        .await
        .unwrap();
    assert_eq!(moved, 200);
    assert_summary_exact(store, &recorded, (base, 6_000), 300, 4).await;
    assert!(assert_tenths_add_up(store, &[]).await > 30);
    // Every edge was read through the tenths.
    assert_eq!(store.summary_rereads(), 0);

    // Seconds whose payments have no tenths (recorded by a version before them), some
    // mixed with payments that have them: those windows are read again without tenths,
    // still exact, before and after compaction.
    let mut conn = store.connection();
    let legacy = base + 10_000;
    record_random(store, &mut rng, (legacy, 3_000), 150, &mut recorded).await;
    let mut without = Vec::new();
    for p in Processor::ALL {
        let k = keys.summary(p);
        let fields: Vec<String> = (legacy / 100..(legacy + 3_000) / 100)
            .map(|t| format!("t{t}"))
            .collect();
        for key in [&k.counts, &k.cents] {
            let _: () = redis::cmd("HDEL")
                .arg(key)
                .arg(&fields)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    without.extend(legacy / 1000..(legacy + 3_000) / 1000);
    record_random(store, &mut rng, (legacy, 3_000), 30, &mut recorded).await;
    assert_summary_exact(store, &recorded, (legacy, 3_000), 300, 5).await;
    assert!(store.summary_rereads() > 100, "{}", store.summary_rereads());
    assert_summary_exact(store, &recorded, (base, 13_000), 100, 6).await;
    let moved = retention::compact_summary(store, Duration::ZERO, 13)
        .await
        .unwrap();
    assert_eq!(moved, 180);
    assert_summary_exact(store, &recorded, (base, 13_000), 300, 7).await;
    assert_tenths_add_up(store, &without).await;

    // A horizon keeps recent detail where it is.
    let id = new_id();
    let now = common::time::now_ms();
    store.accept(&id, Cents::new(1990), 0).await.unwrap();
    store
        .record(&id, Cents::new(1990), Processor::Default, now, "")
        .await
        .unwrap();
    let moved = retention::compact_summary(store, Duration::from_secs(3600), 50)
        .await
        .unwrap();
    assert_eq!(moved, 0);
    assert_eq!(
        zcard(store, &keys.summary(Processor::Default).events).await,
        1
    );
}

/// Brute-force totals of `recorded` inside `window`, per processor: (count, cents).
fn expected(recorded: &[(Processor, i64, i64)], window: Window, p: Processor) -> (u64, i128) {
    let inside = |at: i64| window.from.is_none_or(|f| at >= f) && window.to.is_none_or(|t| at <= t);
    recorded
        .iter()
        .filter(|(q, at, _)| *q == p && inside(*at))
        .fold((0, 0), |(n, c), (_, _, cents)| {
            (n + 1, c + i128::from(*cents))
        })
}

async fn assert_exact(store: &Store, recorded: &[(Processor, i64, i64)], window: Window) {
    let got = store.summary(window).await.unwrap();
    for (p, totals) in [
        (Processor::Default, got.default),
        (Processor::Fallback, got.fallback),
    ] {
        assert_eq!(
            (totals.requests, totals.cents),
            expected(recorded, window, p),
            "{p} over {window:?}"
        );
    }
}

#[tokio::test]
async fn millisecond_detail_older_than_its_retention_is_dropped_whole_seconds_stay_exact() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0xd7_0b);
    let now = common::time::now_ms();
    // Midday three days ago (to be dropped; far from a day's end, so exactly one day is
    // walked) and ten minutes ago (kept).
    let old = (now.div_euclid(86_400_000) - 3) * 86_400_000 + 43_200_000;
    let recent = (now - 600_000).div_euclid(1000) * 1000;
    let mut recorded = Vec::new();
    record_random(store, &mut rng, (old, 6_000), 150, &mut recorded).await;
    record_random(store, &mut rng, (recent, 6_000), 150, &mut recorded).await;
    retention::compact_summary(store, Duration::ZERO, 1_000)
        .await
        .unwrap();
    let old_edge = Window {
        from: Some(old + 1_234),
        to: Some(recent + 2_345),
    };
    assert_exact(store, &recorded, old_edge).await;

    // The watermark's edge, set by hand: an edge in the second before it (with payments)
    // is refused, one in its second is read.
    let keys = store.keys();
    let mut conn = store.connection();
    let watermark = old / 1000 + 3;
    let paid_in = |recorded: &[(Processor, i64, i64)], second: i64| {
        recorded
            .iter()
            .any(|(_, at, _)| at.div_euclid(1000) == second)
    };
    assert!(paid_in(&recorded, watermark - 1) && paid_in(&recorded, watermark));
    for p in Processor::ALL {
        let _: () = redis::cmd("SET")
            .arg(&keys.summary(p).detail_kept_from)
            .arg(watermark)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let below = Window {
        from: Some(watermark * 1000 - 500),
        to: Some(recent),
    };
    assert!(matches!(
        store.summary(below).await,
        Err(StoreError::DetailDropped { kept_from }) if kept_from == watermark * 1000
    ));
    let at = Window {
        from: Some(watermark * 1000 + 1),
        to: Some(recent),
    };
    assert_exact(store, &recorded, at).await;
    for p in Processor::ALL {
        let _: () = redis::cmd("DEL")
            .arg(&keys.summary(p).detail_kept_from)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    // A retention longer than the data's age drops nothing: the first run only sets the
    // watermark (at its cutoff: nothing older exists).
    let day = Duration::from_secs(86_400);
    assert_eq!(
        retention::drop_summary_detail(store, 4 * day, 1_000)
            .await
            .unwrap(),
        0
    );
    assert_exact(store, &recorded, old_edge).await;

    // Two days: the old seconds' detail goes, walked in calls of 1 000 seconds, days
    // without traffic skipped (a day at most is walked per processor).
    let walked = retention::drop_summary_detail(store, 2 * day, 1_000)
        .await
        .unwrap();
    assert!(walked > 0 && walked <= 2 * 86_400, "walked {walked}");
    // The dropped seconds' tenths went with their detail; the kept ones stay.
    for p in Processor::ALL {
        for key in [&keys.summary(p).counts, &keys.summary(p).cents] {
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let tenths: Vec<i64> = fields
                .iter()
                .filter_map(|f| f.strip_prefix('t')?.parse().ok())
                .collect();
            assert!(
                tenths.iter().all(|t| t * 100 >= recent),
                "{p}: old tenths left in {key}"
            );
            assert!(!tenths.is_empty(), "{p}: recent tenths dropped from {key}");
        }
    }
    let dropped: Vec<i64> = (old / 1000..old / 1000 + 6).collect();
    assert_tenths_add_up(store, &dropped).await;
    let rereads = store.summary_rereads();
    let kept = Window {
        from: Some(recent + 1_234),
        to: Some(recent + 4_567),
    };
    assert_exact(store, &recorded, kept).await;
    assert_eq!(
        store.summary_rereads(),
        rereads,
        "kept seconds read without tenths"
    );
    // Payments recorded late into the dropped seconds count in their buckets; compaction
    // moves them out of `ev` without writing detail below the watermark.
    record_random(store, &mut rng, (old, 6_000), 20, &mut recorded).await;
    retention::compact_summary(store, Duration::ZERO, 1_000)
        .await
        .unwrap();
    for p in Processor::ALL {
        let left: Vec<String> = redis::cmd("HKEYS")
            .arg(&keys.summary(p).detail)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            left.iter()
                .all(|s| s.parse::<i64>().unwrap() * 1000 >= recent),
            "{p}: old detail left: {left:?}"
        );
        assert!(!left.is_empty(), "{p}: recent detail dropped");
    }
    // Nothing more to do until time passes.
    assert_eq!(
        retention::drop_summary_detail(store, 2 * day, 1_000)
            .await
            .unwrap(),
        0
    );

    // A millisecond edge in a dropped second: refused, whatever the other edge (the
    // gateway's tests check its answer, 422).
    for window in [
        old_edge,
        Window {
            from: None,
            to: Some(old + 3_500),
        },
        Window {
            from: Some(old + 999),
            to: None,
        },
    ] {
        // Kept from the cutoff: two days before Redis' time at the drop (a little after
        // `now`), on a whole second.
        let cutoff = now - 2 * 86_400_000;
        match store.summary(window).await {
            Err(StoreError::DetailDropped { kept_from }) => assert!(
                (cutoff - 1_000..cutoff + 120_000).contains(&kept_from) && kept_from % 1000 == 0,
                "kept from {kept_from}, cutoff {cutoff}"
            ),
            other => panic!("{window:?}: {other:?}"),
        }
    }
    // Whole-second edges over the dropped range, and millisecond edges in kept seconds,
    // stay exact.
    // An edge in a dropped second without payments needs no detail.
    assert!(!paid_in(&recorded, old / 1000 - 10));
    assert_exact(
        store,
        &recorded,
        Window {
            from: None,
            to: Some(old - 9_877),
        },
    )
    .await;
    for (from, to) in [
        (Some(old - 1_000), Some(old + 6_999)),
        (Some(old + 2_000), Some(recent + 3_456)),
        (None, Some(old + 4_999)),
        (None, Some(recent + 17)),
        (Some(old), None),
        (None, None),
    ] {
        assert_exact(store, &recorded, Window { from, to }).await;
    }
    for _ in 0..100 {
        let a = recent - 500 + rng.next(7_000) as i64;
        let b = recent - 500 + rng.next(7_000) as i64;
        let window = Window {
            from: Some(a.min(b)),
            to: Some(a.max(b)),
        };
        assert_exact(store, &recorded, window).await;
    }
}

#[tokio::test]
async fn terminal_statuses_expire_after_the_retention_then_the_id_is_new() {
    let app = store_with(|o| o.payment_retention = Duration::from_secs(2));
    let store = &app.store;
    let keys = store.keys().clone();
    let (processed, failed, queued) = (new_id(), new_id(), new_id());
    for id in [&processed, &failed, &queued] {
        assert_eq!(
            store.accept(id, Cents::new(1990), 0).await.unwrap(),
            Accepted::Enqueued
        );
    }
    store
        .record(
            &processed,
            Cents::new(1990),
            Processor::Default,
            common::time::now_ms(),
            "",
        )
        .await
        .unwrap();
    store
        .dead_letter(&failed, "", "test", "", FailMode::Final, "")
        .await
        .unwrap();
    for id in [&processed, &failed] {
        let ttl = pttl(store, &keys.payment(id)).await;
        assert!(ttl > 0 && ttl <= 2_000, "{id}: PTTL {ttl}");
    }
    // A live payment never expires.
    assert_eq!(pttl(store, &keys.payment(&queued)).await, -1);
    // Within the window: idempotent (same amount replays, another amount conflicts).
    assert_eq!(
        store.accept(&processed, Cents::new(2000), 0).await.unwrap(),
        Accepted::Conflict {
            stored: Cents::new(1990)
        }
    );

    // A re-drive makes a failed payment live again: no expiry while it is.
    assert_eq!(store.redrive_dead_letters(10).await.unwrap(), 1);
    assert_eq!(pttl(store, &keys.payment(&failed)).await, -1);

    let start = Instant::now();
    while pttl(store, &keys.payment(&processed)).await != -2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "status never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // After the window the correlationId is a new payment.
    assert_eq!(
        store.accept(&processed, Cents::new(2000), 0).await.unwrap(),
        Accepted::Enqueued
    );
    assert_eq!(pttl(store, &keys.payment(&queued)).await, -1);
}

#[tokio::test]
async fn dead_letters_older_than_the_retention_are_trimmed_and_the_stream_is_left_alone() {
    let app = patient_store();
    let store = &app.store;
    let mut conn = store.connection();
    let dead = store.keys().dead_letters().to_string();
    // One dead letter two days old, one fresh.
    let old = common::time::now_ms() - 2 * 86_400_000;
    let _: String = redis::cmd("XADD")
        .arg(&dead)
        .arg(format!("{old}-0"))
        .arg("id")
        .arg(new_id().to_string())
        .arg("reason")
        .arg("old")
        .query_async(&mut conn)
        .await
        .unwrap();
    let fresh = new_id();
    store.accept(&fresh, Cents::new(100), 0).await.unwrap();
    store
        .dead_letter(&fresh, "", "fresh", "", FailMode::Final, "")
        .await
        .unwrap();
    assert_eq!(store.dead_letter_count().await.unwrap(), 2);
    let trimmed = retention::trim_dead_letters(store, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(trimmed, 1);
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);

    // The payment stream is never trimmed by retention: its entries leave only when the
    // script that records or dead-letters them acknowledges them.
    store.ensure_group().await.unwrap();
    let before = store.backlog().await.unwrap();
    let live = new_id();
    store.accept(&live, Cents::new(100), 0).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), before + 1);
    assert_eq!(
        retention::compact_summary(store, Duration::ZERO, 10)
            .await
            .unwrap(),
        0
    );
    retention::trim_dead_letters(store, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), before + 1);
}

#[tokio::test]
async fn the_default_retention_is_seven_days() {
    let app = patient_store();
    let id = new_id();
    app.store.accept(&id, Cents::new(100), 0).await.unwrap();
    app.store
        .record(
            &id,
            Cents::new(100),
            Processor::Default,
            common::time::now_ms(),
            "",
        )
        .await
        .unwrap();
    let ttl = pttl(&app.store, &app.store.keys().payment(&id)).await;
    let week = retention::DEFAULT_PAYMENT_RETENTION.as_millis() as i64;
    assert!(ttl > week - 60_000 && ttl <= week, "PTTL {ttl}");
}

/// A dead letter whose payment a processor may still hold (dead-lettered with its pin kept:
/// its status never expires) stays within reach of a re-drive after the retention: the trim
/// appends it again, fresh, and drops only the old copy. Other old letters go.
#[tokio::test]
async fn a_held_dead_letter_outlives_the_retention_and_can_be_redriven() {
    let app = patient_store();
    let store = &app.store;
    let held = new_id();
    let entry = accept_and_deliver(store, &held, 100, "c1").await;
    begin(
        store,
        &held,
        common::payment::Processor::Default,
        "c1",
        &entry,
    )
    .await;
    assert_eq!(
        store
            .dead_letter(
                &held,
                "",
                "held",
                &entry,
                FailMode::KeepPin { attempt: 1 },
                "c1"
            )
            .await
            .unwrap(),
        common::store::Recorded::Now
    );
    // A plain dead letter beside it.
    let plain = new_id();
    store.accept(&plain, Cents::new(100), 0).await.unwrap();
    store
        .dead_letter(&plain, "", "plain", "", FailMode::Final, "")
        .await
        .unwrap();
    assert_eq!(store.dead_letter_count().await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Both are older than a 10 ms retention: the plain one goes, the held one stays.
    let removed = retention::trim_dead_letters(store, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(removed, 2, "both old copies removed");
    assert_eq!(
        store.dead_letter_count().await.unwrap(),
        1,
        "the held letter kept"
    );
    assert_eq!(store.redrive_dead_letters(10).await.unwrap(), 1);
    let view = store.payment(&held).await.unwrap().unwrap();
    assert_eq!(view.status, common::payment::Status::Queued);
}
