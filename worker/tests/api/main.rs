//! The worker's integration tests: the real gateway, worker pool, Redis and simulated
//! processors, all on ephemeral ports.

#![allow(clippy::unwrap_used)]

mod docs;
mod exactly_once;
mod faults;
mod helpers;
mod relay;
mod retention;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::money::Decimal;
use helpers::spawn_stack;
use paystream_worker::dispatch::SendOutcome;
use paystream_worker::Hooks;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_concurrent_payments_are_each_processed_exactly_once() {
    // Both processors must take part, or comparing with the fallback's summary proves
    // nothing: the first half goes out while default is healthy, the second while it fails,
    // under a policy that then sends payments to fallback.
    let stack = spawn_stack().await;
    let policy = [("ROUTING_POLICY", "cheapest-available")];
    let _worker_a = stack.start_worker(&policy).await;
    let _worker_b = stack.start_worker(&policy).await;
    let start = common::time::now_ms();
    let ids: Vec<Uuid> = (0..5_000).map(|_| Uuid::new_v4()).collect();
    let (healthy_half, failing_half) = ids.split_at(ids.len() / 2);
    let stack = Arc::new(stack);
    helpers::post_all(&stack, healthy_half, "19.90", healthy_half.len() / 25).await;
    stack
        .wait_processed(healthy_half.len() as u64, Duration::from_secs(120))
        .await;
    stack.default.set_failure(true);
    helpers::post_all(&stack, failing_half, "19.90", failing_half.len() / 25).await;
    // Default recovers once fallback has taken some: the rest may go either way.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stack.fallback.stored_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached fallback while default failed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.default.set_failure(false);
    stack.wait_processed(5_000, Duration::from_secs(120)).await;
    // Let any stray duplicate surface before comparing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = common::time::now_ms();

    let (d, dc, f, fc) = stack.totals().await;
    assert_eq!(d + f, 5_000);
    assert_eq!(dc + fc, 5_000 * 1990);
    assert_eq!(
        stack.default.stored_count() + stack.fallback.stored_count(),
        5_000
    );

    // The gateway's summary equals each processor's own admin summary, same window.
    let query = format!(
        "?from={}&to={}",
        common::time::format_ms(start - 1_000),
        common::time::format_ms(end)
    );
    let ours: serde_json::Value = serde_json::from_str(&stack.summary_text(&query).await).unwrap();
    let (dn, damount) = stack.admin_summary(&stack.default, &query).await;
    let (fnn, famount) = stack.admin_summary(&stack.fallback, &query).await;
    assert!(dn > 0 && fnn > 0, "default {dn}, fallback {fnn}");
    assert_eq!(ours["default"]["totalRequests"].as_u64().unwrap(), dn);
    assert_eq!(ours["fallback"]["totalRequests"].as_u64().unwrap(), fnn);
    assert_eq!(Decimal::new(dc, 2), damount.parse::<Decimal>().unwrap());
    assert_eq!(Decimal::new(fc, 2), famount.parse::<Decimal>().unwrap());

    // No payment is stored by both processors, and every status is pollable.
    for id in &ids {
        assert!(
            stack.default.stored(id).is_none() || stack.fallback.stored(id).is_none(),
            "{id} stored twice"
        );
    }
    for id in ids.iter().step_by(7) {
        let status = stack.status(id).await;
        assert_eq!(status["status"], "processed", "{status}");
        assert!(status["processor"] == "default" || status["processor"] == "fallback");
        assert!(status["requestedAt"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_duplicate_is_charged_once_and_a_conflict_is_refused() {
    let stack = spawn_stack().await;
    let _worker = stack.start_worker(&[]).await;
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, "10.00").await, 202);
    assert_eq!(stack.post(&id, "10.00").await, 200);
    assert_eq!(stack.post(&id, "10.01").await, 409);
    stack.wait_processed(1, Duration::from_secs(20)).await;
    assert_eq!(stack.post(&id, "10.00").await, 200);
    assert_eq!(stack.status(&id).await["status"], "processed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stack.totals().await, (1, 1000, 0, 0));
    assert_eq!(
        stack.default.payment_posts() + stack.fallback.payment_posts(),
        1
    );
}

#[tokio::test]
async fn a_crash_between_the_processor_ok_and_the_record_counts_once() {
    let stack = spawn_stack().await;
    let crashed = Arc::new(AtomicBool::new(false));
    let hook_crashed = crashed.clone();
    let hooks = Hooks {
        after_send: Some(Arc::new(move |_id, outcome| {
            *outcome == SendOutcome::Stored && !hook_crashed.swap(true, Ordering::SeqCst)
        })),
        ..Hooks::default()
    };
    let fast_claim = [("WORKER_CLAIM_IDLE_MS", "300")];
    let doomed = stack.start_worker_with(&fast_claim, hooks).await;
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, "42.00").await, 202);
    // The processor stores it, the worker "dies" before recording.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !crashed.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the crash point was never reached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stack.default.stored(&id).is_some());
    assert_eq!(stack.totals().await, (0, 0, 0, 0));
    doomed.abort();

    // A new worker reclaims the entry: the processor says 422, the payment is recorded
    // once, with the requestedAt the processor holds.
    let _rescuer = stack.start_worker(&fast_claim).await;
    stack.wait_processed(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.totals().await, (1, 4200, 0, 0));
    assert_eq!(stack.default.stored_count(), 1);
    assert_eq!(stack.fallback.stored_count(), 0);
    assert!(stack.default.duplicate_rejections() >= 1);
    let stored = stack.default.stored(&id).unwrap();
    let status = stack.status(&id).await;
    assert_eq!(status["requestedAt"], stored.requested_at);
    assert_eq!(stack.store.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn default_failing_goes_to_fallback_only_under_a_policy_that_allows_it() {
    let stack = spawn_stack().await;
    stack.default.set_failure(true);
    let _worker = stack
        .start_worker(&[("ROUTING_POLICY", "cheapest-available")])
        .await;
    let ids: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    stack.wait_processed(30, Duration::from_secs(30)).await;
    let (d, _, f, fc) = stack.totals().await;
    assert_eq!((d, f, fc), (0, 30, 3000));
    assert_eq!(stack.default.stored_count(), 0);
    assert_eq!(stack.fallback.stored_count(), 30);
}

#[tokio::test]
async fn default_only_waits_for_default_and_never_pays_the_fallback_fee() {
    let stack = spawn_stack().await;
    stack.default.set_failure(true);
    let _worker = stack
        .start_worker(&[("ROUTING_POLICY", "default-only")])
        .await;
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "1.00").await, 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.totals().await, (0, 0, 0, 0));
    assert!(stack.default.payment_failures() > 0);
    // Held payments are still in Redis, not only in the worker's memory.
    assert_eq!(stack.store.backlog().await.unwrap(), 20);
    stack.default.set_failure(false);
    stack.wait_processed(20, Duration::from_secs(30)).await;
    assert_eq!(stack.totals().await, (20, 2000, 0, 0));
    assert_eq!(stack.fallback.payment_posts(), 0);
}

#[tokio::test]
async fn a_processor_answering_after_the_client_timeout_stores_and_counts_once() {
    let stack = spawn_stack().await;
    stack.default.set_delay(400);
    let _worker = stack
        .start_worker(&[
            ("ROUTING_POLICY", "cheapest-available"),
            ("PROCESSOR_TIMEOUT_MS", "100"),
            ("AMBIGUITY_GRACE_MS", "700"),
        ])
        .await;
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "3.00").await, 202);
    }
    stack.wait_processed(20, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stored_default: HashSet<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| stack.default.stored(id).is_some())
        .collect();
    for id in &ids {
        assert!(
            stack.default.stored(id).is_none() || stack.fallback.stored(id).is_none(),
            "{id} stored by both processors"
        );
    }
    let (d, dc, f, fc) = stack.totals().await;
    assert_eq!(d + f, 20);
    assert_eq!(d as usize, stored_default.len());
    assert_eq!(d as usize, stack.default.stored_count());
    assert_eq!(f as usize, stack.fallback.stored_count());
    assert_eq!(dc + fc, 20 * 300);
    // Recorded with the requestedAt each processor holds.
    for id in &stored_default {
        let status = stack.status(id).await;
        assert_eq!(
            status["requestedAt"],
            stack.default.stored(id).unwrap().requested_at
        );
    }
}

