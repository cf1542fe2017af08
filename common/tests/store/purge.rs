//! The purge flag's ownership and the purge's last step at a full memory: a purge never wipes
//! a summary share recorded while it did not hold the flag, and finishes whatever the memory.

use std::time::Duration;

use common::payment::{Cents, PaymentId, Processor, Status};
use common::store::{Recorded, Settle, Settled, Store, Window};

use crate::helpers::{accept_and_deliver, begin, new_id, patient_store};

/// A payment accepted (after any purge started), begun on default and stored there.
async fn stored_payment(store: &Store) -> (PaymentId, String) {
    let id = new_id();
    let entry = accept_and_deliver(store, &id, 250, "w1").await;
    begin(store, &id, Processor::Default, "w1", &entry).await;
    (id, entry)
}

async fn record(store: &Store, id: &PaymentId, entry: &str) -> Recorded {
    store
        .record(
            id,
            Cents::new(250),
            Processor::Default,
            common::time::now_ms(),
            entry,
        )
        .await
        .unwrap()
}

/// A processed payment's share is in the summary: (requests, cents) on default.
async fn default_totals(store: &Store) -> (u64, i128) {
    let summary = store.summary(Window::default()).await.unwrap();
    (summary.default.requests, summary.default.cents)
}

async fn set_maxmemory(store: &Store, bytes: u64) {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET").arg("maxmemory").arg(bytes);
    let _: String = store.query(&cmd).await.unwrap();
}

/// Two purges at once: the second is refused while the first holds the flag, so the first's
/// finish never opens the summary to records that the second's finish would then wipe.
#[tokio::test]
async fn a_second_purge_is_refused_while_one_runs() {
    let app = patient_store();
    let store = &app.store;
    let first = store.purge_start().await.unwrap();
    let second = store.purge_start().await;
    let (id, entry) = stored_payment(store).await;
    store.purge_sweep(&first).await.unwrap();
    store.purge_finish(&first).await.unwrap();
    assert_eq!(record(store, &id, &entry).await, Recorded::Now);
    if let Ok(second) = &second {
        // What the second purge would do, had it started.
        let _ = store.purge_sweep(second).await;
        let _ = store.purge_finish(second).await;
    }
    assert_processed_and_counted(
        store,
        &id,
        "a processed payment's share wiped by a second purge's finish",
    )
    .await;
    assert!(
        matches!(&second, Err(e) if e.kind() == "purge_running"),
        "{second:?}"
    );
    // The flag is free again: the next purge runs.
    store.purge().await.unwrap();
}

/// A purge whose flag expired between two renewals (slow calls, a long SCAN): records ran
/// again meanwhile, so it stops without wiping their shares; the next purge finishes the job.
#[tokio::test]
async fn a_purge_whose_flag_expired_stops_without_wiping_the_summary() {
    let app = patient_store();
    let store = &app.store;
    let run = store.purge_start().await.unwrap();
    let (id, entry) = stored_payment(store).await;
    assert!(store
        .record(
            &id,
            Cents::new(250),
            Processor::Default,
            common::time::now_ms(),
            &entry
        )
        .await
        .is_err());
    // The flag's expiry, without waiting for it.
    let mut cmd = redis::cmd("DEL");
    cmd.arg(store.keys().purging());
    let _: u64 = store.query(&cmd).await.unwrap();
    assert_eq!(record(store, &id, &entry).await, Recorded::Now);
    let swept = store.purge_sweep(&run).await;
    let finished = store.purge_finish(&run).await;
    assert_processed_and_counted(
        store,
        &id,
        "a share recorded after the flag expired wiped by the purge's finish",
    )
    .await;
    assert!(
        matches!(&swept, Err(e) if e.kind() == "purge_lost"),
        "{swept:?}"
    );
    assert!(
        matches!(&finished, Err(e) if e.kind() == "purge_lost"),
        "{finished:?}"
    );
    store.purge().await.unwrap();
    assert_eq!(default_totals(store).await, (0, 0));
    assert!(store.payment(&id).await.unwrap().is_none());
}

