//! The processor simulator over real HTTP: each test starts its own simulator on
//! `127.0.0.1:0` with `sim::spawn` and talks to it with reqwest. Timing assertions are
//! only "waited at least X" and ordering facts; where the test must act while the
//! simulator waits, it first waits for the simulator to have the request, and the wait it
//! acts within is generous ([`ACT_WITHIN_MS`]).

#![allow(clippy::unwrap_used)]

mod helpers;

use std::io::ErrorKind;
use std::time::Duration;

use common::time::format_ms;
use helpers::{
    eventually, payment_json, post_raw, TestSim, ACT_WITHIN_MS, AT, AT_MS, EVENT_DEADLINE, TOKEN,
};
use paystream_load_tests::sim::{self, SimConfig, SimSummary};
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;
use uuid::Uuid;

// ---- POST /payments ------------------------------------------------------------------

#[tokio::test]
async fn stores_a_payment_and_answers_200() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();

    let response = sim.post_payment(id, "19.90", AT).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": "payment processed successfully"}));
    let stored = sim.handle.stored(&id).unwrap();
    assert_eq!(stored.correlation_id, id);
    assert_eq!(stored.amount_cents, 1990);
    assert_eq!(stored.requested_at_ms, AT_MS);
    assert_eq!(stored.requested_at, AT);
    assert_eq!(sim.handle.stored_count(), 1);
    assert_eq!(sim.handle.payment_posts(), 1);
}

