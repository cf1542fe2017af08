//! Exactly once without timing luck: each test builds one interleaving that a review found
//! (a worker frozen between pinning and sending, absence judged too early because of a
//! processor's queue or a wrong clock, a proxy's 502 after the store, a request delivered
//! long after its client gave up, a 503 that was charged, a 422 the processor cannot show,
//! an entry nobody can decode) with real processes, and checks that no payment is stored by
//! both processors, none is lost, and our summary equals theirs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_tests::sim::SimConfig;
use uuid::Uuid;

use crate::helpers::{spawn_stack, spawn_stack_with, wait_for, Stack, StackOptions};
use crate::relay::{all_delivered, worker_behind_relay};

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Whether the process is stopped (SIGSTOP): state `T` in `/proc/<pid>/stat`.
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "T"))
        })
        .unwrap_or(false)
}

/// Publishes a health report for `processor` as the health poller would.
async fn publish_health(
    stack: &Stack,
    processor: common::payment::Processor,
    failing: bool,
    min_response_ms: u64,
) {
    let report = common::store::HealthReport {
        failing,
        min_response_ms,
        observed_at: common::time::now_ms(),
    };
    stack.store.publish_health(processor, report).await.unwrap();
}

/// Stores `id` (3.00) at the default processor directly, with a `requestedAt` of 2025 — a
/// payment we never sent (another client's, or ours before its status expired).
async fn stored_at_default_long_ago(stack: &Stack, id: &Uuid) {
    let answer = stack
        .client
        .post(format!("{}/payments", stack.default.url()))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"correlationId":"{id}","amount":3.00,"requestedAt":"2025-07-15T12:00:00.000Z"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// Each id stored by exactly one processor, and our totals equal theirs.
async fn assert_each_stored_once(stack: &Stack, ids: &[Uuid]) {
    for id in ids {
        let (d, f) = (
            stack.default.stored(id).is_some(),
            stack.fallback.stored(id).is_some(),
        );
        assert!(d ^ f, "{id}: stored by default {d}, by fallback {f}");
    }
    let (d, dc, f, fc) = stack.totals().await;
    assert_eq!(d as usize, stack.default.stored_count(), "default count");
    assert_eq!(f as usize, stack.fallback.stored_count(), "fallback count");
    assert_eq!(dc, stack.default.summary(None, None).total_cents as i128);
    assert_eq!(fc, stack.fallback.summary(None, None).total_cents as i128);
}

/// Settings of the frozen-worker tests: a claim idle time of 600 ms (send window 200 ms),
/// short timeouts, and a breaker that opens on the first failure.
const FROZEN_SETTINGS: [(&str, &str); 5] = [
    ("WORKER_CLAIM_IDLE_MS", "600"),
    ("PROCESSOR_TIMEOUT_MS", "300"),
    ("AMBIGUITY_GRACE_MS", "200"),
    ("ROUTING_POLICY", "cheapest-available"),
    ("BREAKER_MIN_CALLS", "1"),
];

/// A stack whose accepts pin no first attempt: every attempt goes through `begin`.
async fn spawn_stack_begun() -> Stack {
    spawn_stack_with(StackOptions {
        first_attempt_ms: Some(0),
        ..StackOptions::default()
    })
    .await
}

/// Worker A as a child process (with `extra` settings) that stops itself with SIGSTOP
/// right before its first send; posts one payment and waits until A froze with it pinned
/// (by its `begin`: `processing`; or by the accept, A on the first attempt: `queued`).
async fn a_worker_frozen_before_its_send(
    stack: &Stack,
    extra: &[(&str, &str)],
    amount: &str,
    pinned_as: &str,
) -> (std::process::Child, Uuid) {
    let frozen = stack.spawn_worker_process(
        &[
            &FROZEN_SETTINGS[..],
            &[("PAYSTREAM_TEST_STOP_BEFORE_SEND", "1")],
            extra,
        ]
        .concat(),
    );
    let pid = frozen.id();
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, amount).await, 202);
    wait_for(
        Duration::from_secs(30),
        "worker A to freeze before its send",
        || async { is_stopped(pid) },
    )
    .await;
    let status = stack.status(&id).await;
    assert_eq!(status["status"], pinned_as, "A pinned it");
    assert_eq!(status["attempts"], 1, "A pinned it");
    (frozen, id)
}

