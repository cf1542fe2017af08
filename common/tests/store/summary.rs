//! The payments summary against a brute-force count of what was recorded: windows of any
//! length and position, exact to the millisecond and to the cent whatever the summary reads
//! (seconds, minutes, hours, days, the per-payment detail), with buckets too full to hold
//! their sum, and with seconds recorded before the roll-ups existed.

use common::keys::Bucket;
use common::payment::{Cents, PaymentId, Processor, MAX_CENTS};
use common::retention;
use common::store::{RecordRequest, Recorded, Store, Window};

use crate::helpers::{new_id, patient_store};

const SECOND: i64 = 1_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2025-07-15T00:00:00Z.
const MIDNIGHT: i64 = 20_284 * DAY;

/// A small deterministic generator (no extra dependency): the same cases every run.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Checks `store.summary` against a brute-force count of `recorded` (processor,
/// requestedAt, cents) for `windows` windows (open, closed, single-millisecond) whose ends
/// lie around `[base, base + span)`: half anywhere, half within a millisecond of a
/// recorded payment, so most cut a second that has payments.
pub(crate) async fn assert_summary_exact(
    store: &Store,
    recorded: &[(Processor, i64, i64)],
    (base, span): (i64, i64),
    windows: usize,
    seed: u64,
) {
    let mut rng = Lcg(seed);
    for case in 0..windows {
        let pick = |rng: &mut Lcg| {
            if rng.next(2) == 0 && !recorded.is_empty() {
                recorded[rng.next(recorded.len() as u64) as usize].1 + rng.next(3) as i64 - 1
            } else {
                base - 500 + rng.next(span as u64 + 1_000) as i64
            }
        };
        let (a, b) = (pick(&mut rng), pick(&mut rng));
        let mut window = Window {
            from: Some(a.min(b)),
            to: Some(a.max(b)),
        };
        match case % 10 {
            0 => window.from = None,
            1 => window.to = None,
            2 => window = Window::default(),
            3 => window.to = window.from,
            _ => {}
        }
        let inside =
            |at: i64| window.from.is_none_or(|f| at >= f) && window.to.is_none_or(|t| at <= t);
        let expected = |p: Processor| {
            recorded
                .iter()
                .filter(|(q, at, _)| *q == p && inside(*at))
                .fold((0u64, 0i128), |(n, c), (_, _, cents)| {
                    (n + 1, c + *cents as i128)
                })
        };
        let s = store.summary(window).await.unwrap();
        assert_eq!(
            (s.default.requests, s.default.cents),
            expected(Processor::Default),
            "{window:?}"
        );
        assert_eq!(
            (s.fallback.requests, s.fallback.cents),
            expected(Processor::Fallback),
            "{window:?}"
        );
    }
}

/// A random payment within `[base, base + span)`: (processor, requestedAt, cents).
fn random_payment(rng: &mut Lcg, base: i64, span: i64) -> (Processor, i64, i64) {
    let at = base + rng.next(span as u64) as i64;
    let cents = 1 + rng.next(1_000_000) as i64;
    let processor = if rng.next(4) == 0 {
        Processor::Fallback
    } else {
        Processor::Default
    };
    (processor, at, cents)
}

/// Records `n` random payments (both processors, within `[base, base + span)`, some sharing
/// a millisecond when the span is short) and adds them to `recorded`.
pub(crate) async fn record_random(
    store: &Store,
    rng: &mut Lcg,
    (base, span): (i64, i64),
    n: usize,
    recorded: &mut Vec<(Processor, i64, i64)>,
) {
    for _ in 0..n {
        let id = new_id();
        let (processor, at, cents) = random_payment(rng, base, span);
        store.accept(&id, Cents::new(cents), 0).await.unwrap();
        store
            .record(&id, Cents::new(cents), processor, at, "")
            .await
            .unwrap();
        recorded.push((processor, at, cents));
    }
}