#[tokio::test]
async fn amounts_are_rounded_to_cents_exactly() {
    let sim = TestSim::start().await;
    for (text, cents) in [
        ("19.9", 1990),
        ("1.99e1", 1990),
        ("0.005", 1),
        ("10.994", 1099),
    ] {
        let id = Uuid::new_v4();
        assert_eq!(
            sim.post_payment(id, text, AT).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            sim.handle.stored(&id).unwrap().amount_cents,
            cents,
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_stored_correlation_id_answers_422_and_keeps_the_first_payment() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    assert_eq!(
        sim.post_payment(id, "19.90", AT).await.status(),
        StatusCode::OK
    );

    let again = sim.post_payment(id, "5.00", AT).await;

    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sim.handle.stored(&id).unwrap().amount_cents, 1990);
    assert_eq!(sim.handle.stored_count(), 1);
    assert_eq!(sim.handle.duplicate_rejections(), 1);
}

#[tokio::test]
async fn the_unforwarded_fault_answers_its_status_and_stores_nothing() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    sim.handle.set_status_unforwarded(502);

    assert_eq!(
        sim.post_payment(id, "19.90", AT).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(sim.handle.stored_count(), 0);

    sim.handle.set_status_unforwarded(0);
    assert_eq!(
        sim.post_payment(id, "19.90", AT).await.status(),
        StatusCode::OK
    );
    assert_eq!(sim.handle.stored_count(), 1);
}

#[tokio::test]
async fn failure_mode_answers_500_without_storing() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    sim.handle.set_failure(true);

    assert_eq!(
        sim.post_payment(id, "19.90", AT).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(sim.handle.stored_count(), 0);
    assert_eq!(sim.handle.simulator().payment_failures(), 1);

    // Not stored: the same id goes through once the processor recovers.
    sim.handle.set_failure(false);
    assert_eq!(
        sim.post_payment(id, "19.90", AT).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_bodies_are_400_and_store_nothing() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    let bodies = [
        format!(r#"{{"correlationId":"{id}","amount":19.90}}"#),
        format!(r#"{{"correlationId":"{id}","requestedAt":"{AT}"}}"#),
        format!(r#"{{"amount":19.90,"requestedAt":"{AT}"}}"#),
        payment_json(id, r#""19.90""#, AT),
        payment_json(id, "-19.90", AT),
        payment_json(id, "0", AT),
        payment_json(id, "19.90", "15/07/2025 12:34"),
        r#"{"correlationId":"not-a-uuid","amount":19.90,"requestedAt":"2025-07-15T12:34:56.000Z"}"#
            .to_owned(),
        "{".to_owned(),
    ];
    for body in &bodies {
        let response = sim.post_raw(body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(sim.handle.stored_count(), 0);
    assert_eq!(sim.handle.payment_posts(), bodies.len() as u64);
}

#[tokio::test]
async fn the_delay_runs_before_the_answer() {
    let sim = TestSim::start().await;
    sim.handle.set_delay(300);
    let started = Instant::now();

    let response = sim.post_payment(Uuid::new_v4(), "1.00", AT).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_delay_in_force_when_the_payment_arrives_applies() {
    let sim = TestSim::start().await;
    sim.handle.set_delay(400);
    let started = Instant::now();
    let client = sim.client.clone();
    let url = sim.url("/payments");
    let body = payment_json(Uuid::new_v4(), "1.00", AT);
    let pending = tokio::spawn(async move { post_raw(&client, &url, body).await.status() });
    assert!(eventually(EVENT_DEADLINE, || async { sim.handle.payment_posts() == 1 }).await);

    // Shortening the delay and failing now do not change a payment already waiting...
    sim.handle.set_delay(0);
    assert_eq!(pending.await.unwrap(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // ...but failure mode is checked after the delay, when the payment is decided.
    sim.handle.set_delay(ACT_WITHIN_MS);
    let client = sim.client.clone();
    let url = sim.url("/payments");
    let body = payment_json(Uuid::new_v4(), "1.00", AT);
    let pending = tokio::spawn(async move { post_raw(&client, &url, body).await.status() });
    assert!(eventually(EVENT_DEADLINE, || async { sim.handle.payment_posts() == 2 }).await);
    sim.handle.set_failure(true);
    assert_eq!(pending.await.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(sim.handle.stored_count(), 1);
}

#[tokio::test]
async fn a_client_timeout_does_not_cancel_the_store() {
    let sim = TestSim::start().await;
    sim.handle.set_delay(ACT_WITHIN_MS);
    let id = Uuid::new_v4();
    let (client, url) = (sim.client.clone(), sim.url("/payments"));
    let body = payment_json(id, "19.90", AT);
    let impatient = tokio::spawn(async move { post_raw(&client, &url, body).await });

    // Once the payment is in, the client gives up as a timeout would: it drops the request
    // and its connection. (A client timeout of its own could fire before the payment got
    // there on a slow machine.)
    assert!(eventually(EVENT_DEADLINE, || async { sim.handle.payment_posts() == 1 }).await);
    impatient.abort();
    assert!(impatient.await.unwrap_err().is_cancelled());
    // The delay has not passed yet, so the payment is not there yet...
    assert!(sim.handle.stored(&id).is_none());
    // ...but it is stored once the delay is over, although nobody waits for the answer.
    assert!(
        eventually(EVENT_DEADLINE, || async {
            sim.handle.stored(&id).is_some()
        })
        .await
    );
    assert_eq!(sim.handle.stored(&id).unwrap().amount_cents, 1990);
}

#[tokio::test]
async fn beyond_concurrent_plus_queued_payments_get_429_at_once() {
    let delay = Duration::from_millis(ACT_WITHIN_MS);
    let sim = TestSim::with(SimConfig {
        max_concurrent: 2,
        max_queued: 1,
        initial_delay_ms: ACT_WITHIN_MS,
        ..SimConfig::default_processor()
    })
    .await;
    let started = Instant::now();
    let post = || {
        let (client, url) = (sim.client.clone(), sim.url("/payments"));
        let body = payment_json(Uuid::new_v4(), "1.00", AT);
        tokio::spawn(async move {
            let status = post_raw(&client, &url, body).await.status();
            (started.elapsed(), status)
        })
    };

    // Two handled, one queued...
    let admitted: Vec<_> = (0..3).map(|_| post()).collect();
    assert!(eventually(EVENT_DEADLINE, || async { sim.handle.payment_posts() == 3 }).await);
    // ...so the next three are refused, each before any of those got its answer.
    for _ in 0..3 {
        let (_, status) = post().await.unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(admitted.iter().all(|call| !call.is_finished()));
    let mut answered = Vec::new();
    for call in admitted {
        let (elapsed, status) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        answered.push(elapsed);
    }
    answered.sort();
    // The queued one waited for a slot, then for its own delay.
    assert!(answered[2] >= 2 * delay, "{answered:?}");
    assert_eq!(sim.handle.payment_429s(), 3);
    assert_eq!(sim.handle.stored_count(), 3);
}

// ---- GET /payments/{id} --------------------------------------------------------------

#[tokio::test]
async fn a_stored_payment_is_returned_as_sent() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    let requested_at = "2025-07-15T14:34:56.5+02:00";
    assert_eq!(
        sim.post_payment(id, "19.9", requested_at).await.status(),
        StatusCode::OK
    );

    let response = sim.get(&format!("/payments/{id}")).await;

    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""amount":19.90"#), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({"correlationId": id.to_string(), "amount": 19.9, "requestedAt": requested_at})
    );
    assert_eq!(sim.handle.stored(&id).unwrap().requested_at_ms, AT_MS + 500);
}

#[tokio::test]
async fn an_unknown_payment_is_404() {
    let sim = TestSim::start().await;
    let unknown = sim.get(&format!("/payments/{}", Uuid::new_v4())).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        sim.get("/payments/not-a-uuid").await.status(),
        StatusCode::NOT_FOUND
    );
}

// ---- Routing -------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let sim = TestSim::start().await;
    assert_eq!(sim.get("/nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        sim.get("/payments").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let delete = sim
        .client
        .delete(sim.url(&format!("/payments/{}", Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// ---- Admin ---------------------------------------------------------------------------

#[tokio::test]
async fn admin_endpoints_need_the_token() {
    let sim = TestSim::start().await;
    sim.post_payment(Uuid::new_v4(), "1.00", AT).await;

    assert_eq!(sim.summary(&[], None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        sim.summary(&[], Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sim.summary(&[], Some(TOKEN)).await.0, StatusCode::OK);

    let delay = sim.put_config("delay", r#"{"delay":100}"#, "wrong").await;
    assert_eq!(delay.status(), StatusCode::UNAUTHORIZED);
    let failure = sim
        .put_config("failure", r#"{"failure":true}"#, "wrong")
        .await;
    assert_eq!(failure.status(), StatusCode::UNAUTHORIZED);
    let token = sim
        .put_config("token", r#"{"token":"mine"}"#, "wrong")
        .await;
    assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.purge("wrong").await.status(), StatusCode::UNAUTHORIZED);

    // Nothing changed.
    assert_eq!(sim.handle.simulator().delay_ms(), 0);
    assert!(!sim.handle.simulator().failure());
    assert_eq!(sim.handle.stored_count(), 1);
    assert_eq!(sim.summary(&[], Some(TOKEN)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn configuration_endpoints_answer_was_and_is() {
    let sim = TestSim::start().await;

    let delay = sim.put_config_json("delay", r#"{"delay":150}"#).await;
    assert_eq!(delay, json!({"config": "delay", "was": 0, "is": 150}));
    let delay = sim.put_config_json("delay", r#"{"delay":20}"#).await;
    assert_eq!(delay, json!({"config": "delay", "was": 150, "is": 20}));
    let failure = sim.put_config_json("failure", r#"{"failure":true}"#).await;
    assert_eq!(
        failure,
        json!({"config": "failure", "was": false, "is": true})
    );

    assert_eq!(sim.handle.simulator().delay_ms(), 20);
    assert!(sim.handle.simulator().failure());
    let health: Value = sim
        .get("/payments/service-health")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"failing": true, "minResponseTime": 20}));

    for (what, body) in [
        ("delay", r#"{"delay":-1}"#),
        ("delay", r#"{"delay":"slow"}"#),
        ("delay", "{}"),
        ("failure", r#"{"failure":"yes"}"#),
        ("failure", "not json"),
    ] {
        let response = sim.put_config(what, body, TOKEN).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what} {body}");
    }
    assert_eq!(sim.handle.simulator().delay_ms(), 20);
}

#[tokio::test]
async fn the_token_can_be_changed() {
    let sim = TestSim::start().await;

    let response = sim
        .put_config("token", r#"{"token":"s3cret"}"#, TOKEN)
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        sim.summary(&[], Some(TOKEN)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sim.summary(&[], Some("s3cret")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn purge_deletes_every_payment() {
    let sim = TestSim::start().await;
    let id = Uuid::new_v4();
    for id in [id, Uuid::new_v4(), Uuid::new_v4()] {
        sim.post_payment(id, "1.00", AT).await;
    }

    let response = sim.purge(TOKEN).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"message": "All payments purged."}));
    assert_eq!(sim.handle.stored_count(), 0);
    assert_eq!(sim.summary_json(&[]).await["totalRequests"], 0);
    assert_eq!(
        sim.post_payment(id, "1.00", AT).await.status(),
        StatusCode::OK
    );
}

// ---- Admin summary -------------------------------------------------------------------

#[tokio::test]
async fn the_summary_window_is_inclusive_at_millisecond_precision() {
    let sim = TestSim::start().await;
    let at = |offset_ms: i64| format_ms(AT_MS + offset_ms);
    for (offset, amount) in [(-1, "0.01"), (0, "0.10"), (1, "1.00"), (2, "10.00")] {
        let response = sim.post_payment(Uuid::new_v4(), amount, &at(offset)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let sim = &sim;
    let window = |from: String, to: String| async move {
        let summary = sim.summary_json(&[("from", &from), ("to", &to)]).await;
        (
            summary["totalRequests"].as_u64().unwrap(),
            summary["totalAmount"].as_f64().unwrap(),
        )
    };

    assert_eq!(window(at(1), at(1)).await, (1, 1.0));
    assert_eq!(window(at(0), at(1)).await, (2, 1.1));
    assert_eq!(window(at(-1), at(2)).await, (4, 11.11));
    assert_eq!(window(at(3), at(100)).await, (0, 0.0));
    assert_eq!(window(at(2), at(0)).await, (0, 0.0));
    // Bounds with an offset or without fractional seconds mean the same instants.
    assert_eq!(
        window(
            "2025-07-15T14:34:56.001+02:00".into(),
            "2025-07-15T09:34:56.002-03:00".into()
        )
        .await,
        (2, 11.0)
    );
    assert_eq!(
        window("2025-07-15T12:34:56Z".into(), "2025-07-15T12:34:56Z".into()).await,
        (1, 0.1)
    );
}

#[tokio::test]
async fn without_both_bounds_the_summary_covers_everything() {
    let sim = TestSim::start().await;
    for offset in [0, 1_000, 2_000] {
        let at = format_ms(AT_MS + offset);
        sim.post_payment(Uuid::new_v4(), "19.90", &at).await;
    }
    let late = format_ms(AT_MS + 10_000);
    let early = format_ms(AT_MS - 10_000);

    for query in [
        vec![],
        vec![("from", late.as_str())],
        vec![("to", early.as_str())],
        vec![("from", ""), ("to", "")],
    ] {
        assert_eq!(
            sim.summary_json(&query).await["totalRequests"],
            3,
            "{query:?}"
        );
    }
    // The handle's summary treats each missing bound as open instead.
    assert_eq!(
        sim.handle.summary(Some(AT_MS + 1_000), None).total_requests,
        2
    );
    assert_eq!(
        sim.handle.summary(None, None),
        SimSummary {
            total_requests: 3,
            total_cents: 5_970
        }
    );
}

#[tokio::test]
async fn an_unparseable_bound_is_400() {
    let sim = TestSim::start().await;
    let (status, _) = sim
        .summary(&[("from", "yesterday"), ("to", AT)], Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn summary_amounts_and_fees_are_exact() {
    let sim = TestSim::start().await;
    let mut posters = Vec::new();
    for _ in 0..10 {
        let client = sim.client.clone();
        let url = sim.url("/payments");
        posters.push(tokio::spawn(async move {
            for _ in 0..100 {
                let body = payment_json(Uuid::new_v4(), "19.90", AT);
                assert_eq!(post_raw(&client, &url, body).await.status(), StatusCode::OK);
            }
        }));
    }
    for poster in posters {
        poster.await.unwrap();
    }

    let (status, text) = sim.summary(&[], Some(TOKEN)).await;

    assert_eq!(status, StatusCode::OK);
    assert!(text.contains(r#""totalAmount":19900.00"#), "{text}");
    assert!(text.contains(r#""totalFee":995.00"#), "{text}");
    let summary: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        summary,
        json!({"totalRequests": 1000, "totalAmount": 19900.0, "totalFee": 995.0, "feePerTransaction": 0.05})
    );
    assert_eq!(sim.handle.summary(None, None).total_cents, 1_990_000);
}

#[tokio::test]
async fn fees_finer_than_a_cent_are_printed_exactly() {
    let sim = TestSim::with(SimConfig::fallback_processor()).await;
    for _ in 0..3 {
        sim.post_payment(Uuid::new_v4(), "19.90", AT).await;
    }
    let (_, text) = sim.summary(&[], Some(TOKEN)).await;
    // 59.70 × 0.15 = 8.955
    assert!(text.contains(r#""totalAmount":59.70"#), "{text}");
    assert!(text.contains(r#""totalFee":8.955"#), "{text}");
    assert!(text.contains(r#""feePerTransaction":0.15"#), "{text}");
}

// ---- GET /payments/service-health ----------------------------------------------------

#[tokio::test]
async fn health_serves_one_call_per_window_queues_two_and_refuses_the_rest() {
    let window = Duration::from_millis(ACT_WITHIN_MS);
    let sim = TestSim::with(SimConfig {
        health_window: window,
        initial_delay_ms: 42,
        ..SimConfig::default_processor()
    })
    .await;
    let started = Instant::now();

    let first = sim.get("/payments/service-health").await;
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body, json!({"failing": false, "minResponseTime": 42}));

    // Three more callers while the first window is still open.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let client = sim.client.clone();
        let url = sim.url("/payments/service-health");
        calls.push(tokio::spawn(async move {
            let response = client.get(url).send().await.unwrap();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
            (started.elapsed(), response.status(), retry_after)
        }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let (refused, mut served): (Vec<_>, Vec<_>) = results
        .into_iter()
        .partition(|(_, status, _)| *status == StatusCode::TOO_MANY_REQUESTS);
    served.sort();

    // One refusal, at once: before either waiter is served...
    assert_eq!(refused.len(), 1, "{refused:?} {served:?}");
    let (refused_after, _, retry_after) = refused[0];
    assert!(retry_after.unwrap() >= 1);
    assert!(refused_after < served[0].0, "{refused:?} {served:?}");
    // ...and the two waiters are served one per window, in the next two windows.
    assert!(served
        .iter()
        .all(|(_, status, _)| *status == StatusCode::OK));
    assert!(served[0].0 >= window);
    assert!(served[1].0 >= 2 * window);
    assert_eq!(served[0].2, None);

    assert_eq!(sim.handle.health_calls(), 4);
    assert_eq!(sim.handle.health_served(), 3);
    assert_eq!(sim.handle.health_429s(), 1);
}

// ---- Life cycle ----------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_config_does_not_start() {
    for config in [
        SimConfig {
            fee: "5%".into(),
            ..SimConfig::default_processor()
        },
        SimConfig {
            health_window: Duration::ZERO,
            ..SimConfig::default_processor()
        },
        SimConfig {
            max_concurrent: 0,
            ..SimConfig::default_processor()
        },
    ] {
        let err = sim::spawn(config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let sim = TestSim::start().await;
    let url = sim.url("/payments/service-health");
    assert_eq!(
        sim.get("/payments/service-health").await.status(),
        StatusCode::OK
    );
    let TestSim { handle, .. } = sim;

    handle.shutdown().await;

    // A fresh client: no pooled connection to the old server.
    let err = reqwest::Client::new().get(url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::Command;

    let mut child = Command::new(env!("CARGO_BIN_EXE_processor-sim"))
        .env("BIND", "127.0.0.1")
        .env("TRANSACTION_FEE", "0.15")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(EVENT_DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("addr=") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the binary exited without logging its address");
    })
    .await
    .unwrap();

    let client = reqwest::Client::new();
    let response = post_raw(
        &client,
        &format!("http://{addr}/payments"),
        payment_json(Uuid::new_v4(), "19.90", AT),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let summary: Value = client
        .get(format!("http://{addr}/admin/payments-summary"))
        .header("X-Rinha-Token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["feePerTransaction"], 0.15);

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(EVENT_DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_binary_refuses_a_bad_variable_in_one_line() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_processor-sim"))
        .env("HEALTH_WINDOW_MS", "soon")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HEALTH_WINDOW_MS"), "{stderr}");
}