/// Worker A (with `extra` beyond the frozen-worker settings) freezes right before sending a
/// payment pinned to default (`pinned_as` its status then); default goes down; worker B
/// (`settings`) takes the entry over and stores it at fallback; default comes back and A
/// resumes, then stops. A must not have sent it. Returns the payment.
async fn a_frozen_worker_loses_its_payment_to_fallback(
    stack: &Stack,
    extra: &[(&str, &str)],
    settings: &[(&str, &str)],
    amount: &str,
    pinned_as: &str,
) -> Uuid {
    let (mut frozen, id) = a_worker_frozen_before_its_send(stack, extra, amount, pinned_as).await;
    let pid = frozen.id();
    assert_eq!(stack.default.payment_posts(), 0, "A froze before sending");

    stack.default.set_failure(true);
    let rescuer = stack.start_worker(settings).await;
    wait_for(
        Duration::from_secs(60),
        "B to store it at fallback",
        || async { stack.fallback.stored(&id).is_some() },
    )
    .await;
    stack.wait_processed(1, Duration::from_secs(30)).await;

    // Default is back; A wakes up where it froze, then is asked to stop: whatever it was
    // going to do with that payment, it has done by the time it exits.
    stack.default.set_failure(false);
    signal(pid, "CONT");
    signal(pid, "TERM");
    let exit = tokio::task::spawn_blocking(move || frozen.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "worker A exited with {exit}");
    rescuer.shutdown().await;

    assert!(
        stack.default.stored(&id).is_none(),
        "the frozen worker sent after losing the entry: stored by both processors"
    );
    assert_each_stored_once(stack, &[id]).await;
    id
}

/// Worker A pins a payment to default (its `begin`) and freezes (SIGSTOP) right before its
/// send, longer than the claim idle time. Worker B takes the entry over, learns default does
/// not hold it, and moves it to fallback during a default outage. A wakes up with default
/// healthy again: it must not send (its send window passed, and `begin` says the entry is
/// no longer its own), or the payment is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_between_pin_and_send_never_sends_after_losing_the_entry() {
    let stack = spawn_stack_begun().await;
    a_frozen_worker_loses_its_payment_to_fallback(
        &stack,
        &[],
        &FROZEN_SETTINGS,
        "12.34",
        "processing",
    )
    .await;
    assert_eq!(stack.totals().await, (0, 0, 1, 1234));
}

/// The first attempt the accept pinned. Worker A reads the entry first and freezes right
/// before sending that attempt without `begin`; B takes it over, waits out the bound the
/// accept set, and moves it. A's window (the send window from the acceptance, on Redis'
/// clock) has passed when it wakes, so it sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_frozen_on_its_first_attempt_never_sends_it_after_losing_the_entry() {
    // The first attempt's bound: what these workers need (window 200 ms, timeout 300 ms,
    // no late delivery, grace up to 1 s) and not much more, so B waits briefly.
    let stack = spawn_stack_with(StackOptions {
        first_attempt_ms: Some(2_000),
        ..StackOptions::default()
    })
    .await;
    let no_late = [("LATE_DELIVERY_MS", "0")];
    let settings = [&FROZEN_SETTINGS[..], &no_late].concat();
    let id = a_frozen_worker_loses_its_payment_to_fallback(
        &stack, &no_late, &settings, "7.50", "queued",
    )
    .await;
    let attempts = stack.status(&id).await["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "B began attempts of its own: {attempts}");
    assert_eq!(stack.totals().await, (0, 0, 1, 750));
}

