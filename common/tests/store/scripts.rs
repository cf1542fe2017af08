//! The atomic scripts' promises, checked directly against a real Redis: what the worker
//! relies on to get exactly-once effects from at-least-once delivery.

use std::time::Duration;

use common::keys::GROUP;
use common::payment::{Cents, Processor, Status};
use common::store::{
    Accepted, Attempt, FailMode, Lingers, Recorded, RedisOptions, SafeAt, Settle, Settled, Store,
    StoreError, Window,
};

use crate::helpers::{accept_and_deliver, begin, new_id, patient_store, LONG};

#[tokio::test]
async fn recording_twice_counts_once() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    assert_eq!(
        store.accept(&id, Cents::new(500), 0).await.unwrap(),
        Accepted::Enqueued
    );
    let first = store
        .record(&id, Cents::new(500), Processor::Default, 1_000, "")
        .await
        .unwrap();
    let second = store
        .record(&id, Cents::new(500), Processor::Default, 1_000, "")
        .await
        .unwrap();
    let third = store
        .record(&id, Cents::new(500), Processor::Fallback, 1_001, "")
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
        store.accept(&id, Cents::new(500), 0).await.unwrap(),
        Accepted::Replay(Status::Processed)
    );
}

#[tokio::test]
async fn an_unresolved_attempt_pins_the_payment_until_a_late_enough_lookup() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    let Attempt::Go {
        processor,
        attempt,
        unresolved_before,
    } = begin(store, &id, Processor::Default, "c1", &entry).await
    else {
        panic!("first attempt must go");
    };
    assert_eq!(
        (processor, attempt, unresolved_before),
        (Processor::Default, 1, false)
    );
    // Outcome unknown: the other processor is refused, with the Redis time from which a
    // 404 proves absence (now + the bound passed to begin).
    let Attempt::Pinned {
        processor,
        safe,
        attempt,
    } = begin(store, &id, Processor::Fallback, "c1", &entry).await
    else {
        panic!("must be pinned");
    };
    assert_eq!((processor, attempt), (Processor::Default, 1));
    let bound = safe.safe - safe.now;
    assert!((59_000..=60_000).contains(&bound), "{safe:?}");
    // The same processor may be retried, and says so.
    assert_eq!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go {
            processor: Processor::Default,
            attempt: 2,
            unresolved_before: true
        }
    );
    let late = Settle::Absent {
        asked_at: safe.now + 120_000,
    };
    // A stale attempt cannot release the pin; a lookup asked too early cannot either.
    assert_eq!(
        store
            .settle(&id, &entry, Processor::Default, 1, late)
            .await
            .unwrap(),
        Settled::Stale
    );
    let early = Settle::Absent {
        asked_at: safe.now + 1_000,
    };
    assert!(matches!(
        store
            .settle(&id, &entry, Processor::Default, 2, early)
            .await
            .unwrap(),
        Settled::Early(_)
    ));
    // A definite failure of attempt 2 says nothing about attempt 1.
    assert!(matches!(
        store
            .settle(&id, &entry, Processor::Default, 2, Settle::Failed)
            .await
            .unwrap(),
        Settled::Early(SafeAt { safe: s, .. }) if s == safe.safe
    ));
    assert!(matches!(
        begin(store, &id, Processor::Fallback, "c1", &entry).await,
        Attempt::Pinned { .. }
    ));
    assert_eq!(
        store
            .settle(&id, &entry, Processor::Default, 2, late)
            .await
            .unwrap(),
        Settled::Cleared
    );
    assert!(matches!(
        begin(store, &id, Processor::Fallback, "c1", &entry).await,
        Attempt::Go {
            processor: Processor::Fallback,
            attempt: 3,
            ..
        }
    ));
}

#[tokio::test]
async fn a_pin_left_without_a_bound_gets_the_longest_bound_not_none() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { .. }
    ));
    // A status hash pinned by a version that kept no bound.
    let mut conn = store.connection();
    let _: () = redis::cmd("HDEL")
        .arg(store.keys().payment(&id))
        .arg("safe")
        .arg("safe0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let Attempt::Pinned { safe, .. } = begin(store, &id, Processor::Fallback, "c1", &entry).await
    else {
        panic!("must stay pinned");
    };
    assert!(safe.safe - safe.now >= 59_000, "{safe:?}");
    let absent_now = Settle::Absent { asked_at: safe.now };
    assert!(matches!(
        store
            .settle(&id, &entry, Processor::Default, 1, absent_now)
            .await
            .unwrap(),
        Settled::Early(_)
    ));
}

