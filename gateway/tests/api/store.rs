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