/// The fence itself. As in the test of a worker frozen between pin and send, but when A
/// wakes up the payment is not done: B owns the entry and keeps retrying through an outage
/// of both processors. A's send window has passed, so it confirms ownership again: `begin` answers "lost" and A's task stops
/// without sending; the payment is stored once when the processors come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_that_wakes_while_another_owns_the_entry_stops_without_sending() {
    let stack = spawn_stack_begun().await;
    let settings = FROZEN_SETTINGS;
    let metrics_port = common::testing::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let (mut frozen, id) = a_worker_frozen_before_its_send(
        &stack,
        &[("WORKER_METRICS_ADDR", metrics_addr.as_str())],
        "2.00",
        "processing",
    )
    .await;
    let pid = frozen.id();
    stack.default.set_failure(true);
    stack.fallback.set_failure(true);
    let rescuer = stack.start_worker(&settings).await;
    // B owns the entry once it has tried a processor itself.
    wait_for(Duration::from_secs(30), "B to try the payment", || async {
        stack.default.payment_failures() + stack.fallback.payment_failures() > 0
    })
    .await;
    signal(pid, "CONT");
    let lost = || async {
        let text = stack
            .client
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("paystream_worker_entries_lost_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
    };
    wait_for(
        Duration::from_secs(30),
        "A's task to stop as lost",
        || async { lost().await.is_some_and(|n| n >= 1.0) },
    )
    .await;
    stack.default.set_failure(false);
    stack.fallback.set_failure(false);
    stack.wait_processed(1, Duration::from_secs(60)).await;
    signal(pid, "TERM");
    let exit = tokio::task::spawn_blocking(move || frozen.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "worker A exited with {exit}");
    rescuer.shutdown().await;
    assert_each_stored_once(&stack, &[id]).await;
}

/// The queue. A processor with few slots queues requests (docs/protocol.md §3), and a queued
/// request runs its whole delay once it gets a slot: it can be stored up to queue wait +
/// delay after it arrived — here 2 × 1.5 s, beyond the old "delay + 1 s" grace counted
/// from the send. A 404 before that proves nothing; moving the payment then stores it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absence_is_only_judged_after_the_queue_wait_and_the_delay() {
    let stack = spawn_stack_with(StackOptions {
        default: SimConfig {
            max_concurrent: 2,
            max_queued: 2,
            initial_delay_ms: 1_500,
            health_window: Duration::from_millis(200),
            ..SimConfig::default_processor()
        },
        ..StackOptions::default()
    })
    .await;
    let worker = stack
        .start_worker(&[
            ("PROCESSOR_TIMEOUT_MS", "200"),
            ("AMBIGUITY_GRACE_MS", "100"),
            ("AMBIGUITY_POLL_MS", "2000"),
            ("ROUTING_POLICY", "cheapest-available"),
            // The first timeouts open default's breaker for the whole test: a payment
            // whose absence looks proven goes to fallback.
            ("BREAKER_MIN_CALLS", "1"),
            ("BREAKER_OPEN_MS", "60000"),
            ("HEALTH_POLL_MS", "250"),
            ("HEALTH_REFRESH_MS", "20"),
        ])
        .await;
    // The grace follows the processors' health reports: wait until the worker applies
    // default's (2 × 1.5 s + 1 s).
    wait_for(
        Duration::from_secs(30),
        "the worker to use default's report",
        || async { worker.grace(common::payment::Processor::Default) == Duration::from_secs(4) },
    )
    .await;
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let stack = Arc::new(stack);
    crate::helpers::post_all(&stack, &ids, "5.00", 4).await;
    stack.wait_processed(4, Duration::from_secs(60)).await;
    // Two were queued behind the first two: stored ~3 s after they arrived.
    wait_for(
        Duration::from_secs(30),
        "the queued calls to finish",
        || async { stack.default.payments_in_flight() == 0 },
    )
    .await;
    assert_each_stored_once(&stack, &ids).await;
    // At least one waited in the queue behind the first two (the case that matters); a
    // payment read after the first timeout opened the breaker may have gone to fallback.
    assert!(
        stack.default.stored_count() >= 3,
        "{}",
        stack.default.stored_count()
    );
}