#[tokio::test]
async fn an_unanswered_call_shortens_the_bound_to_the_grace_from_its_end() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { attempt: 1, .. }
    ));
    let safe = store
        .unanswered(
            &id,
            &entry,
            Processor::Default,
            1,
            Duration::from_millis(300),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert!((300..=400).contains(&(safe.safe - safe.now)), "{safe:?}");
    // Not the latest attempt: nothing changes.
    assert_eq!(
        store
            .unanswered(&id, &entry, Processor::Default, 7, Duration::ZERO, false)
            .await
            .unwrap(),
        None
    );
    // A store may still happen at the safe time itself: only a lookup asked after it counts.
    let at_the_edge = Settle::Absent {
        asked_at: safe.safe,
    };
    assert!(matches!(
        store
            .settle(&id, &entry, Processor::Default, 1, at_the_edge)
            .await
            .unwrap(),
        Settled::Early(_)
    ));
    let absent = Settle::Absent {
        asked_at: safe.safe + 1,
    };
    assert_eq!(
        store
            .settle(&id, &entry, Processor::Default, 1, absent)
            .await
            .unwrap(),
        Settled::Cleared
    );
}

#[tokio::test]
async fn a_heartbeat_over_several_script_calls_reports_every_lost_entry() {
    // More entries than one touch call carries: the lost ones of every call are reported,
    // and the rest stay with the consumer.
    let app = patient_store();
    let store = &app.store;
    let mut entries = Vec::new();
    for _ in 0..(2 * common::store::MAX_BATCH + 10) {
        entries.push(accept_and_deliver(store, &new_id(), 100, "busy").await);
    }
    let taken = [0, common::store::MAX_BATCH + 1, entries.len() - 1];
    let mut conn = store.connection();
    for &i in &taken {
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(store.keys().stream())
            .arg(GROUP)
            .arg("taker")
            .arg(0)
            .arg(&entries[i])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let lost = store.touch("busy", &entries).await.unwrap();
    assert_eq!(
        lost,
        taken
            .iter()
            .map(|&i| entries[i].clone())
            .collect::<Vec<_>>()
    );
    assert!(store.touch("busy", &[]).await.unwrap().is_empty());
    // The rest are still this consumer's: touching only them reports nothing lost.
    let kept: Vec<String> = (0..entries.len())
        .filter(|i| !taken.contains(i))
        .map(|i| entries[i].clone())
        .collect();
    assert!(store.touch("busy", &kept).await.unwrap().is_empty());
}

/// A second store on `app`'s Redis and keys with at most `max` payments per script call
/// and the given lingers.
fn capped_store(app: &crate::helpers::TestStore, max: usize, lingers: Lingers) -> Store {
    Store::connect_lazy(
        &RedisOptions::new(app.redis.url()),
        app.store.keys().clone(),
    )
    .unwrap()
    .with_lingers(lingers)
    .with_batch_max(max)
}

async fn reset_stats(store: &Store) {
    let mut conn = store.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// How many `EVALSHA` calls Redis has run since [`reset_stats`] (the test's own Redis:
/// nothing else calls it meanwhile).
async fn script_calls(store: &Store) -> u64 {
    let mut conn = store.connection();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn begin_and_record_batches_are_split_at_the_stores_batch_max() {
    // SCRIPT_BATCH_MAX: a worker's begin and record batches never carry more than its
    // maximum, so no one script call holds Redis (and every accept behind it) for longer.
    let app = patient_store();
    let linger = Duration::from_millis(200);
    let store = capped_store(
        &app,
        2,
        Lingers {
            begin: linger,
            record: linger,
        },
    );
    let mut payments = Vec::new();
    for _ in 0..6 {
        let id = new_id();
        let entry = accept_and_deliver(&app.store, &id, 100, "c").await;
        payments.push((id, entry));
    }
    // The first begin and record load their scripts, so every call below is one EVALSHA.
    let (id, entry) = payments.pop().unwrap();
    assert!(matches!(
        begin(&store, &id, Processor::Default, "c", &entry).await,
        Attempt::Go { .. }
    ));
    store
        .record(&id, Cents::new(100), Processor::Default, 1_000, &entry)
        .await
        .unwrap();

    // Five begins, then five records, each gathered within one linger: 2 + 2 + 1 calls.
    reset_stats(&store).await;
    let mut begins = tokio::task::JoinSet::new();
    for (id, entry) in payments.clone() {
        let store = store.clone();
        begins.spawn(async move {
            store
                .begin_attempt(
                    &id,
                    Processor::Default,
                    "c",
                    &entry,
                    LONG,
                    common::time::now_ms(),
                )
                .await
        });
    }
    while let Some(begun) = begins.join_next().await {
        assert!(matches!(begun.unwrap().unwrap(), Attempt::Go { .. }));
    }
    assert_eq!(script_calls(&store).await, 3);
    reset_stats(&store).await;
    let mut records = tokio::task::JoinSet::new();
    for (id, entry) in payments {
        let store = store.clone();
        records.spawn(async move {
            store
                .record(&id, Cents::new(100), Processor::Default, 1_000, &entry)
                .await
        });
    }
    while let Some(recorded) = records.join_next().await {
        assert_eq!(recorded.unwrap().unwrap(), Recorded::Now);
    }
    assert_eq!(script_calls(&store).await, 3);
    let s = store.summary(Window::default()).await.unwrap();
    assert_eq!((s.default.requests, s.default.cents), (6, 600));
}

#[tokio::test]
async fn a_heartbeat_is_split_at_the_stores_batch_max() {
    // The worker's heartbeat touches its in-flight entries in calls of SCRIPT_BATCH_MAX,
    // for the same reason as its begins and records: five entries at most two a call.
    let app = patient_store();
    let store = capped_store(&app, 2, Lingers::default());
    let mut entries = Vec::new();
    for _ in 0..5 {
        entries.push(accept_and_deliver(&app.store, &new_id(), 100, "c").await);
    }
    // The first touch loads the script, so every call below is one EVALSHA.
    assert!(store.touch("c", &entries[..1]).await.unwrap().is_empty());
    reset_stats(&store).await;
    assert!(store.touch("c", &entries).await.unwrap().is_empty());
    assert_eq!(script_calls(&store).await, 3);
}

#[tokio::test]
async fn a_consumer_that_lost_its_entry_cannot_begin_and_its_heartbeat_says_so() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "frozen").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "frozen", &entry).await,
        Attempt::Go { .. }
    ));
    assert!(store
        .touch("frozen", std::slice::from_ref(&entry))
        .await
        .unwrap()
        .is_empty());
    // Another consumer claims it (as XAUTOCLAIM does once it is idle long enough).
    let mut conn = store.connection();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(store.keys().stream())
        .arg(GROUP)
        .arg("taker")
        .arg(0)
        .arg(&entry)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        begin(store, &id, Processor::Default, "frozen", &entry).await,
        Attempt::Lost
    );
    assert_eq!(
        store
            .touch("frozen", std::slice::from_ref(&entry))
            .await
            .unwrap(),
        vec![entry.clone()]
    );
    // The new owner sees the frozen consumer's attempt as unresolved.
    assert!(matches!(
        begin(store, &id, Processor::Fallback, "taker", &entry).await,
        Attempt::Pinned {
            processor: Processor::Default,
            attempt: 1,
            ..
        }
    ));
}

