//! The HTTP/1.1 transport to the processors: per processor a pool of keep-alive
//! connections driven by hyper's client connection API directly — no redirect, proxy,
//! cookie, decompression or URL-parsing layers per call (what reqwest adds). Chosen over
//! reqwest by measurement (README, "Processor client").

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made: nothing was sent.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The call did not finish in time.
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

/// Keep-alive connections to one `host:port`.
pub struct Pool {
    /// `host:port` as in the processor's URL (resolved at each connect).
    authority: String,
    /// Idle connections, most recently used last.
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
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

    /// `method path` with `body`; the whole answer (status and body) within `timeout`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        tokio::time::timeout(timeout, self.call_inner(method, path, body))
            .await
            .map_err(|_| CallError::Timeout)?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
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
            let mut sender = match self.take_idle() {
                Some(sender) if !fresh => sender,
                _ => {
                    fresh = true;
                    self.connect().await?
                }
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let bytes = response.into_body().collect().await?.to_bytes();
                    self.put_idle(sender);
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

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            // A connection the processor closed is dropped here, not used.
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle && sender.is_ready() {
                idle.push(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| CallError::Connect(std::io::ErrorKind::TimedOut.into()))?
        .map_err(CallError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(CallError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "processor connection closed");
            }
        });
        Ok(sender)
    }
}