/// The clocks. Worker A's wall clock is a minute behind. It sends a payment to a
/// slow default processor and dies (kill -9) with the call in flight. Default is then
/// reported failing, so worker B wants fallback for the payment it takes over: a rule
/// computed from A's clock would think the grace long past, see a 404 while default is
/// still in its delay, and move the payment. Every bound comes from Redis' clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_wrong_clock_cannot_make_absence_look_proven() {
    let stack = spawn_stack_with(StackOptions {
        default: SimConfig {
            initial_delay_ms: 2_000,
            ..SimConfig::default_processor()
        },
        ..StackOptions::default()
    })
    .await;
    let settings = [
        ("WORKER_CLAIM_IDLE_MS", "300"),
        ("PROCESSOR_TIMEOUT_MS", "5000"),
        ("AMBIGUITY_GRACE_MS", "2500"),
        ("AMBIGUITY_POLL_MS", "50"),
        ("ROUTING_POLICY", "cheapest-available"),
        ("HEALTH_POLL_MS", "600000"),
    ];
    let mut skewed = stack.spawn_worker_process(
        &[&settings[..], &[("PAYSTREAM_TEST_CLOCK_SKEW_MS", "-60000")]].concat(),
    );
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, "7.00").await, 202);
    wait_for(
        Duration::from_secs(30),
        "A's call to be in flight",
        || async { stack.default.payments_in_flight() == 1 },
    )
    .await;
    skewed.kill().unwrap();
    skewed.wait().unwrap();
    // Default reported failing (as a health poll during an outage would): B's breaker
    // opens for it and B wants fallback.
    publish_health(&stack, common::payment::Processor::Default, true, 2_000).await;
    let _rescuer = stack.start_worker(&settings).await;
    stack.wait_processed(1, Duration::from_secs(60)).await;
    wait_for(Duration::from_secs(30), "A's call to finish", || async {
        stack.default.payments_in_flight() == 0
    })
    .await;
    assert!(stack.default.stored(&id).is_some(), "A's call was stored");
    assert_each_stored_once(&stack, &[id]).await;
    assert_eq!(stack.totals().await, (1, 700, 0, 0));
    assert_eq!(stack.fallback.payment_posts(), 0, "never sent to fallback");
    // B wanted fallback all along (nobody replaced the failing report): only the bound on
    // Redis' clock kept the payment where it was.
    assert!(stack.store.read_health().await.unwrap()[0].unwrap().failing);
}