/// Writes `n` random payments' summary the way versions before the roll-ups did: the
/// second's count and cents, the seconds index, the per-payment member. No minute, hour or
/// day.
async fn record_random_before_roll_ups(
    store: &Store,
    rng: &mut Lcg,
    (base, span): (i64, i64),
    n: usize,
    recorded: &mut Vec<(Processor, i64, i64)>,
) {
    let mut conn = store.connection();
    let mut pipe = redis::pipe();
    for _ in 0..n {
        let (processor, at, cents) = random_payment(rng, base, span);
        let keys = store.keys().summary(processor);
        let sec = at.div_euclid(1000);
        pipe.cmd("HINCRBY")
            .arg(&keys.counts)
            .arg(sec)
            .arg(1)
            .ignore()
            .cmd("HINCRBY")
            .arg(&keys.cents)
            .arg(sec)
            .arg(cents)
            .ignore()
            .cmd("ZADD")
            .arg(&keys.legacy_seconds)
            .arg(sec)
            .arg(sec)
            .ignore()
            .cmd("ZADD")
            .arg(&keys.events)
            .arg(at)
            .arg(format!("{}:{cents}", new_id()))
            .ignore();
        recorded.push((processor, at, cents));
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
}

async fn hget(store: &Store, key: &str, field: &str) -> Option<String> {
    let mut conn = store.connection();
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_summary_equals_a_brute_force_count_for_any_window() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0x5eed);
    let range = (MIDNIGHT + 12 * HOUR + 34 * 60_000 + 56 * SECOND, 6 * SECOND);
    // 400 payments over 6 s, both processors, several sharing a millisecond.
    let mut recorded = Vec::new();
    record_random(store, &mut rng, range, 400, &mut recorded).await;
    assert_summary_exact(store, &recorded, range, 300, 0x5eed_0001).await;
    let empty = Window {
        from: Some(range.0 + 10),
        to: Some(range.0 + 9),
    };
    assert_eq!(store.summary(empty).await.unwrap(), Default::default());
}

#[tokio::test]
async fn the_summary_equals_a_brute_force_count_across_minutes_hours_and_days() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0xda75);
    // Three days from 2 h before a midnight, plus crowds of payments a few seconds either
    // side of that midnight and of an hour boundary: windows of every length, cutting
    // seconds next to every kind of bucket boundary.
    let range = (MIDNIGHT - 2 * HOUR, 3 * DAY);
    let mut recorded = Vec::new();
    record_random(store, &mut rng, range, 300, &mut recorded).await;
    for crowd in [MIDNIGHT, MIDNIGHT + 5 * HOUR, MIDNIGHT + DAY + 60_000] {
        record_random(
            store,
            &mut rng,
            (crowd - 3 * SECOND, 6 * SECOND),
            100,
            &mut recorded,
        )
        .await;
    }
    assert_summary_exact(store, &recorded, range, 300, 1).await;
    // Narrow windows around the crowds too.
    assert_summary_exact(
        store,
        &recorded,
        (MIDNIGHT - 5 * SECOND, 10 * SECOND),
        100,
        2,
    )
    .await;

    // Every level was written: the day of the first crowd holds its payments.
    let keys = store.keys().summary(Processor::Default);
    let day = Bucket::Day(MIDNIGHT / DAY).field();
    let in_day = recorded
        .iter()
        .filter(|(p, at, _)| *p == Processor::Default && at.div_euclid(DAY) == MIDNIGHT / DAY)
        .count();
    assert_eq!(
        hget(store, &keys.counts, &day).await,
        Some(in_day.to_string())
    );
}