#[tokio::test]
async fn a_payment_a_processor_may_hold_is_never_dead_lettered() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    let Attempt::Go { attempt, .. } = begin(store, &id, Processor::Default, "c1", &entry).await
    else {
        panic!("must go");
    };
    assert_eq!(
        store
            .dead_letter(&id, "100", "test", &entry, FailMode::Final, "c1")
            .await
            .unwrap(),
        Recorded::Unresolved
    );
    assert_eq!(
        store
            .settle(&id, &entry, Processor::Default, attempt, Settle::Failed)
            .await
            .unwrap(),
        Settled::Cleared
    );
    assert_eq!(
        store
            .dead_letter(&id, "100", "test", &entry, FailMode::Final, "c1")
            .await
            .unwrap(),
        Recorded::Now
    );
    let view = store.payment(&id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Failed);
    assert_eq!(view.reason.as_deref(), Some("test"));
    // A failed payment is done: no new attempt starts.
    assert_eq!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Done(Status::Failed)
    );
}

#[tokio::test]
async fn a_422_holds_the_payment_and_a_redrive_keeps_pin_and_attempts() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { attempt: 1, .. }
    ));
    // The processor answered 422 but its lookup says 404: it stays the payment's processor.
    let safe = store
        .unanswered(&id, &entry, Processor::Default, 1, Duration::ZERO, true)
        .await
        .unwrap()
        .unwrap();
    let absent = Settle::Absent {
        asked_at: safe.safe + 1,
    };
    assert_eq!(
        store
            .settle(&id, &entry, Processor::Default, 1, absent)
            .await
            .unwrap(),
        Settled::Held
    );
    // Dead-lettered with the pin kept, then re-driven: the attempt counter goes on and the
    // other processor must wait for a lookup on the first.
    assert_eq!(
        store
            .dead_letter(
                &id,
                "100",
                "422 unconfirmed",
                &entry,
                FailMode::KeepPin { attempt: 1 },
                "c1",
            )
            .await
            .unwrap(),
        Recorded::Now
    );
    assert_eq!(store.redrive_dead_letters(10).await.unwrap(), 1);
    let view = store.payment(&id).await.unwrap().unwrap();
    assert_eq!((view.status, view.attempts), (Status::Queued, 1));
    let entry = {
        let mut conn = store.connection();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("c2")
            .arg("STREAMS")
            .arg(store.keys().stream())
            .arg(">")
            .query_async(&mut conn)
            .await
            .unwrap();
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(store.keys().stream())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(10)
            .arg("c2")
            .query_async(&mut conn)
            .await
            .unwrap();
        pending[0].0.clone()
    };
    assert!(matches!(
        begin(store, &id, Processor::Fallback, "c2", &entry).await,
        Attempt::Pinned {
            processor: Processor::Default,
            attempt: 1,
            ..
        }
    ));
    assert!(matches!(
        begin(store, &id, Processor::Default, "c2", &entry).await,
        Attempt::Go {
            processor: Processor::Default,
            attempt: 2,
            unresolved_before: true
        }
    ));
}