/// Redis freezes under load: the gateway's calls time out after the script may
/// have been sent (a frozen Redis still completes TCP handshakes, so nothing is refused).
/// Those answers must not claim "not accepted" (503, which means nothing was written):
/// they are 504 "outcome unknown", and some of them are charged once Redis resumes. (The
/// real 503s — Redis refusing connections — are checked never to be charged in
/// `faults::a_redis_restart_under_load_loses_no_accepted_payment`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_gets_504_outcome_unknown_never_a_503_that_charges() {
    let stack = Arc::new(spawn_stack().await);
    let _worker = stack.start_worker(&[]).await;
    let redis_pid = stack.redis.pid().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(Uuid, u16)>>> = Arc::default();
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stack, stop, answers) = (stack.clone(), stop.clone(), answers.clone());
        posters.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = Uuid::new_v4();
                let status = stack
                    .client
                    .post(stack.url("/payments"))
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"correlationId":"{id}","amount":19.90}}"#))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                answers.lock().unwrap().push((id, status));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    let count_of = |status: u16| {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| *s == status)
            .count()
    };
    wait_for(Duration::from_secs(30), "payments accepted", || async {
        count_of(202) > 20
    })
    .await;
    signal(redis_pid, "STOP");
    wait_for(
        Duration::from_secs(30),
        "504s while Redis is frozen",
        || async { count_of(504) >= 4 },
    )
    .await;
    signal(redis_pid, "CONT");
    let before = count_of(202);
    wait_for(
        Duration::from_secs(30),
        "accepts again after the freeze",
        || async { count_of(202) > before + 20 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = posters.join_next().await {
        r.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let count = |s: u16| answers.iter().filter(|(_, status)| *status == s).count();
    assert!(
        count(504) > 0,
        "the freeze produced no timeout: {answers:?}"
    );
    assert_eq!(count(503), 0, "a frozen Redis refuses nothing: {answers:?}");
    assert!(
        answers.iter().all(|(_, s)| [202, 504].contains(s)),
        "{answers:?}"
    );
    // Everything Redis holds gets processed; then compare.
    let in_redis = stack.accepted_in_redis().await as u64;
    stack
        .wait_processed(in_redis, Duration::from_secs(60))
        .await;
    for (id, status) in &answers {
        let stored = stack.default.stored(id).is_some() || stack.fallback.stored(id).is_some();
        match status {
            202 => assert!(stored, "{id} accepted but never processed"),
            503 => assert!(!stored, "{id} answered 503 but charged"),
            _ => {}
        }
    }
    let all: Vec<Uuid> = answers
        .iter()
        .filter(|(id, _)| stack.default.stored(id).is_some() || stack.fallback.stored(id).is_some())
        .map(|(id, _)| *id)
        .collect();
    assert_each_stored_once(&stack, &all).await;
    eprintln!(
        "answers: {} × 202, {} × 503, {} × 504",
        count(202),
        count(503),
        count(504)
    );
}

/// A proxy in front of the default processor answers 502 after the processor
/// stored the payment (the answer got lost on the way back). A 502 is not "not stored":
/// the payment stays pinned and the lookup finds it; moving it to fallback would charge
/// it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_after_the_store_is_ambiguous_not_a_failure() {
    let stack = spawn_stack().await;
    stack.default.set_status_after_store(502);
    let _worker = stack
        .start_worker(&[
            ("ROUTING_POLICY", "cheapest-available"),
            ("BREAKER_MIN_CALLS", "1"),
            ("AMBIGUITY_GRACE_MS", "300"),
            ("AMBIGUITY_POLL_MS", "20"),
        ])
        .await;
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    stack.wait_processed(20, Duration::from_secs(60)).await;
    // The first 502s open default's breaker, so later payments go straight to fallback;
    // those that reached default stay there.
    assert!(stack.default.stored_count() > 0, "no call reached default");
    assert_each_stored_once(&stack, &ids).await;
    for id in &ids {
        if stack.default.stored(id).is_some() {
            assert_eq!(stack.status(id).await["processor"], "default");
        }
    }
}

/// docs/protocol.md §3's other way out of an ambiguous outcome: a retry on the processor the payment is
/// pinned to. A proxy in front of default answers `502` without forwarding anything, so the
/// first payment's outcome is unknown and default does not have it; its safe time is a minute
/// away (`AMBIGUITY_GRACE_MS`). Once default takes calls again (the second payment succeeds
/// there), the first is sent to default again and stored once — without the retry it would
/// wait out the minute before the lookup's 404 counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unforwarded_call_is_retried_on_its_processor_once_that_answers_again() {
    let stack = spawn_stack().await;
    stack.default.set_status_unforwarded(502);
    let _worker = stack
        .start_worker(&[
            ("ROUTING_POLICY", "default-only"),
            ("AMBIGUITY_GRACE_MS", "60000"),
            ("AMBIGUITY_POLL_MS", "20"),
        ])
        .await;
    let first = Uuid::new_v4();
    assert_eq!(stack.post(&first, "1.00").await, 202);
    wait_for(Duration::from_secs(20), "default answered 502", || async {
        stack.default.payment_posts() >= 1
    })
    .await;
    stack.default.set_status_unforwarded(0);
    let second = Uuid::new_v4();
    assert_eq!(stack.post(&second, "1.00").await, 202);
    stack.wait_processed(2, Duration::from_secs(30)).await;
    assert_each_stored_once(&stack, &[first, second]).await;
    assert_eq!(stack.status(&first).await["processor"], "default");
    assert_eq!(stack.fallback.stored_count(), 0);
}

