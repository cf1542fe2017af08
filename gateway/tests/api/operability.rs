//! Production guards: rate limits, admin access, header size, and arbitrary input.

use common::payment::ValidPayment;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use uuid::Uuid;

use crate::helpers::{payment_body, spawn_app, spawn_app_with, TestApp};

/// Posts fresh payments as one client until it is refused; returns how many got in and the
/// refusal. Looping (rather than expecting the n-th to fail) keeps a slow machine, on which
/// the bucket refills between two requests, from failing the test.
async fn post_until_refused(app: &TestApp, headers: &[(&str, &str)]) -> (u64, reqwest::Response) {
    for accepted in 0..50 {
        let response = app
            .post_payment_with(&payment_body(&Uuid::new_v4(), "1.00"), headers)
            .await;
        if response.status() != 202 {
            return (accepted, response);
        }
    }
    panic!("50 payments in a row were accepted despite the rate limit");
}

#[tokio::test]
async fn over_the_rate_limit_answers_429_and_enqueues_nothing() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_CLIENT", "1"), ("RATE_LIMIT_BURST", "2")]).await;
    let (accepted, refused) = post_until_refused(&app, &[]).await;
    assert!(accepted >= 2, "the burst of 2 is admitted, got {accepted}");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["type"], "/problems/rate_limited");
    assert_eq!(app.backlog().await, accepted);
    assert_eq!(app.payment_keys().await as u64, accepted);

    // Another client (API key) has its own bucket.
    let other = app
        .post_payment_with(
            &payment_body(&Uuid::new_v4(), "1.00"),
            &[("x-api-key", "merchant-2")],
        )
        .await;
    assert_eq!(other.status(), 202);
    assert_eq!(app.backlog().await, accepted + 1);

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"outcome="rate_limited""#),
        "rate_limited outcome missing from /metrics"
    );
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    // The test client connects from 127.0.0.1: a trusted proxy, like nginx.
    let app = spawn_app_with(&[("RATE_LIMIT_PER_CLIENT", "1"), ("RATE_LIMIT_BURST", "1")]).await;
    let client_a = [("x-real-ip", "203.0.113.10")];
    let (accepted_a, refused) = post_until_refused(&app, &client_a).await;
    assert_eq!(refused.status(), 429);
    let client_b = [("x-forwarded-for", "203.0.113.11, 10.0.0.1")];
    let (accepted_b, refused) = post_until_refused(&app, &client_b).await;
    assert!(
        accepted_b >= 1,
        "a second forwarded client is not throttled by the first"
    );
    assert_eq!(refused.status(), 429);
    assert_eq!(app.backlog().await, accepted_a + accepted_b);
}

