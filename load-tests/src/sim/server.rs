//! Serving a [`Simulator`] over HTTP/1.1: the accept loop ([`run`]), and the in-process
//! instance tests start on an ephemeral port ([`spawn`] → [`SimHandle`]).
//!
//! Before: the binary's `main` or a test builds a [`Simulator`] and a listener. After:
//! every connection gets a hyper HTTP/1 connection task calling
//! [`handlers::handle`]. Shutdown stops accepting, lets open
//! connections finish their in-flight requests for up to [`DRAIN_DEADLINE`], then
//! returns.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use uuid::Uuid;

use super::config::SimConfig;
use super::handlers;
use super::state::{SimSummary, Simulator};
use super::store::StoredPayment;

/// How long shutdown waits for in-flight requests (a health waiter can take two
/// windows; nobody needs that during shutdown).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `sim` on `listener` until `shutdown` completes, then drains.
///
/// What the binary's `main` and [`spawn`] both call.
pub async fn run(listener: TcpListener, sim: Simulator, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).keep_alive(true);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small request/response pairs: do not let Nagle hold them back.
                    if let Err(err) = stream.set_nodelay(true) {
                        debug!(%peer, error = %err, "set_nodelay failed");
                    }
                    let sim = sim.clone();
                    let service = service_fn(move |request| handlers::handle(sim.clone(), request));
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(err) = connection.await {
                            debug!(%peer, error = %err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => debug!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => warn!("drain deadline passed; closing open connections"),
    }
}

/// Starts a simulator on `127.0.0.1:0` in the background of the current runtime.
///
/// An invalid `config` is an [`io::ErrorKind::InvalidInput`] error. The simulator stops
/// on [`SimHandle::shutdown`] or when the handle is dropped.
pub async fn spawn(config: SimConfig) -> io::Result<SimHandle> {
    let sim =
        Simulator::new(config).map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    // Dropping the handle drops `stop`, which also ends `run`.
    let task = tokio::spawn(run(listener, sim.clone(), async move {
        let _ = stopped.await;
    }));
    Ok(SimHandle {
        addr,
        sim,
        stop,
        task,
    })
}

/// A running in-process simulator: its address, and control and inspection for tests.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens.
    addr: SocketAddr,
    /// Its state, shared with the server task.
    sim: Simulator,
    /// Sending (or dropping) stops the server.
    stop: oneshot::Sender<()>,
    /// The server task.
    task: JoinHandle<()>,
}

impl SimHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state, for anything the shortcuts below do not cover.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Sets the delay for payments arriving from now on.
    pub fn set_delay(&self, ms: u64) {
        self.sim.set_delay(ms);
    }

    /// Turns failure mode on or off.
    pub fn set_failure(&self, on: bool) {
        self.sim.set_failure(on);
    }

    /// Fault: answer `status` (0 = off) instead of `200` after storing a payment.
    pub fn set_status_after_store(&self, status: u16) {
        self.sim.set_status_after_store(status);
    }

    /// Fault: answer `status` (0 = off) to every payment at once, storing none.
    pub fn set_status_unforwarded(&self, status: u16) {
        self.sim.set_status_unforwarded(status);
    }

    /// Fault: `GET /payments/{id}` answers `404` even for stored payments.
    pub fn set_lookups_absent(&self, on: bool) {
        self.sim.set_lookups_absent(on);
    }

    /// `POST /payments` admitted and not answered yet (handled or queued).
    pub fn payments_in_flight(&self) -> usize {
        self.sim.payments_in_flight()
    }

    /// Replaces the admin token.
    pub fn set_token(&self, token: impl Into<String>) {
        self.sim.set_token(token);
    }

    /// How many payments are stored.
    pub fn stored_count(&self) -> usize {
        self.sim.stored_count()
    }

    /// The stored payment with this correlation id.
    pub fn stored(&self, id: &Uuid) -> Option<StoredPayment> {
        self.sim.stored(id)
    }

    /// Totals over stored payments with `requested_at_ms` in `[from_ms, to_ms]`
    /// (inclusive; a `None` bound is open).
    pub fn summary(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> SimSummary {
        self.sim.summary(from_ms, to_ms)
    }

    /// Deletes every stored payment.
    pub fn purge(&self) {
        self.sim.purge();
    }

    /// Health calls refused with `429`.
    pub fn health_429s(&self) -> u64 {
        self.sim.health_429s()
    }

    /// Every health call received (served, waiting or refused).
    pub fn health_calls(&self) -> u64 {
        self.sim.health_calls()
    }

    /// Health calls answered `200`.
    pub fn health_served(&self) -> u64 {
        self.sim.health_served()
    }

    /// Every `POST /payments` received, whatever its answer.
    pub fn payment_posts(&self) -> u64 {
        self.sim.payment_posts()
    }

    /// `POST /payments` refused with `429` by the concurrency limit.
    pub fn payment_429s(&self) -> u64 {
        self.sim.payment_429s()
    }

    /// `POST /payments` answered `500` by failure mode.
    pub fn payment_failures(&self) -> u64 {
        self.sim.payment_failures()
    }

    /// `POST /payments` answered `422` (correlation id already stored).
    pub fn duplicate_rejections(&self) -> u64 {
        self.sim.duplicate_rejections()
    }

    /// Stops accepting, drains (up to [`DRAIN_DEADLINE`]) and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            warn!(error = %err, "simulator task failed");
        }
    }
}