/// The processor answers 422 ("already stored") but its lookup keeps saying 404.
/// The payment must neither retry for ever nor move to the other processor: after
/// MAX_ATTEMPTS it is dead-lettered with the reason, still pinned where it may be held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_the_processor_cannot_show_is_dead_lettered_after_max_attempts() {
    let stack = spawn_stack().await;
    let id = Uuid::new_v4();
    // Already stored at default (by a client that went around us), lookups broken.
    stored_at_default_long_ago(&stack, &id).await;
    stack.default.set_lookups_absent(true);
    let _worker = stack
        .start_worker(&[
            ("MAX_ATTEMPTS", "3"),
            ("ROUTING_POLICY", "cheapest-available"),
            ("AMBIGUITY_GRACE_MS", "100"),
            ("AMBIGUITY_POLL_MS", "20"),
        ])
        .await;
    assert_eq!(stack.post(&id, "3.00").await, 202);
    wait_for(
        Duration::from_secs(60),
        "the payment to be dead-lettered",
        || async { stack.status(&id).await["status"] == "failed" },
    )
    .await;
    let status = stack.status(&id).await;
    assert!(
        status["reason"].as_str().unwrap().contains("422"),
        "{status}"
    );
    assert_eq!(stack.store.dead_letter_count().await.unwrap(), 1);
    assert_eq!(stack.fallback.payment_posts(), 0, "never moved to fallback");
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
}

/// An id used again after its status expired (`PAYMENT_RETENTION`) is a new payment to us,
/// but the processor that stored the old one answers 422 and shows the old `requestedAt`.
/// Recording that would count the old payment twice; sending elsewhere would charge the id
/// twice. It is dead-lettered with the reason, its pin kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_reused_after_its_status_expired_is_dead_lettered_not_counted_twice() {
    let stack = spawn_stack().await;
    let id = Uuid::new_v4();
    stored_at_default_long_ago(&stack, &id).await;
    let _worker = stack
        .start_worker(&[("ROUTING_POLICY", "cheapest-available")])
        .await;
    assert_eq!(stack.post(&id, "3.00").await, 202);
    wait_for(
        Duration::from_secs(30),
        "the payment to be dead-lettered",
        || async { stack.status(&id).await["status"] == "failed" },
    )
    .await;
    let status = stack.status(&id).await;
    assert!(
        status["reason"].as_str().unwrap().contains("already used"),
        "{status}"
    );
    assert_eq!(
        stack.totals().await,
        (0, 0, 0, 0),
        "the old payment is not counted"
    );
    assert_eq!(stack.fallback.payment_posts(), 0, "never charged elsewhere");
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
}

