//! The stale-consumer cleanup against live readers. Deleting a consumer deletes its pending
//! entries with it: if a consumer reads entries between the check "nothing pending, idle"
//! and its deletion, those entries leave the pending list for good — no `XAUTOCLAIM` and no
//! `XREADGROUP` delivers them again, and their payments are stranded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::keys::GROUP;
use common::payment::Cents;
use common::store::Accepted;

use crate::helpers::{first_entry_id, new_id, patient_store};

/// A reader that takes one entry at a time and acknowledges it a moment later, while the
/// cleanup runs back to back with an idle threshold of zero: every entry the reader got must
/// still be pending on it when it acknowledges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_never_deletes_a_consumer_that_just_read_entries() {
    let t = patient_store();
    let store = t.store.clone();
    store.ensure_group().await.unwrap();
    const N: usize = 600;
    for _ in 0..N {
        let id = new_id();
        let accepted = store.accept(&id, Cents::new(100), 0).await.unwrap();
        assert!(matches!(accepted, Accepted::Enqueued), "{accepted:?}");
    }

    let done = Arc::new(AtomicBool::new(false));
    let cleanup = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut deleted = 0usize;
            while !done.load(Ordering::Relaxed) {
                deleted += store
                    .drop_stale_consumers("cleaner", Duration::ZERO)
                    .await
                    .unwrap()
                    .len();
            }
            deleted
        })
    };

    let stream = store.keys().stream().to_string();
    let (mut read, mut stranded) = (0usize, 0usize);
    while read < N {
        let mut xread = redis::cmd("XREADGROUP");
        xread
            .arg("GROUP")
            .arg(GROUP)
            .arg("reader")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">");
        let reply: redis::Value = store.query(&xread).await.unwrap();
        let Some(id) = first_entry_id(&reply) else {
            break;
        };
        read += 1;
        tokio::time::sleep(Duration::from_micros(200)).await;
        let mut ack = redis::cmd("XACK");
        ack.arg(&stream).arg(GROUP).arg(&id);
        let acked: i64 = store.query(&ack).await.unwrap();
        if acked == 0 {
            stranded += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    let deleted = cleanup.await.unwrap();
    assert_eq!(read, N);
    assert!(deleted > 0, "the cleanup never ran against the idle reader");
    assert_eq!(
        stranded, 0,
        "entries taken out of the pending list by a consumer deletion"
    );
}

/// What the cleanup deletes and what it keeps.
#[tokio::test]
async fn the_cleanup_deletes_only_idle_consumers_with_nothing_pending() {
    let t = patient_store();
    let store = t.store.clone();
    store.ensure_group().await.unwrap();
    let id = new_id();
    store.accept(&id, Cents::new(100), 0).await.unwrap();
    let stream = store.keys().stream().to_string();
    for consumer in ["busy", "idle", "me"] {
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATECONSUMER")
            .arg(&stream)
            .arg(GROUP)
            .arg(consumer);
        let _: i64 = store.query(&create).await.unwrap();
    }
    let mut xread = redis::cmd("XREADGROUP");
    xread
        .arg("GROUP")
        .arg(GROUP)
        .arg("busy")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">");
    let _: redis::Value = store.query(&xread).await.unwrap();
    // Nobody idle long enough yet.
    let none = store
        .drop_stale_consumers("me", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    // Idle long enough: only the one with nothing pending goes, never the caller.
    let gone = store
        .drop_stale_consumers("me", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gone, vec!["idle".to_string()]);
}
