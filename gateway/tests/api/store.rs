//! The atomic scripts' promises, checked directly against a real Redis: what the worker
//! relies on to get exactly-once effects from at-least-once delivery.

use common::payment::{Cents, PaymentId, Processor, Status};
use common::store::{Accepted, Attempt, Recorded, Window};
use uuid::Uuid;

use crate::helpers::spawn_app;

fn new_id() -> PaymentId {
    PaymentId::new(Uuid::new_v4())
}

#[tokio::test]
async fn recording_twice_counts_once() {
    let app = spawn_app().await;
    let id = new_id();
    let store = &app.store;
    assert_eq!(
        store.accept(&id, Cents::new(500), 1, 0).await.unwrap(),
        Accepted::Enqueued
    );
    let first = store
        .record(&id, Cents::new(500), Processor::Default, 1_000, "", 2)
        .await
        .unwrap();
    let second = store
        .record(&id, Cents::new(500), Processor::Default, 1_000, "", 3)
        .await
        .unwrap();
    let third = store
        .record(&id, Cents::new(500), Processor::Fallback, 1_001, "", 4)
        .await
        .unwrap();
    assert_eq!(
        (first, second, third),
        (Recorded::Now, Recorded::AlreadyDone, Recorded::AlreadyDone)
    );
    let s = store.summary(Window::default()).await.unwrap();
    assert_eq!((s.default.requests, s.default.cents), (1, 500));
    assert_eq!(s.fallback.requests, 0);
    assert_eq!(
        store.accept(&id, Cents::new(500), 5, 0).await.unwrap(),
        Accepted::Replay(Status::Processed)
    );
}

#[tokio::test]
async fn an_unresolved_attempt_pins_the_payment_to_its_processor() {
    let app = spawn_app().await;
    let id = new_id();
    let store = &app.store;
    store.accept(&id, Cents::new(100), 1, 0).await.unwrap();
    let Attempt::Go {
        processor,
        attempt,
        unresolved_before,
    } = store
        .begin_attempt(&id, Processor::Default, 10)
        .await
        .unwrap()
    else {
        panic!("first attempt must go");
    };
    assert_eq!(
        (processor, attempt, unresolved_before),
        (Processor::Default, 1, false)
    );
    // Outcome unknown: the other processor is refused.
    assert_eq!(
        store
            .begin_attempt(&id, Processor::Fallback, 20)
            .await
            .unwrap(),
        Attempt::Pinned {
            processor: Processor::Default,
            since: 10,
            attempt: 1
        }
    );
    // The same processor may be retried, and says so.
    assert_eq!(
        store
            .begin_attempt(&id, Processor::Default, 30)
            .await
            .unwrap(),
        Attempt::Go {
            processor: Processor::Default,
            attempt: 2,
            unresolved_before: true
        }
    );
    // A stale attempt cannot release the pin; the latest one can.
    assert!(!store
        .settle_absent(&id, Processor::Default, 1, 40)
        .await
        .unwrap());
    assert!(matches!(
        store
            .begin_attempt(&id, Processor::Fallback, 50)
            .await
            .unwrap(),
        Attempt::Pinned { .. }
    ));
    assert!(store
        .settle_absent(&id, Processor::Default, 2, 60)
        .await
        .unwrap());
    assert!(matches!(
        store
            .begin_attempt(&id, Processor::Fallback, 70)
            .await
            .unwrap(),
        Attempt::Go {
            processor: Processor::Fallback,
            ..
        }
    ));
}

#[tokio::test]
async fn a_payment_a_processor_may_hold_is_never_dead_lettered() {
    let app = spawn_app().await;
    let id = new_id();
    let store = &app.store;
    store.accept(&id, Cents::new(100), 1, 0).await.unwrap();
    let Attempt::Go { attempt, .. } = store
        .begin_attempt(&id, Processor::Default, 10)
        .await
        .unwrap()
    else {
        panic!("must go");
    };
    assert_eq!(
        store
            .dead_letter(&id, Cents::new(100), "test", "", 20)
            .await
            .unwrap(),
        Recorded::Unresolved
    );
    assert!(store
        .settle_absent(&id, Processor::Default, attempt, 30)
        .await
        .unwrap());
    assert_eq!(
        store
            .dead_letter(&id, Cents::new(100), "test", "", 40)
            .await
            .unwrap(),
        Recorded::Now
    );
    let view = store.payment(&id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Failed);
    assert_eq!(view.reason.as_deref(), Some("test"));
    // A failed payment is done: no new attempt starts.
    assert_eq!(
        store
            .begin_attempt(&id, Processor::Default, 50)
            .await
            .unwrap(),
        Attempt::Done(Status::Failed)
    );
}

/// A small deterministic generator (no extra dependency): the same cases every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test]
async fn the_summary_equals_a_brute_force_count_for_any_window() {
    let app = spawn_app().await;
    let store = &app.store;
    let mut rng = Lcg(0x5eed);
    let base: i64 = 1_752_582_896_000;
    // 400 payments over ~6 s, both processors, several sharing a millisecond.
    let mut recorded = Vec::new();
    for _ in 0..400 {
        let id = new_id();
        let at = base + rng.next(6_000) as i64;
        let cents = 1 + rng.next(1_000_000) as i64;
        let processor = if rng.next(4) == 0 {
            Processor::Fallback
        } else {
            Processor::Default
        };
        store.accept(&id, Cents::new(cents), at, 0).await.unwrap();
        store
            .record(&id, Cents::new(cents), processor, at, "", at)
            .await
            .unwrap();
        recorded.push((processor, at, cents));
    }
    for case in 0..300 {
        let pick = |rng: &mut Lcg| base - 500 + rng.next(7_000) as i64;
        let (a, b) = (pick(&mut rng), pick(&mut rng));
        let mut window = Window {
            from: Some(a.min(b)),
            to: Some(a.max(b)),
        };
        match case % 10 {
            0 => window.from = None,
            1 => window.to = None,
            2 => window = Window::default(),
            3 => window.to = window.from, // a single millisecond
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