#[tokio::test]
async fn a_purge_keeps_whole_what_is_recorded_or_dead_lettered_while_it_runs() {
    let app = patient_store();
    let store = &app.store;
    // In flight before the purge: purged with its entry.
    let old = new_id();
    let old_entry = accept_and_deliver(store, &old, 100, "w1").await;
    begin(store, &old, Processor::Default, "w1", &old_entry).await;
    let run = store.purge_start().await.unwrap();
    // Accepted, sent and stored by its processor while the purge runs: kept.
    let new = new_id();
    let new_entry = accept_and_deliver(store, &new, 250, "w1").await;
    begin(store, &new, Processor::Default, "w1", &new_entry).await;
    let now = common::time::now_ms();
    let record = |id, entry| store.record(id, Cents::new(250), Processor::Default, now, entry);
    // Counted now, it would be wiped by the purge's last step while its status says
    // processed: the record waits for the purge instead.
    let during = record(&new, &new_entry).await;
    assert!(
        matches!(during, Err(StoreError::Unavailable(_))),
        "{during:?}"
    );
    // A payment that fails while the purge runs keeps its dead letter.
    let failing = new_id();
    let failing_entry = accept_and_deliver(store, &failing, 300, "w1").await;
    assert_eq!(
        store
            .dead_letter(
                &failing,
                "300",
                "test",
                &failing_entry,
                FailMode::Final,
                "w1"
            )
            .await
            .unwrap(),
        Recorded::Now
    );
    store.purge_sweep(&run).await.unwrap();
    store.purge_finish(&run).await.unwrap();

    assert_eq!(record(&new, &new_entry).await.unwrap(), Recorded::Now);
    assert_eq!(record(&old, &old_entry).await.unwrap(), Recorded::Missing);
    let summary = store.summary(Window::default()).await.unwrap();
    assert_eq!(
        (summary.default.requests, summary.default.cents),
        (1, 250),
        "the payment recorded after the purge, alone"
    );
    assert_eq!(
        store.payment(&new).await.unwrap().unwrap().status,
        Status::Processed
    );
    assert!(store.payment(&old).await.unwrap().is_none());
    // The payment dead-lettered while the purge ran is kept whole: its status beside its
    // dead letter, so a re-drive brings it back.
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    assert_eq!(
        store.payment(&failing).await.unwrap().unwrap().status,
        Status::Failed
    );
    assert_eq!(store.redrive_dead_letters(10).await.unwrap(), 1);
    assert_eq!(
        store.payment(&failing).await.unwrap().unwrap().status,
        Status::Queued
    );
}