/// Stream entries nobody can decode are dead-lettered with the reason (and the
/// payment they name shows "failed"), never acknowledged silently with a status that says
/// "queued" for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_entries_are_dead_lettered_with_a_reason() {
    let stack = spawn_stack().await;
    stack.store.ensure_group().await.unwrap();
    let id = Uuid::new_v4();
    let keys = stack.store.keys().clone();
    let payment_id: common::payment::PaymentId = id.to_string().parse().unwrap();
    let mut conn = stack.store.connection();
    // A status as the gateway writes it, and an entry whose amount is garbage; plus an
    // entry naming no payment at all.
    let _: () = redis::cmd("HSET")
        .arg(keys.payment(&payment_id))
        .arg(&["amt", "500", "st", "queued", "att", "0"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(keys.stream())
        .arg("*")
        .arg(&["id", &id.to_string(), "amt", "five"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(keys.stream())
        .arg("*")
        .arg(&["junk", "1"])
        .query_async(&mut conn)
        .await
        .unwrap();
    // A stray copy naming a live payment that has its own good entry, and one naming a
    // payment nobody accepted: only the entries are dead-lettered, the live payment is
    // processed as usual.
    let live = Uuid::new_v4();
    assert_eq!(stack.post(&live, "4.00").await, 202);
    for named in [live, Uuid::new_v4()] {
        let _: String = redis::cmd("XADD")
            .arg(keys.stream())
            .arg("*")
            .arg(&["id", &named.to_string(), "amt", "-3"])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _worker = stack.start_worker(&[]).await;
    wait_for(
        Duration::from_secs(30),
        "four entries dead-lettered",
        || async { stack.store.dead_letter_count().await.unwrap() == 4 },
    )
    .await;
    stack.wait_processed(1, Duration::from_secs(30)).await;
    let status = stack.status(&id).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(status["reason"].as_str().unwrap().contains("undecodable"));
    assert_eq!(stack.status(&live).await["status"], "processed");
    assert_each_stored_once(&stack, &[live]).await;
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
    assert_eq!(
        stack.store.group_info().await.unwrap().0,
        0,
        "nothing pending"
    );
    // The re-drive re-queues what names a failed payment and keeps what names none.
    assert_eq!(stack.store.redrive_dead_letters(100).await.unwrap(), 1);
    let letters: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(keys.dead_letters())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters
        .iter()
        .all(|(_, fields)| fields.iter().any(|(k, _)| k == "entry")));
}

/// `AMBIGUITY_GRACE_MS` is what protects payments while a processor has no health
/// report; below a delay a processor already reported, the worker refuses to start.
#[tokio::test]
async fn a_grace_below_a_reported_delay_stops_the_worker_naming_the_variable() {
    let stack = spawn_stack().await;
    // A delay of 1.5 s needs a grace of 2 x 1.5 + 1 = 4 s (queue wait + delay + margin):
    // a floor of 3 s covers the delay but not the queue wait.
    publish_health(&stack, common::payment::Processor::Fallback, false, 1_500).await;
    let env = stack.worker_env(&[("AMBIGUITY_GRACE_MS", "3000")]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::testing::assert_config_error(
        env!("CARGO_BIN_EXE_paystream-worker"),
        &env,
        "AMBIGUITY_GRACE_MS",
    );
}

/// A request delivered long after the client gave up. A relay in front of default holds
/// every POST for 2 s during a short window (lookups pass straight through), as a buffering
/// proxy or a retransmitted orphan would: each call times out after 300 ms, default's
/// lookup says 404, and a 404 alone would soon let the payment move to fallback — then the
/// held copy is stored at default too. The move bound (`LATE_DELIVERY_MS`, 3 s here) keeps
/// the payment pinned until any such copy has arrived; the lookup finds it and records it
/// at default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_delivered_long_after_the_client_gave_up_is_never_charged_twice() {
    let stack = spawn_stack().await;
    let (relay, _worker) = worker_behind_relay(
        &stack,
        Duration::from_millis(2500),
        &[
            // A send window of 200 ms: without the move bound, a 404 would count ~0.7 s
            // after the send.
            ("WORKER_CLAIM_IDLE_MS", "600"),
            ("ROUTING_POLICY", "cheapest-available"),
            ("BREAKER_MIN_CALLS", "1"),
            ("PROCESSOR_TIMEOUT_MS", "300"),
            ("AMBIGUITY_GRACE_MS", "200"),
            ("AMBIGUITY_POLL_MS", "20"),
            ("LATE_DELIVERY_MS", "3000"),
        ],
    )
    .await;
    relay.hold(true);
    let ids: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    wait_for(Duration::from_secs(20), "a POST held", || async {
        relay.in_hold() > 0
    })
    .await;
    // Long enough for the first 404s to count without the move bound, so that payments
    // would move while default's breaker is open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.hold(false);
    stack.wait_processed(30, Duration::from_secs(60)).await;
    all_delivered(&relay, Duration::from_secs(20)).await;
    assert!(relay.delivered_late() > 0, "no POST was held");
    // Whatever the held copies did, they did it by now (the simulator has no delay).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_each_stored_once(&stack, &ids).await;
}

/// A proxy in front of default forwards each POST, the processor stores it, and the proxy
/// answers an error of its own: a mesh's `503`, an HTML `500`, a CDN's `520` / `524`, or a
/// closed connection. None of these is the processor's own failure answer, so none may
/// count as "not stored": the payment stays pinned to default, the lookup finds it there,
/// and it is recorded once — never moved to fallback and charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_error_after_forwarding_is_an_unknown_outcome_never_a_failure() {
    let stack = spawn_stack().await;
    let (relay, _worker) = worker_behind_relay(
        &stack,
        Duration::ZERO,
        &[
            ("ROUTING_POLICY", "cheapest-available"),
            ("BREAKER_MIN_CALLS", "1"),
            ("AMBIGUITY_GRACE_MS", "200"),
            ("AMBIGUITY_POLL_MS", "20"),
        ],
    )
    .await;
    let mut all = Vec::new();
    for answer in [Some(503), Some(500), Some(520), Some(524), None] {
        relay.answer_after_forwarding(answer);
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            assert_eq!(stack.post(id, "1.00").await, 202);
        }
        all.extend(ids);
        stack
            .wait_processed(all.len() as u64, Duration::from_secs(60))
            .await;
    }
    assert!(stack.default.stored_count() > 0, "no call reached default");
    assert_each_stored_once(&stack, &all).await;
    for id in &all {
        if stack.default.stored(id).is_some() {
            assert_eq!(stack.status(id).await["processor"], "default", "{id}");
        }
    }
}

/// A worker whose clock is 15 minutes behind Redis' sends payments whose answers a proxy
/// loses (`502` after the store). Each lookup finds its payment with that worker's
/// `requestedAt`, a quarter of an hour before Redis accepted it. It is still this payment (no
/// attempt of it sent an earlier `requestedAt`): recorded at default, never dead-lettered as
/// an id used before. No decision compares the worker's clock with Redis'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_clock_15_minutes_behind_records_what_the_processor_stored() {
    let stack = spawn_stack().await;
    stack.default.set_status_after_store(502);
    let mut behind = stack.spawn_worker_process(&[
        ("ROUTING_POLICY", "default-only"),
        ("AMBIGUITY_GRACE_MS", "300"),
        ("AMBIGUITY_POLL_MS", "20"),
        ("PAYSTREAM_TEST_CLOCK_SKEW_MS", "-900000"),
    ]);
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "2.00").await, 202);
    }
    let terminal = || async {
        let mut done = 0;
        for id in &ids {
            let status = stack.status(id).await;
            if status["status"] == "processed" || status["status"] == "failed" {
                done += 1;
            }
        }
        done == ids.len()
    };
    wait_for(Duration::from_secs(60), "every payment finished", terminal).await;
    behind.kill().unwrap();
    behind.wait().unwrap();
    for id in &ids {
        let status = stack.status(id).await;
        assert_eq!(status["status"], "processed", "{id}: {status}");
        assert_eq!(status["processor"], "default", "{id}");
    }
    assert_each_stored_once(&stack, &ids).await;
}

