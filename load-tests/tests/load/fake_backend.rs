//! A stand-in backend for the load generators' tests, until the real stack can be started
//! from here: answers `POST /payments` with `202` at once and forwards each payment in the
//! background to the default processor, then to the fallback on a `500` (ignoring the
//! ambiguity rules of SPEC section 3 on purpose: it only has to be plausible), and keeps the
//! summary of what the processors confirmed.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use paystream_load_tests::load::control::iso_ms;
use paystream_load_tests::load::money::Decimal;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// One payment a processor confirmed.
#[derive(Clone, Copy)]
struct Record {
    fallback: bool,
    requested_at: OffsetDateTime,
    cents: i64,
}

struct State {
    client: reqwest::Client,
    default_url: String,
    fallback_url: String,
    admin_token: Option<String>,
    records: Mutex<Vec<Record>>,
    purges: AtomicU64,
    payments: AtomicU64,
}

/// A running fake backend.
pub struct FakeBackend {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeBackend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `POST /purge-payments` calls that were authorised.
    pub fn purges(&self) -> u64 {
        self.state.purges.load(Ordering::SeqCst)
    }

    /// `POST /payments` received.
    pub fn payments(&self) -> u64 {
        self.state.payments.load(Ordering::SeqCst)
    }
}

/// Starts the fake on `127.0.0.1:0`; it lives as long as the test's runtime.
pub async fn spawn(
    default_url: String,
    fallback_url: String,
    admin_token: Option<String>,
) -> FakeBackend {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(8))
            .build()
            .unwrap(),
        default_url,
        fallback_url,
        admin_token,
        records: Mutex::default(),
        purges: AtomicU64::new(0),
        payments: AtomicU64::new(0),
    });
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeBackend { addr, state }
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let token = req
        .headers()
        .get("x-admin-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(match (method, path.as_str()) {
        (Method::POST, "/payments") => {
            state.payments.fetch_add(1, Ordering::SeqCst);
            match parse_payment(&body) {
                Some((id, amount)) => {
                    tokio::spawn(forward(state.clone(), id.clone(), amount));
                    respond(
                        StatusCode::ACCEPTED,
                        format!(r#"{{"correlationId":"{id}","status":"queued"}}"#),
                    )
                }
                None => respond(StatusCode::BAD_REQUEST, "{}".into()),
            }
        }
        (Method::GET, "/payments-summary") => summary(&state, &query),
        (Method::POST, "/purge-payments") => {
            if state.admin_token.is_some() && token != state.admin_token {
                respond(StatusCode::UNAUTHORIZED, "{}".into())
            } else {
                state.records.lock().unwrap().clear();
                state.purges.fetch_add(1, Ordering::SeqCst);
                respond(StatusCode::OK, "{}".into())
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "{}".into()),
    })
}

fn parse_payment(body: &[u8]) -> Option<(String, Decimal)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Payment {
        correlation_id: uuid::Uuid,
        amount: Decimal,
    }
    let p: Payment = serde_json::from_slice(body).ok()?;
    Some((p.correlation_id.to_string(), p.amount))
}

async fn forward(state: Arc<State>, id: String, amount: Decimal) {
    for (fallback, base) in [(false, &state.default_url), (true, &state.fallback_url)] {
        let requested_at = OffsetDateTime::now_utc();
        // Millisecond precision, exactly as sent.
        let sent = iso_ms(requested_at);
        let requested_at = OffsetDateTime::parse(&sent, &Rfc3339).unwrap();
        let body =
            format!(r#"{{"correlationId":"{id}","amount":{amount},"requestedAt":"{sent}"}}"#);
        let result = state
            .client
            .post(format!("{base}/payments"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match result.map(|r| r.status().as_u16()) {
            Ok(200) => {
                state.records.lock().unwrap().push(Record {
                    fallback,
                    requested_at,
                    cents: amount.to_cents().unwrap(),
                });
                return;
            }
            // Failing: try the other one.
            Ok(500) => continue,
            // Anything else (timeout, 422, 429): give up on this payment.
            _ => return,
        }
    }
}

fn summary(state: &State, query: &str) -> Response<Full<Bytes>> {
    let mut from = None;
    let mut to = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) else {
            return respond(StatusCode::BAD_REQUEST, "{}".into());
        };
        match k {
            "from" => from = Some(t),
            "to" => to = Some(t),
            _ => {}
        }
    }
    let records = state.records.lock().unwrap();
    let mut totals = [(0u64, 0i64); 2];
    for r in records.iter() {
        if from.is_some_and(|f| r.requested_at < f) || to.is_some_and(|t| r.requested_at > t) {
            continue;
        }
        let t = &mut totals[usize::from(r.fallback)];
        t.0 += 1;
        t.1 += r.cents;
    }
    respond(
        StatusCode::OK,
        format!(
            r#"{{"default":{{"totalRequests":{},"totalAmount":{}}},"fallback":{{"totalRequests":{},"totalAmount":{}}}}}"#,
            totals[0].0,
            Decimal::from_cents(totals[0].1),
            totals[1].0,
            Decimal::from_cents(totals[1].1)
        ),
    )
}