#[tokio::test]
async fn a_bucket_that_would_overflow_fails_its_payment_alone() {
    let app = patient_store();
    let store = &app.store;
    let (full, fine) = (new_id(), new_id());
    for id in [&full, &fine] {
        store.accept(id, Cents::new(100), 0).await.unwrap();
    }
    let second: i64 = 1_752_582_896;
    let mut conn = store.connection();
    let cents_key = store.keys().summary(Processor::Default).cents;
    let _: () = redis::cmd("HSET")
        .arg(&cents_key)
        .arg(second)
        .arg(i64::MAX - 10)
        .query_async(&mut conn)
        .await
        .unwrap();
    let request = |id: &PaymentId, at: i64| RecordRequest {
        id: *id,
        amount: Cents::new(100),
        processor: Processor::Default,
        requested_at: at,
        entry_id: String::new(),
    };
    let results = store
        .record_batch(&[
            request(&full, second * 1000 + 5),
            request(&fine, (second + 1) * 1000),
        ])
        .await
        .unwrap();
    assert!(results[0].is_err(), "{results:?}");
    assert_eq!(results[1].as_ref().unwrap(), &Recorded::Now);
    assert_eq!(
        store.payment(&full).await.unwrap().unwrap().status,
        common::payment::Status::Queued
    );
    // The payment left out is in no roll-up either: its minute holds only the other one.
    let minute = Bucket::Minute(second.div_euclid(60)).field();
    assert_eq!(second.div_euclid(60), (second + 1).div_euclid(60));
    let counts = store.keys().summary(Processor::Default).counts;
    assert_eq!(hget(store, &counts, &minute).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn sums_beyond_2_53_per_call_and_2_63_per_day_stay_exact() {
    let app = patient_store();
    let store = &app.store;
    let keys = store.keys().summary(Processor::Default);
    let mut recorded = Vec::new();
    // 73 calls of 128 payments of the largest amount, each call in one second (1.28e17
    // cents: beyond 2^53, so added in several parts), the seconds spread over one day: the
    // day holds 9.3e18 cents, beyond what a bucket can (2^63).
    for call in 0..73i64 {
        let second = MIDNIGHT / 1000 + call * 1_183;
        let batch: Vec<(PaymentId, i64)> =
            (0..128).map(|j| (new_id(), second * 1000 + j)).collect();
        let accepts: Vec<_> = batch
            .iter()
            .map(|(id, _)| (*id, Cents::new(MAX_CENTS), 0))
            .collect();
        store.accept_batch(&accepts).await.unwrap();
        let records: Vec<_> = batch
            .iter()
            .map(|(id, at)| RecordRequest {
                id: *id,
                amount: Cents::new(MAX_CENTS),
                processor: Processor::Default,
                requested_at: *at,
                entry_id: String::new(),
            })
            .collect();
        for r in store.record_batch(&records).await.unwrap() {
            assert_eq!(r.unwrap(), Recorded::Now);
        }
        recorded.extend(
            batch
                .iter()
                .map(|(_, at)| (Processor::Default, *at, MAX_CENTS)),
        );
    }
    let day = Bucket::Day(MIDNIGHT / DAY).field();
    assert_eq!(hget(store, &keys.cents, &day).await.as_deref(), Some("sat"));
    let second = Bucket::Second(MIDNIGHT / 1000).field();
    assert_eq!(
        hget(store, &keys.cents, &second).await,
        Some((128 * MAX_CENTS).to_string())
    );
    // Its tenths: .000-.099 and .100-.127, each added in parts in one call.
    let tenth = Bucket::Tenth(MIDNIGHT / 100).field();
    assert_eq!(
        hget(store, &keys.cents, &tenth).await,
        Some((100 * MAX_CENTS).to_string())
    );

    // An hour bucket made nearly full behind the scripts' back: the next payment into it
    // saturates it (it is read through its minutes from then on), and is recorded.
    let hour = MIDNIGHT + 5 * HOUR;
    let mut conn = store.connection();
    let _: () = redis::cmd("HSET")
        .arg(&keys.cents)
        .arg(Bucket::Hour(hour / HOUR).field())
        .arg(i64::MAX - 10)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut rng = Lcg(0x5a7);
    let mut late = Vec::new();
    record_random(store, &mut rng, (hour, HOUR), 30, &mut late).await;
    assert_eq!(
        hget(store, &keys.cents, &Bucket::Hour(hour / HOUR).field())
            .await
            .as_deref(),
        Some("sat")
    );
    recorded.extend(late);

    let all = store.summary(Window::default()).await.unwrap();
    let total: i128 = recorded.iter().map(|(_, _, c)| *c as i128).sum();
    assert!(total > i64::MAX as i128);
    assert_eq!(
        (
            all.default.requests + all.fallback.requests,
            all.default.cents + all.fallback.cents
        ),
        (recorded.len() as u64, total)
    );
    assert_summary_exact(store, &recorded, (MIDNIGHT, DAY), 300, 3).await;
    assert!(crate::retention::assert_tenths_add_up(store, &[]).await >= 2 * 73);
    assert_eq!(store.summary_rereads(), 0);
}

#[tokio::test]
async fn seconds_recorded_before_the_roll_ups_are_read_exactly_then_rolled_up() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0x01d);
    let range = (MIDNIGHT - 3 * HOUR, 2 * DAY);
    let crowd = (MIDNIGHT - 2 * SECOND, 4 * SECOND);
    let mut recorded = Vec::new();
    // An older version's summary, then the current version's records into the same time range
    // (some into the same seconds): until rolled up, queries read around the old seconds.
    record_random_before_roll_ups(store, &mut rng, range, 200, &mut recorded).await;
    record_random_before_roll_ups(store, &mut rng, crowd, 50, &mut recorded).await;
    record_random(store, &mut rng, range, 150, &mut recorded).await;
    record_random(store, &mut rng, crowd, 50, &mut recorded).await;
    assert_summary_exact(store, &recorded, range, 300, 4).await;

    let hours = retention::roll_up_legacy_seconds(store, 1).await.unwrap();
    assert!(hours > 0);
    let mut conn = store.connection();
    for p in Processor::ALL {
        let left: bool = redis::cmd("EXISTS")
            .arg(store.keys().summary(p).legacy_seconds)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!left, "{p}: seconds left to roll up");
    }
    assert_summary_exact(store, &recorded, range, 300, 5).await;

    // An older worker still recording beside this one (a rolling upgrade): some hours are
    // rolled up, some again not; queries stay exact, and a second roll-up finishes.
    record_random_before_roll_ups(store, &mut rng, range, 100, &mut recorded).await;
    record_random(store, &mut rng, range, 50, &mut recorded).await;
    assert_summary_exact(store, &recorded, range, 300, 6).await;
    assert!(retention::roll_up_legacy_seconds(store, 3).await.unwrap() > 0);
    assert_eq!(
        retention::roll_up_legacy_seconds(store, 3).await.unwrap(),
        0
    );
    // And with the detail compacted.
    retention::compact_summary(store, std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert_summary_exact(store, &recorded, range, 300, 7).await;
}

#[tokio::test]
async fn a_purge_deletes_every_summary_key() {
    let app = patient_store();
    let store = &app.store;
    let mut rng = Lcg(0x9e);
    let range = (MIDNIGHT, 2 * DAY);
    let mut recorded = Vec::new();
    record_random(store, &mut rng, range, 40, &mut recorded).await;
    record_random_before_roll_ups(store, &mut rng, range, 10, &mut recorded).await;
    retention::compact_summary(store, std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    record_random(store, &mut rng, range, 10, &mut recorded).await;
    store.ensure_group().await.unwrap();
    store.purge().await.unwrap();

    let mut conn = store.connection();
    let stream = store.keys().stream();
    let tag = stream.trim_end_matches(":stream");
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{tag}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    left.sort();
    assert_eq!(left, [stream.to_string()]);
    let s = store.summary(Window::default()).await.unwrap();
    assert_eq!((s.default.requests, s.fallback.requests), (0, 0));
}
