//! The gateway's integration tests: one binary, every test against its own real Redis.

#![allow(clippy::unwrap_used)]

mod helpers;
mod operability;

use common::payment::{Cents, PaymentId, Processor};
use common::store::Window;
use helpers::{payment_body, spawn_app, spawn_app_with, spawn_patient_app};
use std::sync::Arc;
use uuid::Uuid;

#[tokio::test]
async fn a_valid_payment_is_accepted_once_and_queued() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let response = app.post_payment(&payment_body(&id, "19.90")).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/payments/{id}")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(app.backlog().await, 1);

    let text = app.get_text(&format!("/payments/{id}")).await;
    assert!(text.contains(r#""amount":19.90"#), "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["correlationId"], id.to_string());
    assert_eq!(status["status"], "queued");
    assert!(status["processor"].is_null());
}

#[tokio::test]
async fn duplicates_replay_and_conflicts_never_enqueue_twice() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    assert_eq!(
        app.post_payment(&payment_body(&id, "19.90")).await.status(),
        202
    );
    // Same id, same amount written differently, even in another UUID spelling: a replay.
    let upper = id.to_string().to_uppercase();
    let replay = app
        .post_payment(&format!(r#"{{"correlationId":"{upper}","amount":19.9}}"#))
        .await;
    assert_eq!(replay.status(), 200);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    // Same id, other amount: a conflict.
    let conflict = app.post_payment(&payment_body(&id, "20.00")).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_eq!(app.backlog().await, 1);
    assert_eq!(app.payment_keys().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_enqueue_exactly_one_entry() {
    let app = Arc::new(spawn_app().await);
    let id = Uuid::new_v4();
    let statuses = concurrent_post_statuses(&app, &payment_body(&id, "5.00"), 50).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 202 || *s == 200));
    assert_eq!(app.backlog().await, 1);
}

/// Posts `body` `n` times at once: each request is a task of its own, and they all wait
/// on one barrier before sending, so the gateway sees them overlap (on a multi-thread
/// runtime, in parallel) rather than one after another.
async fn concurrent_post_statuses(app: &Arc<helpers::TestApp>, body: &str, n: usize) -> Vec<u16> {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (app, start, body) = (app.clone(), start.clone(), body.to_owned());
        posts.spawn(async move {
            start.wait().await;
            app.post_payment(&body).await.status().as_u16()
        });
    }
    posts.join_all().await
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_changes_nothing() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let cases: Vec<(String, u16)> = vec![
        ("not json".into(), 400),
        ("[]".into(), 400),
        (r#"{"amount":19.90}"#.into(), 400),
        (format!(r#"{{"correlationId":"{id}"}}"#), 400),
        (
            format!(r#"{{"correlationId":"{id}","amount":"19.90"}}"#),
            400,
        ),
        (r#"{"correlationId":42,"amount":19.90}"#.into(), 400),
        (format!(r#"{{"correlationId":"{id}","amount":19.90"#), 400),
        (
            r#"{"correlationId":"not-a-uuid","amount":19.90}"#.into(),
            422,
        ),
        (payment_body(&id, "0"), 422),
        (payment_body(&id, "-19.90"), 422),
        (payment_body(&id, "19.999"), 422),
        (payment_body(&id, "10000000000000.01"), 422),
        (
            format!(
                r#"{{"correlationId":"{id}","amount":19.90,"pad":"{}"}}"#,
                "x".repeat(5000)
            ),
            413,
        ),
    ];
    for (body, expected) in cases {
        let response = app.post_payment(&body).await;
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, expected, "{body:.80}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["status"], expected);
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    let wrong_type = app
        .client
        .post(app.url("/payments"))
        .header("content-type", "text/plain")
        .body(payment_body(&id, "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(app.backlog().await, 0);
    assert_eq!(app.payment_keys().await, 0);
}

#[tokio::test]
async fn status_lookup_answers_404_and_400() {
    let app = spawn_app().await;
    let unknown = app
        .client
        .get(app.url(&format!("/payments/{}", Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = app.get("/payments/xyz").await;
    assert_eq!(bad.status(), 400);
    let wrong_method = app
        .client
        .delete(app.url("/payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let nowhere = app.get("/nowhere").await;
    assert_eq!(nowhere.status(), 404);
}

/// Records a processed payment straight through the store, as the worker does.
async fn record(app: &helpers::TestApp, processor: Processor, requested_at: i64, cents: i64) {
    let id = PaymentId::new(Uuid::new_v4());
    app.store.accept(&id, Cents::new(cents), 0).await.unwrap();
    app.store
        .record(&id, Cents::new(cents), processor, requested_at, "")
        .await
        .unwrap();
}

#[tokio::test]
async fn summary_window_edges_are_inclusive_to_the_millisecond() {
    let app = spawn_app().await;
    let from = common::time::parse_ms("2025-07-15T12:00:00.250Z").unwrap();
    let to = common::time::parse_ms("2025-07-15T12:00:05.750Z").unwrap();
    // On the edges, just outside, inside whole seconds, and in the edge seconds.
    for (at, cents) in [
        (from - 1, 1),
        (from, 10),
        (from + 1, 100),
        (from + 2_000, 1_000),
        (to - 1, 10_000),
        (to, 100_000),
        (to + 1, 1_000_000),
    ] {
        record(&app, Processor::Default, at, cents).await;
    }
    record(&app, Processor::Fallback, from + 3_000, 1990).await;

    let query = |from: &str, to: &str| {
        let app = &app;
        let path = format!("/payments-summary?from={from}&to={to}");
        async move { app.get_text(&path).await }
    };
    let body = query("2025-07-15T12:00:00.250Z", "2025-07-15T12:00:05.750Z").await;
    assert_eq!(
        body,
        r#"{"default":{"totalRequests":5,"totalAmount":1111.10},"fallback":{"totalRequests":1,"totalAmount":19.90}}"#
    );

    // One millisecond narrower on each side drops exactly the edge payments.
    let body = query("2025-07-15T12:00:00.251Z", "2025-07-15T12:00:05.749Z").await;
    assert!(
        body.starts_with(r#"{"default":{"totalRequests":3,"totalAmount":111.00}"#),
        "{body}"
    );

    // Open bounds.
    let all = query("", "").await;
    assert!(
        all.starts_with(r#"{"default":{"totalRequests":7,"totalAmount":11111.11}"#),
        "{all}"
    );

    // The store agrees with the HTTP view.
    let s = app
        .store
        .summary(Window {
            from: Some(from),
            to: Some(to),
        })
        .await
        .unwrap();
    assert_eq!(s.default.requests, 5);
    assert_eq!(s.default.cents, 111_110);

    let bad = app
        .get("/payments-summary?from=2025-07-15T12:00:06Z&to=2025-07-15T12:00:05Z")
        .await;
    assert_eq!(bad.status(), 400);
    let bad = app.get("/payments-summary?from=tomorrow").await;
    assert_eq!(bad.status(), 400);
}

/// The store's own tests (common/tests/store) check which windows the summary refuses; here,
/// how the gateway answers one: 422, a problem document naming the setting to change.
#[tokio::test]
async fn a_millisecond_edge_in_a_dropped_second_is_answered_422() {
    let app = spawn_patient_app().await;
    let at = common::time::parse_ms("2025-07-15T12:00:00.500Z").unwrap();
    record(&app, Processor::Default, at, 1990).await;
    // The detail is kept from the next second on (what `drop_detail.lua` leaves behind).
    let mut conn = app.store.connection();
    for p in Processor::ALL {
        let _: () = redis::cmd("SET")
            .arg(&app.store.keys().summary(p).detail_kept_from)
            .arg(at / 1000 + 1)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let response = app
        .get("/payments-summary?from=2025-07-15T12:00:00.250Z&to=2025-07-15T13:00:00Z")
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains("/problems/detail_dropped") && body.contains("SUMMARY_DETAIL_RETENTION"),
        "{body}"
    );
    // Whole-second edges need no detail.
    let whole = app
        .get("/payments-summary?from=2025-07-15T12:00:00Z&to=2025-07-15T13:00:00Z")
        .await;
    assert_eq!(whole.status(), 200);
}

#[tokio::test]
async fn summary_sums_are_exact() {
    let app = spawn_app().await;
    let at = common::time::now_ms();
    for i in 0..200 {
        record(&app, Processor::Default, at + i, 1990).await;
    }
    let body = app.get_text("/payments-summary").await;
    assert_eq!(
        body,
        r#"{"default":{"totalRequests":200,"totalAmount":3980.00},"fallback":{"totalRequests":0,"totalAmount":0.00}}"#
    );
}

#[tokio::test]
async fn redis_down_means_503_never_2xx() {
    let mut app = spawn_app().await;
    assert_eq!(
        app.post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
            .await
            .status(),
        202
    );
    app.redis.kill();
    // The first request may have been written to the connection before the gateway learnt
    // it was dead: its outcome is unknown to the gateway (504). Once the gateway knows Redis
    // refuses connections, nothing can have been written: 503.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = app
            .post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
            .await;
        let status = response.status().as_u16();
        assert!(status == 503 || status == 504, "{status}");
        assert_eq!(response.headers()["retry-after"], "1");
        let problem: serde_json::Value = response.json().await.unwrap();
        if status == 503 {
            assert_eq!(problem["type"], "/problems/unavailable");
        } else {
            assert_eq!(problem["type"], "/problems/outcome_unknown");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[1..], [503, 503, 503], "{statuses:?}");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let live = app.get("/healthz").await;
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn backlog_over_the_limit_sheds_with_503() {
    let app = spawn_app_with(&[("BACKLOG_LIMIT", "3")]).await;
    for _ in 0..3 {
        assert_eq!(
            app.post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
                .await
                .status(),
            202
        );
    }
    let shed = app
        .post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
        .await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(app.backlog().await, 3);
    assert_eq!(app.payment_keys().await, 3);
    assert!(app
        .metrics()
        .await
        .contains(common::metrics::GATEWAY_SHED_BACKLOG));
}

#[tokio::test]
async fn purge_needs_the_token_when_configured() {
    let app = spawn_app_with(&[("ADMIN_TOKEN", "s3cret")]).await;
    app.post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
        .await;
    let denied = app
        .client
        .post(app.url("/purge-payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(app.backlog().await, 1);
    let ok = app
        .client
        .post(app.url("/purge-payments"))
        .header("x-admin-token", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(app.backlog().await, 0);
    assert_eq!(app.payment_keys().await, 0);
}

#[tokio::test]
async fn health_ready_answer_and_metrics_are_only_on_their_own_listener() {
    let app = spawn_app().await;
    app.post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
        .await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    // Public port: anyone who can post payments must not read internals.
    let public = app.get("/metrics").await;
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("paystream_"));
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(common::metrics::PAYMENTS_RECEIVED_TOTAL),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_gateway_serves_on_a_unix_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let path = std::env::temp_dir().join(format!("paystream-gw-{}.sock", Uuid::new_v4()));
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (_stop, shutdown) = common::shutdown::Shutdown::new();
    tokio::spawn(paystream_gateway::run(listener, app.state(), shutdown));

    let id = Uuid::new_v4();
    let body = payment_body(&id, "19.90");
    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let request = format!(
        "POST /payments HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert_eq!(app.backlog().await, 1);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn invalid_configuration_stops_the_gateway_naming_the_variable() {
    for (var, value) in [
        ("GATEWAY_LISTEN", "nowhere"),
        ("BACKLOG_LIMIT", "-5"),
        ("REDIS_URL", "http://x"),
        ("PAYSTREAM_KEY_PREFIX", "a b"),
        ("GATEWAY_THREADS", "0"),
        ("GATEWAY_METRICS_ADDR", "9110"),
        ("PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN", "perhaps"),
    ] {
        common::testing::assert_config_error(
            env!("CARGO_BIN_EXE_paystream-gateway"),
            &[(var, value), ("ADMIN_TOKEN", "t")],
            var,
        );
    }
    // No token and no explicit opt-out: a deployment never starts with open admin endpoints.
    for opt_out in ["", "false"] {
        common::testing::assert_config_error(
            env!("CARGO_BIN_EXE_paystream-gateway"),
            &[
                ("ADMIN_TOKEN", ""),
                ("PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN", opt_out),
            ],
            "ADMIN_TOKEN",
        );
    }
}
