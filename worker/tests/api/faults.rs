//! Faults the worker must survive without losing or double-charging a payment: the
//! processor condition schedule of docs/protocol.md §5 (compressed), `kill -9` of a worker process,
//! a Redis restart under load, and the death of the health poller's leader.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use load_tests::sim::SimConfig;
use uuid::Uuid;

use crate::helpers::{spawn_stack, spawn_stack_with, Stack, StackOptions};

/// What the posters saw: ids answered 2xx, ids answered 503 (nothing written), and the
/// number of answers whose outcome the client cannot know (504, reset, timeout).
#[derive(Debug, Default, Clone)]
struct Posted {
    accepted: Vec<Uuid>,
    refused: Vec<Uuid>,
    unknown: usize,
}

/// Posts payments from `loops` loops until `stop` is set.
fn post_loop(
    stack: Arc<Stack>,
    loops: usize,
    pause: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Posted> {
    tokio::spawn(async move {
        let posted = Arc::new(Mutex::new(Posted::default()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..loops {
            let (stack, stop, posted) = (stack.clone(), stop.clone(), posted.clone());
            tasks.spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = Uuid::new_v4();
                    let response = stack
                        .client
                        .post(stack.url("/payments"))
                        .header("content-type", "application/json")
                        .body(format!(r#"{{"correlationId":"{id}","amount":19.90}}"#))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(s) if (200..300).contains(&s) => {
                            posted.lock().unwrap().accepted.push(id)
                        }
                        Ok(503) => posted.lock().unwrap().refused.push(id),
                        Ok(504) | Err(_) => posted.lock().unwrap().unknown += 1,
                        Ok(other) => panic!("unexpected status {other}"),
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let posted = posted.lock().unwrap().clone();
        posted
    })
}

/// Every accepted id processed exactly once, by one processor, and our totals equal the
/// processors' own.
async fn assert_exactly_once(stack: &Stack, accepted: &[Uuid]) {
    let in_redis = stack.accepted_in_redis().await as u64;
    assert!(in_redis >= accepted.len() as u64);
    stack
        .wait_processed(in_redis, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (d, dc, f, fc) = stack.totals().await;
    assert_eq!(
        d + f,
        in_redis,
        "every payment Redis accepted is processed once"
    );
    assert_eq!(d as usize, stack.default.stored_count());
    assert_eq!(f as usize, stack.fallback.stored_count());
    let sd = stack.default.summary(None, None);
    let sf = stack.fallback.summary(None, None);
    assert_eq!(dc, sd.total_cents as i128);
    assert_eq!(fc, sf.total_cents as i128);
    for id in accepted {
        let on_default = stack.default.stored(id).is_some();
        let on_fallback = stack.fallback.stored(id).is_some();
        assert!(
            on_default ^ on_fallback,
            "{id}: default {on_default}, fallback {on_fallback}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_schedule_compressed_stays_consistent_at_every_check() {
    let stack = Arc::new(spawn_stack().await);
    let _worker = stack.start_worker(&[("BREAKER_OPEN_MS", "100")]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posting = post_loop(stack.clone(), 8, Duration::from_millis(20), stop.clone());
    let started = common::time::now_ms();
    // docs/protocol.md §5 stages, 1 s each, delays scaled by 1/10: (default delay, failing), (fallback ...).
    let stages = [
        ((0, false), (0, false)),
        ((10, false), (0, false)),
        ((10, true), (0, false)),
        ((200, true), (100, true)),
        ((2, false), (2, false)),
        ((0, false), (500, false)),
    ];
    for ((dd, df), (fd, ff)) in stages {
        stack.default.set_delay(dd);
        stack.default.set_failure(df);
        stack.fallback.set_delay(fd);
        stack.fallback.set_failure(ff);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The checker: our summary equals each processor's for [start, now - 1 s].
        let to = common::time::now_ms() - 1_000;
        let window = common::store::Window {
            from: Some(started),
            to: Some(to),
        };
        let ours = stack.store.summary(window).await.unwrap();
        let sd = stack.default.summary(Some(started), Some(to));
        let sf = stack.fallback.summary(Some(started), Some(to));
        assert_eq!(
            ours.default.requests, sd.total_requests,
            "default at stage {dd}/{df}"
        );
        assert_eq!(
            ours.fallback.requests, sf.total_requests,
            "fallback at stage {fd}/{ff}"
        );
        assert_eq!(ours.default.cents, sd.total_cents as i128);
        assert_eq!(ours.fallback.cents, sf.total_cents as i128);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let accepted = posting.await.unwrap().accepted;
    // Traffic in every stage is what the checks above were about; how much is the
    // machine's business.
    assert!(!accepted.is_empty(), "no payment posted");
    assert_exactly_once(&stack, &accepted).await;
    // The default fee-aware policy held payments for default rather than pay 15 %.
    assert_eq!(stack.fallback.stored_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_mid_batch_loses_and_doubles_nothing() {
    let stack = Arc::new(spawn_stack().await);
    // Each call sits 200 ms in the processor: calls seen in flight just before the kill
    // are still in flight at the kill.
    stack.default.set_delay(200);
    let fast_claim = [("WORKER_CLAIM_IDLE_MS", "500")];
    let mut child = stack.spawn_worker_process(&fast_claim);
    let ids: Vec<Uuid> = (0..2_000).map(|_| Uuid::new_v4()).collect();
    crate::helpers::post_all(&stack, &ids, "19.90", ids.len() / 100).await;
    // Let the child get well into the backlog, then kill it without warning while calls
    // are in flight at the processor.
    let deadline = Instant::now() + Duration::from_secs(60);
    let in_flight_at_kill = loop {
        let in_flight = stack.default.payments_in_flight();
        if stack.default.stored_count() >= 300 && in_flight > 0 {
            break in_flight;
        }
        assert!(
            Instant::now() < deadline,
            "the worker process made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Those calls take 200 ms at the processor: they are still in flight now.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(in_flight_at_kill > 0);
    let (done_at_kill, _, _, _) = stack.totals().await;
    assert!(done_at_kill < 2_000, "killed too late to prove anything");
    // Its entries are pending on the dead consumer: claimed after the idle time.
    assert!(
        stack.store.group_info().await.unwrap().0 > 0,
        "nothing was pending at the kill"
    );

    let _survivor = stack.start_worker(&fast_claim).await;
    assert_exactly_once(&stack, &ids).await;
    assert_eq!(stack.totals().await.0 + stack.totals().await.2, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_no_accepted_payment() {
    // Redis on a Unix socket in its own directory: its restart cannot lose its address to
    // a parallel test.
    let mut stack = spawn_stack_with(StackOptions {
        aof: true,
        unix_socket: true,
        ..StackOptions::default()
    })
    .await;
    let _worker = stack.start_worker(&[]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The stack moves into an Arc for the posters; the Redis server stays here.
    let redis = std::mem::replace(&mut stack.redis, common::testing::RedisServer::start());
    let mut redis = redis;
    let stack = Arc::new(stack);
    let posting = post_loop(stack.clone(), 4, Duration::from_millis(5), stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    // Down until the gateway has refused for real (503: connection refused, nothing
    // written) a few times — resets and timeouts of the kill instant do not count.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut probes_refused = Vec::new();
    while probes_refused.len() < 3 {
        let id = Uuid::new_v4();
        if stack.post(&id, "1.00").await == 503 {
            probes_refused.push(id);
        }
        assert!(
            Instant::now() < deadline,
            "Redis is down but nothing was refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let posted = posting.await.unwrap();
    assert!(!posted.accepted.is_empty());
    // Every 2xx payment survived the crash (AOF, fsync always) and is processed exactly
    // once; no 503 was charged.
    for id in &posted.accepted {
        let status = stack.status(id).await;
        assert!(
            status["status"].is_string(),
            "{id} accepted but lost: {status}"
        );
    }
    assert_exactly_once(&stack, &posted.accepted).await;
    for id in posted.refused.iter().chain(&probes_refused) {
        assert!(stack.default.stored(id).is_none() && stack.fallback.stored(id).is_none());
        assert_eq!(
            stack
                .client
                .get(stack.url(&format!("/payments/{id}")))
                .send()
                .await
                .unwrap()
                .status(),
            404,
            "{id} answered 503 but known"
        );
    }
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_poller_hands_over_without_a_429() {
    let window = Duration::from_millis(300);
    let stack = spawn_stack_with(StackOptions {
        default: SimConfig {
            health_window: window,
            ..SimConfig::default_processor()
        },
        fallback: SimConfig {
            health_window: window,
            ..SimConfig::fallback_processor()
        },
        ..StackOptions::default()
    })
    .await;
    let health = [
        ("HEALTH_POLL_MS", "320"),
        ("HEALTH_REFRESH_MS", "20"),
        ("HEALTH_TIMEOUT_MS", "1000"),
    ];
    let first = stack.start_worker(&health).await;
    let second = stack.start_worker(&health).await;
    let lease_key = stack
        .store
        .keys()
        .health_lease(common::payment::Processor::Default);
    let holder = || async {
        let mut conn = stack.store.connection();
        let h: Option<String> = redis::cmd("GET")
            .arg(&lease_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        h
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let leader = holder().await.unwrap();
    let polls_before = stack.default.health_calls();
    assert!(polls_before >= 2, "the leader polls every window");
    let (dead, alive) = if leader == first.consumer() {
        (first, second)
    } else {
        (second, first)
    };
    let alive_name = alive.consumer().to_string();
    dead.abort();
    let killed_at = Instant::now();
    let mut polls_at_takeover = 0;
    while holder().await.as_deref() != Some(alive_name.as_str()) {
        assert!(killed_at.elapsed() < Duration::from_secs(5), "no takeover");
        tokio::time::sleep(Duration::from_millis(10)).await;
        polls_at_takeover = stack.default.health_calls();
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        stack.default.health_calls() > polls_at_takeover.max(polls_before),
        "the new leader polls"
    );
    assert_eq!(stack.default.health_429s(), 0);
    assert_eq!(stack.fallback.health_429s(), 0);
    // The published report is fresh.
    let reports = stack.store.read_health().await.unwrap();
    let age = common::time::now_ms() - reports[0].unwrap().observed_at;
    assert!(age < 2_000, "report {age} ms old");
    drop(alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_show_as_failed_and_can_be_redriven_once() {
    let stack = spawn_stack().await;
    stack.default.set_failure(true);
    stack.fallback.set_failure(true);
    let worker = stack
        .start_worker(&[
            ("MAX_ATTEMPTS", "3"),
            ("ROUTING_POLICY", "cheapest-available"),
        ])
        .await;
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "7.00").await, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while stack.store.dead_letter_count().await.unwrap() < 10 {
        assert!(Instant::now() < deadline, "payments were not dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &ids {
        let status = stack.status(id).await;
        assert_eq!(status["status"], "failed", "{status}");
        assert!(status["reason"]
            .as_str()
            .unwrap()
            .contains("definite failures"));
    }
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
    assert_eq!(stack.totals().await, (0, 0, 0, 0));

    // Processors back: the re-drive command re-queues them, each is processed once.
    stack.default.set_failure(false);
    stack.fallback.set_failure(false);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_paystream-worker"))
        .arg("redrive-dead-letters")
        .envs(stack.worker_env(&[]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-queued 10"));
    assert_exactly_once(&stack, &ids).await;
    assert_eq!(stack.store.dead_letter_count().await.unwrap(), 0);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_payments_then_exits() {
    let stack = Arc::new(spawn_stack().await);
    stack.default.set_delay(300);
    let mut child = stack.spawn_worker_process(&[("WORKER_CLAIM_IDLE_MS", "500")]);
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    // Wait until calls are in flight (the processor has them, none answered yet).
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.default.payment_posts() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight_at_term = stack.default.payments_in_flight();
    assert!(in_flight_at_term > 0, "no call in flight at SIGTERM");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "worker exited with {exit}");
    // Every call that was in flight at SIGTERM was answered and recorded before the exit:
    // whatever the processor holds, we hold, exactly once, with its requestedAt.
    assert_eq!(stack.default.payments_in_flight(), 0);
    let stored: Vec<&Uuid> = ids
        .iter()
        .filter(|id| stack.default.stored(id).is_some())
        .collect();
    assert!(stored.len() >= in_flight_at_term, "{} stored", stored.len());
    let (recorded, _, _, _) = stack.totals().await;
    assert_eq!(
        recorded as usize,
        stored.len(),
        "stored but not recorded at exit"
    );
    for id in stored {
        let status = stack.status(id).await;
        assert_eq!(status["status"], "processed", "{status}");
        assert_eq!(
            status["requestedAt"],
            stack.default.stored(id).unwrap().requested_at
        );
    }
    // The rest is still pending in Redis and another worker finishes it exactly once.
    let _next = stack.start_worker(&[("WORKER_CLAIM_IDLE_MS", "500")]).await;
    assert_exactly_once(&stack, &ids).await;
}

/// A crash point inside a group commit: records wait in the worker's batch while Redis is
/// frozen (processors keep storing), then the worker is killed. Each payment whose record
/// was still buffered, or in a script call that never ran, stays pending and is counted
/// once after the reclaim (422 → lookup → record); one whose script ran is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_group_commit_counts_each_payment_once() {
    let stack = Arc::new(spawn_stack().await);
    stack.default.set_delay(50);
    let fast_claim = [("WORKER_CLAIM_IDLE_MS", "500")];
    let mut child = stack.spawn_worker_process(&fast_claim);
    let ids: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    crate::helpers::post_all(&stack, &ids, "19.90", 12).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.default.stored_count() < 100 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Freeze Redis: every call in flight at the processor finishes, and its record joins
    // the group commit that cannot reach Redis.
    let redis_pid = stack.redis.pid().unwrap();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([format!("-{sig}"), redis_pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while stack.default.payments_in_flight() > 0 {
        assert!(Instant::now() < deadline, "calls did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stored_at_kill = stack.default.stored_count();
    child.kill().unwrap();
    child.wait().unwrap();
    signal("CONT");
    // Stored at the processor but not recorded by us: the records that were in the batch.
    let (recorded, _, _, _) = stack.totals().await;
    assert!(
        (recorded as usize) < stored_at_kill,
        "no record was waiting at the kill ({recorded} recorded, {stored_at_kill} stored)"
    );
    let _survivor = stack.start_worker(&fast_claim).await;
    assert_exactly_once(&stack, &ids).await;
    assert_eq!(
        stack.totals().await.0 + stack.totals().await.2,
        ids.len() as u64
    );
}

/// Sets Redis' `maxmemory` (0 = none) through the stack's own connection.
async fn set_maxmemory(stack: &Stack, bytes: u64) {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET").arg("maxmemory").arg(bytes);
    let _: String = stack.store.query(&cmd).await.unwrap();
}

/// Redis memory fills while payments arrive and default is failing. Accepts are shed (`503`,
/// never `504`) from the high-water mark on, reads keep answering, no payment is sent to a
/// processor while nothing could be recorded, a worker started meanwhile comes up, and once
/// memory is freed and default recovers every accepted payment is processed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_sheds_accepts_keeps_reads_and_sends_nothing_it_cannot_record() {
    let stack = Arc::new(spawn_stack().await);
    stack.default.set_failure(true);
    let policy = [("ROUTING_POLICY", "default-only")];
    let _worker = stack.start_worker(&policy).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let posters = post_loop(stack.clone(), 4, Duration::from_millis(2), stop.clone());
    let early = Uuid::new_v4();
    assert_eq!(stack.post(&early, "1.00").await, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Above the high-water mark (90 %), below full: the gateway sheds once it has read it.
    let (used, _) = stack.store.memory().await.unwrap();
    set_maxmemory(&stack, used * 100 / 95).await;
    let mut refused = false;
    for _ in 0..100 {
        match stack.post(&Uuid::new_v4(), "1.00").await {
            503 => {
                refused = true;
                break;
            }
            202 | 200 => {}
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "accepts not shed above the high-water mark");

    // Full: every write that grows state is refused, a begin included.
    set_maxmemory(&stack, used / 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts_before = stack.default.payment_posts() + stack.fallback.payment_posts();
    let second = stack.start_worker(&policy);
    let _second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("a worker starts while Redis memory is full");
    let summary = stack
        .client
        .get(stack.url("/payments-summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(summary.status(), 200, "the summary is readable");
    // A retry of a payment Redis holds is answered as such, never "not accepted".
    assert_eq!(stack.post(&early, "1.00").await, 200, "replay");
    assert_eq!(stack.post(&early, "2.00").await, 409, "conflict");
    let accepted = stack.accepted_in_redis().await;
    assert!(accepted > 0);
    // Nothing is sent while memory is full: `begin` is refused, and the workers, which
    // read Redis' memory every 250 ms, send no first attempt without it meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        stack.default.payment_posts() + stack.fallback.payment_posts(),
        posts_before,
        "payments sent to a processor while nothing could be recorded"
    );

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let posted = posters.await.unwrap();
    assert_eq!(posted.unknown, 0, "a POST answered neither 2xx nor 503");
    assert!(!posted.refused.is_empty(), "no POST was refused");
    set_maxmemory(&stack, 0).await;
    stack.default.set_failure(false);
    let mut accepted = posted.accepted;
    accepted.push(early);
    assert_exactly_once(&stack, &accepted).await;
    assert_eq!(stack.post(&Uuid::new_v4(), "1.00").await, 202);
}

/// A purge holds its flag while a worker has its processor's "stored" in hand: `record.lua`
/// answers `TRYAGAIN`, and the worker records again (never starts the payment over from
/// `begin`, which would send it again after every back-off for as long as the purge runs).
/// The processor gets one POST, and the payment is recorded once the purge ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_refused_during_a_purge_is_retried_without_sending_again() {
    let stack = spawn_stack().await;
    let _worker = stack
        .start_worker(&[("ROUTING_POLICY", "default-only")])
        .await;
    let run = stack.store.purge_start().await.unwrap();
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, "1.00").await, 202);
    crate::helpers::wait_for(Duration::from_secs(10), "the payment stored", || async {
        stack.default.stored(&id).is_some()
    })
    .await;
    // Several of the worker's back-offs (50 ms doubling) while the flag is held.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let posts = || stack.default.payment_posts() + stack.fallback.payment_posts();
    assert_eq!(posts(), 1, "the payment sent again while the purge ran");
    assert_eq!(stack.totals().await.0, 0, "recorded while the purge ran");
    stack.store.purge_sweep(&run).await.unwrap();
    stack.store.purge_finish(&run).await.unwrap();
    stack.wait_processed(1, Duration::from_secs(10)).await;
    assert_eq!(stack.status(&id).await["status"], "processed");
    assert_eq!(stack.totals().await.0, 1);
    assert_eq!(posts(), 1);
}