/// A router in front of default answers lookups with its own `404` page (the processor's
/// backend unregistered) while a payment's outcome there is unknown (a proxy's error after
/// the store). Only the processor's own `404` says it does not hold the payment: the payment
/// stays pinned, and once lookups reach default again it is found and recorded there —
/// never moved to fallback on a proxy's word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxys_404_on_a_lookup_is_not_an_absence() {
    let stack = spawn_stack().await;
    let (relay, _worker) = worker_behind_relay(
        &stack,
        Duration::ZERO,
        &[
            ("ROUTING_POLICY", "cheapest-available"),
            ("BREAKER_MIN_CALLS", "1"),
            ("WORKER_CLAIM_IDLE_MS", "600"),
            ("PROCESSOR_TIMEOUT_MS", "300"),
            ("AMBIGUITY_GRACE_MS", "100"),
            ("AMBIGUITY_POLL_MS", "20"),
            ("LATE_DELIVERY_MS", "0"),
            ("HEALTH_POLL_MS", "600000"),
        ],
    )
    .await;
    relay.answer_after_forwarding(Some(502));
    relay.answer_lookups(Some(404));
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    // The first ones reach default (stored, answered 502); the breaker then opens and the
    // rest go to fallback.
    wait_for(
        Duration::from_secs(20),
        "every payment stored somewhere",
        || async { stack.default.stored_count() + stack.fallback.stored_count() >= ids.len() },
    )
    .await;
    assert!(
        stack.default.stored_count() > 0,
        "no payment reached default"
    );
    // Default reported failing from now on: a payment cleared from it would go to fallback.
    publish_health(&stack, common::payment::Processor::Default, true, 0).await;
    // Past every bound (send window 200 ms, timeout 300 ms, a grace of at most 1 s for the
    // reported delay of 0, no late allowance): a 404 would have counted by now.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    for id in &ids {
        let both = stack.default.stored(id).is_some() && stack.fallback.stored(id).is_some();
        assert!(!both, "{id} moved to fallback on a proxy's 404");
    }
    relay.answer_after_forwarding(None);
    relay.answer_lookups(None);
    stack.wait_processed(20, Duration::from_secs(30)).await;
    assert_each_stored_once(&stack, &ids).await;
}