#[tokio::test]
async fn a_timed_out_payment_the_processor_stored_is_recorded_without_waiting_for_the_grace() {
    let stack = spawn_stack().await;
    stack.default.set_delay(300);
    // The grace is far longer than the wait the test allows: the payment can only be
    // recorded in time if "stored" is learned by polling, not after the grace.
    let _worker = stack
        .start_worker(&[
            ("PROCESSOR_TIMEOUT_MS", "50"),
            ("AMBIGUITY_GRACE_MS", "120000"),
            ("AMBIGUITY_POLL_MS", "50"),
        ])
        .await;
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert_eq!(stack.post(id, "2.50").await, 202);
    }
    stack.wait_processed(10, Duration::from_secs(60)).await;
    assert_eq!(stack.totals().await, (10, 2500, 0, 0));
    for id in &ids {
        let status = stack.status(id).await;
        assert_eq!(
            status["requestedAt"],
            stack.default.stored(id).unwrap().requested_at
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_metrics_endpoint_shows_every_family_after_traffic() {
    let stack = spawn_stack().await;
    let handle = common::telemetry::install_metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, shutdown) = common::shutdown::Shutdown::new();
    tokio::spawn(paystream_worker::admin::serve(listener, handle, shutdown));
    // A short reclaim tick so the stream gauges are published during the test.
    let worker = stack.start_worker(&[("WORKER_CLAIM_IDLE_MS", "300")]).await;
    for _ in 0..20 {
        assert_eq!(stack.post(&Uuid::new_v4(), "1.00").await, 202);
    }
    stack.wait_processed(20, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let text = stack
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        common::metrics::PAYMENTS_PROCESSED_TOTAL,
        common::metrics::PAYMENTS_PROCESSED_CENTS_TOTAL,
        common::metrics::PROCESSOR_CALLS_TOTAL,
        common::metrics::PROCESSOR_CALL_DURATION_SECONDS,
        common::metrics::ROUTING_DECISIONS_TOTAL,
        common::metrics::BREAKER_STATE,
        common::metrics::STREAM_READ_TOTAL,
        common::metrics::STREAM_BACKLOG,
        common::metrics::STREAM_PENDING,
        common::metrics::STREAM_GROUP_LAG,
        common::metrics::WORKER_IN_FLIGHT,
        common::metrics::REDIS_COMMAND_DURATION_SECONDS,
    ] {
        assert!(text.contains(family), "{family} missing from /metrics");
    }
    // Histograms are exported with buckets, not as summaries.
    assert!(text.contains("paystream_processor_call_duration_seconds_bucket"));
    assert!(text.contains(r#"processor="default""#));
    worker.shutdown().await;
}

#[test]
fn invalid_configuration_stops_the_worker_naming_the_variable() {
    for (var, value) in [
        ("WORKER_CONCURRENCY", "0"),
        ("PROCESSOR_DEFAULT_URL", "localhost:8001"),
        ("REDIS_URL", "postgres://x"),
        ("ROUTING_POLICY", "cheapest"),
    ] {
        common::testing::assert_config_error(
            env!("CARGO_BIN_EXE_paystream-worker"),
            &[(var, value), ("WORKER_METRICS_ADDR", "off")],
            var,
        );
    }
}

#[tokio::test]
async fn a_worker_slower_than_its_send_window_backs_off_instead_of_looping() {
    // Every call is held past the send window before it would start (as when Redis or this
    // process is slower than the window): nothing may be sent, and the worker must not spin
    // on begin → window missed → begin.
    let stack = spawn_stack().await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let hooks = Hooks {
        before_send: Some(Arc::new(move |_id| {
            counted.fetch_add(1, Ordering::SeqCst);
            // Past the 100 ms window of a 300 ms claim idle time.
            std::thread::sleep(Duration::from_millis(150));
        })),
        ..Hooks::default()
    };
    let _worker = stack
        .start_worker_with(
            &[
                ("WORKER_CLAIM_IDLE_MS", "300"),
                ("RETRY_BASE_MS", "2000"),
                ("RETRY_MAX_MS", "2000"),
            ],
            hooks,
        )
        .await;
    let id = Uuid::new_v4();
    assert_eq!(stack.post(&id, "1.00").await, 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = calls.load(Ordering::SeqCst);
    // Without a backoff each round takes ~150 ms (about 20 in 3 s); with delays drawn from
    // 1–2000 ms, ten rounds in 3 s would need nine draws summing under 1.5 s (p ≈ 2e-7).
    assert!((1..10).contains(&calls), "{calls} rounds in 3 s");
    assert_eq!(
        stack.default.payment_posts() + stack.fallback.payment_posts(),
        0
    );
}