#[tokio::test]
async fn the_global_limit_applies_to_everybody() {
    let app = spawn_app_with(&[("RATE_LIMIT_GLOBAL", "1"), ("RATE_LIMIT_BURST", "3")]).await;
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..50 {
        let key = format!("merchant-{i}");
        let response = app
            .post_payment_with(
                &payment_body(&Uuid::new_v4(), "1.00"),
                &[("x-api-key", &key)],
            )
            .await;
        if response.status() == 202 {
            accepted += 1;
        } else {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the global limit refused nobody");
    assert_eq!(refused.status(), 429);
    assert!(accepted >= 3);
    assert_eq!(app.backlog().await, accepted);
}

#[tokio::test]
async fn rate_limits_are_off_by_default() {
    let app = spawn_app().await;
    for _ in 0..200 {
        let response = app
            .post_payment(&payment_body(&Uuid::new_v4(), "19.90"))
            .await;
        assert_eq!(response.status(), 202);
    }
    assert_eq!(app.backlog().await, 200);
}

#[tokio::test]
async fn admin_runs_open_only_with_the_explicit_opt_out() {
    // The contest profile: no token, PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true (spawn_app's
    // default); without the opt-out the gateway does not start (main.rs, invalid config).
    let open = spawn_app().await;
    open.post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
        .await;
    let ok = open
        .client
        .post(open.url("/purge-payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(open.backlog().await, 0);
}

#[tokio::test]
async fn a_huge_header_is_refused_and_enqueues_nothing() {
    let app = spawn_app().await;
    let limit = paystream_gateway::server::MAX_HEAD_BYTES;
    // Just over the head limit, and past the read buffer's cap.
    for pad_len in [limit + 1024, limit * 8] {
        let body = payment_body(&Uuid::new_v4(), "19.90");
        let pad = "a".repeat(pad_len);
        let request = format!(
            "POST /payments HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
             X-Pad: {pad}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let response = app.raw(request.as_bytes()).await;
        let status_line = response.lines().next().unwrap_or_default();
        assert!(
            status_line.starts_with("HTTP/1.1 431"),
            "{pad_len}-byte header: expected 431, got {status_line:?}"
        );
    }
    // The refused requests left no trace, and normal ones still work.
    assert_eq!(app.backlog().await, 0);
    assert_eq!(app.payment_keys().await, 0);
    let ok = app
        .post_payment(&payment_body(&Uuid::new_v4(), "1.00"))
        .await;
    assert_eq!(ok.status(), 202);
}

/// Bodies a fuzzer would send: arbitrary bytes, and payment-shaped JSON with arbitrary
/// ids and amounts (some valid), up to past the size limit.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        2 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string().to_uppercase()),
        1 => "[ -~]{0,40}",
    ];
    let amount = prop_oneof![
        4 => "[1-9][0-9]{0,5}(\\.[0-9]{1,2})?",
        1 => "-?[0-9]{1,16}(\\.[0-9]{0,3})?",
        1 => "[-+0-9.eE]{0,24}",
        1 => Just("null".to_string()),
        1 => Just("true".to_string()),
        1 => "\"[0-9.]{0,8}\"",
        1 => Just("{}".to_string()),
    ];
    let extra = prop_oneof![3 => Just(String::new()), 1 => "[ -~]{0,20}"];
    let shaped = (id, amount, extra, 0usize..6000).prop_map(|(id, amount, extra, pad)| {
        let pad = if pad > 3000 {
            "p".repeat(pad)
        } else {
            String::new()
        };
        format!(r#"{{"correlationId":"{id}","amount":{amount}{extra},"pad":"{pad}"}}"#).into_bytes()
    });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        2 => shaped,
        1 => "[\\[\\]{}\":,0-9a-z ]{0,80}".prop_map(String::into_bytes),
    ]
}

#[tokio::test]
async fn arbitrary_bodies_get_a_4xx_never_a_5xx() {
    let app = spawn_app().await;
    let strategy = bodies();
    let mut runner = TestRunner::deterministic();
    let mut enqueued = 0;
    for _ in 0..300 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let response = app
            .client
            .post(app.url("/payments"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let shown = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        assert!(status < 500, "{status} for {shown:?}");
        // The router agrees with the parser: accepted exactly when the body is valid.
        let valid = body.len() <= 4096 && ValidPayment::parse(&body).is_ok();
        if valid {
            assert!(
                status == 202 || status == 200 || status == 409,
                "{status} for {shown:?}"
            );
            enqueued += u64::from(status == 202);
        } else {
            assert!((400..500).contains(&status), "{status} for {shown:?}");
        }
    }
    assert!(enqueued > 0, "the generator produced no valid payment");
    assert_eq!(app.backlog().await, enqueued);
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_payment_shaped_bodies(body in bodies()) {
        let _ = ValidPayment::parse(&body);
    }
}

/// What a strict RFC 8259 parser says about a body: UTF-8 as a whole, and JSON that
/// `serde_json::Value` accepts.
fn strict_json(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|s| serde_json::from_str::<serde_json::Value>(s).is_ok())
}

/// One edit of a valid body.
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
}

/// Valid payments carrying extra fields (strings with escapes and non-ASCII text, numbers
/// near the edge of what a parser represents, nesting), then up to three edits, most of
/// them byte sequences that are not UTF-8 or not JSON: the bodies a strict parser must
/// refuse are exactly those that differ from a valid one by a few bytes.
fn mutated_bodies() -> impl Strategy<Value = Vec<u8>> {
    let extra = prop_oneof![
        Just(r#""plain""#.to_string()),
        Just(r#""caf\u00e9 \ud83d\ude00 é 😀""#.to_string()),
        Just(r#"{"a":[1,-2.5e300,null,true,{"b":"c"}]}"#.to_string()),
        Just("1.7976931348623157e308".to_string()),
        "\"[ -~]{0,12}\"",
    ];
    let base = (any::<u128>(), 1u32..100_000, extra).prop_map(|(id, cents, extra)| {
        let id = Uuid::from_u128(id);
        let amount = common::payment::Cents::new(i64::from(cents));
        format!(r#"{{"note":{extra},"correlationId":"{id}","amount":{amount},"meta":{extra}}}"#)
            .into_bytes()
    });
    let nasty = prop_oneof![
        Just(b"\xff".to_vec()),
        Just(b"\xc3".to_vec()),
        Just(b"\xed\xa0\x80".to_vec()),
        Just(b"\xc0\xaf".to_vec()),
        Just(b"\xf4\x90\x80\x80".to_vec()),
        Just(br"\ud800".to_vec()),
        Just(br"\udc00".to_vec()),
        Just(br"\u12".to_vec()),
        Just(br"\x".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"\x01".to_vec()),
        Just(b"\"".to_vec()),
        Just(b",".to_vec()),
        Just(b"}".to_vec()),
        Just("é".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    let edit = prop_oneof![
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        3 => (any::<prop::sample::Index>(), nasty).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..4).prop_map(|(i, n)| Edit::Delete(i, n)),
    ];
    (base, proptest::collection::vec(edit, 0..4)).prop_map(|(mut body, edits)| {
        for edit in edits {
            match edit {
                Edit::Replace(i, b) => {
                    let i = i.index(body.len());
                    body[i] = b;
                }
                Edit::Insert(i, bytes) => {
                    let i = i.index(body.len() + 1);
                    body.splice(i..i, bytes);
                }
                Edit::Delete(i, n) => {
                    let i = i.index(body.len());
                    body.drain(i..(i + n).min(body.len()));
                }
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn the_parser_accepts_nothing_a_strict_json_parser_refuses(body in mutated_bodies()) {
        if ValidPayment::parse(&body).is_ok() {
            prop_assert!(strict_json(&body), "accepted: {:?}", String::from_utf8_lossy(&body));
        }
    }
}

#[tokio::test]
async fn mutated_bodies_are_accepted_only_as_strict_json_and_a_4xx_enqueues_nothing() {
    let app = spawn_app().await;
    let strategy = mutated_bodies();
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..400 {
        let body = strategy.new_tree(&mut runner).unwrap().current();
        let before = app.backlog().await;
        let response = app
            .client
            .post(app.url("/payments"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let shown = String::from_utf8_lossy(&body).into_owned();
        let after = app.backlog().await;
        if status == 202 {
            assert!(
                strict_json(&body),
                "202 for a body a strict parser refuses: {shown:?}"
            );
            assert_eq!(after, before + 1, "{shown:?}");
            accepted += 1;
        } else {
            assert!((400..500).contains(&status), "{status} for {shown:?}");
            assert_eq!(after, before, "{status} enqueued {shown:?}");
            refused += 1;
        }
    }
    assert!(
        accepted > 20 && refused > 20,
        "the generator should produce both: {accepted} accepted, {refused} refused"
    );
}
