//! The accept loop: HTTP/1.1 with keep-alive on every accepted connection, and a graceful
//! drain — on shutdown the listener closes, open connections finish their in-flight
//! request and close, and whatever is still open after the drain timeout is dropped.
//! While it serves, a background task keeps the rate limiter's per-client memory bounded.
//! [`run`] serves the [`router`] as a plain `service_fn`.

use std::net::SocketAddr;
use std::sync::Arc;

use common::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixListener};

use crate::{limits, router, AppState};

/// Largest request head (request line and headers) a client may send: ample for an API
/// whose requests carry a handful of short headers (nginx itself caps a header line at 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Cap of a connection's read buffer.
pub const MAX_READ_BUF_BYTES: usize = 64 * 1024;

/// Where the gateway accepts connections: TCP, or a Unix socket (for a load balancer on
/// the same host: no TCP stack between nginx and the gateway).
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// An accepted connection of either kind.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// A Unix socket peer is a process on this host (the load balancer): as trusted as
/// loopback for client identification.
const LOCAL_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl Listener {
    async fn accept(&self) -> std::io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), peer))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), LOCAL_PEER))
            }
        }
    }
}

/// Serves one connection in its own task, watched by the graceful drain.
fn serve_connection<I>(
    http: &http1::Builder,
    graceful: &GracefulShutdown,
    io: I,
    state: Arc<AppState>,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| router::handle(state.clone(), peer, req));
    let conn = graceful.watch(http.serve_connection(TokioIo::new(io), service));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

/// Serves until `shutdown` fires, then drains. Main and the tests both call this.
pub async fn run(listener: impl Into<Listener>, state: Arc<AppState>, mut shutdown: Shutdown) {
    let listener = listener.into();
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // A request head over MAX_HEAD_BYTES gets hyper's own 431 and never reaches the router;
    // the read buffer may grow a little further (pipelined requests), never unbounded.
    http.keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_READ_BUF_BYTES);
    let cleanup = state
        .limits
        .clone()
        .map(|l| tokio::spawn(limits::keep_bounded(l, limits::CLEANUP_INTERVAL)));
    let memory = (state.config.memory_high_water > 0).then(|| {
        tokio::spawn(limits::watch_memory(
            state.store.clone(),
            state.memory.clone(),
            state.config.memory_high_water,
            crate::config::defaults::MEMORY_POLL,
        ))
    });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        match stream {
            Stream::Tcp(s) => serve_connection(&http, &graceful, s, state.clone(), peer),
            Stream::Unix(s) => serve_connection(&http, &graceful, s, state.clone(), peer),
        }
    }
    drop(listener);
    for task in [cleanup, memory].into_iter().flatten() {
        task.abort();
    }
    let open = graceful.count();
    tracing::info!(open, "listener closed, draining connections");
    let drain = state.config.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "drain timed out, dropping remaining connections");
    }
}
