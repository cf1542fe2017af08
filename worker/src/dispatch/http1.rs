//! The HTTP/1.1 transport to the processors: per processor a pool of keep-alive
//! connections driven by hyper's client connection API directly — no redirect, proxy,
//! cookie, decompression or URL-parsing layers per call (what reqwest adds). Chosen over
//! reqwest by measurement (docs/benchmarks.md, "Crates not used").
//!
//! A call given up on (its timeout) closes its connection at once, with a reset: the
//! connection is not left open waiting for an answer nobody reads, and the kernel does not
//! retransmit the rest of the request to a processor that would store it late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How long the first connect try waits for the handshake before a new try (doubling).
/// The processors are on the private network: a handshake takes well under a millisecond
/// there, so a try this old has lost its SYN.
const FIRST_CONNECT_TRY: Duration = Duration::from_millis(200);

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made, or none in time: nothing was sent.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The call did not finish in time, after the request was handed to a connection.
    #[error("timed out")]
    Timeout,
    /// The request was never written to a connection.
    #[error("not sent: {0}")]
    NotSent(hyper::Error),
    /// The connection failed after the request may have been sent.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
}

impl CallError {
    /// No connection in time: nothing was handed over, so nothing was sent.
    fn connect_timed_out() -> Self {
        CallError::Connect(std::io::ErrorKind::TimedOut.into())
    }
}

/// One connection: the handle requests are sent on, and the task that drives it. Dropped
/// anywhere but back into the idle list (a call cut off by its timeout, a connection that
/// is no longer usable), it stops the task, which closes the socket: with `SO_LINGER(0)`,
/// a reset that discards whatever of the request the kernel still holds.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keep-alive connections to one `host:port`.
pub struct Pool {
    /// `host:port` as in the processor's URL (resolved at each connect).
    authority: String,
    /// Idle connections, most recently used last.
    idle: Mutex<Vec<Conn>>,
    /// Most idle connections kept.
    max_idle: usize,
    connect_timeout: Duration,
}