#[tokio::test]
async fn a_purge_racing_posts_never_strands_a_queued_payment() {
    let app = std::sync::Arc::new(patient_store());
    let store = app.store.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, stop) = (store.clone(), stop.clone());
        posters.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store.accept(&new_id(), Cents::new(100), 0).await.unwrap();
            }
        });
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.purge().await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    while let Some(r) = posters.join_next().await {
        r.unwrap();
    }
    // Every payment left has its entry in the stream, and every entry its payment.
    let mut conn = store.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(store.keys().payment_pattern())
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut sids = std::collections::HashSet::new();
    for key in &keys {
        let sid: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("sid")
            .query_async(&mut conn)
            .await
            .unwrap();
        sids.insert(sid.unwrap_or_else(|| panic!("{key} without entry id")));
    }
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(store.keys().stream())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let in_stream: std::collections::HashSet<String> =
        entries.into_iter().map(|(id, _)| id).collect();
    assert!(
        !keys.is_empty(),
        "the last posts after the last purge are kept"
    );
    assert_eq!(
        sids,
        in_stream,
        "{} payments, {} entries",
        keys.len(),
        in_stream.len()
    );
}

#[tokio::test]
async fn a_kept_pin_never_expires() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { .. }
    ));
    assert_eq!(
        store
            .dead_letter(
                &id,
                "",
                "held",
                &entry,
                FailMode::KeepPin { attempt: 1 },
                "c1"
            )
            .await
            .unwrap(),
        Recorded::Now
    );
    let mut conn = store.connection();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(store.keys().payment(&id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "a payment a processor may hold keeps its status");
}

/// A task may dead-letter a payment with its pin kept only while it owns the entry and its
/// attempt is the payment's latest: otherwise another consumer is handling the payment (it
/// took the entry over, or began a newer attempt) and nothing is failed.
#[tokio::test]
async fn a_kept_pin_dead_letter_needs_the_entry_and_the_latest_attempt() {
    let app = patient_store();
    let id = new_id();
    let store = &app.store;
    let entry = accept_and_deliver(store, &id, 100, "c1").await;
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { attempt: 1, .. }
    ));
    let held = |attempt, consumer| {
        store.dead_letter(
            &id,
            "",
            "held",
            &entry,
            FailMode::KeepPin { attempt },
            consumer,
        )
    };
    // Not the owner of the entry.
    assert_eq!(held(1, "c2").await.unwrap(), Recorded::Unresolved);
    // A newer attempt began (the same consumer, or one that took the entry over).
    assert!(matches!(
        begin(store, &id, Processor::Default, "c1", &entry).await,
        Attempt::Go { attempt: 2, .. }
    ));
    assert_eq!(held(1, "c1").await.unwrap(), Recorded::Unresolved);
    let view = store.payment(&id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Processing, "nothing was failed");
    assert_eq!(store.dead_letter_count().await.unwrap(), 0);
    // The owner with the latest attempt may.
    assert_eq!(held(2, "c1").await.unwrap(), Recorded::Now);
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
}

/// An error reply means "nothing ran" only for the codes Redis gives before running a script
/// (here `OOM`: a full memory refuses `accept.lua` whole). A `WRONGTYPE` from a command inside
/// a script may follow writes (Redis does not roll a script back): outcome unknown.
#[tokio::test]
async fn only_errors_redis_gives_before_running_mean_nothing_was_written() {
    let app = patient_store();
    let store = &app.store;
    // A stream key of the wrong type: accept.lua's XLEN fails inside the script.
    let mut conn = store.connection();
    let _: () = redis::cmd("SET")
        .arg(store.keys().stream())
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store
        .accept(&new_id(), Cents::new(100), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, common::error::StoreError::Unknown(_)),
        "WRONGTYPE inside a script: {err:?}"
    );
    let _: () = redis::cmd("DEL")
        .arg(store.keys().stream())
        .query_async(&mut conn)
        .await
        .unwrap();
    // Memory full: refused before the script's first command.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = store
        .accept(&new_id(), Cents::new(100), 0)
        .await
        .unwrap_err();
    assert!(common::error::is_out_of_memory(&err), "{err:?}");
    // Reads still answer.
    assert_eq!(store.backlog().await.unwrap(), 0);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
}
