//! A TCP relay in front of a processor: the proxies, meshes and networks payments cross in
//! real deployments. It passes every exchange through, except for `POST /payments`:
//! - while holding, it keeps each POST for a while before forwarding it, whatever the client
//!   does meanwhile: what a proxy that buffers requests, a kernel retransmitting an abandoned
//!   request, or an accept queue read late do to a request the client gave up on;
//! - with an answer of its own set, it forwards the POST, lets the processor store it, and
//!   answers the client its own error instead (an HTML page with that status, as a mesh, a
//!   CDN or a load balancer does), or closes the connection without an answer;
//! - with a lookup answer set, it answers `GET /payments/{id}` itself with that status and an
//!   HTML page, without forwarding (a router whose backend is gone).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    hold_for: Duration,
    holding: AtomicBool,
    /// After forwarding a POST: 0 = pass the processor's answer on, 1 = close the
    /// connection, else answer this status with an HTML page.
    own_answer: AtomicU16,
    /// 0 = pass lookups through, else answer them this status with an HTML page.
    lookup_answer: AtomicU16,
    /// Held POSTs not yet delivered upstream.
    in_hold: AtomicUsize,
    /// Held POSTs delivered upstream (after their client gave up).
    delivered_late: AtomicUsize,
}

impl Relay {
    /// A relay to `upstream` (`http://host:port`) that holds POSTs for `hold_for` while on.
    pub async fn start(upstream: &str, hold_for: Duration) -> Relay {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            hold_for,
            holding: AtomicBool::new(false),
            own_answer: AtomicU16::new(0),
            lookup_answer: AtomicU16::new(0),
            in_hold: AtomicUsize::new(0),
            delivered_late: AtomicUsize::new(0),
        });
        let accept = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, accept.clone()));
            }
        });
        Relay { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hold(&self, on: bool) {
        self.shared.holding.store(on, Ordering::SeqCst);
    }

    /// After forwarding each POST, answer `status` with an HTML page of the relay's own
    /// (`Some`), or close the connection without an answer (`None`).
    pub fn answer_after_forwarding(&self, status: Option<u16>) {
        self.shared
            .own_answer
            .store(status.unwrap_or(CLOSE), Ordering::SeqCst);
    }

    /// Answer every `GET /payments/{id}` with `status` and an HTML page of the relay's own,
    /// without forwarding it (`None`: pass lookups through again).
    pub fn answer_lookups(&self, status: Option<u16>) {
        self.shared
            .lookup_answer
            .store(status.unwrap_or(PASS), Ordering::SeqCst);
    }

    /// Held POSTs still waiting to be delivered.
    pub fn in_hold(&self) -> usize {
        self.shared.in_hold.load(Ordering::SeqCst)
    }

    pub fn delivered_late(&self) -> usize {
        self.shared.delivered_late.load(Ordering::SeqCst)
    }
}

/// One client connection: request by request, forwarded on one upstream connection.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let mut upstream: Option<TcpStream> = None;
    loop {
        let Some(request) = read_message(&mut client).await else {
            return;
        };
        let is_post = request.starts_with(b"POST /payments ");
        if is_post && shared.holding.load(Ordering::SeqCst) {
            shared.in_hold.fetch_add(1, Ordering::SeqCst);
            let late = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(late.hold_for).await;
                if let Ok(mut conn) = TcpStream::connect(late.upstream).await {
                    if conn.write_all(&request).await.is_ok() {
                        let _ = read_message(&mut conn).await;
                    }
                }
                late.delivered_late.fetch_add(1, Ordering::SeqCst);
                late.in_hold.fetch_sub(1, Ordering::SeqCst);
            });
            // The client waits for an answer that never comes, then gives up and closes.
            let mut rest = [0u8; 512];
            while matches!(client.read(&mut rest).await, Ok(n) if n > 0) {}
            return;
        }
        let lookup_answer = shared.lookup_answer.load(Ordering::SeqCst);
        if lookup_answer != PASS
            && request.starts_with(b"GET /payments/")
            && !request.starts_with(b"GET /payments/service-health")
        {
            if client.write_all(&proxy_page(lookup_answer)).await.is_err() {
                return;
            }
            continue;
        }
        if upstream.is_none() {
            upstream = TcpStream::connect(shared.upstream).await.ok();
        }
        let Some(conn) = upstream.as_mut() else {
            return;
        };
        if conn.write_all(&request).await.is_err() {
            return;
        }
        let Some(response) = read_message(conn).await else {
            return;
        };
        let response = match shared.own_answer.load(Ordering::SeqCst) {
            PASS => response,
            _ if !is_post => response,
            CLOSE => return,
            status => proxy_page(status),
        };
        if client.write_all(&response).await.is_err() {
            return;
        }
    }
}

const PASS: u16 = 0;
const CLOSE: u16 = 1;

/// A proxy's error page: HTML, as nginx, Envoy or a CDN answer it.
fn proxy_page(status: u16) -> Vec<u8> {
    let body = format!(
        "<html><head><title>{status} Error</title></head><body><center><h1>{status} Error</h1></center><hr><center>proxy</center></body></html>"
    );
    format!(
        "HTTP/1.1 {status} Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP/1.1 message (head and a `Content-Length` body), bytes as read; `None` at EOF.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut message = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(&message, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        message.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&message[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while message.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        message.extend_from_slice(&chunk[..n]);
    }
    Some(message)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits until every held POST was delivered.
pub async fn all_delivered(relay: &Relay, limit: Duration) {
    let until = tokio::time::Instant::now() + limit;
    while relay.in_hold() > 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "held POSTs never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A relay in front of `stack`'s default processor (holding POSTs for `hold_for` while on),
/// and a worker that reaches default through it, with `settings` on top.
pub async fn worker_behind_relay(
    stack: &crate::helpers::Stack,
    hold_for: Duration,
    settings: &[(&str, &str)],
) -> (Relay, paystream_worker::WorkerHandle) {
    let relay = Relay::start(&stack.default.url(), hold_for).await;
    let url = relay.url();
    let via = [("PROCESSOR_DEFAULT_URL", url.as_str())];
    let worker = stack.start_worker(&[&via[..], settings].concat()).await;
    (relay, worker)
}