impl Pool {
    /// A pool for `base` (`http://host:port`; https is not supported: the processors are
    /// on the private network).
    pub fn new(base: &str, max_idle: usize, connect_timeout: Duration) -> Result<Self, String> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base}: only http:// is supported"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{base}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            idle: Mutex::new(Vec::new()),
            max_idle,
            connect_timeout,
        })
    }

    /// `method path` with `body`; the whole answer (status and body) within `timeout`,
    /// which covers the connect too: a request is handed to a connection before `timeout`
    /// ends or never (one already handed over may still be flushed just after).
    /// A timeout that struck before the request was handed to a connection (a connect that
    /// never completed: a dropped SYN is retried only after a second) is a
    /// [`CallError::Connect`]: nothing was sent, which the caller may treat as definite.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let handed_over = AtomicBool::new(false);
        match tokio::time::timeout(timeout, self.call_inner(method, path, body, &handed_over)).await
        {
            Ok(result) => result,
            Err(_) if !handed_over.load(Ordering::Relaxed) => Err(CallError::connect_timed_out()),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// `handed_over` is set before the request is first given to a connection: from then
    /// on it may be on the wire.
    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        handed_over: &AtomicBool,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.authority.as_str());
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let mut request = request.body(Full::new(body.unwrap_or_default()))?;
        let mut fresh = false;
        loop {
            let mut conn = match self.take_idle() {
                Some(conn) if !fresh => conn,
                _ => {
                    fresh = true;
                    self.connect().await?
                }
            };
            handed_over.store(true, Ordering::Relaxed);
            match conn.sender.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let bytes = response.into_body().collect().await?.to_bytes();
                    self.put_idle(conn);
                    return Ok((status, bytes));
                }
                Err(mut e) => match e.take_message() {
                    // Never written (the idle connection had just been closed): safe to
                    // send on a new connection, once.
                    Some(unsent) if !fresh => {
                        request = unsent;
                        fresh = true;
                    }
                    Some(_) => return Err(CallError::NotSent(e.into_error())),
                    None => return Err(CallError::Http(e.into_error())),
                },
            }
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(conn) = idle.pop() {
            // A connection the processor closed is dropped here, not used.
            if conn.sender.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle && conn.sender.is_ready() {
                idle.push(conn);
            }
        }
    }

    /// A new connection within `connect_timeout`. Each try waits [`FIRST_CONNECT_TRY`],
    /// doubling, before a fresh socket sends a fresh SYN: a SYN dropped by a full accept
    /// queue (a burst of connects) is otherwise sent again by the kernel only after a second,
    /// longer than most calls' timeout. A refusal is final (nothing listens).
    async fn connect(&self) -> Result<Conn, CallError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        // The name is resolved once per connection, not once per try.
        let addrs: Vec<std::net::SocketAddr> =
            tokio::time::timeout_at(deadline, tokio::net::lookup_host(self.authority.as_str()))
                .await
                .map_err(|_| CallError::connect_timed_out())?
                .map_err(CallError::Connect)?
                .collect();
        let mut wait = FIRST_CONNECT_TRY;
        let stream = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(CallError::connect_timed_out());
            }
            let attempt = tokio::net::TcpStream::connect(&addrs[..]);
            match tokio::time::timeout(wait.min(left), attempt).await {
                Ok(connected) => break connected.map_err(CallError::Connect)?,
                Err(_) => wait = wait.saturating_mul(2),
            }
        };
        let _ = stream.set_nodelay(true);
        // Closed with RST, not FIN: a call given up on (its timeout) must not leave the kernel
        // retransmitting the part of its request not yet acknowledged for tens of seconds.
        // What already reached the processor's kernel, or a proxy, can still be read late:
        // the worker allows for that with `LATE_DELIVERY_MS`.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        // The handshake only sets up the connection's state; no request is written yet.
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(CallError::NotSent)?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "processor connection closed");
            }
        })
        .abort_handle();
        Ok(Conn { sender, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn post(pool: &Pool, timeout: Duration) -> Result<(StatusCode, Bytes), CallError> {
        pool.call(
            Method::POST,
            "/payments",
            Some(Bytes::from_static(b"{}")),
            timeout,
        )
        .await
    }

    /// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to
    /// it does not complete for at least a second (the client's first SYN retransmit).
    async fn full_listener() -> (tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let listener = socket.listen(0).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let mut held = Vec::new();
        for _ in 0..64 {
            match tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(stream)) => held.push(stream),
                Ok(Err(e)) => panic!("connect: {e}"),
                Err(_) => return (listener, held),
            }
        }
        panic!("the accept queue never filled");
    }

    #[tokio::test]
    async fn a_call_whose_connect_never_completed_sent_nothing() {
        let (listener, _held) = full_listener().await;
        let addr = listener.local_addr().expect("addr");
        let pool = Pool::new(&format!("http://{addr}"), 4, Duration::from_secs(5)).expect("pool");
        let result = post(&pool, Duration::from_millis(300)).await;
        assert!(
            matches!(result, Err(CallError::Connect(_))),
            "a call cut off while connecting wrote nothing: {result:?}"
        );
    }

    /// A call cut off after its request went out is a timeout (the request may have been
    /// stored), and it closes its connection at once, with a reset: it is not left open
    /// waiting for an answer nobody reads, and the kernel drops what it had not delivered
    /// of the request instead of retransmitting it to a processor that would store it late.
    #[tokio::test]
    async fn a_call_cut_off_after_the_request_went_out_is_a_timeout_and_resets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Reads the request, never answers, then waits for what the client does next.
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0);
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
        });
        let pool = Pool::new(&format!("http://{addr}"), 4, Duration::from_secs(5)).expect("pool");
        let result = post(&pool, Duration::from_millis(200)).await;
        assert!(
            matches!(result, Err(CallError::Timeout)),
            "the request may have been stored: {result:?}"
        );
        match server.await.expect("server") {
            Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(Ok(n)) => panic!("closed with FIN (or more data: {n} bytes), not reset"),
            Err(_) => panic!("the abandoned connection stayed open"),
        }
    }

    /// Answers every request `200` at once, accepting connections only after `accept_after`.
    fn serve_after(listener: tokio::net::TcpListener, accept_after: Duration) {
        tokio::spawn(async move {
            tokio::time::sleep(accept_after).await;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"{}"),
                    )))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_syn_is_sent_again_before_the_kernels_one_second_retry() {
        // The queue is full when the call starts (its SYN is dropped) and served from
        // 100 ms on: a fresh SYN at 200 ms gets through; the kernel's own retransmit would
        // come at 1 s, after the call's 900 ms timeout.
        let (listener, _held) = full_listener().await;
        let addr = listener.local_addr().expect("addr");
        serve_after(listener, Duration::from_millis(100));
        let pool = Pool::new(&format!("http://{addr}"), 4, Duration::from_secs(5)).expect("pool");
        let result = post(&pool, Duration::from_millis(900)).await;
        assert!(
            matches!(result, Ok((StatusCode::OK, _))),
            "answered on a second try: {result:?}"
        );
    }
}