/// Every SCAN page renews the flag, one without payment keys too: a purge over a key space
/// of other keys keeps its flag however many pages it reads.
#[tokio::test]
async fn every_sweep_page_renews_the_flag() {
    let app = patient_store();
    let store = &app.store;
    let run = store.purge_start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    store.purge_sweep(&run).await.unwrap();
    let mut cmd = redis::cmd("PTTL");
    cmd.arg(store.keys().purging());
    let ttl: i64 = store.query(&cmd).await.unwrap();
    assert!(
        ttl > 9_500,
        "the flag not renewed by a page without payments: {ttl} ms left"
    );
    store.purge_finish(&run).await.unwrap();
}

/// At a full memory (`maxmemory`, `noeviction`) the whole purge runs, its last step included:
/// a MULTI would be refused there (`EXECABORT`).
#[tokio::test]
async fn a_purge_runs_at_a_full_memory() {
    let app = patient_store();
    let store = &app.store;
    let (id, entry) = stored_payment(store).await;
    assert_eq!(record(store, &id, &entry).await, Recorded::Now);
    let (queued, _) = stored_payment(store).await;
    set_maxmemory(store, 1).await;
    let purged = store.purge().await;
    set_maxmemory(store, 0).await;
    assert_eq!(purged.unwrap(), 2);
    assert_eq!(default_totals(store).await, (0, 0));
    assert!(store.payment(&queued).await.unwrap().is_none());
    assert_eq!(store.backlog().await.unwrap(), 0);
    let mut cmd = redis::cmd("EXISTS");
    cmd.arg(store.keys().purging());
    let flag: u64 = store.query(&cmd).await.unwrap();
    assert_eq!(flag, 0, "the flag cleared");
}

/// The payment (2.50 at default) is processed and the summary counts it.
async fn assert_processed_and_counted(store: &Store, id: &PaymentId, why: &str) {
    assert_eq!(
        store.payment(id).await.unwrap().unwrap().status,
        Status::Processed
    );
    assert_eq!(default_totals(store).await, (1, 250), "{why}");
}

/// A task of an entry the purge took, its correlationId accepted again since, answers for
/// the old payment: its settle or unanswered must change nothing of the new one, whose first
/// attempt has the same number and may still be stored.
#[tokio::test]
async fn a_task_of_a_purged_entry_cannot_clear_the_pin_of_its_id_accepted_again() {
    let app = patient_store();
    let store = &app.store;
    let id = new_id();
    let old = accept_and_deliver(store, &id, 250, "w1").await;
    begin(store, &id, Processor::Default, "w1", &old).await;
    store.purge().await.unwrap();
    let new = accept_and_deliver(store, &id, 250, "w2").await;
    assert_ne!(old, new);
    begin(store, &id, Processor::Default, "w2", &new).await;

    let settled = store
        .settle(&id, &old, Processor::Default, 1, Settle::Failed)
        .await
        .unwrap();
    assert_eq!(settled, Settled::Stale, "the old task cleared the new pin");
    let shortened = store
        .unanswered(&id, &old, Processor::Default, 1, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(shortened, None, "the old task shortened the new bound");
    // The new payment's own task still settles it.
    let settled = store
        .settle(&id, &new, Processor::Default, 1, Settle::Failed)
        .await
        .unwrap();
    assert_eq!(settled, Settled::Cleared);
}

/// The same for a record: an answer a task learned for an entry the purge took, recorded
/// after the id was accepted again, counts nothing and leaves the new payment to its own task.
#[tokio::test]
async fn a_task_of_a_purged_entry_cannot_record_its_id_accepted_again() {
    let app = patient_store();
    let store = &app.store;
    let id = new_id();
    let old = accept_and_deliver(store, &id, 250, "w1").await;
    begin(store, &id, Processor::Default, "w1", &old).await;
    store.purge().await.unwrap();
    let new = accept_and_deliver(store, &id, 250, "w2").await;

    assert_eq!(record(store, &id, &old).await, Recorded::Missing);
    assert_eq!(
        default_totals(store).await,
        (0, 0),
        "the old answer was counted"
    );
    assert_eq!(
        store.payment(&id).await.unwrap().unwrap().status,
        Status::Queued,
        "the new payment was marked processed by the old answer"
    );
    assert_eq!(record(store, &id, &new).await, Recorded::Now);
    assert_processed_and_counted(store, &id, "the new payment's own answer").await;
}
